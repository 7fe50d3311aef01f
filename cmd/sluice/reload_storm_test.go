package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// settled waits until f gives the same value a few times in a row, or
// is at most want, and returns it.
func settled(f func() int, want int) int {
	last, same := -1, 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		v := f()
		if v <= want {
			return v
		}
		if v == last {
			same++
			if same >= 20 {
				return v
			}
		} else {
			same = 0
		}
		last = v
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// A storm of reloads, good ones and ones that fail half-way (the second
// filter's rules file missing), leaves no goroutine, file descriptor or
// store handle of the filters it built behind: each old configuration is
// closed once its last connection is gone.
func TestReloadStormLeaksNothing(t *testing.T) {
	state := t.TempDir()
	rules := filepath.Join(state, "rules")
	os.WriteFile(rules, []byte("a.example\tREJECT\n.watch.example\tWATCH\n"), 0o644)
	cfg := func(second string) string {
		return fmt.Sprintf(`listen:
  - address: unix:%s/s.sock
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: senders
    options:
      files: [%s]
  - type: senders
    name: second
    options:
      files: [%s]
  - type: bayes
  - type: headerfix
  - type: dnsbl
    options:
      servers: [127.0.0.1:1]
      probe_interval: 100ms
      zones:
        - zone: zen.example
          type: ip
`, state, state, rules, second)
	}
	td := startDaemonWith(t, cfg(rules))
	hup := func() {
		n := strings.Count(td.log.String(), "config reload")
		td.signal(t, syscall.SIGHUP)
		waitFor(t, func() bool { return strings.Count(td.log.String(), "config reload") > n })
	}
	// One of each first, so that lazily started things (caches, the
	// shared seen file) are there before the baseline.
	hup()
	time.Sleep(500 * time.Millisecond)
	runtime.GC()
	g0 := runtime.NumGoroutine()
	f0 := openFDs()

	for i := range 40 {
		if i%2 == 0 {
			os.WriteFile(td.config, []byte(cfg(filepath.Join(state, "missing"))), 0o644)
		} else {
			os.WriteFile(td.config, []byte(cfg(rules)), 0o644)
		}
		hup()
	}
	os.WriteFile(td.config, []byte(cfg(rules)), 0o644)
	hup()
	if n := strings.Count(td.log.String(), "config reload failed"); n != 20 {
		t.Errorf("%d failed reloads, want 20", n)
	}
	g := settled(runtime.NumGoroutine, g0)
	f := settled(openFDs, f0)
	if g > g0+2 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines: %d before the storm, %d after\n%s", g0, g, buf)
	}
	if f > f0+2 {
		t.Errorf("file descriptors: %d before the storm, %d after:\n%s", f0, f, strings.Join(fdTargets(), "\n"))
	}
}

// A reload that fails half-way (the second filter's rules file missing)
// leaves the running senders filter as it was. The filter it built first
// shares the running one's seen file and brought its own seen_limit; that
// limit became the running filter's: with it the running filter forgot
// the domains it had seen, reported them as new again (an alert on
// sluice_sender_watch_new_domains_total fires for nothing), and wrote
// the seen file cut down.
func TestFailedReloadKeepsRunningSeenLimit(t *testing.T) {
	state := t.TempDir()
	rules := filepath.Join(state, "rules")
	os.WriteFile(rules, []byte(".watch.example\tWATCH\n"), 0o644)
	cfg := func(rest string) string {
		return fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: senders
    options:
      files: [%s]
%s`, state, rules, rest)
	}
	td := startDaemonWith(t, cfg(""))
	newDomains := func() float64 {
		return dnsblMetric(td.metrics(t), "sluice_sender_watch_new_domains_total", `filter="senders"`)
	}
	send := func(domain string) {
		monitoringSend(t, td.info.Milter[0], "192.0.2.1", "a@"+domain, [][2]string{{"From", "a@" + domain}}, "hi\r\n")
	}
	send("a.watch.example")
	send("b.watch.example")
	if got := newDomains(); got != 2 {
		t.Fatalf("new domains at start: %v, want 2", got)
	}

	// The same filter with seen_limit 1, then one whose rules file is
	// missing: the reload fails after the first was built.
	os.WriteFile(td.config, []byte(cfg(fmt.Sprintf(`      seen_limit: 1
  - type: senders
    name: second
    options:
      files: [%s]
`, filepath.Join(state, "missing")))), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })

	send("c.watch.example")
	send("a.watch.example")
	send("b.watch.example")
	if got := newDomains(); got != 3 {
		t.Errorf("new domains after a failed reload: %v, want 3 (only c.watch.example is new)", got)
	}
}
