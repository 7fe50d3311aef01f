package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A rotated, compressed mbox beside a folder is reported and counted as an
// error, and the exit status is 1; the message beside it is learned.
func TestTrainCompressedMboxIsAnError(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	folder := filepath.Join(dir, "folder")
	os.MkdirAll(folder, 0o755)
	spam, _ := filepath.Glob(fixture("spam", "*.eml"))
	raw, err := os.ReadFile(spam[0])
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("From a@example.org Mon Jan  1 10:00:00 2024\n"))
	zw.Write(raw)
	zw.Close()
	os.WriteFile(filepath.Join(folder, "spam.mbox.1.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(folder, "msg.eml"), raw, 0o644)
	r := runCLI(t, "", "train", "--db", db, "--spam", folder)
	if r.code != 1 {
		t.Errorf("status %d, want 1: %+v", r.code, r)
	}
	if want := "1 message: 1 learned as spam, 0 already learned, 0 moved from ham to spam, 1 error\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "spam.mbox.1.gz: gzip-compressed, not read") {
		t.Errorf("stderr %q does not name the compressed file", r.stderr)
	}
}
