package bayes

import (
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
)

func TestFold(t *testing.T) {
	tests := []struct{ name, value string }{
		{"X-Sluice-Bayes", "Ham, spamicity=0.000012, queue_id=4ZkQ8m1xYz, version=dev"},
		{"X-Sluice-Bayes", "Unsure, spamicity=0.512345, queue_id=4ZkQ8m1xYzAbCdEfGhIjKl, version=v1.2.3-45-gabcdef0-dirty, autolearn=spam"},
		{"X-Bogosity", "Spam, tests=bogofilter, spamicity=0.999871, version=1.2.5"},
		{"X-A", strings.Repeat("x", 100) + " short " + strings.Repeat("y", 90)},
		{"X-A", "two  spaces   kept"},
	}
	for _, tc := range tests {
		got := fold(tc.name, tc.value)
		if unfolded := strings.ReplaceAll(got, "\n", ""); unfolded != tc.value {
			t.Errorf("unfolding %q gives %q, want %q", got, unfolded, tc.value)
		}
		lines := strings.Split(tc.name+": "+got, "\n")
		for i, l := range lines {
			if len(l) > maxLine && !strings.Contains(strings.TrimSpace(l), strings.Repeat("x", 80)) && !strings.Contains(l, strings.Repeat("y", 80)) {
				t.Errorf("%q: line %d is %d long: %q", tc.value, i, len(l), l)
			}
			if i > 0 && !strings.HasPrefix(l, " ") {
				t.Errorf("continuation line %q does not start with white space", l)
			}
		}
		if len(tc.name)+2+len(tc.value) > maxLine && len(lines) < 2 {
			t.Errorf("%q was not folded", tc.value)
		}
	}
}

// A line of white space alone in a field is obsolete syntax (RFC 5322
// 4.2), which a generator must not write. A format ending in a space, or
// two spaces where the line is full, must not put a break before nothing.
func TestFoldWritesNoBlankLine(t *testing.T) {
	tests := []struct{ name, value string }{
		{"X-Sluice-Bayes", "Spam, spamicity=0.999871, queue_id=4ZkQ8m1xYz, version=1.0.0, autolearn=spam "},
		{"X-A", strings.Repeat("x", 74) + "  y"},
		{"X-A", strings.Repeat("x", 100) + "   y"},
		{"X-A", " " + strings.Repeat("x", 100) + " "},
	}
	for _, tc := range tests {
		got := fold(tc.name, tc.value)
		if unfolded := strings.ReplaceAll(got, "\n", ""); unfolded != tc.value {
			t.Errorf("unfolding %q gives %q, want %q", got, unfolded, tc.value)
		}
		for i, l := range strings.Split(got, "\n") {
			if i > 0 && strings.TrimLeft(l, " \t") == "" {
				t.Errorf("%q folded as %q: line %d is white space only", tc.value, got, i)
			}
		}
	}
}

func TestTemplate(t *testing.T) {
	tp, err := parseTemplate("{verdict}, x={spamicity} {queue_id}/{version} {")
	if err != nil {
		t.Fatal(err)
	}
	got := tp.render(map[string]string{"verdict": "Spam", "spamicity": "0.5", "queue_id": "Q\r\nX-Evil: 1", "version": "v"})
	if got != "Spam, x=0.5 Q??X-Evil: 1/v {" {
		t.Errorf("render: %q", got)
	}
	for _, bad := range []string{"{nope}", "tab\there", "{verdict}{}", "{verdict", "x={spamicity) y"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type fakePool struct{ st classifier.RedisPoolStats }

func (p *fakePool) PoolStats() classifier.RedisPoolStats { return p.st }

type poolRecorder struct{ hits []uint64 }

func (*poolRecorder) BayesStoreUnavailable(string)                             {}
func (*poolRecorder) BayesRedisRoundTrip(string, string, time.Duration, error) {}
func (r *poolRecorder) BayesRedisPool(_ string, st classifier.RedisPoolStats) {
	r.hits = append(r.hits, st.Hits)
}

// Pool counters are reported as increments. go-redis's wrap at 2^32 (or a
// cluster node leaving the sum) is a counter that started again, never an
// increment of 2^64.
func TestPoolIncrements(t *testing.T) {
	rec := &poolRecorder{}
	f := &Filter{name: "bayes", sobs: rec}
	p := &fakePool{st: classifier.RedisPoolStats{Hits: math.MaxUint32 - 10}}
	f.reportPool(p)
	p.st.Hits = math.MaxUint32 - 4
	f.reportPool(p)
	p.st.Hits = 5 // wrapped
	f.reportPool(p)
	if want := []uint64{math.MaxUint32 - 10, 6, 5}; !slices.Equal(rec.hits, want) {
		t.Errorf("increments %v, want %v", rec.hits, want)
	}
}

// headerSize counts what Message.Raw writes.
func TestHeaderSizeIsRaw(t *testing.T) {
	hs := []filters.Header{{Name: "Subject", Value: "a\n\tb\r\n c"}, {Name: "X", Value: ""}}
	raw, err := io.ReadAll((&filters.Message{Headers: hs}).Raw())
	if err != nil {
		t.Fatal(err)
	}
	if got := headerSize(hs); got != int64(len(raw)) {
		t.Errorf("headerSize %d, Raw writes %d bytes: %q", got, len(raw), raw)
	}
}
