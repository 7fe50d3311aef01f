package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/asynclog"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// stderrWriter is the standard error of an in-process `sluice serve`:
// each Write waits until open is closed (for ever, as a pipe nobody
// reads, if it never is), then for delay, and records what it got.
type stderrWriter struct {
	open  chan struct{}
	delay time.Duration
	mu    sync.Mutex
	buf   bytes.Buffer
}

func (w *stderrWriter) Write(p []byte) (int, error) {
	<-w.open
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stderrWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// serveCLI runs `sluice serve` as main does, in-process, with stderr as
// its standard error, on a unix socket with the script filter and
// log.level debug (several lines per message). It waits until the
// socket exists and returns its address, a func that stops the daemon as
// a SIGTERM does, and the channel its exit comes on.
func serveCLI(t *testing.T, stderr *stderrWriter) (net.Addr, context.CancelFunc, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	path := filepath.Join(dir, "sluice.yml")
	cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: \"\"\nlog:\n  level: debug\nshutdown_timeout: 1s\nfilters:\n  - type: script\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd(filtertest.Registry())
	root.SetOut(&bytes.Buffer{})
	root.SetErr(stderr)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	root.SetContext(ctx)
	done := make(chan error, 1)
	go func() { done <- run(root, []string{"--config", path, "serve"}) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The socket file is there from bind(2), a moment before
		// listen(2): until then a client is refused. So wait until one
		// gets through.
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended before it listened: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("serve did not listen in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &net.UnixAddr{Net: "unix", Name: sock}, cancel, done
}

// A standard error nobody reads does not hold up the mail: `sluice serve`
// filters a message while every write to it blocks (a synchronous log
// would block the session at its first line, and the client's 5-second
// timeout would fail it), and it exits on a stop within its bounds
// (shutdown_timeout 1s, then 2s for the log queue), its log unwritten.
func TestServeLogStall(t *testing.T) {
	stderr := &stderrWriter{open: make(chan struct{})}
	// Let the writing goroutine, and a daemon stuck on its log if the
	// test fails, end with the test.
	defer close(stderr.open)
	addr, stop, done := serveCLI(t, stderr)
	if name, _ := addedHeaderAt(t, addr); name == "" {
		t.Error("the script filter added no header")
	}
	stopAndWait(t, stop, done, "serve did not exit with its standard error blocked")
}

// stopAndWait stops a daemon serveCLI started and waits (15 s at most)
// for it to return, without an error.
func stopAndWait(t *testing.T, stop context.CancelFunc, done <-chan error, hung string) {
	t.Helper()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal(hung)
	}
}

// With a standard error that works, if slowly, every line is written
// before `sluice serve` returns, the last "sluice stopped", each whole.
func TestServeLogFlushedAtExit(t *testing.T) {
	stderr := &stderrWriter{open: make(chan struct{}), delay: 20 * time.Millisecond}
	close(stderr.open)
	addr, stop, done := serveCLI(t, stderr)
	addedHeaderAt(t, addr)
	stopAndWait(t, stop, done, "serve did not exit")
	out := stderr.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !strings.HasSuffix(out, "\n") || !strings.Contains(lines[len(lines)-1], `msg="sluice stopped"`) {
		t.Fatalf("the log does not end with the sluice stopped line:\n%s", out)
	}
	for _, want := range []string{`msg="sluice started"`, `msg=stopping`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log has no %s line:\n%s", want, out)
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "time=") {
			t.Errorf("line %q is not a whole log record", l)
		}
	}
}

// Lines the queue has no room for are counted in
// sluice_log_lines_dropped_total, and once standard error takes lines
// again, a WARN record in the configured format says how many went.
func TestServeLogDroppedCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yml")
	cfg := "listen:\n  - address: unix:" + filepath.Join(dir, "s.sock") + "\nmetrics:\n  listen: 127.0.0.1:0\nlog:\n  format: json\nfilters:\n  - type: script\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &stderrWriter{open: make(chan struct{})}
	opened := false
	defer func() {
		if !opened {
			close(stderr.open)
		}
	}()
	d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: stderr, asyncLog: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyCh, done := make(chan ready, 1), make(chan error, 1)
	go func() { done <- d.run(ctx, make(chan os.Signal), func(r ready) { readyCh <- r }) }()
	var info ready
	select {
	case info = <-readyCh:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	td := &testDaemon{info: info}
	if got := unlabelledMetric(t, td.metrics(t), "sluice_log_lines_dropped_total"); got != 0 {
		t.Fatalf("sluice_log_lines_dropped_total = %v at start, want 0", got)
	}
	// Lines of some 80 bytes, more than twice what the queue holds.
	const n = 2 * asynclog.DefaultMaxBytes / 60
	for i := range n {
		d.logger.Info("filler", "i", i)
	}
	dropped := unlabelledMetric(t, td.metrics(t), "sluice_log_lines_dropped_total")
	if dropped < n/3 || dropped > n {
		t.Fatalf("sluice_log_lines_dropped_total = %v after %d lines into a 1 MiB queue", dropped, n)
	}
	close(stderr.open)
	opened = true
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !d.logQueue.Close(10 * time.Second) {
		t.Fatal("the log queue was not written")
	}
	// The lines of the shutdown may be dropped too, or some of them
	// written between two gaps: the records add up to the counter.
	var total float64
	records := 0
	for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
		var rec struct {
			Level, Msg string
			Dropped    float64
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q is not a JSON record: %v", l, err)
		}
		if strings.HasPrefix(rec.Msg, "log lines dropped") {
			if rec.Level != "WARN" || rec.Dropped < 1 {
				t.Errorf("record %+v, want level WARN and dropped > 0", rec)
			}
			total += rec.Dropped
			records++
		}
	}
	if want := counterValue(t, d, "sluice_log_lines_dropped_total"); records == 0 || total != want {
		t.Errorf("%d records of dropped lines, for %v lines; sluice_log_lines_dropped_total is %v", records, total, want)
	}
}

// unlabelledMetric returns the value of the series name, without labels,
// in a scrape.
func unlabelledMetric(t *testing.T, scrape, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in the scrape:\n%s", name, scrape)
	return 0
}

// counterValue reads the counter name of the daemon's registry, as
// /metrics would after the listener has closed.
func counterValue(t *testing.T, d *daemon, name string) float64 {
	t.Helper()
	families, err := d.promReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// What the milter library reports through the standard log package is
// trouble on an MTA connection (a packet it cannot take, a failed read
// or write, a callback that failed): it is logged at WARN, and so still
// shows at log.level warn, not at INFO among the per-message lines.
func TestServeMilterLibraryLinesAtWarn(t *testing.T) {
	td := startDaemon(t, strings.Replace(strings.Replace(daemonConfig, "%s", "X-Tag", 1), "level: debug", "level: warn", 1))
	c, err := net.Dial("tcp", td.info.Milter[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	packet := func(code byte, data []byte) []byte {
		p := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
		return append(append(p, code), data...)
	}
	// Option negotiation (version 6, no actions, no protocol flags),
	// then a command code that does not exist.
	c.Write(packet('O', binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 6), 0), 0)))
	c.Write(packet('Z', nil))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c) // until the daemon closes the connection
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "Unrecognized command code") })
	for _, l := range strings.Split(td.log.String(), "\n") {
		if strings.Contains(l, "Unrecognized command code") && !strings.Contains(l, "level=WARN") {
			t.Errorf("the milter library's line is not at WARN: %s", l)
		}
	}
}

// A panic go-milter recovers itself (in its packet handling, outside the
// session's callbacks) ends the MTA connection as a session panic does:
// it is counted in sluice_session_panics_total and logged at ERROR, not
// left as a WARN line nothing alerts on. go-milter reports it through
// the standard log package with this text; the test writes the same.
func TestServeMilterLibraryPanicCounted(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	if v := unlabelledMetric(t, td.metrics(t), "sluice_session_panics_total"); v != 0 {
		t.Fatalf("sluice_session_panics_total %v before any panic", v)
	}
	log.Printf("panic handling command: runtime error: index out of range [3] with length 2\ngoroutine 7 [running]:\n...")
	log.Printf("Error reading milter command: read unix s.sock->: i/o timeout")
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "Error reading milter command") })
	if v := unlabelledMetric(t, td.metrics(t), "sluice_session_panics_total"); v != 1 {
		t.Errorf("sluice_session_panics_total %v after one panic in the milter library, want 1", v)
	}
	var panicLine bool
	for _, l := range strings.Split(td.log.String(), "\n") {
		switch {
		case strings.Contains(l, "index out of range"):
			panicLine = true
			if !strings.Contains(l, "level=ERROR") {
				t.Errorf("the milter library's panic is not at ERROR: %s", l)
			}
		case strings.Contains(l, "Error reading milter command") && !strings.Contains(l, "level=WARN"):
			t.Errorf("the milter library's line is not at WARN: %s", l)
		}
	}
	if !panicLine {
		t.Errorf("no log line with the panic:\n%s", td.log)
	}
}
