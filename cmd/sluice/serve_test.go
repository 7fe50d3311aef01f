package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// syncBuffer is a log sink safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testDaemon struct {
	stopOnce sync.Once
	exitErr  error
	sigs     chan os.Signal
	done     chan error
	info     ready
	log      *syncBuffer
	config   string
}

// startDaemon runs the daemon in-process on the config text, with the test
// filters registered, and waits until it listens.
func startDaemon(t testing.TB, configText string) *testDaemon {
	t.Helper()
	return startDaemonReg(t, configText, filtertest.Registry())
}

// startDaemonReg is startDaemon with the filters of reg.
func startDaemonReg(t testing.TB, configText string, reg filters.Registry) *testDaemon {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(path, []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	td := &testDaemon{sigs: make(chan os.Signal, 1), done: make(chan error, 1), log: &syncBuffer{}, config: path}
	d := &daemon{cli: &cli{configPath: path, configSet: true, reg: reg}, stderr: td.log}
	readyCh := make(chan ready, 1)
	go func() { td.done <- d.run(context.Background(), td.sigs, func(r ready) { readyCh <- r }) }()
	select {
	case td.info = <-readyCh:
	case err := <-td.done:
		t.Fatalf("daemon did not start: %v\n%s", err, td.log)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	t.Cleanup(func() {
		td.stop()
		if t.Failed() {
			t.Logf("daemon log:\n%s", td.log)
		}
	})
	return td
}

// stop sends SIGTERM and waits for the daemon to exit; it returns the
// daemon's exit error. Safe to call more than once.
func (td *testDaemon) stop() error {
	td.stopOnce.Do(func() {
		td.sigs <- syscall.SIGTERM
		td.exitErr = <-td.done
	})
	return td.exitErr
}

func (td *testDaemon) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	// The channel holds one signal: a second send waits until the daemon
	// took the first. Callers wait for the log line that shows it acted.
	td.sigs <- sig
}

func (td *testDaemon) metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + td.info.Metrics.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// addedHeader sends one message through the daemon and returns the name
// and value of the header the script filter added.
func (td *testDaemon) addedHeader(t *testing.T) (string, string) {
	t.Helper()
	return addedHeaderAt(t, td.info.Milter[0])
}

// addedHeaderAt is addedHeader through the listener at a.
func addedHeaderAt(t *testing.T, a net.Addr) (string, string) {
	t.Helper()
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1") },
		func() (*gomilter.Action, error) { return s.Helo("h.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", nil) },
		func() (*gomilter.Action, error) { return s.Rcpt("b@lab.example", nil) },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "x") },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
	}
	for _, step := range steps {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end: %v %v", act, err)
	}
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader {
			return m.HeaderName, m.HeaderValue
		}
	}
	return "", ""
}

const daemonConfig = `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
filters:
  - type: script
    options:
      header: %s
`

func TestReloadKeepsRunningConfigOnError(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	if name, _ := td.addedHeader(t); name != "X-First" {
		t.Fatalf("header %q", name)
	}

	// A good edit applies to the next connection.
	os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	if name, _ := td.addedHeader(t); name != "X-Second" {
		t.Fatalf("after reload: header %q", name)
	}

	// A broken edit is logged and counted; the running config stays.
	os.WriteFile(td.config, []byte("filters:\n  - type: script\n    options:\n      bogus: 1\n"), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	if !strings.Contains(td.log.String(), "sluice.yml:4: filters[0].options.bogus: unknown key") {
		t.Errorf("reload error does not name file, line and key:\n%s", td.log)
	}
	if name, _ := td.addedHeader(t); name != "X-Second" {
		t.Fatalf("after broken reload: header %q", name)
	}
	m := td.metrics(t)
	for _, want := range []string{
		`sluice_config_reloads_total{result="failed"} 1`,
		`sluice_config_reloads_total{result="ok"} 1`,
		`sluice_config_last_reload_successful 0`,
		`sluice_messages_total{verdict="accept"} 3`,
		`sluice_filter_decisions_total{filter="script",stage="eom",verdict="continue"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err := http.Get("http://" + td.info.Metrics.String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	}
}

// SIGTERM lets the message in flight finish, then the daemon exits 0.
func TestShutdownWaitsForMessageInFlight(t *testing.T) {
	tmp := t.TempDir()
	cfg := `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: 5s
body:
  memory_limit: 16
  temp_dir: ` + tmp + `
filters:
  - type: sleep
    options:
      delay: 400ms
`
	td := startDaemon(t, cfg)
	s := milterSession(t, td)
	s.Mail("a@b", nil)
	s.Rcpt("c@d", nil)
	s.HeaderEnd()
	s.BodyChunk(bytes.Repeat([]byte("y"), 1000))
	type end struct {
		act *gomilter.Action
		err error
	}
	ended := make(chan end, 1)
	go func() {
		_, act, err := s.End()
		ended <- end{act, err}
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- td.stop() }()
	e := <-ended
	if e.err != nil || e.act.Code != gomilter.ActAccept {
		t.Fatalf("message in flight: %v %v", e.act, e.err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("daemon exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not stop")
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("shutdown took %s", time.Since(start))
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
}

func TestConfigCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	os.WriteFile(good, []byte("filters:\n  - type: script\n"), 0o644)
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("log:\n  level: chatty\n"), 0o644)

	run := func(args ...string) (string, error) {
		root := newRootCmd(filtertest.Registry())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("config", "check", good)
	// The filter is printed with the timeout and policy it inherits.
	if err != nil || !strings.Contains(out, "  - type: script\n    timeout: 10s\n    on_failure: accept\n") || !strings.Contains(out, "shutdown_timeout: 30s") {
		t.Errorf("good config: %v\n%s", err, out)
	}
	_, err = run("--config", bad, "config", "check")
	if err == nil || !strings.Contains(err.Error(), "bad.yml:2: log.level") {
		t.Errorf("bad config: %v", err)
	}
	_, err = run("--config", filepath.Join(dir, "missing.yml"), "config", "check")
	if err == nil {
		t.Error("a missing config file named by the user was accepted")
	}
	out, err = run("version")
	if err != nil || !strings.HasPrefix(out, "sluice ") {
		t.Errorf("version: %q %v", out, err)
	}
	out, err = run("completion", "bash")
	if err != nil || !strings.Contains(out, "bash completion") {
		t.Errorf("completion: %v", err)
	}
}

// config check refuses a body.temp_dir that is not a directory, as
// serve (which cannot create it) and a reload do: a file that passes the
// check must not then fail at the SIGHUP the check is run before.
func TestConfigCheckTempDirNotADirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	path := filepath.Join(dir, "sluice.yml")
	os.WriteFile(path, []byte("body:\n  temp_dir: "+file+"\n"), 0o644)
	root := newRootCmd(filtertest.Registry())
	root.SetOut(io.Discard)
	root.SetArgs([]string{"config", "check", path})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "body.temp_dir") {
		t.Errorf("config check with body.temp_dir a file: error %v, want one naming body.temp_dir", err)
	}
	// A missing directory passes: serve creates it.
	os.WriteFile(path, []byte("body:\n  temp_dir: "+filepath.Join(dir, "missing")+"\n"), 0o644)
	root = newRootCmd(filtertest.Registry())
	root.SetOut(io.Discard)
	root.SetArgs([]string{"config", "check", path})
	if err := root.Execute(); err != nil {
		t.Errorf("config check with a missing body.temp_dir: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The daemon's metrics pass promtool's lint, and a real Prometheus scrapes
// them: sluice_messages_total is there after mail has flowed.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	for i := 0; i < 3; i++ {
		td.addedHeader(t)
	}
	mtatest.CheckMetrics(t, []byte(td.metrics(t)))
	prom := mtatest.StartPrometheus(t, td.info.Metrics.String())
	got := prom.WaitForSeries(t, `sluice_messages_total{verdict="accept"}`, 30*time.Second)
	if got != 3 {
		t.Errorf("Prometheus sees sluice_messages_total{verdict=\"accept\"} = %v, want 3", got)
	}
	if v := prom.WaitForSeries(t, `sluice_build_info`, 10*time.Second); v != 1 {
		t.Errorf("sluice_build_info = %v", v)
	}
}

// Several listeners serve at once, and the JSON log has one summary line
// per message with what each filter decided.
func TestSeveralListenersAndJSONSummary(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	td := startDaemon(t, `listen:
  - address: unix:`+sock+`
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
log:
  format: json
filters:
  - type: script
`)
	if len(td.info.Milter) != 2 {
		t.Fatalf("listening on %v", td.info.Milter)
	}
	for _, a := range td.info.Milter {
		if name, _ := addedHeaderAt(t, a); name != "X-Sluice-Test" {
			t.Errorf("listener %s: header %q", a, name)
		}
	}
	var summaries []map[string]any
	for _, line := range strings.Split(td.log.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "message" {
			summaries = append(summaries, rec)
		}
	}
	if len(summaries) != 2 {
		t.Fatalf("%d summary lines, want 2:\n%s", len(summaries), td.log)
	}
	for _, s := range summaries {
		if s["verdict"] != "accept" || s["from"] != "a@example.org" || s["rcpts"] != "b@lab.example" ||
			!strings.HasPrefix(fmt.Sprint(s["filters"]), "script@eom=continue(") || s["duration"] == nil {
			t.Errorf("summary line %v", s)
		}
	}
}

// A reload naming a body.temp_dir that does not exist (or is not a
// directory) fails and keeps the running configuration: sluice creates
// the directory only at start, and with the new value every message
// larger than body.memory_limit would fail.
func TestReloadRefusesMissingTempDir(t *testing.T) {
	tmp := t.TempDir()
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	for i, dir := range []string{filepath.Join(tmp, "missing"), filepath.Join(tmp, "file")} {
		if i == 1 {
			os.WriteFile(dir, nil, 0o600)
		}
		cfg := strings.Replace(daemonConfig, "%s", "X-Second", 1) + "body:\n  temp_dir: " + dir + "\n"
		os.WriteFile(td.config, []byte(cfg), 0o644)
		td.signal(t, syscall.SIGHUP)
		want := fmt.Sprintf(`sluice_config_reloads_total{result="failed"} %d`, i+1)
		waitFor(t, func() bool { return strings.Contains(td.metrics(t), want) })
		if !strings.Contains(td.log.String(), "body.temp_dir") {
			t.Errorf("the reload error does not name body.temp_dir:\n%s", td.log)
		}
		if name, _ := td.addedHeader(t); name != "X-First" {
			t.Errorf("temp_dir %s: after the failed reload: header %q, want the running X-First", dir, name)
		}
	}
}

// A file emptied (truncated by an editor or a deploy that writes in
// place, caught half-written by the SIGHUP, or rendered by a template
// from an empty dict as "{}") means the built-in defaults at start, but
// at a reload it is refused like a missing file: those
// defaults have no filters, and applying them would pass mail unfiltered.
func TestReloadRefusesEmptyFile(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	for i, content := range []string{"", "# all commented out\n#filters:\n", "{}\n", "# rendered from an empty dict\n{ }\n"} {
		os.WriteFile(td.config, []byte(content), 0o644)
		td.signal(t, syscall.SIGHUP)
		want := fmt.Sprintf(`sluice_config_reloads_total{result="failed"} %d`, i+1)
		waitFor(t, func() bool {
			return strings.Contains(td.metrics(t), want) || strings.Contains(td.log.String(), "config reloaded")
		})
		if !strings.Contains(td.log.String(), "sluice.yml has no settings") {
			t.Errorf("%q: the reload did not fail naming the empty file:\n%s", content, td.log)
		}
		if name, _ := td.addedHeader(t); name != "X-First" {
			t.Errorf("%q: after the reload: header %q, want the running X-First", content, name)
		}
	}
}

// A daemon started on the default config file (no --config) whose file
// then disappears keeps its configuration at SIGHUP: the defaults a
// missing default file means at start have no filters, and reloading
// them would pass mail unfiltered.
func TestReloadWithDefaultFileGone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(path, []byte(strings.Replace(daemonConfig, "%s", "X-First", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	sigs := make(chan os.Signal, 1)
	done := make(chan error, 1)
	readyCh := make(chan ready, 1)
	d := &daemon{cli: &cli{configPath: path, configSet: false, reg: filtertest.Registry()}, stderr: log}
	go func() { done <- d.run(context.Background(), sigs, func(r ready) { readyCh <- r }) }()
	var info ready
	select {
	case info = <-readyCh:
	case err := <-done:
		t.Fatalf("daemon did not start: %v\n%s", err, log)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start in time")
	}
	defer func() { sigs <- syscall.SIGTERM; <-done }()
	if name, _ := addedHeaderAt(t, info.Milter[0]); name != "X-First" {
		t.Fatalf("header %q", name)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	sigs <- syscall.SIGHUP
	waitFor(t, func() bool {
		s := log.String()
		return strings.Contains(s, "config reload failed") || strings.Contains(s, "config reloaded")
	})
	if !strings.Contains(log.String(), "config reload failed") {
		t.Errorf("reload with the file gone did not fail:\n%s", log)
	}
	if name, _ := addedHeaderAt(t, info.Milter[0]); name != "X-First" {
		t.Errorf("after SIGHUP with the config file gone: header %q, want X-First", name)
	}
}

// Without --config, a missing default file means the built-in defaults,
// but a default file that is a dangling symlink is an error: the admin
// put a configuration there, and running without its filters would pass
// mail unfiltered.
func TestDefaultConfigDanglingSymlink(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yml")
	c := &cli{configPath: missing, reg: filtertest.Registry()}
	cfg, err := c.loadConfig("")
	if err != nil || cfg.File != "" {
		t.Fatalf("missing default file: %v, %+v; want the built-in defaults", err, cfg)
	}
	link := filepath.Join(dir, "sluice.yml")
	if err := os.Symlink(filepath.Join(dir, "not-mounted", "sluice.yml"), link); err != nil {
		t.Fatal(err)
	}
	c = &cli{configPath: link, reg: filtertest.Registry()}
	if _, err := c.loadConfig(""); err == nil || !strings.Contains(err.Error(), link) {
		t.Errorf("dangling symlink as default file: %v; want an error naming %s", err, link)
	}
}

// A burst of SIGHUPs while the daemon is busy (a slow reload) does not
// crowd out the SIGTERM after it: signal.Notify drops a signal whose
// channel is full. The stop comes at the latest after the one SIGHUP
// already on its way, and the others merge.
func TestSIGTERMAfterSIGHUPBurst(t *testing.T) {
	// Keeps the test process alive whatever reaches it.
	guard := make(chan os.Signal, 64)
	signal.Notify(guard, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(guard)
	c := make(chan os.Signal) // nobody reads while the burst arrives
	stop := signalNotify(c)
	defer stop()
	pid := os.Getpid()
	for range 10 {
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait until the SIGTERM was delivered (SIGHUPs pending at once
	// merge in the kernel; each one delivered reached both channels).
	for delivered := false; !delivered; {
		select {
		case sig := <-guard:
			delivered = sig == syscall.SIGTERM
		case <-time.After(5 * time.Second):
			t.Fatal("SIGTERM not delivered")
		}
	}
	var got []string
	for len(got) < 3 {
		select {
		case sig := <-c:
			got = append(got, sig.String())
			if sig == syscall.SIGTERM {
				if len(got) > 2 {
					t.Errorf("signals read: %v; want the stop among the first two", got)
				}
				return
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("SIGTERM lost; read %v", got)
		}
	}
	t.Errorf("signals read: %v; want the stop among the first two", got)
}

// Two stops that arrive while the daemon is busy (a slow reload, or the
// start) stay two: the second is the one that cuts the messages in
// flight off at once. The second used to replace the first, and the
// daemon drained for its whole shutdown_timeout.
func TestSecondStopWhileBusyKept(t *testing.T) {
	guard := make(chan os.Signal, 64)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)
	c := make(chan os.Signal) // nobody reads while the stops arrive
	stop := signalNotify(c)
	defer stop()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-guard:
		case <-time.After(5 * time.Second):
			t.Fatalf("%v not delivered", sig)
		}
	}
	var got []os.Signal
	for len(got) < 2 {
		select {
		case sig := <-c:
			got = append(got, sig)
		case <-time.After(2 * time.Second):
			t.Fatalf("stops read: %v; want SIGTERM, then SIGINT", got)
		}
	}
	if got[0] != syscall.SIGTERM || got[1] != syscall.SIGINT {
		t.Errorf("stops read: %v; want SIGTERM, then SIGINT", got)
	}
}

// A mistyped subcommand is an error at every level, not the parent's help
// and exit 0: "sluice config chek FILE && systemctl reload sluice" must
// not go ahead. The parent alone still prints its help.
func TestUnknownSubcommandFails(t *testing.T) {
	for _, args := range [][]string{{"foo"}, {"config", "chek", "/etc/sluice/sluice.yml"},
		{"senders", "tset", "a@example.org"}, {"archive", "shwo", "/var/mail/spam"}, {"db", "stat"}} {
		r := runCLI(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, "unknown command") {
			t.Errorf("sluice %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	for _, parent := range []string{"config", "db", "senders", "archive"} {
		if r := runCLI(t, "", parent); r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
			t.Errorf("sluice %s: exit %d, stdout %q", parent, r.code, r.stdout)
		}
	}
}

// Two filters that own one header field name are refused: the later one
// deletes the fields of that name before adding its own, the earlier
// one's among them, so a Sieve rule would never see the first verdict.
func TestConfigCheckSharedHeaderField(t *testing.T) {
	dir := t.TempDir()
	check := func(src string) error {
		file := filepath.Join(dir, "sluice.yml")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		root := newRootCmd(registry())
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs([]string{"config", "check", file})
		return root.Execute()
	}
	const dnsbl = "  - type: dnsbl\n    name: %s\n    options:\n      servers: [\"127.0.0.1:53\"]\n      probe_interval: 0s\n      zones:\n        - zone: %s\n          action: tag\n%s"
	two := "state_dir: " + dir + "\nfilters:\n" +
		fmt.Sprintf(dnsbl, "dnsbl", "a.test", "") +
		fmt.Sprintf(dnsbl, "dnsbl-score", "b.test", "")
	err := check(two)
	if err == nil || !strings.Contains(err.Error(), "sluice.yml:11") || !strings.Contains(err.Error(), "X-Sluice-DNSBL") ||
		!strings.Contains(err.Error(), "filter dnsbl (line 3)") {
		t.Errorf("two dnsbl entries with the same fields: %v", err)
	}
	// Fields of other names (the score field's name differs in case only:
	// still the same field) are fine once every name differs.
	renamed := "state_dir: " + dir + "\nfilters:\n" +
		fmt.Sprintf(dnsbl, "dnsbl", "a.test", "") +
		fmt.Sprintf(dnsbl, "dnsbl-score", "b.test", "      header: X-Sluice-DNSBL-B\n      score:\n        header: x-sluice-dnsbl-score\n")
	if err := check(renamed); err == nil || !strings.Contains(err.Error(), "x-sluice-dnsbl-score") {
		t.Errorf("score fields differing in case only: %v", err)
	}
	renamed = strings.Replace(renamed, "header: x-sluice-dnsbl-score", "header: X-Sluice-DNSBL-B-Score", 1)
	if err := check(renamed); err != nil {
		t.Errorf("entries with fields of their own: %v", err)
	}
	// Two bayes entries likewise.
	bayes := "state_dir: " + dir + "\nfilters:\n  - type: bayes\n  - type: bayes\n    name: bayes-2\n"
	if err := check(bayes); err == nil || !strings.Contains(err.Error(), "X-Sluice-Bayes") {
		t.Errorf("two bayes entries with the same field: %v", err)
	}
	if err := check(bayes + "    options:\n      header:\n        name: X-Sluice-Bayes-2\n"); err != nil {
		t.Errorf("bayes entries with fields of their own: %v", err)
	}
	// headerfix deletes the fields named like its trace field too.
	headerfix := "state_dir: " + dir + "\nfilters:\n  - type: headerfix\n    options:\n      trace_header: %s\n  - type: bayes\n"
	if err := check(fmt.Sprintf(headerfix, "X-Sluice-Bayes")); err == nil || !strings.Contains(err.Error(), "X-Sluice-Bayes") {
		t.Errorf("headerfix trace field named like the bayes field: %v", err)
	}
	if err := check(fmt.Sprintf(headerfix, "X-Sluice-Repaired")); err != nil {
		t.Errorf("headerfix and bayes with fields of their own: %v", err)
	}
}

// setMetricsTimeouts shortens the metrics listener's time limits for one
// test.
func setMetricsTimeouts(t *testing.T, write, idle time.Duration) {
	t.Helper()
	oldWrite, oldIdle := metricsWriteTimeout, metricsIdleTimeout
	metricsWriteTimeout, metricsIdleTimeout = write, idle
	t.Cleanup(func() { metricsWriteTimeout, metricsIdleTimeout = oldWrite, oldIdle })
}

// A scrape client that keeps its keep-alive connection open without a
// further request does not hold it (a file descriptor and a goroutine
// each) for ever: the daemon closes it after the idle time limit.
func TestMetricsListenerClosesIdleConnections(t *testing.T) {
	setMetricsTimeouts(t, 5*time.Second, 300*time.Millisecond)
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	c, err := net.Dial("tcp", td.info.Metrics.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("idle connection still open after 5s (idle limit 300ms): %v", err)
		}
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 200 ")) || !bytes.HasSuffix(got, []byte("\r\n\r\nok\n")) {
		t.Errorf("answer %q", got)
	}
}

// A scrape client that asks and then stops reading does not hold the
// connection and its handler for ever: once the answers fill the socket
// buffers, the write time limit ends the connection.
func TestMetricsListenerDropsStalledReader(t *testing.T) {
	setMetricsTimeouts(t, 300*time.Millisecond, 5*time.Second)
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	size := len(td.metrics(t))
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(td.info.Metrics.String())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadBuffer(4096)
	// Pipelined requests whose answers far exceed what loopback socket
	// buffers hold (a few MB).
	n := 16<<20/size + 1
	req := strings.Repeat("GET /metrics HTTP/1.1\r\nHost: sluice\r\n\r\n", n)
	go io.WriteString(c, req)
	time.Sleep(time.Second) // the server's writes block, past their limit
	// The server's writes block only once its socket's send buffer is
	// full (loopback autotunes it to about 4 MB, some 350 answers), and
	// how long the daemon takes to render that many answers depends on
	// the machine: 5 s on a loaded one, over 10 s on one slower still.
	// This bound is for a daemon that never ends the connection; reading
	// every answer at this client's pace takes several minutes.
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	read, err := io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after %d bytes: %v (the daemon still writes to a client that stalled)", read, err)
	}
	if read >= int64(n*size) {
		t.Errorf("read %d bytes, all %d answers: the write limit did not end the connection", read, n)
	}
}

// A client that announces a request body and never sends it does not
// hold the connection and its handler for ever: net/http reads what is
// left of a body after the handler, to reuse the connection, and
// without a read time limit that read waits as long as the client does.
// Enough such connections would use up the daemon's file descriptors,
// and with them its milter listeners' accepts.
func TestMetricsListenerDropsStalledBody(t *testing.T) {
	setMetricsTimeouts(t, 5*time.Second, 5*time.Second)
	old := metricsReadTimeout
	metricsReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { metricsReadTimeout = old })
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	for _, path := range []string{"/healthz", "/metrics"} {
		c, err := net.Dial("tcp", td.info.Metrics.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: sluice\r\nContent-Length: 100\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		// Past every time limit of the listener (the write and idle
		// limits 5s, the read limit 300ms); without a read limit the
		// connection stays open, unanswered, as long as the client.
		c.SetReadDeadline(time.Now().Add(8 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("%s: connection with a body never sent still open after 8s (read limit 300ms): %v; read %q", path, err, got)
		}
	}
}

// /healthz stops answering ok once the daemon stops: its milter listeners
// are closed then, while messages in flight finish (up to
// shutdown_timeout), and a supervisor or balancer must not take it for a
// working milter.
func TestHealthzNotOKWhileStopping(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	health := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + td.info.Metrics.String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := health(); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("healthz while running: %d %q", code, body)
	}
	// A message in flight keeps the daemon draining.
	s := milterSession(t, td)
	if _, err := s.Mail("a@b", nil); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- td.stop() }()
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", td.info.Milter[0].String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil // the milter listener is closed
	})
	if code, body := health(); code != http.StatusServiceUnavailable {
		t.Errorf("healthz while stopping: %d %q, want 503", code, body)
	}
	s.Rcpt("c@d", nil)
	s.HeaderEnd()
	if _, act, err := s.End(); err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("message in flight: %v %v", act, err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("daemon exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

// milterSession opens a milter session with the daemon's first listener,
// as an MTA that adds header fields does, past its connect and HELO; it is
// closed when the test ends.
func milterSession(t *testing.T, td *testDaemon) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClientWithOptions("tcp", td.info.Milter[0].String(), gomilter.ClientOptions{
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ActionMask: gomilter.OptAddHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1")
	s.Helo("h")
	return s
}

// The start-up line names the listeners as the config and Postfix's
// smtpd_milters write them, with the port actually bound, so that it can
// be pasted into main.cf.
func TestStartLineListenersInPostfixSyntax(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	td := startDaemon(t, `listen:
  - address: unix:`+sock+`
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
log:
  format: json
`)
	want := []any{"unix:" + sock, "inet:" + td.info.Milter[1].String()}
	for _, line := range strings.Split(td.log.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "sluice started" {
			continue
		}
		if got, _ := rec["listen"].([]any); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("listen %v, want %v", rec["listen"], want)
		}
		return
	}
	t.Fatalf("no start-up line in:\n%s", td.log)
}

// A change that needs a restart is measured against what the daemon
// runs, not against the file of the last reload: a second reload with
// the listen change still in the file warns again (the sockets are still
// the old ones), and putting the running value back does not warn.
func TestReloadRestartWarningAgainstRunning(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	moved := strings.Replace(daemonConfig, "inet:127.0.0.1:0", "inet:127.0.0.1:1", 1)
	reloads := 0
	reload := func(text string) int {
		t.Helper()
		if err := os.WriteFile(td.config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(td.log.String(), "needs a restart")
		td.signal(t, syscall.SIGHUP)
		reloads++
		waitFor(t, func() bool { return strings.Count(td.log.String(), "config reloaded") == reloads })
		return strings.Count(td.log.String(), "needs a restart") - before
	}
	if n := reload(strings.Replace(moved, "%s", "X-Second", 1)); n != 1 {
		t.Errorf("reload changing listen: %d restart warnings, want 1", n)
	}
	if n := reload(strings.Replace(moved, "%s", "X-Third", 1)); n != 1 {
		t.Errorf("second reload with listen still changed: %d restart warnings, want 1", n)
	}
	if n := reload(strings.Replace(daemonConfig, "%s", "X-Fourth", 1)); n != 0 {
		t.Errorf("reload back to the running listen: %d restart warnings, want 0", n)
	}
	if name, _ := td.addedHeader(t); name != "X-Fourth" {
		t.Errorf("after the reloads: header %q, want X-Fourth", name)
	}
}

// A body.temp_dir that cannot be a directory is an error naming the file
// and line, as every other bad value is, in config check and at a reload;
// and config check refuses a path below a file, which serve cannot
// create, as it refuses a file.
func TestTempDirErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, tmp := range []string{file, filepath.Join(file, "sub")} {
		path := filepath.Join(dir, "sluice.yml")
		os.WriteFile(path, []byte("log:\n  level: info\nbody:\n  temp_dir: "+tmp+"\n"), 0o644)
		root := newRootCmd(filtertest.Registry())
		root.SetOut(io.Discard)
		root.SetArgs([]string{"config", "check", path})
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), path+":4: body.temp_dir: ") {
			t.Errorf("config check with body.temp_dir %s: error %v, want one naming %s:4", tmp, err, path)
		}
	}

	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)+"body:\n  temp_dir: "+file+"\n"), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	if !strings.Contains(td.log.String(), td.config+":13: body.temp_dir: ") {
		t.Errorf("reload error does not name the file and line of body.temp_dir:\n%s", td.log)
	}
}

// A reload in the middle of a message leaves that message to the
// pipeline it started with; the next connection gets the new one.
func TestReloadDuringMessage(t *testing.T) {
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	a := td.info.Milter[0]
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, step := range []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1") },
		func() (*gomilter.Action, error) { return s.Helo("h.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", nil) },
		func() (*gomilter.Action, error) { return s.Rcpt("b@lab.example", nil) },
		func() (*gomilter.Action, error) { return s.HeaderField("Subject", "x") },
		func() (*gomilter.Action, error) { return s.HeaderEnd() },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })

	mods, act, err := s.BodyReadFrom(strings.NewReader("hello\r\n"))
	if err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end: %v %v", act, err)
	}
	var added []string
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader {
			added = append(added, m.HeaderName)
		}
	}
	if len(added) != 1 || added[0] != "X-First" {
		t.Errorf("message in flight during the reload: added %v, want [X-First]", added)
	}
	if name, _ := td.addedHeader(t); name != "X-Second" {
		t.Errorf("connection after the reload: header %q, want X-Second", name)
	}
}

// config check names the file, the line and the column of a YAML syntax
// error, the place an administrator has to edit.
func TestConfigCheckSyntaxErrorPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yml")
	os.WriteFile(path, []byte("log:\n  level: info\n\tformat: text\n"), 0o644)
	root := newRootCmd(filtertest.Registry())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"config", "check", path})
	err := root.Execute()
	if want := path + ":3:1: found a tab character"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want prefix %q", err, want)
	}
}

// A filter's error about one of its options names the option's line:
// with the entry's line, a zone listed several lines further down left
// the administrator to search the block for it.
func TestConfigCheckOptionErrorLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yml")
	os.WriteFile(path, []byte(`filters:
  - type: dnsbl
    options:
      timeout: 2s
      attempts: 2
      zones:
        - zone: zen.example.org
          type: ip
        - zone: "bad zone!"
          type: ip
`), 0o644)
	r := runCLI(t, "", "config", "check", path)
	want := "sluice: " + path + `:9: filters[0] (dnsbl): zones[1].zone "bad zone!": not a DNS zone name`
	if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("config check: %+v, want status 1 and stderr starting %q", r, want)
	}
}

// --config with an empty value (a variable that is not set, as in
// "--config $SLUICE_CONFIG") names no file: it is an error, not the
// built-in defaults, which have no filters and under serve would pass
// every message unfiltered, whatever /etc/sluice/sluice.yml holds.
func TestConfigFlagEmptyRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--config", "", "config", "check"},
		{"--config=", "config", "check"},
		{"config", "check", "--config", ""},
	} {
		root := newRootCmd(filtertest.Registry())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		err := run(root, args)
		if err == nil || !strings.Contains(err.Error(), "--config") {
			t.Errorf("%q: error %v, want one about --config; output:\n%s", args, err, out.String())
		}
	}
	c := &cli{configPath: "", configSet: true, reg: filtertest.Registry()}
	if cfg, err := c.loadConfig(""); err == nil {
		t.Errorf("serve with --config \"\": config %+v, want an error", cfg)
	}
}

// config check with an empty FILE ("config check $NEW" with NEW unset)
// is an error: it checked the default file instead and said nothing of
// the file meant, so "config check $NEW && install $NEW ..." went on.
func TestConfigCheckEmptyFileArgRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yml")
	os.WriteFile(path, []byte("log:\n  level: info\n"), 0o644)
	root := newRootCmd(filtertest.Registry())
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	err := run(root, []string{"--config", path, "config", "check", ""})
	if err == nil || !strings.Contains(err.Error(), "FILE") {
		t.Errorf("error %v, want one about the empty FILE; output:\n%s", err, out.String())
	}
}
