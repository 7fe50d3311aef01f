package main

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// "archive show" and "archive move" copy a record from file to file
// rather than hold it: the archive may hold 50 MB messages, and each was
// held several times over (read into a buffer grown line by line, again
// unquoted, again as a map key to find it when removing), so that the
// memory of a move was many times the message. What they allocate for a
// 32 MB record stays below 1.5 times its size (counted as the Go runtime
// counts it, all allocations, freed or not).
func TestArchiveLargeRecordMemory(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "spam.mbox"), filepath.Join(dir, "ham.mbox")
	line := strings.Repeat("0123456789abcdef", 4) + "\n"
	big := "From sender@example.org Mon Jan  2 15:04:05 2006\nX-Sluice-Queue-ID: QBIG\nSubject: big\n\n" +
		strings.Repeat(line, (32<<20)/len(line)) + ">From quoted\n"
	small := func(id string) string {
		return "From sender@example.org Mon Jan  2 15:04:05 2006\nX-Sluice-Queue-ID: " + id + "\nSubject: small\n\nhi\n"
	}
	if err := os.WriteFile(src, []byte(small("Q1")+"\n"+big+"\n"+small("Q2")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		root := newRootCmd(testRegistry())
		// The output is summed, not kept: a buffer would hold the
		// record, and count against the command.
		out := sha256.New()
		root.SetOut(out)
		var errb bytes.Buffer
		root.SetErr(&errb)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := run(root, args)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v\n%s", args, err, errb.String())
		}
		if args[1] == "show" && [sha256.Size]byte(out.Sum(nil)) != sha256.Sum256([]byte(big+"\n")) {
			t.Errorf("show printed other bytes than the record")
		}
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(len(big))*3/2; got > limit {
			t.Errorf("%s allocated %d bytes (%.1f times the record); want at most %d", args[1], got, float64(got)/float64(len(big)), limit)
		}
	}
	run("archive", "show", "--queue-id", "QBIG", src)
	run("archive", "move", "--queue-id", "QBIG", "--to", dst, src)
	if got, want := string(mustRead(t, dst)), big+"\n"; got != want {
		t.Errorf("%s after the move: %d bytes, want the record's %d", dst, len(got), len(want))
	}
	if got, want := string(mustRead(t, src)), small("Q1")+"\n"+small("Q2")+"\n"; got != want {
		t.Errorf("%s after the move: %q, want %q", src, got, want)
	}
}
