package dnsbl

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// fakeClock is the cache's clock in tests: time moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu      sync.Mutex
	counts  map[string]int
	health  map[string]bool
	queries int
}

func newRecorder() *recorder {
	return &recorder{counts: map[string]int{}, health: map[string]bool{}}
}

func (r *recorder) inc(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key]++
}

func (r *recorder) DNSBLLookup(filter, zone, result string) { r.inc("lookup " + zone + " " + result) }
func (r *recorder) DNSBLListed(filter, zone, code string)   { r.inc("listed " + zone + " " + code) }
func (r *recorder) DNSBLError(filter, zone, kind string)    { r.inc("error " + zone + " " + kind) }
func (r *recorder) DNSBLCacheHit(filter, zone string)       { r.inc("cachehit " + zone) }
func (r *recorder) DNSBLQuery(filter, zone string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries++
}
func (r *recorder) DNSBLHealth(filter, zone string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.health[zone] = up
	if up {
		r.counts["health "+zone+" up"]++
	} else {
		r.counts["health "+zone+" down"]++
	}
}

func (r *recorder) DNSBLProbing(filter, zone string, on bool) {
	if on {
		r.inc("probing " + zone + " on")
	} else {
		r.inc("probing " + zone + " off")
	}
}

// get returns the count of key.
func (r *recorder) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

// String lists every count, for failure messages.
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	for k, v := range r.counts {
		lines = append(lines, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, " ")
}

// testEnv is a filter under test with what it talks to.
type testEnv struct {
	f     *Filter
	srv   *dnsbltest.Server
	obs   *recorder
	clock *fakeClock
	log   *strings.Builder
	logw  *syncWriter // log's writer: read log through logText while filters run
}

// logText returns the log so far, safe against the filter's goroutines
// (the probes) writing to it meanwhile.
func (e *testEnv) logText() string {
	e.logw.mu.Lock()
	defer e.logw.mu.Unlock()
	return e.log.String()
}

func dur(d time.Duration) *time.Duration { return &d }
func ptr[T any](v T) *T                  { return &v }

// baseConfig is a config against srv with probes off and short timeouts.
func baseConfig(srv *dnsbltest.Server, zones ...ZoneConfig) Config {
	return Config{
		Servers:       []string{srv.Addr},
		Timeout:       300 * time.Millisecond,
		ProbeInterval: dur(0),
		Zones:         zones,
	}
}

// syncWriter makes a strings.Builder safe as a log sink.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// newEnv builds a filter named "dnsbl" on cfg with a fake clock and a
// recorder, sharing shared if not nil.
func newEnv(t *testing.T, srv *dnsbltest.Server, cfg Config, shared *Shared) *testEnv {
	t.Helper()
	e := &testEnv{srv: srv, obs: newRecorder(), clock: newFakeClock(), log: &strings.Builder{}}
	if shared == nil {
		shared = NewShared()
		shared.now = e.clock.Now
	}
	e.logw = &syncWriter{b: e.log}
	logger := slog.New(slog.NewTextHandler(e.logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f, err := New(filters.Env{Name: "dnsbl", Logger: logger, Observer: e.obs}, cfg, shared)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	e.f = f
	return e
}

// conn returns a message at connect from ip.
func conn(ip string) *filters.Message {
	c := &filters.Conn{Hostname: "client.example", Family: "tcp4", Macros: map[string]string{}}
	if ip != "" {
		c.Addr = netip.MustParseAddr(ip)
		if c.Addr.Is6() {
			c.Family = "tcp6"
		}
	}
	return &filters.Message{Conn: c}
}

// message returns a message from ip with HELO helo and envelope sender
// from, its From header set to hfrom ("" for none).
func message(ip, helo, from, hfrom string) *filters.Message {
	m := conn(ip)
	m.Conn.Helo = helo
	m.From = filters.Address{Addr: from}
	m.Macros = map[string]string{}
	m.Headers = []filters.Header{{Name: "Subject", Value: "test"}}
	if hfrom != "" {
		m.Headers = append(m.Headers, filters.Header{Name: "From", Value: hfrom})
	}
	return m
}

func (e *testEnv) check(t *testing.T, stage filters.Stage, m *filters.Message) filters.Verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := e.f.Check(ctx, stage, m)
	if err != nil {
		t.Fatalf("Check at %s: %v", stage, err)
	}
	return v
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
