package dnsbl

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
)

// answerServer runs a DNS server on a 127.0.0.1 UDP port that answers
// every query with the records answer returns for its name, for answers
// package dnsbltest does not give.
func answerServer(t *testing.T, answer func(qname string) []dns.RR) string {
	t.Helper()
	return rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = answer(r.Question[0].Name)
		return m
	})
}

// rawServer runs a DNS server on a 127.0.0.1 UDP port that sends back
// whatever reply makes of each query.
func rawServer(t *testing.T, reply func(r *dns.Msg) *dns.Msg) string {
	t.Helper()
	return datagramServer(t, func(r *dns.Msg) []*dns.Msg { return []*dns.Msg{reply(r)} })
}

// datagramServer runs a DNS server on a 127.0.0.1 UDP port that sends
// every message replies makes of a query, in order, to its client.
func datagramServer(t *testing.T, replies func(r *dns.Msg) []*dns.Msg) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		for _, m := range replies(r) {
			w.WriteMsg(m)
		}
	})}
	serveDNS(t, s)
	return pc.LocalAddr().String()
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// Only records of the name asked count, directly or through the CNAMEs
// the resolver followed: a server that answers every query with a record
// of another name (here the list's listed test entry) does not list
// everyone.
func TestAnswerRecordsOfAnotherName(t *testing.T) {
	addr := answerServer(t, func(qname string) []dns.RR {
		switch qname {
		case "1.2.0.192.bl.test.":
			// An alias, followed: the listing counts.
			return []dns.RR{
				mustRR(t, "1.2.0.192.bl.test. 300 IN CNAME listed.bl.test."),
				mustRR(t, "listed.bl.test. 300 IN A 127.0.0.2"),
			}
		case "2.2.0.192.bl.test.":
			// An alias, and an A record of a name outside the chain.
			return []dns.RR{
				mustRR(t, "2.2.0.192.bl.test. 300 IN CNAME clean.bl.test."),
				mustRR(t, "listed.bl.test. 300 IN A 127.0.0.2"),
			}
		}
		return []dns.RR{mustRR(t, "2.0.0.127.bl.test. 300 IN A 127.0.0.2")}
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)

	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed through a CNAME: %+v, want reject", v)
	}
	for _, ip := range []string{"192.0.2.2", "192.0.2.3"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("%s, answered with a record of another name: %+v, want continue", ip, v)
		}
	}
}

// A TTL with its top bit set is 0 (RFC 2181 section 8): such an answer is
// not cached, where capping it at max_ttl kept it for an hour.
func TestAnswerTTLTopBitSet(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	addr := answerServer(t, func(qname string) []dns.RR {
		if qname != "1.2.0.192.bl.test." {
			return []dns.RR{mustRR(t, "2.0.0.127.bl.test. 300 IN A 127.0.0.2")}
		}
		mu.Lock()
		asked++
		mu.Unlock()
		rr := mustRR(t, qname+" 300 IN A 127.0.0.2")
		rr.Header().Ttl = 1 << 31
		return []dns.RR{rr}
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	for range 2 {
		if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
			t.Fatalf("listed: %+v, want reject", v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if asked != 2 {
		t.Errorf("the server was asked %d times for two connections, want 2 (not cached)", asked)
	}
}

// A query sent back with records added, its QR bit still clear, is no
// answer: whatever it says, the client is not listed.
func TestAnswerThatIsAQuery(t *testing.T) {
	addr := rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := r.Copy()
		m.Answer = []dns.RR{mustRR(t, r.Question[0].Name+" 300 IN A 127.0.0.2")}
		return m
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action == filters.Reject {
		t.Errorf("an echoed query listed the client: %+v", v)
	}
}

// A resolver that refuses a client may answer REFUSED without the
// question (9.9.9.9 does): that is a refusal, counted and logged as one,
// not a bad answer to another question.
func TestRefusedWithoutQuestion(t *testing.T) {
	addr := rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		m.Question = nil
		return m
	})
	cfg := Config{Servers: []string{addr}, Timeout: 300 * time.Millisecond, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("verdict %+v, want continue", v)
	}
	if e.obs.get("error bl.test refused") != 1 || e.obs.get("error bl.test bad_answer") != 0 {
		t.Errorf("observer: %s, want one error of kind refused", e.obs)
	}
	if log := e.logText(); !strings.Contains(log, "kind=refused") || !strings.Contains(log, "REFUSED") {
		t.Errorf("log: %s", log)
	}
}

// A datagram whose ID is not the query's is no answer to it, whatever
// it says: the resolver waits on for the answer with the right ID (an
// off-path forger must guess the ID as well as the port). Here every
// answer comes after a forged one of another ID that says the opposite.
func TestAnswerWithAnotherIDIsIgnored(t *testing.T) {
	addr := datagramServer(t, func(r *dns.Msg) []*dns.Msg {
		qname := r.Question[0].Name
		listed := []dns.RR{mustRR(t, qname+" 300 IN A 127.0.0.2")}
		forged, real := new(dns.Msg), new(dns.Msg)
		forged.SetReply(r)
		real.SetReply(r)
		forged.Id = r.Id ^ 0x5a5a
		if qname == "1.2.0.192.bl.test." {
			// Listed; the forger says NXDOMAIN.
			real.Answer = listed
			forged.Rcode = dns.RcodeNameError
		} else {
			// Not listed; the forger says listed.
			real.Rcode = dns.RcodeNameError
			forged.Answer = listed
		}
		return []*dns.Msg{forged, real}
	})
	cfg := Config{Servers: []string{addr}, Timeout: 2 * time.Second, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Reject {
		t.Errorf("listed, after a forged NXDOMAIN: %+v, want reject", v)
	}
	if v := e.check(t, filters.StageConnect, conn("192.0.2.2")); v.Action != filters.Continue {
		t.Errorf("not listed, after a forged listing: %+v, want continue", v)
	}
	if e.obs.get("lookup bl.test listed") != 1 || e.obs.get("lookup bl.test not_listed") != 1 || e.obs.get("lookup bl.test error") != 0 {
		t.Errorf("observer: %s, want one listing, one not listed, no error", e.obs)
	}
}

// A server that truncates its answer over UDP but takes no TCP (port 53
// closed to TCP by a firewall, a common mistake) gives no answer: the
// lookup fails open, as a network error, and the log says that the
// answer was truncated and TCP failed, not only "connection refused" of
// a server that answers every UDP query.
func TestTruncatedAnswerWithoutTCP(t *testing.T) {
	addr := rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Truncated = true
		return m
	})
	cfg := Config{Servers: []string{addr}, Timeout: 2 * time.Second, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.1")); v.Action != filters.Continue {
		t.Errorf("verdict %+v, want continue", v)
	}
	if e.obs.get("error bl.test network") != 1 {
		t.Errorf("observer: %s, want one network error", e.obs)
	}
	if log := e.logText(); !strings.Contains(log, "kind=network") || !strings.Contains(log, "truncated") || !strings.Contains(log, "TCP") {
		t.Errorf("the log does not say the answer was truncated and TCP failed:\n%s", log)
	}
}

// An answer with the query's ID but another question (another name, or
// another type) answers something else: no listing, whatever it holds,
// and an error of kind bad_answer. The question in other letter case is
// the same question (RFC 4343): its answer counts.
func TestAnswerToAnotherQuestion(t *testing.T) {
	addr := rawServer(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		q := &m.Question[0]
		switch q.Name {
		case "1.2.0.192.bl.test.":
			q.Name = "2.0.0.127.bl.test."
		case "2.2.0.192.bl.test.":
			q.Qtype = dns.TypeTXT
		case "3.2.0.192.bl.test.":
			q.Name = strings.ToUpper(q.Name)
		}
		m.Answer = []dns.RR{mustRR(t, q.Name+" 300 IN A 127.0.0.2")}
		return m
	})
	cfg := Config{Servers: []string{addr}, Timeout: 2 * time.Second, Attempts: 1, ProbeInterval: dur(0), Zones: []ZoneConfig{{Zone: "bl.test"}}}
	e := newEnv(t, nil, cfg, nil)
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Continue {
			t.Errorf("%s, answered for another question: %+v, want continue", ip, v)
		}
	}
	if v := e.check(t, filters.StageConnect, conn("192.0.2.3")); v.Action != filters.Reject {
		t.Errorf("the question in upper case: %+v, want reject", v)
	}
	if e.obs.get("error bl.test bad_answer") != 2 || e.obs.get("lookup bl.test listed") != 1 {
		t.Errorf("observer: %s, want two bad answers and one listing", e.obs)
	}
	if log := e.logText(); !strings.Contains(log, "answer to another question") {
		t.Errorf("log: %s", log)
	}
}

// serveDNS starts s, which has its listener or packet conn, waits until
// it serves, and shuts it down when the test ends.
func serveDNS(t *testing.T, s *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	go s.ActivateAndServe()
	<-started
	t.Cleanup(func() { s.Shutdown() })
}
