package classifier

import (
	"errors"
	"fmt"
	"math/bits"

	bolt "go.etcd.io/bbolt"
)

// DefaultIndexTokens is the default of BoltOptions.IndexTokens.
const DefaultIndexTokens = 2_000_000

// DefaultIndexAfter is the default of BoltOptions.IndexAfter: about 40
// messages.
const DefaultIndexAfter = 16384

// indexLoad is the most slots of the index that are in use; at 3/4 a
// lookup of an unknown token probes about 8 slots (a cache line or two).
const indexLoad = 0.75

// fileID identifies the file behind a bbolt handle, so an index is never
// applied to a store file that replaced the one it was built from (a
// re-import under the same name).
type fileID struct{ dev, ino uint64 }

// tokenIndex is an in-memory copy of the token counts of one version of the
// store, keyed by a 64-bit hash of the token rather than the token itself
// (20 bytes per slot, about 27 per token). A lookup costs one or two cache
// lines where a B+tree descent in the file costs a dozen key comparisons
// and several cache misses; with a few hundred tokens per message, most of
// them rare, that is most of the cost of classifying.
//
// Two tokens of the store with the same hash are both marked ambiguous and
// read from the file. An unknown token whose hash equals that of a stored
// one would get that token's counts; at 2^-64 per lookup and store token,
// that is about once in 10^13 lookups against a million-token store.
//
// The index belongs to one version of the file: the bbolt transaction ID it
// was built at, or patched to by this process's own writes (Learn). Any
// other write makes the IDs differ and the index is rebuilt.
//
// Most tokens of a store were seen in one or two messages, and with the
// default parameters a token counts in a score only once it has been seen
// in three (see countFloor): nine in ten tokens of a store trained on a few
// thousand messages can never change a score. The index leaves out the
// tokens seen in fewer than floor messages; a lookup for scoring reads
// them as unseen, which scores the same, and any other lookup reads them
// from the file. The index is then a tenth of the size, built faster, and
// small enough for the CPU cache to hold most of it.
type tokenIndex struct {
	file  fileID
	txid  int
	floor uint64 // tokens seen in fewer messages are left out
	slots []indexSlot
	// filter has a bit per hash of the tokens held (see mayHold): most
	// tokens a message is looked up with are not in the index, and
	// finding that in slots costs a cache miss and several probes.
	filter []uint64
	n      int
	max    int                 // most tokens this index may hold
	dup    map[uint64]struct{} // hashes shared by tokens of the store
	totals Totals
}

// indexSlot is one token: its hash (split in two so that the slot packs
// into 20 bytes) and counts. A hash of 0 marks an empty slot; a token
// whose hash is 0 is stored as 1.
type indexSlot struct {
	hashHi, hashLo uint32
	spam, ham      uint32
	seen           Date
}

func (sl *indexSlot) hash() uint64 { return uint64(sl.hashHi)<<32 | uint64(sl.hashLo) }

func (sl *indexSlot) counts() Counts { return Counts{Spam: sl.spam, Ham: sl.ham, LastSeen: sl.seen} }

func (sl *indexSlot) setCounts(c Counts) { sl.spam, sl.ham, sl.seen = c.Spam, c.Ham, c.LastSeen }

func newTokenIndex(file fileID, txid, expect, limit int) *tokenIndex {
	x := &tokenIndex{file: file, txid: txid, floor: 1, max: limit, dup: map[uint64]struct{}{}}
	x.alloc(tableSize(expect))
	return x
}

// alloc makes an empty table of n slots and its filter, a power of two
// of at least 8 bits per slot (a byte per 20-byte slot). With the table at most 3/4 full, about 1 in 11 hashes not held
// finds its bit set and goes on to probe the table.
func (x *tokenIndex) alloc(n int) {
	x.slots = make([]indexSlot, n)
	words := 1
	for words*64 < 8*n {
		words *= 2
	}
	x.filter = make([]uint64, words)
}

// filterBit returns the word and bit of hash h in the filter. The filter
// takes the low bits of h, and home the high ones, so that tokens
// crowded into one stretch of the table still spread over the filter.
func (x *tokenIndex) filterBit(h uint64) (int, uint64) {
	b := h & uint64(64*len(x.filter)-1)
	return int(b / 64), 1 << (b % 64)
}

// mayHold reports whether the index may hold hash h: false means it does
// not.
func (x *tokenIndex) mayHold(h uint64) bool {
	w, m := x.filterBit(h)
	return x.filter[w]&m != 0
}

// tableSize is the number of slots for n tokens: a little room above
// n/indexLoad, so that the last inserts do not trigger a rehash.
func tableSize(n int) int { return int(float64(max(n, 1024))/indexLoad) + 64 }

// hash is the hash of tok in the index: tokenHash, whose seed all
// indexes share with the token sets of messages.
func (x *tokenIndex) hash(tok string) uint64 { return tokenHashString(tok) }

// home is the first slot of hash h: the high 64 bits of h*len(slots),
// which spreads h over the table without a power-of-two size.
func (x *tokenIndex) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(x.slots)))
	return int(hi)
}

// find returns the slot of hash h, or of the empty slot where it would go,
// and whether it is there. Linear probing; the table is never full, so the
// loop ends at an empty slot.
func (x *tokenIndex) find(h uint64) (int, bool) {
	hi, lo := uint32(h>>32), uint32(h)
	for i := x.home(h); ; {
		sl := &x.slots[i]
		if sl.hashLo == lo && sl.hashHi == hi {
			return i, true
		}
		if sl.hashLo == 0 && sl.hashHi == 0 {
			return i, false
		}
		if i++; i == len(x.slots) {
			i = 0
		}
	}
}

// get returns the counts of tok (zero if the store does not have it), and
// false if tok shares its hash with another token and must be read from
// the file.
func (x *tokenIndex) get(tok string) (Counts, bool) {
	h := x.hash(tok)
	if len(x.dup) > 0 {
		if _, ok := x.dup[h]; ok {
			return Counts{}, false
		}
	}
	if i, ok := x.find(h); ok {
		return x.slots[i].counts(), true
	}
	return Counts{}, true
}

// getAll fills counts[i] for each tokens[i] and returns the indexes of the
// tokens that must be read from the file (see get): with missing set,
// also those of the tokens the index does not hold, which the store may
// have seen in fewer than floor messages.
//
// The table is much larger than the CPU cache, so each token's first slot
// is a cache miss. Probing token after token would take those misses one
// at a time: whether a probe goes on depends on the slot it loaded, and
// the CPU cannot run ahead of a branch it has yet to resolve. So the
// tokens go in batches: first each token's home slot is copied out, loads
// that depend on nothing loaded and so overlap; then the copies are
// compared, and only a token whose home slot holds another hash probes
// on, from a line now in cache.
func (x *tokenIndex) getAll(tokens []string, counts []Counts, missing bool) []int {
	return x.getAllHashed(tokens, nil, counts, missing)
}

// getAllHashed is getAll with the hashes (tokenHash) of the tokens, if
// hashes is not nil: the tokenizer computed them already (see
// Message.hashes), and hashing every token again was a fifth of the
// lookup's time.
func (x *tokenIndex) getAllHashed(tokens []string, hashes []uint64, counts []Counts, missing bool) []int {
	const batch = 32
	var ask []int
	var batchHashes [batch]uint64
	var homes [batch]indexSlot
	for start := 0; start < len(tokens); start += batch {
		n := min(batch, len(tokens)-start)
		var hs []uint64
		if hashes != nil {
			hs = hashes[start : start+n]
		} else {
			hs = batchHashes[:n]
			for j := range n {
				hs[j] = x.hash(tokens[start+j])
			}
		}
		for j := range n {
			// A hash the filter rules out reads as an empty home
			// slot, without loading the slot.
			homes[j] = indexSlot{}
			if x.mayHold(hs[j]) {
				homes[j] = x.slots[x.home(hs[j])]
			}
		}
		for j := range n {
			i, h := start+j, hs[j]
			if len(x.dup) > 0 {
				if _, ok := x.dup[h]; ok {
					ask = append(ask, i)
					continue
				}
			}
			sl := &homes[j]
			switch {
			case sl.hash() == h:
				counts[i] = sl.counts()
			case sl.hashHi == 0 && sl.hashLo == 0:
				if missing {
					ask = append(ask, i)
				}
			default:
				if k, ok := x.find(h); ok {
					counts[i] = x.slots[k].counts()
				} else if missing {
					ask = append(ask, i)
				}
			}
		}
	}
	return ask
}

// insert adds a token of the store while building. It reports false when
// the index would exceed its maximum.
func (x *tokenIndex) insert(tok []byte, c Counts) bool {
	return x.insertHash(x.hashBytes(tok), c)
}

func (x *tokenIndex) insertHash(h uint64, c Counts) bool {
	i, found := x.find(h)
	if found {
		x.dup[h] = struct{}{}
		return true
	}
	return x.place(i, h, c)
}

func (x *tokenIndex) hashBytes(tok []byte) uint64 { return tokenHash(tok) }

// set records the new counts of a token after this process wrote them
// (zero counts: the token was deleted). A token the index holds keeps its
// slot whatever its counts; one it does not hold comes in once it has
// been seen in floor messages.
func (x *tokenIndex) set(tok string, c Counts) bool {
	h := x.hash(tok)
	if _, ok := x.dup[h]; ok {
		return true
	}
	if i, found := x.find(h); found {
		x.slots[i].setCounts(c)
		return true
	} else if seenIn(c) < x.floor {
		return true
	} else {
		return x.place(i, h, c)
	}
}

// seenIn is the number of learned messages c says a token was seen in.
func seenIn(c Counts) uint64 { return uint64(c.Spam) + uint64(c.Ham) }

// place fills the empty slot i, growing the table when it gets too full.
func (x *tokenIndex) place(i int, h uint64, c Counts) bool {
	if x.n >= x.max {
		return false
	}
	x.slots[i] = indexSlot{hashHi: uint32(h >> 32), hashLo: uint32(h)}
	x.slots[i].setCounts(c)
	w, m := x.filterBit(h)
	x.filter[w] |= m
	x.n++
	if float64(x.n) > indexLoad*float64(len(x.slots)) {
		x.grow()
	}
	return true
}

// grow rehashes into a table half as large again.
func (x *tokenIndex) grow() {
	old := x.slots
	x.alloc(len(old) + len(old)/2 + 1)
	for k := range old {
		if h := old[k].hash(); h != 0 {
			i, _ := x.find(h)
			x.slots[i] = old[k]
			w, m := x.filterBit(h)
			x.filter[w] |= m
		}
	}
}

// buildIndex reads every token of the store in tx and keeps those seen in
// at least floor messages. It returns nil if the store has more than limit
// such tokens.
//
// Inserting tokens in file order would put each in a random slot: a cache
// miss per token, most of the build's time. So the tokens are first
// grouped by the top byte of their hash, which is also the order of their
// slots (a slot is the hash scaled to the table), and inserted group by
// group: each group fills a window of the table that stays in cache. The
// grouping reads the file twice, once to count the groups and once to put
// each token in its group, which is cheaper than the misses it saves.
func buildIndex(tx *bolt.Tx, file fileID, limit int, floor uint64) (*tokenIndex, error) {
	b := tx.Bucket(bucketTokens)
	floor = max(floor, 1)
	x := &tokenIndex{file: file, txid: tx.ID(), floor: floor, max: limit, dup: map[uint64]struct{}{}}
	var err error
	if x.totals, err = decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals)); err != nil {
		return nil, err
	}
	keep := func(k, v []byte) (Counts, bool, error) {
		cnt, err := decodeCounts(v)
		if err != nil {
			return Counts{}, false, fmt.Errorf("token %q: %w", k, err)
		}
		return cnt, seenIn(cnt) >= floor, nil
	}
	var start [257]int
	c := b.Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if _, ok, err := keep(k, v); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		if n++; n > limit {
			return nil, nil
		}
		start[x.hashBytes(k)>>56+1]++
	}
	for g := 1; g <= 256; g++ {
		start[g] += start[g-1]
	}
	x.alloc(tableSize(n))
	grouped := make([]indexSlot, start[256])
	for k, v := c.First(); k != nil; k, v = c.Next() {
		cnt, ok, err := keep(k, v)
		if err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		h := x.hashBytes(k)
		g := h >> 56
		if start[g] >= len(grouped) {
			return nil, errors.New("store changed during the index build")
		}
		grouped[start[g]] = indexSlot{hashHi: uint32(h >> 32), hashLo: uint32(h)}
		grouped[start[g]].setCounts(cnt)
		start[g]++
	}
	for k := range grouped {
		if !x.insertHash(grouped[k].hash(), grouped[k].counts()) {
			return nil, nil
		}
	}
	return x, nil
}
