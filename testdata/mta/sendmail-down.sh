#!/usr/bin/env bash
# sendmail-down.sh - stop a private Sendmail started by sendmail-up.sh, and
# its private syslogd.
#
# usage: sendmail-down.sh -d DIR [-P]
#   -P   also delete DIR (only if sendmail-up.sh created it)
# Idempotent: does nothing for an instance that is not running.
set -uo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

dir='' purge=''
while getopts 'd:P' opt; do
  case $opt in
    d) dir=$OPTARG ;;
    P) purge=1 ;;
    *) die "usage: sendmail-down.sh -d DIR [-P]" ;;
  esac
done
[ -n "$dir" ] || die "missing -d DIR"
check_dir "$dir"

# The daemon is a session leader (it detached from our terminal), so its
# SMTP and delivery children share its process group: signal the group, but
# only if the pid file still names a sendmail that leads its own group.
pid=$(read_pid "$dir/run/sendmail.pid")
if pid_alive "$pid" sendmail; then
  pgid=$(ps -o pgid= -p "$pid" | tr -dc 0-9)
  if [ "$pgid" = "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
  fi
  stop_pid "$pid" sendmail
fi
rm -f "$dir/run/sendmail.pid"

stop_pid "$(read_pid "$dir/run/syslogd.pid")" syslogd
rm -f "$dir/run/syslogd.pid"

if [ -n "$purge" ]; then
  purge_dir "$dir"
fi
exit 0
