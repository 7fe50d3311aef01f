package bayes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

const fixtures = "../../testdata/bayes"

// trainedStore returns a store in a temporary directory that learned the
// fixtures of testdata/bayes/ham and testdata/bayes/spam.
func trainedStore(t testing.TB) *classifier.BoltStore {
	t.Helper()
	return trainedStoreAt(t, filepath.Join(t.TempDir(), "bayes.db"))
}

// trainedStoreAt is trainedStore with the store at path.
func trainedStoreAt(t testing.TB, path string) *classifier.BoltStore {
	t.Helper()
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := classifier.New(st, classifier.Params{})
	var ops []classifier.LearnOp
	for _, class := range []classifier.Class{classifier.Spam, classifier.Ham} {
		files, _ := filepath.Glob(filepath.Join(fixtures, class.String(), "*.eml"))
		if len(files) < 12 {
			t.Fatalf("%d %s fixtures", len(files), class)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, c.PrepareBytes(raw, class, false))
		}
	}
	if _, err := c.Learn(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	// As "sluice train" does: the n-gram model is fitted after learning.
	if _, err := c.Refit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// msg builds a message as the milter edge would: header fields and a body.
func msg(queueID string, headers []filters.Header, body string) *filters.Message {
	b := filters.NewBody(1<<20, "")
	b.Write([]byte(body))
	return &filters.Message{QueueID: queueID, Headers: headers, Body: b}
}

func spamMessage() *filters.Message {
	return msg("4Q1SPAM", []filters.Header{
		{Name: "From", Value: "promo@casino-royal.example"},
		{Name: "To", Value: "bob@lab.example"},
		{Name: "Subject", Value: "Claim your free casino bonus now"},
		{Name: "Content-Type", Value: "text/plain; charset=us-ascii"},
	}, "Winner! Claim your free prize tonight. Cheap pills, guaranteed loan approval,\r\n"+
		"double your bitcoin, unclaimed funds, lottery jackpot. Click here now to unsubscribe.\r\n")
}

func hamMessage() *filters.Message {
	return msg("4Q2HAM", []filters.Header{
		{Name: "From", Value: "alice@lab.example"},
		{Name: "To", Value: "bob@lab.example"},
		{Name: "Subject", Value: "Notes from the design review"},
		{Name: "Content-Type", Value: "text/plain; charset=us-ascii"},
	}, "Hi team, the review of the parser patch is done. The benchmark numbers for the\r\n"+
		"storage migration look good; the release branch build is green. Meeting agenda for\r\n"+
		"thursday: deploy to staging, regression tests, feedback on the design document.\r\n")
}

// options decodes YAML filter options, as the config file gives them.
func options(t testing.TB, text string) bayes.Config {
	t.Helper()
	var c bayes.Config
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("options %q: %v", text, err)
	}
	return c
}

// fixtureOptions is options with the ham cutoff fixtureHamCutoff unless
// text sets one: for a filter on the fixture store.
func fixtureOptions(t testing.TB, text string) bayes.Config {
	t.Helper()
	c := options(t, text)
	if c.HamCutoff == nil {
		v := fixtureHamCutoff
		c.HamCutoff = &v
	}
	return c
}

// fixtureHamCutoff is the ham cutoff of the tests that set none. The
// default (0.05) is chosen for a store trained on real mail; the fixture
// store, 14 short hand-made messages of each class, is less sure of its
// clear ham (about 0.09), which the default leaves unsure.
const fixtureHamCutoff = 0.2

func newFilter(t testing.TB, st classifier.Store, opts string, obs any) *bayes.Filter {
	t.Helper()
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.New(env, fixtureOptions(t, opts), "1.2.3", st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func check(t *testing.T, f *bayes.Filter, m *filters.Message) filters.Verdict {
	t.Helper()
	v, err := f.Check(context.Background(), filters.StageEOM, m)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return v
}

// added returns the value of the field the verdict adds, unfolded, "" if
// none.
func added(v filters.Verdict, name string) string {
	for _, e := range v.Edits {
		if e.Kind == filters.AddHeader && e.Name == name {
			return strings.ReplaceAll(e.Value, "\n", "")
		}
	}
	return ""
}

func TestVerdictsAndActions(t *testing.T) {
	st := trainedStore(t)
	// One store shared by several filters, as after a reload: only the
	// last filter closes it.
	hdrSpam := regexp.MustCompile(`^Spam, spamicity=(0\.9\d{5}|1\.000000), queue_id=4Q1SPAM, version=1\.2\.3$`)
	hdrHam := regexp.MustCompile(`^Ham, spamicity=0\.[0-2]\d{5}, queue_id=4Q2HAM, version=1\.2\.3$`)
	tests := []struct {
		name    string
		opts    string
		m       *filters.Message
		action  filters.Action
		reply   string // Reply.String(), "" for none
		header  *regexp.Regexp
		noEdits bool
	}{
		{"ham is tagged", "", hamMessage(), filters.Continue, "", hdrHam, false},
		{"spam is rejected by default", "", spamMessage(), filters.Reject, "550 5.7.1 Message classified as spam", nil, true},
		{"spam tag", "spam: {action: tag}", spamMessage(), filters.Continue, "", hdrSpam, false},
		{"spam tempfail", "spam: {action: tempfail}", spamMessage(), filters.Tempfail, "451 4.7.1 Message classified as spam, try again later", nil, true},
		{"spam quarantine keeps the header", "spam: {action: quarantine}", spamMessage(), filters.Quarantine, "", hdrSpam, false},
		// The header goes with a discard, to be sent should another
		// filter hold the message (TestDiscardedSpamHeldElsewhereIsTagged).
		{"spam discard", "spam: {action: discard}", spamMessage(), filters.Discard, "", hdrSpam, false},
		{"reply template", `spam: {action: reject, reply: "554 5.7.1 Spam (spamicity {spamicity}, queue id {queue_id})"}`,
			spamMessage(), filters.Reject, "", nil, true},
		{"ham reject is possible", "ham: {action: reject}", hamMessage(), filters.Reject, "550 5.7.1 Message classified as ham", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, nopCloser{st}, tc.opts, nil)
			v := check(t, f, tc.m)
			if v.Action != tc.action {
				t.Fatalf("action %s, want %s (reason %q)", v.Action, tc.action, v.Reason)
			}
			if tc.reply != "" && (v.Reply == nil || v.Reply.String() != tc.reply) {
				t.Errorf("reply %v, want %q", v.Reply, tc.reply)
			}
			if tc.header != nil && !tc.header.MatchString(added(v, "X-Sluice-Bayes")) {
				t.Errorf("header %q does not match %s; edits %+v", added(v, "X-Sluice-Bayes"), tc.header, v.Edits)
			}
			if tc.noEdits && len(v.Edits) != 0 {
				t.Errorf("a %s carries edits %+v", v.Action, v.Edits)
			}
			if !strings.HasPrefix(v.Reason, "bayes: ") {
				t.Errorf("reason %q", v.Reason)
			}
		})
	}
	t.Cleanup(func() { st.Close() })
}

// The spamicity in the header, the reply and the reason is on the
// verdict's side of the cutoffs: with a cutoff set to the six-place value
// the exact spamicity rounds to (but did not reach), the message is
// unsure, and a rule comparing the printed number with the cutoff must
// not read it as spam or ham.
func TestPrintedSpamicityAgreesWithVerdict(t *testing.T) {
	st := trainedStore(t)
	t.Cleanup(func() { st.Close() })
	probe := newFilter(t, nopCloser{st}, "", nil)
	res, err := probe.Classifier().Classify(context.Background(), hamMessage().Raw())
	if err != nil {
		t.Fatal(err)
	}
	s := res.Spamicity
	rounded := strconv.FormatFloat(s, 'f', 6, 64)
	r, _ := strconv.ParseFloat(rounded, 64)
	if r == s || s <= 0 || s >= 1 {
		t.Fatalf("spamicity %v: the test needs one that six places do not hold", s)
	}
	t.Logf("spamicity %v rounds to %s", s, rounded)
	var opts, want string
	if r > s {
		// Rounds up onto the spam cutoff it is below.
		opts = "spam_cutoff: " + rounded + "\nham_cutoff: 0"
		want = strconv.FormatFloat(r-1e-6, 'f', 6, 64)
	} else {
		// Rounds down onto the ham cutoff it is above.
		opts = "spam_cutoff: 1\nham_cutoff: " + rounded
		want = strconv.FormatFloat(r+1e-6, 'f', 6, 64)
	}
	reply := "550 5.7.1 Unsure (spamicity {spamicity})"
	for _, tc := range []struct{ name, opts string }{
		{"tag", opts},
		{"reject", opts + "\nunsure: {action: reject, reply: \"" + reply + "\"}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, nopCloser{st}, tc.opts, nil)
			v := check(t, f, hamMessage())
			wantReason := "bayes: unsure, spamicity=" + want
			if v.Reason != wantReason {
				t.Errorf("spamicity %v, cutoffs %q: reason %q, want %q", s, opts, v.Reason, wantReason)
			}
			if tc.name == "tag" {
				if h, w := added(v, "X-Sluice-Bayes"), "Unsure, spamicity="+want+", queue_id=4Q2HAM, version=1.2.3"; h != w {
					t.Errorf("spamicity %v, cutoffs %q: header %q, want %q", s, opts, h, w)
				}
				return
			}
			if v.Reply == nil || v.Reply.Text != "Unsure (spamicity "+want+")" {
				t.Errorf("spamicity %v, cutoffs %q: reply %v, want spamicity %s", s, opts, v.Reply, want)
			}
		})
	}
}

// nopCloser shares one store between filters of a test.
type nopCloser struct{ classifier.Store }

func (nopCloser) Close() error { return nil }

func TestReplyTemplate(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, `spam: {action: reject, reply: "554 5.7.1 Spam (spamicity {spamicity}, queue id {queue_id}, {verdict})"}`, nil)
	v := check(t, f, spamMessage())
	re := regexp.MustCompile(`^554 5\.7\.1 Spam \(spamicity (0\.9\d{5}|1\.000000), queue id 4Q1SPAM, Spam\)$`)
	if v.Action != filters.Reject || v.Reply == nil || !re.MatchString(v.Reply.String()) {
		t.Fatalf("verdict %+v reply %v", v, v.Reply)
	}
	if err := v.Reply.Validate(); err != nil {
		t.Error(err)
	}
	// A queue id with bytes a reply cannot carry is made printable.
	m := spamMessage()
	m.QueueID = "Q\x01é"
	v = check(t, f, m)
	if err := v.Reply.Validate(); err != nil || !strings.Contains(v.Reply.Text, "queue id Q???") {
		t.Errorf("reply %q: %v", v.Reply.Text, err)
	}
}

func TestCustomHeader(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, `
header:
  name: X-Bogosity
  format: "{verdict}, tests=bogofilter, spamicity={spamicity}, version={version}"
`, nil)
	v := check(t, f, hamMessage())
	got := added(v, "X-Bogosity")
	if !regexp.MustCompile(`^Ham, tests=bogofilter, spamicity=0\.\d{6}, version=1\.2\.3$`).MatchString(got) {
		t.Errorf("X-Bogosity: %q (edits %+v)", got, v.Edits)
	}
	if added(v, "X-Sluice-Bayes") != "" {
		t.Error("default header added too")
	}
}

// A verdict field the message arrives with is deleted, all of them, from
// the last to the first, and ours is added; the forged one is not scored.
func TestForgedHeaderReplaced(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, "spam: {action: tag}", nil)
	m := spamMessage()
	m.Headers = append([]filters.Header{{Name: "x-sluice-bayes", Value: "Ham, spamicity=0.000000"}}, m.Headers...)
	m.Headers = append(m.Headers, filters.Header{Name: "X-Sluice-Bayes", Value: "Ham"})
	v := check(t, f, m)
	want := []filters.HeaderEdit{
		{Kind: filters.DeleteHeader, Name: "X-Sluice-Bayes", Index: 2},
		{Kind: filters.DeleteHeader, Name: "X-Sluice-Bayes", Index: 1},
	}
	if len(v.Edits) != 3 || v.Edits[0] != want[0] || v.Edits[1] != want[1] || !strings.HasPrefix(v.Edits[2].Value, "Spam,") {
		t.Errorf("edits %+v", v.Edits)
	}
	for _, e := range v.Edits {
		if err := e.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// A forged verdict field goes even when the classification fails: with
// on_failure accept the message is delivered, and a Sieve rule or the
// archive (verdict_header) must not read the sender's "Ham" as sluice's.
// The milter flow is followed: the header and end-of-message stages on
// one Message, their outcomes merged, and the merged edits applied to
// the header as the MTA received it.
func TestForgedHeaderRemovedWhenClassificationFails(t *testing.T) {
	st := trainedStore(t)
	defer st.Close()
	for _, tc := range []struct {
		name  string
		store classifier.Store
		want  []string // the values of the field as delivered
	}{
		{"store fails", failingStore{nopCloser{st}}, nil},
		{"store works", nopCloser{st}, []string{"Spam,"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t, tc.store, "spam: {action: tag}", nil)
			m := spamMessage()
			m.Headers = append([]filters.Header{{Name: "x-sluice-bayes", Value: "Ham, spamicity=0.000000"}}, m.Headers...)
			m.Headers = append(m.Headers, filters.Header{Name: "X-Sluice-Bayes", Value: "Ham"})
			received := append([]filters.Header(nil), m.Headers...)

			p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: 5 * time.Second, OnFailure: filters.FailAccept}}, nil)
			var out filters.Outcome
			for _, stage := range []filters.Stage{filters.StageHeaders, filters.StageEOM} {
				if f.Needs().Stages.Has(stage) {
					out.Add(p.Run(context.Background(), stage, m))
				}
			}
			if out.Action != filters.Continue {
				t.Fatalf("outcome %s, want continue", out.Action)
			}
			var got []string
			for _, h := range filters.ApplyEdits(received, out.Edits) {
				if strings.EqualFold(h.Name, "X-Sluice-Bayes") {
					got = append(got, h.Value)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("delivered X-Sluice-Bayes fields %q, want %d (edits %+v)", got, len(tc.want), out.Edits)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("field %d is %q, want it to start with %q", i, got[i], w)
				}
			}
			for _, h := range m.Headers {
				if strings.EqualFold(h.Name, "X-Sluice-Bayes") && strings.HasPrefix(h.Value, "Ham") {
					t.Errorf("a later filter (the archive) still reads the forged field %q", h.Value)
				}
			}
		})
	}
}

func TestSizeSkip(t *testing.T) {
	st := trainedStore(t)
	obs := &recorder{}
	f := newFilter(t, st, "max_size: 200", obs)
	v := check(t, f, spamMessage())
	got := added(v, "X-Sluice-Bayes")
	if v.Action != filters.Continue || !regexp.MustCompile(`^Skipped, size=\d+, max_size=200, queue_id=4Q1SPAM, version=1\.2\.3$`).MatchString(got) {
		t.Errorf("verdict %+v, header %q", v, got)
	}
	if obs.skipped != 1 || len(obs.classified) != 0 || fmt.Sprint(obs.skipReasons) != "[size]" {
		t.Errorf("observer: %+v", obs)
	}
	// max_size: 0 is no limit at all.
	f = newFilter(t, nopCloser{st}, "max_size: 0", nil)
	if v := check(t, f, spamMessage()); v.Action != filters.Reject {
		t.Errorf("max_size 0: %s", v.Action)
	}
}

// A message larger than max_size is not read, so a body that could not be
// stored completely (the spill directory's disk full, which hits large
// messages first) does not matter to it: it is skipped as too large, not
// failed for on_failure to refuse. The lost bytes count in its size.
func TestSizeSkipIncompleteBody(t *testing.T) {
	st := trainedStore(t)
	obs := &recorder{}
	f := newFilter(t, st, "max_size: 200", obs)
	m := spamMessage()
	b := filters.NewBody(0, filepath.Join(t.TempDir(), "gone", "spill"))
	b.Write([]byte(strings.Repeat("x", 500)))
	if b.Err() == nil {
		t.Fatal("body did not break")
	}
	m.Body = b
	v, err := f.Check(context.Background(), filters.StageEOM, m)
	if err != nil {
		t.Fatalf("Check: %v; want the message skipped as too large", err)
	}
	if got := added(v, "X-Sluice-Bayes"); v.Action != filters.Continue || !regexp.MustCompile(`^Skipped, size=\d+, max_size=200, queue_id=4Q1SPAM, version=1\.2\.3$`).MatchString(got) {
		t.Errorf("verdict %+v, header %q; want the size skip", v, got)
	}
	if fmt.Sprint(obs.skipReasons) != "[size]" {
		t.Errorf("observer: %+v", obs)
	}
	// Within max_size the broken body is still a failure: the part
	// missing may hold what makes the message spam.
	m = spamMessage()
	b = filters.NewBody(0, filepath.Join(t.TempDir(), "gone", "spill"))
	b.Write([]byte("x"))
	m.Body = b
	f = newFilter(t, nopCloser{st}, "max_size: 100000", nil)
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err == nil {
		t.Error("an incomplete body within max_size was classified; want a failure")
	}
}

// An empty store knows nothing: every message is unsure, with the reason,
// and an unsure message is only tagged.
func TestNotEnoughTraining(t *testing.T) {
	st, err := classifier.OpenBolt(filepath.Join(t.TempDir(), "empty.db"), classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, st, "", nil)
	v := check(t, f, spamMessage())
	if v.Action != filters.Continue || !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Unsure, spamicity=") {
		t.Fatalf("verdict %+v", v)
	}
	if !strings.Contains(v.Reason, "bayes: unsure") || !strings.Contains(v.Reason, "not enough training") {
		t.Errorf("reason %q does not say why", v.Reason)
	}
}

// A minimum turned off (min_spam: 0) is no minimum of -1: the reason of
// an unsure verdict for want of training names what the store must learn,
// as the configuration says it, and never a negative count.
func TestNotEnoughTrainingReasonWithMinimumOff(t *testing.T) {
	f := newFilter(t, trainedStore(t), "{min_spam: 0, min_ham: 100}", nil)
	v := check(t, f, spamMessage())
	if want := "not enough training: 14 spam and 14 ham learned, need 0 and 100"; !strings.HasSuffix(v.Reason, ": "+want) {
		t.Errorf("reason %q, want it to end in %q", v.Reason, want)
	}
	f = newFilter(t, trainedStore(t), "{min_spam: 100, min_ham: 0}", nil)
	v = check(t, f, spamMessage())
	if want := "not enough training: 14 spam and 14 ham learned, need 100 and 0"; !strings.HasSuffix(v.Reason, ": "+want) {
		t.Errorf("reason %q, want it to end in %q", v.Reason, want)
	}
}

// failingStore fails every lookup, as a store on a broken disk would.
type failingStore struct{ classifier.Store }

var errDisk = errors.New("read tokens: input/output error")

func (failingStore) Lookup(context.Context, []string) (classifier.Totals, []classifier.Counts, error) {
	return classifier.Totals{}, nil, errDisk
}

// A store error is a filter failure: the step's failure policy decides.
func TestStoreErrorFollowsPolicy(t *testing.T) {
	st := trainedStore(t)
	for _, tc := range []struct {
		policy filters.FailurePolicy
		action filters.Action
		reply  string
	}{
		{filters.FailTempfail, filters.Tempfail, "451 4.3.0 Temporary filter failure, try again later"},
		{filters.FailAccept, filters.Continue, ""},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			f := newFilter(t, failingStore{nopCloser{st}}, "", nil)
			if _, err := f.Check(context.Background(), filters.StageEOM, spamMessage()); !errors.Is(err, errDisk) {
				t.Fatalf("Check error %v, want the store's", err)
			}
			p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: 5 * time.Second, OnFailure: tc.policy}}, nil)
			res := p.Run(context.Background(), filters.StageEOM, spamMessage())
			if res.Verdict.Action != tc.action || len(res.Decisions) != 1 || res.Decisions[0].Failure != filters.FailureError {
				t.Fatalf("result %+v", res)
			}
			if tc.reply != "" && res.Verdict.Reply.String() != tc.reply {
				t.Errorf("reply %v", res.Verdict.Reply)
			}
			if len(res.Verdict.Edits) != 0 {
				t.Errorf("a failed classification added %+v", res.Verdict.Edits)
			}
		})
	}
	st.Close()
}

func TestIncompleteBodyIsAnError(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, "", nil)
	m := spamMessage()
	// A spill directory whose parent is gone too: a body makes a
	// removed spill directory again, but not its parents.
	b := filters.NewBody(0, filepath.Join(t.TempDir(), "gone", "spill"))
	b.Write([]byte("spill fails"))
	if b.Err() == nil {
		t.Fatal("body did not break")
	}
	m.Body = b
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("error %v", err)
	}
}

func TestAutolearn(t *testing.T) {
	st := trainedStore(t)
	obs := &recorder{}
	f := newFilter(t, st, "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}", obs)
	before, _ := st.Stats(context.Background())
	v := check(t, f, spamMessage())
	if h := added(v, "X-Sluice-Bayes"); !strings.HasSuffix(h, ", autolearn=spam") {
		t.Errorf("header %q does not record the auto-learning", h)
	}
	v = check(t, f, hamMessage())
	if h := added(v, "X-Sluice-Bayes"); !strings.HasSuffix(h, ", autolearn=ham") {
		t.Errorf("header %q does not record the auto-learning", h)
	}
	after, _ := st.Stats(context.Background())
	if after.Spam != before.Spam+1 || after.Ham != before.Ham+1 {
		t.Errorf("totals %+v -> %+v", before.Totals, after.Totals)
	}
	// The same message again is already learned: nothing changes and the
	// header says nothing.
	v = check(t, f, spamMessage())
	if h := added(v, "X-Sluice-Bayes"); strings.Contains(h, "autolearn") {
		t.Errorf("relearned: %q", h)
	}
	if obs.autolearned["spam"] != 1 || obs.autolearned["ham"] != 1 {
		t.Errorf("observer: %+v", obs.autolearned)
	}
	// Off by default.
	f = newFilter(t, nopCloser{st}, "spam: {action: tag}", nil)
	m := spamMessage()
	m.Headers[2].Value = "Another free casino bonus"
	if h := added(check(t, f, m), "X-Sluice-Bayes"); strings.Contains(h, "autolearn") {
		t.Errorf("auto-learned without autolearn: %q", h)
	}
}

// The filter fits the n-gram model again by itself, within a refit
// interval of a change of the learned messages, whoever made it: its own
// auto-learning, or "sluice train --no-refit" beside it. Nothing changed,
// nothing is fitted; with refit 0s, nothing ever is. Without it, what the
// daemon learns would reach the token counts but never the model.
func TestRefit(t *testing.T) {
	ctx := context.Background()
	fitted := func(st classifier.Store) int {
		t.Helper()
		m, _, err := classifier.StoredModel(ctx, st)
		if err != nil || m == nil {
			t.Fatalf("stored model %v, %v", m, err)
		}
		return m.Spam + m.Ham
	}
	// A fit takes 3 to 5 s under -race on a loaded machine; the bounds
	// below are for a filter that never fits or never logs.
	waitFitted := func(st classifier.Store, want int, log *lockedBuffer) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for fitted(st) != want {
			if time.Now().After(deadline) {
				t.Fatalf("the model is still fitted on %d messages after 60 s, want %d; log:\n%s", fitted(st), want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	newFilterLog := func(st classifier.Store, opts string, log *lockedBuffer) *bayes.Filter {
		env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(log, nil)), StateDir: t.TempDir()}
		f, err := bayes.New(env, fixtureOptions(t, "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}\n"+opts), "1.2.3", st)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	const refitted = "n-gram model fitted again"
	// The filter logs a fit after storing the model and handing the
	// fit's memory back to the system, which takes a few hundred ms of
	// its own on a busy machine: the stored model comes before the line.
	waitRefits := func(want int, log *lockedBuffer) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for strings.Count(log.String(), refitted) < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d refits logged after 60 s, want %d; log:\n%s", strings.Count(log.String(), refitted), want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	st := trainedStore(t)
	before := fitted(st)
	var log lockedBuffer
	f := newFilterLog(st, "refit: 20ms", &log)
	// Nothing learned since the model was fitted: no fit, however many
	// intervals pass.
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(log.String(), refitted); n != 0 {
		t.Fatalf("%d refits with nothing learned; log:\n%s", n, log.String())
	}
	// Auto-learned.
	if h := added(check(t, f, spamMessage()), "X-Sluice-Bayes"); !strings.HasSuffix(h, ", autolearn=spam") {
		t.Fatalf("not auto-learned: %q", h)
	}
	waitFitted(st, before+1, &log)
	// Learned beside the daemon without a fit, as "sluice train
	// --no-refit" does.
	c := classifier.New(st, classifier.Params{})
	op := c.PrepareBytes([]byte("From: carol@lab.example\r\nSubject: lunch\r\n\r\nLunch at noon on friday?\r\n"), classifier.Ham, false)
	if out, err := c.Learn(ctx, []classifier.LearnOp{op}); err != nil || out[0] != classifier.Learned {
		t.Fatalf("learn: %v, %v", out, err)
	}
	waitFitted(st, before+2, &log)
	waitRefits(2, &log)
	// Current again: no more fits.
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(log.String(), refitted); n != 2 {
		t.Errorf("%d refits for two changes, want 2; log:\n%s", n, log.String())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// refit: 0s leaves the model to "sluice db refit".
	st2 := trainedStore(t)
	before = fitted(st2)
	var log2 lockedBuffer
	f = newFilterLog(st2, "refit: 0s", &log2)
	if h := added(check(t, f, spamMessage()), "X-Sluice-Bayes"); !strings.HasSuffix(h, ", autolearn=spam") {
		t.Fatalf("not auto-learned: %q", h)
	}
	time.Sleep(200 * time.Millisecond)
	if n := fitted(st2); n != before || strings.Contains(log2.String(), refitted) {
		t.Errorf("refit 0s: the model was fitted again (on %d messages, %d before); log:\n%s", n, before, log2.String())
	}
}

// Auto-learning never moves a message a user has trained as the other
// class: a copy arriving again (to another recipient, say) that still
// scores as spam is tagged, not learned, and the user's training stays.
func TestAutolearnKeepsManualTraining(t *testing.T) {
	ctx := context.Background()
	st := trainedStore(t)
	m := spamMessage()
	raw, err := io.ReadAll(m.Raw())
	if err != nil {
		t.Fatal(err)
	}
	// The training by hand, recorded under the message's digest. Its
	// tokens are left out: in a store of a dozen fixtures they would tip
	// the message to unsure, where in a real store, trained on thousands
	// of messages, one message more changes little.
	op := classifier.New(st, classifier.Params{}).PrepareBytes(raw, classifier.Ham, false)
	op.Tokens, op.Features = nil, nil
	if out, err := st.Learn(ctx, []classifier.LearnOp{op}); err != nil || out[0] != classifier.Learned {
		t.Fatalf("training by hand: %v, %v", out, err)
	}
	before, _ := st.Stats(ctx)
	obs := &recorder{}
	f := newFilter(t, st, "spam: {action: tag}\nautolearn: {spam: 0.9}", obs)
	h := added(check(t, f, spamMessage()), "X-Sluice-Bayes")
	if !strings.HasPrefix(h, "Spam, spamicity=0.9") {
		t.Fatalf("header %q: the message must still score as spam for this test", h)
	}
	if strings.Contains(h, "autolearn") {
		t.Errorf("header %q: auto-learned a message trained by hand as ham", h)
	}
	after, _ := st.Stats(ctx)
	if after.Totals != before.Totals {
		t.Errorf("totals %+v -> %+v", before.Totals, after.Totals)
	}
	if len(obs.autolearned) != 0 {
		t.Errorf("observer: %+v", obs.autolearned)
	}
	var class classifier.Class
	err = st.WalkDigests(ctx, func(d classifier.DigestClass) error {
		if d.Digest == classifier.MessageDigest(raw) {
			class = d.Class
		}
		return nil
	})
	if err != nil || class != classifier.Ham {
		t.Errorf("message learned as %v (%v), want ham", class, err)
	}
}

// Nothing is auto-learned into a store that holds part of an import that
// has not finished, as train refuses it; the message is still classified
// and tagged.
func TestNoAutolearnIntoIncompleteImport(t *testing.T) {
	ctx := context.Background()
	st := trainedStore(t)
	if err := st.SetMeta(ctx, classifier.MetaImporting, "2026-12-05T20:00:00Z"); err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, st, "spam: {action: tag}\nautolearn: {spam: 0.9, ham: 0.1}", nil)
	before, _ := st.Stats(ctx)
	for _, m := range []*filters.Message{spamMessage(), hamMessage()} {
		h := added(check(t, f, m), "X-Sluice-Bayes")
		if h == "" || strings.Contains(h, "autolearn") {
			t.Errorf("header %q: want a verdict and no auto-learning", h)
		}
	}
	if after, _ := st.Stats(ctx); after.Totals != before.Totals {
		t.Errorf("totals %+v -> %+v: learned into a half-imported store", before.Totals, after.Totals)
	}
}

// A verdict field of a configured name is left out as the default one is.
// A message auto-learned as spam at SMTP time (without the field) and
// retrained as ham from the mailbox (with it, as the MTA delivered it) is
// moved, not learned a second time, and the field gives no token: the
// classifier of "sluice train" (NewClassifier with the same options)
// tokenises the delivered copy as the daemon did the message it learned.
func TestCustomHeaderLeftOutWhenRetrained(t *testing.T) {
	ctx := context.Background()
	st := trainedStore(t)
	opts := "header: {name: X-Junk-Verdict}\nspam: {action: tag}\nautolearn: {spam: 0.9}"
	f := newFilter(t, st, opts, nil)
	m := spamMessage()
	v := check(t, f, m)
	if h := added(v, "X-Junk-Verdict"); !strings.HasSuffix(h, ", autolearn=spam") {
		t.Fatalf("X-Junk-Verdict %q: not auto-learned", h)
	}
	asReceived, err := io.ReadAll(m.Raw())
	if err != nil {
		t.Fatal(err)
	}
	m.Headers = filters.ApplyEdits(m.Headers, v.Edits)
	asDelivered, err := io.ReadAll(m.Raw())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(asDelivered), "\r\nX-Junk-Verdict: Spam, spamicity=") {
		t.Fatalf("delivered message without the verdict field:\n%s", asDelivered)
	}

	c, err := bayes.NewClassifier(ctx, st, options(t, opts))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Tokenizer()
	if got, want := tok.TokenizeBytes(asDelivered).Tokens, tok.TokenizeBytes(asReceived).Tokens; !slices.Equal(got, want) {
		extra := slices.DeleteFunc(slices.Clone(got), func(s string) bool { return slices.Contains(want, s) })
		t.Errorf("tokens of the delivered copy not in the message as received: %q", extra)
	}
	before, _ := st.Stats(ctx)
	op := c.PrepareBytes(asDelivered, classifier.Ham, false)
	for _, tok := range op.Tokens {
		if strings.Contains(tok, "junk-verdict") {
			t.Errorf("the verdict field is learned as %q", tok)
		}
	}
	out, err := c.Learn(ctx, []classifier.LearnOp{op})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := st.Stats(ctx)
	if out[0] != classifier.Moved || after.Spam != before.Spam-1 || after.Ham != before.Ham+1 {
		t.Errorf("retrained as ham: %v, totals %+v -> %+v", out[0], before.Totals, after.Totals)
	}
}

// slowLearnStore answers lookups at once, but its writes outlast any
// deadline: a Redis store under write load (its write_timeout defaults to
// 30 s, a filter's timeout to 10 s).
type slowLearnStore struct{ classifier.Store }

func (slowLearnStore) Learn(ctx context.Context, _ []classifier.LearnOp) ([]classifier.Outcome, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Auto-learning that the store is too slow to finish gives up before the
// filter's deadline: the verdict reached in time stands, rather than the
// pipeline's timeout and on_failure deciding, and the header does not
// claim the message was learned.
func TestSlowAutolearnKeepsVerdict(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, slowLearnStore{nopCloser{st}}, "autolearn: {spam: 0.9}", nil)
	p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: time.Second, OnFailure: filters.FailAccept}}, nil)
	res := p.Run(context.Background(), filters.StageEOM, spamMessage())
	if res.Verdict.Action != filters.Reject {
		d := res.Decisions[0]
		t.Fatalf("verdict %s (failure %q: %v), want reject", res.Verdict.Action, d.Failure, d.Err)
	}
}

// recorder is an Observer.
type recorder struct {
	mu          sync.Mutex
	classified  []string
	skipped     int
	skipReasons []string // BayesSkipped reasons, in order
	autolearned map[string]int
	learnFailed map[string]int // BayesAutolearnFailed, by class
	stores      []classifier.Stats
	ngram       [][2]int // spam and ham of the model in use, per report
	incomplete  []bool   // BayesImportIncomplete reports
	events      []string // BayesFilter and BayesStore calls, in order
}

func (r *recorder) BayesClassified(filter, verdict string, spamicity float64, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.classified = append(r.classified, fmt.Sprintf("%s %s %.2f %t", filter, verdict, spamicity, took > 0))
}

func (r *recorder) BayesSkipped(filter, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped++
	r.skipReasons = append(r.skipReasons, reason)
}

func (r *recorder) BayesAutolearned(filter, class string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.autolearned == nil {
		r.autolearned = map[string]int{}
	}
	r.autolearned[class]++
}

func (r *recorder) BayesAutolearnFailed(filter, class string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.learnFailed == nil {
		r.learnFailed = map[string]int{}
	}
	r.learnFailed[class]++
}

func (r *recorder) BayesStore(filter string, st classifier.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stores = append(r.stores, st)
	r.events = append(r.events, "store")
}

// BayesFilter records the filter's start and end among its reports.
func (r *recorder) BayesFilter(filter string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("filter %t", on))
}

func (r *recorder) BayesNgram(filter string, spam, ham int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ngram = append(r.ngram, [2]int{spam, ham})
}

func (r *recorder) BayesImportIncomplete(filter string, incomplete bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.incomplete = append(r.incomplete, incomplete)
}

func (r *recorder) importReports() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.incomplete)
}

func (r *recorder) resetImportReports() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.incomplete = nil
}

func (r *recorder) ngramCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ngram)
}

func (r *recorder) storeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.stores)
}

func TestObserver(t *testing.T) {
	st := trainedStore(t)
	obs := &recorder{}
	// Spam tagged, not rejected: its header shows the spamicity too.
	f := newFilter(t, st, "stats_interval: 20ms\nspam: {action: tag}", obs)
	// The observer gets each verdict with the spamicity the header
	// printed (to two places here).
	var want []string
	for _, m := range []*filters.Message{spamMessage(), hamMessage()} {
		hdr := added(check(t, f, m), "X-Sluice-Bayes")
		verdict, rest, _ := strings.Cut(hdr, ", spamicity=")
		num, _, _ := strings.Cut(rest, ",")
		s, err := strconv.ParseFloat(num, 64)
		if err != nil {
			t.Fatalf("header %q: no spamicity", hdr)
		}
		want = append(want, fmt.Sprintf("bayes %s %.2f true", strings.ToLower(verdict), s))
	}
	if want[0][:11] != "bayes spam " || want[1][:10] != "bayes ham " {
		t.Fatalf("verdicts %q, want spam then ham", want)
	}
	if fmt.Sprint(obs.classified) != fmt.Sprint(want) {
		t.Errorf("classified %q, want %q", obs.classified, want)
	}
	// Two rounds of reports, each the store's size and then the model's.
	deadline := time.Now().Add(5 * time.Second)
	for (obs.storeCount() < 2 || obs.ngramCount() < 2) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if obs.storeCount() < 2 || obs.ngramCount() < 2 {
		t.Fatalf("store measured %d times, model %d times in 5s at a 20ms interval", obs.storeCount(), obs.ngramCount())
	}
	s := obs.stores[0]
	if s.Tokens == 0 || s.Bytes == 0 || s.Spam != 14 || s.Ham != 14 {
		t.Errorf("store stats %+v", s)
	}
	// The n-gram model the filter averages in: fitted on all 28.
	obs.mu.Lock()
	if n := obs.ngram; len(n) == 0 || n[len(n)-1] != [2]int{14, 14} {
		t.Errorf("n-gram model reports %v, want the last [14 14]", n)
	}
	obs.mu.Unlock()
	// Close stops the measurements.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	n := obs.storeCount()
	time.Sleep(100 * time.Millisecond)
	if obs.storeCount() != n {
		t.Error("store still measured after Close")
	}
	// The filter's start comes before its first report and its end after
	// its last, so that its gauges can go with it.
	obs.mu.Lock()
	if ev := obs.events; len(ev) < 3 || ev[0] != "filter true" || ev[len(ev)-1] != "filter false" || slices.Contains(ev[1:len(ev)-1], "filter false") {
		t.Errorf("reports %q: want the filter on first and off last", ev)
	}
	obs.mu.Unlock()
}

// A reply text is sent as written, its placeholders filled in: one that
// could come out longer than a reply may be (400 characters) is refused
// when the configuration is read, counting each placeholder at its
// longest, rather than cut in the middle of a message. It used to pass
// config check and lose its end at run time.
func TestReplyLengthLimit(t *testing.T) {
	// {queue_id} and {version} count 64 characters, {spamicity} 8.
	fits := strings.Repeat("x", 400-64-len(" ")) + " {queue_id}"
	tooLong := strings.Repeat("x", 400-64) + " {queue_id}"
	dir := t.TempDir()
	env := filters.Env{Name: "bayes", StateDir: dir}
	_, err := bayes.Open(env, options(t, "spam: {action: reject, reply: '550 5.7.1 "+tooLong+"'}"), "v")
	if want := "its text comes to 401 characters with its placeholders at their longest ({queue_id}: 64), at most 400 allowed"; err == nil || !strings.HasPrefix(err.Error(), "spam.reply: ") || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
	_, err = bayes.Open(env, options(t, "unsure: {action: tempfail, reply: '451 4.7.1 {version} {spamicity} "+strings.Repeat("y", 400-64-8-2+1)+"'}"), "v")
	if want := "its text comes to 401 characters with its placeholders at their longest ({version}: 64, {spamicity}: 8)"; err == nil || !strings.HasPrefix(err.Error(), "unsure.reply: ") || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
	f := newFilter(t, trainedStore(t), "spam: {action: reject, reply: '550 5.7.1 "+fits+"'}", nil)
	v := check(t, f, spamMessage())
	if v.Reply == nil || !strings.HasSuffix(v.Reply.Text, " 4Q1SPAM") || len(v.Reply.Text) != 400-64+len("4Q1SPAM") {
		t.Errorf("reply %v, want the whole text with the queue id", v.Reply)
	}
}

// The limit is on the text as sent, not as written: a text over 400
// characters as written whose placeholders render shorter than their
// names ({verdict} at most 6 characters, {spamicity} 8) fits, and is
// sent whole. Such a text used to be refused when the configuration was
// read, as if its placeholders were sent as written.
func TestReplyLengthAsRendered(t *testing.T) {
	text := strings.Repeat("x", 400-len(" Unsure 0.000000")) + " {verdict} {spamicity}"
	if len(text) <= 400 {
		t.Fatalf("text of %d characters: want one over 400 as written", len(text))
	}
	f := newFilter(t, trainedStore(t), "spam: {action: reject, reply: '550 5.7.1 "+text+"'}", nil)
	v := check(t, f, spamMessage())
	want := regexp.MustCompile(`^x{384} Spam [01]\.[0-9]{6}$`)
	if v.Reply == nil || !want.MatchString(v.Reply.Text) {
		t.Errorf("reply %v, want the whole text with verdict and spamicity", v.Reply)
	}
	// One character more could come to 401 with an unsure verdict.
	_, err := bayes.Open(filters.Env{Name: "bayes", StateDir: t.TempDir()}, options(t, "spam: {action: reject, reply: '550 5.7.1 x"+text+"'}"), "v")
	if want := "its text comes to 401 characters with its placeholders at their longest ({verdict}: 6, {spamicity}: 8), at most 400 allowed"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
	// A text without placeholders is counted as it is written.
	_, err = bayes.Open(filters.Env{Name: "bayes", StateDir: t.TempDir()}, options(t, "spam: {action: reject, reply: '550 5.7.1 "+strings.Repeat("x", 401)+"'}"), "v")
	if want := "its text is 401 characters long, at most 400 allowed"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ opts, want string }{
		{"spam: {action: bounce}", `spam.action: unknown action "bounce"`},
		{"unsure: {action: tag, reply: '550 no'}", "unsure.reply: only reject and tempfail"},
		{"spam: {action: reject, reply: '451 4.7.1 later'}", "spam.reply:"},
		{"spam: {action: tempfail, reply: '550 5.7.1 no'}", "does not fit action tempfail"},
		{"spam: {action: reject, reply: '550 5.7.1 Spam {score}'}", "unknown placeholder {score}"},
		{"spam: {action: reject, reply: '550 4.7.1 Spam'}", `enhanced status "4.7.1": class 4 does not match reply code class 5`},
		{"spam: {action: tempfail, reply: '451 5.7.1 Later'}", `enhanced status "5.7.1": class 5 does not match reply code class 4`},
		{"spam: {action: reject, reply: '550 5.7.1'}", "spam.reply: reply \"550 5.7.1\": reply text is empty"},
		{"spam: {action: reject, reply: \"550 5.7.1 Spam\\r\\n550 again\"}", "control or non-ASCII byte 0x0d"},
		{"spam: {action: reject, reply: '550 5.7.1 Spam { see the FAQ }'}", "unknown placeholder { see the FAQ }"},
		{"header: {format: '{verdict} {level}'}", "header.format: unknown placeholder {level}"},
		{"header: {format: '{verdict}, spamicity={spamicity'}", "header.format: unclosed placeholder \"{spamicity\""},
		{"spam: {action: reject, reply: '550 5.7.1 Spam (score {spamicity)'}", "spam.reply: unclosed placeholder"},
		{"header: {format: \"Spam\\u00e9\"}", "header.format: byte 0xc3"},
		{"header:\n  format: |\n    {verdict} {spamicity}\n", "header.format: ends with a line break, which a header value cannot carry; a YAML block scalar (| or >) keeps its last one: write |- or >-"},
		{"header:\n  format: |\n    {verdict}\n    {spamicity}\n", "header.format: byte 0x0a at offset 9"},
		{"header: {name: 'X-Bad: name'}", "header.name:"},
		{"robx: 1.5", "robx"},
		{"robs: 0", "robs 0: must be above 0"},
		{"ham_cutoff: 0.95\nspam_cutoff: 0.9", "ham_cutoff"},
		{"min_spam: -3", "min_spam -3"},
		{"autolearn: {spam: 1.5}", "autolearn.spam"},
		{"autolearn: {ham: 1}", "autolearn.ham"},
		{"stats_interval: -1s", "stats_interval"},
		{"refit: -1m", "refit: must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.opts, func(t *testing.T) {
			dir := t.TempDir()
			env := filters.Env{Name: "bayes", StateDir: dir}
			_, err := bayes.Open(env, options(t, tc.opts), "v")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			// A bad config creates no store file.
			if _, err := os.Stat(filepath.Join(dir, bayes.DefaultDBName)); err == nil {
				t.Error("store created for a bad config")
			}
		})
	}
}

// YAML reads .nan and .inf as numbers. A range check written as "refuse
// what is below or above" lets NaN through, as no comparison with it
// holds: robx, robs .inf, min_dev or a cutoff of NaN made every message
// unsure (or never spam, or never ham) without a word, and an autolearn
// threshold of NaN turned auto-learning off. Each is refused as out of
// range, as docs/bayes.md says every option is.
func TestConfigRefusesNaNAndInf(t *testing.T) {
	for _, tc := range []struct{ opts, want string }{
		{"robx: .nan", "robx NaN"},
		{"robs: .nan", "robs NaN"},
		{"robs: .inf", "robs +Inf"},
		{"min_dev: .nan", "min_dev NaN"},
		{"spam_cutoff: .nan", "spam_cutoff NaN"},
		{"ham_cutoff: .nan", "ham_cutoff NaN"},
		{"autolearn: {spam: .nan}", "autolearn.spam NaN"},
		{"autolearn: {ham: .nan}", "autolearn.ham NaN"},
	} {
		t.Run(tc.opts, func(t *testing.T) {
			dir := t.TempDir()
			_, err := bayes.Open(filters.Env{Name: "bayes", StateDir: dir}, options(t, tc.opts), "v")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, bayes.DefaultDBName)); err == nil {
				t.Error("store created for a bad config")
			}
		})
	}
}

func TestParams(t *testing.T) {
	def := classifier.DefaultParams()
	p, err := options(t, "").Params(classifier.DialectSluice)
	if err != nil || p.RobX != def.RobX || p.SpamCutoff != def.SpamCutoff || p.MinSpam != def.MinSpam {
		t.Errorf("defaults: %+v %v", p, err)
	}
	bogo := classifier.BogofilterParams()
	p, err = options(t, "").Params(classifier.DialectBogofilter)
	if err != nil || !reflect.DeepEqual(p, bogo) {
		t.Errorf("bogofilter store: %+v %v", p, err)
	}
	p, err = options(t, "spam_cutoff: 0.99\nham_cutoff: 0\nmin_spam: 0\nmin_ham: 3\nmin_dev: 0\nmax_bytes: 64KiB\nmax_tokens: 500").Params(classifier.DialectSluice)
	if err != nil {
		t.Fatal(err)
	}
	// Explicit zeros are passed in the form the classifier reads as zero.
	if p.SpamCutoff != 0.99 || p.HamCutoff >= 0 || p.MinSpam >= 0 || p.MinHam != 3 || p.MinDev <= 0 || p.MinDev > 1e-9 ||
		p.Limits.MaxBytes != 64<<10 || p.Limits.MaxTokens != 500 {
		t.Errorf("params %+v", p)
	}
	// The verdict field is left out of the tokens and digests: a name
	// the classifier leaves out already adds nothing (the default
	// configuration tokenises as before), another is added.
	for _, tc := range []struct {
		opts string
		want []string
	}{
		{"", nil},
		{"header: {name: x-sluice-BAYES}", nil},
		{"header: {name: X-Bogosity}", nil},
		{"header: {name: X-Spam-Verdict}", nil},
		{"header: {name: X-Junk-Verdict}", []string{"X-Junk-Verdict"}},
	} {
		for _, d := range []classifier.Dialect{classifier.DialectSluice, classifier.DialectBogofilter} {
			p, err := options(t, tc.opts).Params(d)
			if err != nil || !slices.Equal(p.Limits.SkipFields, tc.want) {
				t.Errorf("%q, %s store: skip fields %q, want %q (%v)", tc.opts, d, p.Limits.SkipFields, tc.want, err)
			}
		}
	}
	// combine: split by default, fisher for a bogofilter store, either
	// when set, anything else refused.
	if p, _ := options(t, "").Params(classifier.DialectSluice); p.Combine != classifier.CombineSplit {
		t.Errorf("default combine %q", p.Combine)
	}
	if p, err := options(t, "combine: fisher").Params(classifier.DialectSluice); err != nil || p.Combine != classifier.CombineFisher {
		t.Errorf("combine: fisher: %q %v", p.Combine, err)
	}
	if p, err := options(t, "combine: split").Params(classifier.DialectBogofilter); err != nil || p.Combine != classifier.CombineSplit {
		t.Errorf("combine: split on a bogofilter store: %q %v", p.Combine, err)
	}
	if _, err := options(t, "combine: average").Params(classifier.DialectSluice); err == nil || !strings.Contains(err.Error(), `combine "average"`) {
		t.Errorf("combine: average: %v", err)
	}
}

func TestDBPath(t *testing.T) {
	if got := options(t, "").DBPath("/var/lib/sluice"); got != "/var/lib/sluice/bayes.db" {
		t.Errorf("default db %q", got)
	}
	if got := options(t, "db: /srv/tokens.db").DBPath("/var/lib/sluice"); got != "/srv/tokens.db" {
		t.Errorf("db %q", got)
	}
}

// Open creates the store at <state_dir>/bayes.db and Close releases it.
func TestOpenDefaultStore(t *testing.T) {
	dir := t.TempDir()
	f, err := bayes.Open(filters.Env{Name: "b", StateDir: dir}, bayes.Config{}, "v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bayes.db")); err != nil {
		t.Error(err)
	}
	if f.Name() != "b" || !f.Needs().Body || !f.Needs().Stages.Has(filters.StageEOM) {
		t.Errorf("name %q needs %+v", f.Name(), f.Needs())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// retriedSpam is the spam message at one attempt: Postfix gives mail from
// local clients without Message-Id and Date new ones at each, with the
// queue id and the time.
func retriedSpam(attempt int, qid string) *filters.Message {
	m := spamMessage()
	m.QueueID = qid
	m.Headers = append(m.Headers,
		filters.Header{Name: "Date", Value: fmt.Sprintf("Mon, 3 Mar 2025 10:0%d:00 +0100 (CET)", attempt)},
		filters.Header{Name: "Message-Id", Value: fmt.Sprintf("<2025030310%02d00.%s@mx.lab.example>", attempt, qid)})
	return m
}

// A message the filter tempfails is not taken: its sender sends it again,
// and Postfix gives a submission without Message-Id and Date (mail from
// local clients) new ones on each attempt, with the queue id and the time
// in them. Learning it at each attempt would learn one spam as many times
// as it was tried; it is learned when it is taken.
func TestAutolearnNotOnTempfail(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, "spam: {action: tempfail}\nautolearn: {spam: 0.9}", nil)
	before, _ := st.Stats(context.Background())
	for i, qid := range []string{"4Q1AAAA", "4Q1BBBB"} {
		if v := check(t, f, retriedSpam(i, qid)); v.Action != filters.Tempfail {
			t.Fatalf("attempt %d: verdict %+v, want tempfail", i+1, v)
		}
	}
	after, _ := st.Stats(context.Background())
	if after.Spam != before.Spam {
		t.Errorf("spam learned %d times over two attempts of one tempfailed message", after.Spam-before.Spam)
	}
}

// The same holds when an earlier filter of the stage (or its on_failure)
// has tempfailed the message already: the filter still runs, but the
// message is not taken whatever it decides.
func TestAutolearnNotWhenTempfailedBefore(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, st, "spam: {action: tag}\nautolearn: {spam: 0.9}", nil)
	before, _ := st.Stats(context.Background())
	refuse := &filtertest.Fixed{FilterName: "greylist", At: filters.StagesOf(filters.StageEOM),
		Verdict: filters.Verdict{Action: filters.Tempfail, Reason: "try again"}}
	p := filters.NewPipeline([]filters.Step{{Filter: refuse}, {Filter: f, Timeout: 5 * time.Second}}, nil)
	for i, qid := range []string{"4Q1AAAA", "4Q1BBBB"} {
		res := p.Run(context.Background(), filters.StageEOM, retriedSpam(i, qid))
		if res.Verdict.Action != filters.Tempfail || len(res.Decisions) != 2 || res.Decisions[1].Failure != "" {
			t.Fatalf("attempt %d: result %+v", i+1, res)
		}
	}
	after, _ := st.Stats(context.Background())
	if after.Spam != before.Spam {
		t.Errorf("spam learned %d times over two attempts of one tempfailed message", after.Spam-before.Spam)
	}
}

// A store that holds part of an import that has not finished (still
// running, or stopped) is used all the same: the daemon must keep passing
// mail. Building the filter (at start and at each reload) logs a warning
// that says when the import began; a whole store gets none.
func TestIncompleteImportWarned(t *testing.T) {
	for _, tc := range []struct {
		name  string
		began string
	}{
		{"whole store", ""},
		{"half imported", "2026-12-05T20:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := trainedStore(t)
			if tc.began != "" {
				if err := st.SetMeta(context.Background(), classifier.MetaImporting, tc.began); err != nil {
					t.Fatal(err)
				}
			}
			var log strings.Builder
			env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(&log, nil)), StateDir: t.TempDir()}
			f, err := bayes.New(env, options(t, "spam: {action: tag}"), "1.2.3", st)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			warned := strings.Contains(log.String(), "level=WARN") && strings.Contains(log.String(), "has not finished")
			if warned != (tc.began != "") || tc.began != "" && !strings.Contains(log.String(), tc.began) {
				t.Errorf("log:\n%s", log.String())
			}
			if v := check(t, f, spamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Spam,") {
				t.Errorf("verdict %+v, want the message classified as spam", v)
			}
		})
	}

	// A store that could not be read when the filter was built (Redis
	// down) is checked once it answers.
	st := trainedStore(t)
	defer st.Close()
	if err := st.SetMeta(context.Background(), classifier.MetaImporting, "2026-12-05T20:00:00Z"); err != nil {
		t.Fatal(err)
	}
	late := &lateStore{Store: nopCloser{st}}
	var log strings.Builder
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(&log, nil)), StateDir: t.TempDir()}
	f, err := bayes.New(env, options(t, "spam: {action: tag}"), "1.2.3", late)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if strings.Contains(log.String(), "has not finished") {
		t.Fatalf("warned before the store answered:\n%s", log.String())
	}
	late.up.Store(true)
	if v := check(t, f, spamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Spam,") {
		t.Errorf("verdict %+v, want the message classified as spam", v)
	}
	check(t, f, spamMessage())
	if n := strings.Count(log.String(), "has not finished"); n != 1 {
		t.Errorf("%d warnings once the store answered, want 1:\n%s", n, log.String())
	}
}

// lateStore is unavailable, as a Redis store that is down, until up is
// set.
type lateStore struct {
	classifier.Store
	up atomic.Bool
}

func (s *lateStore) Meta(ctx context.Context, key string) (string, error) {
	if !s.up.Load() {
		return "", fmt.Errorf("meta %s: %w", key, classifier.ErrUnavailable)
	}
	return s.Store.Meta(ctx, key)
}

// An import stopped while the daemon runs marks the store it uses, and
// nobody reloads: the filter looks for the mark each time it measures the
// store, warns once when it appears (not at every measurement), says when
// it goes, warns again for another import, and reports it for a gauge
// with every measurement.
func TestIncompleteImportNoticedWhileRunning(t *testing.T) {
	st := trainedStore(t)
	var log lockedBuffer
	obs := &recorder{}
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(&log, nil)), StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.New(env, options(t, "{stats_interval: 10ms, spam: {action: tag}}"), "1.2.3", st)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// waitReports waits for n more reports after the last one that says
	// incomplete.
	waitReports := func(incomplete bool, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			r := obs.importReports()
			if i := slices.Index(r, incomplete); i >= 0 && len(r)-i > n && !slices.Contains(r[i:], !incomplete) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatalf("no %d reports of incomplete=%t in 5s: %v", n+1, incomplete, obs.importReports())
	}
	setMark := func(began string) {
		t.Helper()
		obs.resetImportReports()
		if err := st.SetMeta(context.Background(), classifier.MetaImporting, began); err != nil {
			t.Fatal(err)
		}
	}
	warnings := func() int { return strings.Count(log.String(), "has not finished") }

	waitReports(false, 2)
	if n := warnings(); n != 0 {
		t.Fatalf("%d warnings on a whole store:\n%s", n, log.String())
	}
	setMark("2026-12-05T20:00:00Z")
	waitReports(true, 3)
	if n := warnings(); n != 1 || !strings.Contains(log.String(), "2026-12-05T20:00:00Z") {
		t.Errorf("%d warnings over several measurements, want 1 naming the import:\n%s", n, log.String())
	}
	if v := check(t, f, spamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Spam,") {
		t.Errorf("verdict %+v, want the message classified as spam", v)
	}
	setMark("")
	waitReports(false, 2)
	if !strings.Contains(log.String(), "the import into the store finished") || warnings() != 1 {
		t.Errorf("the mark went: log\n%s", log.String())
	}
	setMark("2026-12-05T21:00:00Z")
	waitReports(true, 2)
	if n := warnings(); n != 2 || !strings.Contains(log.String(), "2026-12-05T21:00:00Z") {
		t.Errorf("%d warnings after a second import, want 2:\n%s", n, log.String())
	}
}

// lockedBuffer is a log written by the filter's goroutines and read by
// the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The mark of an import names its process: while that process runs, the
// filter says the import is running, and when it dies with the import
// unfinished, the filter notices at its next measurement and warns again,
// now that the store will not be whole unless it is replaced.
func TestIncompleteImportInterruptedWhileRunning(t *testing.T) {
	importer := exec.Command("sleep", "60")
	if err := importer.Start(); err != nil {
		t.Fatal(err)
	}
	defer importer.Process.Kill()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	st := trainedStore(t)
	mark := fmt.Sprintf("2026-12-05T20:00:00Z pid=%d start=0 host=%s", importer.Process.Pid, host)
	if err := st.SetMeta(context.Background(), classifier.MetaImporting, mark); err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	obs := &recorder{}
	env := filters.Env{Name: "bayes", Logger: slog.New(slog.NewTextHandler(&log, nil)), StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.New(env, options(t, "stats_interval: 10ms"), "1.2.3", st)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	waitReports := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(obs.importReports()) < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitReports(3)
	running := fmt.Sprintf("still running, as pid %d", importer.Process.Pid)
	if n := strings.Count(log.String(), "has not finished"); n != 1 || !strings.Contains(log.String(), running) {
		t.Fatalf("%d warnings, want one that the import is %s:\n%s", n, running, log.String())
	}
	importer.Process.Kill()
	importer.Wait()
	obs.resetImportReports()
	waitReports(3)
	interrupted := fmt.Sprintf("interrupted: pid %d is gone", importer.Process.Pid)
	if n := strings.Count(log.String(), "has not finished"); n != 2 || !strings.Contains(log.String(), interrupted) {
		t.Errorf("%d warnings, want a second one that the import was %s:\n%s", n, interrupted, log.String())
	}
	if r := obs.importReports(); len(r) == 0 || !r[len(r)-1] {
		t.Errorf("reports %v, want the store still reported incomplete", r)
	}
}

// max_size bounds the message as the classifier would read it
// (Message.Raw). A line end inside a field's value that is not folding
// is read with a space after it (filters.AppendField); counting it
// without let a message one byte over the limit be classified.
func TestSizeSkipCountsTheMessageAsRead(t *testing.T) {
	st := trainedStore(t)
	m := spamMessage()
	m.Headers = append(m.Headers, filters.Header{Name: "X-Stray", Value: "a\nb\n"})
	raw, err := io.ReadAll(m.Raw())
	if err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, nopCloser{st}, fmt.Sprintf("max_size: %d", len(raw)-1), nil)
	want := fmt.Sprintf("Skipped, size=%d, max_size=%d, queue_id=4Q1SPAM, version=1.2.3", len(raw), len(raw)-1)
	if got := added(check(t, f, m), "X-Sluice-Bayes"); got != want {
		t.Errorf("one byte over max_size: header %q, want %q", got, want)
	}
	f = newFilter(t, nopCloser{st}, fmt.Sprintf("max_size: %d", len(raw)), nil)
	if v := check(t, f, m); v.Action != filters.Reject {
		t.Errorf("exactly max_size: %s, header %q; want it classified", v.Action, added(v, "X-Sluice-Bayes"))
	}
}

// A store that has learned too little (a new installation, or a db path
// with a typo, which opens a new empty store) makes every message unsure
// for want of training, not for its score. The unsure action must not
// then refuse or drop all mail: such messages are only tagged, as the
// documentation promises and as when the store is unavailable.
func TestNotEnoughTrainingOnlyTags(t *testing.T) {
	st, err := classifier.OpenBolt(filepath.Join(t.TempDir(), "empty.db"), classifier.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"reject", "tempfail", "discard", "quarantine"} {
		f := newFilter(t, nopCloser{st}, "unsure: {action: "+action+"}", nil)
		v := check(t, f, spamMessage())
		if v.Action != filters.Continue || !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Unsure, spamicity=") {
			t.Errorf("unsure.action %s on an untrained store: %s, header %q; want it only tagged", action, v.Action, added(v, "X-Sluice-Bayes"))
		}
		if !strings.Contains(v.Reason, "not enough training") {
			t.Errorf("unsure.action %s: reason %q does not say why", action, v.Reason)
		}
	}
	// Trained enough, the unsure action applies as configured.
	f := newFilter(t, nopCloser{trainedStore(t)}, "unsure: {action: reject}\nspam_cutoff: 1\nham_cutoff: 0", nil)
	if v := check(t, f, spamMessage()); v.Action != filters.Reject {
		t.Errorf("unsure.action reject on a trained store: %s", v.Action)
	}
}

// authed returns m as sent by a client that authenticated with SMTP AUTH:
// the MTA sends {auth_authen} from MAIL FROM on, among the message's
// macros.
func authed(m *filters.Message, user string) *filters.Message {
	m.Macros = map[string]string{"{auth_authen}": user, "{auth_type}": "PLAIN", "i": m.QueueID}
	return m
}

// A sender that authenticated (a user's own outgoing mail, through a
// submission service that shares smtpd_milters) is not classified by
// default: the store, trained on inbound mail, is not asked, no action is
// taken even for what it would call spam, and nothing is learned. The
// message gets the skip header in place of a forged one, and is counted
// as skipped for that reason.
func TestSkipAuthenticated(t *testing.T) {
	ctx := context.Background()
	st := trainedStore(t)
	obs := &recorder{}
	opts := "spam: {action: reject}\nautolearn: {spam: 0.5, ham: 0.5}"
	f := newFilter(t, nopCloser{st}, opts, obs)
	before, _ := st.Stats(ctx)
	m := authed(spamMessage(), "alice")
	m.Headers = append(m.Headers, filters.Header{Name: "X-Sluice-Bayes", Value: "Ham, forged"})
	v := check(t, f, m)
	want := "Skipped, authenticated, queue_id=4Q1SPAM, version=1.2.3"
	if got := added(v, "X-Sluice-Bayes"); v.Action != filters.Continue || got != want {
		t.Errorf("authenticated spam: %s, header %q; want continue with %q", v.Action, got, want)
	}
	if v.Reason != "bayes: skipped, sender authenticated" {
		t.Errorf("reason %q", v.Reason)
	}
	if len(v.Edits) != 2 || v.Edits[0].Kind != filters.DeleteHeader || v.Edits[0].Index != 1 {
		t.Errorf("edits %+v: want the forged field deleted, then ours added", v.Edits)
	}
	// Ham too: nothing is learned on either side.
	if got := added(check(t, f, authed(hamMessage(), "alice")), "X-Sluice-Bayes"); !strings.HasPrefix(got, "Skipped, authenticated, queue_id=4Q2HAM,") {
		t.Errorf("authenticated ham: header %q", got)
	}
	after, _ := st.Stats(ctx)
	if after.Totals != before.Totals {
		t.Errorf("store totals %+v -> %+v: an authenticated message was learned", before.Totals, after.Totals)
	}
	if len(obs.classified) != 0 || len(obs.autolearned) != 0 || fmt.Sprint(obs.skipReasons) != "[authenticated authenticated]" {
		t.Errorf("observer: classified %q, autolearned %v, skipped %q", obs.classified, obs.autolearned, obs.skipReasons)
	}

	// The macro set but empty, or absent: the message is classified and
	// refused as before.
	for _, m := range []*filters.Message{authed(spamMessage(), ""), spamMessage()} {
		if v := check(t, f, m); v.Action != filters.Reject {
			t.Errorf("unauthenticated spam (macros %v): %s, header %q; want reject", m.Macros, v.Action, added(v, "X-Sluice-Bayes"))
		}
	}
	// The macro as a connection macro (as "sluice test --macro" sets it),
	// without braces: found all the same.
	m = spamMessage()
	m.Conn = &filters.Conn{Macros: map[string]string{"auth_authen": "bob"}}
	if got := added(check(t, f, m), "X-Sluice-Bayes"); !strings.HasPrefix(got, "Skipped, authenticated,") {
		t.Errorf("connection macro auth_authen: header %q", got)
	}

	// skip_authenticated: false keeps the old behaviour: classified,
	// rejected, and learned.
	obs = &recorder{}
	f = newFilter(t, nopCloser{st}, opts+"\nskip_authenticated: false", obs)
	if v := check(t, f, authed(spamMessage(), "alice")); v.Action != filters.Reject {
		t.Errorf("skip_authenticated false: %s, header %q; want reject", v.Action, added(v, "X-Sluice-Bayes"))
	}
	if h := added(check(t, f, authed(hamMessage(), "alice")), "X-Sluice-Bayes"); !strings.HasPrefix(h, "Ham, spamicity=") || !strings.HasSuffix(h, ", autolearn=ham") {
		t.Errorf("skip_authenticated false, ham: header %q; want it classified and learned", h)
	}
	if obs.skipped != 0 || len(obs.classified) != 2 {
		t.Errorf("skip_authenticated false: observer skipped %d, classified %q", obs.skipped, obs.classified)
	}
	// skip_authenticated: true says the default.
	f = newFilter(t, nopCloser{st}, opts+"\nskip_authenticated: true", nil)
	if got := added(check(t, f, authed(spamMessage(), "alice")), "X-Sluice-Bayes"); got != want {
		t.Errorf("skip_authenticated true: header %q", got)
	}
}

// A custom header.format is for verdicts: the skip header of an
// authenticated sender is the fixed one, as for a message over max_size,
// and an unknown queue id reads "unknown".
func TestSkipAuthenticatedCustomFormat(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, nopCloser{st}, "header: {name: X-Bogosity, format: '{verdict}, tests=bogofilter, spamicity={spamicity}, version={version}'}\nmax_size: 100", nil)
	m := authed(spamMessage(), "alice")
	m.QueueID = ""
	if got, want := added(check(t, f, m), "X-Bogosity"), "Skipped, authenticated, queue_id=unknown, version=1.2.3"; got != want {
		t.Errorf("header %q, want %q", got, want)
	}
	// The size skip does the same, under the same format.
	if got := added(check(t, f, spamMessage()), "X-Bogosity"); !strings.HasPrefix(got, "Skipped, size=") {
		t.Errorf("size skip: header %q", got)
	}
}

// The authenticated sender's message is skipped without reading its body,
// so a body that could not be stored completely is no failure.
func TestSkipAuthenticatedIncompleteBody(t *testing.T) {
	st := trainedStore(t)
	f := newFilter(t, nopCloser{st}, "", nil)
	m := authed(spamMessage(), "alice")
	b := filters.NewBody(0, filepath.Join(t.TempDir(), "gone", "spill"))
	b.Write([]byte("spill fails"))
	if b.Err() == nil {
		t.Fatal("body did not break")
	}
	m.Body = b
	v, err := f.Check(context.Background(), filters.StageEOM, m)
	if err != nil || !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Skipped, authenticated,") {
		t.Errorf("verdict %+v, error %v; want the skip", v, err)
	}
}

// RFC 5322 2.1.1: a line of a message must not be longer than 998
// characters. Folding breaks only at spaces, so a header.format with a
// word (text between spaces, placeholders filled in) too long for one
// line, or a header.name that leaves no room for one, would make the MTA
// write a field no folding can bring under the limit; it is refused when
// the configuration is read. A format just inside the limit is taken, and
// its longest line is within it.
func TestHeaderLineLimit(t *testing.T) {
	for _, tc := range []struct {
		name, opts, want string // want: "" for accepted, else part of the error
	}{
		{"long literal word", "header: {format: '{verdict} " + strings.Repeat("x", 1000) + "'}", "header.format: a word of"},
		{"long word with placeholders", "header: {format: '{verdict}," + strings.Repeat("x", 900) + "{queue_id}{version}'}", "header.format: a word of"},
		{"long name", "header: {name: X-" + strings.Repeat("n", 950) + "}", "header.name: 952 characters leave no room"},
		{"word one over the limit", "header: {format: '{verdict} " + strings.Repeat("x", 998-len("X-Sluice-Bayes: ")+1) + "'}", "header.format: a word of 983 characters"},
		{"word at the limit", "header: {format: '{verdict} " + strings.Repeat("x", 998-len("X-Sluice-Bayes: ")) + " end'}", ""},
		// The last word gets the comma of ", autolearn=ham".
		{"last word at the limit", "header: {format: '{verdict} " + strings.Repeat("x", 998-len("X-Sluice-Bayes: ")) + "'}", "header.format: the last word, of 982 characters"},
		{"last word at the limit, with its comma", "header: {format: '{verdict} " + strings.Repeat("x", 998-len("X-Sluice-Bayes: ")-1) + "'}", ""},
		{"default", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := bayes.Open(filters.Env{Name: "bayes", StateDir: dir, Logger: slog.New(slog.DiscardHandler)}, options(t, tc.opts), "1.2.3")
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want it to contain %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v := check(t, f, hamMessage())
			if len(v.Edits) != 1 {
				t.Fatalf("edits %+v", v.Edits)
			}
			e := v.Edits[0]
			for i, l := range strings.Split(e.Name+": "+e.Value, "\n") {
				if len(l) > 998 {
					t.Errorf("line %d of the field is %d characters long", i, len(l))
				}
			}
		})
	}
}

// The comma the auto-learning note puts after the format's last word
// counts: a last word one short of the line limit gives a line at the
// limit with the note, never one over it.
func TestHeaderLineLimitWithAutolearn(t *testing.T) {
	last := strings.Repeat("x", 998-len("X-Sluice-Bayes: ")-1)
	f := newFilter(t, trainedStore(t), "autolearn: {ham: 0.3}\nheader: {format: '{verdict} "+last+"'}", nil)
	v := check(t, f, hamMessage())
	if h := added(v, "X-Sluice-Bayes"); !strings.HasSuffix(h, last+", autolearn=ham") {
		t.Fatalf("header %q, want the note after the last word", h)
	}
	var folded string
	for _, e := range v.Edits {
		if e.Kind == filters.AddHeader && e.Name == "X-Sluice-Bayes" {
			folded = e.Value
		}
	}
	for i, l := range strings.Split("X-Sluice-Bayes: "+folded, "\n") {
		if len(l) > 998 {
			t.Errorf("line %d of the field is %d characters long", i, len(l))
		}
	}
}

// autolearn.spam and autolearn.ham are inclusive, as docs/bayes.md says
// ("at or above", "at or below"): a message whose spamicity is exactly
// the threshold is learned, and one with a threshold the least step past
// its spamicity is not, and its header says nothing of it.
func TestAutolearnAtThreshold(t *testing.T) {
	spamicity := func(m *filters.Message) float64 {
		st := trainedStore(t)
		defer st.Close()
		res, err := classifier.New(st, classifier.Params{}).Classify(context.Background(), m.Raw())
		if err != nil {
			t.Fatal(err)
		}
		return res.Spamicity
	}
	spamAt, hamAt := spamicity(spamMessage()), spamicity(hamMessage())
	if spamAt < 0.9 || hamAt > 0.1 {
		t.Fatalf("fixtures score %v and %v, want clear spam and ham", spamAt, hamAt)
	}
	for _, tc := range []struct {
		name      string
		m         *filters.Message
		learnSpam *float64
		learnHam  *float64
		learned   bool
	}{
		{"spam at autolearn.spam", spamMessage(), &spamAt, nil, true},
		{"spam just below autolearn.spam", spamMessage(), ptr(math.Nextafter(spamAt, 2)), nil, false},
		{"ham at autolearn.ham", hamMessage(), nil, &hamAt, true},
		{"ham just above autolearn.ham", hamMessage(), nil, ptr(math.Nextafter(hamAt, -1)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := trainedStore(t)
			obs := &recorder{}
			cfg := fixtureOptions(t, "spam: {action: tag}")
			cfg.Autolearn = bayes.AutolearnConfig{Spam: tc.learnSpam, Ham: tc.learnHam}
			env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir(), Observer: obs}
			if tc.learnSpam != nil && *tc.learnSpam > 1 {
				t.Skipf("spamicity %v leaves no threshold above it", spamAt)
			}
			f, err := bayes.New(env, cfg, "1.2.3", st)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before, _ := st.Stats(context.Background())
			h := added(check(t, f, tc.m), "X-Sluice-Bayes")
			after, _ := st.Stats(context.Background())
			learned := after.Spam+after.Ham != before.Spam+before.Ham
			if learned != tc.learned || strings.Contains(h, ", autolearn=") != tc.learned {
				t.Errorf("learned %t, header %q; want learned %t", learned, h, tc.learned)
			}
			if n := obs.autolearned["spam"] + obs.autolearned["ham"]; (n == 1) != tc.learned {
				t.Errorf("sluice_bayes_autolearned_total counted %d", n)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// sluice config check (Env.CheckOnly) refuses a db that is no token store
// (bogofilter's wordlist.db, a bogoutil dump, a file cut to nothing but
// text), as the daemon does when it starts or reloads: a check that
// passes it let the next start fail, or a reload keep the old
// configuration. It reads the file only: the file is left as it was and
// no lock file is made. A store, a store a writer holds, and an empty
// file (which the daemon makes a store of) pass.
func TestConfigCheckRefusesWhatTheDaemonRefuses(t *testing.T) {
	dir := t.TempDir()
	text := []byte("spam 12 0 20240101\nham 0 7 20240101\n")
	for _, tc := range []struct {
		name    string
		content []byte // nil: a store made by classifier.Open
		bad     bool
	}{
		{"bogoutil dump", text, true},
		{"zeros", make([]byte, 32768), true},
		{"store", nil, false},
		{"empty file", []byte{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".db")
			if tc.content == nil {
				st, err := classifier.Open(db)
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
				os.Remove(db + ".lock")
			} else if err := os.WriteFile(db, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(db)
			env := filters.Env{Name: "bayes", StateDir: dir, Logger: slog.New(slog.DiscardHandler)}
			cfg := options(t, "db: "+db)
			env.CheckOnly = true
			_, checkErr := bayes.Open(env, cfg, "1")
			if after, _ := os.ReadFile(db); string(after) != string(before) {
				t.Error("config check changed the file")
			}
			if _, err := os.Stat(db + ".lock"); err == nil {
				t.Error("config check made a lock file")
			}
			if (checkErr != nil) != tc.bad {
				t.Fatalf("config check: %v; want an error: %t", checkErr, tc.bad)
			}
			env.CheckOnly = false
			f, openErr := bayes.Open(env, cfg, "1")
			if openErr == nil {
				f.Close()
			}
			if (openErr != nil) != tc.bad {
				t.Fatalf("daemon: %v; want an error: %t", openErr, tc.bad)
			}
			if tc.bad && !strings.Contains(checkErr.Error(), db) {
				t.Errorf("config check error %q does not name the file", checkErr)
			}
		})
	}
}

// The daemon does not follow a symbolic link at the store's path or at
// its lock file that neither root nor its own user owns (see
// classifier.OpenBolt), so sluice config check, run as the daemon's
// user, must not pass one either: the next start or reload would fail
// after the check said the configuration was fine. It names the link,
// and creates nothing where it points.
func TestConfigCheckRefusesOtherUsersLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a link owned by another user needs root to make")
	}
	for _, suffix := range []string{"", ".lock"} {
		t.Run("link at db"+suffix, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "bayes.db")
			target := filepath.Join(dir, "victim")
			if err := os.Symlink(target, db+suffix); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(db+suffix, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			env := filters.Env{Name: "bayes", StateDir: dir, Logger: slog.New(slog.DiscardHandler), CheckOnly: true}
			_, err := bayes.Open(env, options(t, "db: "+db), "1")
			if err == nil || !strings.Contains(err.Error(), "neither root nor this user") {
				t.Errorf("config check: %v, want a refusal of the other user's link", err)
			}
			env.CheckOnly = false
			if f, err := bayes.Open(env, options(t, "db: "+db), "1"); err == nil {
				f.Close()
				t.Errorf("the daemon opened the store through the other user's link")
			}
			if _, err := os.Lstat(target); err == nil {
				t.Errorf("the link's target was created")
			}
		})
	}
}
