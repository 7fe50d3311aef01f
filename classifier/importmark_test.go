package classifier_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// An import records who runs it in its mark, so that a store can tell an
// import still running from one that was stopped: the process that ran
// it gone, or a new process with its pid (the start time differs). A
// mark of an earlier version (the time alone), or of another host, cannot
// tell.
func TestImportMarkTellsRunningFromStopped(t *testing.T) {
	ctx := context.Background()
	st, err := classifier.Open(filepath.Join(t.TempDir(), "dst.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// An import whose store failed after a batch, in this process, which
	// still runs: its mark is this process's.
	if _, err := classifier.Import(ctx, &failAfter{Store: st, n: 1}, strings.NewReader(exportOf(t, 25000))); err == nil {
		t.Fatal("the stopped import reported no error")
	}
	self, err := classifier.IncompleteImport(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if _, err := time.Parse(time.RFC3339, self.Began); err != nil || self.PID != os.Getpid() || self.Host != host {
		t.Fatalf("mark of this process's import: %+v, want its start time, pid %d and host %q", self, os.Getpid(), host)
	}

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	at := func(pid int, start uint64, host string) string {
		return fmt.Sprintf("2026-12-05T20:00:00Z pid=%d start=%d host=%s", pid, start, host)
	}
	tests := []struct {
		name, mark string
		state      classifier.ImportState
		progress   []string
	}{
		{"this process", at(self.PID, self.Start, self.Host), classifier.ImportRunning,
			[]string{"still running", fmt.Sprintf("pid %d", self.PID)}},
		{"a process gone", at(gone.Process.Pid, 1, host), classifier.ImportInterrupted,
			[]string{"interrupted", fmt.Sprintf("pid %d", gone.Process.Pid)}},
		{"another process with the pid", at(self.PID, self.Start+1, self.Host), classifier.ImportInterrupted,
			[]string{"interrupted"}},
		{"another host", at(self.PID, self.Start, "elsewhere.example"), classifier.ImportStateUnknown,
			[]string{"still running on elsewhere.example", fmt.Sprintf("pid %d", self.PID), "or was stopped"}},
		{"an earlier version", "2026-12-05T20:00:00Z", classifier.ImportStateUnknown,
			[]string{"still running, or was stopped"}},
		{"unreadable", "2026-12-05T20:00:00Z pid=x host=", classifier.ImportStateUnknown,
			[]string{"still running, or was stopped"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := st.SetMeta(ctx, classifier.MetaImporting, tc.mark); err != nil {
				t.Fatal(err)
			}
			m, err := classifier.IncompleteImport(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if m.Began != "2026-12-05T20:00:00Z" {
				t.Errorf("began %q", m.Began)
			}
			if got := m.State(); got != tc.state {
				t.Errorf("state %v, want %v", got, tc.state)
			}
			for _, want := range tc.progress {
				if !strings.Contains(m.Progress(), want) {
					t.Errorf("progress %q does not say %q", m.Progress(), want)
				}
			}
		})
	}
	if err := st.SetMeta(ctx, classifier.MetaImporting, ""); err != nil {
		t.Fatal(err)
	}
	if m, err := classifier.IncompleteImport(ctx, st); err != nil || m != (classifier.ImportMark{}) {
		t.Errorf("no mark: %+v, %v", m, err)
	}
}
