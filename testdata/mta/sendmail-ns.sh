#!/usr/bin/env bash
# sendmail-ns.sh - second half of sendmail-up.sh; runs inside the private
# mount and UTS namespaces that sendmail-up.sh creates with unshare(1).
# Not meant to be run by hand.
#
# usage: sendmail-ns.sh DIR BIN HOSTNAME
#
# Sendmail can only log through syslog(3), i.e. to the datagram socket
# /dev/log, and busybox syslogd can only listen there. Several instances
# (and the host itself) must not fight over that one path, so each instance
# gets its own /dev: DIR/run/dev holds bind mounts of the few device nodes
# Sendmail and its mailers use, and is mounted over /dev in this namespace
# only. The private syslogd then creates its socket in DIR/run/dev/log and
# writes DIR/log/maillog. Both daemons keep the namespace alive; when they
# exit, the mounts disappear with it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

[ $# = 3 ] || die "usage: sendmail-ns.sh DIR BIN HOSTNAME"
dir=$1 bin=$2 host=$3

# Sendmail sleeps 60 s at start-up when the host name is not fully qualified
# ("My unqualified host name ... unknown; sleeping for retry").
hostname "$host"

dev=$dir/run/dev
mkdir -p "$dev"
for node in null zero full random urandom tty; do
  [ -e "/dev/$node" ] || continue
  : >"$dev/$node"
  mount --bind "/dev/$node" "$dev/$node"
done
ln -sfn /proc/self/fd "$dev/fd"
ln -sfn /proc/self/fd/0 "$dev/stdin"
ln -sfn /proc/self/fd/1 "$dev/stdout"
ln -sfn /proc/self/fd/2 "$dev/stderr"
# --rbind: the device bind mounts above must come along.
mount --rbind "$dev" /dev

setsid busybox syslogd -n -O "$dir/log/maillog" </dev/null >>"$dir/log/syslogd.out" 2>&1 &
echo $! >"$dir/run/syslogd.pid"
for ((i = 0; i < 50; i++)); do
  [ -S /dev/log ] && break
  sleep 0.1
done
[ -S /dev/log ] || die "busybox syslogd did not create /dev/log in 5 s"

# -bd: daemon; the parent returns once the child is forked. -q1m: queue
# runs every minute, so deferred mail is retried while a test waits.
exec "$bin" -C "$dir/etc/sendmail.cf" -bd -q1m </dev/null >>"$dir/log/sendmail.out" 2>&1
