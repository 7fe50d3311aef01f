#!/usr/bin/env bash
# install-deps.sh PKG... - install Debian packages the tests need, idempotently.
#
# Packages already installed are skipped; 'apt-get update' runs at most once
# per machine boot (a marker under /tmp), and only when something is missing.
# Must run as root; prints nothing on success unless something was installed.
set -euo pipefail
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
# Serialise concurrent callers (tests run packages in parallel).
exec 9>/tmp/sluice-install-deps.lock
flock 9
marker=/tmp/sluice-apt-updated
if [ ! -f "$marker" ]; then
  apt-get update -q >/dev/null
  touch "$marker"
fi
# Postfix asks debconf questions at install time; answer them up front.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string sluice-test.example" | debconf-set-selections
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
