package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// listenNotify is the service manager's end of $NOTIFY_SOCKET: a unixgram
// socket at addr, which the test points the variable at.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", addr)
	return c
}

// readNotify is the next notification, as KEY=value pairs.
func readNotify(t *testing.T, c *net.UnixConn) map[string]string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(buf[:n]), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("notification line %q is not KEY=value", line)
		}
		m[k] = v
	}
	return m
}

// Under systemd (Type=notify) the daemon says READY=1 once its milter
// socket takes connections and its metrics answer, brackets a reload with
// RELOADING=1 and READY=1, and says STOPPING=1 as it stops. The MTA is
// ordered after the unit: a READY=1 sent sooner would let it meet no
// socket.
func TestServeNotifiesServiceManager(t *testing.T) {
	for _, tc := range []struct{ name, addr string }{
		{"path", ""},
		{"abstract", "@sluice-test-notify-" + strconv.Itoa(os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "sluice-notify")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			addr := tc.addr
			if addr == "" {
				addr = filepath.Join(dir, "notify")
			}
			nc := listenNotify(t, addr)
			sock := filepath.Join(dir, "s.sock")
			path := filepath.Join(dir, "sluice.yml")
			cfg := "listen:\n  - address: unix:" + sock + "\nmetrics:\n  listen: 127.0.0.1:0\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n"
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			sigs := make(chan os.Signal, 1)
			log := &syncBuffer{}
			d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: log}
			done := make(chan error, 1)
			readyCh := make(chan ready, 1)
			go func() { done <- d.run(context.Background(), sigs, func(r ready) { readyCh <- r }) }()
			defer func() {
				if t.Failed() {
					t.Logf("daemon log:\n%s", log)
				}
			}()

			m := readNotify(t, nc)
			if m["READY"] != "1" || !strings.Contains(m["STATUS"], "unix:"+sock) {
				t.Fatalf("first notification %q, want READY=1 and a STATUS naming the socket", m)
			}
			// READY=1 promises that the socket takes connections now.
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatalf("READY=1 before the milter socket takes connections: %v", err)
			}
			c.Close()
			info := <-readyCh
			resp, err := http.Get("http://" + info.Metrics.String() + "/healthz")
			if err != nil {
				t.Fatalf("metrics after READY=1: %v", err)
			}
			resp.Body.Close()
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Errorf("NOTIFY_SOCKET=%q left in the environment for programs the daemon starts", v)
			}

			before, _ := monotonicUsec()
			sigs <- syscall.SIGHUP
			m = readNotify(t, nc)
			after, _ := monotonicUsec()
			usec, err := strconv.ParseUint(m["MONOTONIC_USEC"], 10, 64)
			if m["RELOADING"] != "1" || err != nil || usec < before || usec > after {
				t.Errorf("at SIGHUP: %q, want RELOADING=1 and MONOTONIC_USEC between %d and %d", m, before, after)
			}
			if m = readNotify(t, nc); m["READY"] != "1" {
				t.Errorf("after the reload: %q, want READY=1", m)
			}
			if !strings.Contains(log.String(), "config reloaded") {
				t.Errorf("READY=1 before the reload was done:\n%s", log)
			}

			sigs <- syscall.SIGTERM
			if m = readNotify(t, nc); m["STOPPING"] != "1" {
				t.Errorf("at SIGTERM: %q, want STOPPING=1", m)
			}
			if err := <-done; err != nil {
				t.Fatalf("daemon: %v", err)
			}
		})
	}
}

// A service manager that cannot be reached is logged, once at warn, and
// the daemon serves on: mail matters more than its status.
func TestServeNotifySocketGone(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("NOTIFY_SOCKET", filepath.Join(dir, "gone"))
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	if name, _ := td.addedHeader(t); name != "X-First" {
		t.Fatalf("header %q", name)
	}
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	if err := td.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := strings.Count(td.log.String(), `level=WARN msg="cannot notify the service manager"`); n != 1 {
		t.Errorf("%d warnings about the notify socket, want 1 (later ones at debug):\n%s", n, td.log)
	}
}

// A service manager that does not read its socket must not stop the
// daemon from acting on signals. Each reload sends two datagrams; once
// the receiver's queue (net.unix.max_dgram_qlen) was full, the next write
// blocked for ever in the main loop: no more reloads, and SIGTERM was not
// taken (a supervisor's SIGKILL then cuts messages in flight off).
func TestServeNotifyManagerNotReading(t *testing.T) {
	listenNotify(t, filepath.Join(t.TempDir(), "notify")) // never read
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	td.stopOnce.Do(func() {}) // the cleanup must not wait on a hung daemon
	for i := range 12 {
		select {
		case td.sigs <- syscall.SIGHUP:
		case <-time.After(10 * time.Second):
			t.Fatalf("the daemon takes no signal after %d reloads", i)
		}
	}
	select {
	case td.sigs <- syscall.SIGTERM:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon does not take SIGTERM")
	}
	select {
	case err := <-td.done:
		if err != nil {
			t.Fatalf("daemon: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not stop after SIGTERM")
	}
	if !strings.Contains(td.log.String(), "cannot notify the service manager") {
		t.Errorf("the failed notifications were not logged:\n%s", td.log)
	}
}
