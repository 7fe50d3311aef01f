package classifier

import "testing"

// FuzzParseDialect checks the reading of a store's dialect mark and an
// export's dialect line: only "", "sluice" and "bogofilter" are taken,
// "" as sluice's.
func FuzzParseDialect(f *testing.F) {
	for _, s := range []string{"", "sluice", "bogofilter", "Sluice", "bogofilter ", " ", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDialect(s)
		if err != nil {
			return
		}
		if want := Dialect(s); s == "" && d != DialectSluice || s != "" && d != want || d != DialectSluice && d != DialectBogofilter {
			t.Fatalf("%q taken as %q", s, d)
		}
	})
}
