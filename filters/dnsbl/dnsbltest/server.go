// Package dnsbltest runs a real DNS server on loopback for tests of DNS
// blocklist lookups: it answers over UDP and TCP on one loopback port
// from records the test sets, counts every query it receives, and can be
// told to misbehave for a name (SERVFAIL, no answer at all, a truncated UDP
// answer, an answer held back until the test releases it), or to be a
// server without EDNS. It is a test helper; import it only from _test.go
// files.
package dnsbltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Behaviour is what the server does with queries for one name.
type Behaviour uint8

// The behaviours.
const (
	// Answer answers from the records: the records of the asked type,
	// NODATA when the name has records of other types only, NXDOMAIN when
	// it has none. Negative answers carry an SOA (see SetNegativeTTL).
	Answer Behaviour = iota
	// ServFail answers SERVFAIL.
	ServFail
	// Refuse answers REFUSED.
	Refuse
	// Drop reads the query and never answers.
	Drop
	// Truncate answers over UDP with an empty, truncated (TC) reply and
	// over TCP from the records, as a server does whose answer does not
	// fit a datagram.
	Truncate
	// TruncateCut answers over UDP with the whole answer cut a few bytes
	// short, TC set and the header's record counts left as they were, as
	// a server does that cuts an answer at the datagram's size (RFC 1035
	// 4.2.1), and over TCP from the records.
	TruncateCut
	// Oversize answers over UDP with the whole answer and, in its
	// additional section, TXT records of another name that take it
	// past the payload size the query advertised (512 bytes without
	// EDNS), TC not set, as a server does that ignores that size; over
	// TCP from the records.
	Oversize
	// CutWithoutTC answers over UDP as TruncateCut does but without
	// setting TC, as a server or middlebox does that cuts answers
	// without marking them; over TCP from the records.
	CutWithoutTC
	// BadEDNS answers a query that carries an OPT record with FORMERR
	// and an OPT record, as a server that implements EDNS answers a
	// query whose OPT record it finds malformed (RFC 6891 section 7);
	// a query without one is answered from the records.
	BadEDNS
	// CutAtRecord answers over UDP with the header and question of the
	// answer and none of its records, TC not set and the header's
	// record counts left as they were, as a server or middlebox does
	// whose cut without a mark falls between two records; over TCP
	// from the records.
	CutAtRecord
)

// Query is one query the server received.
type Query struct {
	// Name is the query name in lower case, without the final dot.
	Name string
	// Type is the query type, e.g. dns.TypeA.
	Type uint16
	// Net is "udp" or "tcp".
	Net string
	// EDNS is set when the query carried an OPT record.
	EDNS bool
}

// Server is a DNS server on loopback (127.0.0.1 unless StartOn says
// otherwise) serving records set by the test. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is the host:port the server answers on, over UDP and TCP.
	Addr string

	mu        sync.Mutex
	records   map[string][]dns.RR // by lower-case name without final dot
	behaviour map[string]Behaviour
	gates     map[string]<-chan struct{}
	queries   []Query
	soaTTL    uint32
	soaMin    uint32
	noEDNS    bool
	udp, tcp  *dns.Server
	stopped   chan struct{}
	stopOnce  sync.Once
}

// maxBindTries bounds the search for a port free for both UDP and TCP.
const maxBindTries = 50

// Start starts a server on a random 127.0.0.1 port and registers a cleanup
// that stops it. Negative answers carry an SOA with TTL 3600 and minimum
// 3600 until SetNegativeTTL says otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1")
}

// StartOn is Start on a random port of the loopback address host, such
// as "::1"; Addr is then "[::1]:port".
func StartOn(t testing.TB, host string) *Server {
	t.Helper()
	return StartAt(t, host, "0")
}

// StartAt is Start on the given port of the loopback address host ("0"
// for a random one). For two servers on one port, as the nameservers of
// a resolv.conf are, which names no port, use StartPair: it tries another
// port when the first one is taken on the second address.
func StartAt(t testing.TB, host, port string) *Server {
	t.Helper()
	pc, ln, err := listenPair(host, port)
	if err != nil {
		t.Fatalf("dnsbltest: %v", err)
	}
	return startServing(t, pc, ln)
}

// pairTries bounds the ports StartPair tries.
const pairTries = 10

// StartPair starts two servers on one random port, the first on
// loopback address hostA and the second on hostB, such as "127.0.0.1"
// and "127.0.0.2". A port free on hostA may be taken on hostB, by any
// other program or test package binding it meanwhile; then another port
// is tried, pairTries times at most.
func StartPair(t testing.TB, hostA, hostB string) (*Server, *Server) {
	t.Helper()
	return startPair(t, hostA, hostB, func() string { return "0" })
}

// startPair is StartPair with the port for hostA picked by pick ("0"
// for a random one).
func startPair(t testing.TB, hostA, hostB string, pick func() string) (*Server, *Server) {
	t.Helper()
	for try := 1; ; try++ {
		port := pick()
		pcA, lnA, err := listenPair(hostA, port)
		if err != nil {
			if !errors.Is(err, syscall.EADDRINUSE) || try == pairTries {
				t.Fatalf("dnsbltest: %s: %v", hostA, err)
			}
			t.Logf("dnsbltest: port %s is taken on %s; trying another", port, hostA)
			continue
		}
		_, port, err = net.SplitHostPort(pcA.LocalAddr().String())
		if err != nil {
			t.Fatalf("dnsbltest: %v", err)
		}
		pcB, lnB, err := listenPair(hostB, port)
		if err != nil {
			pcA.Close()
			lnA.Close()
			if !errors.Is(err, syscall.EADDRINUSE) || try == pairTries {
				t.Fatalf("dnsbltest: %s port %s: %v", hostB, port, err)
			}
			t.Logf("dnsbltest: port %s is free on %s but taken on %s; trying another", port, hostA, hostB)
			continue
		}
		return startServing(t, pcA, lnA), startServing(t, pcB, lnB)
	}
}

// startServing starts a server answering on pc and ln, and registers a cleanup
// that stops it.
func startServing(t testing.TB, pc net.PacketConn, ln net.Listener) *Server {
	t.Helper()
	s := &Server{
		records:   map[string][]dns.RR{},
		behaviour: map[string]Behaviour{},
		gates:     map[string]<-chan struct{}{},
		soaTTL:    3600,
		soaMin:    3600,
		stopped:   make(chan struct{}),
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	for i := 0; i < 2; i++ {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("dnsbltest: server did not start")
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// listenPair binds UDP and TCP on the same port of host: port, or a free
// one when port is "0".
func listenPair(host, port string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for i := 0; i < maxBindTries; i++ {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			return nil, nil, fmt.Errorf("listen tcp: %w", err)
		}
	}
	return nil, nil, fmt.Errorf("no loopback port free for both udp and tcp after %d tries: %w", maxBindTries, lastErr)
}

// Stop stops the server: later queries find no one listening. Answers held
// back by a gate are dropped. Calling it twice is harmless.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopped)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.udp.ShutdownContext(ctx)
		s.tcp.ShutdownContext(ctx)
	})
}

func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// AddA adds A records for name with the given TTL, e.g.
// AddA("2.0.0.127.bl.test", 300, "127.0.0.2").
func (s *Server) AddA(name string, ttl uint32, ips ...string) {
	for _, ip := range ips {
		a := net.ParseIP(ip).To4()
		if a == nil {
			panic(fmt.Sprintf("dnsbltest: %q is not an IPv4 address", ip))
		}
		s.add(&dns.A{Hdr: header(name, dns.TypeA, ttl), A: a})
	}
}

// AddTXT adds a TXT record for name; text longer than 255 bytes is split
// into several strings, as a zone file would have to.
func (s *Server) AddTXT(name string, ttl uint32, text string) {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	s.add(&dns.TXT{Hdr: header(name, dns.TypeTXT, ttl), Txt: parts})
}

func header(name string, typ uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(canonical(name)), Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := canonical(rr.Header().Name)
	s.records[k] = append(s.records[k], rr)
}

// Remove deletes every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, canonical(name))
}

// SetBehaviour sets what the server does with queries for name.
func (s *Server) SetBehaviour(name string, b Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behaviour[canonical(name)] = b
}

// Hold makes the server hold every answer for name until gate is closed
// (or the server stops). The query is counted when it arrives.
func (s *Server) Hold(name string, gate <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gates[canonical(name)] = gate
}

// SetNegativeTTL sets the TTL and the MINIMUM field of the SOA record that
// negative answers carry; a resolver caches them for the smaller of the
// two (RFC 2308 section 5). With ttl 0 and minimum 0 negative answers
// carry no SOA at all.
func (s *Server) SetNegativeTTL(ttl, minimum uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.soaTTL, s.soaMin = ttl, minimum
}

// WithoutEDNS makes the server one that does not implement EDNS: it
// answers every query that carries an OPT record with FORMERR and no OPT
// record, as RFC 6891 section 7 requires of such a server, and answers
// queries without one as usual.
func (s *Server) WithoutEDNS() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noEDNS = true
}

// Queries returns every query received so far, in arrival order.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.queries...)
}

// Count returns how many queries of type qtype for name arrived, over UDP
// and TCP.
func (s *Server) Count(name string, qtype uint16) int {
	return s.CountNet(name, qtype, "")
}

// CountNet is Count for one transport, "udp" or "tcp" ("" for both).
func (s *Server) CountNet(name string, qtype uint16, network string) int {
	name = canonical(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.queries {
		if q.Name == name && q.Type == qtype && (network == "" || q.Net == network) {
			n++
		}
	}
	return n
}

// maxQueries bounds the query log, so a runaway client cannot exhaust
// memory; a test never comes near it.
const maxQueries = 1 << 20

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)
	edns := req.IsEdns0() != nil

	s.mu.Lock()
	if len(s.queries) < maxQueries {
		s.queries = append(s.queries, Query{Name: name, Type: q.Qtype, Net: network, EDNS: edns})
	}
	noEDNS := s.noEDNS
	b := s.behaviour[name]
	gate := s.gates[name]
	var answer, other []dns.RR
	for _, rr := range s.records[name] {
		if rr.Header().Rrtype == q.Qtype {
			answer = append(answer, dns.Copy(rr))
		} else {
			other = append(other, rr)
		}
	}
	soaTTL, soaMin := s.soaTTL, s.soaMin
	s.mu.Unlock()

	if gate != nil {
		select {
		case <-gate:
		case <-s.stopped:
			return
		}
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	switch {
	case edns && noEDNS:
		m.Rcode = dns.RcodeFormatError
	case edns && b == BadEDNS:
		m.Rcode = dns.RcodeFormatError
		m.SetEdns0(1232, false)
	case b == Drop:
		return
	case b == ServFail:
		m.Rcode = dns.RcodeServerFailure
	case b == Refuse:
		m.Rcode = dns.RcodeRefused
	case b == Truncate && network == "udp":
		m.Truncated = true
	case (b == TruncateCut || b == CutWithoutTC) && network == "udp":
		m.Answer = answer
		m.Truncated = b == TruncateCut
		packed, err := m.Pack()
		if err != nil || len(packed) < 12+4 {
			return
		}
		// The last record loses its final bytes; the counts still
		// promise it.
		w.Write(packed[:len(packed)-3])
		return
	case b == CutAtRecord && network == "udp":
		m.Answer = answer
		packed, err := m.Pack()
		if err != nil {
			return
		}
		// The question alone packs to the same bytes as the start of
		// the whole message, where the first record begins.
		q := m.Copy()
		q.Answer, q.Ns, q.Extra = nil, nil, nil
		head, err := q.Pack()
		if err != nil || len(head) > len(packed) {
			return
		}
		w.Write(packed[:len(head)])
		return
	case b == Oversize && network == "udp":
		m.Answer = answer
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
		// Bounded: each record adds some 270 bytes, and size is at
		// most 64 KiB.
		for m.Len() <= size {
			m.Extra = append(m.Extra, &dns.TXT{Hdr: header("pad.dnsbltest", dns.TypeTXT, 300), Txt: []string{strings.Repeat("x", 255)}})
		}
		packed, err := m.Pack()
		if err != nil {
			return
		}
		w.Write(packed)
		return
	case len(answer) > 0:
		m.Answer = answer
	default:
		if len(other) == 0 {
			m.Rcode = dns.RcodeNameError
		}
		if soaTTL > 0 || soaMin > 0 {
			m.Ns = []dns.RR{&dns.SOA{
				Hdr: header(name, dns.TypeSOA, soaTTL),
				Ns:  "ns.dnsbltest.", Mbox: "hostmaster.dnsbltest.",
				Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: soaMin,
			}}
		}
	}
	if err := w.WriteMsg(m); err != nil && !errors.Is(err, net.ErrClosed) {
		// The client went away; nothing to do in a test server.
		return
	}
}
