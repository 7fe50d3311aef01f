package mailbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// What the archive filter writes, "sluice train" and "sluice classify"
// (this package), "sluice archive show" and "move" (archive.ReadMbox),
// Python's mailbox module and procmail's formail -s read back as the same
// messages, in the same number, whatever the bodies hold: "From " lines
// quoted at any depth, a separator copied into a body, no final line end,
// bare CRs, NUL and 8-bit bytes, a line of 1 MB, an empty body, a body of
// empty lines, no body at all. The message read back is the one sent with
// LF line ends and a final line end.
func TestArchiveRoundTrip(t *testing.T) {
	bodies := roundTripBodies
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.mbox")
	f, err := archive.New(filters.Env{Name: "archive", StateDir: dir}, archive.Config{Targets: map[string]string{"default": path}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string // the bodies as they must come back
	for i, b := range bodies {
		body := filters.NewBody(4<<20, "")
		body.Write([]byte(b))
		m := &filters.Message{
			QueueID: "Q" + string(rune('A'+i)),
			From:    filters.Address{Addr: "alice@example.org"},
			Rcpts:   []filters.Address{{Addr: "bob@example.com"}},
			Headers: []filters.Header{{Name: "Subject", Value: "round trip"}},
			Body:    body,
		}
		w := strings.ReplaceAll(b, "\r\n", "\n")
		if w != "" && !strings.HasSuffix(w, "\n") {
			w += "\n"
		}
		if i == len(bodies)-2 {
			m.Body, w = nil, "" // a message that is only a header
		}
		want = append(want, w)
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}

	var recs []archive.Record
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := archive.ReadMbox(in, func(r archive.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	var msgs []Message
	rd := Reader{Locks: archive.NewAppender(time.Second, nil)}
	if err := rd.Walk(context.Background(), path, func(m Message) error { msgs = append(msgs, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(bodies) || len(msgs) != len(bodies) {
		t.Fatalf("archive.ReadMbox reads %d records, Walk %d messages, want %d", len(recs), len(msgs), len(bodies))
	}
	for i, r := range recs {
		if msgs[i].Err != nil {
			t.Errorf("message %d: %v", i, msgs[i].Err)
			continue
		}
		if !bytes.Equal(msgs[i].Data, r.Message) {
			t.Errorf("message %d: Walk reads %.300q, archive.ReadMbox %.300q", i, msgs[i].Data, r.Message)
		}
		_, body, ok := bytes.Cut(r.Message, []byte("\n\n"))
		if !ok || string(body) != want[i] {
			t.Errorf("message %d: body %.300q, want %.300q", i, body, want[i])
		}
	}

	mtatest.Require(t, "python3", "procmail")
	py := exec.Command("python3", "../../../../testdata/archive/mbox2json.py", path)
	var stderr bytes.Buffer
	py.Stderr = &stderr
	out, err := py.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var pyMsgs []struct{ From, Message string }
	if err := json.Unmarshal(out, &pyMsgs); err != nil {
		t.Fatal(err)
	}
	if len(pyMsgs) != len(recs) {
		t.Fatalf("python reads %d messages, want %d", len(pyMsgs), len(recs))
	}
	for i, m := range pyMsgs {
		if latin1(m.Message) != string(recs[i].Message) {
			t.Errorf("message %d: python reads %.300q, want %.300q", i, m.Message, recs[i].Message)
		}
	}

	split := t.TempDir()
	fm := exec.Command("formail", "-s", "sh", "-c", `cat > "$0/msg.$FILENO"`, split)
	in.Seek(0, 0)
	fm.Stdin = in
	if b, err := fm.CombinedOutput(); err != nil {
		t.Fatalf("formail: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(split, "msg.*"))
	if len(files) != len(recs) {
		t.Fatalf("formail -s splits the mbox into %d messages, want %d", len(files), len(recs))
	}
	for i, p := range files {
		b, _ := os.ReadFile(p)
		if want := string(recs[i].Raw) + "\n"; string(b) != want {
			t.Errorf("formail message %d: %.300q, want %.300q", i, b, want)
		}
	}
}

// roundTripBodies are message bodies, as the MTA sends them (CRLF line
// ends), that an archive must not mangle.
var roundTripBodies = []string{
	"From the start\r\n>From quoted\r\n>>From twice\r\n>>>From thrice\r\n",
	"para\r\n\r\nFrom alice@example.org Mon Jan  1 10:00:00 2024\r\nSubject: not a message\r\n\r\nFrom x\r\n",
	"no final line end",
	"ends in a bare CR\r",
	"bare\rFrom x\r\n\r\r\n\r\rFrom y\r\n",
	"nul\x00byte\r\n\x00\r\n",
	"8-bit \xe9t\xe9 \xff\xfe\x01\x02\r\nbinary\x1b[31m\r\n",
	strings.Repeat("L", 1<<20) + "\r\n>>From deep\r\n" + strings.Repeat(">", 70000) + "From deeper\r\n",
	"",
	"\r\n",
	"\r\n\r\n\r\n",
	"body then empty lines\r\n\r\n\r\n",
	"the last one\r\n",
}

// latin1 turns the Latin-1 text mbox2json.py prints back into bytes.
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}

// A maildir that the archive filter writes holds each message once, in
// new/, as one file that "sluice train" and "sluice classify" (this
// package) and Python's mailbox.Maildir read back byte for byte: the
// message with LF line ends and a final line end, and nothing quoted or
// unquoted ("From " and ">From " body lines stay as sent), whatever the
// body holds. The file starts with Return-Path, so no reader takes it for
// an mbox whose first message starts at a "From " line of the body.
func TestArchiveMaildirRoundTrip(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "md")
	f, err := archive.New(filters.Env{Name: "archive", StateDir: dir}, archive.Config{Format: archive.FormatMaildir, Targets: map[string]string{"default": md}})
	if err != nil {
		t.Fatal(err)
	}
	bodies := append([]string{"From alice@example.org Mon Jan  1 10:00:00 2024\r\nstarts like an mbox\r\n"}, roundTripBodies...)
	want := map[string]string{} // the files by queue id
	for i, b := range bodies {
		qid := fmt.Sprintf("Q%02d", i)
		body := filters.NewBody(4<<20, "")
		body.Write([]byte(b))
		m := &filters.Message{
			QueueID: qid,
			From:    filters.Address{Addr: "alice@example.org"},
			Rcpts:   []filters.Address{{Addr: "bob@example.com"}},
			Headers: []filters.Header{{Name: "Subject", Value: "round trip"}},
			Body:    body,
		}
		w := strings.ReplaceAll(b, "\r\n", "\n")
		if w != "" && !strings.HasSuffix(w, "\n") {
			w += "\n"
		}
		if i == len(bodies)-2 {
			m.Body, w = nil, "" // a message that is only a header
		}
		want[qid] = "Return-Path: <alice@example.org>\nX-Sluice-Queue-ID: " + qid +
			"\nX-Sluice-Envelope-To: bob@example.com\nX-Sluice-Verdict: default; action=accept\nSubject: round trip\n\n" + w
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}
	if tmps, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(tmps) != 0 {
		t.Errorf("tmp/ holds %d files (%v), want none", len(tmps), err)
	}

	// check compares the messages a reader found with those written.
	check := func(reader string, got map[string]string) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s reads %d messages, want %d", reader, len(got), len(want))
		}
		for qid, w := range want {
			if g, ok := got[qid]; !ok {
				t.Errorf("%s: message %s missing", reader, qid)
			} else if g != w {
				t.Errorf("%s: message %s is %.300q, want %.300q", reader, qid, g, w)
			}
		}
	}
	qidOf := func(msg string) string {
		_, rest, _ := strings.Cut(msg, "\nX-Sluice-Queue-ID: ")
		qid, _, _ := strings.Cut(rest, "\n")
		return qid
	}

	got := map[string]string{}
	rd := Reader{Locks: archive.NewAppender(time.Second, nil)}
	if err := rd.Walk(context.Background(), md, func(m Message) error {
		if m.Err != nil {
			t.Errorf("%s: %v", m.Name, m.Err)
			return nil
		}
		if filepath.Base(filepath.Dir(m.Name)) != "new" {
			t.Errorf("%s: not in new/", m.Name)
		}
		got[qidOf(string(m.Data))] = string(m.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("Walk", got)

	py, err := exec.LookPath("python3")
	if err != nil {
		// Installed as the other dependencies are; under CI=true a
		// python3 that cannot be had fails the test instead of skipping.
		mtatest.Require(t, "python3")
		py = "/usr/bin/python3"
	}
	script := `import json, mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in md.keys():
    msg = md.get_message(key)
    out.append({"subdir": msg.get_subdir(), "message": md.get_bytes(key).decode("latin-1")})
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script, md)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var pyMsgs []struct{ Subdir, Message string }
	if err := json.Unmarshal(out, &pyMsgs); err != nil {
		t.Fatal(err)
	}
	got = map[string]string{}
	for _, m := range pyMsgs {
		if m.Subdir != "new" {
			t.Errorf("python finds a message in %s/, want new/", m.Subdir)
		}
		msg := latin1(m.Message)
		got[qidOf(msg)] = msg
	}
	check("python's mailbox.Maildir", got)
}
