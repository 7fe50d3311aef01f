package senders

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/filters"
)

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu       sync.Mutex
	loaded   []int
	watch    [][]string
	reloads  []bool
	newByPat map[string]int
	filters  int // built and not closed
}

func (r *recorder) SenderRulesLoaded(filter string, rules int, watch []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loaded = append(r.loaded, rules)
	r.watch = append(r.watch, watch)
}

func (r *recorder) SenderRulesReloaded(filter string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloads = append(r.reloads, ok)
}

func (r *recorder) SenderFilter(filter string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.filters++
	} else {
		r.filters--
	}
}

func (r *recorder) SenderWatchNewDomain(filter, pattern string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.newByPat == nil {
		r.newByPat = map[string]int{}
	}
	r.newByPat[pattern]++
}

func (r *recorder) newDomains(pattern string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.newByPat[pattern]
}

func (r *recorder) reloadResults() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.reloads...)
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testFilter struct {
	*Filter
	obs   *recorder
	log   *logBuffer
	state string
}

// writeFile replaces path by a complete new file, as a careful
// administrator does (a file written in place: writeInPlace).
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newTestFilter builds a filter on cfg in a fresh state directory.
func newTestFilter(t *testing.T, cfg Config, shared *Shared, state string) *testFilter {
	t.Helper()
	if state == "" {
		state = t.TempDir()
	}
	tf := &testFilter{obs: &recorder{}, log: &logBuffer{}, state: state}
	env := filters.Env{
		Name:     "senders",
		Logger:   slog.New(slog.NewTextHandler(tf.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StateDir: state,
		Observer: tf.obs,
	}
	f, err := New(env, cfg, shared)
	if err != nil {
		t.Fatal(err)
	}
	tf.Filter = f
	t.Cleanup(func() { f.Close() })
	return tf
}

func message(from, helo, host string, headers ...string) *filters.Message {
	m := &filters.Message{
		Conn: &filters.Conn{Hostname: host, Helo: helo, Family: "tcp4", Addr: netip.MustParseAddr("192.0.2.7")},
		From: filters.Address{Addr: from},
	}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, filters.Header{Name: headers[i], Value: headers[i+1]})
	}
	return m
}

func check(t *testing.T, f *Filter, stage filters.Stage, m *filters.Message) filters.Verdict {
	t.Helper()
	v, err := f.Check(context.Background(), stage, m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func replyOf(v filters.Verdict) string {
	if v.Reply == nil {
		return ""
	}
	return v.Reply.String()
}

func accessConfig() Config {
	return Config{Files: []FileConfig{{Path: accessFile}, {Path: "../../testdata/senders/hosts", Match: []string{"helo", "client_name"}}}}
}

func TestFilterVerdicts(t *testing.T) {
	f := newTestFilter(t, accessConfig(), nil, "")
	tests := []struct {
		from, helo, host string
		action           filters.Action
		reply            string
	}{
		{"bob@linkedinmail.com", "mx.example", "mx.example", filters.Discard, ""},
		{"bob@linkedin-mail.com", "mx.example", "mx.example", filters.Reject, "550 Sender banned. Please use legitimate domain to send email."},
		{"bob@adpmail.com", "mx.example", "mx.example", filters.Reject, "550 5.7.1 Sender banned"},
		{"bob@spam.example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob@ok.spam.example", "mx.example", "mx.example", filters.Continue, ""},
		{"bob@slow.example", "mx.example", "mx.example", filters.Tempfail, "451 4.7.1 Greylisted, try again later"},
		{"bob@hold.example", "mx.example", "mx.example", filters.Quarantine, ""},
		{"bob@skip.example", "mx.example", "mx.example", filters.Continue, ""},
		{"", "mx.example", "mx.example", filters.Reject, "550 5.7.1 We send no mail, so we take no bounces"},
		{"bob@fine.example", "mx.example", "mx.example", filters.Continue, ""},
		// Quotes before the last "@" do not hide the domain after it.
		{`"x"y@spam.example`, "mx.example", "mx.example", filters.Reject, DefaultReject},
		{`"bob@spam.example`, "mx.example", "mx.example", filters.Reject, DefaultReject},
		// Comments and blanks inside the envelope address.
		{"bob@(x)spam.example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob @ spam.example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob@spam .example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		// An empty local part leaves the domain; a source route, which
		// a colon ends, is still ignored.
		{"@spam.example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"@spam.example:bob@fine.example", "mx.example", "mx.example", filters.Continue, ""},
		{"@fine.example:bob@spam.example", "mx.example", "mx.example", filters.Reject, DefaultReject},
		// Commas and semicolons around the address, which Postfix
		// drops as empty elements of an address list: it delivers
		// <bob@spam.example,> from bob@spam.example and <,> from <>.
		{"bob@spam.example,", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob@spam.example ,", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob@spam.example;,", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{"bob%spam.example,", "mx.example", "mx.example", filters.Reject, DefaultReject},
		{",newsletter+x@shop.example", "mx.example", "mx.example", filters.Discard, ""},
		{`,"john doe"@quoted.example`, "mx.example", "mx.example", filters.Reject, DefaultReject},
		{",", "mx.example", "mx.example", filters.Reject, "550 5.7.1 We send no mail, so we take no bounces"},
		// HELO and client name, from the hosts file and Helo: tags; the
		// strongest verdict of the stage wins.
		{"bob@fine.example", "dialup.example", "mx.example", filters.Reject, DefaultReject},
		{"bob@fine.example", "mx.example", "pool-7.dynamic.example", filters.Reject, "554 5.7.1 Dynamic address, use your provider's relay"},
		{"bob@linkedinmail.com", "mx.example", "pool-7.dynamic.example", filters.Reject, "554 5.7.1 Dynamic address, use your provider's relay"},
		{"bob@fine.example", "[192.0.2.7]", "[192.0.2.7]", filters.Continue, ""},
	}
	for _, tt := range tests {
		v := check(t, f.Filter, filters.StageMailFrom, message(tt.from, tt.helo, tt.host))
		if v.Action != tt.action || replyOf(v) != tt.reply {
			t.Errorf("from %q helo %q client %q: %s %q (%s), want %s %q", tt.from, tt.helo, tt.host, v.Action, replyOf(v), v.Reason, tt.action, tt.reply)
		}
	}
	// The quarantine reason names the rule, its place and its reason,
	// which the rule as written already holds: once, not twice.
	v := check(t, f.Filter, filters.StageMailFrom, message("bob@hold.example", "", ""))
	if want := "mail_from bob@hold.example matches hold.example (" + accessFile + `:24): QUARANTINE:"needs a look"`; v.Reason != want {
		t.Errorf("quarantine reason %q, want %q", v.Reason, want)
	}
	v = check(t, f.Filter, filters.StageMailFrom, message("bob@mx.spam.example", "", ""))
	if want := "mail_from bob@mx.spam.example matches spam.example (" + accessFile + ":20): REJECT\t\t# the whole zone"; v.Reason != want {
		t.Errorf("reason %q, want %q", v.Reason, want)
	}
}

// The header From: is checked at the end of the header block: every
// address of every From: field, the strongest verdict winning.
func TestFilterHeaderFrom(t *testing.T) {
	f := newTestFilter(t, accessConfig(), nil, "")
	tests := []struct {
		headers []string
		action  filters.Action
	}{
		{[]string{"From", "PayPal <service@paypa1.example>"}, filters.Reject},
		{[]string{"from", "=?utf-8?q?Service?= <service@PAYPA1.example.>"}, filters.Reject},
		{[]string{"From", "Alice <alice@fine.example>"}, filters.Continue},
		{[]string{"From", "Alice <alice@fine.example>", "Subject", "x", "From", "bob@linkedinmail.com"}, filters.Discard},
		{[]string{"From", "alice@fine.example, bob@spam.example"}, filters.Reject},
		{[]string{"From", "broken \"quote <x@spam.example>"}, filters.Reject},
		{[]string{"Sender", "x@spam.example"}, filters.Continue},
		{[]string{"From", "x@linkedin.biz"}, filters.Continue}, // From: tag: the envelope only
		// Comments and blanks inside the address, and decoys before it
		// in a broken field, do not hide a refused domain.
		{[]string{"From", "bob@(comment)spam.example"}, filters.Reject},
		{[]string{"From", "Bob <bob@ (a (nested) comment) spam . example>"}, filters.Reject},
		{[]string{"From", "bob@spam\t.example"}, filters.Reject},
		{[]string{"From", `"<x@fine.example>" bob@spam.example`}, filters.Reject},
		// A quoted local part holding quotes and "@": net/mail gives it
		// unquoted, and the domain is still the one after the last "@".
		{[]string{"From", `"\"x@fine.example\"z"@spam.example`}, filters.Reject},
		{[]string{"From", `Bob <"\"a\"@fine.example"@spam.example>`}, filters.Reject},
		// Unquoted, a local part may start with "@" and look like a
		// source route that never ends.
		{[]string{"From", `"@fine.example"@spam.example`}, filters.Reject},
		// An empty local part leaves the domain, which a mail reader
		// shows; a source route is still ignored.
		{[]string{"From", "@spam.example"}, filters.Reject},
		{[]string{"From", "Bob <@spam.example>"}, filters.Reject},
		{[]string{"From", "Bob <@Spam.Example.>, alice@fine.example"}, filters.Reject},
		{[]string{"From", "@fine.example"}, filters.Continue},
		{[]string{"From", "Bob <@spam.example:bob@fine.example>"}, filters.Continue},
		// An address hidden in an encoded word, which a mail reader
		// decodes and shows (RFC 2047 allows none there).
		{[]string{"From", "=?utf-8?q?bob=40spam.example?="}, filters.Reject},
		{[]string{"From", "=?utf-8?b?UGF5UGFsIDxib2JAc3BhbS5leGFtcGxlPg==?="}, filters.Reject},
		{[]string{"From", "PayPal <=?utf-8?q?bob=40spam.example?=>"}, filters.Reject},
		{[]string{"From", "=?utf-8?q?bob=40fine.example?="}, filters.Continue},
		// The "@" itself in the encoded word, as Q encoding lets it
		// stand: the field parses as an address at "spam.example?=".
		{[]string{"From", "=?utf-8?q?bob@spam.example?="}, filters.Reject},
		{[]string{"From", "PayPal <=?utf-8?q?bob@spam.example?=>"}, filters.Reject},
		{[]string{"From", "=?utf-8?q?bob@fine.example?="}, filters.Continue},
		// In a field that parses, an encoded word is a display name.
		{[]string{"From", "=?utf-8?q?bob=40spam.example?= <alice@fine.example>"}, filters.Continue},
		// An encoded word in a local part ("Mailsploit"): some mail
		// readers show the address it holds, cut at the NUL; the
		// address's own domain counts as well.
		{[]string{"From", "=?utf-8?b?Ym9iQHNwYW0uZXhhbXBsZQ==?==?utf-8?Q?=00?=@fine.example"}, filters.Reject},
		{[]string{"From", "Bob <=?utf-8?q?alice=40fine.example?=@spam.example>"}, filters.Reject},
		{[]string{"From", "=?utf-8?q?alice=40fine.example=00?=@fine.example"}, filters.Continue},
		{[]string{"From", "Bob <bob@=?utf-8?q?sp=61m.example?=>"}, filters.Reject},
		// Quotes in the domain.
		{[]string{"From", `bob@"spam.example"`}, filters.Reject},
		{[]string{"From", `bob@spam."example"`}, filters.Reject},
		{[]string{"From", "bob@=?utf-8?q?fine.example?="}, filters.Continue},
	}
	for _, tt := range tests {
		v := check(t, f.Filter, filters.StageHeaders, message("ok@fine.example", "", "", tt.headers...))
		if v.Action != tt.action {
			t.Errorf("headers %q: %s (%s), want %s", tt.headers, v.Action, v.Reason, tt.action)
		}
	}
	// The envelope stage does not look at the header, nor the header
	// stage at the envelope.
	if v := check(t, f.Filter, filters.StageMailFrom, message("ok@fine.example", "", "", "From", "x@spam.example")); v.Action != filters.Continue {
		t.Errorf("mail stage judged the header: %s", v.Action)
	}
	if v := check(t, f.Filter, filters.StageHeaders, message("x@spam.example", "", "", "From", "ok@fine.example")); v.Action != filters.Continue {
		t.Errorf("header stage judged the envelope: %s", v.Action)
	}
	if n := f.Needs(); !n.Stages.Has(filters.StageMailFrom) || !n.Stages.Has(filters.StageHeaders) || !n.Headers || n.Body {
		t.Errorf("needs %+v", n)
	}
}

// decoys returns n different addresses at fine.example, each written
// as form writes it, joined by sep.
func decoys(n int, form, sep string) string {
	var list []string
	for i := range n {
		list = append(list, fmt.Sprintf(form, fmt.Sprintf("d%d@fine.example", i)))
	}
	return strings.Join(list, sep)
}

// Decoys before the real author do not push it out of what is read: a
// broken field gives its bracketed addresses first, and a field with
// more different addresses than the filter reads, broken or not, gets
// the action of the strongest header_from rule (in the access file the
// ERROR 550 of linkedin-mail.com), with the filter's own reply.
func TestFilterHeaderFromDecoys(t *testing.T) {
	f := newTestFilter(t, accessConfig(), nil, "")
	const read = "header_from x@spam.example matches spam.example"
	const crowded = "header_from: a From field holds more than 16 different addresses; one not read might match linkedin-mail.com"
	tests := []struct {
		name   string
		from   []string
		action filters.Action
		reason string // the start of the verdict's reason
	}{
		// Names starting "broken" are values net/mail refuses.
		{"broken, 20 bare decoys before the bracketed author",
			[]string{decoys(20, "%s", " ") + ` "Real <x@spam.example>`}, filters.Reject, read},
		{"broken, 20 bracketed decoys before the bracketed author",
			[]string{decoys(20, "<%s>", " ") + ` "Real <x@spam.example>`}, filters.Reject, crowded},
		{"broken, 20 bracketed decoys before a bare author",
			[]string{decoys(20, "<%s>", " ") + ` x@spam.example "`}, filters.Reject, crowded},
		{"well-formed, 20 bare decoys before the author",
			[]string{decoys(20, "%s", ", ") + ", x@spam.example"}, filters.Reject, crowded},
		{"well-formed, 20 named decoys before the named author",
			[]string{decoys(20, `"Friend" <%s>`, ", ") + ", Real <x@spam.example>"}, filters.Reject, crowded},
		{"well-formed, 20 decoys in a group before the author",
			[]string{"friends: " + decoys(20, "%s", ", ") + ";, x@spam.example"}, filters.Reject, crowded},
		{"the crowded field is the second From",
			[]string{"alice@fine.example", decoys(20, "%s", ", ") + ", x@spam.example"}, filters.Reject, crowded},
		// The author among the first 16 decides, with its own reason.
		{"the author first, 20 decoys after it",
			[]string{"x@spam.example, " + decoys(20, "%s", ", ")}, filters.Reject, read},
		// Too many addresses is itself the outcome: nothing may be
		// hidden after the 16th.
		{"20 decoys and nothing else",
			[]string{decoys(20, "%s", ", ")}, filters.Reject, crowded},
		{"16 different addresses are all read",
			[]string{decoys(16, "%s", ", ")}, filters.Continue, ""},
		{"16 different addresses, then repeats",
			[]string{decoys(16, "%s", ", ") + ", " + strings.Repeat("d0@fine.example, ", 50) + "d1@fine.example"}, filters.Continue, ""},
		{"100 repeats of one decoy before the author",
			[]string{strings.Repeat("d0@fine.example, ", 100) + "x@spam.example"}, filters.Reject, read},
	}
	for _, tt := range tests {
		var hdrs []string
		for _, v := range tt.from {
			hdrs = append(hdrs, "From", v)
		}
		if _, err := mail.ParseAddressList(tt.from[len(tt.from)-1]); (err != nil) != strings.HasPrefix(tt.name, "broken") {
			t.Errorf("%s: net/mail says %v", tt.name, err)
		}
		v := check(t, f.Filter, filters.StageHeaders, message("ok@fine.example", "", "", hdrs...))
		if v.Action != tt.action || !strings.HasPrefix(v.Reason, tt.reason) {
			t.Errorf("%s: %s (%s), want %s (%s...)", tt.name, v.Action, v.Reason, tt.action, tt.reason)
			continue
		}
		if tt.reason == crowded && replyOf(v) != DefaultReject {
			t.Errorf("%s: reply %q, want the filter's %q", tt.name, replyOf(v), DefaultReject)
		}
	}
}

// Decoy From fields before the real one do not push it out of what is
// read either: mail readers differ in which of several From fields they
// show, some the last, so a message with a From field beyond the
// filters.MaxFromFields read, holding anything those read do not, is
// judged as a crowded field is. A field repeated with the same value
// adds nothing.
func TestFilterHeaderFromDecoyFields(t *testing.T) {
	f := newTestFilter(t, accessConfig(), nil, "")
	const crowded = "header_from: the message has more than 8 different From fields; one not read might match linkedin-mail.com"
	fields := func(n int, last string) []string {
		var hdrs []string
		for i := range n {
			hdrs = append(hdrs, "From", fmt.Sprintf("d%d@fine.example", i))
		}
		if last != "" {
			hdrs = append(hdrs, "From", last)
		}
		return hdrs
	}
	repeated := fields(filters.MaxFromFields, "")
	for range 20 {
		repeated = append(repeated, "From", "d0@fine.example")
	}
	for _, tt := range []struct {
		name    string
		headers []string
		action  filters.Action
		reason  string
	}{
		{"the author in the last of 9 From fields", fields(filters.MaxFromFields, "x@spam.example"), filters.Reject, crowded},
		{"the author in the last of 30 From fields", fields(29, "x@spam.example"), filters.Reject, crowded},
		{"the author among those read", fields(filters.MaxFromFields-1, "x@spam.example"), filters.Reject, "header_from x@spam.example matches spam.example"},
		{"as many From fields as are read", fields(filters.MaxFromFields, ""), filters.Continue, ""},
		{"the fields read, then repeats of one of them", repeated, filters.Continue, ""},
	} {
		v := check(t, f.Filter, filters.StageHeaders, message("ok@fine.example", "", "", tt.headers...))
		if v.Action != tt.action || !strings.HasPrefix(v.Reason, tt.reason) {
			t.Errorf("%s: %s (%s), want %s (%s...)", tt.name, v.Action, v.Reason, tt.action, tt.reason)
		}
	}
}

// A crowded From field gets the action of the header_from rule that
// blocks most, whatever its place in the files, and nothing when no rule
// that could match a From address blocks: OK and WATCH rules, rules for
// the envelope only, the null sender's, and a rule hidden by an earlier
// one with the same key do not count.
func TestFilterHeaderFromCrowdedFollowsRules(t *testing.T) {
	crowded := decoys(20, "%s", ", ")
	for _, tt := range []struct {
		rules  string
		action filters.Action
		reply  string
	}{
		{"hold.example QUARANTINE:\"look\"\nbin.example DISCARD\n", filters.Quarantine, ""},
		{"bin.example DISCARD\n*.hold.* QUARANTINE:\"look\"\n", filters.Quarantine, ""},
		{"bin.example DISCARD\nslow.example ERROR:\"451 4.7.1 Later\"\n", filters.Tempfail, "451 4.7.1 Service unavailable, try again later"},
		{"bin.example DISCARD\n/^spam\\./ REJECT\nslow.example ERROR:\"451 4.7.1 Later\"\n", filters.Reject, DefaultReject},
		{"fine.example OK\nemalsrv.* WATCH\n", filters.Continue, ""},
		{"From:spam.example REJECT\nFrom:<> REJECT\n", filters.Continue, ""},
		{"spam.example OK\nspam.example REJECT\nbin.example DISCARD\n", filters.Discard, ""},
	} {
		path := filepath.Join(t.TempDir(), "senders")
		writeFile(t, path, tt.rules)
		f := newTestFilter(t, Config{Files: []FileConfig{{Path: path}}}, nil, "")
		v := check(t, f.Filter, filters.StageHeaders, message("ok@fine.example", "", "", "From", crowded))
		if v.Action != tt.action || replyOf(v) != tt.reply {
			t.Errorf("rules %q: %s %q (%s), want %s %q", tt.rules, v.Action, replyOf(v), v.Reason, tt.action, tt.reply)
		}
		// The envelope is one address: never crowded.
		if v := check(t, f.Filter, filters.StageMailFrom, message("d0@fine.example", "", "")); v.Action != filters.Continue {
			t.Errorf("rules %q: envelope %s (%s)", tt.rules, v.Action, v.Reason)
		}
	}
}

// A From: address comes from filters.FromAddresses with its comments
// gone and its local part unquoted: what is left is not read as a
// comment a second time, or "a (b)" would compare as "a".
func TestFilterHeaderFromQuotedText(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "senders")
	writeFile(t, rules, "\"a (b)\"@x.example REJECT\n")
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}}, nil, "")
	for _, from := range []string{`Bob <"a (b)"@x.example> (c)`, `"a (b)"@(c)x.example`} {
		if v := check(t, f.Filter, filters.StageHeaders, message("ok@fine.example", "", "", "From", from)); v.Action != filters.Reject {
			t.Errorf("From %q: %s, want reject", from, v.Action)
		}
	}
}

// Client names: Postfix's "unknown" and bracketed addresses are no names.
func TestFilterClientName(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	// A pattern that would match any name, and a regular expression
	// that would match an address in brackets taken for a name.
	writeFile(t, rules, "Connect:* REJECT\nConnect:/[0-9]+\\./ REJECT\n")
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}}, nil, "")
	for host, want := range map[string]filters.Action{
		"mx.example":         filters.Reject,
		"unknown":            filters.Continue,
		"[192.0.2.7]":        filters.Continue,
		"[IPv6:2001:db8::1]": filters.Continue,
		"":                   filters.Continue,
	} {
		if v := check(t, f.Filter, filters.StageMailFrom, message("a@b.example", "h.example", host)); v.Action != want {
			t.Errorf("client %q: %s, want %s", host, v.Action, want)
		}
	}
}

// A client name in brackets (Sendmail's form for a client without
// reverse name) matches a rule for that very literal, as docs/senders.md
// says; "unknown" matches nothing, not even a rule for "unknown".
func TestFilterClientNameLiteral(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	writeFile(t, rules, "Connect:[192.0.2.7] REJECT\nConnect:unknown REJECT\n")
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}}, nil, "")
	for host, want := range map[string]filters.Action{
		"[192.0.2.7]": filters.Reject,
		"[192.0.2.8]": filters.Continue,
		"unknown":     filters.Continue,
	} {
		if v := check(t, f.Filter, filters.StageMailFrom, message("a@b.example", "h.example", host)); v.Action != want {
			t.Errorf("client %q: %s, want %s", host, v.Action, want)
		}
	}
}

// REJECT uses reject_reply; ERROR rules their own reply.
func TestFilterRejectReply(t *testing.T) {
	cfg := accessConfig()
	cfg.RejectReply = "554 5.7.1 Your domain is not welcome here"
	f := newTestFilter(t, cfg, nil, "")
	v := check(t, f.Filter, filters.StageMailFrom, message("x@spam.example", "", ""))
	if replyOf(v) != cfg.RejectReply {
		t.Errorf("reply %q", replyOf(v))
	}
}

// A new domain matching a WATCH rule is logged and counted once: not
// again for the next message, nor by the filter a reload builds, nor
// after a restart. Watching never blocks.
func TestFilterWatchOnce(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "emalsrv.* WATCH\n/^complains\\./ WATCH\nups.com WATCH\nlinkedinmail.com DISCARD\n")
	cfg := Config{Files: []FileConfig{{Path: rules}}}
	state := t.TempDir()
	shared := NewShared()
	f := newTestFilter(t, cfg, shared, state)

	send := func(f *testFilter, from string) filters.Action {
		t.Helper()
		return check(t, f.Filter, filters.StageMailFrom, message(from, "", "")).Action
	}
	if a := send(f, "a@emalsrv.ups.com"); a != filters.Continue {
		t.Errorf("a WATCH match gave %s", a)
	}
	send(f, "b@EMALSRV.ups.com.")
	send(f, "c@emalsrv.fedex.com")
	if got := f.obs.newDomains("emalsrv.*"); got != 2 {
		t.Errorf("emalsrv.* counted %d new domains, want 2", got)
	}
	if got := f.obs.newDomains("ups.com"); got != 1 {
		t.Errorf("ups.com counted %d new domains, want 1", got)
	}
	if got := f.obs.watch; len(got) != 1 || strings.Join(got[0], " ") != `emalsrv.* /^complains\./ ups.com` {
		t.Errorf("watch keys reported at load: %q", got)
	}
	log := f.log.String()
	if n := strings.Count(log, "new sender domain matching emalsrv.*: emalsrv.ups.com"); n != 1 {
		t.Errorf("%d log lines for emalsrv.ups.com, want 1:\n%s", n, log)
	}
	if !strings.Contains(log, "new sender domain matching emalsrv.*: emalsrv.fedex.com") {
		t.Errorf("no log line for emalsrv.fedex.com:\n%s", log)
	}

	// A reload builds a second filter on the same shared state while the
	// first still finishes its sessions: neither reports a known domain.
	f2 := newTestFilter(t, cfg, shared, state)
	send(f2, "d@emalsrv.ups.com")
	send(f, "e@emalsrv.fedex.com")
	send(f2, "f@complains.example")
	send(f, "g@complains.example")
	if f2.obs.newDomains("emalsrv.*") != 0 || f.obs.newDomains("emalsrv.*") != 2 {
		t.Errorf("known domains reported again across the reload")
	}
	if got := f.obs.newDomains(`/^complains\./`) + f2.obs.newDomains(`/^complains\./`); got != 1 {
		t.Errorf("complains.example reported %d times, want 1", got)
	}
	f.Close()
	f2.Close()

	// A restart: a fresh Shared reads the seen file.
	data, err := os.ReadFile(filepath.Join(state, "senders.seen"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\temalsrv.ups.com\temalsrv.*\n", "\temalsrv.fedex.com\temalsrv.*\n", "\tcomplains.example\t/^complains\\./\n", "\temalsrv.ups.com\tups.com\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("seen file lacks %q:\n%s", want, data)
		}
	}
	f3 := newTestFilter(t, cfg, NewShared(), state)
	send(f3, "h@emalsrv.ups.com")
	send(f3, "i@complains.example")
	send(f3, "j@emalsrv.dhl.com")
	if got := f3.obs.newDomains("emalsrv.*"); got != 1 {
		t.Errorf("after a restart emalsrv.* counted %d new domains, want 1 (emalsrv.dhl.com)", got)
	}
	if got := f3.obs.newDomains(`/^complains\./`); got != 0 {
		t.Errorf("after a restart complains.example was reported again")
	}
}

// watch_all makes every matching rule a watch rule; the null sender and
// address literals have no domain to report.
func TestFilterWatchAll(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "*.linkedinmail.* REJECT\nFrom:<> REJECT\n* OK\n")
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}, WatchAll: true}, nil, "")
	for _, from := range []string{"a@x.linkedinmail.com", "b@x.linkedinmail.com", "c@y.linkedinmail.net", "<>", "d@[192.0.2.1]"} {
		check(t, f.Filter, filters.StageMailFrom, message(from, "", ""))
	}
	if got := f.obs.newDomains("*.linkedinmail.*"); got != 2 {
		t.Errorf("*.linkedinmail.* counted %d new domains, want 2", got)
	}
	if got := f.obs.newDomains("From:<>"); got != 0 {
		t.Errorf("the null sender was counted as a domain")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An edited file is reloaded without a signal; a broken edit is reported
// with file and line, once, and the rules in force stay until the file
// is fixed.
func TestFilterReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "spam.example REJECT\n")
	interval := 100 * time.Millisecond
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &interval}, nil, "")
	verdict := func(from string) filters.Action {
		return check(t, f.Filter, filters.StageMailFrom, message(from, "", "")).Action
	}
	if verdict("x@new.example") != filters.Continue || verdict("x@spam.example") != filters.Reject {
		t.Fatal("initial rules not in force")
	}

	writeFile(t, rules, "spam.example REJECT\nnew.example DISCARD\n")
	waitUntil(t, "the reload", func() bool { return f.Rules().Len() == 2 })
	if verdict("x@new.example") != filters.Discard {
		t.Error("the new rule does not apply after the reload")
	}

	writeFile(t, rules, "spam.example REJECT\nnew.example DISCARD\nbroken.example REJEKT\n")
	waitUntil(t, "the failed reload", func() bool { return strings.Contains(f.log.String(), "cannot be used") })
	if !strings.Contains(f.log.String(), rules+`:3: unknown action \"REJEKT\"`) {
		t.Errorf("the failure does not name file, line and reason:\n%s", f.log)
	}
	if verdict("x@new.example") != filters.Discard || f.Rules().Len() != 2 {
		t.Error("a broken edit replaced the rules in force")
	}
	time.Sleep(5 * interval)
	if n := strings.Count(f.log.String(), "cannot be used"); n != 1 {
		t.Errorf("the same broken file was reported %d times", n)
	}

	// A file replaced by rename, as editors and config managers do.
	tmp := filepath.Join(dir, "rules.new")
	writeFile(t, tmp, "spam.example OK\n")
	if err := os.Rename(tmp, rules); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reload after the fix", func() bool { return f.Rules().Len() == 1 })
	if verdict("x@spam.example") != filters.Continue || verdict("x@new.example") != filters.Continue {
		t.Error("the fixed file is not in force")
	}
	if got := f.obs.reloadResults(); len(got) != 3 || !got[0] || got[1] || !got[2] {
		t.Errorf("reload results %v, want [true false true]", got)
	}
	f.obs.mu.Lock()
	if got := f.obs.loaded; len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 1 {
		t.Errorf("rules loaded %v, want [1 2 1]", got)
	}
	f.obs.mu.Unlock()

	// A deleted file is an error too; the rules stay.
	os.Remove(rules)
	waitUntil(t, "the report of the missing file", func() bool { return strings.Count(f.log.String(), "cannot be used") == 2 })
	if verdict("x@spam.example") != filters.Continue || f.Rules().Len() != 1 {
		t.Error("a deleted file changed the rules in force")
	}
}

// writeInPlace rewrites path as "generate-rules > path" does: the shell
// empties the file, then the program writes its output in steps, with
// a pause of several check intervals before each.
func writeInPlace(t *testing.T, path string, pause time.Duration, steps ...string) {
	t.Helper()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, step := range steps {
		time.Sleep(pause)
		if _, err := out.WriteString(step); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// A file rewritten in place by a slow writer is not read while it is
// empty or ends in the middle of a line, though it stays so for several
// intervals: the blocks in force stay until the file is complete. A file
// emptied on purpose takes effect once it stays empty.
func TestFilterReloadWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "spam.example REJECT\nham.example DISCARD\n")
	interval := 100 * time.Millisecond
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &interval}, nil, "")
	verdict := func(from string) filters.Action {
		return check(t, f.Filter, filters.StageMailFrom, message(from, "", "")).Action
	}
	var mu sync.Mutex
	var lifted []string
	// Checked by the writer after each pause, while the file is
	// empty or half-written.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			time.Sleep(5 * interval)
			if verdict("x@spam.example") != filters.Reject || verdict("x@ham.example") != filters.Discard {
				mu.Lock()
				lifted = append(lifted, fmt.Sprintf("after %d pauses: %d rules in force", i+1, f.Rules().Len()))
				mu.Unlock()
			}
		}
	}()
	// Pauses of 5 intervals: the checks see the file empty while the
	// program prepares its output (the empty first step), then cut in a
	// line, each time for longer than one interval.
	writeInPlace(t, rules, 5*interval, "", "spam.example REJECT\nham.exa", "mple DISCARD\nnew.example REJECT\n")
	<-done
	mu.Lock()
	if len(lifted) > 0 {
		t.Errorf("the rules of a file being written were put in force: %s", strings.Join(lifted, "; "))
	}
	mu.Unlock()
	waitUntil(t, "the finished file", func() bool { return f.Rules().Len() == 3 })
	if verdict("x@new.example") != filters.Reject || verdict("x@ham.example") != filters.Discard {
		t.Error("the finished file is not in force")
	}
	if got := f.obs.reloadResults(); len(got) != 1 || !got[0] {
		t.Errorf("reload results %v, want one good reload", got)
	}
	if !strings.Contains(f.log.String(), "ends in the middle of a line") {
		t.Errorf("the wait is not logged:\n%s", f.log)
	}

	// Emptied on purpose: in force once it stays so.
	if err := os.Truncate(rules, 0); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the emptied file", func() bool { return f.Rules().Len() == 0 })
	if verdict("x@spam.example") != filters.Continue {
		t.Error("the emptied file is not in force")
	}
}

// A reload (SIGHUP) that comes while a file is being written in place
// builds the new filter with the rules in force, not half of the file;
// its file watcher takes the file once it is complete.
func TestFilterRebuildWhileWritten(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "spam.example REJECT\nham.example DISCARD\n")
	interval := 100 * time.Millisecond
	cfg := Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &interval}
	shared, state := NewShared(), t.TempDir()
	f := newTestFilter(t, cfg, shared, state)

	out, err := os.OpenFile(rules, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, step := range []string{"", "spam.example REJECT\nham.exa"} {
		if _, err := out.WriteString(step); err != nil {
			t.Fatal(err)
		}
		f2 := newTestFilter(t, cfg, shared, state)
		for from, want := range map[string]filters.Action{"x@spam.example": filters.Reject, "x@ham.example": filters.Discard} {
			if got := check(t, f2.Filter, filters.StageMailFrom, message(from, "", "")).Action; got != want {
				t.Errorf("built on the file holding %q: %s gets %s, want %s", step, from, got, want)
			}
		}
		if !strings.Contains(f2.log.String(), "the rules in force stay") {
			t.Errorf("the rules kept are not logged:\n%s", f2.log)
		}
		// The running filter is closed once the new one is built.
		f.Close()
		f = f2
	}
	if _, err := out.WriteString("mple DISCARD\nnew.example REJECT\n"); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the finished file", func() bool { return f.Rules().Len() == 3 })
	if got := check(t, f.Filter, filters.StageMailFrom, message("x@new.example", "", "")).Action; got != filters.Reject {
		t.Errorf("the finished file is not in force: x@new.example gets %s", got)
	}
}

// Only a file that changed is taken for one being written: a second
// rules file that stays empty (a local file kept for later) or whose
// last line has no line end, untouched, neither holds back a complete
// edit of the first at a reload (SIGHUP) nor makes the change check wait
// the long wait for it.
func TestFilterUnchangedFileLooksUnfinished(t *testing.T) {
	for name, other := range map[string]string{"empty": "", "no final newline": "ham.example DISCARD"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			rules, local := filepath.Join(dir, "rules"), filepath.Join(dir, "local")
			writeFile(t, rules, "spam.example REJECT\n")
			writeFile(t, local, other)
			interval := 100 * time.Millisecond
			cfg := Config{Files: []FileConfig{{Path: rules}, {Path: local}}, ReloadInterval: &interval}
			shared, state := NewShared(), t.TempDir()
			f := newTestFilter(t, cfg, shared, state)

			// A reload right after a complete edit of the first file.
			writeFile(t, rules, "spam.example REJECT\nnew.example REJECT\n")
			f2 := newTestFilter(t, cfg, shared, state)
			if got := check(t, f2.Filter, filters.StageMailFrom, message("x@new.example", "", "")).Action; got != filters.Reject {
				t.Errorf("after a reload, x@new.example gets %s, want reject:\n%s", got, f2.log)
			}
			f.Close()

			// The change check, after another complete edit.
			writeFile(t, rules, "spam.example REJECT\nnew.example REJECT\nmore.example REJECT\n")
			waitUntil(t, "the reload", func() bool {
				return check(t, f2.Filter, filters.StageMailFrom, message("x@more.example", "", "")).Action == filters.Reject
			})
			if log := f2.log.String(); strings.Contains(log, "ends in the middle of a line") {
				t.Errorf("an untouched %s file was taken for one being written:\n%s", name, log)
			}
		})
	}
}

// A filter that a reload replaced goes on reloading its files for the
// connections opened before the reload, but reports nothing more: the
// filter of the same name in the new configuration reports into the same
// series. A file the new configuration dropped, then deleted, must not
// count a failed reload for the name (its alert would fire, and stay on
// until the new filter's next reload); an edit of a file both read is
// counted once.
func TestFilterRetiredReportsNothing(t *testing.T) {
	dir := t.TempDir()
	old, kept := filepath.Join(dir, "old"), filepath.Join(dir, "kept")
	writeFile(t, old, "spam.example REJECT\n")
	writeFile(t, kept, "ham.example DISCARD\n")
	interval := 100 * time.Millisecond
	obs, state := &recorder{}, t.TempDir()
	build := func(log *logBuffer, files ...string) *Filter {
		cfg := Config{ReloadInterval: &interval}
		for _, p := range files {
			cfg.Files = append(cfg.Files, FileConfig{Path: p})
		}
		// At debug level: a retired filter logs what it does there.
		logger := slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		env := filters.Env{Name: "senders", Logger: logger, StateDir: state, Observer: obs}
		f, err := New(env, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	oldLog, newLog := &logBuffer{}, &logBuffer{}
	f := build(oldLog, old, kept)
	f2 := build(newLog, kept)
	// As the milter server does when it swaps the configuration.
	filters.NewPipeline([]filters.Step{{Filter: f}}, nil).Retire()

	if err := os.Remove(old); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the replaced filter to find the file gone", func() bool { return strings.Contains(oldLog.String(), "cannot be used") })
	writeFile(t, kept, "ham.example DISCARD\nnew.example REJECT\n")
	waitUntil(t, "the new filter's reload", func() bool { return f2.Rules().Len() == 2 })
	if got := obs.reloadResults(); len(got) != 1 || !got[0] {
		t.Errorf("reload results %v, want the new filter's one good reload", got)
	}
	// The replaced filter still serves its connections with its rules.
	if got := check(t, f, filters.StageMailFrom, message("x@spam.example", "", "")).Action; got != filters.Reject {
		t.Errorf("the replaced filter lost its rules: x@spam.example gets %s", got)
	}
}

// A message is judged by the rules in force at its first stage to the
// end: a reload between MAIL FROM and the end of the header block does
// not make its header From judged by other rules than its envelope
// sender, as a SIGHUP does not change the config of a connection already
// open. It runs through a pipeline step with a timeout, as in the daemon,
// where each call gets its own copy of the message.
func TestFilterReloadMidMessage(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "friend.example OK\n")
	interval := 100 * time.Millisecond
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &interval}, nil, "")
	p := filters.NewPipeline([]filters.Step{{Filter: f.Filter, Timeout: 5 * time.Second}}, nil)
	run := func(stage filters.Stage, m *filters.Message) filters.Action {
		t.Helper()
		d := p.Run(context.Background(), stage, m).Decisions
		if len(d) != 1 || d[0].Err != nil {
			t.Fatalf("at %s: %+v", stage, d)
		}
		return d[0].Verdict.Action
	}
	inFlight := message("a@friend.example", "", "", "From", "<b@friend.example>")
	if got := run(filters.StageMailFrom, inFlight); got != filters.Continue {
		t.Fatalf("MAIL FROM under the first rules: %s", got)
	}

	writeFile(t, rules, "friend.example REJECT\n")
	waitUntil(t, "the reload", func() bool { return f.Rules().strongest(HeaderFrom) != nil })
	if got := run(filters.StageHeaders, inFlight); got != filters.Continue {
		t.Errorf("the header From of a message begun before the reload judged by the new rules: %s", got)
	}
	next := message("a@friend.example", "", "", "From", "<b@friend.example>")
	if got := run(filters.StageMailFrom, next); got != filters.Reject {
		t.Errorf("a message begun after the reload: %s, want reject", got)
	}
}

// With reload_interval 0 only a rebuild (SIGHUP) reads the files again.
func TestFilterReloadOff(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "spam.example REJECT\n")
	off := time.Duration(0)
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &off}, nil, "")
	writeFile(t, rules, "spam.example REJECT\nnew.example DISCARD\n")
	time.Sleep(3 * minReloadInterval)
	if f.Rules().Len() != 1 {
		t.Error("rules reloaded with reload_interval 0")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules")
	writeFile(t, rules, "spam.example REJECT\n")
	watch := filepath.Join(dir, "watch")
	writeFile(t, watch, "emalsrv.* WATCH\n")
	short := 10 * time.Millisecond
	tests := []struct {
		name  string
		cfg   Config
		state string
		want  string
	}{
		{"no files", Config{}, dir, "give at least one rules file"},
		{"empty path", Config{Files: []FileConfig{{}}}, dir, "files[0]: path is empty"},
		{"bad subject", Config{Files: []FileConfig{{Path: rules, Match: []string{"mail"}}}}, dir, `files[0].match: unknown subject "mail"`},
		{"missing file", Config{Files: []FileConfig{{Path: rules + ".nope"}}}, dir, "no such file"},
		{"short interval", Config{Files: []FileConfig{{Path: rules}}, ReloadInterval: &short}, dir, "reload_interval: 10ms"},
		{"negative limit", Config{Files: []FileConfig{{Path: rules}}, SeenLimit: -1}, dir, "seen_limit"},
		{"bad reply", Config{Files: []FileConfig{{Path: rules}}, RejectReply: "451 4.7.1 later"}, dir, "want a 5xx reply"},
		{"bad reply text", Config{Files: []FileConfig{{Path: rules}}, RejectReply: "550"}, dir, "reject_reply"},
		{"watch without state dir", Config{Files: []FileConfig{{Path: watch}}}, filepath.Join(dir, "missing"), "directory " + filepath.Join(dir, "missing") + " does not exist"},
		{"watch_all without state dir", Config{Files: []FileConfig{{Path: rules}}, WatchAll: true}, filepath.Join(dir, "missing"), "does not exist"},
	}
	for _, tt := range tests {
		_, err := New(filters.Env{Name: "senders", StateDir: tt.state}, tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	// Without WATCH rules the state directory is not needed.
	f, err := New(filters.Env{Name: "senders", StateDir: filepath.Join(dir, "missing")}, Config{Files: []FileConfig{{Path: rules}}}, nil)
	if err != nil {
		t.Fatalf("rules without WATCH need no state directory: %v", err)
	}
	f.Close()
	// A malformed rules file fails the build with every bad line.
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "ok.example OK\nbad.example NOPE\n")
	_, err = New(filters.Env{StateDir: dir}, Config{Files: []FileConfig{{Path: bad}}}, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Lines[0].Line != 2 || pe.Lines[0].File != bad {
		t.Errorf("malformed file: %v", err)
	}
}

// files entries are a path or a mapping, read strictly.
func TestFileConfigYAML(t *testing.T) {
	var cfg Config
	text := "files:\n  - /etc/mail/access\n  - path: /etc/sluice/hosts\n    match: [helo, client_name]\nwatch_all: true\nreload_interval: 5s\n"
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatal(err)
	}
	files, err := cfg.RulesFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0] != (File{"/etc/mail/access", DefaultScope}) || files[1] != (File{"/etc/sluice/hosts", ScopeOf(Helo, ClientName)}) {
		t.Errorf("files %+v", files)
	}
	if !cfg.WatchAll || cfg.ReloadInterval == nil || *cfg.ReloadInterval != 5*time.Second {
		t.Errorf("config %+v", cfg)
	}
	for text, want := range map[string]string{
		"files:\n  - path: /x\n    mtach: [helo]\n": `line 3: files: unknown key "mtach"`,
		"files:\n  - path: [a]\n":                   "line 2: path: want a file name",
		"files:\n  - path: /x\n    match: helo\n":   "line 3: match: want a list",
		"files:\n  - [a, b]\n":                      "line 2: files: want a file name or a mapping",
	} {
		var c Config
		err := yaml.Unmarshal([]byte(text), &c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
	if got := (Config{}).SeenPath("/var/lib/sluice", "senders"); got != "/var/lib/sluice/senders.seen" {
		t.Errorf("default seen file %s", got)
	}
}

// A key given twice in an entry of files is an error, as a key given twice
// anywhere else in the configuration is: the second path used to replace
// the first without a word, and a second match list to add to the first.
func TestFileConfigDuplicateKey(t *testing.T) {
	for src, want := range map[string]string{
		"files:\n  - path: /etc/mail/access\n    path: /etc/sluice/hosts\n":                `line 3: files: key "path" already defined at line 2`,
		"files:\n  - path: /etc/sluice/hosts\n    match: [helo]\n    match: [mail_from]\n": `line 4: files: key "match" already defined at line 3`,
	} {
		var c Config
		err := yaml.Unmarshal([]byte(src), &c)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q, for\n%s", err, want, src)
		}
	}
}

// Rules that can never match (a key with @ for host names only, and
// Postfix's "unknown" as a client name) load, as Sendmail loads them,
// and are warned of with their file and line, before the many lines a
// Sendmail access file skips can crowd them out of the log; the rest of
// the file is in force.
func TestFilterWarnsOfRulesThatNeverMatch(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access")
	hosts := filepath.Join(dir, "hosts")
	var b strings.Builder
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, "192.0.2.%d REJECT\n", i) // skipped: IP address entries
	}
	b.WriteString(`Helo:bob@example.com REJECT
Connect:abuse@ REJECT
Helo:x+*@ DISCARD
Connect:unknown REJECT
spam.example REJECT
Helo:dialup.example REJECT
Helo:unknown REJECT
Connect:unknown.example REJECT
bob@example.com REJECT
`)
	writeFile(t, access, b.String())
	writeFile(t, hosts, "alice@ REJECT\ndynamic.example REJECT\n")
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: access}, {Path: hosts, Match: []string{"helo", "client_name"}}}}, nil, "")

	hostOnly := "never matches: a key with @ is compared with mail addresses only, and this rule applies to host names only"
	want := []string{
		access + ":13: Helo:bob@example.com " + hostOnly + " (helo)",
		access + ":14: Connect:abuse@ " + hostOnly + " (client_name)",
		access + ":15: Helo:x+*@ " + hostOnly + " (helo)",
		access + ":16: Connect:unknown never matches: \"unknown\" is Postfix's word for a client without a verified reverse name, which sluice does not compare as a name (Postfix's reject_unknown_client_hostname refuses such clients)",
		hosts + ":1: alice@ " + hostOnly + " (helo,client_name)",
	}
	var got []string
	for _, n := range f.Rules().Notes() {
		if strings.Contains(n.Text, "never matches") {
			got = append(got, n.String())
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules without effect:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	log := f.log.String()
	if n := strings.Count(log, `level=WARN msg="senders: rule has no effect"`); n != len(want) {
		t.Errorf("%d warnings logged, want %d:\n%s", n, len(want), log)
	}
	for _, w := range want {
		if line, _, _ := strings.Cut(w, " never"); !strings.Contains(log, `level=WARN msg="senders: rule has no effect" line="`+line+` never matches: `) {
			t.Errorf("no warning for %s in the log:\n%s", line, log)
		}
	}

	// The rest of the file is in force; the rules warned of do not match
	// even the text of their key.
	if got := f.Rules().Len(); got != 11 {
		t.Errorf("%d rules in force, want 11", got)
	}
	for _, tc := range []struct {
		from, helo, host string
		want             filters.Action
	}{
		{"a@spam.example", "h.example", "mx.example", filters.Reject},
		{"bob@example.com", "h.example", "mx.example", filters.Reject},
		{"a@fine.example", "dialup.example", "mx.example", filters.Reject},
		{"a@fine.example", "unknown", "mx.example", filters.Reject},
		{"a@fine.example", "h.example", "unknown.example", filters.Reject},
		{"a@fine.example", "h.example", "dynamic.example", filters.Reject},
		{"a@fine.example", "bob@example.com", "mx.example", filters.Continue},
		{"a@fine.example", "h.example", "abuse@mx.example", filters.Continue},
		{"a@fine.example", "x+y@", "unknown", filters.Continue},
	} {
		if v := check(t, f.Filter, filters.StageMailFrom, message(tc.from, tc.helo, tc.host)); v.Action != tc.want {
			t.Errorf("from %s helo %s client %s: %s (%s), want %s", tc.from, tc.helo, tc.host, v.Action, v.Reason, tc.want)
		}
	}
}

// A rule without effect is warned of however many lines a Sendmail
// access file skips before it (IP address and To: entries, by the
// hundred in some); the skipped lines are logged at debug up to a bound.
func TestFilterWarningsNotCrowdedOutBySkippedLines(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "access")
	var b strings.Builder
	for i := 1; i <= 2*maxLoggedNotes; i++ {
		fmt.Fprintf(&b, "To:user%d@example.com RELAY\n", i)
	}
	b.WriteString("dup.example REJECT\ndup.example OK\n")
	writeFile(t, rules, b.String())
	f := newTestFilter(t, Config{Files: []FileConfig{{Path: rules}}}, nil, "")
	log := f.log.String()
	if want := fmt.Sprintf(`level=WARN msg="senders: rule has no effect" line="%s:%d: dup.example is hidden by`, rules, 2*maxLoggedNotes+2); !strings.Contains(log, want) {
		t.Errorf("log without %q:\n%s", want, log)
	}
	if n := strings.Count(log, `msg="senders: line skipped"`); n != maxLoggedNotes {
		t.Errorf("%d skipped lines logged, want %d", n, maxLoggedNotes)
	}
	if want := fmt.Sprintf(`msg="senders: more skipped lines not shown" count=%d`, maxLoggedNotes); !strings.Contains(log, want) {
		t.Errorf("log without %q:\n%s", want, log)
	}
}
