package mailbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func collect(t *testing.T, path string, stdin string) []Message {
	t.Helper()
	var got []Message
	err := Walk(path, strings.NewReader(stdin), func(m Message) error {
		got = append(got, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func summary(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		if m.Err != nil {
			fmt.Fprintf(&b, "%s: error %v\n", m.Name, m.Err)
			continue
		}
		fmt.Fprintf(&b, "%s: %q\n", m.Name, m.Data)
	}
	return b.String()
}

// checkSizes checks that the sizes of the messages read add up to the
// file's bytes, n: the progress bar counts them.
func checkSizes(t *testing.T, got []Message, n int) {
	t.Helper()
	var total int64
	for _, m := range got {
		total += m.Size
	}
	if total != int64(n) {
		t.Errorf("sizes add up to %d, the file has %d bytes", total, n)
	}
}

const mboxrd = "From alice@example.org Mon Jan  1 10:00:00 2024\n" +
	"Subject: one\n\n" +
	"first body\n" +
	">From the start, quoted once\n" +
	">>From quoted twice\n" +
	"> From not a from line\n" +
	"From inside a paragraph is not a separator\n" +
	"\n" +
	"From bob@example.org Mon Jan  1 11:00:00 2024\n" +
	"Subject: two\n\n" +
	"second body\n" +
	"\n" +
	"From carol@example.org Mon Jan  1 12:00:00 2024\n" +
	"Subject: three\r\n\r\n" +
	"third body, CRLF\r\n" +
	"\r\n"

func TestMboxrd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "box.mbox")
	write(t, path, mboxrd)
	got := collect(t, path, "")
	want := path + "#1: \"Subject: one\\n\\nfirst body\\nFrom the start, quoted once\\n>From quoted twice\\n> From not a from line\\nFrom inside a paragraph is not a separator\\n\"\n" +
		path + "#2: \"Subject: two\\n\\nsecond body\\n\"\n" +
		path + "#3: \"Subject: three\\r\\n\\r\\nthird body, CRLF\\r\\n\"\n"
	if summary(got) != want {
		t.Errorf("got\n%s\nwant\n%s", summary(got), want)
	}
	checkSizes(t, got, len(mboxrd))
}

// An mbox of one message is named like a plain file, so that a message
// piped in by procmail (with its From_ line) is reported as "-".
func TestMboxOfOne(t *testing.T) {
	got := collect(t, Stdin, "From x@y Mon Jan  1 10:00:00 2024\nSubject: hi\n\nbody\n")
	if summary(got) != "-: \"Subject: hi\\n\\nbody\\n\"\n" {
		t.Errorf("got %s", summary(got))
	}
}

// A message piped with its From_ line by a delivery agent that does not
// quote the body (procmail, pipe(8) without the > flag) is one message,
// even with a paragraph starting "From " after an empty line; a real
// separator after it still starts another message.
func TestUnquotedFromParagraph(t *testing.T) {
	one := "From x@y Mon Jan  1 10:00:00 2024\nSubject: hi\n\nbody\n\nFrom my point of view, fine.\n\nFrom: no one\n"
	got := collect(t, Stdin, one)
	if summary(got) != "-: \"Subject: hi\\n\\nbody\\n\\nFrom my point of view, fine.\\n\\nFrom: no one\\n\"\n" {
		t.Errorf("got %s", summary(got))
	}
	two := one + "\nFrom z@y Tue Jan  2 10:00:00 2024\nSubject: two\n\nx\n"
	if got := collect(t, Stdin, two); len(got) != 2 || !strings.HasPrefix(string(got[1].Data), "Subject: two") {
		t.Errorf("got %s", summary(got))
	}
}

// git format-patch starts each patch with a "From <commit> Mon Sep 17
// 00:00:00 2001" line, a ctime date: a patch pasted into a message, or
// attached as plain 7-bit text, puts one after an empty line of the body.
// Piped by procmail with the message's own From_ line, that must stay one
// message, or classify has no single verdict and exits 0 (spam) for a
// ham. An mbox of patches (git format-patch --stdout) still splits.
func TestPatchInMessage(t *testing.T) {
	patch := "From 3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c Mon Sep 17 00:00:00 2001\n" +
		"From: A <a@example.org>\nSubject: [PATCH] fix\n\n---\n"
	one := "From a@example.org  Sun Dec  6 01:00:00 2026\nSubject: review\n\nthe patch:\n\n" + patch
	if got := collect(t, Stdin, one); len(got) != 1 || !strings.HasSuffix(string(got[0].Data), patch) {
		t.Errorf("got %s", summary(got))
	}
	two := one + "\nFrom b@example.org  Sun Dec  6 02:00:00 2026\nSubject: next\n\ny\n"
	if got := collect(t, Stdin, two); len(got) != 2 || !strings.HasPrefix(string(got[1].Data), "Subject: next") {
		t.Errorf("got %s", summary(got))
	}
	series := patch + "\n" + strings.Replace(patch, "3f2a", "4e3b", 1)
	if got := collect(t, Stdin, series); len(got) != 2 || !strings.HasPrefix(string(got[1].Data), "From: A") {
		t.Errorf("got %s", summary(got))
	}
}

// An mbox whose separators carry another date form than ctime's (as some
// exporters write) is split at every "From " line after an empty line.
func TestMboxOtherDateForm(t *testing.T) {
	box := "From a@example.org Sat, 13 Jan 2024 10:00:00 +0000\nSubject: one\n\nx\n\n" +
		"From b@example.org Sun, 14 Jan 2024 10:00:00 +0000\nSubject: two\n\ny\n"
	if got := collect(t, Stdin, box); len(got) != 2 || !strings.HasPrefix(string(got[1].Data), "Subject: two") {
		t.Errorf("got %s", summary(got))
	}
}

// A maildir of symbolic links to messages (as mairix and mu build) is
// read through the links; a dangling link is reported, and the walk goes
// on.
func TestMaildirOfSymlinks(t *testing.T) {
	root := t.TempDir()
	msg := filepath.Join(root, "store", "1.eml")
	write(t, msg, "Subject: linked\n\nx\n")
	md := filepath.Join(root, "results")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(msg, filepath.Join(md, "cur", "1700000001.M1.host:2,S")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "gone.eml"), filepath.Join(md, "cur", "1700000002.M2.host:2,S")); err != nil {
		t.Fatal(err)
	}
	got := collect(t, md, "")
	if len(got) != 2 {
		t.Fatalf("maildir of links: %d messages\n%s", len(got), summary(got))
	}
	if got[0].Err != nil || string(got[0].Data) != "Subject: linked\n\nx\n" {
		t.Errorf("linked message: %s", summary(got[:1]))
	}
	if got[1].Err == nil {
		t.Errorf("dangling link not reported: %s", summary(got[1:]))
	}
}

func TestPlainFileAndStdin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "msg.eml")
	// A "From " line later in a plain message does not make it an mbox.
	write(t, path, "Subject: x\n\nbody\n\nFrom here on it is text\n")
	if got := summary(collect(t, path, "")); got != path+": \"Subject: x\\n\\nbody\\n\\nFrom here on it is text\\n\"\n" {
		t.Errorf("file: %s", got)
	}
	if got := summary(collect(t, Stdin, "Subject: y\n\nz\n")); got != "-: \"Subject: y\\n\\nz\\n\"\n" {
		t.Errorf("stdin: %s", got)
	}
	if got := collect(t, Stdin, ""); len(got) != 1 || !errors.Is(got[0].Err, ErrEmpty) {
		t.Errorf("empty stdin: %s", summary(got))
	}
}

// A file of no bytes is a mailbox holding no message, named on its own
// or met in a directory (an archive emptied by "sluice archive move"); a
// file of blank lines, standard input with nothing on it, and an empty
// file in a maildir are still reported as empty messages.
func TestEmptyFileHoldsNoMessage(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "archive", "spam.mbox"), "")
	write(t, filepath.Join(dir, "archive", "blank.mbox"), "\n\n")
	write(t, filepath.Join(dir, "archive", "ham.mbox"), "From a@b Mon Jan  1 10:00:00 2024\nSubject: x\n\nbody\n")
	write(t, filepath.Join(dir, "Maildir", "new", "1.host"), "")
	os.MkdirAll(filepath.Join(dir, "Maildir", "cur"), 0o755)
	if got := collect(t, filepath.Join(dir, "archive", "spam.mbox"), ""); len(got) != 0 {
		t.Errorf("empty file named: %s", summary(got))
	}
	got := collect(t, filepath.Join(dir, "archive"), "")
	if len(got) != 2 || !errors.Is(got[0].Err, ErrEmpty) || !strings.HasSuffix(got[0].Name, "blank.mbox") ||
		got[1].Err != nil || !strings.HasSuffix(got[1].Name, "ham.mbox") {
		t.Errorf("directory: %s", summary(got))
	}
	if got := collect(t, filepath.Join(dir, "Maildir"), ""); len(got) != 1 || !errors.Is(got[0].Err, ErrEmpty) {
		t.Errorf("maildir: %s", summary(got))
	}
}

// A message whose first header field is "From : ..." (a blank before the
// colon, which RFC 822 allowed and spam still uses) is one message, that
// field included, as the tokenizer reads it: no mbox whose first line
// is a separator to drop.
func TestFromFieldWithBlankFirst(t *testing.T) {
	msg := "From : a@example.org\nSubject: x\n\nbody\n"
	path := filepath.Join(t.TempDir(), "msg.eml")
	write(t, path, msg)
	for _, p := range []string{path, Stdin} {
		want := fmt.Sprintf("%s: %q\n", p, msg)
		if got := summary(collect(t, p, msg)); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

// An mbox whose writer puts the empty line before each separator rather
// than after each message starts with an empty line. It is still an mbox:
// read as one message, its messages would be learned, or classified, as
// one. A message cannot start with an empty line (its header comes
// first), so nothing else is read otherwise.
func TestMboxAfterEmptyLine(t *testing.T) {
	box := "\nFrom a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nx\n" +
		"\nFrom b@example.org Mon Jan  1 10:00:01 2024\nSubject: two\n\ny\n"
	for _, in := range []string{box, strings.ReplaceAll(box, "\n", "\r\n")} {
		got := readInput(t, []byte(in), 0)
		if len(got) != 2 || got[0].Err != nil || got[1].Err != nil ||
			!strings.HasPrefix(string(got[0].Data), "Subject: one") || !strings.HasPrefix(string(got[1].Data), "Subject: two") {
			t.Errorf("%q: %s", in, summary(got))
		}
		var size int64
		for _, m := range got {
			size += m.Size
		}
		if size != int64(len(in)) {
			t.Errorf("%q: sizes add up to %d", in, size)
		}
	}
}

func TestMaildirAndDirectories(t *testing.T) {
	root := t.TempDir()
	md := filepath.Join(root, "Maildir")
	write(t, filepath.Join(md, "cur", "1700000001.M1.host:2,S"), "Subject: cur1\n\nx\n")
	write(t, filepath.Join(md, "new", "1700000002.M2.host"), "Subject: new1\n\nx\n")
	write(t, filepath.Join(md, "tmp", "1700000003.M3.host"), "Subject: in delivery\n\nx\n")
	write(t, filepath.Join(md, "dovecot-uidlist"), "3 V1 N4\n")
	write(t, filepath.Join(md, ".Spam", "cur", "1700000004.M4.host:2,S"), "Subject: spam folder\n\nx\n")
	write(t, filepath.Join(md, "cur", ".hidden"), "Subject: hidden\n\nx\n")
	// Marked for deletion (IMAP \Deleted), as a client that cannot MOVE
	// leaves the message it moved to another folder.
	write(t, filepath.Join(md, "cur", "1700000005.M5.host:2,ST"), "Subject: moved away\n\nx\n")
	// A T elsewhere in the name is no flag.
	write(t, filepath.Join(md, "cur", "1700000006.M6.hostT:2,S"), "Subject: cur2\n\nx\n")
	write(t, filepath.Join(root, "archive", "2023", "a.eml"), "Subject: a\n\nx\n")
	write(t, filepath.Join(root, "archive", "2023", "box"), "From a@b Mon Jan  1 10:00:00 2024\nSubject: m1\n\nx\n\nFrom a@b Mon Jan  1 10:00:00 2024\nSubject: m2\n\nx\n")
	write(t, filepath.Join(root, "archive", "b.eml"), "Subject: b\n\nx\n")
	write(t, filepath.Join(root, "archive", ".DS_Store"), "junk")
	if err := os.Symlink(root, filepath.Join(root, "archive", "loop")); err != nil {
		t.Fatal(err)
	}

	subjects := func(ms []Message) []string {
		var s []string
		for _, m := range ms {
			if m.Err != nil {
				t.Errorf("%s: %v", m.Name, m.Err)
				continue
			}
			line, _, _ := strings.Cut(string(m.Data), "\n")
			s = append(s, strings.TrimPrefix(line, "Subject: "))
		}
		return s
	}
	// A maildir is new/ then cur/; never tmp/, metadata, or Maildir++
	// subfolders.
	if got := fmt.Sprint(subjects(collect(t, md, ""))); got != "[new1 cur1 cur2]" {
		t.Errorf("maildir: %s", got)
	}
	// A Maildir++ folder is read when named.
	if got := fmt.Sprint(subjects(collect(t, filepath.Join(md, ".Spam"), ""))); got != "[spam folder]" {
		t.Errorf(".Spam: %s", got)
	}
	// A directory is walked in name order; dot entries and symlinked
	// directories are skipped; mbox files inside are split.
	got := collect(t, root, "")
	if s := fmt.Sprint(subjects(got)); s != "[new1 cur1 cur2 a m1 m2 b]" {
		t.Errorf("tree: %s", s)
	}
	if got[4].Name != filepath.Join(root, "archive", "2023", "box")+"#1" {
		t.Errorf("name %q", got[4].Name)
	}

	var sizes int64
	for _, m := range got {
		sizes += m.Size
	}
	if total := TotalSize([]string{root, Stdin}); total != sizes {
		t.Errorf("TotalSize %d, messages read %d bytes", total, sizes)
	}
}

// A maildir copied by a tool that drops empty directories (rsync -m)
// lacks its empty new/ or cur/; its tmp/ still marks it a maildir, whose
// deliveries in progress are not read.
func TestMaildirWithoutEmptySubdir(t *testing.T) {
	for _, kept := range []string{"cur", "new"} {
		md := filepath.Join(t.TempDir(), "Maildir")
		write(t, filepath.Join(md, kept, "1700000001.M1.host:2,S"), "Subject: read\n\nx\n")
		write(t, filepath.Join(md, "tmp", "1700000002.M2.host"), "Subject: in delivery\n\nx\n")
		got := collect(t, md, "")
		if len(got) != 1 || got[0].Err != nil || !strings.HasPrefix(string(got[0].Data), "Subject: read") {
			t.Errorf("maildir with only %s/ and tmp/: %s", kept, summary(got))
		}
		if total, want := TotalSize([]string{md}), int64(len("Subject: read\n\nx\n")); total != want {
			t.Errorf("maildir with only %s/ and tmp/: TotalSize %d, want %d", kept, total, want)
		}
	}
	// A plain directory with a new/ subdirectory (a corpus of new and old
	// messages) is no maildir: all of it is read.
	root := t.TempDir()
	write(t, filepath.Join(root, "new", "a.eml"), "Subject: a\n\nx\n")
	write(t, filepath.Join(root, "old", "b.eml"), "Subject: b\n\nx\n")
	if got := collect(t, root, ""); len(got) != 2 {
		t.Errorf("corpus with new/ and old/: %s", summary(got))
	}
}

// A message of nothing but blank lines (a file cut to a line end, a
// From_ line with nothing after it) is as empty as an empty file: learned,
// it would count as one more message of its class, and all such messages
// have the same digest. With a bound, the rest of a long message decides.
func TestBlankMessageIsEmpty(t *testing.T) {
	for _, in := range []string{"\n", "\r\n\r\n", " \n\t\n", "From x@y  Mon Jan  1 00:00:00 2024\n\n"} {
		for _, bound := range []int{0, 1} {
			got := readInput(t, []byte(in), bound)
			if len(got) != 1 || !errors.Is(got[0].Err, ErrEmpty) || got[0].Data != nil || got[0].Size != int64(len(in)) {
				t.Errorf("%q, bound %d: %s", in, bound, summary(got))
			}
		}
	}
	box := "From x@y  Mon Jan  1 00:00:00 2024\nSubject: a\n\nx\n\n" +
		"From x@y  Mon Jan  1 00:00:01 2024\n\n\n" +
		"From x@y  Mon Jan  1 00:00:02 2024\nSubject: c\n\nx\n"
	if got := readInput(t, []byte(box), 0); len(got) != 3 || got[0].Err != nil || !errors.Is(got[1].Err, ErrEmpty) || got[2].Err != nil {
		t.Errorf("mbox: %s", summary(got))
	}
	// Blank up to the bound, then text: a message, cut short.
	for _, in := range []string{"\n\n\nSubject: late\n", "From x@y  Mon Jan  1 00:00:00 2024\n\n\n\nSubject: late\n"} {
		if got := readInput(t, []byte(in), 1); len(got) != 1 || got[0].Err != nil || !got[0].Truncated {
			t.Errorf("%q: %s", in, summary(got))
		}
	}
}

func TestErrorsAreReportedAndWalkGoesOn(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a.eml"), "Subject: a\n\nx\n")
	write(t, filepath.Join(root, "b.eml"), "\n") // blank: an empty message
	write(t, filepath.Join(root, "c.eml"), "Subject: c\n\nx\n")
	got := collect(t, root, "")
	if len(got) != 3 || got[0].Err != nil || !errors.Is(got[1].Err, ErrEmpty) || got[2].Err != nil {
		t.Errorf("got %s", summary(got))
	}
	missing := filepath.Join(root, "nope")
	got = collect(t, missing, "")
	if len(got) != 1 || got[0].Name != missing || !errors.Is(got[0].Err, fs.ErrNotExist) {
		t.Errorf("missing path: %s", summary(got))
	}
	// An error from the callback stops the walk.
	stop := errors.New("stop")
	n := 0
	err := Walk(root, nil, func(Message) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("walk went on after the callback failed: %v, %d calls", err, n)
	}
}

func TestReadList(t *testing.T) {
	got, err := ReadList(strings.NewReader("a.eml\r\n\n dir with space /\nlast"))
	if err != nil || fmt.Sprintf("%q", got) != `["a.eml" " dir with space /" "last"]` {
		t.Errorf("%q %v", got, err)
	}
	// A list saved by a Windows editor starts with a byte order mark,
	// which is no part of the first path.
	got, err = ReadList(strings.NewReader("\ufeffa.eml\r\nb.eml\r\n"))
	if err != nil || fmt.Sprintf("%q", got) != `["a.eml" "b.eml"]` {
		t.Errorf("list with a byte order mark: %q %v", got, err)
	}
}

// What holds a NUL byte, or a line longer than any path, is no list: a
// message or a compressed file named by mistake, or a device, which was
// read into memory without end ("--list /dev/urandom" took 900 MB in 5
// seconds).
func TestReadListRefusesNoList(t *testing.T) {
	dev := &randomLines{t: t}
	if got, err := ReadList(dev); err == nil || !strings.Contains(err.Error(), "line 2 holds a NUL byte") {
		t.Errorf("endless lines with NUL bytes: %d paths, %v", len(got), err)
	}
	// A message or an mbox: its first line is no file's name.
	for _, text := range []string{
		"From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n",
		"\nReturn-Path: <a@example.org>\nSubject: one\n\nbody\n",
	} {
		if got, err := ReadList(strings.NewReader(text)); err == nil || !strings.Contains(err.Error(), "reads as the start of a message or an mbox") {
			t.Errorf("%q: %q, %v", text, got, err)
		}
	}
	// Paths that look like fields, and a file named like a separator,
	// are paths.
	dir := t.TempDir()
	t.Chdir(dir)
	write(t, filepath.Join(dir, "From a@example.org Mon Jan  1 10:00:00 2024"), "Subject: x\n\ny\n")
	for _, text := range []string{
		"cur/1700000000.M1P2.host:2,S\n",
		"1700000000.M1P2.host:2,S\n",
		"From a@example.org Mon Jan  1 10:00:00 2024\n",
		"a.eml\nReturn-Path: <a@example.org>\n",
	} {
		if _, err := ReadList(strings.NewReader(text)); err != nil {
			t.Errorf("%q: %v", text, err)
		}
	}
	long := "a.eml\n" + strings.Repeat("x", maxListLine+1) + "\nb.eml\n"
	if got, err := ReadList(strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "line 2 is longer than") {
		t.Errorf("a line longer than any path: %d paths, %v", len(got), err)
	}
}

// randomLines is a device of endless lines, a NUL byte in every line
// after the first. It fails the test if read on for long.
type randomLines struct {
	t    *testing.T
	read int
}

func (r *randomLines) Read(p []byte) (int, error) {
	if r.read > 16<<20 {
		r.t.Error("read on for 16 MB")
		return 0, io.EOF
	}
	line := "first.eml\n"
	if r.read > 0 {
		line = "\x8f\x00\x17\n"
	}
	n := copy(p, line)
	r.read += n
	return n, nil
}

// A mail client or IMAP server renames maildir files while a walk reads
// them: a message read moves from new/ to cur/, and a flag change in cur/
// renames "UNIQ:2,S" to "UNIQ:2,RS". Such a message is read once under
// its new name, and one expunged meanwhile is skipped: neither is an
// error, as a nightly train of a live folder would otherwise fail.
func TestMaildirRenamedDuringWalk(t *testing.T) {
	md := filepath.Join(t.TempDir(), "Maildir")
	write(t, filepath.Join(md, "new", "1.M1.host"), "Subject: new1\n\nx\n")
	write(t, filepath.Join(md, "new", "2.M2.host"), "Subject: new2, then read\n\nx\n")
	write(t, filepath.Join(md, "cur", "3.M3.host:2,"), "Subject: cur3\n\nx\n")
	write(t, filepath.Join(md, "cur", "4.M4.host:2,"), "Subject: cur4, then flagged\n\nx\n")
	write(t, filepath.Join(md, "cur", "5.M5.host:2,S"), "Subject: cur5, then expunged\n\nx\n")
	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(md, from), filepath.Join(md, to)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := Walk(md, nil, func(m Message) error {
		if m.Err != nil {
			got = append(got, m.Name+": error "+m.Err.Error())
			return nil
		}
		got = append(got, strings.TrimPrefix(m.Name, md+"/")+": "+strings.SplitN(string(m.Data), "\n", 2)[0])
		switch {
		case strings.HasSuffix(m.Name, "1.M1.host"):
			// After new/ was listed: 2 is read and flagged.
			rename("new/2.M2.host", "cur/2.M2.host:2,S")
		case strings.HasSuffix(m.Name, "3.M3.host:2,"):
			// After cur/ was listed.
			rename("cur/4.M4.host:2,", "cur/4.M4.host:2,RS")
			if err := os.Remove(filepath.Join(md, "cur", "5.M5.host:2,S")); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"new/1.M1.host: Subject: new1",
		"cur/2.M2.host:2,S: Subject: new2, then read",
		"cur/3.M3.host:2,: Subject: cur3",
		"cur/4.M4.host:2,RS: Subject: cur4, then flagged",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A client that flags or expunges a whole folder while it is read leaves
// every message not yet read gone under its listed name. cur/ is read
// again once for all of them, not once a message: reading it per message
// made a walk of 20,000 messages so flagged take 290 s instead of 7 s.
func TestMaildirMassRenameReadsCurOnce(t *testing.T) {
	const n = 200
	for _, expunge := range []bool{false, true} {
		md := filepath.Join(t.TempDir(), "Maildir")
		if err := os.MkdirAll(filepath.Join(md, "new"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			write(t, filepath.Join(md, "cur", fmt.Sprintf("%03d.M%d.host:2,", i, i)), fmt.Sprintf("Subject: %d\n\nx\n", i))
		}
		reads := 0
		readDir = func(dir string) ([]fs.DirEntry, error) {
			reads++
			return os.ReadDir(dir)
		}
		t.Cleanup(func() { readDir = os.ReadDir })
		got := 0
		err := Walk(md, nil, func(m Message) error {
			if m.Err != nil {
				t.Errorf("%s: %v", m.Name, m.Err)
				return nil
			}
			got++
			if got > 1 {
				return nil
			}
			// After cur/ was listed: every other message is marked
			// read, or expunged.
			for i := 1; i < n; i++ {
				from := filepath.Join(md, "cur", fmt.Sprintf("%03d.M%d.host:2,", i, i))
				var err error
				if expunge {
					err = os.Remove(from)
				} else {
					err = os.Rename(from, from+"S")
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := n
		if expunge {
			want = 1
		}
		if got != want {
			t.Errorf("expunge=%v: read %d messages, want %d", expunge, got, want)
		}
		// new/, cur/, and cur/ once more.
		if reads > 3 {
			t.Errorf("expunge=%v: %d directory reads for %d messages, want at most 3", expunge, reads, n)
		}
	}
}
