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
