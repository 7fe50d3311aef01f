package classifier

import (
	"bytes"
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
