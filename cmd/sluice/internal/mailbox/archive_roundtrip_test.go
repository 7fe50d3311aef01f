package mailbox

import (
	"bytes"
	"context"
	"encoding/json"
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
	bodies := []string{
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

// latin1 turns the Latin-1 text mbox2json.py prints back into bytes.
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}
