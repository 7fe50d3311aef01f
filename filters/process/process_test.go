package process

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// This process is alive under its own start time and not under another;
// a process that has exited is not alive.
func TestAlive(t *testing.T) {
	pid := os.Getpid()
	start, ok := Start(pid)
	if !ok || start == 0 {
		t.Fatalf("start time of this process: %d, %v", start, ok)
	}
	if !Alive(pid, start) || !Alive(pid, 0) {
		t.Error("this process reads as gone")
	}
	if Alive(pid, start+1) {
		t.Error("a reused pid (another start time) reads as the recorded process")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid, 0) {
		t.Errorf("exited process %d reads as alive", cmd.Process.Pid)
	}
}

func TestHost(t *testing.T) {
	if h := Host(); h == "" || strings.ContainsAny(h, " \t\n") {
		t.Errorf("host %q", h)
	}
}
