package classifier

import (
	"strings"
	"testing"
)

// FuzzParseDigest checks the reading of a digest from an export's d lines
// and the command line: only 64 hex digits are taken, and they are the
// digest's String, up to the case of the letters.
func FuzzParseDigest(f *testing.F) {
	d := MessageDigest([]byte("Subject: x\r\n\r\nbody\r\n")).String()
	f.Add(d)
	f.Add(strings.ToUpper(d))
	f.Add(d[:63])
	f.Add(d + "0")
	f.Add(d[:62] + "g0")
	f.Add(" " + d[1:])
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDigest(s)
		if err != nil {
			if got != (Digest{}) {
				t.Fatalf("%q: error %v with digest %s", s, err, got)
			}
			return
		}
		if got.String() != strings.ToLower(s) {
			t.Fatalf("%q parsed as %s", s, got)
		}
		if again, err := ParseDigest(got.String()); err != nil || again != got {
			t.Fatalf("%s does not parse back: %v", got, err)
		}
	})
}
