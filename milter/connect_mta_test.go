package milter_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// connectRecorder keeps the client each connect stage saw.
type connectRecorder struct {
	mu    sync.Mutex
	conns []filters.Conn
}

func (r *connectRecorder) Name() string { return "connect-recorder" }
func (r *connectRecorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageConnect)}
}
func (r *connectRecorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, *m.Conn)
	return filters.Verdict{}, nil
}

// A client of Sendmail over IPv6: Sendmail writes its address in
// SMFIC_CONNECT as "IPv6:::1", and the filters must still get ::1.
func TestSendmailIPv6ClientAddress(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		mtatest.Unavailable(t, "no IPv6 loopback: %v", err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()

	rec := &connectRecorder{}
	spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: rec, Timeout: 5 * time.Second}}, nil))
	mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, ExtraConfig: []string{
		"DAEMON_OPTIONS(`Family=inet6, Port=" + strconv.Itoa(port) + ", Addr=::1, Name=MTA6')dnl",
	}})

	c := mtatest.DialSMTP(t, net.JoinHostPort("::1", strconv.Itoa(port)))
	c.Cmd("EHLO client.example")
	c.Quit()

	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.conns)
		rec.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.conns) == 0 {
		t.Fatal("the connect stage never ran")
	}
	if got := rec.conns[0]; got.Addr != netip.MustParseAddr("::1") {
		t.Errorf("client address %v (family %q, host %q), want ::1", got.Addr, got.Family, got.Hostname)
	}
}
