package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Records are removed ("sluice archive move") from an mbox while the
// daemon appends to it from two goroutines, another sluice process does
// too, and so does a program that takes the dot-lock before it opens the
// mbox (testdata/archive/pyappend.py dotlock, as procmail and Postfix's
// local(8) do). The removal renames a new file over the mbox; every writer
// must append to the file at the path, not to the one replaced: each
// record is there once at the end, except the ones removed.
func TestRemoveRecordsWhileOthersAppend(t *testing.T) {
	py := needTool(t, "python3", "python3", "to append as a dot-lock-first writer")
	path := filepath.Join(t.TempDir(), "busy.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}, LockTimeout: time.Minute}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const initial, removed, perWriter = 40, 20, 25
	for i := 0; i < initial; i++ {
		if _, err := f.Check(ctx, filters.StageEOM, testMessage(fmt.Sprintf("r-%d", i), "old record\r\n")); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter+removed)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cmd := exec.CommandContext(ctx, py, "../../testdata/archive/pyappend.py", path, "dotlock", strconv.Itoa(perWriter), "dotlock")
		if out, err := cmd.CombinedOutput(); err != nil {
			errs <- fmt.Errorf("pyappend.py: %v\n%s", err, out)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), appenderEnv+"="+path+"|p1|"+strconv.Itoa(perWriter))
		if out, err := cmd.CombinedOutput(); err != nil {
			errs <- fmt.Errorf("child writer: %v\n%s", err, out)
		}
	}()
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				time.Sleep(5 * time.Millisecond)
				tag := fmt.Sprintf("g%d-%d", g, i)
				if _, err := f.Check(ctx, filters.StageEOM, testMessage(tag, "line of "+tag+"\r\nFrom inside "+tag+"\r\n")); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	// Another process's appender: its own in-process locks.
	mover := NewAppender(time.Minute, nil)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < removed; i++ {
			time.Sleep(10 * time.Millisecond)
			qid := fmt.Sprintf("r-%d", i)
			n, err := mover.RemoveRecords(ctx, path, func(r RecordAt) bool { return r.Head.QueueID() == qid })
			if err != nil || n != 1 {
				errs <- fmt.Errorf("removing %s: %d records, %v", qid, n, err)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := map[string]string{} // id: body
	for i := removed; i < initial; i++ {
		want[fmt.Sprintf("r-%d", i)] = "old record\n"
	}
	for i := 0; i < perWriter; i++ {
		for g := 0; g < 2; g++ {
			tag := fmt.Sprintf("g%d-%d", g, i)
			want[tag] = "line of " + tag + "\nFrom inside " + tag + "\n"
		}
		want[fmt.Sprintf("p1-%d", i)] = childBody("p1", i, "\n")
		want[fmt.Sprintf("dotlock-%d", i)] = fmt.Sprintf("body of dotlock %d\nFrom inside dotlock %d\nend\n", i, i)
	}
	recs := readRecords(t, path)
	got := map[string]bool{}
	for _, r := range recs {
		id := r.QueueID()
		if id == "" {
			if s := HeaderValues(r.Message, "Subject"); len(s) == 1 {
				id = s[0]
			}
		}
		_, body, _ := bytes.Cut(r.Message, []byte("\n\n"))
		w, ok := want[id]
		switch {
		case !ok:
			t.Errorf("record %q should not be there: %.200q", id, r.Raw)
		case got[id]:
			t.Errorf("record %s twice", id)
		case string(body) != w:
			t.Errorf("record %s: body %.200q, want %.200q", id, body, w)
		}
		got[id] = true
	}
	var missing []string
	for id := range want {
		if !got[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d records lost: %s", len(missing), strings.Join(missing, " "))
	}
	checkWithPython(t, path, len(recs))
}
