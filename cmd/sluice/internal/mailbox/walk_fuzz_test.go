package mailbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzWalkMaildir checks the walk of a maildir whose file names a mail
// client or a sender's tools chose: every message in new/ and cur/ is read
// once, new/ first, each in name order; none in tmp/ (deliveries in
// progress), no hidden file, and no message marked for deletion (the T
// flag after ":2,"). A message is known by its unique name, the part
// before the first ":": of files that share one (a message moved from
// new/ to cur/ while the walk ran, or renamed in cur/), the first read is
// the only one.
func FuzzWalkMaildir(f *testing.F) {
	f.Add("1700000000.M1P2.host\n1700000001.M2P3.host:2,S\n1700000002.M3P4.host:2,ST\n.hidden\n")
	f.Add("a:2,T\na:2,t\nb:1,T\nc:2,\nd:2,FRST\ne:2,S:2,T")
	f.Add("x y\n\xff\xfe\n-\n~\n#1")
	f.Fuzz(func(t *testing.T, names string) {
		dir := t.TempDir()
		md := filepath.Join(dir, "Maildir")
		for _, sub := range []string{"new", "cur", "tmp"} {
			if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string][]string{}
		seen := map[string]bool{}
		for i, name := range strings.Split(names, "\n") {
			if name == "" || name == "." || name == ".." || len(name) > 200 || strings.ContainsAny(name, "/\x00") || seen[name] {
				continue
			}
			seen[name] = true
			sub := []string{"new", "cur", "tmp"}[i%3]
			if err := os.WriteFile(filepath.Join(md, sub, name), []byte("Subject: "+sub+"\n\nbody\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if sub == "tmp" || strings.HasPrefix(name, ".") {
				continue
			}
			if _, info, ok := strings.Cut(name, ":2,"); ok && strings.Contains(info, "T") {
				continue
			}
			want[sub] = append(want[sub], filepath.Join(md, sub, name))
		}
		var got []string
		err := Walk(md, nil, func(m Message) error {
			if m.Err != nil {
				t.Fatalf("%s: %v", m.Name, m.Err)
			}
			got = append(got, m.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(want["new"])
		slices.Sort(want["cur"])
		var w []string
		uniq := map[string]bool{}
		for _, p := range slices.Concat(want["new"], want["cur"]) {
			u, _, _ := strings.Cut(filepath.Base(p), ":")
			if !uniq[u] {
				uniq[u] = true
				w = append(w, p)
			}
		}
		if !slices.Equal(got, w) {
			t.Fatalf("walk read\n%q\nwant\n%q", got, w)
		}
	})
}

// FuzzReadList checks the reading of a --list file: the paths it gives
// are its lines without line ends, none empty, with a byte order mark
// only dropped from the first. Up to two CRs go with a line end:
// bufio.ScanLines drops one and ReadList another, so a list converted to
// CRLF twice (CR CR LF) still names its files.
func FuzzReadList(f *testing.F) {
	f.Add("/home/u/Maildir/.Junk\r\n\r\n\ufeff/second\n/with space \n")
	f.Add("\ufeff\ufeff/x\r\r\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, list string) {
		paths, err := ReadList(strings.NewReader(list))
		if err != nil {
			return
		}
		var want []string
		for i, line := range strings.Split(list, "\n") {
			if i == 0 {
				line = strings.TrimPrefix(line, "\ufeff")
			}
			line = strings.TrimSuffix(strings.TrimSuffix(line, "\r"), "\r")
			if line != "" {
				want = append(want, line)
			}
		}
		if !slices.Equal(paths, want) {
			t.Fatalf("%q read as\n%q\nwant\n%q", list, paths, want)
		}
	})
}
