package classifier

import (
	"hash/maphash"
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
// Entries are keyed by a 64-bit hash of the token, not the token: no copy
// of the token is kept, and a map of integers is several times faster to
// probe than one of strings. Two tokens with the same hash would share
// counts; at 2^-64 per pair that is about once in 10^8 years of a busy
// site's lookups.
//
// Eviction is by halves: new entries go to cur; when cur is full it
// becomes old and a new cur starts; a hit in old moves to cur. So the
// cache holds at most 2*half entries (about 55 bytes each, measured).
type redisCache struct {
	seed     maphash.Seed
	mu       sync.Mutex
	gen      string // generation of the entries; "" none
	half     int
	cur, old map[uint64]Counts
}

func newRedisCache(max int) *redisCache {
	if max <= 0 {
		return nil
	}
	return &redisCache{seed: maphash.MakeSeed(), half: max/2 + 1, cur: map[uint64]Counts{}}
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
	for i, k := range keys {
		if v, ok := c.cur[k]; ok {
			counts[i] = v
			continue
		}
		if v, ok := c.old[k]; ok {
			counts[i] = v
			c.putLocked(k, v)
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
		c.cur = map[uint64]Counts{}
		c.old = nil
	}
	if gen == "" {
		return
	}
	for j, i := range idx {
		c.putLocked(keys[j], counts[i])
	}
}

func (c *redisCache) putLocked(k uint64, v Counts) {
	if len(c.cur) >= c.half {
		c.old = c.cur
		c.cur = make(map[uint64]Counts, c.half)
	}
	c.cur[k] = v
}
