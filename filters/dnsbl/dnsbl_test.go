package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// The tests run against a real DNS server on 127.0.0.1 (package
// dnsbltest, built on miekg/dns), serving the zone bl.test and friends.

func TestListedIPv4RejectsAtConnect(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{
		Zone:  "bl.test",
		Codes: map[string]string{"127.0.0.2": "spam source", "127.0.0.4": "exploited host"},
		Reply: "550 5.7.1 Go away: {listed} is on {zone} ({reason}, code {code})",
	}), nil)

	if got := e.f.Needs(); !got.Stages.Has(filters.StageConnect) || got.Stages.Has(filters.StageHeaders) || got.Headers {
		t.Errorf("Needs %+v: want the connect stage only", got)
	}
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Action != filters.Reject || v.Reply == nil {
		t.Fatalf("verdict %+v, want reject with a reply", v)
	}
	if want := "550 5.7.1 Go away: 192.0.2.1 is on bl.test (spam source, code 127.0.0.2)"; v.Reply.String() != want {
		t.Errorf("reply %q, want %q", v.Reply, want)
	}
	if !strings.Contains(v.Reason, "client 192.0.2.1 in bl.test (127.0.0.2)") {
		t.Errorf("reason %q does not name the listing", v.Reason)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("%d queries at the server, want 1", n)
	}
	for _, k := range []string{"lookup bl.test listed", "listed bl.test 127.0.0.2"} {
		if e.obs.get(k) != 1 {
			t.Errorf("observer: %s = %d, want 1 (%s)", k, e.obs.get(k), e.obs)
		}
	}
	// The default reply names the list, as Postfix's reject_rbl_client does.
	e2 := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	v = e2.check(t, filters.StageConnect, conn("192.0.2.1"))
	if want := "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using bl.test (127.0.0.2)"; v.Reply == nil || v.Reply.String() != want {
		t.Errorf("default reply %v, want %q", v.Reply, want)
	}
}

func TestListedIPv6(t *testing.T) {
	srv := dnsbltest.Start(t)
	// 2001:db8::1 reversed nibble by nibble (RFC 5782 2.4), written out
	// by hand rather than computed by the code under test.
	name := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl6.test"
	srv.AddA(name, 300, "127.0.0.3")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl6.test", Action: "tempfail"}), nil)
	v := e.check(t, filters.StageConnect, conn("2001:db8::1"))
	if v.Action != filters.Tempfail || v.Reply == nil || v.Reply.Code != 451 {
		t.Fatalf("verdict %+v, want tempfail 451", v)
	}
	if !strings.Contains(v.Reply.Text, "[2001:db8::1]") || !strings.Contains(v.Reply.Text, "bl6.test") {
		t.Errorf("reply %q does not name the address and the list", v.Reply)
	}
	if n := srv.Count(name, dns.TypeA); n != 1 {
		t.Errorf("queries for %s: %d, want 1; all queries: %v", name, n, srv.Queries())
	}
	// An IPv4-only list is not asked about IPv6 clients.
	e4 := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "v4only.test", Family: "ipv4"}), nil)
	if v := e4.check(t, filters.StageConnect, conn("2001:db8::1")); v.Action != filters.Continue {
		t.Errorf("ipv4 list, IPv6 client: %+v", v)
	}
	for _, q := range srv.Queries() {
		if strings.HasSuffix(q.Name, "v4only.test") {
			t.Errorf("IPv4-only list asked %s", q.Name)
		}
	}
}

func TestNotListed(t *testing.T) {
	srv := dnsbltest.Start(t)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	v := e.check(t, filters.StageConnect, conn("192.0.2.9"))
	if v.Action != filters.Continue {
		t.Fatalf("NXDOMAIN: verdict %+v, want continue", v)
	}
	if e.obs.get("lookup bl.test not_listed") != 1 || srv.Count("9.2.0.192.bl.test", dns.TypeA) != 1 {
		t.Errorf("observer %s, queries %v", e.obs, srv.Queries())
	}
	// A code the zone does not count is no listing either.
	srv.AddA("8.2.0.192.bl.test", 300, "127.0.0.10")
	e2 := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test", Codes: map[string]string{"127.0.0.2": "x"}}), nil)
	if v := e2.check(t, filters.StageConnect, conn("192.0.2.8")); v.Action != filters.Continue {
		t.Errorf("unlisted code: verdict %+v, want continue", v)
	}
}

// 127.255.255.254 is Spamhaus's "query via public resolver" answer: an
// error, never a listing.
func TestRefusalCodeIsAnError(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.255.255.254")
	srv.AddA("2.2.0.192.bl.test", 300, "127.0.0.1")
	srv.AddA("3.2.0.192.bl.test", 300, "192.0.2.200")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("%s: verdict %+v, want continue", ip, v)
		}
	}
	if e.obs.get("error bl.test list_refused") != 2 || e.obs.get("error bl.test bad_answer") != 1 || e.obs.get("lookup bl.test error") != 3 {
		t.Errorf("observer: %s", e.obs)
	}
	if e.obs.get("lookup bl.test listed") != 0 {
		t.Error("a refusal code counted as listing")
	}
	if !strings.Contains(e.log.String(), "refuses the query") {
		t.Errorf("the refusal is not logged:\n%s", e.log)
	}
}

// Every Spamhaus refusal code (typing error in the zone name, public
// resolver, over quota) is an error, never a listing, also next to a
// code that counts, and so is an answer with an address outside
// 127.0.0.0/8 next to one: no client is refused on such an answer.
func TestRefusalCodesNeverList(t *testing.T) {
	srv := dnsbltest.Start(t)
	cases := []struct {
		ip    string
		codes []string
		kind  string
	}{
		{"192.0.2.11", []string{"127.255.255.252"}, KindListRefused},
		{"192.0.2.12", []string{"127.255.255.255"}, KindListRefused},
		{"192.0.2.13", []string{"127.0.0.2", "127.255.255.254"}, KindListRefused},
		{"192.0.2.14", []string{"127.0.0.1", "127.0.0.2"}, KindListRefused},
		{"192.0.2.15", []string{"127.0.0.2", "192.0.2.99"}, KindBadAnswer},
	}
	for _, c := range cases {
		srv.AddA(reverseIP(netip.MustParseAddr(c.ip))+".bl.test", 300, c.codes...)
	}
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test", Codes: map[string]string{"127.0.0.2": "SBL"}}), nil)
	for _, c := range cases {
		before := e.obs.get("error bl.test " + c.kind)
		if v := e.check(t, filters.StageConnect, conn(c.ip)); v.Action != filters.Continue {
			t.Errorf("%s answered %v: verdict %+v, want continue", c.ip, c.codes, v)
		}
		if e.obs.get("error bl.test "+c.kind) != before+1 {
			t.Errorf("%s answered %v: observer %s, want one more error of kind %s", c.ip, c.codes, e.obs, c.kind)
		}
	}
	if n := e.obs.get("lookup bl.test listed"); n != 0 {
		t.Errorf("%d listings, want none: %s", n, e.obs)
	}
}

// A server that never answers: the check ends within the configured
// timeouts and the client is not refused.
func TestTimeoutFailsOpen(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetBehaviour("1.2.0.192.bl.test", dnsbltest.Drop)
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Timeout = 200 * time.Millisecond
	cfg.Attempts = 2
	e := newEnv(t, srv, cfg, nil)
	start := time.Now()
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	took := time.Since(start)
	if v.Action != filters.Continue {
		t.Fatalf("verdict %+v, want continue (fail open)", v)
	}
	// Two attempts of 200 ms each: at least 400 ms (it did wait), and
	// well within the 10 s default filter timeout.
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("took %s, want about 400ms", took)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 2 {
		t.Errorf("%d queries, want 2 (attempts)", n)
	}
	if e.obs.get("error bl.test timeout") != 1 || e.obs.get("lookup bl.test error") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
	// The failure is remembered for failure_ttl: the next check does not
	// wait again.
	start = time.Now()
	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("second check took %s; the cached failure should answer at once", took)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 2 {
		t.Errorf("%d queries after the second check, want still 2", n)
	}
	e.clock.Advance(DefaultFailureTTL + time.Second)
	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 4 {
		t.Errorf("%d queries after failure_ttl, want 4", n)
	}
}

// The filter's deadline cuts a lookup short: the filter answers before
// the deadline, counting the unanswered list as a failed lookup (not
// listed), so the pipeline does not go on without its verdict.
func TestContextDeadline(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetBehaviour("1.2.0.192.bl.test", dnsbltest.Drop)
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Timeout = 2 * time.Second
	e := newEnv(t, srv, cfg, nil)
	// A second, of which the filter keeps a quarter (see marginContext)
	// to answer in: with 100 ms, its 25 ms were too few on a machine
	// with a load of 12.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := e.f.Check(ctx, filters.StageConnect, conn("192.0.2.1"))
	if err != nil {
		t.Fatalf("err %v, want an answer before the deadline", err)
	}
	if ctx.Err() != nil {
		t.Errorf("the filter answered after its deadline")
	}
	if v.Action != filters.Continue {
		t.Errorf("verdict %+v, want continue (fail open)", v)
	}
	if e.obs.get("error bl.test timeout") != 1 || e.obs.get("lookup bl.test error") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
	// A context that is already over is the filter's failure.
	<-ctx.Done()
	_, err = e.f.Check(ctx, filters.StageConnect, conn("192.0.2.1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v with an expired context, want the deadline", err)
	}
}

// A check its caller gives up (the daemon stopping, past its shutdown
// timeout, cancels every session's context) fails as a whole; the list
// it was waiting for did not fail, and is not counted or logged as
// having timed out.
func TestCancelledCheckIsNoListTimeout(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 300, "127.0.0.2")
	gate := make(chan struct{})
	defer close(gate)
	srv.Hold(name, gate)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := e.f.Check(ctx, filters.StageConnect, conn("192.0.2.1"))
		errc <- err
	}()
	waitFor(t, "the query to reach the server", func() bool { return srv.Count(name, dns.TypeA) == 1 })
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the check did not end when its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want the cancellation", err)
	}
	if e.obs.get("error bl.test timeout") != 0 || e.obs.get("lookup bl.test error") != 0 {
		t.Errorf("observer: %s, want no error counted against the list", e.obs)
	}
	if log := e.logText(); strings.Contains(log, "level=WARN") {
		t.Errorf("a warning for a check its caller gave up:\n%s", log)
	}
}

// One list that answers "listed" and one whose answers hang past the
// filter's time limit: the listing still refuses the client, in time for
// the pipeline, instead of the whole step failing (which on_failure
// accept would turn into a delivered message).
func TestListingSurvivesHangingList(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.a.test", 300, "127.0.0.2")
	srv.AddA("1.2.0.192.b.test", 300, "127.0.0.2")
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("1.2.0.192.b.test", gate)
	cfg := baseConfig(srv, ZoneConfig{Zone: "a.test"}, ZoneConfig{Zone: "b.test"})
	cfg.Timeout = 30 * time.Second // a held query outlives the filter's limit
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)

	p := filters.NewPipeline([]filters.Step{{Filter: e.f, Timeout: 2 * time.Second, OnFailure: filters.FailAccept}}, nil)
	res := p.Run(context.Background(), filters.StageConnect, conn("192.0.2.1"))
	if len(res.Decisions) != 1 || res.Decisions[0].Failure != "" {
		t.Fatalf("decisions %+v: the filter failed", res.Decisions)
	}
	if res.Verdict.Action != filters.Reject || !strings.Contains(res.Verdict.Reason, "a.test") {
		t.Errorf("verdict %+v, want reject by a.test", res.Verdict)
	}
	if n := srv.Count("1.2.0.192.b.test", dns.TypeA); n != 1 {
		t.Errorf("%d queries to b.test, want 1 (the test did not exercise a held lookup)", n)
	}
	if e.obs.get("error b.test timeout") != 1 {
		t.Errorf("the unanswered list is not counted as a timeout: %s", e.obs)
	}
}

// Fields of the filter's names that the message came with are deleted
// even when a lookup at the end of the header block hangs past the
// filter's time limit: the step answers in time, so on_failure accept
// cannot deliver the forged fields.
func TestForgedFieldsDeletedWhenLookupsHang(t *testing.T) {
	srv := dnsbltest.Start(t)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("spam.example.dbl.test", gate)
	srv.Hold("1.2.0.192.tag.test", gate)
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}},
		ZoneConfig{Zone: "tag.test", Action: "tag"},
	)
	cfg.Timeout = 30 * time.Second
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)

	m := message("192.0.2.1", "mx.example", "a@example.org", "<b@spam.example>")
	m.Headers = append(m.Headers,
		filters.Header{Name: "X-Sluice-DNSBL", Value: "forged"},
		filters.Header{Name: "X-Sluice-DNSBL-Score", Value: "0"})
	p := filters.NewPipeline([]filters.Step{{Filter: e.f, Timeout: 2 * time.Second, OnFailure: filters.FailAccept}}, nil)
	res := p.Run(context.Background(), filters.StageHeaders, m)
	if len(res.Decisions) != 1 || res.Decisions[0].Failure != "" {
		t.Fatalf("decisions %+v: the filter failed", res.Decisions)
	}
	for _, h := range m.Headers {
		if strings.HasPrefix(strings.ToLower(h.Name), "x-sluice-dnsbl") {
			t.Errorf("forged field %s: %s delivered", h.Name, h.Value)
		}
	}
	if n := srv.Count("spam.example.dbl.test", dns.TypeA); n != 1 {
		t.Errorf("%d queries for the From domain, want 1 (the test did not exercise a held lookup)", n)
	}
}

// The share of the filter's time kept for answering (a quarter, at most
// 1 s) is kept once per call, from the time left when the call starts.
// At the end of the header block the lookups of the From domain in the
// refusing lists, then those of the tag lists, each kept a quarter of the
// time left when they started: with both hanging the filter answered
// with a sixteenth of its time left (125 ms of 2 s), and on a loaded
// machine past its limit, where it fails as a whole, on_failure applies
// and the forged fields go out (TestForgedFieldsDeletedWhenLookupsHang
// failed so under load).
func TestTimeKeptOnceWhenLookupsHang(t *testing.T) {
	srv := dnsbltest.Start(t)
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("spam.example.dbl.test", gate)
	srv.Hold("1.2.0.192.tag.test", gate)
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}},
		ZoneConfig{Zone: "tag.test", Action: "tag"},
	)
	cfg.Timeout = 30 * time.Second
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)

	const limit = 2 * time.Second
	m := message("192.0.2.1", "mx.example", "a@example.org", "<b@spam.example>")
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	deadline, _ := ctx.Deadline()
	v, err := e.f.Check(ctx, filters.StageHeaders, m)
	left := time.Until(deadline)
	if err != nil || v.Action != filters.Continue {
		t.Fatalf("%v, %v; want continue, no error", v.Action, err)
	}
	// A quarter is kept: 500 ms. Half of it is room for a slow machine.
	if kept := limit / 4; left < kept/2 {
		t.Errorf("answered with %s of %s left, want about %s", left.Round(time.Millisecond), limit, kept)
	}
	// The tag lookup, started when the time for lookups was up, is sent
	// all the same, its answer for the next message.
	waitFor(t, "both held queries (the test exercises both held lookups)", func() bool {
		return srv.Count("spam.example.dbl.test", dns.TypeA) == 1 && srv.Count("1.2.0.192.tag.test", dns.TypeA) == 1
	})
}

func TestServfailFailsOpen(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetBehaviour("1.2.0.192.bl.test", dnsbltest.ServFail)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Fatalf("verdict %+v, want continue", v)
	}
	if e.obs.get("error bl.test servfail") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != DefaultAttempts {
		t.Errorf("%d queries, want %d", n, DefaultAttempts)
	}
	if !strings.Contains(e.log.String(), "SERVFAIL") {
		t.Errorf("SERVFAIL not logged:\n%s", e.log)
	}
}

// A server whose answers no longer reach us: connection refused, counted
// as a network error, not listed.
func TestStoppedServerFailsOpen(t *testing.T) {
	srv := dnsbltest.Start(t)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	srv.Stop()
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Fatalf("verdict %+v, want continue", v)
	}
	if e.obs.get("error bl.test network")+e.obs.get("error bl.test timeout") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 300, "127.0.0.2")
	srv.SetBehaviour(name, dnsbltest.Truncate)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Fatalf("verdict %+v, want reject from the TCP answer", v)
	}
	if u, c := srv.CountNet(name, dns.TypeA, "udp"), srv.CountNet(name, dns.TypeA, "tcp"); u != 1 || c != 1 {
		t.Errorf("%d UDP and %d TCP queries, want 1 and 1", u, c)
	}
}

// A UDP answer that did not come whole though its TC bit is clear is
// asked for again over TCP, as a truncated one is: one longer than the
// 1232 bytes the query advertised (the read keeps only those, so it did
// not parse and counted as a bad answer, the listing lost), and one that
// a server or middlebox cut inside a record or between two. So is one
// whose TC bit is set but that keeps the record counts of the whole
// answer, so that it does not parse: it must not count as a network
// failure that loses the listing.
func TestCutAnswerRetriedOverTCP(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    dnsbltest.Behaviour
	}{
		{"TC set, counts of the whole answer", dnsbltest.TruncateCut},
		{"longer than advertised", dnsbltest.Oversize},
		{"cut inside a record", dnsbltest.CutWithoutTC},
		// miekg/dns reads the records that are there and no more: the
		// answer parses, and without the listing it carried it lists
		// nothing.
		{"cut between records", dnsbltest.CutAtRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnsbltest.Start(t)
			name := "1.2.0.192.bl.test"
			srv.AddA(name, 300, "127.0.0.2")
			srv.SetBehaviour(name, tc.b)
			cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
			cfg.Attempts = 1
			e := newEnv(t, srv, cfg, nil)
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
				t.Fatalf("verdict %+v, want reject from the TCP answer; observer: %s", v, e.obs)
			}
			if u, c := srv.CountNet(name, dns.TypeA, "udp"), srv.CountNet(name, dns.TypeA, "tcp"); u != 1 || c != 1 {
				t.Errorf("%d UDP and %d TCP queries, want 1 and 1", u, c)
			}
			if n := e.obs.get("error bl.test " + KindBadAnswer); n != 0 {
				t.Errorf("observer: %s, want no bad answer", e.obs)
			}
		})
	}
}

func TestTTLExpiry(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 60, "127.0.0.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	count := func() int { return srv.Count(name, dns.TypeA) }

	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	e.clock.Advance(59 * time.Second)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject || count() != 1 {
		t.Fatalf("at 59s of a 60s TTL: %v, %d queries; want the cached listing, 1 query", v.Action, count())
	}
	if e.obs.get("cachehit bl.test") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
	// The list delists the address; once the TTL has run out, the
	// cache must not keep the stale listing.
	srv.Remove(name)
	e.clock.Advance(2 * time.Second)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue || count() != 2 {
		t.Fatalf("at 61s: %v, %d queries; want a new query finding no listing", v.Action, count())
	}

	// max_ttl caps a long TTL.
	srv.AddA("2.2.0.192.bl.test", 86400, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.MaxTTL = dur(10 * time.Second)
	e2 := newEnv(t, srv, cfg, nil)
	e2.check(t, filters.StageConnect, conn("192.0.2.2"))
	e2.clock.Advance(11 * time.Second)
	e2.check(t, filters.StageConnect, conn("192.0.2.2"))
	if n := srv.Count("2.2.0.192.bl.test", dns.TypeA); n != 2 {
		t.Errorf("max_ttl 10s: %d queries after 11s, want 2", n)
	}
}

// max_ttl: 0s caches no answer, as failure_ttl: 0s remembers no failure:
// an administrator whose own resolver caches may want every lookup to
// reach it. It must not mean the default hour.
func TestMaxTTLZeroCachesNothing(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 3600, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.MaxTTL = dur(0)
	e := newEnv(t, srv, cfg, nil)
	for i := range 3 {
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
			t.Fatalf("check %d: %v, want reject", i+1, v.Action)
		}
		if i == 0 {
			e.clock.Advance(time.Second)
		}
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 3 {
		t.Errorf("max_ttl 0s: %d queries for 3 checks, want 3", n)
	}
	// NXDOMAIN with an SOA is not cached either.
	for range 2 {
		e.check(t, filters.StageConnect, conn("192.0.2.9"))
	}
	if n := srv.Count("9.2.0.192.bl.test", dns.TypeA); n != 2 {
		t.Errorf("max_ttl 0s, NXDOMAIN: %d queries for 2 checks, want 2", n)
	}
	if n := e.f.cache.len(); n != 0 {
		t.Errorf("max_ttl 0s: %d answers cached", n)
	}
}

// RFC 2308: a negative answer is cached for min(SOA TTL, SOA MINIMUM);
// without an SOA it is not cached.
func TestNegativeCaching(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetNegativeTTL(300, 30)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	name := "7.2.0.192.bl.test"
	e.check(t, filters.StageConnect, conn("192.0.2.7"))
	e.clock.Advance(29 * time.Second)
	e.check(t, filters.StageConnect, conn("192.0.2.7"))
	if n := srv.Count(name, dns.TypeA); n != 1 {
		t.Fatalf("within the SOA minimum: %d queries, want 1", n)
	}
	e.clock.Advance(2 * time.Second)
	e.check(t, filters.StageConnect, conn("192.0.2.7"))
	if n := srv.Count(name, dns.TypeA); n != 2 {
		t.Fatalf("after the SOA minimum: %d queries, want 2", n)
	}
	// The SOA's own TTL bounds it when it is the smaller one.
	srv.SetNegativeTTL(5, 3600)
	e.clock.Advance(time.Hour)
	e.check(t, filters.StageConnect, conn("192.0.2.7")) // 3
	e.clock.Advance(6 * time.Second)
	e.check(t, filters.StageConnect, conn("192.0.2.7")) // 4
	if n := srv.Count(name, dns.TypeA); n != 4 {
		t.Errorf("SOA TTL 5s: %d queries, want 4", n)
	}
	// No SOA: not cached at all.
	srv.SetNegativeTTL(0, 0)
	e.clock.Advance(time.Hour)
	e.check(t, filters.StageConnect, conn("192.0.2.7"))
	e.check(t, filters.StageConnect, conn("192.0.2.7"))
	if n := srv.Count(name, dns.TypeA); n != 6 {
		t.Errorf("no SOA: %d queries, want 6", n)
	}
}

// 100 concurrent checks of one address make one query. The answer has TTL
// 0, so nothing is cached: only coalescing can keep it to one query.
func TestCoalescing(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 0, "127.0.0.2")
	gate := make(chan struct{})
	srv.Hold(name, gate)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)

	const n = 100
	verdicts := make([]filters.Verdict, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			verdicts[i], errs[i] = e.f.Check(ctx, filters.StageConnect, conn("192.0.2.1"))
		}()
	}
	key := cacheKey{name: name, qtype: dns.TypeA}
	waitFor(t, "100 lookups waiting for one query", func() bool { return e.f.cache.waiting(key) == n })
	close(gate)
	wg.Wait()
	for i := range verdicts {
		if errs[i] != nil || verdicts[i].Action != filters.Reject {
			t.Fatalf("check %d: %+v, %v", i, verdicts[i], errs[i])
		}
	}
	if got := srv.Count(name, dns.TypeA); got != 1 {
		t.Errorf("%d queries at the server for %d concurrent checks, want 1", got, n)
	}
	// TTL 0: the next check asks again.
	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if got := srv.Count(name, dns.TypeA); got != 2 {
		t.Errorf("after the coalesced query: %d queries, want 2 (TTL 0 is not cached)", got)
	}
}

func TestSkips(t *testing.T) {
	srv := dnsbltest.Start(t)
	for _, ip := range []string{"1.0.0.127", "3.2.1.10", "1.1.16.172", "1.0.168.192", "1.1.254.169", "1.0.64.100", "5.2.0.192", "6.2.0.192"} {
		srv.AddA(ip+".bl.test", 300, "127.0.0.2")
	}
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), nil)
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "172.16.1.1", "192.168.0.1", "169.254.1.1", "100.64.0.1", "::1", "fe80::1", "fd00::1"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("%s: %+v, want continue (skipped)", ip, v)
		}
	}
	// No IP address at all (a local submission over a unix socket).
	if v := e.check(t, filters.StageConnect, conn("")); v.Action != filters.Continue {
		t.Errorf("no address: %+v", v)
	}
	if q := srv.Queries(); len(q) != 0 {
		t.Errorf("queries for skipped clients: %v", q)
	}

	// Tests (and admins) can turn the private skip off and add trusted
	// networks of their own.
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.SkipPrivate = ptr(false)
	cfg.TrustedNetworks = []string{"192.0.2.4/31", "192.0.2.6"}
	e2 := newEnv(t, srv, cfg, nil)
	if v := e2.check(t, filters.StageConnect, conn("127.0.0.1")); v.Action != filters.Reject {
		t.Errorf("loopback with skip_private off: %+v, want reject", v)
	}
	for _, ip := range []string{"192.0.2.5", "192.0.2.6"} {
		if v := e2.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("trusted %s: %+v", ip, v)
		}
	}

	// Authenticated senders are skipped from MAIL FROM on, when the MTA
	// says who they are.
	cfg = baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.IPStage = "mail"
	e3 := newEnv(t, srv, cfg, nil)
	m := message("192.0.2.5", "client.example", "a@example.org", "")
	if got := e3.f.Needs().Stages; got.Has(filters.StageConnect) || !got.Has(filters.StageMailFrom) {
		t.Errorf("ip_stage mail: stages %s", got)
	}
	if v := e3.check(t, filters.StageConnect, m); v.Action != filters.Continue {
		t.Errorf("ip_stage mail, at connect: %+v", v)
	}
	m.Macros["{auth_authen}"] = "alice"
	if v := e3.check(t, filters.StageMailFrom, m); v.Action != filters.Continue {
		t.Errorf("authenticated: %+v, want continue", v)
	}
	if n := srv.Count("5.2.0.192.bl.test", dns.TypeA); n != 0 {
		t.Errorf("authenticated sender looked up %d times", n)
	}
	m.Macros["{auth_authen}"] = ""
	if v := e3.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
		t.Errorf("not authenticated, at mail: %+v, want reject", v)
	}
}

func TestDomainLists(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	srv.AddA("phish.example.dbl.test", 300, "127.0.1.4")
	srv.AddTXT("phish.example.dbl.test", 300, "Phishing domain, see https://dbl.test/phish.example")
	srv.AddA("bad-helo.example.helo.test", 300, "127.0.0.2")
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "dbl.test", Type: "domain", Codes: map[string]string{"127.0.1.2": "spam domain", "127.0.1.0/24": "listed domain"}},
		ZoneConfig{Zone: "helo.test", Type: "domain", Check: []string{"helo"}, Action: "tag", Score: ptr(2.5)},
		ZoneConfig{Zone: "dbl2.test", Type: "domain", Check: []string{"header_from"}, Action: "tag", TXT: true},
	)
	e := newEnv(t, srv, cfg, nil)
	needs := e.f.Needs()
	if needs.Stages.Has(filters.StageConnect) || !needs.Stages.Has(filters.StageMailFrom) || !needs.Stages.Has(filters.StageHeaders) || !needs.Headers {
		t.Errorf("Needs %+v", needs)
	}

	// Envelope sender listed: refused at MAIL FROM with a reply naming
	// the domain and the list.
	m := message("192.0.2.1", "mx.example", "Bob@Spammer.Example", "")
	v := e.check(t, filters.StageMailFrom, m)
	if want := "554 5.7.1 Domain spammer.example blocked using dbl.test (spam domain)"; v.Action != filters.Reject || v.Reply == nil || v.Reply.String() != want {
		t.Errorf("listed sender: %+v, want reply %q", v, want)
	}

	// Header From listed in a refusing list: refused at the end of the
	// headers, the most specific code rule giving the reason.
	m = message("192.0.2.1", "mx.example", "bob@fine.example", `"Bank" <security@phish.example>`)
	if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Continue {
		t.Errorf("clean sender at mail: %+v", v)
	}
	v = e.check(t, filters.StageHeaders, m)
	if want := "554 5.7.1 Domain phish.example blocked using dbl.test (listed domain)"; v.Action != filters.Reject || v.Reply == nil || v.Reply.String() != want {
		t.Errorf("listed From: %+v, want reply %q", v, want)
	}

	// HELO listed in a tag list, and the From domain in another one with
	// its TXT reason: header fields and the summed score.
	srv.AddA("phish.example.dbl2.test", 300, "127.0.0.2")
	srv.AddTXT("phish.example.dbl2.test", 300, "Phishing\x01 domain \"quoted\"")
	m = message("192.0.2.1", "Bad-Helo.Example", "bob@fine.example", "x <a@phish.example>")
	e2 := newEnv(t, srv, baseConfig(srv,
		ZoneConfig{Zone: "helo.test", Type: "domain", Check: []string{"helo"}, Action: "tag", Score: ptr(2.5)},
		ZoneConfig{Zone: "dbl2.test", Type: "domain", Check: []string{"header_from"}, Action: "tag", TXT: true},
	), nil)
	if v := e2.check(t, filters.StageMailFrom, m); v.Action != filters.Continue || len(v.Edits) != 0 {
		t.Errorf("tag list at mail: %+v, want continue without edits", v)
	}
	v = e2.check(t, filters.StageHeaders, m)
	if v.Action != filters.Continue {
		t.Fatalf("tag lists: %+v", v)
	}
	var got []string
	for _, ed := range v.Edits {
		got = append(got, ed.Kind.String()+" "+ed.Name+": "+ed.Value)
	}
	want := []string{
		"add X-Sluice-DNSBL: helo.test; helo=bad-helo.example; code=127.0.0.2; score=2.5;\n\treason=\"127.0.0.2\"",
		"add X-Sluice-DNSBL: dbl2.test; from=phish.example; code=127.0.0.2; score=1;\n\treason=\"Phishing domain 'quoted'\"",
		"add X-Sluice-DNSBL-Score: 3.5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("edits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, ed := range v.Edits {
		if err := ed.Validate(); err != nil {
			t.Error(err)
		}
	}
	// The HELO lookup started at MAIL FROM; at the headers it came from
	// the cache.
	if n := srv.Count("bad-helo.example.helo.test", dns.TypeA); n != 1 {
		t.Errorf("HELO looked up %d times, want 1", n)
	}

	// One domain as envelope sender and From: one listing, counted once.
	e3 := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl2.test", Type: "domain", Action: "tag"}), nil)
	m = message("192.0.2.1", "mx.example", "a@Phish.Example", "b@phish.example")
	e3.check(t, filters.StageMailFrom, m)
	v = e3.check(t, filters.StageHeaders, m)
	if len(v.Edits) != 2 || v.Edits[1].Value != "1" || !strings.HasPrefix(v.Edits[0].Value, "dbl2.test; sender=phish.example;") {
		t.Errorf("same domain as sender and From: %+v", v.Edits)
	}
	if got := e3.obs.get("lookup dbl2.test listed"); got != 1 {
		t.Errorf("same domain as sender and From checked %d times, want 1", got)
	}
}

// Trailing dots do not change a domain (senders compares it so too):
// "spammer.example.." is checked as spammer.example, in the envelope and
// in the From field, and is no way around a domain list.
func TestTrailingDotsDoNotEvadeDomainLists(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender", "header_from"}}), nil)
	m := message("192.0.2.1", "mx.example", "bob@spammer.example..", "")
	if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
		t.Errorf("sender with trailing dots: %+v, want reject", v)
	}
	m = message("192.0.2.1", "mx.example", "bob@fine.example", "<bob@Spammer.Example...>")
	if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
		t.Errorf("From with trailing dots: %+v, want reject", v)
	}
	// UTS 46 maps the ideographic, full-width and half-width full stops
	// to '.': each is a final dot too.
	for _, dot := range []string{"。", "．", "｡"} {
		m := message("192.0.2.1", "mx.example", "bob@spammer.example"+dot, "")
		if v := e.check(t, filters.StageMailFrom, m); v.Action != filters.Reject {
			t.Errorf("sender bob@spammer.example%s: %+v, want reject", dot, v)
		}
		m = message("192.0.2.1", "mx.example", "bob@fine.example", "Bank <bob@spammer.example"+dot+">")
		if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
			t.Errorf("From bob@spammer.example%s: %+v, want reject", dot, v)
		}
	}
}

// A From field net/mail cannot parse is searched for addresses, at most
// maxFromDomains domains of them. Decoy addresses in the display name must
// not crowd out the address in angle brackets, which is what mail
// readers show as the sender.
func TestBrokenFromDecoysDoNotHideTheAddress(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	from := "a@1.example b@2.example c@3.example d@4.example e@5.example <bob@spammer.example>"
	if _, err := mail.ParseAddressList(from); err == nil {
		t.Fatalf("net/mail parses %q; the test needs a field it refuses", from)
	}
	m := message("192.0.2.1", "mx.example", "bob@fine.example", from)
	if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
		t.Errorf("From %q: %+v, want reject", from, v)
	}
}

// Scores add up as the decimal numbers the configuration writes: in
// binary floating point 0.7 + 0.1 + 0.1 + 0.1 is 0.9999999999999999 and
// 0.1 + 0.2 is 0.30000000000000004, so four listings worth 1 together
// reached no threshold of 1, and the score field showed the binary
// approximation.
func TestScoreSumsDecimals(t *testing.T) {
	srv := dnsbltest.Start(t)
	for _, z := range []string{"a.test", "b.test", "c.test", "d.test"} {
		srv.AddA("1.2.0.192."+z, 300, "127.0.0.2")
	}
	for _, tc := range []struct {
		scores    []float64
		threshold float64
		want      string
	}{
		{[]float64{0.7, 0.1, 0.1, 0.1}, 1, "1"},
		{[]float64{0.1, 0.2}, 0.3, "0.3"},
	} {
		var zones []ZoneConfig
		for i, sc := range tc.scores {
			zones = append(zones, ZoneConfig{Zone: string(rune('a'+i)) + ".test", Action: "tag", Score: ptr(sc)})
		}
		cfg := baseConfig(srv, zones...)
		cfg.Score = ScoreConfig{Threshold: tc.threshold, Action: "quarantine"}
		e := newEnv(t, srv, cfg, nil)
		m := message("192.0.2.1", "mx.example", "a@example.org", "")
		v := e.check(t, filters.StageHeaders, m)
		if v.Action != filters.Quarantine {
			t.Errorf("scores %v, threshold %v: action %s, want quarantine", tc.scores, tc.threshold, v.Action)
		}
		after := filters.ApplyEdits(append([]filters.Header(nil), m.Headers...), v.Edits)
		if got, _ := (&filters.Message{Headers: after}).Header(DefaultScoreHeader); got != tc.want {
			t.Errorf("scores %v: %s %q, want %q", tc.scores, DefaultScoreHeader, got, tc.want)
		}
	}
}

func TestScoreThresholdAndForgedHeaders(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.a.test", 300, "127.0.0.2")
	srv.AddA("1.2.0.192.b.test", 300, "127.0.0.3")
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "a.test", Action: "tag"},
		ZoneConfig{Zone: "b.test", Action: "tag", Score: ptr(1.5)},
	)
	cfg.Score = ScoreConfig{Threshold: 2.5, Reply: "550 5.7.1 Score {score} reached {threshold} on {zones}"}
	e := newEnv(t, srv, cfg, nil)
	m := message("192.0.2.1", "mx.example", "a@example.org", "")
	if v := e.check(t, filters.StageConnect, m); v.Action != filters.Continue {
		t.Fatalf("tag lists at connect: %+v", v)
	}
	v := e.check(t, filters.StageHeaders, m)
	if want := "550 5.7.1 Score 2.5 reached 2.5 on a.test, b.test"; v.Action != filters.Reject || v.Reply == nil || v.Reply.String() != want {
		t.Errorf("score: %+v, want %q", v, want)
	}

	// Below the threshold the message is tagged, and fields of our names
	// the sender put in are deleted first.
	cfg.Score = ScoreConfig{Threshold: 3, Action: "quarantine"}
	e2 := newEnv(t, srv, cfg, nil)
	m = message("192.0.2.1", "mx.example", "a@example.org", "")
	m.Headers = append(m.Headers,
		filters.Header{Name: "X-Sluice-DNSBL", Value: "forged 1"},
		filters.Header{Name: "x-sluice-dnsbl-score", Value: "0"},
		filters.Header{Name: "X-Sluice-DNSBL", Value: "forged 2"})
	v = e2.check(t, filters.StageHeaders, m)
	if v.Action != filters.Continue || len(v.Edits) != 6 {
		t.Fatalf("below threshold: %+v", v)
	}
	after := filters.ApplyEdits(append([]filters.Header(nil), m.Headers...), v.Edits)
	var names []string
	for _, h := range after {
		names = append(names, h.Name+"="+strings.SplitN(h.Value, ";", 2)[0])
	}
	if want := "Subject=test X-Sluice-DNSBL=a.test X-Sluice-DNSBL=b.test X-Sluice-DNSBL-Score=2.5"; strings.Join(names, " ") != want {
		t.Errorf("header after edits: %s, want %s", strings.Join(names, " "), want)
	}
	// A third listing reaches 3: quarantined, tags kept.
	srv.AddA("1.2.0.192.c.test", 300, "127.0.0.2")
	cfg.Zones = append(cfg.Zones, ZoneConfig{Zone: "c.test", Action: "tag"})
	e3 := newEnv(t, srv, cfg, nil)
	v = e3.check(t, filters.StageHeaders, message("192.0.2.1", "", "", ""))
	if v.Action != filters.Quarantine || len(v.Edits) != 4 || !strings.Contains(v.Reason, "score 3.5") {
		t.Errorf("quarantine by score: %+v", v)
	}
}

func TestTXTReasonInReply(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddTXT("1.2.0.192.bl.test", 300, strings.Repeat("Listed, see https://bl.test/lookup?ip=192.0.2.1 ", 20))
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test", TXT: true, Codes: map[string]string{"127.0.0.2": "fallback"}}), nil)
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Reply == nil || !strings.Contains(v.Reply.Text, "(Listed, see https://bl.test/lookup?ip=192.0.2.1 Listed") {
		t.Fatalf("reply %v does not carry the TXT reason", v.Reply)
	}
	if err := v.Reply.Validate(); err != nil {
		t.Errorf("reply with a long TXT reason: %v", err)
	}
	// No TXT record: the code's reason.
	srv.AddA("2.2.0.192.bl.test", 300, "127.0.0.2")
	v = e.check(t, filters.StageConnect, conn("192.0.2.2"))
	if v.Reply == nil || !strings.HasSuffix(v.Reply.Text, "(fallback)") {
		t.Errorf("reply %v, want the code's reason", v.Reply)
	}
}

// A configured reply is sent as written, placeholders filled in: its own
// blanks (two after a full stop, say) used to be squeezed to one, as the
// whole rendered text went through the cleaning meant for TXT texts.
func TestReplyKeepsItsText(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddA("1.2.0.192.score.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test", Reply: "554 5.7.1 Blocked by {zone}.  See https://bl.test/q/{listed}  ({reason})", Codes: map[string]string{"127.0.0.2": "spam source"}})
	e := newEnv(t, srv, cfg, nil)
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if want := "Blocked by bl.test.  See https://bl.test/q/192.0.2.1  (spam source)"; v.Reply == nil || v.Reply.Text != want {
		t.Errorf("reply %v, want text %q", v.Reply, want)
	}

	cfg = baseConfig(srv, ZoneConfig{Zone: "score.test", Action: "tag"})
	cfg.Score = ScoreConfig{Threshold: 1, Reply: "554 5.7.1 Score {score}  of {threshold}.  Lists: {zones}"}
	e = newEnv(t, srv, cfg, nil)
	v = e.check(t, filters.StageHeaders, message("192.0.2.1", "mx.example", "bob@fine.example", ""))
	if want := "Score 1  of 1.  Lists: score.test"; v.Reply == nil || v.Reply.Text != want {
		t.Errorf("score reply %v, want text %q", v.Reply, want)
	}
}

// A reply's length is checked on what is sent: its own text, as the
// values put in are cut to fit when the reply is sent. A text over 400
// bytes as written, with the placeholders' names, used to be refused
// although its own text fits; one whose own text does not fit is.
func TestReplyLengthAsSent(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	own := strings.Repeat("x", 390)
	reply := "554 5.7.1 " + own + " {zone} {listed}"
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test", Reply: reply, Codes: map[string]string{"127.0.0.2": "spam source"}})
	e := newEnv(t, srv, cfg, nil)
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if want := own + " bl.test 1"; v.Reply == nil || v.Reply.Text != want {
		t.Errorf("reply %v, want text %q", v.Reply, want)
	}

	cfg = baseConfig(srv, ZoneConfig{Zone: "bl.test", Reply: "554 5.7.1 " + strings.Repeat("x", 401) + " {zone}"})
	f, err := New(filters.Env{}, cfg, nil)
	if want := "its text without the placeholders is 402 bytes long, at most 400 allowed"; err == nil || !strings.Contains(err.Error(), want) {
		if err == nil {
			f.Close()
		}
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

// A listing with several codes gets the reasons of all, in one part of
// the field that fold cannot break: with long reasons the field had a
// line longer than the 998 characters RFC 5322 2.1.1 allows. The reasons
// are cut to the length of one, as a TXT text is.
func TestManyReasonsFitALine(t *testing.T) {
	srv := dnsbltest.Start(t)
	codes := map[string]string{}
	var answer []string
	for i := 2; i < 12; i++ {
		code := fmt.Sprintf("127.0.0.%d", i)
		codes[code] = fmt.Sprintf("listed for reason %d, see https://bl.test/why/%d/", i, i) + strings.Repeat("x", 150)
		answer = append(answer, code)
	}
	srv.AddA("1.2.0.192.bl.test", 300, answer...)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "bl.test", Action: "tag", Codes: codes}), nil)
	v := e.check(t, filters.StageHeaders, message("192.0.2.1", "mx.example", "bob@fine.example", ""))
	var field string
	for _, ed := range v.Edits {
		if ed.Kind == filters.AddHeader && ed.Name == DefaultHeader {
			field = ed.Name + ": " + ed.Value
		}
	}
	if !strings.Contains(field, `reason="listed for reason 2, see https://bl.test/why/2/`) {
		t.Fatalf("field %q, want the first code's reason", field)
	}
	for _, line := range strings.Split(field, "\n") {
		if len(line) > filters.MaxLineLength {
			t.Errorf("line of %d characters in the field: %.80q...", len(line), line)
		}
	}
}

// The TXT record only words the reply: a list whose TXT answers hang
// must not keep the filter past its time limit, which would let a listed
// client through (on_failure accept) or refuse a clean one (tempfail).
// The refusal comes in time, with the code's reason; tag lists keep
// their header fields the same way.
func TestSlowTXTDoesNotCostTheListing(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetNegativeTTL(0, 0) // "no TXT record" is not cached: it is asked again
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddA("9.2.0.192.tag.test", 300, "127.0.0.2")
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "bl.test", TXT: true, Codes: map[string]string{"127.0.0.2": "fallback"}},
		ZoneConfig{Zone: "tag.test", TXT: true, Action: "tag", Codes: map[string]string{"127.0.0.2": "tag fallback"}},
	)
	cfg.Timeout = 30 * time.Second // a held query outlives the filter's limit
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)
	// The A answers are cached before the TXT queries start to hang.
	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	e.check(t, filters.StageHeaders, message("192.0.2.9", "mx.example", "bob@fine.example", ""))
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("1.2.0.192.bl.test", gate)
	srv.Hold("9.2.0.192.tag.test", gate)

	p := filters.NewPipeline([]filters.Step{{Filter: e.f, Timeout: 2 * time.Second, OnFailure: filters.FailAccept}}, nil)
	res := p.Run(context.Background(), filters.StageConnect, conn("192.0.2.1"))
	if len(res.Decisions) != 1 || res.Decisions[0].Failure != "" {
		t.Fatalf("decisions %+v: the filter failed", res.Decisions)
	}
	if res.Verdict.Action != filters.Reject || res.Verdict.Reply == nil || !strings.HasSuffix(res.Verdict.Reply.Text, "(fallback)") {
		t.Errorf("verdict %+v, want reject with the code's reason", res.Verdict)
	}

	res = p.Run(context.Background(), filters.StageHeaders, message("192.0.2.9", "mx.example", "bob@fine.example", ""))
	if len(res.Decisions) != 1 || res.Decisions[0].Failure != "" {
		t.Fatalf("tag list: decisions %+v: the filter failed", res.Decisions)
	}
	found := false
	for _, ed := range res.Verdict.Edits {
		found = found || ed.Kind == filters.AddHeader && strings.Contains(ed.Value, `reason="tag fallback"`)
	}
	if !found {
		t.Errorf("tag list: edits %+v, want a field with the code's reason", res.Verdict.Edits)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeTXT) + srv.Count("9.2.0.192.tag.test", dns.TypeTXT); n != 4 {
		t.Errorf("%d TXT queries, want 4 (the test did not exercise held TXT lookups)", n)
	}
}

// The cache of a filter entry survives a reload (a new filter of the same
// name from the same Shared) unless the servers change.
func TestCacheSharedAcrossReloads(t *testing.T) {
	srv := dnsbltest.Start(t)
	name := "1.2.0.192.bl.test"
	srv.AddA(name, 300, "127.0.0.2")
	shared := NewShared()
	clock := newFakeClock()
	shared.now = clock.Now
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	e1 := newEnv(t, srv, cfg, shared)
	e1.check(t, filters.StageConnect, conn("192.0.2.1"))
	e1.f.Close()

	cfg.Zones[0].Reply = "550 5.7.1 New reply for {listed}"
	e2 := newEnv(t, srv, cfg, shared)
	v := e2.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Reply == nil || v.Reply.String() != "550 5.7.1 New reply for 192.0.2.1" {
		t.Errorf("after reload: %v", v.Reply)
	}
	if n := srv.Count(name, dns.TypeA); n != 1 || e2.obs.get("cachehit bl.test") != 1 {
		t.Errorf("after reload: %d queries (want 1), %s", n, e2.obs)
	}
	if e1.f.cache != e2.f.cache {
		t.Error("the reloaded filter has a new cache")
	}

	// Another server list: answers from the old one are not reused.
	srv2 := dnsbltest.Start(t)
	cfg.Servers = []string{srv2.Addr}
	e3 := newEnv(t, srv2, cfg, shared)
	if v := e3.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("new servers: %+v, want their (empty) answer", v)
	}
	// Another entry name has its own cache.
	f4, err := New(filters.Env{Name: "other"}, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), shared)
	if err != nil {
		t.Fatal(err)
	}
	defer f4.Close()
	if f4.cache == e2.f.cache {
		t.Error("two entries share one cache")
	}
}

// The cache of an entry that a reload removed or renamed goes once no
// filter uses it: kept for good, the answers of every entry name a
// configuration ever had would add up without bound over reloads. The
// caches of entries still running stay.
func TestCacheOfRemovedEntryGoes(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	shared := NewShared()
	build := func(name string) *Filter {
		t.Helper()
		f, err := New(filters.Env{Name: name}, baseConfig(srv, ZoneConfig{Zone: "bl.test"}), shared)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	cached := func(name string) bool {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		_, ok := shared.caches[name]
		return ok
	}
	for i := range 5 {
		// Each reload renames the entry: the new filter is built before
		// the old one is closed, as the daemon does.
		old := build(fmt.Sprintf("dnsbl-%d", i))
		if _, err := old.Check(context.Background(), filters.StageConnect, conn("192.0.2.1")); err != nil {
			t.Fatal(err)
		}
		next := build(fmt.Sprintf("dnsbl-%d", i+1))
		if !cached(old.name) {
			t.Fatalf("the cache of %s went while its filter runs", old.name)
		}
		old.Close()
		next.Close()
	}
	build("last")
	shared.mu.Lock()
	n := len(shared.caches)
	shared.mu.Unlock()
	if n != 1 {
		t.Errorf("%d caches kept after the entries were renamed 6 times, want 1 (that of the running entry)", n)
	}
}

// A reload that lowers max_ttl or failure_ttl applies to the answers
// cached before it: an administrator who lowers them (a list delists
// faster than its TTL says, a resolver was fixed) must not wait up to
// the old caps for answers cached under them to go.
func TestReloadLowersCachedLifetimes(t *testing.T) {
	srv := dnsbltest.Start(t)
	listed := "1.2.0.192.bl.test"
	srv.AddA(listed, 3600, "127.0.0.2")
	failing := "3.2.0.192.bl.test"
	srv.SetBehaviour(failing, dnsbltest.ServFail)
	shared := NewShared()
	clock := newFakeClock()
	shared.now = clock.Now
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.FailureTTL = dur(5 * time.Minute)
	e1 := newEnv(t, srv, cfg, shared)
	e1.check(t, filters.StageConnect, conn("192.0.2.1"))
	e1.check(t, filters.StageConnect, conn("192.0.2.3"))
	e1.f.Close()

	cfg.MaxTTL = dur(10 * time.Second)
	cfg.FailureTTL = dur(2 * time.Second)
	e2 := newEnv(t, srv, cfg, shared)
	if e2.f.cache != e1.f.cache {
		t.Fatal("the reload started a new cache; the test needs the old one kept")
	}
	// Within the new caps the old answers still serve.
	clock.Advance(time.Second)
	e2.check(t, filters.StageConnect, conn("192.0.2.1"))
	e2.check(t, filters.StageConnect, conn("192.0.2.3"))
	if a, f := srv.Count(listed, dns.TypeA), srv.Count(failing, dns.TypeA); a != 1 || f != 2 {
		t.Fatalf("1s after the reload: %d and %d queries, want 1 and 2 (the failure is tried at each of 2 attempts)", a, f)
	}
	clock.Advance(2 * time.Second)
	e2.check(t, filters.StageConnect, conn("192.0.2.3"))
	if n := srv.Count(failing, dns.TypeA); n != 4 {
		t.Errorf("failure cached under failure_ttl 5m, now 2s, asked 3s later: %d queries, want 4", n)
	}
	clock.Advance(8 * time.Second)
	srv.Remove(listed)
	if v := e2.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("listing cached under max_ttl 1h, now 10s, 11s later: %v, want a new query finding it delisted", v.Action)
	}
	if n := srv.Count(listed, dns.TypeA); n != 2 {
		t.Errorf("listing after the new max_ttl: %d queries, want 2", n)
	}
}

func TestCacheBounded(t *testing.T) {
	srv := dnsbltest.Start(t)
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.CacheSize = ptr(2)
	e := newEnv(t, srv, cfg, nil)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.3"} {
		e.check(t, filters.StageConnect, conn(ip))
	}
	if n := e.f.cache.len(); n != 2 {
		t.Errorf("cache holds %d answers, bound 2", n)
	}
	// .2 was the least recently used and went; .1 is still there.
	e.check(t, filters.StageConnect, conn("192.0.2.1"))
	e.check(t, filters.StageConnect, conn("192.0.2.2"))
	if a, b := srv.Count("1.2.0.192.bl.test", dns.TypeA), srv.Count("2.2.0.192.bl.test", dns.TypeA); a != 1 || b != 2 {
		t.Errorf("queries: .1 %d (want 1), .2 %d (want 2)", a, b)
	}
}

// cache_size: 0 keeps nothing, as max_ttl: 0s caches no answer: it read
// as the default, 10000, so whoever wrote it to turn the cache off got it
// on. A reload to 0 empties the cache the entry had.
func TestCacheSizeZeroCachesNothing(t *testing.T) {
	srv := dnsbltest.Start(t)
	listed := "1.2.0.192.bl.test"
	srv.AddA(listed, 3600, "127.0.0.2")
	failing := "3.2.0.192.bl.test"
	srv.SetBehaviour(failing, dnsbltest.ServFail)
	shared := NewShared()
	clock := newFakeClock()
	shared.now = clock.Now
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Attempts = 1
	e1 := newEnv(t, srv, cfg, shared)
	e1.check(t, filters.StageConnect, conn("192.0.2.1"))
	e1.check(t, filters.StageConnect, conn("192.0.2.9"))
	if n := e1.f.cache.len(); n != 2 {
		t.Fatalf("default cache_size: %d answers cached, want 2", n)
	}
	e1.f.Close()

	cfg.CacheSize = ptr(0)
	e := newEnv(t, srv, cfg, shared)
	if n := e.f.cache.len(); n != 0 {
		t.Errorf("reloaded with cache_size 0: %d answers still cached", n)
	}
	for i := range 3 {
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
			t.Fatalf("check %d: %v, want reject", i+1, v.Action)
		}
		e.check(t, filters.StageConnect, conn("192.0.2.3"))
	}
	// No failure is remembered either: that is what max_ttl: 0s is for.
	if a, f := srv.Count(listed, dns.TypeA), srv.Count(failing, dns.TypeA); a != 4 || f != 3 {
		t.Errorf("cache_size 0: %d and %d queries for 3 checks each, want 4 (one before the reload) and 3", a, f)
	}
	if n := e.f.cache.len(); n != 0 {
		t.Errorf("cache_size 0: %d answers cached", n)
	}

	cfg.CacheSize = ptr(-1)
	if _, err := New(filters.Env{}, cfg, nil); err == nil || !strings.Contains(err.Error(), "cache_size -1: must be 0 (no cache) to") {
		t.Errorf("cache_size -1: error %v, want one naming the key and its range", err)
	}
}

func TestParallelZones(t *testing.T) {
	srv := dnsbltest.Start(t)
	gate := make(chan struct{})
	var zones []ZoneConfig
	for _, z := range []string{"a.test", "b.test", "c.test"} {
		zones = append(zones, ZoneConfig{Zone: z})
		srv.Hold("1.2.0.192."+z, gate)
	}
	e := newEnv(t, srv, baseConfig(srv, zones...), nil)
	done := make(chan filters.Verdict, 1)
	go func() {
		v, _ := e.f.Check(context.Background(), filters.StageConnect, conn("192.0.2.1"))
		done <- v
	}()
	// All three queries are at the server before any is answered.
	waitFor(t, "three queries in flight at once", func() bool { return len(srv.Queries()) == 3 })
	close(gate)
	select {
	case v := <-done:
		if v.Action != filters.Continue {
			t.Errorf("verdict %+v", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("check did not return")
	}
}

func TestProbes(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	srv.AddA("test.dbl.test", 300, "127.0.1.2")
	srv.AddA("2.0.0.127.dead.test", 300, "127.255.255.254")
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "bl.test"},
		ZoneConfig{Zone: "dbl.test", Type: "domain"},
		ZoneConfig{Zone: "dead.test"},
		ZoneConfig{Zone: "quiet.test", Probe: ptr(false)},
	)
	cfg.ProbeInterval = dur(100 * time.Millisecond)
	e := newEnv(t, srv, cfg, nil)
	waitFor(t, "two probe rounds", func() bool { return e.obs.get("health dead.test down") >= 2 })
	if e.obs.get("health bl.test up") == 0 || e.obs.get("health dbl.test up") == 0 {
		t.Errorf("observer: %s", e.obs)
	}
	if strings.Count(e.log.String(), "fails its health probe") != 1 {
		t.Errorf("want one warning for the refusing list:\n%s", e.log)
	}
	// The list goes away: its health goes down.
	srv.Remove("2.0.0.127.bl.test")
	waitFor(t, "bl.test down", func() bool { return e.obs.get("health bl.test down") > 0 })
	for _, q := range srv.Queries() {
		if strings.HasSuffix(q.Name, "quiet.test") {
			t.Errorf("probed a list with probe: false: %s", q.Name)
		}
	}
	// Close stops the probes. A query sent just before it may still be
	// on its way through the server's socket when Close returns, and a
	// loaded machine may take a while to hand it over: so the test
	// waits for a second (ten probe intervals) with no new query, which
	// never comes while the probes go on.
	e.f.Close()
	const quiet = time.Second
	deadline := time.Now().Add(30 * time.Second)
	n, since := len(srv.Queries()), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("probe queries still coming 30s after Close (%d in all)", n)
		}
		time.Sleep(20 * time.Millisecond)
		if m := len(srv.Queries()); m != n {
			n, since = m, time.Now()
		}
	}
}

func TestConfigErrors(t *testing.T) {
	srv := dnsbltest.Start(t)
	ok := ZoneConfig{Zone: "bl.test"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no zones", func(c *Config) { c.Zones = nil }, "zones: at least one"},
		{"bad server", func(c *Config) { c.Servers = []string{"dns.example"} }, "servers[0]"},
		{"timeout", func(c *Config) { c.Timeout = -time.Second }, "timeout"},
		{"attempts", func(c *Config) { c.Attempts = 9 }, "attempts 9"},
		{"failure_ttl", func(c *Config) { c.FailureTTL = dur(time.Hour) }, "failure_ttl"},
		{"max_ttl", func(c *Config) { c.MaxTTL = dur(-time.Second) }, "max_ttl -1s: must not be negative"},
		{"trusted", func(c *Config) { c.TrustedNetworks = []string{"nope"} }, "trusted_networks[0]"},
		{"ip_stage", func(c *Config) { c.IPStage = "rcpt" }, "ip_stage"},
		{"header", func(c *Config) { c.Header = "X Bad" }, "header:"},
		{"same headers", func(c *Config) { c.Score.Header = "x-sluice-dnsbl" }, "must differ"},
		// "Name: zone;" cannot be folded, and a line may have at most 998
		// characters (RFC 5322 2.1.1); the score as many as a float
		// written out in full.
		{"header too long for a line", func(c *Config) { c.Header = "X-" + strings.Repeat("n", 805) }, "header: 807 characters leave no room on a line of 998"},
		{"score.header too long for a line", func(c *Config) { c.Score.Header = "X-" + strings.Repeat("n", 700) }, "score.header: 702 characters leave no room on a line of 998"},
		{"score action without threshold", func(c *Config) { c.Score.Action = "reject" }, "score.action"},
		{"score action", func(c *Config) { c.Score = ScoreConfig{Threshold: 1, Action: "discard"} }, "score.action"},
		{"NaN threshold", func(c *Config) { c.Score = ScoreConfig{Threshold: math.NaN(), Action: "reject"} }, "threshold NaN"},
		{"infinite threshold", func(c *Config) { c.Score = ScoreConfig{Threshold: math.Inf(1), Action: "reject"} }, "threshold +Inf"},
		{"NaN score", func(c *Config) { nan := math.NaN(); c.Zones[0].Action = "tag"; c.Zones[0].Score = &nan }, "score NaN"},
		{"zone name", func(c *Config) { c.Zones[0].Zone = "bl" }, "zones[0].zone"},
		{"two zones on a line", func(c *Config) { c.Zones[0].Zone = "zen.spamhaus.org, bl.spamcop.net" }, "zones[0].zone"},
		{"zone with a port", func(c *Config) { c.Zones[0].Zone = "zen.spamhaus.org:53" }, "zones[0].zone"},
		{"zone with a blank", func(c *Config) { c.Zones[0].Zone = "bl.exam ple" }, "zones[0].zone"},
		{"zone with a slash", func(c *Config) { c.Zones[0].Zone = "bl.example/24" }, "zones[0].zone"},
		{"zone with a leading hyphen", func(c *Config) { c.Zones[0].Zone = "-bad.example" }, "zones[0].zone"},
		{"zone with an empty label", func(c *Config) { c.Zones[0].Zone = "bl..example" }, "zones[0].zone"},
		{"non-ASCII zone", func(c *Config) { c.Zones[0].Zone = "bl.bücher.example" }, "zones[0].zone"},
		{"zone type", func(c *Config) { c.Zones[0].Type = "uri" }, "zones[0].type"},
		{"family on domain", func(c *Config) { c.Zones[0].Type = "domain"; c.Zones[0].Family = "ipv4" }, "zones[0].family"},
		{"check on ip", func(c *Config) { c.Zones[0].Check = []string{"helo"} }, "zones[0].check"},
		{"check target", func(c *Config) { c.Zones[0].Type = "domain"; c.Zones[0].Check = []string{"rcpt"} }, "zones[0].check"},
		{"refusal code", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.255.255.254": "x"} }, "refuse queries"},
		{"127.0.0.1 code", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.0/24": "x"} }, "refuse queries"},
		{"code outside 127/8", func(c *Config) { c.Zones[0].Codes = map[string]string{"10.0.0.2": "x"} }, "inside 127.0.0.0/8"},
		{"code syntax", func(c *Config) { c.Zones[0].Codes = map[string]string{"two": "x"} }, "want an address"},
		// One code written twice, with different reasons: which one a
		// listing gets would depend on map order.
		{"code twice", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": "SBL", "127.0.0.2/32": "spam"} }, "given twice"},
		{"prefix twice", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.1.0/24": "a", "127.0.1.7/24": "b"} }, "given twice"},
		// A reason goes into replies and header fields as it is written
		// or not at all: it used to be accepted and then shown with "?"
		// for each non-ASCII character, cut, or with its blanks changed.
		{"non-ASCII reason", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": "Spam – see https://bl.example"} }, `zones[0].codes: reason of "127.0.0.2": non-ASCII or control byte 0xe2 at offset 5`},
		{"tab in reason", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": "spam\tsource"} }, `reason of "127.0.0.2": non-ASCII or control byte 0x09 at offset 4`},
		{"line break in reason", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": "spam\nsource"} }, "byte 0x0a at offset 4"},
		{"long reason", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": strings.Repeat("x", 201)} }, "201 bytes long, at most 200"},
		{"reason with a leading blank", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": " spam"} }, "leading, trailing or repeated blanks"},
		{"reason with repeated blanks", func(c *Config) { c.Zones[0].Codes = map[string]string{"127.0.0.2": "spam  source"} }, "leading, trailing or repeated blanks"},
		{"quote in a tag reason", func(c *Config) {
			c.Zones[0].Action = "tag"
			c.Zones[0].Codes = map[string]string{"127.0.0.2": `"spam" source`}
		}, `zones[0].codes: reason of "127.0.0.2": '"' and '\' cannot be in the quoted reason of the header field`},
		{"action", func(c *Config) { c.Zones[0].Action = "discard" }, "zones[0].action"},
		{"reply on tag", func(c *Config) { c.Zones[0].Action = "tag"; c.Zones[0].Reply = "550 x" }, "zones[0].reply"},
		{"reply code", func(c *Config) { c.Zones[0].Reply = "451 4.7.1 later" }, "5xx for reject"},
		{"placeholder", func(c *Config) { c.Zones[0].Reply = "550 5.7.1 {ip} listed" }, "unknown placeholder {ip}"},
		{"score on reject", func(c *Config) { c.Zones[0].Score = ptr(2.0) }, "only tag listings"},
		{"twice", func(c *Config) { c.Zones = append(c.Zones, ok) }, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(srv, ok)
			cfg.Zones = []ZoneConfig{ok}
			tc.edit(&cfg)
			f, err := New(filters.Env{}, cfg, nil)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestServersList(t *testing.T) {
	got, err := serverList([]string{"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:5353", "[2001:db8::53]"}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1:53 127.0.0.1:5353 [::1]:53 [::1]:5353 [2001:db8::53]:53"
	if strings.Join(got, " ") != want {
		t.Errorf("servers %v, want %s", got, want)
	}
}

// Without servers, the nameservers of resolv.conf are used.
func TestDefaultServers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# local resolver first\nnameserver 127.0.0.53\nnameserver ::1\noptions edns0 trust-ad\nsearch example.org\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := serverList(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.53:53 [::1]:53"; strings.Join(got, " ") != want {
		t.Errorf("servers %v, want %s", got, want)
	}
	os.WriteFile(path, []byte("search example.org\n"), 0o644)
	if _, err := serverList(nil, path); err == nil || !strings.Contains(err.Error(), "names no nameserver") {
		t.Errorf("resolv.conf without nameserver: %v", err)
	}
	if _, err := serverList(nil, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing resolv.conf: no error")
	}
}

// A resolv.conf nameserver that is no IP address (a host name, an
// address with a port, which resolv.conf cannot give) is passed over, as
// the C library passes it over; used as is, it made every lookup fail,
// or need DNS to find the resolver. A file with none that is an address
// is an error naming them.
func TestDefaultServersOnlyAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "nameserver 127.0.0.1:5353\nnameserver dns.example.org\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver [::1]\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := serverList(nil, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "127.0.0.53:53 [fe80::1%eth0]:53"; strings.Join(got, " ") != want {
		t.Errorf("servers %v, want %s", got, want)
	}
	os.WriteFile(path, []byte("nameserver dns.example.org\n"), 0o644)
	if _, err := serverList(nil, path); err == nil || !strings.Contains(err.Error(), "dns.example.org") {
		t.Errorf("resolv.conf naming a host only: %v", err)
	}
}

// A list that answers the entry no list may have (127.0.0.1) as listed
// lists every address, as lists shut down on purpose have done: its
// listings are ignored, and its health is down, until a probe finds the
// entry gone. Other lists count as usual meanwhile.
func TestListThatListsEverything(t *testing.T) {
	srv := dnsbltest.Start(t)
	for _, z := range []string{"all.test", "bl.test"} {
		srv.AddA("2.0.0.127."+z, 300, "127.0.0.2")
	}
	srv.AddA("1.2.0.192.all.test", 300, "127.0.0.2")
	srv.AddA("9.2.0.192.bl.test", 300, "127.0.0.2")
	srv.AddA("1.0.0.127.all.test", 300, "127.0.0.2")
	srv.AddA("invalid.dall.test", 300, "127.0.1.2")
	srv.AddA("test.dall.test", 300, "127.0.1.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "all.test"}, ZoneConfig{Zone: "bl.test"},
		ZoneConfig{Zone: "dall.test", Type: "domain"})
	cfg.ProbeInterval = dur(100 * time.Millisecond)
	e := newEnv(t, srv, cfg, nil)
	waitFor(t, "the first probes", func() bool {
		return e.obs.get("health all.test down") > 0 && e.obs.get("health dall.test down") > 0 && e.obs.get("health bl.test up") > 0
	})
	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Action == filters.Reject {
		t.Fatalf("a list that lists everything rejected the client: %+v", v)
	}
	if e.obs.get("error all.test lists_all") != 1 {
		t.Errorf("observer: %s", e.obs)
	}
	if v := e.check(t, filters.StageConnect, conn("192.0.2.9")); v.Action != filters.Reject {
		t.Errorf("a client on the list that works: %+v, want reject", v)
	}
	if log := e.logText(); !strings.Contains(log, "list answers every name as listed") {
		t.Errorf("no warning:\n%s", log)
	}
	// The list is mended: its listings count again.
	srv.Remove("1.0.0.127.all.test")
	waitFor(t, "all.test up", func() bool { return e.obs.get("health all.test up") > 0 })
	e.clock.Advance(time.Hour) // past the cached answer
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("after the list was mended: %+v, want reject", v)
	}
}

// A message with several From fields is malformed (RFC 5322 3.6), but
// mail readers differ in which they show; the senders filter reads the
// first filters.MaxFromFields of them, and so must the domain lists, or a
// clean first field hides a listed second one.
func TestEveryFromFieldIsChecked(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	m := message("192.0.2.1", "mx.example", "bob@fine.example", "Alice <alice@clean.example>")
	m.Headers = append(m.Headers, filters.Header{Name: "from", Value: "Bob <bob@spammer.example>"})
	if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
		t.Errorf("listed domain in the second From field: %+v, want reject", v)
	}

	// A first field full of addresses must not crowd the second one out
	// of the domains looked up.
	var decoys []string
	for i := range 20 {
		decoys = append(decoys, fmt.Sprintf("a%d@d%d.example", i, i))
	}
	m = message("192.0.2.1", "mx.example", "bob@fine.example", strings.Join(decoys, ", "))
	m.Headers = append(m.Headers, filters.Header{Name: "From", Value: "bob@spammer.example"})
	if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
		t.Errorf("listed second field after a crowded first: %+v, want reject", v)
	}

	// Bounded and deduplicated: one domain in many fields is one query,
	// and of the fields past the first filters.MaxFromFields only the
	// last is read (see TestLastFromFieldBeyondTheBound).
	srv2 := dnsbltest.Start(t)
	e2 := newEnv(t, srv2, baseConfig(srv2, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	m = message("192.0.2.1", "mx.example", "bob@fine.example", "")
	for range 20 {
		m.Headers = append(m.Headers, filters.Header{Name: "From", Value: "x@same.example, y@same.example"})
	}
	e2.check(t, filters.StageHeaders, m)
	if n := len(srv2.Queries()); n != 1 {
		t.Errorf("one domain in 20 From fields: %d queries, want 1: %v", n, srv2.Queries())
	}
	srv3 := dnsbltest.Start(t)
	e3 := newEnv(t, srv3, baseConfig(srv3, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	m = message("192.0.2.1", "mx.example", "bob@fine.example", "")
	for i := range 20 {
		m.Headers = append(m.Headers, filters.Header{Name: "From", Value: fmt.Sprintf("x@f%d.example, y@g%d.example", i, i)})
	}
	e3.check(t, filters.StageHeaders, m)
	qs := srv3.Queries()
	if len(qs) != maxFromDomains+maxLastFieldDomains {
		t.Errorf("20 From fields of 2 domains each: %d queries, want %d: %v", len(qs), maxFromDomains+maxLastFieldDomains, qs)
	}
	fieldOf := regexp.MustCompile(`^[fg]([0-9]+)\.example\.dbl\.test$`)
	for _, q := range qs {
		sm := fieldOf.FindStringSubmatch(q.Name)
		if sm == nil {
			t.Errorf("unexpected query %s", q.Name)
			continue
		}
		if i, _ := strconv.Atoi(sm[1]); i >= filters.MaxFromFields && i != 19 {
			t.Errorf("queried %s, of From field %d, past the first %d and not the last", q.Name, i+1, filters.MaxFromFields)
		}
	}
}

// Decoy From fields before the real author's, more of them than
// filters.MaxFromFields, must not hide it: some mail readers show the
// last of several From fields, so the last is looked up too, at a bounded
// cost. A repeat of a field read adds no lookup.
func TestLastFromFieldBeyondTheBound(t *testing.T) {
	for _, tt := range []struct {
		name, author string
	}{
		{"bare author", "x@spammer.example"},
		{"named author after decoys in the field", "d@decoy-a.example, d@decoy-b.example, Bank <x@spammer.example>"},
		{"author first in the field", "Bank <x@spammer.example>, d@decoy-a.example, d@decoy-b.example"},
	} {
		srv := dnsbltest.Start(t)
		srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
		e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
		m := message("192.0.2.1", "mx.example", "bob@fine.example", "")
		for i := range 2 * filters.MaxFromFields {
			m.Headers = append(m.Headers, filters.Header{Name: "From", Value: fmt.Sprintf("d%d@decoy%d.example, e%d@other%d.example", i, i, i, i)})
		}
		m.Headers = append(m.Headers, filters.Header{Name: "From", Value: tt.author})
		if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
			t.Errorf("%s: %+v, want reject", tt.name, v)
		}
		if q := len(srv.Queries()); q > maxFromDomains+maxLastFieldDomains {
			t.Errorf("%s: %d queries, at most %d allowed", tt.name, q, maxFromDomains+maxLastFieldDomains)
		}
	}

	// The last field repeating one read costs nothing more.
	srv := dnsbltest.Start(t)
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
	m := message("192.0.2.1", "mx.example", "bob@fine.example", "")
	for i := range filters.MaxFromFields + 1 {
		m.Headers = append(m.Headers, filters.Header{Name: "From", Value: fmt.Sprintf("d@decoy%d.example", i%2)})
	}
	e.check(t, filters.StageHeaders, m)
	if q := len(srv.Queries()); q != 2 {
		t.Errorf("9 From fields of 2 domains: %d queries, want 2: %v", q, srv.Queries())
	}
}

// Decoy addresses of different domains before the real author, more of
// them than the domains looked up per message, must not push the
// author's domain out of the lookups, in a well-formed list or in a
// field net/mail refuses; and the number of queries stays bounded.
func TestFromDecoysBeforeTheAuthor(t *testing.T) {
	decoys := func(n int, form, sep string) string {
		var list []string
		for i := range n {
			list = append(list, fmt.Sprintf(form, fmt.Sprintf("d%d@decoy%d.example", i, i)))
		}
		return strings.Join(list, sep)
	}
	n := 2 * maxFromDomains
	for _, tt := range []struct {
		name, from string
		broken     bool
	}{
		{"well-formed, bare decoys before the author", decoys(n, "%s", ", ") + ", x@spammer.example", false},
		{"well-formed, named decoys before the named author", decoys(n, `"Friend" <%s>`, ", ") + ", Bank <x@spammer.example>", false},
		{"well-formed, decoys in a group before the author", "friends: " + decoys(n, "%s", ", ") + ";, x@spammer.example", false},
		{"broken, bracketed decoys before the bracketed author", decoys(n, "<%s>", " ") + ` "Bank <x@spammer.example>`, true},
		{"broken, bracketed decoys before a bare author", decoys(n, "<%s>", " ") + ` x@spammer.example "`, true},
		{"broken, bare decoys before the bracketed author", decoys(n, "%s", " ") + ` "Bank <x@spammer.example>`, true},
	} {
		if _, err := mail.ParseAddressList(tt.from); (err != nil) != tt.broken {
			t.Errorf("%s: net/mail says %v", tt.name, err)
		}
		srv := dnsbltest.Start(t)
		srv.AddA("spammer.example.dbl.test", 300, "127.0.1.2")
		e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"header_from"}}), nil)
		m := message("192.0.2.1", "mx.example", "bob@fine.example", tt.from)
		if v := e.check(t, filters.StageHeaders, m); v.Action != filters.Reject {
			t.Errorf("%s: %+v, want reject", tt.name, v)
		}
		if q := len(srv.Queries()); q > maxFromDomains {
			t.Errorf("%s: %d queries, at most %d allowed", tt.name, q, maxFromDomains)
		}
	}
}

// A TXT lookup that has not answered when the reply must be worded is a
// failed lookup like any other: docs/metrics.md counts failed TXT lookups
// in the errors metric, and an A lookup cut short so counts as a timeout.
// Without it a list whose TXT answers all hang would show no error.
func TestSlowTXTCountsAsTimeout(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.SetNegativeTTL(0, 0) // "no TXT record" is not cached: it is asked again
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test", TXT: true, Codes: map[string]string{"127.0.0.2": "fallback"}})
	cfg.Timeout = 30 * time.Second // a held query outlives the filter's limit
	cfg.Attempts = 1
	e := newEnv(t, srv, cfg, nil)
	e.check(t, filters.StageConnect, conn("192.0.2.1")) // the A answer is cached
	if n := e.obs.get("error bl.test timeout"); n != 0 {
		t.Fatalf("%d timeouts before any query hung: %s", n, e.obs)
	}
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	srv.Hold("1.2.0.192.bl.test", gate)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := e.f.Check(ctx, filters.StageConnect, conn("192.0.2.1"))
	if err != nil || v.Action != filters.Reject || v.Reply == nil || !strings.HasSuffix(v.Reply.Text, "(fallback)") {
		t.Fatalf("verdict %+v, %v: want reject with the code's reason", v, err)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeTXT); n != 2 {
		t.Fatalf("%d TXT queries, want 2 (the test did not exercise a held TXT lookup)", n)
	}
	if n := e.obs.get("error bl.test timeout"); n != 1 {
		t.Errorf("errors of kind timeout: %d, want 1; counts: %s", n, e.obs)
	}
}

// A list that combines sub-lists as bits of its code answers a name on
// two of them with their sum, which keys for the single bits do not
// contain; a key for the sum does, and so does a list without codes
// (docs/dnsbl.md, Return codes).
func TestBitmaskCodes(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("both.test.multi.test", 300, "127.0.0.24")
	srv.AddA("phish.test.multi.test", 300, "127.0.0.8")
	singles := map[string]string{"127.0.0.8": "phishing", "127.0.0.16": "malware"}
	withSum := map[string]string{"127.0.0.8": "phishing", "127.0.0.16": "malware", "127.0.0.24": "phishing and malware"}
	for _, c := range []struct {
		codes      map[string]string
		from       string
		wantReason string // "" for no listing
	}{
		{singles, "a@both.test", ""},
		{singles, "a@phish.test", "phishing"},
		{withSum, "a@both.test", "phishing and malware"},
		{withSum, "a@phish.test", "phishing"},
		{nil, "a@both.test", "127.0.0.24"},
	} {
		cfg := baseConfig(srv, ZoneConfig{Zone: "multi.test", Type: "domain", Check: []string{"sender"}, Codes: c.codes})
		e := newEnv(t, srv, cfg, nil)
		v := e.check(t, filters.StageMailFrom, message("192.0.2.1", "", c.from, ""))
		switch {
		case c.wantReason == "" && v.Action != filters.Continue:
			t.Errorf("%s with codes %v: %+v, want continue", c.from, c.codes, v)
		case c.wantReason != "" && (v.Action != filters.Reject || v.Reply == nil || !strings.Contains(v.Reply.Text, "("+c.wantReason+")")):
			t.Errorf("%s with codes %v: %+v, want reject for %s", c.from, c.codes, v, c.wantReason)
		}
	}
	cfg := baseConfig(srv, ZoneConfig{Zone: "multi.test", Type: "domain", Codes: map[string]string{"127.0.0.0/24": "listed"}})
	if _, err := New(filters.Env{}, cfg, nil); err == nil || !strings.Contains(err.Error(), "refuse queries") {
		t.Errorf("codes with 127.0.0.0/24: %v, want refused", err)
	}
}
