// Package dnsbl checks the SMTP client's address against DNS blocklists
// (DNSBLs) and the sender's domains against domain lists (RHSBLs), as
// described by RFC 5782, with github.com/miekg/dns.
//
// A listing can refuse the client at connect (or at MAIL FROM), refuse
// the message, or only tag it: a header field per listing and a score,
// the sum of the listings' weights, which may itself refuse or hold the
// message once it reaches a threshold.
//
// DNS must never stall the mail flow, so every lookup is bounded (a
// per-attempt timeout, a few attempts), all lists are asked in parallel,
// and a lookup that fails (timeout, SERVFAIL, network error, a list
// refusing the query) counts as "not listed": the filter fails open, and
// logs and counts the failure instead. Answers are cached for their TTL
// (negative ones for the SOA minimum, RFC 2308), in a bounded LRU shared
// by every session and kept across configuration reloads (see Shared);
// concurrent lookups of one name make one query, and the queries in
// flight at once are bounded (max_in_flight), so that a flood of clients
// cannot open a socket per lookup.
//
// Metrics go through Observer, which the daemon's metrics implement; this
// package does not know Prometheus.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
)

// maxCodeLabels bounds the return codes of one list that DNSBLListed
// tells apart (see zone.codeLabel); OtherCode is what it reports for the
// others. Lists use a few codes, bitmask lists such as SURBL or URIBL at
// most one /24's worth.
const (
	maxCodeLabels = 256
	OtherCode     = "other"
)

// Observer is told what the filter does, for metrics. It must be safe for
// concurrent use. filter is the filter's name in the pipeline, zone the
// list's name (zones[].name): the zone queried may hold an access key,
// which metrics must not show.
type Observer interface {
	// DNSBLLookup reports one check of an address or domain against a
	// list, with its result: "listed", "not_listed" or "error".
	DNSBLLookup(filter, zone, result string)
	// DNSBLListed reports a listing with one of the return codes that
	// count, e.g. "127.0.0.2"; OtherCode for a code past the first 256
	// the list answered with.
	DNSBLListed(filter, zone, code string)
	// DNSBLError reports a lookup (A or TXT) that failed, by kind (see
	// the Kind constants).
	DNSBLError(filter, zone, kind string)
	// DNSBLCacheHit reports a lookup answered from the cache.
	DNSBLCacheHit(filter, zone string)
	// DNSBLQuery reports the time one query to the resolvers took, all
	// attempts included.
	DNSBLQuery(filter, zone string, took time.Duration)
	// DNSBLHealth reports the result of a probe of the list's test entry:
	// up is true when the list answered it as listed.
	DNSBLHealth(filter, zone string, up bool)
	// DNSBLProbing reports that a filter starts probing a list (on, from
	// New) or has stopped (off, from Retire or Close, after its last
	// DNSBLHealth). A reload builds the new filter before it retires the
	// old one, so a list that nothing probes any more is one the
	// configuration dropped, and its health is no longer worth reporting.
	DNSBLProbing(filter, zone string, on bool)
}

// Factory returns the filters.Factory for type "dnsbl". Filters built by
// it keep their caches in shared, which the daemon creates once so that
// cached answers survive reloads.
func Factory(shared *Shared) filters.Factory {
	return func(env filters.Env, decode func(v any) error) (filters.Filter, error) {
		var cfg Config
		if err := decode(&cfg); err != nil {
			return nil, err
		}
		return New(env, cfg, shared)
	}
}

// Filter is the DNS blocklist filter. It implements filters.Filter,
// filters.Retirer and filters.Closer.
type Filter struct {
	name   string
	log    *slog.Logger
	obs    Observer
	s      settings
	res    *resolver
	cache  *cache
	shared *Shared // where cache comes from, told when it is no longer used
	needs  filters.Needs
	tags   bool // some list tags
	// ahead bounds the lookups started ahead (see prefetch) in flight at
	// once to half of max_in_flight; nil starts none ahead.
	ahead chan struct{}

	cancel     context.CancelFunc
	done       chan struct{}
	retireOnce sync.Once
	closeOnce  sync.Once
	probing    bool // the probe loop runs, told to obs by DNSBLProbing
}

var (
	_ filters.Filter  = (*Filter)(nil)
	_ filters.Retirer = (*Filter)(nil)
	_ filters.Closer  = (*Filter)(nil)
)

// New checks cfg and returns the filter. Its cache (by the filter's name)
// and its memory of dead servers and of servers without EDNS come from
// shared when shared is not nil, else it has its own. It starts probing the lists' test
// entries until Retire or Close.
func New(env filters.Env, cfg Config, shared *Shared) (*Filter, error) {
	s, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if shared == nil {
		shared = NewShared()
	}
	f := &Filter{
		name:   env.Name,
		log:    env.Logger,
		s:      s,
		res:    newResolver(s.servers, s.timeout, s.attempts, shared.servers),
		shared: shared,
		done:   make(chan struct{}),
	}
	set := serverSet{servers: s.servers, inOrder: s.inOrder, tcp: s.useVC}
	f.res.use(set)
	f.res.tcpOnly, f.res.udpFirst = s.tcpOnly, s.udpFirst
	f.res.slots = make(chan struct{}, s.maxInFlight)
	if s.maxInFlight >= 2 {
		f.ahead = make(chan struct{}, s.maxInFlight/2)
	}
	if f.name == "" {
		f.name = "dnsbl"
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.obs, _ = env.Observer.(Observer)
	if f.obs == nil {
		f.obs = nopObserver{}
	}
	f.cache = shared.cache(f.name, f.res.answerSource(&set), s.cacheSize, f)
	if s.resolvConf != "" {
		// Set before the probe goroutine starts, which queries at
		// once: conf is not changed after, only the servers are.
		f.res.conf = newResolvConfWatch(s.resolvConf, s.resolvPort, f.log, shared.now)
		f.res.conf.changed = func(set *serverSet) {
			shared.serversChanged(f.name, f.cache, f.res.answerSource(set))
		}
	}
	for _, z := range s.zones {
		z.labels = shared.codeLabels(f.name, z.name)
	}
	f.needs = s.needs()
	for _, z := range s.zones {
		f.tags = f.tags || z.action == actTag
	}

	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	probing := false
	for _, z := range s.zones {
		probing = probing || z.probe
	}
	// A filter built only to check its options ("sluice config check")
	// is closed at once: probing would send every list queries for
	// nothing.
	if s.probeInterval > 0 && probing && !env.CheckOnly {
		f.probing = true
		for _, z := range s.zones {
			if z.probe {
				f.obs.DNSBLProbing(f.name, z.name, true)
			}
		}
		go f.probeLoop(ctx)
	} else {
		close(f.done)
	}
	return f, nil
}

// needs works out the stages: the client address at connect (or MAIL),
// envelope sender and HELO domains at MAIL, the header From domain and
// the tagging at the end of the header block, the only stage that sees
// the header fields the tags must replace.
func (s settings) needs() filters.Needs {
	var n filters.Needs
	for _, z := range s.zones {
		switch {
		case z.kind == ipList && s.ipAtMail:
			n.Stages |= filters.StagesOf(filters.StageMailFrom)
		case z.kind == ipList:
			n.Stages |= filters.StagesOf(filters.StageConnect)
		default:
			if z.checksTarget(targetSender) || z.checksTarget(targetHelo) {
				n.Stages |= filters.StagesOf(filters.StageMailFrom)
			}
			if z.checksTarget(targetHeaderFrom) {
				n.Stages |= filters.StagesOf(filters.StageHeaders)
			}
		}
		if z.action == actTag {
			n.Stages |= filters.StagesOf(filters.StageHeaders)
		}
	}
	n.Headers = n.Stages.Has(filters.StageHeaders)
	return n
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter.
func (f *Filter) Needs() filters.Needs { return f.needs }

// OwnedFields implements filters.FieldOwner: the tag and score fields.
// An entry with tag lists deletes them from every message it sees (see
// removeOwn); one without adds and deletes none, but its names are still
// refused to other filters, so that adding a tag list later does not make
// it delete another filter's fields.
func (f *Filter) OwnedFields() []string { return []string{f.s.header, f.s.scoreHeader} }

// Retire stops the probes, when a reload has replaced the filter: the
// filter of the new configuration probes the lists now, under the same
// names and so into the same health series, and this one, still probing
// its own idea of the lists (another zone, other servers) for as long as
// a connection opened before the reload lasts, would overwrite what the
// new one found. Lookups go on until Close; their protection against a
// list that answers every name as listed (see probeAll) keeps what the
// last probe found.
func (f *Filter) Retire() {
	f.retireOnce.Do(func() {
		// The probes' queries end with ctx (see resolver.roundTrip):
		// done comes at once, after the last DNSBLHealth.
		f.cancel()
		<-f.done
		if f.probing {
			for _, z := range f.s.zones {
				if z.probe {
					f.obs.DNSBLProbing(f.name, z.name, false)
				}
			}
		}
	})
}

// Close stops the probes (see Retire) and closes the TCP connections
// kept idle. The cache stays with the Shared it came from, for the next
// filter of the same name.
func (f *Filter) Close() error {
	f.closeOnce.Do(func() {
		f.Retire()
		f.res.close()
		f.shared.release(f.name, f.cache, f)
	})
	return nil
}

// job is one name to look up in one list.
type job struct {
	z *zone
	// what names the checked item in logs and headers: "client",
	// "helo", "sender" or "from".
	what string
	// item is the address or domain checked, as shown to people.
	item string
	// of is the client's address when item is the IPv4 address it
	// carries (see embeddedIPv4), for the log.
	of    string
	qname string
}

// result is what a job found.
type result struct {
	job
	listed bool
	codes  []netip.Addr // the codes that count, sorted
}

// Check implements filters.Filter.
func (f *Filter) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if m.Conn == nil {
		return filters.Verdict{}, nil
	}
	ctx = withCutoff(ctx)
	switch stage {
	case filters.StageConnect:
		if f.s.ipAtMail || f.trusted(m.Conn) {
			return filters.Verdict{}, nil
		}
		block, tag := f.split(f.ipJobs(m.Conn.Addr))
		f.prefetch(tag)
		return f.block(ctx, block)
	case filters.StageMailFrom:
		if f.trusted(m.Conn) || f.authenticated(m) {
			return filters.Verdict{}, nil
		}
		var jobs []job
		if f.s.ipAtMail {
			jobs = f.ipJobs(m.Conn.Addr)
		}
		jobs = append(jobs, f.domainJobs(m, targetSender, targetHelo)...)
		block, tag := f.split(jobs)
		f.prefetch(tag)
		return f.block(ctx, block)
	case filters.StageHeaders:
		return f.checkHeaders(ctx, m)
	}
	return filters.Verdict{}, nil
}

// split separates the jobs of refusing lists from those of tagging ones.
// A name is looked up in a list once: when the envelope sender, the HELO
// name and the From field share a domain, the first of them stands for
// all, and a tag list's score counts it once.
func (f *Filter) split(jobs []job) (block, tag []job) {
	type key struct {
		z     *zone
		qname string
	}
	seen := make(map[key]bool, len(jobs))
	for _, j := range jobs {
		k := key{j.z, j.qname}
		if seen[k] {
			continue
		}
		seen[k] = true
		if j.z.action == actTag {
			tag = append(tag, j)
		} else {
			block = append(block, j)
		}
	}
	return block, tag
}

// checkHeaders checks the header From domains, then gathers every tag
// listing of the message (mostly from the cache: the client and envelope
// lookups were started at earlier stages) into header fields and the
// score.
func (f *Filter) checkHeaders(ctx context.Context, m *filters.Message) (filters.Verdict, error) {
	var edits []filters.HeaderEdit
	if f.tags {
		// A sender must not be able to pass off its own verdict: fields
		// of our names the message came with go.
		edits = f.removeOwn(m.Headers)
	}
	if f.trusted(m.Conn) || f.authenticated(m) {
		return filters.Verdict{Edits: edits}, nil
	}
	block, tag := f.split(f.domainJobs(m, targetHeaderFrom))
	// The From domains' tag lookups start now, as those of the earlier
	// stages did: made after the refusing lists' lookups, they waited
	// for the slowest of those, and when it did not answer in time they
	// were left no time at all, their listings lost.
	f.prefetch(tag)
	v, err := f.block(ctx, block)
	if err != nil || v.Action != filters.Continue || !f.tags {
		return v, err
	}
	// The earlier stages' tag lookups, again: the answers are cached or
	// still in flight, so this costs no new queries.
	earlier := append(f.ipJobs(m.Conn.Addr), f.domainJobs(m, targetSender, targetHelo)...)
	_, all := f.split(append(earlier, tag...))
	results, err := f.run(ctx, all)
	if err != nil {
		return filters.Verdict{}, err
	}
	return f.tag(ctx, results, edits)
}

// ipJobs returns the lookups of addr in the ip lists of its family. A
// client whose IPv6 address carries an IPv4 one (6to4, the well-known
// translation prefix) is looked up by that IPv4 address in the lists
// that hold IPv4 addresses, and by its IPv6 address in those that hold
// IPv6 ones: a list of family any gets both. The IPv4 lookup comes
// first, so that a list that lists both forms names the IPv4 address in
// its reply and tag, as a list of IPv4 addresses only would.
func (f *Filter) ipJobs(addr netip.Addr) []job {
	if !addr.IsValid() {
		return nil
	}
	addr = clientAddr(addr)
	rev := reverseIP(addr)
	v4, embedded := embeddedIPv4(addr)
	var rev4 string
	if embedded {
		rev4 = reverseIP(v4)
	}
	var jobs []job
	for _, z := range f.s.zones {
		if z.kind != ipList {
			continue
		}
		if embedded && z.v4 {
			if q, ok := queryName(rev4, z.zone); ok {
				jobs = append(jobs, job{z: z, what: "client", item: v4.String(), of: addr.String(), qname: q})
			}
		}
		if addr.Is4() && !z.v4 || addr.Is6() && !z.v6 {
			continue
		}
		if q, ok := queryName(rev, z.zone); ok {
			jobs = append(jobs, job{z: z, what: "client", item: addr.String(), qname: q})
		}
	}
	return jobs
}

// domainJobs returns the lookups of the message's domains of the given
// targets in the domain lists that check them.
func (f *Filter) domainJobs(m *filters.Message, targets ...string) []job {
	var jobs []job
	for _, target := range targets {
		var what string
		var domains []string
		switch target {
		case targetSender:
			what = "sender"
			// The domain the MTA delivers from, not the text it
			// accepted: RFC 5321 has no comments in MAIL FROM, but an
			// MTA that reads it leniently passes on
			// "bob@(x)spammer.example" as written, and Postfix
			// delivers "spammer.example!bob" from bob@spammer.example.
			if d, ok := senderDomain(m.From.Addr); ok {
				domains = []string{d}
			}
		case targetHelo:
			what = "helo"
			if d, ok := normalizeDomain(m.Conn.Helo); ok {
				domains = []string{d}
			}
		case targetHeaderFrom:
			what = "from"
			// Every From field the other filters read, not only the
			// first, and the last: a message with several is
			// malformed (RFC 5322 3.6), but which one a mail reader
			// shows varies, so a clean first field must not hide a
			// listed second one, nor decoy fields a listed last one.
			domains = messageFromDomains(m)
		}
		for _, z := range f.s.zones {
			if z.kind != domainList || !z.checksTarget(target) {
				continue
			}
			for _, d := range domains {
				if q, ok := queryName(d, z.zone); ok {
					jobs = append(jobs, job{z: z, what: what, item: d, qname: q})
				}
			}
		}
	}
	return jobs
}

// clientAddr returns the client's address as lists and trusted networks
// know it: an IPv4-mapped address as the IPv4 address, and without an
// IPv6 zone. The zone only names the interface the client was reached
// through; netip.Prefix.Contains matches no zoned address, and the zone
// must not show in replies and header fields.
func clientAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598):
// like private addresses, never a client a public list can know.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// trusted reports whether the client is not to be checked: no IP address
// (local submission), a loopback, private, shared or link-local address
// (unless skip_private is off), or a trusted network. A client whose
// IPv6 address carries an IPv4 one (see embeddedIPv4) is judged by
// either: that IPv4 host is the client, or the 6to4 router of its site,
// so a trusted network of it trusts those clients too, and a private
// address there is no client a public list can know.
func (f *Filter) trusted(c *filters.Conn) bool {
	a := c.Addr
	if !a.IsValid() {
		return true
	}
	a = clientAddr(a)
	if f.skips(a) {
		return true
	}
	v4, ok := embeddedIPv4(a)
	return ok && f.skips(v4)
}

// skips reports whether a client at a is not checked, by its address
// alone (see trusted).
func (f *Filter) skips(a netip.Addr) bool {
	if f.s.skipPrivate && (a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || cgnat.Contains(a)) {
		return true
	}
	for _, p := range f.s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authenticated reports whether the sender authenticated with SMTP AUTH
// and such senders are not checked. The MTA sets {auth_authen} from MAIL
// FROM on; at connect it is not known yet.
func (f *Filter) authenticated(m *filters.Message) bool {
	if !f.s.skipAuth {
		return false
	}
	v, _ := m.Macro("auth_authen")
	return v != ""
}

// run looks up every job and returns the results in job order: cached
// answers at once, the others in parallel. The lookups end when all but a
// share of ctx's time is used up (see marginContext): a list that has not
// answered by then counts as failed, that is as not listed, so that what
// the other lists found (a listing that refuses, the tags, the deletion
// of forged fields) still reaches the pipeline before its time limit,
// where it would go on without any of it. run returns an error only when
// ctx itself ends first.
func (f *Filter) run(ctx context.Context, jobs []job) ([]result, error) {
	lctx, cancel := marginContext(ctx)
	defer cancel()
	results := make([]result, len(jobs))
	var pending []int
	for i, j := range jobs {
		if ans, ok := f.cache.get(cacheKey{name: j.qname, qtype: dns.TypeA}, f.lifetimes()); ok {
			results[i] = f.report(j, ans, fromCache)
			continue
		}
		pending = append(pending, i)
	}
	switch len(pending) {
	case 0:
	case 1:
		results[pending[0]] = f.check(lctx, jobs[pending[0]])
	default:
		var wg sync.WaitGroup
		for _, i := range pending {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = f.check(lctx, jobs[i])
			}()
		}
		wg.Wait()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("dnsbl lookups: %w", err)
	}
	return results, nil
}

// check looks up one job and reports it. A lookup still unanswered when
// ctx ends is a failure of kind timeout; its query goes on, and its
// answer lands in the cache for the next message.
func (f *Filter) check(ctx context.Context, j job) result {
	ans, src, err := f.lookup(ctx, j.z, j.qname, dns.TypeA)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// The caller gave up (the daemon stopping cancels the sessions
		// it no longer waits for): the check fails as a whole (see
		// run), and the list did not time out.
		f.log.Debug("dnsbl: lookup abandoned by the caller", "zone", j.z.name, j.what, j.item, "err", j.z.hideErr(err))
		return result{job: j}
	}
	if err != nil {
		f.obs.DNSBLLookup(f.name, j.z.name, "error")
		f.obs.DNSBLError(f.name, j.z.name, KindTimeout)
		f.warn(j.z, j, KindTimeout, fmt.Errorf("no answer within the filter's time limit: %w", err))
		return result{job: j}
	}
	return f.report(j, ans, src)
}

// report classifies the answer of a job, counts and logs it.
func (f *Filter) report(j job, ans answer, src source) result {
	r := result{job: j}
	if src == fromCache {
		f.obs.DNSBLCacheHit(f.name, j.z.name)
	}
	listed, codes, kind, err := classify(j.z, ans)
	if listed && j.z.listsAll.Load() {
		listed, kind = false, KindListsAll
		err = fmt.Errorf("%s listed, but the list answers every name as listed (its health probe found %s listed): ignored", j.qname, notName(j.z))
	}
	if kind == "" && ans.refusedBy != "" && src != fromCache {
		f.noteRefused(j.z, j, ans.refusedBy)
	}
	switch {
	case kind != "":
		f.obs.DNSBLLookup(f.name, j.z.name, "error")
		f.obs.DNSBLError(f.name, j.z.name, kind)
		f.warn(j.z, j, kind, err)
	case listed:
		f.obs.DNSBLLookup(f.name, j.z.name, "listed")
		for _, c := range codes {
			f.obs.DNSBLListed(f.name, j.z.name, j.z.codeLabel(c))
		}
		r.listed, r.codes = true, codes
	default:
		f.obs.DNSBLLookup(f.name, j.z.name, "not_listed")
	}
	return r
}

// lookup returns the answer for qname from the cache or the resolvers.
// The query itself does not depend on ctx: other lookups may wait for it
// after this one gave up, and the resolver's timeouts (and the wait for
// a slot, see resolver.slot) bound it.
func (f *Filter) lookup(ctx context.Context, z *zone, qname string, qtype uint16) (answer, source, error) {
	return f.cache.lookup(ctx, cacheKey{name: qname, qtype: qtype}, f.lifetimes(), func() answer {
		return f.fetch(z, qname, qtype)
	})
}

// fetch queries the resolvers for qname, in one of their slots.
func (f *Filter) fetch(z *zone, qname string, qtype uint16) answer {
	release, err := f.res.slot()
	if err != nil {
		// Not cached (no ttl): the name and the servers are not at
		// fault, and the next lookup of it asks again.
		return answer{fail: KindBusy, err: fmt.Errorf("query %s: %w", qname, err)}
	}
	defer release()
	start := time.Now()
	ans := f.res.query(context.Background(), qname, qtype, f.s.maxTTL, f.s.failureTTL)
	f.obs.DNSBLQuery(f.name, z.name, time.Since(start))
	return ans
}

// lifetimes returns the caps of the running configuration on how long
// cached answers may serve.
func (f *Filter) lifetimes() lifetimes {
	return lifetimes{answer: f.s.maxTTL, failure: f.s.failureTTL}
}

// prefetch starts the lookups of jobs whose answers are needed at a later
// stage, without waiting for them, so that their time overlaps with the
// rest of the SMTP transaction.
//
// Nothing paces them as the client's wait for a verdict paces the others:
// one connection sending MAIL FROM after MAIL FROM, each with a sender
// domain of its own, would start a query for each, and with a list slow
// to answer take every slot of max_in_flight, so that the lookups that
// decide (those of refusing lists, of every client) fail as busy and
// let listed clients in. So the queries started ahead hold at most half
// the slots (see ahead); a lookup that finds that half in flight is not
// started ahead, but made when its answer is needed.
func (f *Filter) prefetch(jobs []job) {
	ctx, cancel := context.WithCancel(context.Background())
	// A cancelled context returns at once; the query goes on and its
	// answer lands in the cache.
	cancel()
	for _, j := range jobs {
		k := cacheKey{name: j.qname, qtype: dns.TypeA}
		if _, ok := f.cache.get(k, f.lifetimes()); ok {
			continue
		}
		select {
		case f.ahead <- struct{}{}:
		default:
			continue
		}
		// The query is this lookup's own (fromNetwork) and gives its
		// place back when it ends, or it is none (an answer cached or
		// in flight meanwhile) and gives it back now.
		_, src, _ := f.cache.lookup(ctx, k, f.lifetimes(), func() answer {
			defer func() { <-f.ahead }()
			return f.fetch(j.z, j.qname, dns.TypeA)
		})
		if src != fromNetwork {
			<-f.ahead
		}
	}
}

// classify reads an A answer as the zone defines listings. kind is the
// error kind when the answer is no answer.
func classify(z *zone, ans answer) (listed bool, codes []netip.Addr, kind string, err error) {
	if ans.fail != "" {
		return false, nil, ans.fail, ans.err
	}
	if ans.nx {
		return false, nil, "", nil
	}
	for _, a := range ans.addrs {
		if isRefusal(a) {
			return false, nil, KindListRefused, fmt.Errorf("%s answered %s: the list refuses the query (public resolver or over quota?)", z.name, a)
		}
		if !a.Is4() || !loopback8.Contains(a) {
			return false, nil, KindBadAnswer, fmt.Errorf("%s answered %s, outside 127.0.0.0/8: not a listing (a resolver rewriting answers?)", z.name, a)
		}
	}
	for _, a := range ans.addrs {
		if len(z.codes) == 0 || z.rule(a) != nil {
			codes = append(codes, a)
		}
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i].Less(codes[j]) })
	codes = dedup(codes)
	return len(codes) > 0, codes, "", nil
}

func dedup(as []netip.Addr) []netip.Addr {
	out := as[:0]
	for i, a := range as {
		if i == 0 || a != as[i-1] {
			out = append(out, a)
		}
	}
	return out
}

// rule returns the most specific code rule containing a, or nil.
func (z *zone) rule(a netip.Addr) *codeRule {
	for i := range z.codes {
		if z.codes[i].prefix.Contains(a) {
			return &z.codes[i]
		}
	}
	return nil
}

// marginContext bounds the lookups of one step: the A lookups that find
// listings (see run) and the TXT lookups that word a reply or a header
// field. A list whose answers hang must not keep the filter past its time
// limit, where the pipeline would go on without its verdict. They get the
// time left but a share kept for answering (a quarter, at most a
// second); without a deadline the resolver's timeouts bound them. The
// share is that of the time left when Check started (see withCutoff):
// taken anew at each step, it shrank with each, and the steps at the end
// of the header block (the From lookups, the tag lookups, the reasons)
// left the filter a sixteenth of its time or less.
func marginContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if cutoff, ok := ctx.Value(cutoffKey{}).(time.Time); ok {
		return context.WithDeadline(ctx, cutoff)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := min(time.Until(dl)/4, time.Second)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// cutoffKey keys the time by which the lookups of one Check end.
type cutoffKey struct{}

// withCutoff returns ctx noting when the lookups of the Check it starts
// end (see marginContext): all but a quarter of the time left, at most a
// second kept. Without a deadline it returns ctx.
func withCutoff(ctx context.Context) context.Context {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	margin := min(time.Until(dl)/4, time.Second)
	return context.WithValue(ctx, cutoffKey{}, dl.Add(-margin))
}

// reason returns why r is listed: the list's TXT record when the zone
// asks for it and has one, else the configured reasons of its codes, else
// the codes themselves; at most maxReason bytes.
func (f *Filter) reason(ctx context.Context, r result) string {
	if r.z.txt {
		ans, src, err := f.lookup(ctx, r.z, r.qname, dns.TypeTXT)
		if err == nil {
			if src == fromCache {
				f.obs.DNSBLCacheHit(f.name, r.z.name)
			}
			if ans.fail != "" {
				f.obs.DNSBLError(f.name, r.z.name, ans.fail)
				f.log.Debug("dnsbl: TXT lookup failed; using the code's reason", "zone", r.z.name, "kind", ans.fail, "err", r.z.hideErr(ans.err))
			} else {
				// hide: a list may word its text with the name asked,
				// and so with the zone and its key; cut to a reason's
				// length, the text may end inside the zone, which hide
				// then does not find whole.
				text := strings.Join(ans.txt, " ")
				if ans.txtCut {
					text = r.z.trimZoneStart(text)
				}
				if text = sanitize(r.z.hide(text), maxReason); text != "" {
					return text
				}
			}
		} else if errors.Is(err, context.DeadlineExceeded) {
			// Counted as a timeout, as an A lookup cut short is (see
			// check): a list whose TXT answers all hang must show.
			f.obs.DNSBLError(f.name, r.z.name, KindTimeout)
			f.log.Debug("dnsbl: no TXT answer in time; using the code's reason", "zone", r.z.name, "err", r.z.hideErr(err))
		}
	}
	var reasons []string
	for _, c := range r.codes {
		reason := c.String()
		if rule := r.z.rule(c); rule != nil && rule.reason != "" {
			reason = rule.reason
		}
		if !contains(reasons, reason) {
			reasons = append(reasons, reason)
		}
	}
	// Cut to the length of one reason, as a TXT text is: in the header
	// field the reasons are one part, which fold cannot break, and a
	// list answers with up to 32 codes.
	return sanitize(strings.Join(reasons, ", "), maxReason)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// block looks up jobs of refusing lists and refuses when one lists:
// reject beats tempfail, and between equals the first list in configured
// order provides the reply.
func (f *Filter) block(ctx context.Context, jobs []job) (filters.Verdict, error) {
	if len(jobs) == 0 {
		return filters.Verdict{}, nil
	}
	results, err := f.run(ctx, jobs)
	if err != nil {
		return filters.Verdict{}, err
	}
	var best *result
	var all []string
	for i := range results {
		r := &results[i]
		if !r.listed {
			continue
		}
		all = append(all, describe(*r))
		// The results come in the order of the lookups, target by
		// target (the client's address first), not in the lists'
		// order.
		if best == nil || r.z.action < best.z.action || r.z.action == best.z.action && r.z.index < best.z.index {
			best = r
		}
	}
	if best == nil {
		return filters.Verdict{}, nil
	}
	rctx, cancel := marginContext(ctx)
	reason := f.reason(rctx, *best)
	cancel()
	reply := best.z.reply
	reply.Text = best.z.text.renderReply(map[string]string{
		"zone": best.z.name, "listed": best.item, "code": best.codes[0].String(), "reason": reason,
	})
	action := filters.Reject
	if best.z.action == actTempfail {
		action = filters.Tempfail
	}
	f.log.Debug("dnsbl: listed", "listings", strings.Join(all, "; "), "action", action.String())
	return filters.Verdict{Action: action, Reply: &reply, Reason: "dnsbl: " + strings.Join(all, "; ") + ": " + reason}, nil
}

// describe says what a listing is, for the log: "client 192.0.2.1 in
// zen.example (127.0.0.2)", "client 192.0.2.1 (of 2002:c000:201::1) in
// zen.example (127.0.0.2)".
func describe(r result) string {
	codes := make([]string, len(r.codes))
	for i, c := range r.codes {
		codes[i] = c.String()
	}
	item := r.item
	if r.of != "" {
		item += " (of " + r.of + ")"
	}
	return fmt.Sprintf("%s %s in %s (%s)", r.what, item, r.z.name, strings.Join(codes, ","))
}

// tag turns the tag listings into header fields and the score, and
// applies the score's action when it reaches the threshold.
func (f *Filter) tag(ctx context.Context, results []result, edits []filters.HeaderEdit) (filters.Verdict, error) {
	ctx, cancel := marginContext(ctx)
	defer cancel()
	var shown []result
	client := map[*zone]bool{} // the zones that listed the client
	for _, r := range results {
		if !r.listed {
			continue
		}
		if r.what == "client" {
			// One client, one listing per list, even when the list
			// holds both the IPv4 address a client's IPv6 address
			// carries and the IPv6 address (see ipJobs): the first
			// stands for both.
			if client[r.z] {
				continue
			}
			client[r.z] = true
		}
		shown = append(shown, r)
	}
	// The reasons' TXT lookups run at once, as the lists' lookups do:
	// one after the other, a list whose TXT answer is slow used up the
	// time of those after it, which then had none, lost their texts and
	// were counted as timing out.
	reasons := make([]string, len(shown))
	var wg sync.WaitGroup
	for i, r := range shown {
		wg.Go(func() { reasons[i] = f.reason(ctx, r) })
	}
	wg.Wait()
	var score float64
	var zones, all []string
	for i, r := range shown {
		score += r.z.score
		if !contains(zones, r.z.name) {
			zones = append(zones, r.z.name)
		}
		all = append(all, describe(r))
		codes := make([]string, len(r.codes))
		for k, c := range r.codes {
			codes[k] = c.String()
		}
		reason := strings.NewReplacer(`"`, "'", `\`, "/").Replace(reasons[i])
		value := fmt.Sprintf("%s; %s=%s; code=%s; score=%s; reason=\"%s\"",
			r.z.name, r.what, r.item, strings.Join(codes, ","), formatScore(r.z.score), reason)
		edits = append(edits, filters.HeaderEdit{Kind: filters.AddHeader, Name: f.s.header, Value: fold(f.s.header, value)})
	}
	if len(all) == 0 {
		return filters.Verdict{Edits: edits}, nil
	}
	score = decimalSum(score)
	edits = append(edits, filters.HeaderEdit{Kind: filters.AddHeader, Name: f.s.scoreHeader, Value: formatScore(score)})
	reason := fmt.Sprintf("dnsbl: score %s: %s", formatScore(score), strings.Join(all, "; "))
	v := filters.Verdict{Reason: reason, Edits: edits}
	if f.s.threshold > 0 && score >= f.s.threshold {
		v.Action = f.s.scoreAction
		if v.Action == filters.Reject || v.Action == filters.Tempfail {
			reply := f.s.scoreReply
			reply.Text = f.s.scoreText.renderReply(map[string]string{
				"score": formatScore(score), "threshold": formatScore(f.s.threshold), "zones": strings.Join(zones, ", "),
			})
			v.Reply = &reply
		}
	}
	f.log.Debug("dnsbl: tagged", "score", score, "listings", strings.Join(all, "; "), "action", v.Action.String())
	return v, nil
}

func formatScore(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

// decimalSum returns a sum of scores as the sum of the decimal numbers
// the configuration writes them as. Binary floating point has no 0.1:
// 0.7 + 0.1 + 0.1 + 0.1 comes to 0.9999999999999999, which reaches no
// threshold of 1, and the score field would show that number. Rounded to
// 12 significant digits the sum is the decimal one again: the error of a
// few hundred additions is far below that, and no score is written with
// so many digits.
func decimalSum(sum float64) float64 {
	rounded, err := strconv.ParseFloat(strconv.FormatFloat(sum, 'g', 12, 64), 64)
	if err != nil {
		return sum
	}
	return rounded
}

// removeOwn returns the edits that delete the fields of our names in hs,
// the last first so that the indexes of the others stay valid.
func (f *Filter) removeOwn(hs []filters.Header) []filters.HeaderEdit {
	var edits []filters.HeaderEdit
	for _, name := range []string{f.s.header, f.s.scoreHeader} {
		n := 0
		for _, h := range hs {
			if filters.SameName(h.Name, name) {
				n++
			}
		}
		for i := n; i >= 1; i-- {
			edits = append(edits, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: name, Index: i})
		}
	}
	return edits
}

// maxLine is where header values are folded (RFC 5322 2.1.1 recommends
// lines of at most 78 characters).
const maxLine = 78

// fold folds a header value after its "; " separators so that lines stay
// near maxLine. Folding uses a bare LF and a tab: Postfix takes header
// values from a milter with LF line ends.
func fold(name, value string) string {
	parts := strings.Split(value, "; ")
	var b strings.Builder
	col := len(name) + 2
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(';')
			col++
			// The part, after its space, and the ';' that ends it
			// unless it is the last, must fit.
			need := 1 + len(p)
			if i < len(parts)-1 {
				need++
			}
			if col+need > maxLine {
				b.WriteString("\n\t")
				col = 8
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(p)
		col += len(p)
	}
	return b.String()
}

// warnEvery limits warnings about failed lookups to one per list and
// interval; the others are logged at debug level. The errors metric
// counts them all.
const warnEvery = time.Minute

func (f *Filter) warn(z *zone, j job, kind string, err error) {
	// The error names the query, and so the zone.
	text := z.hideErr(err)
	now := time.Now().UnixNano()
	last := z.lastWarn.Load()
	if now-last < int64(warnEvery) || !z.lastWarn.CompareAndSwap(last, now) {
		f.log.Debug("dnsbl: lookup failed; treated as not listed", "zone", z.name, j.what, j.item, "kind", kind, "err", text)
		return
	}
	f.log.Warn("dnsbl: lookup failed; treated as not listed (further failures of this list are logged at debug level for a minute)",
		"zone", z.name, j.what, j.item, "kind", kind, "err", text)
}

// noteRefused logs that the list refused the query through server, while
// another server got an answer: the lookup worked, at the cost of a round
// trip, but server is most likely a public resolver, through which lists
// that answer "not listed" rather than refuse miss every listing. Limited
// as warn is, on a clock of its own.
func (f *Filter) noteRefused(z *zone, j job, server string) {
	const msg = "dnsbl: the list refused the query through a server and was asked again through another; keep public resolvers out of servers and resolv.conf"
	now := time.Now().UnixNano()
	last := z.lastRefusedWarn.Load()
	if now-last < int64(warnEvery) || !z.lastRefusedWarn.CompareAndSwap(last, now) {
		f.log.Debug(msg, "zone", z.name, j.what, j.item, "server", server)
		return
	}
	f.log.Warn(msg+" (logged at debug level for a minute)", "zone", z.name, j.what, j.item, "server", server)
}

type nopObserver struct{}

func (nopObserver) DNSBLLookup(string, string, string)       {}
func (nopObserver) DNSBLListed(string, string, string)       {}
func (nopObserver) DNSBLError(string, string, string)        {}
func (nopObserver) DNSBLCacheHit(string, string)             {}
func (nopObserver) DNSBLQuery(string, string, time.Duration) {}
func (nopObserver) DNSBLHealth(string, string, bool)         {}
func (nopObserver) DNSBLProbing(string, string, bool)        {}
