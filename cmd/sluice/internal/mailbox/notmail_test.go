package mailbox

import (
	"bytes"
	"compress/gzip"
	"path/filepath"
	"strings"
	"testing"
)

// gzipped returns text compressed as gzip writes it.
func gzipped(t *testing.T, text string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A compressed mbox (logrotate's spam.mbox.1.gz, a folder archived with
// xz) is refused with the reason, whether named or met in a directory:
// read as it is, its bytes were one message of garbage, learned without a
// word.
func TestCompressedFileIsRefused(t *testing.T) {
	root := t.TempDir()
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: z\n\nbody\n"
	files := map[string]string{
		"a.mbox.gz":  gzipped(t, mbox),
		"b.mbox.xz":  "\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4F\x02\x00!\x01" + mbox,
		"c.mbox.bz2": "BZh91AY&SY\xab\x98\xa8\x00\x00\r",
		"d.mbox.zst": "\x28\xb5\x2f\xfd\x24\x34" + mbox,
		"e.eml":      "Subject: fine\n\nbody\n",
	}
	for name, text := range files {
		write(t, filepath.Join(root, name), text)
	}
	got := collect(t, root, "")
	want := []string{"gzip", "xz", "bzip2", "zstd"}
	if len(got) != 5 {
		t.Fatalf("got %d messages, want 5:\n%s", len(got), summary(got))
	}
	for i, kind := range want {
		if got[i].Err == nil || !strings.Contains(got[i].Err.Error(), kind+"-compressed") {
			t.Errorf("%s: got %v, want a %s-compressed error", got[i].Name, got[i].Err, kind)
		}
	}
	if got[4].Err != nil || string(got[4].Data) != files["e.eml"] {
		t.Errorf("the message beside them: %s", summary(got[4:]))
	}
	// Named, and on standard input, alike.
	named := collect(t, filepath.Join(root, "a.mbox.gz"), "")
	stdin := collect(t, Stdin, files["a.mbox.gz"])
	for _, ms := range [][]Message{named, stdin} {
		if len(ms) != 1 || ms[0].Err == nil || !strings.Contains(ms[0].Err.Error(), "gzip-compressed") {
			t.Errorf("got %s", summary(ms))
		}
	}
}

// A directory of mail folders holds other files too: Thunderbird's
// summary files (Inbox.msf, Mork text) and msgFilterRules.dat beside its
// mboxes, Dovecot's index and subscriptions files in the root of a
// LAYOUT=fs mail directory, the token store itself when it was put there.
// Read as messages, each was learned as one of garbage. A file met in a
// directory whose first line is no header field (nor an mbox or MMDF
// separator) is reported instead; maildir messages and files named on the
// command line are read as before.
func TestDirectoryNonMailReported(t *testing.T) {
	root := t.TempDir()
	msg := "Return-Path: <a@example.org>\nSubject: fine\n\nbody\n"
	mbox := "From a@example.org Mon Jan  1 10:00:00 2024\n" + msg
	files := map[string]string{
		"Inbox":                 mbox,
		"Inbox.msf":             "// <!-- <mdb:mork:z v=\"1.4\"/> -->\n< <(a=c)> // (f=iso-8859-1)\n",
		"Inbox.sbd/Sub":         mbox,
		"Inbox.sbd/Sub.msf":     "// <!-- <mdb:mork:z v=\"1.4\"/> -->\n",
		"bayes.db":              "\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\xed\xda\x0c\xed",
		"dovecot.list.index":    "\x07\x03\x00\x00x\x00\x00\x00",
		"msg.eml":               msg,
		"msgFilterRules.dat":    "version=\"9\"\nlogging=\"no\"\n",
		"new.eml":               "\n\n" + msg,   // blank lines first: still a message
		"saved.eml":             "\ufeff" + msg, // a byte order mark first, as Windows tools write
		"subscriptions":         "V\t2\n\nJunk\nSent\n",
		"Maildir/cur/1.host:2,": "body only, no header: a maildir message all the same\n",
		"Maildir/new/.keep":     "",
		"Maildir/tmp/2.host":    "half",
	}
	for name, text := range files {
		write(t, filepath.Join(root, name), text)
	}
	got := collect(t, root, "")
	var read, refused []string
	for _, m := range got {
		rel, _ := filepath.Rel(root, m.Name)
		switch {
		case m.Err == nil:
			read = append(read, rel)
		case strings.Contains(m.Err.Error(), "no mail message"):
			refused = append(refused, rel)
		default:
			t.Errorf("%s: %v", rel, m.Err)
		}
	}
	wantRead := "Inbox Inbox.sbd/Sub Maildir/cur/1.host:2, msg.eml new.eml saved.eml"
	wantRefused := "Inbox.msf Inbox.sbd/Sub.msf bayes.db dovecot.list.index msgFilterRules.dat subscriptions"
	if strings.Join(read, " ") != wantRead || strings.Join(refused, " ") != wantRefused {
		t.Errorf("read %q\nwant %q\nrefused %q\nwant %q", read, wantRead, refused, wantRefused)
	}
	// Named, such a file is read as one message, as documented.
	named := filepath.Join(root, "msgFilterRules.dat")
	if got := collect(t, named, ""); len(got) != 1 || got[0].Err != nil {
		t.Errorf("named: %s", summary(got))
	}
}

// Files refused (compressed, no mail) still count their bytes in the
// error reported for them, as an mbox's message of nothing but white
// space does in its own: the sizes of a walk add up to TotalSize, and
// "sluice train"'s progress bar ends at 100% rather than short of it.
func TestRefusedFilesCountTheirBytes(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a.mbox.gz"), gzipped(t, "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: z\n\nbody\n"))
	write(t, filepath.Join(root, "b.txt"), "not mail, a note beside the folder\n")
	write(t, filepath.Join(root, "c.mbox"), "From a@example.org Mon Jan  1 10:00:00 2024\nSubject: one\n\nbody\n\n"+
		"From b@example.org Mon Jan  1 10:00:00 2024\n \n\n"+
		"From c@example.org Mon Jan  1 10:00:00 2024\nSubject: three\n\nbody\n")
	write(t, filepath.Join(root, "d.eml"), "Subject: fine\n\nbody\n")
	got := collect(t, root, "")
	errs := 0
	for _, m := range got {
		if m.Err != nil {
			errs++
		}
	}
	if len(got) != 6 || errs != 3 {
		t.Fatalf("got %d messages, %d errors; want 6 and 3:\n%s", len(got), errs, summary(got))
	}
	checkSizes(t, got, int(TotalSize([]string{root})))
}
