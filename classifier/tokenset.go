package classifier

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"
)

// tokenSet collects the distinct tokens of one message. Tokens are copied
// into one byte arena and indexed by an open-addressing hash table, so
// adding a token allocates nothing (a map[string]struct{} would allocate a
// string per new token and rehash on growth), and the finished set becomes
// one string that the sorted tokens are slices of.
type tokenSet struct {
	arena []byte
	ents  []tokenEnt
	// slots are the hash table: index+1 into ents, 0 an empty slot. Its
	// len is a power of two, at least minSlots, grown as the message
	// needs; its capacity is kept from message to message (see reset).
	slots []int32
	keys  []uint64 // scratch for sorted
	tmp   []uint64 // scratch for radixSort
}

// tokenSeed seeds the hash of a token (tokenHash) in every table of tokens:
// a message's token set, and the in-memory counts of a store (tokenIndex,
// redisCache). One seed for all of them lets a lookup reuse the hashes the
// tokenizer computed while collecting a message's tokens, rather than hash
// every token again. It is chosen at random when the process starts, as
// each table's own seed was: a sender still cannot pick tokens whose
// hashes collide. It is never written after that.
var tokenSeed = maphash.MakeSeed()

// tokenHash returns the hash of a token under tokenSeed, never 0: the
// tables of a store mark an empty slot with 0, so a hash of 0 is taken as
// 1. maphash.Bytes and maphash.String hash the same bytes alike.
func tokenHash(tok []byte) uint64 {
	return max(maphash.Bytes(tokenSeed, tok), 1)
}

// tokenHashString is tokenHash of a string.
func tokenHashString(tok string) uint64 {
	return max(maphash.String(tokenSeed, tok), 1)
}

// tokenEnt is one token: its place in the arena and its hash (tokenHash).
type tokenEnt struct {
	off, n uint32
	hash   uint64
}

func newTokenSet() *tokenSet {
	return &tokenSet{slots: make([]int32, minSlots)}
}

// minSlots is the size of the hash table at the start of each message, and
// 1/maxLoad the most of it that tokens fill before it doubles. Most tokens
// are added more than once, and most of the rest are new; at a quarter
// full, either way a probe mostly ends at the first slot, without
// comparing another token. The table stays small enough for the CPU's
// first-level cache for most messages (8 kB up to 512 tokens; the median
// message of the SpamAssassin corpus has about 320), and clearing it
// costs little.
const (
	minSlots = 2048
	maxLoad  = 4
)

// reset empties the set, keeping its memory for the next message.
//
// The table starts each message at minSlots again, in the memory of the
// largest table so far: had it kept the size one large message grew it
// to (up to 256 kB at MaxTokens), every later message would spread its
// few tokens over all of it, out of the CPU's first-level cache, and pay
// for clearing all of it.
func (s *tokenSet) reset() {
	clear(s.slots)
	s.slots = s.slots[:minSlots]
	s.arena = s.arena[:0]
	s.ents = s.ents[:0]
}

func (s *tokenSet) len() int { return len(s.ents) }

// has reports whether tok is in the set.
func (s *tokenSet) has(tok []byte) bool {
	_, _, found := s.find(tok)
	return found
}

// find returns the slot where tok is or would go, its hash, and whether it
// is there.
func (s *tokenSet) find(tok []byte) (int, uint64, bool) {
	h := tokenHash(tok)
	mask := len(s.slots) - 1
	// Linear probing; the table is at most a quarter full, so the loop ends at
	// an empty slot within a few steps on average and within len(slots)
	// at worst.
	for i, n := int(h)&mask, 0; n < len(s.slots); i, n = (i+1)&mask, n+1 {
		e := s.slots[i]
		if e == 0 {
			return i, h, false
		}
		ent := &s.ents[e-1]
		if ent.hash == h && bytes.Equal(s.arena[ent.off:ent.off+ent.n], tok) {
			return i, h, true
		}
	}
	panic("classifier: token set table full") // unreachable: the table is kept mostly empty
}

// add inserts tok (copying it) and reports whether it was new.
func (s *tokenSet) add(tok []byte) bool {
	slot, h, found := s.find(tok)
	if found {
		return false
	}
	s.ents = append(s.ents, tokenEnt{off: uint32(len(s.arena)), n: uint32(len(tok)), hash: h})
	s.arena = append(s.arena, tok...)
	s.slots[slot] = int32(len(s.ents))
	if maxLoad*len(s.ents) >= len(s.slots) {
		s.grow()
	}
	return true
}

// grow doubles the table and reinserts every token.
func (s *tokenSet) grow() {
	if n := 2 * len(s.slots); n <= cap(s.slots) {
		// The memory of an earlier, larger message's table.
		s.slots = s.slots[:n]
		clear(s.slots)
	} else {
		s.slots = make([]int32, n)
	}
	mask := len(s.slots) - 1
	for k := range s.ents {
		i := int(s.ents[k].hash) & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = int32(k + 1)
	}
}

// appendUnsorted appends the tokens to dst in the order they were first
// added, as slices of one string, and returns the extended slice.
func (s *tokenSet) appendUnsorted(dst []string) []string {
	all := string(s.arena)
	for _, e := range s.ents {
		dst = append(dst, all[e.off:e.off+e.n])
	}
	return dst
}

// appendHashes appends the hashes (tokenHash) of the tokens to dst in the
// order of appendUnsorted, and returns the extended slice.
func (s *tokenSet) appendHashes(dst []uint64) []uint64 {
	for _, e := range s.ents {
		dst = append(dst, e.hash)
	}
	return dst
}

// sorted returns the tokens in byte order, as slices of one string.
//
// Sorting orders packed keys: the first six bytes of a token as a
// big-endian number, with the token's index in the low 16 bits, by a radix
// sort on those six bytes, which costs a few passes over the keys where
// comparing strings costs n log n calls. Six bytes decide the order of most
// tokens; runs of tokens that share their first six bytes ("rcvd:1...",
// "url:ww...") are then put in order by their bytes.
func (s *tokenSet) sorted() []string {
	all := string(s.arena)
	out := make([]string, len(s.ents))
	if len(s.ents) > 1<<16 {
		// More tokens than 16 bits can index: compare strings.
		for i, e := range s.ents {
			out[i] = all[e.off : e.off+e.n]
		}
		slices.Sort(out)
		return out
	}
	keys := s.keys[:0]
	for k, e := range s.ents {
		var p [8]byte
		copy(p[:6], s.arena[e.off:e.off+e.n])
		keys = append(keys, binary.BigEndian.Uint64(p[:])|uint64(k))
	}
	keys, s.tmp = radixSort48(keys, s.tmp)
	for i, k := range keys {
		e := s.ents[k&0xffff]
		out[i] = all[e.off : e.off+e.n]
	}
	// Order the runs that share a prefix.
	const prefixMask = ^uint64(0xffff)
	for i := 0; i < len(keys); {
		j := i + 1
		for j < len(keys) && keys[j]&prefixMask == keys[i]&prefixMask {
			j++
		}
		if j-i > 1 {
			slices.Sort(out[i:j])
		}
		i = j
	}
	s.keys = keys
	return out
}

// radixSort48 sorts keys by their top 48 bits, least significant byte
// first, one counting pass per byte; a byte that is the same in every key
// costs no pass. tmp is scratch space; both slices are returned for reuse,
// the sorted one first.
func radixSort48(keys, tmp []uint64) ([]uint64, []uint64) {
	if len(keys) < 64 {
		slices.Sort(keys)
		return keys, tmp
	}
	tmp = slices.Grow(tmp[:0], len(keys))[:len(keys)]
	var count [256]int
	for shift := 16; shift < 64; shift += 8 {
		clear(count[:])
		for _, k := range keys {
			count[byte(k>>shift)]++
		}
		if count[byte(keys[0]>>shift)] == len(keys) {
			continue
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, k := range keys {
			d := byte(k >> shift)
			tmp[count[d]] = k
			count[d]++
		}
		keys, tmp = tmp, keys
	}
	return keys, tmp
}
