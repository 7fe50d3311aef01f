package classifier

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// FuzzDecodeFeatures checks that features read back from a store or an
// import are what EncodeFeatures could have written: sorted, distinct,
// in range, and packed again to the very bytes they came from.
func FuzzDecodeFeatures(f *testing.F) {
	f.Add([]byte{})
	f.Add(EncodeFeatures([]uint32{0}))
	f.Add(EncodeFeatures([]uint32{0, 1, 2, 1<<ngramBits - 1}))
	f.Add(EncodeFeatures(NgramFeatures([]byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"))))
	f.Add([]byte{0x80})       // a cut varint
	f.Add([]byte{5, 0})       // a repeated feature
	f.Add([]byte{0x80, 0x00}) // zero in two bytes
	f.Add([]byte{0x80, 0x80, 0x40})
	f.Add([]byte{5, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeFeatures(b)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with %d features", err, len(got))
			}
			return
		}
		for i, v := range got {
			if v >= 1<<ngramBits {
				t.Fatalf("feature %d out of range: %d", i, v)
			}
			if i > 0 && got[i-1] >= v {
				t.Fatalf("features not sorted and distinct at %d: %d %d", i, got[i-1], v)
			}
		}
		if e := EncodeFeatures(got); !bytes.Equal(e, b) {
			t.Fatalf("decoded %x to %v, which packs to %x", b, got, e)
		}
	})
}

// FuzzNgramModelUnmarshal checks that a model blob read from a store is
// refused unless it is whole, and that one taken re-encodes to the same
// bytes. A whole blob is 4 MB, more than the fuzzer makes: each input is
// tried as it is and as the weights of a blob with a valid header,
// repeated to the length the header asks for.
func FuzzNgramModelUnmarshal(f *testing.F) {
	f.Add([]byte(""), uint32(0), uint32(0))
	f.Add([]byte(ngramMagic), uint32(1), uint32(2))
	f.Add([]byte{0, 0, 0x80, 0x3f}, uint32(10), uint32(20)) // 1.0
	f.Add([]byte{0, 0, 0x80, 0x7f}, uint32(1), uint32(1))   // +Inf
	f.Add([]byte{1, 0, 0xc0, 0xff}, uint32(1), uint32(1))   // NaN
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0x80}, uint32(math.MaxUint32), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, spam, ham uint32) {
		var m NgramModel
		if err := m.UnmarshalBinary(b); err == nil {
			t.Fatalf("a blob of %d bytes was taken", len(b))
		}
		blob := make([]byte, 0, len(ngramMagic)+12+4<<ngramBits)
		blob = append(blob, ngramMagic...)
		blob = binary.LittleEndian.AppendUint32(blob, ngramBits)
		blob = binary.LittleEndian.AppendUint32(blob, spam)
		blob = binary.LittleEndian.AppendUint32(blob, ham)
		if len(b) == 0 {
			b = []byte{0}
		}
		for len(blob) < cap(blob) {
			blob = append(blob, b[:min(len(b), cap(blob)-len(blob))]...)
		}
		finite := true
		for i := len(ngramMagic) + 12; i < len(blob); i += 4 {
			if blob[i+3]&0x7f == 0x7f && blob[i+2]&0x80 != 0 {
				finite = false
				break
			}
		}
		err := m.UnmarshalBinary(blob)
		if !finite {
			if err == nil {
				t.Fatal("a model with a weight not a number was taken")
			}
			return
		}
		if err != nil {
			t.Fatalf("a whole model was refused: %v", err)
		}
		if m.Spam != int(spam) || m.Ham != int(ham) {
			t.Fatalf("counts %d %d, want %d %d", m.Spam, m.Ham, spam, ham)
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, blob) {
			t.Fatalf("the model re-encodes to other bytes: %v", err)
		}
		// Cut short by one byte, or one too long: refused.
		if err := m.UnmarshalBinary(blob[:len(blob)-1]); err == nil {
			t.Fatal("a model cut short was taken")
		}
		if err := m.UnmarshalBinary(append(blob, 0)); err == nil {
			t.Fatal("a model with a byte too many was taken")
		}
	})
}
