package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// The unix socket is gone once the daemon has stopped, even when the stop
// signal arrives the moment it listens: the MTA must find no socket file
// rather than one nobody answers on, and the next start must not have to
// guess whether it is stale.
func TestServeStopRemovesSocketAtOnce(t *testing.T) {
	for i := 0; i < 20; i++ {
		dir := t.TempDir()
		sock := filepath.Join(dir, "s.sock")
		path := filepath.Join(dir, "sluice.yml")
		cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: \"\"\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n"
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		sigs := make(chan os.Signal, 1)
		log := &syncBuffer{}
		d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: log}
		done := make(chan error, 1)
		go func() {
			done <- d.run(context.Background(), sigs, func(ready) { sigs <- syscall.SIGTERM })
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("daemon: %v\n%s", err, log)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("daemon did not stop")
		}
		if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("run %d: socket file after stop: %v", i, err)
		}
	}
}

// A metrics port another process holds stops the start with an error that
// names the setting and its place in the file, and leaves no milter socket
// behind that nobody serves.
func TestServeMetricsPortTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	path := filepath.Join(dir, "sluice.yml")
	cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: " + busy.Addr().String() + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: &syncBuffer{}}
	err = d.run(context.Background(), make(chan os.Signal), func(ready) { t.Error("daemon started on a taken metrics port") })
	if err == nil || !strings.Contains(err.Error(), path+":4: metrics.listen: ") || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("start with metrics.listen taken: %v; want an error naming %s:4: metrics.listen", err, path)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("milter socket file after the failed start: %v", err)
	}
}

// A second SIGTERM (or SIGINT, as a second Ctrl-C) while messages drain
// ends the wait at once: the administrator who sends it wants the daemon
// gone now, not after shutdown_timeout. A SIGHUP while draining changes
// nothing.
func TestServeSecondStopSignalCutsDrainShort(t *testing.T) {
	cfg := `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: 60s
filter_defaults:
  timeout: 60s
filters:
  - type: sleep
    options:
      delay: 30s
`
	td := startDaemon(t, cfg)
	// This test stops the daemon itself; if it fails, a stop at cleanup
	// would wait out shutdown_timeout.
	td.stopOnce.Do(func() {})
	s := milterSession(t, td)
	s.Mail("a@b", nil)
	s.Rcpt("c@d", nil)
	s.HeaderEnd()
	ended := make(chan error, 1)
	go func() {
		_, _, err := s.End()
		ended <- err
	}()
	time.Sleep(100 * time.Millisecond) // the message is in the filter
	td.sigs <- syscall.SIGTERM
	waitFor(t, func() bool { return strings.Contains(td.log.String(), `msg=stopping`) })
	start := time.Now()
	for _, sig := range []os.Signal{syscall.SIGHUP, syscall.SIGINT} {
		select {
		case td.sigs <- sig:
		case <-time.After(5 * time.Second):
			t.Fatalf("the stopping daemon does not take %s", sig)
		}
	}
	select {
	case err := <-td.done:
		if err != nil {
			t.Fatalf("daemon exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second stop signal did not end the drain")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("daemon took %s after the second stop signal", took)
	}
	if strings.Contains(td.log.String(), "config reloaded") {
		t.Error("a SIGHUP while stopping reloaded the configuration")
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("the message in flight got a reply although it was cut off")
		}
	case <-time.After(5 * time.Second):
		t.Error("the session in flight was not cut off")
	}
}

// A start that fails after the configuration was read logs its error in
// the configured format: with log.format json, one JSON record on standard
// error and nothing else, so that a log shipper parses it. Before the
// configuration is read there is no format to go by: plain "sluice: ...".
func TestServeStartErrorInLogFormat(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	serve := func(t *testing.T, cfg string) string {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "sluice.yml")
		cfg = strings.ReplaceAll(cfg, "SOCK", filepath.Join(dir, "s.sock"))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		root := newRootCmd(filtertest.Registry())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		err := run(root, []string{"--config", path, "serve"})
		if err == nil || exitCode(err) != 1 {
			t.Fatalf("serve: %v (exit status %d), want a failed start, status 1", err, exitCode(err))
		}
		reportError(&out, err)
		return out.String()
	}
	taken := "listen:\n  - address: unix:SOCK\nmetrics:\n  listen: " + busy.Addr().String() + "\n"

	t.Run("json", func(t *testing.T) {
		out := serve(t, "log:\n  format: json\n"+taken)
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   string `json:"err"`
		}
		if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &rec) != nil {
			t.Fatalf("stderr is not one JSON record:\n%s", out)
		}
		if rec.Level != "ERROR" || !strings.Contains(rec.Err, "metrics.listen") {
			t.Errorf("record %+v, want level ERROR and the error naming metrics.listen", rec)
		}
	})
	t.Run("text", func(t *testing.T) {
		out := serve(t, "log:\n  format: text\n"+taken)
		if !strings.HasPrefix(out, "sluice: ") || !strings.Contains(out, "metrics.listen") {
			t.Errorf("stderr %q, want the plain sluice: line", out)
		}
	})
	t.Run("config unread", func(t *testing.T) {
		out := serve(t, "log:\n  format: json\n  bogus: 1\n")
		if !strings.HasPrefix(out, "sluice: ") || strings.Contains(out, "{") {
			t.Errorf("stderr %q, want the plain sluice: line: the configuration was not read", out)
		}
	})
}

// hungCloseFilter is a filter whose Close blocks until release, as the
// bayes store's does when a read of its file is stuck on a hung disk.
type hungCloseFilter struct {
	filtertest.Script
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *hungCloseFilter) Close() error {
	h.once.Do(func() { close(h.entered) })
	<-h.release
	return nil
}

// hungCloseRegistry is the test registry with type "hungclose", whose
// filters all share h.
func hungCloseRegistry(h *hungCloseFilter) filters.Registry {
	reg := filtertest.Registry()
	reg["hungclose"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
		h.FilterName = env.Name
		return h, nil
	}
	return reg
}

// A filter whose Close never returns does not keep the daemon from
// exiting: a second stop signal ends it at once, and without one the
// shutdown deadline does; the log names the filter.
func TestServeStopsWhenCloseHangs(t *testing.T) {
	for _, how := range []string{"second signal", "deadline"} {
		t.Run(how, func(t *testing.T) {
			h := &hungCloseFilter{entered: make(chan struct{}), release: make(chan struct{})}
			defer close(h.release)
			timeout := "1h"
			if how == "deadline" {
				timeout = "300ms"
			}
			td := startDaemonReg(t, `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: `+timeout+`
filters:
  - type: hungclose
    name: stuck-store
`, hungCloseRegistry(h))
			// This test stops the daemon itself; a stop at cleanup would
			// hang with the filter.
			td.stopOnce.Do(func() {})
			td.sigs <- syscall.SIGTERM
			select {
			case <-h.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the daemon did not close the filter")
			}
			if how == "second signal" {
				td.sigs <- syscall.SIGTERM
			}
			select {
			case err := <-td.done:
				if err != nil {
					t.Fatalf("daemon exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the daemon still runs 10s after %s, waiting for a Close", how)
			}
			if !strings.Contains(td.log.String(), "closing a filter did not finish") || !strings.Contains(td.log.String(), "filter=stuck-store") {
				t.Errorf("the log does not name the filter whose Close hangs:\n%s", td.log)
			}
		})
	}
}

// A unix socket file removed while the daemon runs leaves it unreachable
// on that listener, and the MTA applies its default action to all mail.
// The daemon notices within socketCheckInterval, says which file is gone,
// lets the messages in flight finish and exits 1, for its supervisor to
// start it again with a new socket (the Debian unit has
// Restart=on-failure), as when a listener fails otherwise. It used to go
// on in silence, with /healthz saying ok.
func TestServeSocketFileRemovedStops(t *testing.T) {
	old := socketCheckInterval
	socketCheckInterval = 20 * time.Millisecond
	t.Cleanup(func() { socketCheckInterval = old })
	sock := filepath.Join(t.TempDir(), "s.sock")
	td := startDaemon(t, "listen:\n  - address: unix:"+sock+"\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: \"\"\nshutdown_timeout: 5s\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n")
	if name, _ := addedHeaderAt(t, td.info.Milter[0]); name != "X-Tag" {
		t.Fatalf("message through the socket: header %q", name)
	}
	if err := os.Remove(sock); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-td.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("daemon still runs 10s after its socket file was removed\n%s", td.log)
	}
	td.stopOnce.Do(func() { td.exitErr = err })
	if err == nil || !strings.Contains(err.Error(), sock) || !strings.Contains(err.Error(), "removed") {
		t.Errorf("daemon exit error %v, want one saying %s was removed", err, sock)
	}
	if log := td.log.String(); !strings.Contains(log, "milter listener failed") || !strings.Contains(log, "sluice stopped") {
		t.Errorf("log does not say the listener failed and the daemon stopped:\n%s", log)
	}
}

// Sessions still in flight at the shutdown deadline are cut off, and the
// filters are closed after them: a close that takes a moment (a store
// written back, a seen file saved) is waited for, not abandoned the
// instant it begins with an error saying it did not finish. A second
// stop signal still ends that wait at once.
func TestServeDeadlineCutLetsFiltersClose(t *testing.T) {
	for _, how := range []string{"close in time", "second signal"} {
		t.Run(how, func(t *testing.T) {
			h := &hungCloseFilter{entered: make(chan struct{}), release: make(chan struct{})}
			var releaseOnce sync.Once
			release := func() { releaseOnce.Do(func() { close(h.release) }) }
			defer release()
			td := startDaemonReg(t, `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: 300ms
filter_defaults:
  timeout: 60s
filters:
  - type: sleep
    options:
      delay: 30s
  - type: hungclose
    name: slow-store
`, hungCloseRegistry(h))
			// This test stops the daemon itself.
			td.stopOnce.Do(func() {})
			s := milterSession(t, td)
			s.Mail("a@b", nil)
			s.Rcpt("c@d", nil)
			s.HeaderEnd()
			go s.End()
			time.Sleep(100 * time.Millisecond) // the message is in the sleep filter
			td.sigs <- syscall.SIGTERM
			select {
			case <-h.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the daemon did not close the filters")
			}
			closed := make(chan struct{})
			if how == "close in time" {
				// The store takes a moment to be written back.
				go func() {
					time.Sleep(200 * time.Millisecond)
					close(closed)
					release()
				}()
			} else {
				td.sigs <- syscall.SIGTERM
			}
			select {
			case err := <-td.done:
				if err != nil {
					t.Fatalf("daemon exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the daemon still runs 10s after the deadline (%s)", how)
			}
			log := td.log.String()
			if !strings.Contains(log, "shutdown deadline passed") {
				t.Fatalf("the message in flight was not cut off at the deadline:\n%s", log)
			}
			// The MTA got no verdict for the message: its line says so,
			// not the accept of the sleep filter's failure policy.
			if line := messageLine(log); !strings.Contains(line, "verdict=aborted") || !strings.Contains(line, `reason="cut off: sluice is stopping"`) {
				t.Errorf("message line %q, want it aborted, cut off", line)
			}
			if how == "second signal" {
				if !strings.Contains(log, "closing a filter did not finish") || !strings.Contains(log, "filter=slow-store") {
					t.Errorf("after a second stop signal the log does not name the filter left behind:\n%s", log)
				}
				return
			}
			select {
			case <-closed:
			default:
				t.Error("the daemon exited before the filter's Close returned")
			}
			if strings.Contains(log, "closing a filter did not finish") {
				t.Errorf("a Close that took 200ms is logged as not finished:\n%s", log)
			}
		})
	}
}

// messageLine returns the last message line of log, "" if none.
func messageLine(log string) string {
	var line string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "msg=message ") {
			line = l
		}
	}
	return line
}
