package classifier

import (
	"hash/maphash"
	"math/bits"
	"sync"
)

// DefaultRedisCacheTokens is the default of RedisOptions.CacheTokens.
const DefaultRedisCacheTokens = 1 << 19

// redisCache keeps the counts of recently looked-up tokens (known or not)
// in the process, so that a lookup asks Redis only for the tokens it has
// not seen lately: most tokens of a message are header and common words
// that the previous messages had too. Fewer fields per HMGET cost Redis
// and the client less, at no extra round trip.
//
// The entries are valid for one generation of the store: every script
// that changes counts sets the meta field "gen" to a new value (the
// server's clock in microseconds, or one more than the last), and each
// lookup reads it in the same MULTI/EXEC as the tokens. Entries are used
// only when that generation equals theirs, so a lookup never mixes counts
// from before and after a write, on this host or any other. The first
// lookup after a write sees a new generation; if it took counts from the
// cache it asks again for all its tokens (a second round trip) and the
// cache starts over.
//
// The cache is a table of fixed size, set-associative: a token's hash
// picks a bucket of cacheWays slots, which holds it or not; a new token
// in a full bucket replaces one of the slots. Looking a token up reads one
// or two cache lines, several times faster than a Go map of that size,
// and the table never grows. Slots are keyed by a 64-bit hash of the
// token, not the token: two tokens with the same hash would share counts,
// at 2^-64 per pair about once in 10^8 years of a busy site's lookups.
// Starting over for a new generation is a new epoch number, not a clear:
// slots of older epochs count as empty.
type redisCache struct {
	seed  maphash.Seed
	mu    sync.Mutex
	gen   string // generation of the entries; "" none
	epoch uint32 // slots of other epochs are empty
	slots []cacheSlot
	mask  uint64 // len(slots)-1
}

// cacheWays is the number of slots per bucket: 8 slots of 24 bytes are
// three cache lines.
const cacheWays = 8

// cacheSlot is one cached token: its hash, counts, and the epoch it
// belongs to.
type cacheSlot struct {
	hashHi, hashLo uint32
	spam, ham      uint32
	seen           Date
	epoch          uint32
}

func newRedisCache(size int) *redisCache {
	if size <= 0 {
		return nil
	}
	n := 1 << bits.Len(uint(size-1)) // a power of two, at least size
	n = max(n, cacheWays)
	return &redisCache{seed: maphash.MakeSeed(), epoch: 1, slots: make([]cacheSlot, n), mask: uint64(n - 1)}
}

// find returns the slot of hash h, or nil.
func (c *redisCache) find(h uint64) *cacheSlot {
	hi, lo := uint32(h>>32), uint32(h)
	b := (h & c.mask) &^ (cacheWays - 1)
	for j := range uint64(cacheWays) {
		s := &c.slots[b+j]
		if s.epoch == c.epoch && s.hashLo == lo && s.hashHi == hi {
			return s
		}
	}
	return nil
}

// get fills counts[i] for every cached tokens[i] and returns the
// generation of those counts and the indexes of the other tokens,
// appended to miss.
func (c *redisCache) get(tokens []string, counts []Counts, miss []int) (string, []int) {
	keys := make([]uint64, len(tokens))
	for i, tok := range tokens {
		keys[i] = maphash.String(c.seed, tok)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range keys {
		if s := c.find(h); s != nil {
			counts[i] = Counts{Spam: s.spam, Ham: s.ham, LastSeen: s.seen}
			continue
		}
		miss = append(miss, i)
	}
	return c.gen, miss
}

// put records the counts of the tokens at the given indexes, read at
// generation gen. Entries of another generation are dropped first; a
// store without a generation (never written by this version) is not
// cached.
func (c *redisCache) put(gen string, tokens []string, counts []Counts, idx []int) {
	keys := make([]uint64, len(idx))
	for j, i := range idx {
		keys[j] = maphash.String(c.seed, tokens[i])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		c.gen = gen
		c.epoch++
		if c.epoch == 0 {
			// After 2^32 generations the epoch numbers come round:
			// clear, so that no slot of the last round passes for new.
			clear(c.slots)
			c.epoch = 1
		}
	}
	if gen == "" {
		return
	}
	for j, i := range idx {
		h := keys[j]
		s := c.find(h)
		if s == nil {
			s = c.victim(h)
		}
		v := counts[i]
		*s = cacheSlot{hashHi: uint32(h >> 32), hashLo: uint32(h), spam: v.Spam, ham: v.Ham, seen: v.LastSeen, epoch: c.epoch}
	}
}

// victim returns the slot of h's bucket to write a new token to: an empty
// one (or one of an older epoch), else one picked by other bits of the
// hash, so that the tokens of a bucket take turns.
func (c *redisCache) victim(h uint64) *cacheSlot {
	b := (h & c.mask) &^ (cacheWays - 1)
	for j := range uint64(cacheWays) {
		if s := &c.slots[b+j]; s.epoch != c.epoch {
			return s
		}
	}
	return &c.slots[b+(h>>40)%cacheWays]
}
