package mtatest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const promTestdata = "../../testdata/prometheus"

// newMetricsServer serves a fresh registry (no Go runtime or process
// collectors, so the values are fully under the test's control) on a
// loopback port.
func newMetricsServer(t *testing.T) (*prometheus.CounterVec, *httptest.Server) {
	t.Helper()
	reg := prometheus.NewRegistry()
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_harness_messages_total",
		Help: "Messages seen by the harness self-test, by verdict.",
	}, []string{"verdict"})
	reg.MustRegister(messages)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return messages, srv
}

func TestPrometheusScrapesTarget(t *testing.T) {
	start := time.Now()
	messages, srv := newMetricsServer(t)
	messages.WithLabelValues("accept").Add(42)
	target := strings.TrimPrefix(srv.URL, "http://")

	p := StartPrometheus(t, target)
	t.Logf("prometheus ready at %s after %v", p.URL(), time.Since(start).Round(time.Millisecond))

	expr := `sluice_harness_messages_total{job="sluice",verdict="accept"}`
	if got := p.WaitForSeries(t, expr, 15*time.Second); got != 42 {
		t.Fatalf("%s = %v, want 42", expr, got)
	}
	t.Logf("first sample after %v", time.Since(start).Round(time.Millisecond))

	// The sample must carry the target's address, proving it came from our
	// server and not from some other job.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := p.Query(ctx, expr)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 || samples[0].Metric["instance"] != target {
		t.Fatalf("samples = %+v, want one with instance=%q", samples, target)
	}
	if age := time.Since(samples[0].Time); age < -time.Second || age > time.Minute {
		t.Errorf("sample timestamp %v is %v from now", samples[0].Time, age)
	}

	// Scraping continues: a later increment shows up. The comparison filter
	// makes the query empty until the new value has been scraped.
	messages.WithLabelValues("accept").Add(8)
	if got := p.WaitForSeries(t, expr+" == 50", 10*time.Second); got != 50 {
		t.Fatalf("after increment %s = %v, want 50", expr, got)
	}
	if got := p.WaitForSeries(t, `up{job="sluice"}`, 5*time.Second); got != 1 {
		t.Fatalf(`up{job="sluice"} = %v, want 1`, got)
	}

	// An invalid expression is an error carrying Prometheus's message.
	if _, err := p.Query(ctx, "sum("); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Fatalf("Query(%q) error = %v, want a bad_data error", "sum(", err)
	}

	// The HTTP endpoint is reachable at URL().
	u, err := url.Parse(p.URL())
	if err != nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("URL() = %q (%v), want http://127.0.0.1:PORT", p.URL(), err)
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func TestPrometheusWaitForSeriesFailures(t *testing.T) {
	_, srv := newMetricsServer(t)
	p := StartPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	// A series that never appears fails the test once the timeout passes,
	// and not much later.
	start := time.Now()
	r := runRecording(t, func(tb testing.TB) {
		p.WaitForSeries(tb, `sluice_harness_never_exported`, 700*time.Millisecond)
	})
	if !r.failed || !strings.Contains(r.output(), "no sample after") {
		t.Fatalf("WaitForSeries on a missing series: failed=%v output=%q", r.failed, r.output())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("WaitForSeries took %v with a 700ms timeout", took)
	}

	// A query error fails at once.
	r = runRecording(t, func(tb testing.TB) { p.WaitForSeries(tb, `sum(`, 5*time.Second) })
	if !r.failed || !strings.Contains(r.output(), "parse error") {
		t.Fatalf("WaitForSeries on a bad query: failed=%v output=%q", r.failed, r.output())
	}

	// More than one sample is ambiguous and fails.
	r = runRecording(t, func(tb testing.TB) {
		p.WaitForSeries(tb, `vector(1) or label_replace(vector(2), "x", "y", "", "")`, 5*time.Second)
	})
	if !r.failed || !strings.Contains(r.output(), "want exactly one") {
		t.Fatalf("WaitForSeries on two samples: failed=%v output=%q", r.failed, r.output())
	}
}

func TestPrometheusRejectsNonLoopbackTarget(t *testing.T) {
	Promtool(t) // skip or fail up front like StartPrometheus would
	for _, target := range []string{"192.0.2.1:9100", "example.com:80", "127.0.0.1", "127.0.0.1:0"} {
		r := runRecording(t, func(tb testing.TB) { StartPrometheus(tb, target) })
		if !r.failed {
			t.Errorf("StartPrometheus(%q) did not fail", target)
		}
	}
}

func TestPrometheusCheckMetrics(t *testing.T) {
	tool := Promtool(t)
	if fi, err := os.Stat(tool); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("Promtool() = %q, not an executable: %v", tool, err)
	}

	// What client_golang actually serves must pass.
	messages, srv := newMetricsServer(t)
	messages.WithLabelValues("reject").Inc()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(body), "sluice_harness_messages_total") {
		t.Fatalf("exposition lacks the counter: %v\n%s", err, body)
	}
	CheckMetrics(t, body)

	CheckMetrics(t, readTestdata(t, "good.prom"))

	for _, tc := range []struct {
		file, want string
	}{
		{"counter_without_total.prom", `should have "_total" suffix`},
		{"unparsable.prom", "parsing error"},
	} {
		text := readTestdata(t, tc.file)
		r := runRecording(t, func(tb testing.TB) { CheckMetrics(tb, text) })
		if !r.failed || !strings.Contains(r.output(), tc.want) {
			t.Errorf("CheckMetrics(%s): failed=%v, want failure mentioning %q; output:\n%s",
				tc.file, r.failed, tc.want, r.output())
		}
	}
}

func TestPrometheusCheckRules(t *testing.T) {
	Promtool(t)
	CheckRules(t, filepath.Join(promTestdata, "good.rules.yml"))

	for _, tc := range []struct {
		file, want string
	}{
		{"duplicate.rules.yml", "duplicate rule"},
		{"bad_expr.rules.yml", "parse error"},
		{"does_not_exist.rules.yml", "does not exist"},
	} {
		r := runRecording(t, func(tb testing.TB) { CheckRules(tb, filepath.Join(promTestdata, tc.file)) })
		if !r.failed || !strings.Contains(r.output(), tc.want) {
			t.Errorf("CheckRules(%s): failed=%v, want failure mentioning %q; output:\n%s",
				tc.file, r.failed, tc.want, r.output())
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(promTestdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recordingTB stands in for the test's testing.TB so that a helper's failure
// can be observed instead of failing the real test. Failing and skipping
// methods record and end the goroutine, as the testing package does.
type recordingTB struct {
	testing.TB
	mu      sync.Mutex
	failed  bool
	skipped bool
	msgs    []string
}

func runRecording(t *testing.T, f func(testing.TB)) *recordingTB {
	t.Helper()
	r := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func (r *recordingTB) record(failed, skipped bool, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = r.failed || failed
	r.skipped = r.skipped || skipped
	if msg != "" {
		r.msgs = append(r.msgs, msg)
	}
}

func (r *recordingTB) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Fail()             { r.record(true, false, "") }
func (r *recordingTB) FailNow()          { r.record(true, false, ""); runtime.Goexit() }
func (r *recordingTB) Error(args ...any) { r.record(true, false, fmt.Sprintln(args...)) }
func (r *recordingTB) Errorf(format string, a ...any) {
	r.record(true, false, fmt.Sprintf(format, a...))
}
func (r *recordingTB) Fatal(args ...any)              { r.Error(args...); runtime.Goexit() }
func (r *recordingTB) Fatalf(format string, a ...any) { r.Errorf(format, a...); runtime.Goexit() }
func (r *recordingTB) SkipNow()                       { r.record(false, true, ""); runtime.Goexit() }
func (r *recordingTB) Skip(args ...any) {
	r.record(false, true, fmt.Sprintln(args...))
	runtime.Goexit()
}
func (r *recordingTB) Skipf(format string, a ...any) {
	r.record(false, true, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (r *recordingTB) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recordingTB) Skipped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.skipped
}
