package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// The test binary doubles as a daemon with the shipped and the test
// filters registered when this variable names a config file: the memory
// benchmarks measure a daemon process of its own, not the benchmark's
// client.
const daemonEnv = "SLUICE_TEST_DAEMON_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(daemonEnv); path != "" {
		c := &cli{configPath: path, configSet: true, reg: testRegistry()}
		d := &daemon{cli: c, stderr: os.Stderr}
		sigs := make(chan os.Signal, 1)
		signalNotify(sigs)
		if err := d.run(context.Background(), sigs, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childDaemon is a daemon in its own process.
type childDaemon struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(tb testing.TB, memLimit string) *childDaemon {
	tb.Helper()
	tmp := filepath.Join(tb.TempDir(), "tmp")
	return startChildConfig(tb, func(addr string) string {
		return fmt.Sprintf(`listen:
  - address: inet:%s
metrics:
  listen: ""
log:
  level: warn
body:
  memory_limit: %s
  temp_dir: %s
filters:
  - type: sleep
`, addr, memLimit, tmp)
	})
}

// memKB reads a field such as VmRSS or VmHWM (peak) of the child, in kB.
func (c *childDaemon) memKB(tb testing.TB, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return n
		}
	}
	tb.Fatalf("no %s in /proc status", field)
	return 0
}

// sendOne sends one message whose body is read from body; when hold is
// non-nil the session waits on it before end of message, so that many
// sessions are open at once.
func sendOne(tb testing.TB, addr string, body io.Reader, hold <-chan struct{}) error {
	c := gomilter.NewClientWithOptions("tcp4", addr, gomilter.ClientOptions{
		ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second, ActionMask: gomilter.OptAddHeader,
	})
	s, err := c.Session()
	if err != nil {
		return err
	}
	defer s.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1") },
		func() (*gomilter.Action, error) { return s.Helo("h.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", nil) },
		func() (*gomilter.Action, error) { return s.Rcpt("b@lab.example", nil) },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "memory") },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
	}
	for _, step := range steps {
		if _, err := step(); err != nil {
			return err
		}
	}
	buf := make([]byte, gomilter.MaxBodyChunk)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, err := s.BodyChunk(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if hold != nil {
		<-hold
	}
	_, act, err := s.End()
	if err != nil {
		return err
	}
	if act.Code != gomilter.ActAccept {
		return fmt.Errorf("action %c", act.Code)
	}
	return nil
}

// BenchmarkPeakRSS reports the daemon's peak resident memory with 200
// concurrent sessions of a ~5 KB message, and with one 50 MB message,
// against its idle size. Run: go test -run '^$' -bench PeakRSS ./cmd/sluice
func BenchmarkPeakRSS(b *testing.B) {
	msg := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing.\r\n", 100) // ~5 KB
	b.Run("sessions=200", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			d := startChild(b, "1MiB")
			sendOne(b, d.addr, strings.NewReader(msg), nil)
			idle := d.memKB(b, "VmRSS")
			hold := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 200)
			for j := 0; j < 200; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := sendOne(b, d.addr, strings.NewReader(msg), hold); err != nil {
						errs <- err
					}
				}()
			}
			time.Sleep(2 * time.Second) // all 200 sessions hold a body now
			close(hold)
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			peak := d.memKB(b, "VmHWM")
			b.ReportMetric(float64(idle)/1024, "idle-MB")
			b.ReportMetric(float64(peak)/1024, "peak-MB")
			b.ReportMetric(float64(peak-idle)/1024, "over-idle-MB")
		}
	})
	// The control run keeps the whole body in memory: it shows what the
	// spill to disk saves.
	for _, limit := range []string{"1MiB", "1GiB"} {
		b.Run("message=50MB/memory_limit="+limit, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				d := startChild(b, limit)
				sendOne(b, d.addr, strings.NewReader(msg), nil)
				idle := d.memKB(b, "VmRSS")
				body := io.LimitReader(repeatReader("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"), 50<<20)
				if err := sendOne(b, d.addr, body, nil); err != nil {
					b.Fatal(err)
				}
				peak := d.memKB(b, "VmHWM")
				b.ReportMetric(float64(idle)/1024, "idle-MB")
				b.ReportMetric(float64(peak)/1024, "peak-MB")
				b.ReportMetric(float64(peak-idle)/1024, "over-idle-MB")
			}
		})
	}
}

type repeatReader string

func (r repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], r)
	}
	return n, nil
}
