package main

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// "archive show" escapes a record on a terminal as it copies it, piece
// by piece: however the pieces fall, within a character or between, the
// output is what escapeControls makes of the whole.
func TestEscapeWriterPieces(t *testing.T) {
	alphabet := [][]byte{[]byte("a"), []byte("\n"), []byte("\t"), []byte("\x1b"), []byte("\x7f"),
		[]byte("é"), []byte("€"), []byte("𝄞"), []byte("\u0085"), {0xe2, 0x82}, {0xf0, 0x9d}, {0x80}, {0xff}}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		var text []byte
		for range rng.IntN(12) {
			text = append(text, alphabet[rng.IntN(len(alphabet))]...)
		}
		var out bytes.Buffer
		w := &escapeWriter{w: &out, keep: "\t\n"}
		for rest := text; len(rest) > 0; {
			k := 1 + rng.IntN(min(len(rest), 5))
			if n, err := w.Write(rest[:k]); n != k || err != nil {
				t.Fatalf("Write: %d, %v", n, err)
			}
			rest = rest[k:]
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if want := escapeControls(string(text), "\t\n"); out.String() != want {
			t.Fatalf("%q in pieces: %q, want %q", text, out.String(), want)
		}
	}
}
