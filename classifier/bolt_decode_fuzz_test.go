package classifier

import (
	"encoding/binary"
	"testing"
)

// FuzzBoltDecode checks the decoding of the values a bbolt store keeps,
// as a damaged file may hold them: token counts and totals taken are
// 32-bit numbers that encode and decode back the same; a generation reads
// back the same from what the store writes for it; and nothing panics.
func FuzzBoltDecode(f *testing.F) {
	f.Add(encodeCounts(Counts{Spam: 1, Ham: 2, LastSeen: 20240101}))
	f.Add(encodeTotals(Totals{Spam: 1 << 31, Ham: 7}))
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x10, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := decodeCounts(b); err == nil {
			if g, err := decodeCounts(encodeCounts(c)); err != nil || g != c {
				t.Fatalf("%x: counts %+v encode and decode as %+v, %v", b, c, g, err)
			}
		}
		if tot, err := decodeTotals(b); err == nil {
			if g, err := decodeTotals(encodeTotals(tot)); err != nil || g != tot {
				t.Fatalf("%x: totals %+v encode and decode as %+v, %v", b, tot, g, err)
			}
		}
		if gen, err := decodeGen(b); err == nil && b != nil {
			if g, err := decodeGen(binary.AppendUvarint(nil, gen)); err != nil || g != gen {
				t.Fatalf("%x: generation %d encodes and decodes as %d, %v", b, gen, g, err)
			}
		}
	})
}
