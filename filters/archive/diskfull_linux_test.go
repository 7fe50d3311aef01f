package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns
// it; it is unmounted when the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	return mountTmpfsOpts(t, "size="+size)
}

// mountTmpfsOpts mounts a tmpfs with the mount options opts (size=,
// nr_inodes=) on a new directory and returns it; it is unmounted when the
// test ends.
func mountTmpfsOpts(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts+",mode=0755"); err != nil {
		needCapability(t, "mounting a tmpfs", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// On a full disk a copy fails with the disk's error, the mbox is left as
// it was (no part of the failed record, no lock), the message is not
// refused by the archive (on_failure decides), and once there is room
// again the next copy is appended after the last good record.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "256k")
	path := filepath.Join(dir, "spam.mbox")
	obs := newObserver()
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, obs)
	ctx := context.Background()

	if _, err := f.Check(ctx, filters.StageEOM, testMessage("A", "first\r\n")); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// A message larger than the file system: the write fails half way.
	big := strings.Repeat("From a line that needs quoting\r\nand one that does not\r\n", 20000)
	v, err := f.Check(ctx, filters.StageEOM, testMessage("B", big))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append of a message larger than the disk: error %v, want ENOSPC", err)
	}
	if v.Action != filters.Continue {
		t.Errorf("the archive's own verdict is %s; a failed copy must leave the outcome to on_failure", v.Action)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("the failed record left %d bytes in the mbox", len(after)-len(before))
	}
	if obs.failed["default"] != 1 {
		t.Errorf("failed copies counted %d, want 1", obs.failed["default"])
	}

	// The disk full to the last block: not even the dot-lock fits.
	filler := filepath.Join(dir, "filler")
	fill, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := 0; i < 1024; i++ { // 4 MB at most, far more than the tmpfs holds
		if _, err := fill.Write(chunk); err != nil {
			break
		}
	}
	fill.Close()
	if _, err := f.Check(ctx, filters.StageEOM, testMessage("C", "small\r\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append to a full disk: error %v, want ENOSPC", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("an append to a full disk changed the mbox by %d bytes", len(after)-len(before))
	}
	os.Remove(filler)

	if _, err := f.Check(ctx, filters.StageEOM, testMessage("D", "From the next one\r\n")); err != nil {
		t.Fatalf("append after room was made: %v", err)
	}
	recs := readRecords(t, path)
	if len(recs) != 2 || headerOf(recs[0].Message, FieldQueueID) != "A" || headerOf(recs[1].Message, FieldQueueID) != "D" {
		t.Fatalf("after the failures the mbox holds %d records, want A and D", len(recs))
	}
	if !bytes.HasSuffix(recs[1].Message, []byte("\nFrom the next one\n")) {
		t.Errorf("record D's body was not read back as written: %q", recs[1].Message)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "spam.mbox" {
			t.Errorf("left behind in the archive directory: %s", e.Name())
		}
	}
}

// A maildir copy on a full disk fails with the disk's error and leaves
// nothing behind: no part of it in tmp/ (where no reader looks, but where
// it would take the space for good) and nothing in new/; the message is
// not refused by the archive (on_failure decides). Also when not even
// the file in tmp/ can be made, for want of inodes. Once there is room
// again, the next copy is delivered.
func TestMaildirDiskFull(t *testing.T) {
	mnt := mountTmpfsOpts(t, "size=256k,nr_inodes=64")
	dir := filepath.Join(mnt, "md")
	obs := newObserver()
	f := newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"default": dir}}, obs)
	ctx := context.Background()
	files := func(sub string) []string {
		t.Helper()
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	check := func(when string, wantNew int, wantFailed int) {
		t.Helper()
		if tmp := files("tmp"); len(tmp) != 0 {
			t.Errorf("%s: left in tmp/: %v", when, tmp)
		}
		if n := len(files("new")); n != wantNew {
			t.Errorf("%s: new/ holds %d files, want %d", when, n, wantNew)
		}
		if obs.failed["default"] != wantFailed {
			t.Errorf("%s: failed copies counted %d, want %d", when, obs.failed["default"], wantFailed)
		}
	}

	if _, err := f.Check(ctx, filters.StageEOM, testMessage("A", "first\r\n")); err != nil {
		t.Fatal(err)
	}

	// A message larger than the file system: the write fails half way.
	big := strings.Repeat("From a line that is not quoted\r\n", 20000)
	v, err := f.Check(ctx, filters.StageEOM, testMessage("B", big))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("copy of a message larger than the disk: error %v, want ENOSPC", err)
	}
	if v.Action != filters.Continue {
		t.Errorf("the archive's own verdict is %s; a failed copy must leave the outcome to on_failure", v.Action)
	}
	check("message larger than the disk", 1, 1)

	// No inode left: the file in tmp/ cannot be created.
	var fillers []string
	for i := 0; i < 128; i++ {
		p := filepath.Join(mnt, "filler"+strconv.Itoa(i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			break
		}
		fillers = append(fillers, p)
	}
	if _, err := f.Check(ctx, filters.StageEOM, testMessage("C", "small\r\n")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("copy with no inode left: error %v, want ENOSPC", err)
	}
	check("no inode left", 1, 2)
	for _, p := range fillers {
		os.Remove(p)
	}

	if _, err := f.Check(ctx, filters.StageEOM, testMessage("D", "From the next one\r\n")); err != nil {
		t.Fatalf("copy after room was made: %v", err)
	}
	check("room made", 2, 2)
	var qids []string
	for _, name := range files("new") {
		b, err := os.ReadFile(filepath.Join(dir, "new", name))
		if err != nil {
			t.Fatal(err)
		}
		_, msg, _ := strings.Cut(string(b), "\n") // Return-Path
		qids = append(qids, headerOf([]byte(msg), FieldQueueID))
		if qid := qids[len(qids)-1]; qid == "D" && !strings.HasSuffix(msg, "\n\nFrom the next one\n") {
			t.Errorf("copy D is not the message sent: %q", msg)
		}
	}
	slices.Sort(qids)
	if !slices.Equal(qids, []string{"A", "D"}) {
		t.Errorf("new/ holds the copies of %v, want A and D", qids)
	}
}
