# sluice — build, run and test.
#
#   make run    build and serve with testdata/sluice.yml (state under ./var)
#   make test   everything: vet, format check, unit, end-to-end, soak and fuzz tests
#   make bench  benchmarks (see docs/benchmarks.md)
#   make deb    Debian package in bin/ (see docs/install.md)

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# End-to-end tests start real Postfix, Sendmail and Prometheus; give them time.
TESTFLAGS ?= -race -count=1 -timeout 40m
# A count, not a duration: with a duration, Go's fuzzing coordinator can
# report its own deadline as a failure ("context deadline exceeded", no
# failing input written; golang/go#75804, fixed in Go 1.27). A count has
# no deadline to race. 10,000 inputs take 30 to 70 s on two cores; the
# -timeout below still bounds a run that stalls.
FUZZTIME ?= 10000x

.PHONY: all build run test check unit soak fuzz bench bench-accuracy deb clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/sluice ./cmd/sluice

run: build
	mkdir -p var/lib var/tmp
	./bin/sluice serve --config testdata/sluice.yml

test: check unit soak fuzz

# Format, vet, and the daemon's build beyond Linux (docs/install.md):
# FreeBSD, a common home of Postfix, stands for the BSDs and macOS.
check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GOOS=freebsd $(GO) build -o /dev/null ./cmd/sluice

unit:
	$(GO) test $(TESTFLAGS) ./...

# The daemon under concurrent sessions while its configuration is
# reloaded, sluice train writes to its store and /metrics is scraped
# (cmd/sluice/soak_test.go): about a minute under -race, so 'unit' skips
# it and it runs here once.
#
# Then mail under load through a real Postfix with every filter, reloads
# and training (cmd/sluice/load_e2e_test.go), checked against the
# deliveries, archives, log and metrics: under a minute without -race,
# several under it, so it runs here without.
soak:
	SLUICE_SOAK=1 $(GO) test -race -count=1 -timeout 10m -run '^TestSoak$$' ./cmd/sluice
	SLUICE_LOAD=1 $(GO) test -count=1 -timeout 15m -run '^TestLoadPostfix' ./cmd/sluice

# Bounded fuzzing of the parsers and the milter server; the seed corpora
# also run in 'unit' as plain tests. Shrinking each new input may take a
# minute by default, and inputs here expand to whole sessions: with it
# bounded, the time goes to fuzzing (about 6,000 inputs in 40 s, against
# 1,400 in 60 s).
fuzz:
	$(GO) test ./milter -run '^$$' -fuzz '^FuzzServer$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 3s -timeout 15m

bench:
	testdata/bench/milter-throughput.sh
	$(GO) test -run '^$$' -bench PeakRSS -benchtime 1x ./cmd/sluice
	$(GO) test -run '^$$' -bench PostfixEndToEnd -benchtime 5x -timeout 30m ./cmd/sluice
	$(GO) test -run '^$$' -bench PostfixAutolearn -benchtime 3x -timeout 30m ./cmd/sluice
	$(GO) test -run '^$$' -bench MTASteps -benchtime 50x ./milter
	$(GO) test -run '^$$' -bench . ./classifier
	$(GO) test -run '^$$' -bench Append -benchtime 3000x ./filters/archive
	SLUICE_CORPUS=1 $(GO) test -count=1 -run '^TestCorpusThrough' -timeout 40m ./cmd/sluice

# Accuracy and speed against bogofilter on the SpamAssassin corpus
# (downloaded once into testdata/cache/).
bench-accuracy:
	$(GO) run ./classifier/internal/accuracy -cv -roc docs/roc.svg

# The package of the binary, man pages, completions, systemd unit and
# default configuration, built with nfpm through the Go module proxy.
deb:
	GO=$(GO) testdata/deb/build.sh bin $(VERSION)

clean:
	rm -rf bin var
