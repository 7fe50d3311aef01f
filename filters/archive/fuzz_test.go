package archive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
)

// mboxSeeds are the seed inputs of FuzzReadMbox and FuzzScanMbox.
var mboxSeeds = []string{
	"From a Thu Jan  1 00:00:00 1970\nSubject: one\n\nbody\n\nFrom b Thu Jan  1 00:00:00 1970\nSubject: two\n\n>From quoted\n>>From twice\n\n",
	"\n\nFrom a Sat Mar  2 10:11:12 2024\r\nX-Sluice-Queue-ID: 4QID\r\nX-Sluice-Envelope-To: ../../etc/passwd@x\r\nX-Sluice-Verdict: reject; action=reject; reason=\"a; action=../x\"\r\n\r\nbody\r\n\n",
	"From a Thu Jan  1 00:00:00 1970\nx\n\n\n\nFrom b\n",
	"From a\nno newline at the end",
	"From a\nx\n\n\n",
	"From a\nFrom b\n\nFrom c\n\n",
	"not an mbox\n",
	"\r\nFrom a\n",
	"",
}

// FuzzReadMbox checks the reading of an mbox that "sluice archive" and
// "sluice train" are given, which may be any file: it is records or an
// error; the records written back one after the other, as RemoveRecords
// writes them, read as the same records; and the path "sluice archive
// move" makes of a record's fields stays one file under the target's
// directory.
func FuzzReadMbox(f *testing.F) {
	for _, s := range mboxSeeds {
		f.Add([]byte(s))
	}
	dir := "/srv/archive"
	cfg := Config{Targets: map[string]string{"reject": filepath.Join(dir, "{action}/{rcpt_local}@{rcpt_domain}/{date}.mbox")}}
	f.Fuzz(func(t *testing.T, in []byte) {
		var recs []Record
		err := ReadMbox(bytes.NewReader(in), func(r Record) error {
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return
		}
		var again bytes.Buffer
		for i, r := range recs {
			if !bytes.HasPrefix(r.Raw, []byte(fromLine)) {
				t.Fatalf("record %d does not start with a From line: %q", i, r.Raw)
			}
			if !bytes.HasSuffix(r.Raw, []byte("\n")) && i != len(recs)-1 {
				t.Fatalf("record %d of %d has no line end: %q", i, len(recs), r.Raw)
			}
			again.Write(r.Raw)
			again.WriteByte('\n')

			path, err := cfg.TargetPath(dir, "reject", r)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if !strings.HasPrefix(path, dir+"/") || filepath.Clean(path) != path || strings.Count(path, "/") != strings.Count(cfg.Targets["reject"], "/") {
				t.Fatalf("record %d goes to %q, outside the target's layout", i, path)
			}
		}
		var recs2 []Record
		if err := ReadMbox(bytes.NewReader(again.Bytes()), func(r Record) error {
			recs2 = append(recs2, r)
			return nil
		}); err != nil {
			t.Fatalf("the records written back do not read: %v", err)
		}
		if len(recs2) != len(recs) {
			t.Fatalf("%d records written back read as %d", len(recs), len(recs2))
		}
		for i := range recs {
			raw, msg := recs[i].Raw, recs[i].Message
			if i == len(recs)-1 && !bytes.HasSuffix(raw, []byte("\n")) {
				// A last line cut short gets its line end written; it is
				// the message's unless it is the From line.
				if bytes.IndexByte(raw, '\n') >= 0 {
					msg = append(msg, '\n')
				}
				raw = append(raw, '\n')
			}
			if !bytes.Equal(recs2[i].Raw, raw) || !bytes.Equal(recs2[i].Message, msg) {
				t.Fatalf("record %d written back reads as\n%q\nnot\n%q", i, recs2[i].Raw, raw)
			}
		}
	})
}

// FuzzArchiveFields checks that the fields the archive writes on top of a
// copy read back as what was recorded: the queue id that "archive move
// --queue-id" and "train --queue-id" select by, the recipient and the
// action that "archive move" files the copy by, whatever the envelope and
// a filter's reason hold.
func FuzzArchiveFields(f *testing.F) {
	f.Add("4QID", "alice@example.org", "bob@lab.example", "bayes", "spam 0.99", uint8(filters.Reject))
	f.Add("", "", "", "", "", uint8(filters.Continue))
	f.Add(" 4Q ID\r\n", "a b\x00@x", "../../etc/x@y", "x; action=accept", "matched \"a; action=accept\"\r\n\r\nFrom x", uint8(filters.Quarantine))
	f.Add("\u00a0q\u2003", "\xff", "bob.lock@x", "f", strings.Repeat("é", 150), uint8(99))
	at := time.Date(2024, 3, 2, 10, 11, 12, 0, time.Local)
	dir := "/srv/archive"
	cfg := Config{Targets: map[string]string{"reject": filepath.Join(dir, "{action}/{rcpt}")}}
	f.Fuzz(func(t *testing.T, qid, from, rcpt, filter, reason string, action uint8) {
		a := filters.Action(action % uint8(len(filters.Actions())))
		e := envelope{from: from, to: []string{rcpt}, queueID: qid, verdict: "reject",
			decided: filters.Decided{Action: a, Filter: filter, Reason: reason}, at: at}
		raw := []byte(fromLineFor(e))
		for _, h := range archiveFields(e) {
			raw = filters.AppendField(raw, h)
		}
		raw = append(raw, "Subject: x\r\n\r\nbody\r\n"...)
		var recs []Record
		if err := ReadMbox(bytes.NewReader(raw), func(r Record) error {
			recs = append(recs, r)
			return nil
		}); err != nil || len(recs) != 1 {
			t.Fatalf("the copy reads as %d records, %v", len(recs), err)
		}
		r := recs[0]
		if got, want := r.QueueID(), strings.TrimSpace(headerSafe(qid, true)); got != want {
			t.Fatalf("queue id %q reads as %q, want %q", qid, got, want)
		}
		if got, ok := r.Time(); !ok || !got.Equal(at) {
			t.Fatalf("time %v reads as %v, %v", at, got, ok)
		}
		path, err := cfg.TargetPath(dir, "reject", r)
		if err != nil {
			t.Fatal(err)
		}
		// The path the copy was written to.
		tmpl, err := parsePathTemplate(cfg.Targets["reject"], dir)
		if err != nil {
			t.Fatal(err)
		}
		m := &filters.Message{Rcpts: []filters.Address{{Addr: rcpt}}, Decided: e.decided}
		if want := (&Filter{}).copies(tmpl, "reject", m, at)[0].path; path != want {
			t.Fatalf("filed under %q, written to %q (verdict field %q, recipient field %q)", path, want,
				HeaderValues(r.Message, FieldVerdict), HeaderValues(r.Message, FieldEnvelopeTo))
		}
	})
}

// FuzzRenderPath checks that no value a sender controls takes a rendered
// path out of its template's layout: a path template, once taken, renders
// with any values to a clean path with the template's components, none
// of them "." or "..", none longer than maxName unless the template's own
// text is, and ends in ".lock" (another mbox's dot-lock) only if the
// template does.
func FuzzRenderPath(f *testing.F) {
	f.Add("/srv/archive/{verdict}/{rcpt}", "..", "a/b", "bob.lock")
	f.Add("{rcpt_local}{rcpt_domain}", ".", "", "\x00")
	f.Add("/srv/{year}/{month}/.{day}", ".hidden", "..", "x")
	f.Add("/srv/{action}.lock", "a", "b", "c")
	f.Add("/srv/{date}/{rcpt}}", "a", "b", "c")
	f.Add("/srv/{rcpt}-{rcpt_local}-{rcpt_domain}.mbox", strings.Repeat("x", 120), strings.Repeat("y", 90), "\u00e9t\u00e9")
	f.Add("/srv/{verdict}"+strings.Repeat("\u00e9", 100)+"{rcpt}.mbox", strings.Repeat("x", 100), strings.Repeat("x", 100), strings.Repeat("x", 100))
	f.Add("/srv/\u00e9{rcpt}\u00e9{rcpt_local}\u00e9{verdict}\u00e9.mbox", strings.Repeat("x", 120), strings.Repeat("y", 90), "z")
	f.Fuzz(func(t *testing.T, tmpl, v1, v2, v3 string) {
		pt, err := parsePathTemplate(tmpl, "/state")
		if err != nil {
			return
		}
		values := map[string]string{}
		for i, p := range Placeholders {
			values[p] = []string{v1, v2, v3}[i%3]
		}
		out := pt.render(values)
		slashes := 0
		for _, p := range pt.parts {
			slashes += strings.Count(p.literal, "/")
		}
		if strings.Count(out, "/") != slashes || filepath.Clean(out) != out || !filepath.IsAbs(out) {
			t.Fatalf("template %q renders to %q", tmpl, out)
		}
		for _, c := range strings.Split(out, "/")[1:] {
			if c == "." || c == ".." || c == "" {
				t.Fatalf("template %q renders to %q", tmpl, out)
			}
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("template %q renders to %q, with a control character", tmpl, out)
		}
		if strings.HasSuffix(out, lockSuffix) && !strings.HasSuffix(pt.parts[len(pt.parts)-1].literal, lockSuffix) {
			t.Fatalf("template %q renders to %q, a dot-lock's name", tmpl, out)
		}
		// Values never make a name longer than maxName; only a
		// template's own long literal text can.
		short := true
		for _, p := range pt.parts {
			for _, seg := range strings.Split(p.literal, "/") {
				short = short && len(seg) <= 50
			}
		}
		if utf8.ValidString(tmpl) && !utf8.ValidString(out) {
			t.Fatalf("template %q renders to %q, not UTF-8", tmpl, out)
		}
		for _, c := range strings.Split(out, "/") {
			if short && len(c) > maxName {
				t.Fatalf("template %q renders to a name of %d bytes: %q", tmpl, len(c), c)
			}
		}
	})
}

// FuzzParseDotLock checks the reading of a dot-lock, which any program
// may have written: a lock taken as sluice's names a process and a size
// it may cut the mbox back to, each said once, and is read back the same
// from the content sluice writes for it.
func FuzzParseDotLock(f *testing.F) {
	f.Add([]byte(lockHolder{pid: 1234, start: 5678, host: "mx1.example.com"}.dotLockContent(4096, noHead)))
	f.Add([]byte(lockHolder{pid: 1234, start: 5678, host: "mx1.example.com"}.dotLockContent(4096, recordHead([]byte("From a\n")))))
	f.Add([]byte("sluice pid=1 start=0 host=h head=- head=-\n"))
	f.Add([]byte("sluice pid=1 start=0 host=h head=-\n"))
	f.Add([]byte("sluice pid=1 start=0 host=h size=0\n"))
	f.Add([]byte("sluice pid=1 pid=2 host=h size=10\n"))
	f.Add([]byte("sluice size=1 size=2 host=h pid=3\n"))
	f.Add([]byte("sluice pid=0 start=0 host=h size=0\n"))
	f.Add([]byte("sluice pid=1 start=0 host=h size=-1\n"))
	f.Add([]byte("sluice pid=1 start=0 host= size=0\n"))
	f.Add([]byte("12345\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, ok := parseDotLock(b)
		if !ok {
			return
		}
		if l.pid <= 0 || l.size < 0 || strings.ContainsFunc(l.host, func(r rune) bool { return strings.ContainsRune(" \t\n\r\v\f", r) }) {
			t.Fatalf("%q taken as %+v", b, l)
		}
		for _, k := range []string{"pid=", "start=", "host=", "size="} {
			if n := strings.Count(" "+strings.Join(strings.Fields(string(b)), " "), " "+k); n != 1 {
				t.Fatalf("%q taken as %+v, with %d %s fields", b, l, n, strings.TrimSuffix(k, "="))
			}
		}
		if n := strings.Count(" "+strings.Join(strings.Fields(string(b)), " "), " head="); n > 1 {
			t.Fatalf("%q taken as %+v, with %d head fields", b, l, n)
		}
		again := lockHolder{pid: l.pid, start: l.start, host: l.host}.dotLockContent(l.size, l.head)
		if l.head == "" {
			// An earlier sluice's lock, without the head.
			again = fmt.Sprintf("sluice pid=%d start=%d host=%s size=%d\n", l.pid, l.start, l.host, l.size)
		}
		if g, ok := parseDotLock([]byte(again)); !ok || g != l {
			t.Fatalf("%q: %+v written as %q reads as %+v, %v", b, l, again, g, ok)
		}
	})
}

// FuzzScanMbox checks that ScanMbox finds the records ReadMbox reads,
// through a buffer small enough that lines come in pieces: each where
// ReadMbox's bytes are, with their SHA-256, and a head that starts the
// record and has its header fields and "From " line.
func FuzzScanMbox(f *testing.F) {
	for _, s := range mboxSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte("From a\n" + strings.Repeat("X-Long: "+strings.Repeat("y", 40)+"\n", 3) + "\n" + strings.Repeat("z", 50) + "\n\nFrom " + strings.Repeat("b", 30) + "\nSubject: s\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var want []Record
		werr := ReadMbox(bytes.NewReader(in), func(r Record) error {
			want = append(want, r)
			return nil
		})
		var got []RecordAt
		gerr := scanMboxAt(bytes.NewReader(in), int64(len(in)), 16, func(r RecordAt) error {
			got = append(got, r)
			return nil
		})
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("ReadMbox: %v; ScanMbox: %v", werr, gerr)
		}
		if werr != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("ScanMbox found %d records, ReadMbox %d", len(got), len(want))
		}
		for i, r := range got {
			raw, err := io.ReadAll(r.Raw())
			if err != nil || !bytes.Equal(raw, want[i].Raw) {
				t.Fatalf("record %d: %q, %v; ReadMbox read %q", i, raw, err, want[i].Raw)
			}
			if r.Sum != sha256.Sum256(raw) {
				t.Errorf("record %d: wrong SHA-256", i)
			}
			if !bytes.HasPrefix(raw, r.Head.Raw) || r.Head.From() != want[i].From() {
				t.Errorf("record %d: head %q is not the start of %q", i, r.Head.Raw, raw)
			}
			for _, name := range []string{"Subject", "X-Long", FieldQueueID} {
				if g, w := HeaderValues(r.Head.Message, name), HeaderValues(want[i].Message, name); !slices.Equal(g, w) {
					t.Errorf("record %d: %s in the head %q, in the record %q", i, name, g, w)
				}
			}
		}
	})
}
