#!/usr/bin/env bash
# sendmail-install.sh - make a Sendmail binary available without installing
# the sendmail-bin package, which conflicts with postfix (both provide
# mail-transport-agent). The package is fetched with "apt-get download" and
# unpacked with "dpkg -x" into a cache that git ignores; its runtime
# libraries, m4 and sendmail-cf (which do not conflict) are installed normally.
#
# usage: sendmail-install.sh        prints the unpacked root directory
#   The binary is ROOT/usr/libexec/sendmail/sendmail.
# Cache: $SLUICE_CACHE_DIR (default testdata/cache)/sendmail-bin_VERSION/
# Idempotent and safe to run concurrently.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
. "$(dirname "$0")/common.sh"

"$MTA_TESTDATA/install-deps.sh" m4 sendmail-cf busybox swaks iproute2 \
  libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 libssl3 libwrap0 procps

# Unpack the sendmail-bin that matches the installed sendmail-cf: the .cf
# files generated from one release are not meant for another's binary.
version=$(dpkg-query -W -f='${Version}' sendmail-cf)
cache=${SLUICE_CACHE_DIR:-$MTA_TESTDATA/cache}
root=$cache/sendmail-bin_$version
bin=$root/usr/libexec/sendmail/sendmail

if [ ! -x "$bin" ]; then
  need_root
  mkdir -p "$cache"
  exec 8>"$cache/sendmail-bin.lock"
  flock 8
  if [ ! -x "$bin" ]; then
    tmp=$(mktemp -d "$cache/sendmail-bin.tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    # Same lock as install-deps.sh: apt must not run twice at once.
    (
      flock -w 900 9
      cd "$tmp"
      if ! apt-get download -q "sendmail-bin=$version" >/dev/null 2>&1; then
        # The same marker as install-deps.sh: one update per boot.
        apt_update
        touch /tmp/sluice-apt-updated
        apt-get download -q "sendmail-bin=$version" >/dev/null
      fi
    ) 9>/tmp/sluice-install-deps.lock
    dpkg -x "$tmp"/sendmail-bin_*.deb "$tmp/root"
    [ -x "$tmp/root/usr/libexec/sendmail/sendmail" ] ||
      die "sendmail-bin $version has no usr/libexec/sendmail/sendmail"
    rm -rf "$root"
    mv "$tmp/root" "$root"
  fi
fi

if ldd "$bin" | grep -q 'not found'; then
  die "$bin: missing shared libraries: $(ldd "$bin" | grep 'not found' | tr -s ' \t\n' ' ')"
fi
echo "$root"
