#!/usr/bin/env bash
# postfix-down.sh - stop a private Postfix started by postfix-up.sh.
#
# usage: postfix-down.sh -d DIR [-P]
#   -P   also delete DIR (only if postfix-up.sh created it)
# Idempotent: does nothing for an instance that is not running.
set -uo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

dir='' purge=''
while getopts 'd:P' opt; do
  case $opt in
    d) dir=$OPTARG ;;
    P) purge=1 ;;
    *) die "usage: postfix-down.sh -d DIR [-P]" ;;
  esac
done
[ -n "$dir" ] || die "missing -d DIR"
check_dir "$dir"

pid=$(read_pid "$dir/spool/pid/master.pid")
# SIGTERM to master is what "postfix stop" sends; master then terminates its
# children. Doing it here avoids the script's one-second sleeps and lets us
# wait for exactly this process, so that a new instance in the same dir never
# races with the old one's shutdown.
stop_pid "$pid" master
if [ -n "$purge" ]; then
  purge_dir "$dir"
fi
exit 0
