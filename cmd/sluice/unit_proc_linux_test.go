package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The packaged unit's view of /proc (ProtectProc=, ProcSubset=) must
// leave the daemon what it reads there outside its own /proc/PID: the
// boot time in /proc/stat, from which the Prometheus client computes
// process_start_time_seconds (docs/metrics.md), and
// /proc/sys/net/core/somaxconn, by which Go sizes the accept queue of a
// TCP listener (128 connections without it, where the kernel allows
// 4096). systemd mounts /proc for the unit with the options these
// settings name; the test runs the daemon in a mount namespace of its
// own, with /proc mounted the same way.
func TestUnitProcViewKeepsWhatTheDaemonReads(t *testing.T) {
	if os.Geteuid() != 0 {
		mtatest.Unavailable(t, "needs root to mount /proc in a namespace of its own")
	}
	// unshare(1) is util-linux's, ss(8) iproute2's.
	mtatest.Require(t, "util-linux", "iproute2")
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		mtatest.Unavailable(t, "no unshare(1): %v", err)
	}
	unit := debParseUnit(t, filepath.Join(repoRoot, "testdata", "deb", "sluice.service"))
	opts := []string{"nosuid", "nodev", "noexec"}
	for _, v := range unit["ProtectProc"] {
		if v != "default" {
			opts = append(opts, "hidepid="+v)
		}
	}
	for _, v := range unit["ProcSubset"] {
		if v != "all" {
			opts = append(opts, "subset="+v)
		}
	}

	dir := t.TempDir()
	config := filepath.Join(dir, "sluice.yml")
	cfg := "listen:\n  - address: inet:127.0.0.1:0\nmetrics:\n  listen: 127.0.0.1:0\nshutdown_timeout: 2s\nfilters:\n  - type: script\n    options:\n      header: X-Tag\n"
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The test binary runs as the daemon (see TestMain). unshare makes a
	// mount namespace with private propagation, so the new /proc is seen
	// by the daemon alone; sh and then the daemon take unshare's pid.
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "/bin/sh", "-c",
		`mount -t proc -o "$0" proc /proc && exec "$@"`, strings.Join(opts, ","), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+config)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	started := make(chan string, 1)
	var log syncBuffer
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(&log, sc.Text())
			if strings.Contains(sc.Text(), "sluice started") {
				started <- sc.Text()
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log (/proc mounted with %s):\n%s", strings.Join(opts, ","), log.String())
		}
	})
	var line string
	select {
	case line = <-started:
	case err := <-exited:
		t.Fatalf("the daemon exited before it served: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not start in time")
	}
	m := regexp.MustCompile(`listen=\[inet:127\.0\.0\.1:(\d+)\].* metrics=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("start line without the listener and metrics addresses: %s", line)
	}
	milterPort, metricsAddr := m[1], m[2]

	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var exposition strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		exposition.WriteString(sc.Text() + "\n")
	}
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^process_start_time_seconds \d`).MatchString(exposition.String()) {
		t.Errorf("/metrics lacks process_start_time_seconds under the unit's /proc (%s):\n%s",
			strings.Join(opts, ","), grepLines(exposition.String(), "process_"))
	}

	// The accept queue of the milter listener, as ss(8) shows it for a
	// listening socket (Send-Q), against the kernel's limit.
	ss, err := exec.LookPath("ss")
	if err != nil {
		mtatest.Unavailable(t, "no ss(8) to read the milter listener's accept queue: %v", err)
	}
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		t.Fatal(err)
	}
	want, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	want = min(want, 1<<16-1)
	out, err := exec.Command(ss, "-H", "-l", "-t", "-n", "sport = :"+milterPort).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		t.Fatalf("ss found no listener on port %s: %q", milterPort, out)
	}
	if got, err := strconv.Atoi(f[2]); err != nil || got != want {
		t.Errorf("the milter listener's accept queue holds %s connections under the unit's /proc (%s), want net.core.somaxconn, %d", f[2], strings.Join(opts, ","), want)
	}
}
