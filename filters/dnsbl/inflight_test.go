package dnsbl

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// holdingServer is a DNS server on a 127.0.0.1 UDP port that lists every
// name (127.0.0.2) but holds each answer until release is called, and
// counts the queries it holds at once.
type holdingServer struct {
	addr string
	gate chan struct{}
	stop chan struct{}

	mu               sync.Mutex
	now, peak, total int
}

func startHoldingServer(t *testing.T) *holdingServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holdingServer{addr: pc.LocalAddr().String(), gate: make(chan struct{}), stop: make(chan struct{})}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		h.mu.Lock()
		h.now++
		h.total++
		h.peak = max(h.peak, h.now)
		h.mu.Unlock()
		select {
		case <-h.gate:
		case <-h.stop:
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
		// Counted out before the answer goes: once the client has it,
		// it may send its next query at once.
		h.mu.Lock()
		h.now--
		h.mu.Unlock()
		w.WriteMsg(m)
	})}
	serveDNS(t, s)
	t.Cleanup(func() { close(h.stop) }) // first: the held answers go
	return h
}

func (h *holdingServer) release() { close(h.gate) }

// counts returns the queries held now, the most held at once, and all
// received.
func (h *holdingServer) counts() (now, peak, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now, h.peak, h.total
}

// Queries in flight were unbounded: a flood of clients with distinct
// addresses, each missing the cache, sent a query (a socket) each, and a
// daemon with thousands of sessions ran out of file descriptors. With
// max_in_flight 4 and a server that holds its answers, 12 concurrent
// lookups put 4 queries to it; the others wait, and each gets its slot
// and its listing once answers come. A lookup whose time runs out while
// it waits fails as a timeout: the listed client is not rejected, and the
// failure is counted.
func TestMaxInFlight(t *testing.T) {
	const bound, clients = 4, 12
	srv := startHoldingServer(t)
	cfg := Config{
		Servers:       []string{srv.addr},
		Timeout:       5 * time.Second, // longer than the test holds answers
		Attempts:      1,
		MaxInFlight:   bound,
		ProbeInterval: dur(0),
		Zones:         []ZoneConfig{{Zone: "bl.test"}},
	}
	e := newEnv(t, nil, cfg, nil)
	type outcome struct {
		client string
		v      filters.Verdict
		err    error
	}
	done := make(chan outcome, clients)
	for i := range clients {
		client := fmt.Sprintf("192.0.2.%d", i+1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v, err := e.f.Check(ctx, filters.StageConnect, conn(client))
			done <- outcome{client, v, err}
		}()
	}
	waitFor(t, "the server to hold max_in_flight queries", func() bool {
		now, _, _ := srv.counts()
		return now >= bound
	})
	// Time for queries past the bound to arrive, had they been sent.
	time.Sleep(300 * time.Millisecond)
	if now, peak, total := srv.counts(); peak != bound || total != bound {
		t.Errorf("with %d lookups waiting the server holds %d queries, at most %d at once, %d received; want %d", clients, now, peak, total, bound)
	}

	// One more, whose time runs out while it waits for a slot. The
	// filter keeps a quarter of the time for its answer: 2s keep half a
	// second, which a loaded machine running this under -race needs (a
	// 400ms context kept 100ms, and a CI run overran it once).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	v, err := e.f.Check(ctx, filters.StageConnect, conn("192.0.2.100"))
	cancel()
	if err != nil || v.Action != filters.Continue {
		t.Errorf("lookup without a slot in its time: %v, %v; want continue, no error", v.Action, err)
	}
	if n := e.obs.get("error bl.test " + KindTimeout); n != 1 {
		t.Errorf("%d timeouts counted, want 1 (observer: %s)", n, e.obs)
	}

	srv.release()
	for range clients {
		select {
		case o := <-done:
			if o.err != nil || o.v.Action != filters.Reject {
				t.Errorf("%s, listed: %v, %v; want reject", o.client, o.v.Action, o.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("lookups waiting for a slot did not end")
		}
	}
	// The query of the lookup that gave up goes out once a slot is
	// free, and its answer is cached for the next message.
	waitFor(t, "the last query", func() bool {
		_, _, total := srv.counts()
		return total == clients+1
	})
	if _, peak, _ := srv.counts(); peak > bound {
		t.Errorf("the server held %d queries at once, max_in_flight is %d", peak, bound)
	}
}

// A lookup that gets no slot within the timeout fails with kind busy: it
// counts as not listed, is counted and logged, sends no query, and is not
// cached, so the next lookup of the client asks once a slot is free.
func TestMaxInFlightBusy(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 60, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
	cfg.Timeout = 200 * time.Millisecond
	cfg.MaxInFlight = 2
	e := newEnv(t, srv, cfg, nil)
	// Two queries that hang, as those of a list whose servers do not
	// answer do.
	for range 2 {
		e.f.res.slots <- struct{}{}
	}
	start := time.Now()
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("listed client without a slot: %v, want continue", v.Action)
	}
	if took := time.Since(start); took < cfg.Timeout {
		t.Errorf("the lookup gave up after %s, before the timeout (%s)", took, cfg.Timeout)
	}
	if n := e.obs.get("error bl.test " + KindBusy); n != 1 {
		t.Errorf("%d busy errors counted, want 1 (observer: %s)", n, e.obs)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 0 {
		t.Errorf("%d queries sent without a slot", n)
	}
	if log := e.logText(); !strings.Contains(log, "kind=busy") || !strings.Contains(log, "2 queries in flight already (max_in_flight), none ended within 200ms") {
		t.Errorf("log %q does not say why the lookup failed", log)
	}

	<-e.f.res.slots
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed client once a slot is free: %v, want reject", v.Action)
	}
	if n := srv.Count("1.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("%d queries once a slot is free, want 1", n)
	}
}

// max_in_flight is checked: 0 means the default, and a negative or huge
// bound is refused.
func TestMaxInFlightOption(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want int
		err  string
	}{
		{0, DefaultMaxInFlight, ""},
		{1, 1, ""},
		{maxInFlight, maxInFlight, ""},
		{-1, 0, "max_in_flight -1: must be 1 to 10000"},
		{maxInFlight + 1, 0, "max_in_flight 10001: must be 1 to 10000"},
	} {
		s, err := Config{Servers: []string{"127.0.0.1"}, MaxInFlight: tc.n, Zones: []ZoneConfig{{Zone: "bl.test"}}}.check()
		switch {
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("max_in_flight %d: %v, want %q", tc.n, err, tc.err)
		case tc.err == "" && (err != nil || s.maxInFlight != tc.want):
			t.Errorf("max_in_flight %d: %d, %v; want %d", tc.n, s.maxInFlight, err, tc.want)
		}
	}
}

// Lookups of tag lists are started ahead, at connect and MAIL FROM,
// without holding the client up, so nothing paced them: one connection
// sending MAIL FROM after MAIL FROM (RSET between), each with a sender
// domain of its own, put a query in flight for each, and with a tag list
// slow to answer took every max_in_flight slot. The lookups of refusing
// lists, those of every other client, then found no slot, failed as
// busy, and let listed clients in. Lookups started ahead take at most
// half the slots, and only free ones; those that find none are made when
// their answers are needed, at the end of the header block.
func TestLookupsAheadLeaveSlotsForDecisions(t *testing.T) {
	const bound = 4
	srv := dnsbltest.Start(t)
	srv.AddA("1.2.0.192.bl.test", 300, "127.0.0.2")
	gate := make(chan struct{})
	t.Cleanup(func() { close(gate) })
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "bl.test"},
		ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender"}, Action: "tag"},
	)
	// The held queries keep their slots for timeout × attempts, longer
	// than a lookup waits for one (timeout).
	cfg.Timeout = time.Second
	cfg.Attempts = 2
	cfg.MaxInFlight = bound
	e := newEnv(t, srv, cfg, nil)

	// One connection, 2×bound transactions, each with a new sender
	// domain the tag list is slow to answer.
	for i := range 2 * bound {
		domain := fmt.Sprintf("d%d.example", i)
		srv.Hold(domain+".dbl.test", gate)
		if v := e.check(t, filters.StageMailFrom, message("203.0.113.9", "mx.example", "a@"+domain, "")); v.Action != filters.Continue {
			t.Fatalf("MAIL FROM %d: %v, want continue", i, v.Action)
		}
	}
	ahead := func() int {
		n := 0
		for i := range 2 * bound {
			n += min(srv.Count(fmt.Sprintf("d%d.example.dbl.test", i), dns.TypeA), 1)
		}
		return n
	}
	waitFor(t, "the lookups started ahead to reach the server", func() bool { return ahead() >= bound/2 })

	// Another client, listed in the refusing list.
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed client while the lookups started ahead hang: %v, want reject (observer: %s)", v.Action, e.obs)
	}
	if n := e.obs.get("error bl.test " + KindBusy); n != 0 {
		t.Errorf("%d busy errors of the refusing list, want 0", n)
	}
	if n := ahead(); n > bound/2 {
		t.Errorf("%d lookups started ahead, want at most %d (half of max_in_flight)", n, bound/2)
	}
}
