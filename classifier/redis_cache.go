package classifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisCacheTokens is the default of RedisOptions.CacheTokens: as
// many tokens as the bbolt store's in-memory index holds by default.
const DefaultRedisCacheTokens = DefaultIndexTokens

// cacheLoad is the most slots of a cache table that are in use: at 3/4 a
// probe for an absent token reads a cache line or two.
const cacheLoad = 0.75

// redisCache keeps token counts of the Redis store in the process, keyed
// by a 64-bit hash of the token (20 bytes a slot, about 27 a token), so
// that a lookup asks Redis for as few tokens as possible.
//
// It is in one of two modes:
//
//   - complete: it holds every token of the store seen in at least floor
//     messages, as read by a scan of the whole store (see RedisStore.load),
//     so a token it does not have was seen in fewer. A lookup for a
//     classifier that counts no such token (see countFloor) asks Redis for
//     no token at all and reads those as unseen, which scores the same;
//     any other lookup asks Redis for the tokens the cache lacks. With the
//     default parameters the floor is 5 and the cache holds less than a
//     tenth of the store's tokens; before any classifier is made on the store,
//     and with parameters that count a token seen once, it is 1 and the
//     cache holds every token;
//   - partial: it holds the tokens of recent lookups, known or not, and a
//     lookup asks Redis for the others. When it is full it starts over.
//
// The counts are those of one generation of the store (gen): every script
// that changes counts sets the meta field "gen" to a new value, and each
// lookup reads it in the same MULTI/EXEC as anything else. A lookup also
// reads the store's change log from the cache's generation on: each
// learned message appends the new counts of its tokens there (see
// luaLearn). When the log covers every write between the cache's
// generation and the store's, the lookup applies it to its own counts and
// to the cache, which is then current again; so what another host trains
// counts at the next lookup, still in one round trip. When it does not
// (raw adds and prunes do not log, the log is trimmed, or the cache is
// too far behind), the cache starts over, partial; a lookup that had taken
// counts from it asks again for all its tokens (a second round trip), and
// a new load is started.
//
// Two tokens with the same hash share counts; at 2^-64 per pair that is
// about once in 10^13 lookups of a million-token store.
type redisCache struct {
	max int // most tokens held

	mu       sync.RWMutex // lookups read the table together
	gen      string       // generation of the counts; "" none
	complete bool
	floor    uint64 // a complete table leaves out tokens seen in fewer messages
	ver      uint64 // changes whenever the table is replaced or emptied
	slots    []indexSlot
	n        int // slots in use
}

func newRedisCache(size int) *redisCache {
	if size <= 0 {
		return nil
	}
	return &redisCache{max: size}
}

// hash is the hash of tok in the cache: tokenHash, whose seed the cache
// shares with the token sets of messages (never 0, which marks an empty
// slot).
func (c *redisCache) hash(tok string) uint64 { return tokenHashString(tok) }

// cacheView is what a lookup took from the cache.
type cacheView struct {
	gen    string
	ver    uint64
	hashes []uint64 // of every token
	ask    []int    // indexes of the tokens to ask Redis for
}

// get fills counts[i] for every tokens[i] the cache can answer and returns
// the generation of those counts and the indexes of the others. A complete
// cache answers for a token it lacks (unseen) only to a lookup that needs
// exact counts just of the tokens seen in at least floor messages, and
// only if it leaves out no token seen in that many. hashes are the
// tokens' hashes (tokenHash) if not nil; the view holds them until the
// lookup ends.
func (c *redisCache) get(tokens []string, hashes []uint64, counts []Counts, floor uint64) cacheView {
	v := cacheView{hashes: hashes}
	if hashes == nil {
		v.hashes = make([]uint64, len(tokens))
		for i, tok := range tokens {
			v.hashes[i] = c.hash(tok)
		}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v.gen, v.ver = c.gen, c.ver
	if c.gen == "" {
		v.ask = allIndexes(len(tokens))
		return v
	}
	for i, h := range v.hashes {
		if k, ok := c.find(h); ok {
			counts[i] = c.slots[k].counts()
		} else if !c.complete || floor < c.floor {
			v.ask = append(v.ask, i)
		}
	}
	return v
}

// find returns the slot of hash h, or of the empty slot where it would go,
// and whether it is there. Linear probing; the table is never full.
func (c *redisCache) find(h uint64) (int, bool) {
	if len(c.slots) == 0 {
		return 0, false
	}
	hi, lo := uint32(h>>32), uint32(h)
	i, _ := bits.Mul64(h, uint64(len(c.slots)))
	for {
		sl := &c.slots[i]
		if sl.hashLo == lo && sl.hashHi == hi {
			return int(i), true
		}
		if sl.hashLo == 0 && sl.hashHi == 0 {
			return int(i), false
		}
		if i++; i == uint64(len(c.slots)) {
			i = 0
		}
	}
}

// set records the counts of hash h. A partial cache that is full starts
// over; a complete one that would exceed its maximum becomes partial. A
// complete cache takes in a token it does not hold only once the token has
// been seen in floor messages, and keeps the tokens it holds whatever
// their counts: either way it still holds every token seen in that many.
func (c *redisCache) set(h uint64, cnt Counts) {
	if len(c.slots) == 0 {
		// A partial table starts small and grows up to the maximum.
		c.slots = make([]indexSlot, tableSize(min(c.max, 1<<16)))
	}
	i, ok := c.find(h)
	if ok {
		c.slots[i].setCounts(cnt)
		return
	}
	if c.complete && seenIn(cnt) < c.floor {
		return
	}
	if c.n >= c.max {
		c.empty()
		i, _ = c.find(h)
	}
	c.slots[i] = indexSlot{hashHi: uint32(h >> 32), hashLo: uint32(h)}
	c.slots[i].setCounts(cnt)
	c.n++
	if float64(c.n) > cacheLoad*float64(len(c.slots)) {
		c.grow()
	}
}

// empty drops every entry: the cache becomes partial.
func (c *redisCache) empty() {
	clear(c.slots)
	c.n = 0
	c.complete = false
	c.ver++
}

// grow rehashes into a table half as large again.
func (c *redisCache) grow() {
	old := c.slots
	c.slots = make([]indexSlot, len(old)+len(old)/2+1)
	for k := range old {
		if h := old[k].hash(); h != 0 {
			i, _ := c.find(h)
			c.slots[i] = old[k]
		}
	}
}

// logEntry is one learned message of the store's change log: the
// generation before and after it, and the new counts of its tokens.
type logEntry struct {
	prev, gen string
	toks      []string
	counts    []Counts
}

// update brings the cache from generation v.gen to gen: it applies the
// change log (which the caller checked covers every write between the
// two) if the cache is still where the lookup found it, then records the
// counts fetched at gen for the tokens at the indexes ask. A cache that
// has moved on meanwhile is left alone.
func (c *redisCache) update(v cacheView, gen string, log []logEntry, counts []Counts, ask []int) {
	if gen == "" {
		return // a store never written has nothing to cache
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ver != v.ver {
		return
	}
	switch c.gen {
	case v.gen:
		for _, e := range log {
			for k, tok := range e.toks {
				c.set(c.hash(tok), e.counts[k])
			}
		}
		c.gen = gen
	case gen:
	default:
		return
	}
	if c.complete {
		return
	}
	for _, i := range ask {
		c.set(v.hashes[i], counts[i])
	}
}

// reset empties the cache for generation gen, unless it has moved on
// since the lookup took v. It returns the view of the empty cache.
func (c *redisCache) reset(v cacheView, gen string) (cacheView, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ver != v.ver {
		return cacheView{}, false
	}
	c.empty()
	c.gen = gen
	return cacheView{gen: gen, ver: c.ver}, true
}

// RedisCacheStatus describes a Redis store's cache of token counts (see
// RedisOptions.CacheTokens).
type RedisCacheStatus struct {
	Tokens int // token counts held
	// Complete: every token of the store seen in at least Floor messages
	// is held, and a lookup to classify a message asks Redis for none.
	// Floor is 0 unless Complete.
	Complete bool
	Floor    uint64
	// Loads is the number of loads of the whole store that completed,
	// LoadTime how long the last one took.
	Loads    int
	LoadTime time.Duration
}

// CacheStatus returns the state of the cache (zero if it is off).
func (s *RedisStore) CacheStatus() RedisCacheStatus {
	if s.cache == nil {
		return RedisCacheStatus{}
	}
	var st RedisCacheStatus
	s.cache.mu.RLock()
	st.Tokens, st.Complete = s.cache.n, s.cache.complete
	if st.Complete {
		st.Floor = s.cache.floor
	}
	s.cache.mu.RUnlock()
	s.loader.mu.Lock()
	st.Loads, st.LoadTime = s.loader.loads, s.loader.took
	s.loader.mu.Unlock()
	return st
}

// install replaces the table by a complete one of generation gen, which
// holds the tokens seen in at least floor messages. The next lookup brings
// it up to date through the change log.
func (c *redisCache) install(gen string, slots []indexSlot, n int, floor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slots, c.n, c.gen, c.complete, c.floor = slots, n, gen, true, floor
	c.ver++
}

// tableBuilder fills a complete table during a load, outside the lock.
type tableBuilder struct {
	c     *redisCache
	floor uint64
	slots []indexSlot
	n     int
}

// builder returns a builder of a table of the tokens, of a store of expect
// tokens, seen in at least floor messages.
func (c *redisCache) builder(expect int, floor uint64) *tableBuilder {
	size := expect + expect/4 + 1024
	if floor > 1 {
		// How many tokens reach the floor is known only after the
		// scan; in a typical store a tenth. The table grows if more do.
		size = expect/4 + 1024
	}
	return &tableBuilder{c: c, floor: floor, slots: make([]indexSlot, tableSize(min(size, c.max)))}
}

// add records a token of the store, if it was seen in at least floor
// messages or is held already (a scan may return a token twice, and the
// newer value counts); false if the cache would exceed its maximum.
func (b *tableBuilder) add(tok string, cnt Counts) bool {
	tmp := redisCache{slots: b.slots}
	h := b.c.hash(tok)
	i, ok := tmp.find(h)
	if !ok {
		if seenIn(cnt) < b.floor {
			return true
		}
		if b.n >= b.c.max {
			return false
		}
		b.n++
	}
	b.slots[i] = indexSlot{hashHi: uint32(h >> 32), hashLo: uint32(h)}
	b.slots[i].setCounts(cnt)
	if float64(b.n) > cacheLoad*float64(len(b.slots)) {
		tmp.n = b.n
		tmp.grow()
		b.slots = tmp.slots
	}
	return true
}

// loadEvery is the least time between two loads of the cache.
const loadEvery = time.Minute

// loadTimeout bounds a load: the scan of a store of millions of tokens
// takes seconds.
const loadTimeout = 5 * time.Minute

// redisLoader runs the loads of the cache (RedisStore.load) in the
// background, one at a time and at most once per loadEvery: the first
// lookup starts one, and so does a lookup after which the cache started
// over. A classifier whose parameters change the floor the cache is to
// be loaded with (see RedisStore.useFloor) has the next lookup start one
// at once; the floor only goes down after the first classifier, so that
// happens a few times at most.
type redisLoader struct {
	pending atomic.Bool // a load is wanted
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	running bool
	last    time.Time
	floor   uint64        // of the last load started
	loads   int           // completed
	took    time.Duration // by the last completed
	// tooBig is the number of tokens in all of a store whose scan found
	// more tokens at or above the floor tooBigFloor than the cache may
	// hold. A store of at least as many tokens is not scanned again at
	// that floor or a higher one: it hardly has fewer such tokens now,
	// and each scan reads the whole store. A prune, or a lower floor,
	// tries again. Only the running load uses them.
	tooBig      int64
	tooBigFloor uint64
}

func (l *redisLoader) init() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.pending.Store(true)
}

// stop cancels a load and waits for it to end.
func (l *redisLoader) stop() {
	// Under the lock: a load starting at this moment either sees the
	// cancellation or is counted before Wait.
	l.mu.Lock()
	l.cancel()
	l.mu.Unlock()
	l.wg.Wait()
}

// startLoad starts a load of the cache if one is wanted and allowed now.
func (s *RedisStore) startLoad() {
	l := &s.loader
	if !l.pending.Load() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	floor := s.wantFloor()
	due := l.last.IsZero() || time.Since(l.last) >= loadEvery || floor != l.floor
	if l.running || l.ctx.Err() != nil || !due {
		return
	}
	l.pending.Store(false)
	l.running = true
	l.last = time.Now()
	l.floor = floor
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, loadTimeout)
		defer cancel()
		start := time.Now()
		err := s.load(ctx, floor)
		if err != nil {
			l.pending.Store(true)
			slog.Debug("bayes store cache not loaded", "store", s.String(), "err", err)
		}
		l.mu.Lock()
		l.running = false
		if err == nil {
			l.loads++
			l.took = time.Since(start)
		}
		l.mu.Unlock()
	}()
}

// errCacheTooSmall: the store has more tokens than the cache may hold.
var errCacheTooSmall = errors.New("store larger than the cache (redis cache_tokens)")

// wantFloor is the floor of the next load of the cache: the lowest that a
// classifier on the store asked for, 1 (every token) before the first.
func (s *RedisStore) wantFloor() uint64 { return max(s.floor.Load(), 1) }

// useFloor implements floorStore: the next load of the cache keeps only the
// tokens seen in at least floor messages, or in fewer if another
// classifier on the store counts those. The cache loaded meanwhile still
// answers every lookup exactly as far as it needs (see redisCache.get).
func (s *RedisStore) useFloor(floor uint64) {
	if !lowerFloor(&s.floor, floor) {
		return
	}
	s.loader.pending.Store(true)
}

// load reads every token of the store seen in at least floor messages into
// a new table and makes it the cache, complete, at the generation read
// before the scan. The scan is not a snapshot: tokens written meanwhile may
// be read old or new. The first lookup after the load applies the change
// log from that generation on, which gives every token changed since its
// value at the store's current generation (and takes in those it lifts to
// the floor); if the log does not reach back that far, the cache starts
// over and a load is tried again later.
func (s *RedisStore) load(ctx context.Context, floor uint64) error {
	var gen *redis.StringCmd
	var n *redis.IntCmd
	// A plain pipeline: the number of tokens only sizes the table, and
	// at maxmemory (noeviction) Redis refuses a MULTI, reads included.
	err := s.call(ctx, "load", false, func(ctx context.Context) error {
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			gen = p.HGet(ctx, s.meta, "gen")
			n = p.HLen(ctx, s.tokens)
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	if gen.Val() == "" {
		return errors.New("store not written yet")
	}
	l := &s.loader
	switch {
	case floor <= 1 && int(n.Val()) > s.cache.max:
		return errCacheTooSmall
	case l.tooBig > 0 && n.Val() >= l.tooBig && floor >= l.tooBigFloor:
		return errCacheTooSmall
	}
	b := s.cache.builder(int(n.Val()), floor)
	err = s.scanHash(ctx, "load", s.tokens, scanCount, func(tok, val string) error {
		c, err := parseRedisCounts(val)
		if err != nil {
			return fmt.Errorf("token %q: %w", tok, err)
		}
		if !b.add(tok, c) {
			return errCacheTooSmall
		}
		return nil
	})
	if errors.Is(err, errCacheTooSmall) {
		l.tooBig, l.tooBigFloor = n.Val(), floor
	}
	if err != nil {
		return err
	}
	l.tooBig = 0
	s.cache.install(gen.Val(), b.slots, b.n, floor)
	return nil
}
