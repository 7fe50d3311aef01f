package dnsbl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Error kinds, as counted in the errors metric and logged.
const (
	// KindTimeout: no answer within the timeout.
	KindTimeout = "timeout"
	// KindNetwork: the query could not be sent or the answer not read
	// (e.g. connection refused: no server listening).
	KindNetwork = "network"
	// KindServfail: the resolver answered SERVFAIL.
	KindServfail = "servfail"
	// KindRefused: the resolver answered REFUSED.
	KindRefused = "refused"
	// KindRcode: the resolver answered with another error code.
	KindRcode = "rcode"
	// KindListRefused: the list answered with a code that means it
	// refuses the query (127.255.255.0/24, or 127.0.0.1), typically
	// because it came through a public resolver or over quota.
	KindListRefused = "list_refused"
	// KindBadAnswer: an answer that cannot be a listing (an address
	// outside 127.0.0.0/8, more than maxAddrs addresses), does not match
	// the question, or does not parse.
	KindBadAnswer = "bad_answer"
	// KindBusy: the query was not sent, as max_in_flight queries were
	// in flight and none ended within the timeout (see resolver.slot).
	KindBusy = "busy"
	// KindListsAll: a listing from a list whose last health probe found
	// the entry no list may have (127.0.0.1; see probeAll) listed: such
	// a list answers every name as listed, and its listings are ignored.
	KindListsAll = "lists_all"
)

// ednsSize is the UDP payload size advertised with EDNS0: large enough for
// any DNSxL answer with its TXT record, small enough to avoid IP
// fragmentation (the 2020 DNS flag day value).
const ednsSize = 1232

// maxAddrs bounds the distinct addresses of an A answer. A list answers
// a listed name with a handful of return codes (Spamhaus ZEN, which
// combines several lists, with at most one per list); an answer with
// more is no DNSBL answer, and keeping it would let one hostile answer
// hold some 100 KB of the cache, make a header field of tens of
// kilobytes and a metric series per address.
const maxAddrs = 32

// resolver sends queries to the configured servers: UDP first, TCP when
// the UDP answer is truncated (RFC 7766), or TCP only (see tcpOnly), with
// EDNS unless a server turned out not to implement it, each attempt
// bounded by timeout, attempts spread over the servers in turn (or first
// to last, see serverSet).
type resolver struct {
	// set is the servers asked, replaced whole when the resolv.conf
	// they came from changes (see conf), so that a query in progress
	// keeps the list it started with.
	set      atomic.Pointer[serverSet]
	timeout  time.Duration
	attempts int
	udp, tcp dns.Client
	// tcpOnly sends every query over TCP (transport: tcp), for servers
	// reachable over TCP only: a forwarder into DNS over TLS, or a
	// firewall that drops UDP, where each query over UDP would cost its
	// timeout. Set before the first query, not changed after.
	tcpOnly bool
	// udpFirst is transport: udp set in so many words, which keeps UDP
	// whatever resolv.conf says (see serverSet.tcp).
	udpFirst bool
	// slots bounds the lookups' queries in flight at once (see slot);
	// nil bounds none.
	slots chan struct{}
	// conns keeps TCP connections for the next query to their server.
	conns *tcpConns
	next  atomic.Uint32
	// down holds the servers that gave no answer at all, for downFor:
	// until then queries pass them over while another server is up.
	// Taken in turn regardless, a dead server among three
	// would cost every query that starts at it a timeout, and with two
	// dead and two attempts a third of the lookups would fail, their
	// clients unchecked.
	down *serverMemory
	// noEDNS remembers the servers found without EDNS.
	noEDNS *serverMemory
	// answered holds when each server last answered a query.
	answered *serverMemory
	// conf watches the resolv.conf the servers came from; nil when they
	// are configured.
	conf *resolvConfWatch
}

// serverSet is the servers a resolver asks.
type serverSet struct {
	servers []string
	// inOrder makes every query start at the first server, the others
	// asked only when it fails, as the nameservers of resolv.conf are
	// (see rotates); otherwise queries start at each server in
	// turn.
	inOrder bool
	// tcp sends every query over TCP: the resolv.conf the servers came
	// from sets "options use-vc" (see resolvOptions), unless the
	// configuration says transport: udp.
	tcp bool
}

// downFor is how long a server that gave no answer is passed over.
const downFor = 30 * time.Second

// noEDNSFor is how long a server found without EDNS is asked without it.
// Then EDNS is tried again, so a server upgraded (or a middlebox
// replaced) is noticed, at the cost of one extra round trip per server
// and interval.
const noEDNSFor = 10 * time.Minute

// newResolver returns a resolver asking servers. What it learns of them
// (see down and noEDNS) it keeps in mem, which comes from the Shared the
// filter was built from, so that a reload, which builds a new resolver,
// does not forget it; or in a memory of its own when mem is nil.
func newResolver(servers []string, timeout time.Duration, attempts int, mem *serverMemories) *resolver {
	if mem == nil {
		mem = newServerMemories()
	}
	r := &resolver{
		timeout:  timeout,
		attempts: attempts,
		down:     mem.down,
		noEDNS:   mem.noEDNS,
		answered: mem.answered,
		conns:    newTCPConns(tcpIdleFor),
	}
	r.use(serverSet{servers: servers})
	r.udp = dns.Client{Net: "udp", Timeout: timeout}
	r.tcp = dns.Client{Net: "tcp", Timeout: timeout}
	return r
}

// use makes r ask servers from its next query on, first to last when
// inOrder is set, else in turn.
func (r *resolver) use(set serverSet) {
	r.set.Store(&set)
}

// current returns the servers r asks now, those of resolv.conf as it is
// now when its check is due (see resolvConfWatch).
func (r *resolver) current() *serverSet {
	if r.conf != nil {
		r.conf.check(r)
	}
	return r.set.Load()
}

// slot waits for one of r's slots, at most r.timeout, and returns the
// function that gives it back. A query of a lookup holds one from its
// first attempt to its last, which use one socket at a time, so that a
// flood of clients with distinct addresses (or senders with distinct
// domains), each missing the cache, cannot open a socket per lookup: the
// daemon would run out of file descriptors, and then fail to accept MTA
// connections too, while the burst of queries swamps the resolver. The
// wait is bounded as an attempt is: a lookup that gets no slot fails as
// one that gets no answer does. The health probes take none: at most
// maxProbes run at once, and a probe failed for want of a slot would
// report a list down that is not.
func (r *resolver) slot() (release func(), err error) {
	if r.slots == nil {
		return func() {}, nil
	}
	select {
	case r.slots <- struct{}{}:
		return r.release, nil
	default:
	}
	t := time.NewTimer(r.timeout)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return r.release, nil
	case <-t.C:
		return nil, fmt.Errorf("%d queries in flight already (max_in_flight), none ended within %s", cap(r.slots), r.timeout)
	}
}

func (r *resolver) release() { <-r.slots }

// close closes the TCP connections r keeps idle. A query still in
// progress closes its own once answered.
func (r *resolver) close() { r.conns.close() }

// query asks for name (lower case, no final dot) of type qtype. It tries
// up to r.attempts times, each time at the next server, and returns the
// first answer that is not a failure, or the last failure. An answer with
// a refusal code is asked again at the next server not yet asked, as a
// failure is, and returned when none is left or those fail. TTLs are
// capped at maxTTL; a failure is cached for failTTL. ctx may cut it short.
func (r *resolver) query(ctx context.Context, name string, qtype uint16, maxTTL, failTTL time.Duration) answer {
	set := r.current()
	servers := set.servers
	start := 0
	if !set.inOrder {
		// In uint32, so that the count wraps round to 0, never to a
		// negative index.
		start = int((r.next.Add(1) - 1) % uint32(len(servers)))
	}
	order := r.order(servers, start, time.Now())
	// The transport is the one of the servers asked: a resolv.conf
	// changed meanwhile (see conf) must not send the rest of this query
	// to its servers over the transport of the new file.
	tcp := r.overTCP(set)
	// refusal is the first answer with a refusal code, kept in case the
	// servers asked after it fail: the list did answer.
	var last, refusal answer
	var refusedBy string // the server that gave refusal
	for i := range r.attempts {
		// More attempts than servers ask them again, in the same order.
		k := order[i%len(order)]
		begun := time.Now()
		last = r.ask(ctx, servers[k], name, qtype, maxTTL, tcp)
		if ctx.Err() != nil {
			break
		}
		if last.fail != KindTimeout && last.fail != KindNetwork {
			r.answered.remember(servers[k], time.Now())
		}
		switch last.fail {
		case "":
			r.down.forget(servers[k])
			if last.refused() && i+1 < r.attempts && i+1 < len(order) {
				// The list refuses this resolver (a public one,
				// or one over quota), not the name: another
				// resolver may be answered, as after REFUSED.
				// The same one again would be refused again.
				if refusal.addrs == nil {
					refusal = last
					refusedBy = servers[k]
				}
				continue
			}
			if refusal.addrs != nil && !last.refused() {
				last.refusedBy = refusedBy
			}
			return boundFailure(last, failTTL)
		case KindTimeout, KindNetwork:
			// A server that answered another query meanwhile is
			// alive: what timed out is this name, typically a list
			// whose own servers are dead, which the resolver keeps
			// trying. Passed over, it would send every lookup to
			// the next server.
			if !errors.Is(last.err, errTruncated) && !r.answered.at(servers[k]).After(begun) {
				r.down.remember(servers[k], time.Now())
			}
		}
	}
	if last.fail != "" && refusal.addrs != nil {
		return boundFailure(refusal, failTTL)
	}
	return boundFailure(last, failTTL)
}

// boundFailure returns a to be cached for failTTL (at most, for an
// answer) when it counts as a failed lookup (see failed): a refusal
// code, or an address outside 127.0.0.0/8, says nothing about the name,
// and kept for its DNS TTL (up to max_ttl, an hour) it would keep a
// resolver that would answer from being asked for that long, where a
// timeout is asked again after failure_ttl.
func boundFailure(a answer, failTTL time.Duration) answer {
	switch {
	case a.fail != "":
		a.ttl = failTTL
	case a.failed():
		a.ttl = min(a.ttl, failTTL)
	}
	return a
}

// failed reports whether a is a failure or an A answer that classify
// reads as one: with a refusal code or an address outside 127.0.0.0/8.
func (a answer) failed() bool {
	return a.fail != "" || slices.ContainsFunc(a.addrs, func(x netip.Addr) bool {
		return isRefusal(x) || !x.Is4() || !loopback8.Contains(x)
	})
}

// refused reports whether a is an A answer with a code by which the list
// refuses queries that come to it through the resolver asked (see
// isRefusal): it depends on the resolver, not on the name asked.
func (a answer) refused() bool {
	return slices.ContainsFunc(a.addrs, isRefusal)
}

// order returns the indexes of servers to ask, from start on in turn,
// those passed over for now (see down) after the others.
func (r *resolver) order(servers []string, start int, now time.Time) []int {
	up := make([]int, 0, len(servers))
	var down []int
	for i := range servers {
		k := (start + i) % len(servers)
		if r.down.holds(servers[k], now) {
			down = append(down, k)
		} else {
			up = append(up, k)
		}
	}
	return append(up, down...)
}

// overTCP reports whether the queries to the servers of set go over TCP
// only: transport: tcp, or "options use-vc" in the resolv.conf they came
// from, unless the configuration says transport: udp.
func (r *resolver) overTCP(set *serverSet) bool {
	return r.tcpOnly || (!r.udpFirst && set.tcp)
}

// answerSource names where the answers to queries to the servers of set
// come from, for the shared cache (see Shared.cache): the servers, and
// whether they are asked over TCP only. A failure depends on the
// transport (a resolver that only TCP reaches fails every query over
// UDP), so failures cached over one must not be served once queries go
// over the other.
func (r *resolver) answerSource(set *serverSet) string {
	src := strings.Join(set.servers, " ")
	if r.overTCP(set) {
		src += " over tcp"
	}
	return src
}

// ask sends one query to server, over TCP only if tcp is set, with EDNS
// unless the server is known to lack it, once more without EDNS if the
// server answers as one that lacks it, and interprets the answer.
func (r *resolver) ask(ctx context.Context, server, name string, qtype uint16, maxTTL time.Duration, tcp bool) answer {
	edns := !r.noEDNS.holds(server, time.Now())
	resp, err := r.send(ctx, server, name, qtype, edns, tcp)
	if edns && err == nil && resp.Response && resp.Rcode == dns.RcodeFormatError && resp.IsEdns0() == nil {
		// FORMERR without an OPT record is how a server that does not
		// implement EDNS answers a query with one (RFC 6891 section 7;
		// some middleboxes answer so for their server too). With an
		// OPT record it is a server with EDNS finding fault with ours,
		// which asking without EDNS would not mend. The server is
		// remembered only if the plain query fares better, so that one
		// that answers FORMERR to everything is not.
		resp, err = r.send(ctx, server, name, qtype, false, tcp)
		if err == nil && resp.Rcode != dns.RcodeFormatError {
			r.noEDNS.remember(server, time.Now())
		}
	}
	if err != nil {
		return failure(ctx, server, name, err)
	}
	if !resp.Response {
		// The query itself, echoed back (a reflector, or a loop in the
		// network), with whatever records were added to it: no answer.
		return answer{fail: KindBadAnswer, err: fmt.Errorf("%s: a query, not an answer", server)}
	}
	if len(resp.Question) == 0 && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		// An error answer may come without the question (9.9.9.9
		// answers REFUSED so); its ID matched the query's, and an error
		// lists nobody, so its code is what it says: a resolver that
		// refuses us is reported as refusing, not as answering
		// something else.
		return interpret(resp, name, qtype, server, maxTTL)
	}
	if len(resp.Question) != 1 || !strings.EqualFold(strings.TrimSuffix(resp.Question[0].Name, "."), name) || resp.Question[0].Qtype != qtype {
		return answer{fail: KindBadAnswer, err: fmt.Errorf("%s: answer to another question", server)}
	}
	return interpret(resp, name, qtype, server, maxTTL)
}

// errTruncated marks the failure of a query over TCP that a truncated
// UDP answer called for. The server answered over UDP, so it is not
// passed over (see down) for it: it answers the queries whose answers fit
// a datagram, and a server whose TCP port a firewall closes would
// otherwise be passed over after each long answer.
var errTruncated = errors.New("answer truncated over UDP")

// errCut marks a UDP answer that did not come whole although its TC bit
// is not set: longer than the payload size the query advertised (the
// most the requestor takes, RFC 6891 section 6.2.3; a longer answer is
// to be cut and marked, as RFC 1035 section 4.2.1 has it for 512 bytes),
// which the read cuts, or ending inside a record that its header
// promises, as a server or middlebox leaves it that cuts answers at a
// size without marking them (see exchangeOn). Like a truncated answer it
// is asked for again over TCP: read as a bad answer, it lost the listing
// it carried.
var errCut = errors.New("answer cut short over UDP")

// send sends one query for name and qtype to server, with an OPT record
// if edns is set, over TCP again if the UDP answer was truncated or cut
// short (see errCut), or over TCP only if tcp is set (see overTCP).
func (r *resolver) send(ctx context.Context, server, name string, qtype uint16, edns, tcp bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	if edns {
		m.SetEdns0(ednsSize, false)
	}
	if tcp {
		// A TCP message may be 64 KiB long (RFC 1035 section 4.2.2),
		// so the answer is whole and there is nothing to ask again.
		return r.exchangeTCP(ctx, server, m)
	}
	resp, err := r.exchange(ctx, &r.udp, server, m)
	if resp != nil && resp.Truncated || errors.Is(err, errCut) {
		// The whole answer did not fit a datagram; it must be asked for
		// again over TCP (RFC 7766 section 5). A partial answer is not
		// used: its records may be missing the code that matters. A
		// server that cuts the answer at the datagram's size leaves
		// counts of records that are not there, so the datagram does
		// not parse (err is set), but its header says TC all the same.
		m.Id = dns.Id()
		resp, err = r.exchangeTCP(ctx, server, m)
		if err != nil {
			// Said, so that a server whose TCP port is closed (a
			// firewall that lets only UDP through) is not taken for
			// one that gives no answer at all.
			err = fmt.Errorf("%w, asked again over TCP: %w", errTruncated, err)
		}
	}
	return resp, err
}

// exchange runs one query over one transport within r.timeout, on a
// connection of its own. With an answer that does not parse, the error
// comes with what could be read of it, its header at least.
func (r *resolver) exchange(ctx context.Context, c *dns.Client, server string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	co, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer co.Close()
	resp, _, err := r.roundTrip(ctx, c, co, m)
	return resp, err
}

// exchangeTCP runs one query over TCP within r.timeout, on a connection
// kept from an earlier query to server if there is one (see tcpConns),
// and keeps the connection after a clean answer. A kept connection the
// server had closed meanwhile, as servers close idle ones, is no fault
// of the server: the query is sent again at once, on a new connection,
// within the same attempt, so that it is neither a failed attempt nor
// a reason to pass the server over.
func (r *resolver) exchangeTCP(ctx context.Context, server string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if co := r.conns.get(server); co != nil {
		resp, reusable, err := r.roundTrip(ctx, &r.tcp, co, m)
		if reusable {
			r.conns.put(server, co)
			return resp, err
		}
		co.Close()
		if ctx.Err() != nil || !closedByServer(err) {
			return resp, err
		}
		r.conns.drop(server)
	}
	co, err := r.tcp.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	resp, reusable, err := r.roundTrip(ctx, &r.tcp, co, m)
	if reusable {
		r.conns.put(server, co)
	} else {
		co.Close()
	}
	return resp, err
}

// roundTrip sends m on co and reads the answer, until ctx ends: co is
// closed then, so a filter being closed does not wait for a dead
// server. reusable reports a clean answer on a connection still open,
// which may carry another query; co is to be closed otherwise.
func (r *resolver) roundTrip(ctx context.Context, c *dns.Client, co *dns.Conn, m *dns.Msg) (resp *dns.Msg, reusable bool, err error) {
	stop := context.AfterFunc(ctx, func() { co.Close() })
	resp, err = exchangeOn(ctx, co, m, c.Net != "udp")
	// stop reports false when ctx ended and co is closed, or about to.
	open := stop()
	if err != nil && ctx.Err() != nil {
		// Closing the connection on expiry shows as "use of closed
		// connection"; report the expiry instead.
		return nil, false, ctx.Err()
	}
	return resp, err == nil && open, err
}

// exchangeOn sends m on co, a datagram connection or a TCP one if tcp is
// set, and reads messages until one carries m's ID, or ctx ends. A
// message with another ID is no answer to m and is passed over whether
// it parses or not. In a datagram it is an answer to an earlier query
// that timed out, or a forgery: miekg/dns passes over only those that
// parse, and a datagram that does not ended its exchange, so a forger
// who knew the query's port but not its ID could make a listed client's
// lookup fail, and the client pass. On a TCP connection kept for reuse
// it is what the server sent after the answer to the connection's last
// query (a copy of that answer): miekg/dns failed the query with it, and
// so every query that met such a connection (RFC 7766 section 7 has
// answers matched to queries by ID). Only the message with m's ID is
// parsed; when it does not parse, what could be read of it (its header
// at least) comes with the error, as from miekg/dns. A datagram longer
// than the payload size m advertised, or one that ends before the
// records its header counts do (inside one, or between two), fails with
// errCut.
func exchangeOn(ctx context.Context, co *dns.Conn, m *dns.Msg, tcp bool) (*dns.Msg, error) {
	if deadline, ok := ctx.Deadline(); ok {
		co.SetDeadline(deadline)
	}
	if err := co.WriteMsg(m); err != nil {
		return nil, err
	}
	size := dns.MinMsgSize
	if opt := m.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
		size = int(opt.UDPSize())
	}
	// A datagram longer than the buffer is cut to it without a word
	// (recvfrom(2) drops the rest): one byte more than the size
	// advertised shows that the server sent more.
	buf := make([]byte, size+1)
	if tcp {
		buf = make([]byte, dns.MaxMsgSize)
	}
	// Bounded by ctx: its end closes co, and the read fails.
	for {
		// One datagram, or one message of the TCP stream without its
		// length.
		n, err := co.Read(buf)
		if err != nil {
			return nil, err
		}
		if n < 2 || uint16(buf[0])<<8|uint16(buf[1]) != m.Id {
			continue
		}
		if !tcp && n > size {
			return nil, fmt.Errorf("%w: more than the %d bytes asked for, without TC", errCut, size)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(buf[:n]); err != nil {
			if !tcp && endsEarly(buf[:n]) {
				return resp, fmt.Errorf("%w: %w", errCut, err)
			}
			return resp, err
		}
		if !tcp && endsEarly(buf[:n]) {
			// Cut between two records: miekg/dns reads the records
			// that are there and passes over the counts that promise
			// more, so the answer parses, without the listing it may
			// have carried.
			return resp, fmt.Errorf("%w: its header counts records that are not there", errCut)
		}
		return resp, nil
	}
}

// endsEarly reports whether msg ends before the records its header
// counts do: a name, a record's fixed fields or its data running past
// its end, or no more bytes where a record should begin, as in a
// message cut at some size. Only the names and lengths are read: a
// fault in the records themselves (a compression loop, data that does
// not fit its type) is none of this, and TCP would bring it again. A
// message shorter than a header says nothing, whatever cut it.
func endsEarly(msg []byte) bool {
	const headerLen = 12
	if len(msg) < headerLen {
		return false
	}
	count := func(i int) int { return int(binary.BigEndian.Uint16(msg[4+2*i:])) }
	questions := count(0)
	records := questions + count(1) + count(2) + count(3)
	// Each round moves off on by 5 bytes at least (a name, a type and
	// a class), so it ends within len(msg)/5 rounds.
	off := headerLen
	for i := range records {
		_, next, err := dns.UnpackDomainName(msg, off)
		if err != nil {
			// ErrBuf: the name runs past the end.
			return errors.Is(err, dns.ErrBuf)
		}
		off = next + 4 // type and class
		if i >= questions {
			// TTL and RDLENGTH, then the data.
			if off+6 > len(msg) {
				return true
			}
			off += 6 + int(binary.BigEndian.Uint16(msg[off+4:]))
		}
		if off > len(msg) {
			return true
		}
	}
	return false
}

// serverMemories is what resolvers learn of servers, kept by server
// address (host:port) so that every resolver asking a server, those of
// later reloads included, knows it: whether a server answers or
// implements EDNS does not depend on who asks it.
type serverMemories struct {
	// down holds the servers that gave no answer at all, for downFor.
	down *serverMemory
	// noEDNS holds the servers found without EDNS, for noEDNSFor: they
	// answered a query with an OPT record by FORMERR without one, and
	// a query without one by something else, as a server that does not
	// implement EDNS does (RFC 6891 section 7). Section 6.2.2 lets a
	// requestor remember this for a brief time, which spares every later
	// query the extra round trip.
	noEDNS *serverMemory
	// answered holds when each server last gave an answer, of any
	// kind: a server that answers is not dead, whatever one query's
	// fate (see resolver.query).
	answered *serverMemory
}

func newServerMemories() *serverMemories {
	return &serverMemories{down: newServerMemory(downFor), noEDNS: newServerMemory(noEDNSFor), answered: newServerMemory(0)}
}

// serverMemory remembers servers by address (host:port), each for span
// from when it was last remembered. It is safe for concurrent use, and
// keeps at most maxServerMemory servers, so that many reloads with
// changing server lists cannot make it grow without end.
type serverMemory struct {
	span  time.Duration
	mu    sync.Mutex
	until map[string]time.Time
}

// maxServerMemory bounds the servers a serverMemory keeps. Far more than
// any configuration lists; forgetting one costs one extra round trip, or
// one timeout.
const maxServerMemory = 1024

func newServerMemory(span time.Duration) *serverMemory {
	return &serverMemory{span: span, until: map[string]time.Time{}}
}

// holds reports whether server is remembered at now.
func (m *serverMemory) holds(server string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return now.Before(m.until[server])
}

// at returns when server was last remembered; the zero time if it is
// not.
func (m *serverMemory) at(server string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[server]
	if !ok {
		return time.Time{}
	}
	return t.Add(-m.span)
}

// forget drops server.
func (m *serverMemory) forget(server string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.until, server)
}

// remember notes server, for m.span from now. When the memory is full,
// servers whose time is up go first, then the one whose time ends
// soonest.
func (m *serverMemory) remember(server string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.until[server]; !ok && len(m.until) >= maxServerMemory {
		for s, t := range m.until {
			if !now.Before(t) {
				delete(m.until, s)
			}
		}
		for len(m.until) >= maxServerMemory {
			first := ""
			for s, t := range m.until {
				if first == "" || t.Before(m.until[first]) {
					first = s
				}
			}
			delete(m.until, first)
		}
	}
	m.until[server] = now.Add(m.span)
}

// failure turns a transport error into a failed answer.
func failure(ctx context.Context, server, name string, err error) answer {
	kind := KindNetwork
	var ne net.Error
	var de *dns.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = KindTimeout
	case errors.As(err, &de):
		// miekg/dns read something, but no answer to the query: a
		// message that does not parse (a compression loop, records
		// overrunning it, fewer bytes than a header) or whose ID is
		// not the query's. Transport errors are not of this type.
		kind = KindBadAnswer
	case ctx.Err() != nil:
		// The caller gave up (the filter is being closed): report it as
		// it is, not as a fault of the server.
		err = ctx.Err()
	}
	return answer{fail: kind, err: fmt.Errorf("query %s at %s: %w", name, server, err)}
}

// interpret reads a DNS answer: records of the asked type, a negative
// answer with its caching time (RFC 2308), or a failure code.
func interpret(resp *dns.Msg, name string, qtype uint16, server string, maxTTL time.Duration) answer {
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	case dns.RcodeServerFailure:
		return answer{fail: KindServfail, err: fmt.Errorf("query %s at %s: SERVFAIL", name, server)}
	case dns.RcodeRefused:
		return answer{fail: KindRefused, err: fmt.Errorf("query %s at %s: REFUSED", name, server)}
	default:
		return answer{fail: KindRcode, err: fmt.Errorf("query %s at %s: %s", name, server, dns.RcodeToString[resp.Rcode])}
	}
	var a answer
	ttl := uint32(1<<31 - 1)
	texts := false // some TXT record of the name, its text kept or not
	kept := 0      // bytes of text in a.txt, separators included
	if resp.Rcode == dns.RcodeSuccess {
		owners := chain(resp.Answer, name)
		for _, rr := range resp.Answer {
			h := rr.Header()
			if !owners[strings.ToLower(h.Name)] {
				// A record of another name is no answer to this
				// question: a server that adds the list's listed
				// test entry to every answer must not list everyone.
				continue
			}
			switch v := rr.(type) {
			case *dns.A:
				if qtype != dns.TypeA {
					continue
				}
				if ip, ok := netip.AddrFromSlice(v.A); ok && !slices.Contains(a.addrs, ip.Unmap()) {
					if len(a.addrs) == maxAddrs {
						return answer{fail: KindBadAnswer, err: fmt.Errorf("query %s at %s: more than %d addresses, no DNSBL answer", name, server, maxAddrs)}
					}
					a.addrs = append(a.addrs, ip.Unmap())
				}
			case *dns.TXT:
				if qtype != dns.TypeTXT {
					continue
				}
				texts = true
				// Only a reason's worth of text is kept (see
				// answer.txt): a list may answer with 64 KiB of it,
				// and the cache keeps what is kept here for every
				// name.
				if kept < maxReason {
					var b strings.Builder
					for _, part := range v.Txt {
						b.WriteString(unescapeTXT(part))
					}
					text, cut := sanitizeCut(b.String(), maxReason-kept)
					if text != "" {
						a.txt = append(a.txt, text)
						a.txtCut = cut
						kept += len(text) + 1
					}
				}
			case *dns.CNAME:
				// The resolver followed an alias; its TTL bounds the
				// answer's too.
			default:
				continue
			}
			ttl = min(ttl, ttlOf(h.Ttl))
		}
	}
	if len(a.addrs) == 0 && !texts {
		// NXDOMAIN or NODATA. RFC 2308 section 5: cache it for the
		// smaller of the SOA record's TTL and its MINIMUM field; without
		// an SOA, do not cache it at all.
		a.nx = true
		ttl = 0
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = min(ttlOf(soa.Hdr.Ttl), ttlOf(soa.Minttl))
				break
			}
		}
	}
	a.ttl = time.Duration(ttl) * time.Second
	if !a.failed() {
		// A failed answer (a refusal code, an address outside
		// 127.0.0.0/8) is kept for failure_ttl at most instead, max_ttl
		// or not (see boundFailure): with max_ttl 0 it is still
		// remembered, as the failures of the transport are.
		a.ttl = min(a.ttl, maxTTL)
	}
	return a
}

// ttlOf reads a TTL as RFC 2181 section 8 says: one with its top bit set
// is 0, so such an answer is not cached at all (capping it at max_ttl
// would keep it for an hour).
func ttlOf(v uint32) uint32 {
	if v >= 1<<31 {
		return 0
	}
	return v
}

// chain returns the names whose records answer a question for name
// (no final dot): name itself and the targets of the CNAMEs the resolver
// followed from it, lower case and fully qualified. The records may come
// in any order, so the aliases are indexed by owner first and the chain
// followed through the index: each record is looked at a fixed number of
// times, and a hostile answer of thousands of CNAMEs in reverse order
// costs linear work, not a pass over all records per link. A loop ends
// where it meets a name already reached.
func chain(rrs []dns.RR, name string) map[string]bool {
	var targets map[string][]string
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			if targets == nil {
				targets = map[string][]string{}
			}
			owner := strings.ToLower(c.Hdr.Name)
			targets[owner] = append(targets[owner], strings.ToLower(c.Target))
		}
	}
	start := strings.ToLower(dns.Fqdn(name))
	owners := map[string]bool{start: true}
	for todo := []string{start}; len(todo) > 0; {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		for _, t := range targets[n] {
			if !owners[t] {
				owners[t] = true
				todo = append(todo, t)
			}
		}
	}
	return owners
}

// unescapeTXT undoes the presentation-format escaping miekg/dns applies to
// TXT strings it unpacks: "\"" and "\\" for quote and backslash, "\DDD"
// (three decimal digits) for unprintable bytes.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if n < 256 {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
