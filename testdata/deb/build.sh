#!/usr/bin/env bash
# build.sh OUTDIR [VERSION] - build the Debian package of sluice into OUTDIR
# and print its path. "make deb" runs it.
#
# The binary, its man pages (sluice gen-man) and shell completions are
# made in a staging directory together with the files of testdata/deb, and
# nfpm (run with "go run", fetched through the Go module proxy like any
# module) packs them as nfpm.yaml says. VERSION defaults to what git
# describe says, made a valid Debian version.
set -euo pipefail

# The newest nfpm whose module graph the Go module proxy serves in full
# (2.46 and later need modules it refuses).
NFPM_VERSION=v2.45.2

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# stage_docs DOCDIR ALERTDIR copies the documentation pages and what
# they link to into DOCDIR, and the alert rules into ALERTDIR; the package
# installs them in /usr/share/doc/sluice and its alerts/ (nfpm.yaml).
stage_docs() {
	mkdir -p "$1" "$2"
	cp "$root"/docs/*.md "$root"/docs/*.svg "$root/docs/grafana-dashboard.json" "$1/"
	cp "$root"/docs/alerts/*.yml "$2/"
}

# "build.sh --docs-only DIR" stages the documentation alone, for the test
# that checks its links.
if [ "${1:-}" = --docs-only ]; then
	[ $# -eq 2 ] || { echo "usage: $0 --docs-only DIR" >&2; exit 2; }
	stage_docs "$2" "$2/alerts"
	exit 0
fi

[ $# -ge 1 ] || { echo "usage: $0 OUTDIR [VERSION]" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
GO=${GO:-go}

version=${2:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
version=${version#v}
# A Debian version starts with a digit and has no "-" in the upstream part
# of a native package (deb-version(7)). A release tag (1.2.3, or 1.2.3-4-gHASH
# from git describe) keeps its number; anything else, such as a bare commit
# hash, is a snapshot that sorts before every release ("~").
if [[ $version =~ ^[0-9]+(\.[0-9]+)+ ]]; then
	version=${version//-/+}
else
	version="0.0.0~git.${version//[^A-Za-z0-9.+~]/.}"
fi
arch=$("$GO" env GOARCH)
# Man pages and the package's file times come from the last commit, so
# that building the same commit twice gives the same package.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}

stage=$(mktemp -d /tmp/sluice-deb.XXXXXX)
trap 'rm -rf "$stage"' EXIT

# A static binary: no libc dependency. Groups (listen[].group) are looked
# up in /etc/group.
(cd "$root" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w -X main.version=$version" -o "$stage/sluice" ./cmd/sluice)

mkdir -p "$stage/man" "$stage/completion"
"$stage/sluice" gen-man "$stage/man"
gzip -9n "$stage"/man/*.8
"$stage/sluice" completion bash >"$stage/completion/sluice.bash"
"$stage/sluice" completion zsh >"$stage/completion/_sluice"
"$stage/sluice" completion fish >"$stage/completion/sluice.fish"

cp "$here/nfpm.yaml" "$here/sluice.yml" "$here/sluice.service" "$here/postinst" "$here/prerm" "$here/postrm" "$stage/"
stage_docs "$stage/doc" "$stage/alerts"
# Debian Policy 12.5: the licence, as /usr/share/doc/PACKAGE/copyright.
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: sluice"
	echo "Source: https://github.com/sluice-mail/sluice"
	echo
	echo "Files: *"
	echo "Copyright: $(sed -n 's/^Copyright (c) //p' "$root/LICENSE" | head -n1)"
	echo "License: MIT"
	sed -e 's/^$/./' -e 's/^/ /' "$root/LICENSE"
} >"$stage/doc/copyright"
# Debian Policy 12.7: a native package's changelog, in dpkg's format, as
# /usr/share/doc/PACKAGE/changelog.gz. One entry for the version built;
# the changes themselves are in the project's history.
{
	echo "sluice ($version) unstable; urgency=medium"
	echo
	echo "  * sluice $version."
	echo
	echo " -- $(sed -n 's/^maintainer: //p' "$here/nfpm.yaml")  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$stage/doc/changelog.gz"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

deb="$out/sluice_${version}_${arch}.deb"
(cd "$stage" && VERSION="$version" ARCH="$arch" "$GO" run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" \
	package --config nfpm.yaml --packager deb --target "$deb" >&2)
echo "$deb"
