package redistest

import (
	"strconv"
	"testing"
)

// A port found free can be taken before redis-server binds it: by a
// server another test package started meanwhile (go test runs packages
// in parallel), or by any connection's local port, as the ports freePort
// picks from lie partly in the kernel's ephemeral range. Start then
// starts on another port, and the server it returns is its own, not the
// one that took the port.
func TestStartOnPortTakenMeanwhile(t *testing.T) {
	other := Start(t)
	picks := []int{other.Port}
	pick := func(t testing.TB) int {
		if len(picks) > 0 {
			p := picks[0]
			picks = picks[1:]
			return p
		}
		return freePort(t)
	}
	s := start(t, pick)
	if s.Port == other.Port {
		t.Fatalf("started on port %d, taken by another server", s.Port)
	}
	if pid := s.Info(t, "server")["process_id"]; pid != strconv.Itoa(s.cmd.Process.Pid) {
		t.Fatalf("the server on %s is process %s, not the one started (%d)", s.Addr, pid, s.cmd.Process.Pid)
	}
}
