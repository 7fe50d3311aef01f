package dnsbl

import (
	"container/list"
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// answer is what a DNS query for one name and type gave, as the cache
// keeps it.
type answer struct {
	// addrs are the distinct addresses of the A records of an A query,
	// at most maxAddrs.
	addrs []netip.Addr
	// txt is the text of the TXT records of a TXT query, one string per
	// record (its character-strings joined), made fit for a reason by
	// sanitize; records past the first maxReason bytes are left out, as
	// a reason shows no more.
	txt []string
	// txtCut is set when the text of the last string of txt was cut to
	// fit: it may end in the first part of a name (see zone.hide).
	txtCut bool
	// nx is set for a negative answer: NXDOMAIN, or NOERROR without a
	// record of the type asked for (NODATA).
	nx bool
	// fail is the error kind when the query failed ("" otherwise), err
	// the cause.
	fail string
	err  error
	// ttl is how long the answer may be cached; 0 means not at all.
	ttl time.Duration
	// refusedBy is the server whose answer was a refusal code before
	// another server gave this one (see resolver.query); "" if none.
	refusedBy string
}

// cacheKey names one cached answer.
type cacheKey struct {
	name  string // query name, lower case, without the final dot
	qtype uint16
}

// source says how a lookup got its answer.
type source uint8

const (
	fromNetwork source = iota // this lookup's own query
	fromCache                 // a cached answer
	fromFlight                // the answer of a query another lookup had in flight
)

// cache holds DNS answers for their TTL, in a bounded LRU, and coalesces
// concurrent lookups of one name into one query. It is safe for concurrent
// use and may be shared by several filters (see Shared).
type cache struct {
	now func() time.Time

	mu       sync.Mutex
	max      int
	lru      *list.List // of *cacheEntry, most recently used first
	items    map[cacheKey]*list.Element
	inflight map[cacheKey]*flight
	// gen counts the clears: a query started before the latest one
	// asked other servers, and its answer is not cached (see clear).
	gen uint64
}

type cacheEntry struct {
	key     cacheKey
	ans     answer
	stored  time.Time // when the answer was cached
	expires time.Time // stored plus the answer's ttl
}

// lifetimes are the configured caps of how long answers are cached
// (max_ttl, failure_ttl). Each lookup brings those of the filter that
// asks, and an entry counts only while it is younger than them too: the
// cache outlives configuration reloads (see Shared), and a reload that
// lowers the caps must shorten the answers cached under the old ones, not
// leave them for up to the old caps.
type lifetimes struct {
	answer  time.Duration // answers, listed or not: max_ttl
	failure time.Duration // failed queries: failure_ttl
}

// valid reports whether e may still be used at now under caps.
func (e *cacheEntry) valid(now time.Time, caps lifetimes) bool {
	limit := caps.answer
	if e.ans.failed() {
		limit = caps.failure
	}
	return now.Before(e.expires) && now.Before(e.stored.Add(limit))
}

// flight is a query in progress; done is closed once ans is set.
type flight struct {
	done    chan struct{}
	ans     answer
	waiters int
	gen     uint64 // the cache's gen when the query started
	// dropped is set when dropZone dropped the answers of the zone of
	// the name asked: this query's answer is not cached either.
	dropped bool
}

func newCache(max int, now func() time.Time) *cache {
	if now == nil {
		now = time.Now
	}
	return &cache{
		now:      now,
		max:      max,
		lru:      list.New(),
		items:    map[cacheKey]*list.Element{},
		inflight: map[cacheKey]*flight{},
	}
}

// setMax changes the bound, evicting the least recently used entries that
// no longer fit.
func (c *cache) setMax(max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.max = max
	c.evictLocked()
}

func (c *cache) evictLocked() {
	for c.lru.Len() > c.max {
		e := c.lru.Back()
		c.lru.Remove(e)
		delete(c.items, e.Value.(*cacheEntry).key)
	}
}

// clear drops every cached answer, for answers of other servers. Queries
// in flight still hand their answers to the lookups waiting for them, but
// those answers are not cached, and a later lookup of the same name asks
// anew: they come from the servers asked before, and would otherwise be
// served for their TTL (a failure of a resolver taken away for
// failure_ttl) as the new servers' answers.
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.items)
	c.inflight = map[cacheKey]*flight{}
	c.gen++
}

// dropZone drops the cached answers of the names under zone (lower case,
// no final dot), of every type, for a list whose health probe found it
// mended after it answered every name as listed (see probeLoop): what it
// answered meanwhile was cached for its TTL, up to max_ttl, while its
// listings were ignored, and served after the mend it would refuse
// every client looked up during the breakage. The queries in flight for
// such names still hand their answers to the lookups waiting for them,
// but those answers are not cached, and a later lookup asks anew. The
// answers of other lists stay.
func (c *cache) dropZone(zone string) {
	suffix := "." + zone
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.items {
		if strings.HasSuffix(k.name, suffix) {
			c.lru.Remove(e)
			delete(c.items, k)
		}
	}
	for k, f := range c.inflight {
		if strings.HasSuffix(k.name, suffix) {
			f.dropped = true
			delete(c.inflight, k)
		}
	}
}

// len returns the number of cached answers, expired ones included until
// they are looked up or evicted.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// waiting returns how many lookups wait for the query in flight for k
// (the one that started it included); 0 when none is in flight.
func (c *cache) waiting(k cacheKey) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.inflight[k]; f != nil {
		return f.waiters
	}
	return 0
}

// get returns the cached answer for k, if there is one still valid under
// caps, without waiting for anything.
func (c *cache) get(k cacheKey, caps lifetimes) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return answer{}, false
	}
	ce := e.Value.(*cacheEntry)
	if !ce.valid(c.now(), caps) {
		return answer{}, false
	}
	c.lru.MoveToFront(e)
	return ce.ans, true
}

// lookup returns the answer for k: from the cache while its TTL and caps
// last, else from the query already in flight for k, else from fetch,
// which it runs in a goroutine of its own. fetch must end by itself in bounded
// time (the resolver's timeouts); it does not get ctx, because other
// lookups may be waiting for its answer after this caller gave up. The
// answer is cached for its ttl. lookup returns early with ctx's error
// when ctx ends first.
func (c *cache) lookup(ctx context.Context, k cacheKey, caps lifetimes, fetch func() answer) (answer, source, error) {
	c.mu.Lock()
	if e, ok := c.items[k]; ok {
		ce := e.Value.(*cacheEntry)
		if ce.valid(c.now(), caps) {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return ce.ans, fromCache, nil
		}
		c.lru.Remove(e)
		delete(c.items, k)
	}
	src := fromFlight
	f := c.inflight[k]
	if f == nil {
		src = fromNetwork
		f = &flight{done: make(chan struct{}), gen: c.gen}
		c.inflight[k] = f
		go c.run(k, f, fetch)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.ans, src, nil
	case <-ctx.Done():
		return answer{}, src, ctx.Err()
	}
}

// run carries out one query and hands its answer to every waiter.
func (c *cache) run(k cacheKey, f *flight, fetch func() answer) {
	ans := fetch()
	c.mu.Lock()
	if c.inflight[k] == f {
		delete(c.inflight, k)
	}
	if ans.ttl > 0 && c.max > 0 && f.gen == c.gen && !f.dropped {
		if e, ok := c.items[k]; ok {
			c.lru.Remove(e)
		}
		now := c.now()
		c.items[k] = c.lru.PushFront(&cacheEntry{key: k, ans: ans, stored: now, expires: now.Add(ans.ttl)})
		c.evictLocked()
	}
	f.ans = ans
	c.mu.Unlock()
	close(f.done)
}

// Shared holds what dnsbl filters keep across configuration reloads: the
// answer cache of each filter entry, by name, so that a reload does not
// throw away answers that are still valid and query every list again;
// and what the resolvers learnt of their servers, by address: those found
// without EDNS, so that a reload does not cost each of them a FORMERR
// round trip again, and those that gave no answer, so that a reload does
// not cost a timeout per lookup until each is found dead again. One
// Shared serves every filter the daemon builds from one registry; it is
// safe for concurrent use.
type Shared struct {
	now func() time.Time
	// servers is shared by every entry: whether a server answers or
	// implements EDNS does not depend on who asks it.
	servers *serverMemories

	mu     sync.Mutex
	caches map[string]sharedCache
	// labels are the return codes each list of each entry has had told
	// apart in metrics, by entry name and zone: the metric's series
	// outlive a reload, so the bound on them must too.
	labels map[[2]string]*codeLabels
}

type sharedCache struct {
	servers string // the resolver the answers came from
	c       *cache
	refs    int // the filters using c that are not closed
	// size is c's bound, the cache_size of sizedBy, the filter built
	// last on c; prevSize and prevBy are those before it. A filter that
	// is closed while it is still the last built (a reload that failed
	// after building it) gives the bound back (see release).
	size     int
	sizedBy  *Filter
	prevSize int
	prevBy   *Filter
}

// NewShared returns an empty Shared.
func NewShared() *Shared {
	return &Shared{now: time.Now, servers: newServerMemories(), caches: map[string]sharedCache{}, labels: map[[2]string]*codeLabels{}}
}

// codeLabels returns the codes told apart for zone of the filter entry
// name. They are kept for good: each holds at most maxCodeLabels codes,
// as the metric holds their series.
func (s *Shared) codeLabels(name, zone string) *codeLabels {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := [2]string{name, zone}
	l := s.labels[k]
	if l == nil {
		l = &codeLabels{}
		s.labels[k] = l
	}
	return l
}

// cache returns the cache of the filter entry name, bounded to size
// answers. The cache survives as long as the entry keeps its name and
// servers, the source of its answers (see resolver.answerSource): answers
// from other servers may differ (a list that refuses queries through one
// resolver answers through another), and failures over another transport
// too, so a changed server list, or transport, starts afresh.
//
// The caches no filter uses any more are dropped here, those of entries
// a reload removed or renamed: kept, they would add up over reloads. A
// reload builds its filters before it closes the old ones, so the cache
// of an entry it keeps is in use while this runs; one released before
// (all filters of the name closed, then the name built again) is still
// found, as the name asked for is not dropped.
func (s *Shared) cache(name, servers string, size int, f *Filter) *cache {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, sc := range s.caches {
		if n != name && sc.refs == 0 {
			delete(s.caches, n)
		}
	}
	if sc, ok := s.caches[name]; ok && sc.servers == servers {
		sc.c.setMax(size)
		sc.prevSize, sc.prevBy = sc.size, sc.sizedBy
		sc.size, sc.sizedBy = size, f
		sc.refs++
		s.caches[name] = sc
		return sc.c
	}
	c := newCache(size, s.now)
	s.caches[name] = sharedCache{servers: servers, c: c, refs: 1, size: size, sizedBy: f}
	return c
}

// release tells that f, a filter of entry name, no longer uses its cache
// c. A cache that another server list replaced is no longer s's to count.
// When f is still the filter built last on c, it was built by a reload
// that failed (or the daemon stops): the filter built before it, which
// goes on, gets its own bound back, not the one of a configuration that
// never came into force.
func (s *Shared) release(name string, c *cache, f *Filter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc, ok := s.caches[name]; ok && sc.c == c && sc.refs > 0 {
		sc.refs--
		if sc.sizedBy == f && sc.prevBy != nil {
			if sc.prevSize != sc.size {
				c.setMax(sc.prevSize)
			}
			sc.size, sc.sizedBy = sc.prevSize, sc.prevBy
			sc.prevBy = nil
		}
		s.caches[name] = sc
	}
}

// serversChanged tells that the entry name, whose cache is c, now asks
// servers: what c holds came from other resolvers and is dropped, as a
// reload that changes the servers drops it (see cache), and a reload that
// keeps these servers keeps the cache.
func (s *Shared) serversChanged(name string, c *cache, servers string) {
	s.mu.Lock()
	if sc, ok := s.caches[name]; ok && sc.c == c {
		sc.servers = servers
		s.caches[name] = sc
	}
	s.mu.Unlock()
	c.clear()
}
