package mtatest

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Bounds for starting and stopping instances. Start-up is normally well
// under a second; the first start on a machine may install packages.
const (
	startTimeout = installTimeout + time.Minute
	stopTimeout  = 30 * time.Second
	startTries   = 3
	pollEvery    = 50 * time.Millisecond
	// logTail bounds how much of an MTA log is copied into a failed test's
	// output.
	logTail = 64 << 10
)

// keepEnv, when set to 1, keeps instance directories after the test for
// inspection (their paths are logged).
const keepEnv = "SLUICE_MTATEST_KEEP"

// instanceMarker marks a directory as an MTA instance directory; the down
// scripts delete only such directories. Same name as MTA_MARKER in
// testdata/mta/common.sh.
const instanceMarker = ".sluice-mta-instance"

// exitPortTaken is the up scripts' exit status when the requested port is
// in use (EXIT_PORT_TAKEN in testdata/mta/common.sh).
const exitPortTaken = 3

// MTA is a private Postfix or Sendmail instance started for one test by
// StartPostfix or StartSendmail. It is stopped and deleted when the test
// ends. Its methods may be called from several goroutines, but those that
// take a testing.TB must follow the usual rule for t.Fatal (only from the
// test's goroutine).
type MTA struct {
	name     string // "postfix" or "sendmail"
	dir      string // instance directory
	addr     string // SMTP host:port
	hostname string // shown in the greeting and Received: headers
	sendmail string // Sendmail only: the binary, for SubmitLocal
}

// Name returns "postfix" or "sendmail".
func (m *MTA) Name() string { return m.name }

// Addr returns the SMTP listener's address, "127.0.0.1:PORT".
func (m *MTA) Addr() string { return m.addr }

// Hostname returns the MTA's own host name, as in its greeting and in the
// Received: header it adds.
func (m *MTA) Hostname() string { return m.hostname }

// Dir returns the instance directory (config in etc/, queue in spool/, log
// in log/maillog, deliveries in mail/inbox/).
func (m *MTA) Dir() string { return m.dir }

// String returns e.g. "postfix at 127.0.0.1:40123".
func (m *MTA) String() string { return m.name + " at " + m.addr }

func (m *MTA) logPath() string     { return filepath.Join(m.dir, "log", "maillog") }
func (m *MTA) maildirPath() string { return filepath.Join(m.dir, "mail", "inbox") }

// Log returns everything the MTA has logged so far. Both MTAs log one line
// per event in syslog format, e.g. Postfix's "... postfix/cleanup[123]:
// 4AbC: milter-reject: END-OF-MESSAGE from ...".
func (m *MTA) Log() string {
	data, err := os.ReadFile(m.logPath())
	if err != nil {
		return fmt.Sprintf("(cannot read %s log: %v)", m.name, err)
	}
	return string(data)
}

// WaitLog waits until the MTA's log contains substr and returns the first
// line containing it. The test fails if that does not happen in time.
func (m *MTA) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for line := range strings.Lines(m.Log()) {
			if strings.Contains(line, substr) {
				return strings.TrimRight(line, "\n")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: no log line containing %q after %v", m, substr, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// queueState classifies the MTA's queue files.
type queueState struct {
	inFlight []string // queue ids that may still be delivered (or bounced)
	held     []string // quarantined queue ids
}

// queue lists the queue. Postfix: one file per message, named by queue id,
// in incoming/ active/ deferred/ (hashed) maildrop/ hold/ corrupt/ ...;
// hold is Postfix's quarantine. Sendmail: qfID (control) and dfID (data)
// in the queue directory while a message is queued, hfID when quarantined,
// tfID while being written, QfID when it could not be processed; the same
// names in clientmqueue/ (listed as "clientmqueue/qfID") for a message the
// submission program has not relayed to the daemon yet.
func (m *MTA) queue() (queueState, error) {
	var q queueState
	spool := filepath.Join(m.dir, "spool")
	switch m.name {
	case "postfix":
		for _, sub := range []string{"maildrop", "incoming", "active", "deferred", "hold", "corrupt"} {
			err := filepath.WalkDir(filepath.Join(spool, sub), func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				switch sub {
				case "hold":
					q.held = append(q.held, d.Name())
				default:
					q.inFlight = append(q.inFlight, sub+"/"+d.Name())
				}
				return nil
			})
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return q, fmt.Errorf("list postfix queue: %w", err)
			}
		}
	case "sendmail":
		entries, err := os.ReadDir(filepath.Join(spool, "mqueue"))
		if err != nil {
			return q, fmt.Errorf("list sendmail queue: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if len(name) < 3 {
				continue
			}
			switch name[:2] {
			case "qf", "tf", "Qf":
				q.inFlight = append(q.inFlight, name)
			case "hf":
				q.held = append(q.held, name[2:])
			}
		}
		// The submission program's queue: a message sendmail(1) could
		// not relay to the daemon waits there (SubmitLocal).
		entries, err = os.ReadDir(filepath.Join(spool, "clientmqueue"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return q, fmt.Errorf("list sendmail queue: %w", err)
		}
		for _, e := range entries {
			if name := e.Name(); len(name) > 2 && (name[:2] == "qf" || name[:2] == "tf" || name[:2] == "Qf") {
				q.inFlight = append(q.inFlight, "clientmqueue/"+name)
			}
		}
	}
	slices.Sort(q.inFlight)
	slices.Sort(q.held)
	return q, nil
}

// WaitIdle waits until the MTA has finished with every message it accepted:
// nothing is left in its queue except quarantined (held) messages. A
// message is in the queue from the moment its DATA is acknowledged, so
// after WaitIdle every accepted message has been delivered, discarded,
// bounced or held. The test fails if the queue does not drain in time
// (e.g. a delivery was deferred); the failure lists what is left.
func (m *MTA) WaitIdle(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		q, err := m.queue()
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if len(q.inFlight) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: queue not idle after %v; still queued: %s", m, timeout, strings.Join(q.inFlight, " "))
		}
		time.Sleep(pollEvery)
	}
}

// Held returns the queue ids of quarantined messages (Postfix's hold
// queue, Sendmail's hf files), sorted.
func (m *MTA) Held(t testing.TB) []string {
	t.Helper()
	q, err := m.queue()
	if err != nil {
		t.Fatalf("%v: %v", m, err)
	}
	return q.held
}

// start runs an up script, retrying with a new port when port was 0 and the
// port turned out to be taken by someone else. args must not contain -d,
// -p or -n; they are added here. The scripts wait for the listener by
// looking at the kernel's socket table rather than by connecting, so the
// milter sees no session before the test's own.
func start(t testing.TB, name string, port int, args []string) *MTA {
	t.Helper()
	sweepOnce.Do(func() { sweepStale(t) })
	owner, err := processIdentity(os.Getpid())
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	dir, err := os.MkdirTemp("/tmp", "sl-"+name[:2]+"-")
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	m := &MTA{name: name, dir: dir}
	// The marker lets the down script delete the directory even if the up
	// script fails before writing it. It names this test process, so that
	// a later run can tell the instance of one that is gone (sweepStale).
	if err := os.WriteFile(filepath.Join(dir, instanceMarker), []byte(owner+"\n"), 0o644); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { m.stop(t) })

	for try := 1; ; try++ {
		p := port
		if p == 0 {
			if p, err = freePort(); err != nil {
				t.Fatalf("start %s: %v", name, err)
			}
		}
		m.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		m.hostname = fmt.Sprintf("%s-%d.sluice.test", name, p)
		up := append([]string{"-d", dir, "-p", strconv.Itoa(p), "-n", m.hostname}, args...)
		_, err := runScript(startTimeout, "mta/"+name+"-up.sh", up...)
		if err == nil {
			return m
		}
		// A port picked a moment ago may have been taken since.
		var exit *exec.ExitError
		if port == 0 && try < startTries && errors.As(err, &exit) && exit.ExitCode() == exitPortTaken {
			t.Logf("start %s: %v; retrying on another port", name, err)
			continue
		}
		t.Fatalf("start %s: %v\n%s log:\n%s", name, err, name, tail(m.Log(), logTail))
	}
}

// stop runs the down script and deletes the instance directory, after
// copying the log into the test output if the test failed.
func (m *MTA) stop(t testing.TB) {
	if t.Failed() {
		t.Logf("%v: log %s:\n%s", m, m.logPath(), tail(m.Log(), logTail))
	}
	args := []string{"-d", m.dir}
	keep := os.Getenv(keepEnv) == "1"
	if keep {
		t.Logf("%v: keeping %s (%s=1)", m, m.dir, keepEnv)
		// A marker without an owner: sweepStale leaves the directory be.
		os.WriteFile(filepath.Join(m.dir, instanceMarker), nil, 0o644)
	} else {
		args = append(args, "-P")
	}
	if _, err := runScript(stopTimeout, "mta/"+m.name+"-down.sh", args...); err != nil {
		t.Errorf("stop %v: %v", m, err)
	}
}

// sweepOnce runs sweepStale before the first instance a test process
// starts.
var sweepOnce sync.Once

// sweepStale stops and deletes the instances of test processes that are
// gone. A test binary that is interrupted (Ctrl-C, a -timeout panic,
// SIGKILL) runs no cleanups, and its MTA daemons, reparented to init,
// would run on with their directories under /tmp. Instances of test
// processes still running (go test runs packages in parallel), kept ones
// (SLUICE_MTATEST_KEEP) and those whose marker names no owner are left be.
func sweepStale(t testing.TB) {
	for _, name := range []string{"postfix", "sendmail"} {
		dirs, _ := filepath.Glob("/tmp/sl-" + name[:2] + "-*")
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, instanceMarker))
			if err != nil {
				continue
			}
			owner := strings.TrimSpace(string(b))
			pid, _, ok := strings.Cut(owner, " ")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(pid)
			if err != nil {
				continue
			}
			if id, err := processIdentity(n); err == nil && id == owner {
				continue
			}
			if _, err := runScript(stopTimeout, "mta/"+name+"-down.sh", "-d", dir, "-P"); err != nil {
				t.Logf("remove %s instance %s of a test process that is gone: %v", name, dir, err)
				continue
			}
			t.Logf("removed %s instance %s of a test process that is gone", name, dir)
		}
	}
}

// processIdentity returns "PID STARTTIME" for a running process: its pid
// and its start time (field 22 of /proc/PID/stat), which tells it from a
// later process that reuses the pid.
func processIdentity(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// Field 2, the command name in parentheses, may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat: %q", pid, b)
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free loopback port: %w", err)
	}
	return port, nil
}

// tail returns at most the last n bytes of s, starting at a line boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[...]\n" + s
}
