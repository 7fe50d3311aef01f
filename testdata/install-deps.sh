#!/usr/bin/env bash
# install-deps.sh PKG... - install Debian packages the tests need, idempotently.
#
# Packages already installed are skipped. 'apt-get update' runs only when
# something is missing, at most once per machine boot (a marker under
# /tmp), and once more if an install from lists already there fails (they
# may have gone stale since: a point release removes the old .debs).
# Packages that ship a daemon (redis-server, prometheus, postfix) must not
# start it or enable it at boot: the tests start their own, on loopback,
# and a system Prometheus would listen on every interface
# (no-service-starts.sh). Must run as root; prints nothing on success unless
# something was installed.
set -euo pipefail
# shellcheck source=mta/common.sh
. "$(dirname "$0")/mta/common.sh" # apt_update
[ $# -gt 0 ] || exit 0
missing=()
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -gt 0 ] || exit 0
[ "$(id -u)" = 0 ] || { echo "install-deps.sh: need root to install: ${missing[*]}" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
# Serialise concurrent callers (tests run packages in parallel); bounded, so
# a stuck apt fails the run instead of hanging it.
exec 9>/tmp/sluice-install-deps.lock
flock -w 900 9 || { echo "install-deps.sh: waited 15 minutes for another install" >&2; exit 1; }
apt=(apt-get -q -o DPkg::Lock::Timeout=300)
marker=/tmp/sluice-apt-updated
updated=no
if [ ! -f "$marker" ]; then
  apt_update
  touch "$marker"
  updated=yes
fi
# Postfix asks debconf questions at install time; answer them up front.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string sluice-test.example" | debconf-set-selections
fi
nostart="$(dirname "$0")/no-service-starts.sh"
echo "install-deps.sh: installing ${missing[*]}" >&2
if ! "$nostart" "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
  [ "$updated" = no ] || exit 1
  echo "install-deps.sh: install failed; updating the package lists and trying again" >&2
  apt_update
  touch "$marker"
  "$nostart" "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
