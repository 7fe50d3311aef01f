package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// The archive shares an mbox with other programs that append to it under
// their own locks, at the same time as the daemon: procmail (a dot-lock,
// then fcntl), Python's mailbox module (fcntl.lockf, then a dot-lock,
// neither waited for), and a writer that takes only one of them, fcntl or
// the dot-lock (see testdata/archive/pyappend.py): sluice takes and
// respects both. (Two writers that take one each do not keep each other
// out, so they run in turn.) Every record comes out whole, none is lost,
// and each reader (ReadMbox, Python, formail -s) finds the same messages.
func TestConcurrentAppendsWithOtherWriters(t *testing.T) {
	for _, only := range []string{"fcntl", "dotlock"} {
		t.Run(only, func(t *testing.T) { testAppendsWithOtherWriters(t, only) })
	}
}

func testAppendsWithOtherWriters(t *testing.T, only string) {
	py := needTool(t, "python3", "python3", "to append as Python's mailbox module does")
	procmail := needTool(t, "procmail", "procmail", "to append as procmail does")
	formail := needTool(t, "formail", "procmail", "to split the mbox as procmail's tools do")
	dir := t.TempDir()
	path := filepath.Join(dir, "shared.mbox")
	const perWriter = 25
	// procmail sleeps LOCKSLEEP seconds (8 by default) when it finds the
	// dot-lock taken.
	rc := filepath.Join(dir, "procmailrc")
	if err := os.WriteFile(rc, []byte("LOCKSLEEP=1\n:0:\n"+path+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": path}, LockTimeout: time.Minute}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 5*perWriter)
	for _, mode := range []string{"mailbox", only} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, py, "../../testdata/archive/pyappend.py", path, mode, fmt.Sprint(perWriter), mode)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("pyappend.py %s: %v\n%s", mode, err, out)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < perWriter; i++ {
			cmd := exec.CommandContext(ctx, procmail, "-m", rc)
			cmd.Stdin = strings.NewReader(fmt.Sprintf("From pm@example.org Thu Jan  1 00:00:00 1970\nSubject: pm-%d\n\nbody of pm %d\nFrom inside pm %d\nend\n", i, i, i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("procmail: %v\n%s", err, out)
				return
			}
		}
	}()
	// Python starts slowly: the archive's appends begin once the
	// one-lock writer has appended, and are spread out in time like its.
	started := time.Now()
	for {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("Subject: "+only+"-0\n")) {
			break
		}
		if time.Since(started) > time.Minute {
			t.Fatalf("the %s writer has not appended in a minute", only)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				time.Sleep(10 * time.Millisecond)
				tag := fmt.Sprintf("g%d-%d", g, i)
				body := strings.Repeat("line of "+tag+"\r\n", 1+(i%4/3)*9000) + "From inside " + tag + "\r\n"
				if _, err := f.Check(ctx, filters.StageEOM, testMessage(tag, body)); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	recs := readRecords(t, path)
	if len(recs) != 5*perWriter {
		t.Fatalf("%d records, want %d", len(recs), 5*perWriter)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		var id, want string
		_, body, _ := bytes.Cut(r.Message, []byte("\n\n"))
		if qid := r.QueueID(); qid != "" {
			id = qid
			i := 0
			fmt.Sscanf(qid[strings.IndexByte(qid, '-')+1:], "%d", &i)
			want = strings.Repeat("line of "+qid+"\n", 1+(i%4/3)*9000) + "From inside " + qid + "\n"
		} else {
			subject := HeaderValues(r.Message, "Subject")
			if len(subject) != 1 {
				t.Errorf("record without a queue id or one subject: %q", r.Raw)
				continue
			}
			id = subject[0]
			tag, n, _ := strings.Cut(id, "-")
			want = fmt.Sprintf("body of %s %s\nFrom inside %s %s\nend\n", tag, n, tag, n)
		}
		if seen[id] {
			t.Errorf("record %s twice", id)
		}
		seen[id] = true
		if string(body) != want {
			t.Errorf("record %s: body %.200q, want %.200q", id, body, want)
		}
	}
	checkWithPython(t, path, len(recs))

	cmd := exec.Command(formail, "-s", "sh", "-c", "cat >/dev/null; echo")
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd.Stdin = in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("formail: %v", err)
	}
	if n := bytes.Count(out, []byte("\n")); n != len(recs) {
		t.Errorf("formail -s splits the mbox into %d messages, want %d", n, len(recs))
	}
}

// archiveReaderCases archives, into the mbox at path, the messages that
// the tests of other readers read back: "From " lines in the body,
// quoted once and twice, no final line end, trailing blank lines, an
// empty body, a sender's own Content-Length field, an empty and a quoted
// sender, a long run of '>' before "From". It returns the records as
// stored. The queue IDs start with prefix.
func archiveReaderCases(t *testing.T, path, prefix string) []Record {
	t.Helper()
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	msgs := []*filters.Message{
		testMessage(prefix+"0", "Hello\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\nend without a line end"),
		testMessage(prefix+"1", "trailing empty lines\r\n\r\n\r\n"),
		testMessage(prefix+"2", ""),
		testMessage(prefix+"3", "From x\r\n\r\nFrom y\r\nlast\r\n", filters.Header{Name: "Subject", Value: "sender's Content-Length"},
			filters.Header{Name: "Content-Length", Value: "5"}),
		testMessage(prefix+"4", strings.Repeat(">", 5000)+"From a run\r\n"),
	}
	msgs[2].From = filters.Address{Addr: ""}
	msgs[3].From = filters.Address{Addr: "\"john doe\"@example.org"}
	for _, m := range msgs {
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}
	recs := readRecords(t, path)
	if len(recs) != len(msgs) {
		t.Fatalf("ReadMbox reads %d records, want %d", len(recs), len(msgs))
	}
	return recs
}

// mutt, a reader that shares no code with the others, splits the archive
// into the messages sluice wrote, each one byte for byte as stored: the
// "From " line (sender, asctime date) is one mutt's is_from() accepts, a
// rewritten Content-Length field points where mutt checks for the next
// "From " line, and the blank line between records is no part of a
// message. mutt does not take a '>' off a quoted "From " line (it reads
// mboxo, as Python's mailbox module and formail do): what it pipes on is
// the record as stored, quoting and all.
func TestMuttReadsTheArchive(t *testing.T) {
	mutt := needTool(t, "mutt", "mutt", "to read the mbox as mutt does")
	script := needTool(t, "script", "bsdutils", "to give mutt a terminal")
	dir := t.TempDir()
	path := filepath.Join(dir, "a.mbox")
	recs := archiveReaderCases(t, path, "M")

	out := filepath.Join(dir, "out")
	const sep = "=MUTT-SEP=\n"
	rc := filepath.Join(dir, "muttrc")
	// With folder set, mutt does not ask whether to create ~/Mail, a
	// question that would take the keys pushed below.
	if err := os.WriteFile(rc, []byte(`set folder=`+dir+`
set wait_key=no
set pipe_decode=no
set pipe_split=yes
set pipe_sep="=MUTT-SEP=\n"
set sort=mailbox-order
set quit=yes
push "<tag-pattern>~A<enter><tag-prefix><pipe-message>cat >> `+out+`<enter><quit>"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qc", mutt+" -n -F "+rc+" -R -f "+path, "/dev/null")
	cmd.Env = append(os.Environ(), "HOME="+dir, "TERM=xterm", "MAIL="+path)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mutt: %v\n%q", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("mutt piped nothing: %v", err)
	}
	got := strings.SplitAfter(string(b), sep)
	if got[len(got)-1] == "" {
		got = got[:len(got)-1]
	}
	if len(got) != len(recs) {
		t.Fatalf("mutt reads %d messages, want %d:\n%q", len(got), len(recs), b)
	}
	for i, r := range recs {
		if want := string(r.Raw) + sep; got[i] != want {
			t.Errorf("message %d as mutt reads it:\n%.300q\nwant the record as stored:\n%.300q", i, got[i], want)
		}
	}
	if !strings.Contains(got[0], "\n>From the start\n>>From quoted\n>>>From twice\n") {
		t.Errorf("mutt's copy of message 0 does not keep the quoting: %q", got[0])
	}
}
