# shellcheck shell=bash
# common.sh - shell functions shared by the private-MTA scripts in this
# directory. Sourced, never run. Everything here is bounded in time: a test
# must fail with a message, not hang, when an MTA misbehaves.

# postfix, postconf and friends live in /usr/sbin, which a test's or a
# user's PATH may lack.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# The repository's testdata/ directory, whatever the caller's cwd.
# shellcheck disable=SC2034 # used by the scripts that source this file
MTA_TESTDATA=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Written into every instance dir by an up script; down -P refuses to delete
# a directory without it, so a typo in -d can never remove unrelated files.
MTA_MARKER=.sluice-mta-instance

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (the MTAs drop privileges themselves)"
}

# check_dir DIR: instance dirs must be absolute (postfix -c insists on it)
# and short, because unix socket paths inside them are limited to 108 bytes.
check_dir() {
  case "$1" in
    /*) ;;
    *) die "instance dir '$1' must be an absolute path" ;;
  esac
  [ "${#1}" -le 60 ] || die "instance dir '$1' is too long for unix socket paths (max 60 bytes)"
}

# check_port PORT
check_port() {
  case "$1" in
    '' | *[!0-9]*) die "port '$1' is not a number" ;;
  esac
  if [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then
    die "port $1 out of range"
  fi
}

# Exit status of an up script whose port is already taken by another
# process; the Go harness then retries on another port.
EXIT_PORT_TAKEN=3

# listener_pids PORT: pids of the processes holding a TCP socket that
# listens on PORT. Read from the kernel's socket table (ss), not by
# connecting: a probe connection would reach the MTA's milter as a session
# of its own and skew what a test counts there.
listener_pids() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# require_free_port PORT: exit with EXIT_PORT_TAKEN if something listens.
require_free_port() {
  if [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; then
    echo "$(basename "$0"): port $1 is already in use" >&2
    exit "$EXIT_PORT_TAKEN"
  fi
}

# wait_listen PORT PIDFILE TENTHS: wait until the process whose pid is in
# PIDFILE listens on PORT, polling every 0.1 s at most TENTHS times.
wait_listen() {
  local i pid
  for ((i = 0; i < $3; i++)); do
    pid=$(read_pid "$2")
    if [ -n "$pid" ] && listener_pids "$1" | grep -qx "$pid"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# pid_alive PID WORD: true if PID runs and its command line contains WORD
# (guards against signalling an unrelated process that reused a stale pid).
pid_alive() {
  local pid=$1
  case "$pid" in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# gone PID: true once PID has exited. A daemon's parent here is init, which
# may take a while to reap it, so a zombie counts as gone.
gone() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
  [ -z "$state" ] || [ "$state" = Z ] || [ "$state" = X ]
}

# wait_gone PID TENTHS: wait until PID has exited.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    gone "$1" && return 0
    sleep 0.1
  done
  return 1
}

# stop_pid PID WORD: SIGTERM, wait up to 10 s, then SIGKILL. Only if the
# process still looks like the one the pid file was written for.
stop_pid() {
  pid_alive "$1" "$2" || return 0
  kill -TERM "$1" 2>/dev/null || return 0
  wait_gone "$1" 100 && return 0
  kill -KILL "$1" 2>/dev/null || true
  wait_gone "$1" 50 || true
}

# read_pid FILE: first number in FILE, or nothing.
read_pid() {
  [ -f "$1" ] || return 0
  head -n 1 "$1" | tr -dc 0-9
}

# purge_dir DIR: delete an instance dir, but only one an up script made.
purge_dir() {
  [ -d "$1" ] || return 0
  [ -f "$1/$MTA_MARKER" ] || die "refusing to delete $1: no $MTA_MARKER marker"
  rm -rf -- "$1"
}

# apt_update: apt-get update, waiting up to 5 minutes for another apt
# (apt-daily on a fresh machine, say) to let go of the package lists.
# DPkg::Lock::Timeout covers only dpkg's lock: update fails at once with
# "Could not get lock .../lists/lock" while another update runs.
apt_update() {
  local i err
  for ((i = 0; ; i++)); do
    if err=$(apt-get -q update 2>&1 >/dev/null); then
      return 0
    fi
    case $err in
      *'Could not get lock'*) ;;
      *)
        printf '%s\n' "$err" >&2
        return 1
        ;;
    esac
    if [ "$i" -ge 60 ]; then
      printf '%s\n' "$err" >&2
      echo "$(basename "$0"): apt's package lists stayed locked for 5 minutes" >&2
      return 1
    fi
    [ "$i" -gt 0 ] || echo "$(basename "$0"): another apt holds the package lists; waiting" >&2
    sleep 5
  done
}
