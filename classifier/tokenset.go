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
	seed  maphash.Seed
	arena []byte
	ents  []tokenEnt
	slots []int32  // index+1 into ents; 0 is an empty slot; len is a power of two
	keys  []uint64 // scratch for sorted
}

// tokenEnt is one token: its place in the arena and its hash.
type tokenEnt struct {
	off, n uint32
	hash   uint64
}

func newTokenSet() *tokenSet {
	return &tokenSet{seed: maphash.MakeSeed(), slots: make([]int32, 1024)}
}

// reset empties the set, keeping its memory for the next message.
func (s *tokenSet) reset() {
	s.arena = s.arena[:0]
	s.ents = s.ents[:0]
	clear(s.slots)
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
	h := maphash.Bytes(s.seed, tok)
	mask := len(s.slots) - 1
	// Linear probing; the table is at most half full, so the loop ends at
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
	panic("classifier: token set table full") // unreachable: the table is kept half empty
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
	if 2*len(s.ents) >= len(s.slots) {
		s.grow()
	}
	return true
}

// grow doubles the table and reinserts every token.
func (s *tokenSet) grow() {
	s.slots = make([]int32, 2*len(s.slots))
	mask := len(s.slots) - 1
	for k := range s.ents {
		i := int(s.ents[k].hash) & mask
		for s.slots[i] != 0 {
			i = (i + 1) & mask
		}
		s.slots[i] = int32(k + 1)
	}
}

// sorted returns the tokens in byte order, as slices of one string.
//
// Sorting compares packed keys: the first six bytes of a token as a
// big-endian number, with the token's index in the low 16 bits. Sorting
// plain integers is several times faster than comparing strings, and six
// bytes decide most comparisons; runs of tokens that share their first six
// bytes ("rcvd:1...", "url:ww...") are then put in order by their bytes.
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
	slices.Sort(keys)
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
