#!/bin/sh
# milter-throughput.sh runs BenchmarkThroughput (milter/bench_test.go) COUNT
# times and prints, per socket kind and concurrency, the median msgs/s of
# sluice with an empty pipeline and of a bare go-milter NoOpMilter server,
# and their ratio. The target is sluice >= 0.8x bare; the script exits 1
# when a row misses it.
#
# The bare server asks for every protocol step while sluice with no filter
# asks for none of headers and body, so a second ratio compares sluice with
# a bare server negotiating what sluice negotiates (bare-sameproto): that
# one shows the cost of sluice's own session handling.
#
# Usage: testdata/bench/milter-throughput.sh [COUNT [BENCHTIME]]
#   COUNT defaults to 5, BENCHTIME (go test -benchtime) to 1s.
set -eu

count=${1:-5}
benchtime=${2:-1s}
cd "$(dirname "$0")/../.."

raw=$(mktemp)
trap 'rm -f "$raw"' EXIT INT TERM

# Not a pipe into tee: sh has no pipefail, and a failing benchmark must
# fail the script.
if ! go test ./milter -run '^$' -bench '^BenchmarkThroughput$' -count "$count" -benchtime "$benchtime" >"$raw" 2>&1; then
	cat "$raw"
	echo "milter-throughput.sh: the benchmark failed" >&2
	exit 1
fi
cat "$raw"

echo
# Lines look like:
# BenchmarkThroughput/server=sluice/net=unix/conc=8-2  12345  98765 ns/op  10123 msgs/s  ...
awk -v target=0.8 '
function median(key,    n, i, j, v, tmp) {
	n = cnt[key]
	if (n == 0) return 0
	for (i = 1; i <= n; i++) v[i] = val[key, i]
	for (i = 2; i <= n; i++) {          # insertion sort, n is small
		tmp = v[i]
		for (j = i - 1; j >= 1 && v[j] > tmp; j--) v[j + 1] = v[j]
		v[j + 1] = tmp
	}
	if (n % 2) return v[(n + 1) / 2]
	return (v[n / 2] + v[n / 2 + 1]) / 2
}
# A log line of the code under test can split a result line in two: the
# name is remembered until its numbers come.
/^BenchmarkThroughput\// {
	split($1, part, "/")
	server = part[2]; sub(/^server=/, "", server)
	net = part[3]; sub(/^net=/, "", net)
	conc = part[4]; sub(/^conc=/, "", conc); sub(/-[0-9]+$/, "", conc)
}
/msgs\/s/ && server != "" {
	for (i = 2; i <= NF; i++) {
		if ($i == "msgs/s") {
			key = server SUBSEP net SUBSEP conc
			val[key, ++cnt[key]] = $(i - 1)
			rows[net SUBSEP conc] = 1
		}
	}
	server = ""
}
END {
	printf "%-5s %-4s %12s %12s %12s %8s %16s  %s\n", "net", "conc", "sluice", "bare", "bare-same", "ratio", "ratio-sameproto", "target"
	fail = 0
	split("unix inet", nets, " ")
	split("1 8", concs, " ")
	shown = 0
	for (a = 1; a <= 2; a++) for (c = 1; c <= 2; c++) {
		net = nets[a]; conc = concs[c]
		if (!((net SUBSEP conc) in rows)) continue
		s = median("sluice" SUBSEP net SUBSEP conc)
		b = median("bare" SUBSEP net SUBSEP conc)
		bs = median("bare-sameproto" SUBSEP net SUBSEP conc)
		r = (b > 0) ? s / b : 0
		rs = (bs > 0) ? s / bs : 0
		ok = (r >= target) ? "ok" : "MISSED"
		if (r < target) fail = 1
		printf "%-5s %-4s %12.0f %12.0f %12.0f %7.2fx %15.2fx  %s\n", net, conc, s, b, bs, r, rs, ok
		shown++
	}
	if (shown == 0) {
		print "no benchmark results" > "/dev/stderr"
		exit 1
	}
	printf "(msgs/s, medians of %d runs; ratio = sluice/bare, target >= %.1fx)\n", cnt["sluice" SUBSEP "unix" SUBSEP "1"], target
	exit fail
}' "$raw"
