package dnsbl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
)

// connServer is a DNS server on a 127.0.0.1 TCP port that answers every
// query with NXDOMAIN (or as listed, see lists), several queries per
// connection, and counts the connections it accepts, those that ended
// and those the client closed.
type connServer struct {
	addr string
	// closeAfterAnswer closes each connection once it has answered one
	// query; idleFor, when set, closes one idle that long. lists answers
	// every name with 127.0.0.2 instead of NXDOMAIN; duplicate sends
	// every answer twice. Set before start.
	closeAfterAnswer bool
	idleFor          time.Duration
	lists, duplicate bool

	accepted, queries, ended, closedByClient atomic.Int32
}

func startConnServer(t *testing.T, closeAfterAnswer bool, idleFor time.Duration) *connServer {
	t.Helper()
	return (&connServer{closeAfterAnswer: closeAfterAnswer, idleFor: idleFor}).start(t)
}

// start starts s and registers a cleanup that stops it.
func (s *connServer) start(t *testing.T) *connServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *connServer) serve(c net.Conn) {
	defer s.ended.Add(1)
	defer c.Close()
	co := &dns.Conn{Conn: c}
	for {
		if s.idleFor > 0 {
			c.SetReadDeadline(time.Now().Add(s.idleFor))
		}
		q, err := co.ReadMsg()
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, net.ErrClosed) {
				s.closedByClient.Add(1)
			}
			return
		}
		s.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		if s.lists && len(q.Question) == 1 {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		if err := co.WriteMsg(m); err != nil || s.closeAfterAnswer {
			return
		}
		if s.duplicate {
			if err := co.WriteMsg(m); err != nil {
				return
			}
		}
	}
}

// tcpEnv returns a filter entry that asks s over TCP, with one attempt
// per query, so that a query that fails on a connection the server
// closed would fail its lookup.
func tcpEnv(t *testing.T, s *connServer) *testEnv {
	t.Helper()
	return newEnv(t, nil, Config{
		Servers:       []string{s.addr},
		Timeout:       2 * time.Second,
		Attempts:      1,
		Transport:     "tcp",
		ProbeInterval: dur(0),
		Zones:         []ZoneConfig{{Zone: "bl.test"}},
	}, nil)
}

// Over TCP every query opened a connection of its own and closed it once
// answered, leaving a port in TIME_WAIT for a minute: a busy site ran out
// of ephemeral ports, and then every lookup failed. Lookups of distinct
// clients, one after the other, now share one connection.
func TestTransportTCPReusesConnection(t *testing.T) {
	s := startConnServer(t, false, 0)
	e := tcpEnv(t, s)
	const lookups = 10
	for i := range lookups {
		if v := e.check(t, filters.StageConnect, conn(fmt.Sprintf("192.0.2.%d", i+1))); v.Action != filters.Continue {
			t.Fatalf("lookup %d: %v, want continue", i, v.Action)
		}
	}
	if n := e.obs.get("lookup bl.test not_listed"); n != lookups {
		t.Errorf("%d not-listed lookups, want %d (observer: %s)", n, lookups, e.obs)
	}
	if n := s.queries.Load(); n != lookups {
		t.Errorf("the server got %d queries, want %d", n, lookups)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d lookups over %d connections, want 1", lookups, n)
	}
}

// A server that sends an answer twice (a bug of its own, or of a proxy
// between) left the copy on the connection kept for the next query, which
// read it as its answer: another ID, so the attempt failed as bad_answer,
// and with its attempts used up the next client, listed, was let in. A
// message with another ID is no answer to the query on a kept connection
// either (RFC 7766 section 7 has clients match answers by ID), as it is
// none in a datagram (see exchangeOn): it is passed over, and the answer
// read after it. Each lookup is answered, over the one connection.
func TestTransportTCPStaleAnswerPassedOver(t *testing.T) {
	s := (&connServer{lists: true, duplicate: true}).start(t)
	e := tcpEnv(t, s)
	const lookups = 5
	for i := range lookups {
		if v := e.check(t, filters.StageConnect, conn(fmt.Sprintf("192.0.2.%d", i+1))); v.Action != filters.Reject {
			t.Errorf("lookup %d, listed, after a stale answer on the kept connection: %v, want reject", i, v.Action)
		}
	}
	if n := e.obs.get("lookup bl.test listed"); n != lookups || strings.Contains(e.obs.String(), "error") {
		t.Errorf("%d listed lookups of %d, want all, no error (observer: %s)", n, lookups, e.obs)
	}
	if n := s.accepted.Load(); n != 1 {
		t.Errorf("%d lookups over %d connections, want 1", lookups, n)
	}
}

// A server closes connections, idle or after each answer, as RFC 7766
// lets it: the query that meets a kept connection the server closed is
// sent again on a new one, and every lookup is answered, none counted
// as failed, the server not passed over.
func TestTransportTCPServerClosesConnection(t *testing.T) {
	for _, tc := range []struct {
		name             string
		closeAfterAnswer bool
		idleFor          time.Duration
	}{
		{"after each answer", true, 0},
		{"when idle", false, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startConnServer(t, tc.closeAfterAnswer, tc.idleFor)
			e := tcpEnv(t, s)
			const lookups = 5
			for i := range lookups {
				// The connection kept is closed at the server's
				// end before the next lookup.
				waitFor(t, "the server to close", func() bool { return s.ended.Load() == int32(i) })
				if v := e.check(t, filters.StageConnect, conn(fmt.Sprintf("192.0.2.%d", i+1))); v.Action != filters.Continue {
					t.Fatalf("lookup %d: %v, want continue", i, v.Action)
				}
			}
			if n := e.obs.get("lookup bl.test not_listed"); n != lookups || strings.Contains(e.obs.String(), "error") {
				t.Errorf("%d not-listed lookups of %d, want all, no error (observer: %s)", n, lookups, e.obs)
			}
			if e.f.res.down.holds(s.addr, time.Now()) {
				t.Errorf("the server is passed over")
			}
			// Each lookup met a connection the server had closed,
			// but the first.
			if n := s.accepted.Load(); n != lookups {
				t.Errorf("%d connections, want %d", n, lookups)
			}
		})
	}
}

// The connections kept idle are closed once idle for a while, as the
// server would close them anyway, and when the filter is closed (a
// reload builds a new one): none is left open, with its timer, behind.
func TestTransportTCPClosesIdleConnections(t *testing.T) {
	for _, tc := range []struct {
		name    string
		idleFor time.Duration
		close   bool
	}{
		{"idle", 50 * time.Millisecond, false},
		{"filter closed", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startConnServer(t, false, 0)
			e := tcpEnv(t, s)
			e.f.res.conns.idleFor = tc.idleFor
			if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
				t.Fatalf("lookup: %v, want continue", v.Action)
			}
			if tc.close {
				e.f.Close()
			}
			waitFor(t, "the connection closed", func() bool { return s.closedByClient.Load() == 1 })
			e.f.res.conns.mu.Lock()
			idle := len(e.f.res.conns.idle)
			e.f.res.conns.mu.Unlock()
			if idle != 0 {
				t.Errorf("idle connections of %d servers still kept", idle)
			}
		})
	}
}
