package archive

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// A Content-Length field tells the readers that trust it where a record's
// body ends: formail -s takes it as given, mutt when a "From " line (or
// the end of the file) is there. The sender's value counts the
// body as sent, CRLF and unquoted, or is whatever the sender chose, and a
// value past the record's end made formail -s take the next records into
// this one. In the archive the field holds the body's length as stored,
// and every reader splits the mbox into the same records.
func TestContentLengthMatchesTheRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cl.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	body := "From the start\r\nline\r\n>From quoted\r\n\r\n"
	msgs := []*filters.Message{
		// Past the end of the mbox: everything after it was one message.
		testMessage("HUGE", "short\r\n", filters.Header{Name: "Subject", Value: "huge"}, filters.Header{Name: "Content-Length", Value: "99999"}),
		// As the sender's MTA counted it, CRLF line ends and no quoting:
		// a few bytes past the record's end, into the next record.
		testMessage("SENT", body, filters.Header{Name: "content-length", Value: strconv.Itoa(len(body))}, filters.Header{Name: "Subject", Value: "sent"}),
		// Two fields, one short, and a body with no final line end.
		testMessage("TWO", "no line end", filters.Header{Name: "Content-Length", Value: "1"}, filters.Header{Name: "CONTENT-LENGTH", Value: " 7 (approx)"}),
		testMessage("HEAD", "", filters.Header{Name: "Content-Length", Value: "40"}),
		testMessage("LAST", "the last one\r\n"),
	}
	msgs[3].Body = nil // a message that is only a header
	for _, m := range msgs {
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}
	recs := readRecords(t, path)
	if len(recs) != len(msgs) {
		t.Fatalf("ReadMbox reads %d records, want %d", len(recs), len(msgs))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// mutt's rule (mbox.c): the body ends Content-Length bytes after the
	// empty line that ends the header, and one line end later comes the
	// next "From " line or the end of the file.
	offset := 0
	for i, r := range recs {
		at := bytes.Index(data[offset:], r.Raw)
		if at < 0 {
			t.Fatalf("record %d not found in the file", i)
		}
		start := offset + at
		offset = start + len(r.Raw)
		hdrEnd := bytes.Index(r.Raw, []byte("\n\n")) + 2
		stored := len(r.Raw) - hdrEnd
		values := HeaderValues(r.Message, "Content-Length")
		if qid := r.QueueID(); qid == "LAST" {
			if len(values) != 0 {
				t.Errorf("record %s: Content-Length %q added", qid, values)
			}
			continue
		}
		if len(values) == 0 {
			t.Errorf("record %s: the Content-Length field is gone", r.QueueID())
		}
		for _, v := range values {
			if v != strconv.Itoa(stored) {
				t.Errorf("record %s: Content-Length %q, the stored body has %d bytes", r.QueueID(), v, stored)
				continue
			}
			next := start + hdrEnd + stored + 1
			if next != len(data) && !bytes.HasPrefix(data[next:], []byte("From ")) {
				t.Errorf("record %s: no \"From \" line where its Content-Length ends", r.QueueID())
			}
		}
	}
	// The field's name keeps the sender's spelling.
	if v := HeaderValues(recs[1].Message, "Content-Length"); len(v) != 1 || !bytes.Contains(recs[1].Message, []byte("\ncontent-length: "+v[0]+"\n")) {
		t.Errorf("record SENT: %q", recs[1].Message)
	}

	formail := needTool(t, "formail", "procmail", "to split the mbox as procmail's tools do")
	out := t.TempDir()
	cmd := exec.Command(formail, "-s", "sh", "-c", `cat > "$0/msg.$FILENO"`, out)
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("formail: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(out, "msg.*"))
	if len(files) != len(recs) {
		t.Fatalf("formail -s splits the mbox into %d messages, want %d", len(files), len(recs))
	}
	for i, p := range files { // FILENO counts up, zero-padded
		b, _ := os.ReadFile(p)
		// The record and the empty line that ends it.
		if want := string(recs[i].Raw) + "\n"; string(b) != want {
			t.Errorf("formail message %d:\n%q\nwant\n%q", i, b, want)
		}
	}
	checkWithPython(t, path, len(recs))
}
