package classifier

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseImportMark checks the reading of a store's MetaImporting
// value, which another version or a hand may have written: any value
// gives a mark whose Began is its first field, a process is named only
// with a positive pid and a host, and a mark naming one is read back the
// same from the form thisImporter writes.
func FuzzParseImportMark(f *testing.F) {
	f.Add("")
	f.Add("   ")
	f.Add("2024-05-01T10:00:00Z")
	f.Add(thisImporter())
	f.Add("2024-05-01T10:00:00Z pid=1234 start=5678 host=mx1.example.com")
	f.Add("2024-05-01T10:00:00Z host=mx1 start=0 pid=1")
	f.Add("2024-05-01T10:00:00Z pid=0 start=1 host=mx1")
	f.Add("2024-05-01T10:00:00Z pid=-3 start=1 host=mx1")
	f.Add("2024-05-01T10:00:00Z pid=1 start=1 host=")
	f.Add("2024-05-01T10:00:00Z pid=1 start=x host=mx1")
	f.Add("2024-05-01T10:00:00Z pid=1 start=1 host=mx1 extra=2")
	f.Add("2024-05-01T10:00:00Z pid=99999999999999999999 start=1 host=mx1")
	f.Add("2024-05-01T10:00:00Z\tpid=1\nstart=2\u00a0host=h")
	f.Fuzz(func(t *testing.T, v string) {
		m := parseImportMark(v)
		fields := strings.Fields(v)
		if len(fields) == 0 {
			if m != (ImportMark{}) {
				t.Fatalf("%q: a mark %+v from no fields", v, m)
			}
			return
		}
		if m.Began != fields[0] {
			t.Fatalf("%q: began %q, want the first field", v, m.Began)
		}
		if m.PID == 0 {
			if m.Start != 0 || m.Host != "" {
				t.Fatalf("%q: no pid, but start %d host %q", v, m.Start, m.Host)
			}
		} else {
			if m.PID < 0 || m.Host == "" || strings.ContainsAny(m.Host, " \t\n") {
				t.Fatalf("%q: pid %d host %q", v, m.PID, m.Host)
			}
			again := fmt.Sprintf("%s pid=%d start=%d host=%s", m.Began, m.PID, m.Start, m.Host)
			if g := parseImportMark(again); g != m {
				t.Fatalf("%q: %+v written as %q reads as %+v", v, m, again, g)
			}
		}
		// What errors say of it must not fail either.
		_ = m.Progress()
	})
}
