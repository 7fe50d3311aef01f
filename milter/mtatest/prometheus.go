package mtatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Paths where Debian's "prometheus" package puts its binaries (dpkg -L prometheus).
const (
	prometheusBin = "/usr/bin/prometheus"
	promtoolBin   = "/usr/bin/promtool"
)

// Bounds for the Prometheus harness. Readiness is normally reached in well under
// a second (empty TSDB, no WAL to replay); the generous bound absorbs a loaded
// CI machine without letting a wedged server hang the test run.
const (
	promReadyTimeout = 30 * time.Second
	promStopTimeout  = 10 * time.Second
	promPollInterval = 100 * time.Millisecond
	promStartTries   = 3
	promQueryTimeout = 5 * time.Second
	promScrapeEvery  = "1s"
	promJobName      = "sluice"
)

// Prometheus is a real Prometheus server started by StartPrometheus for the
// duration of one test. It listens on a loopback port and scrapes the targets
// it was given every second.
type Prometheus struct {
	url    string
	client *http.Client
}

// URL returns the server's base URL, e.g. "http://127.0.0.1:41234".
func (p *Prometheus) URL() string { return p.url }

// PromQueryResult is the "data" member of a successful Prometheus query API
// response. Result is kept raw because its shape depends on ResultType
// (vector, matrix, scalar or string); see Vector for the common case.
type PromQueryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// PromSample is one element of an instant vector.
type PromSample struct {
	Metric map[string]string
	Time   time.Time
	Value  float64
}

// Vector decodes an instant-vector result. It is an error for any other
// result type.
func (r PromQueryResult) Vector() ([]PromSample, error) {
	if r.ResultType != "vector" {
		return nil, fmt.Errorf("result type %q, want vector", r.ResultType)
	}
	var raw []struct {
		Metric map[string]string `json:"metric"`
		Value  []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(r.Result, &raw); err != nil {
		return nil, fmt.Errorf("decode vector: %w", err)
	}
	samples := make([]PromSample, 0, len(raw))
	for i, s := range raw {
		// The API encodes a sample as [unix_seconds_float, "value_string"];
		// the value is a string so that NaN and ±Inf survive JSON.
		if len(s.Value) != 2 {
			return nil, fmt.Errorf("sample %d: value has %d elements, want 2", i, len(s.Value))
		}
		var ts float64
		if err := json.Unmarshal(s.Value[0], &ts); err != nil {
			return nil, fmt.Errorf("sample %d timestamp: %w", i, err)
		}
		var vs string
		if err := json.Unmarshal(s.Value[1], &vs); err != nil {
			return nil, fmt.Errorf("sample %d value: %w", i, err)
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, fmt.Errorf("sample %d value %q: %w", i, vs, err)
		}
		samples = append(samples, PromSample{
			Metric: s.Metric,
			Time:   time.UnixMilli(int64(math.Round(ts * 1000))),
			Value:  v,
		})
	}
	return samples, nil
}

// StartPrometheus installs Debian's prometheus package if needed, starts
// /usr/bin/prometheus on a free loopback port with a private configuration and
// storage directory, and waits until it reports ready. The server scrapes each
// target (a loopback "host:port" serving /metrics) every second under job
// "sluice". It is stopped when the test ends, and its log is copied to the test
// log if the test failed.
//
// Expect the first sample about 5 s after StartPrometheus returns: Prometheus
// 2.x hands discovered targets to the scrape manager on a fixed 5 s tick
// (observed with Debian's 2.42), so WaitForSeries timeouts should allow ~10 s.
//
// If Prometheus cannot be installed the test is skipped, or fails under CI=true.
func StartPrometheus(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	promEnsurePackage(t)
	for _, target := range targets {
		if err := promCheckTarget(target); err != nil {
			t.Fatalf("StartPrometheus: %v", err)
		}
	}

	dir := t.TempDir()
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := promWriteConfig(configPath, targets); err != nil {
		t.Fatalf("StartPrometheus: %v", err)
	}

	// Prometheus 2.x cannot be told to listen on port 0 and report the port
	// it got, so pick a free port and retry if another process takes it
	// between our probe and Prometheus's bind.
	var lastErr error
	for try := 1; try <= promStartTries; try++ {
		p, retry, err := startPrometheusOnce(t, dir, configPath, try)
		if err == nil {
			return p
		}
		lastErr = err
		if !retry {
			break
		}
		t.Logf("StartPrometheus: attempt %d: %v; retrying", try, err)
	}
	t.Fatalf("StartPrometheus: %v", lastErr)
	return nil
}

// startPrometheusOnce makes one attempt at starting the server. retry reports
// whether the failure looks like a lost race for the listening port.
func startPrometheusOnce(t testing.TB, dir, configPath string, try int) (p *Prometheus, retry bool, err error) {
	t.Helper()
	addr, err := promFreeAddr()
	if err != nil {
		return nil, false, err
	}
	dataDir := filepath.Join(dir, fmt.Sprintf("data%d", try))
	logPath := filepath.Join(dir, fmt.Sprintf("prometheus%d.log", try))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, false, fmt.Errorf("create log %s: %w", logPath, err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(prometheusBin,
		"--config.file="+configPath,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		// Debian's defaults point the console templates at /etc/prometheus;
		// keep the server from touching anything outside the temp dir.
		"--web.console.templates="+filepath.Join(dir, "consoles"),
		"--web.console.libraries="+filepath.Join(dir, "console_libraries"),
	)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A test binary that dies (a timeout panic skips the cleanups) takes
	// its Prometheus with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("start %s: %w", prometheusBin, err)
	}
	// exited is closed once the process is reaped; waitErr is only read
	// after that.
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		// Signal fails harmlessly if the process has already exited.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(promStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	p = &Prometheus{
		url: "http://" + addr,
		// No proxy: every request goes to the loopback server we started.
		client: &http.Client{Transport: &http.Transport{Proxy: nil}},
	}
	if err := p.waitReady(exited, &waitErr); err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		retry = bytes.Contains(log, []byte("address already in use"))
		return nil, retry, fmt.Errorf("prometheus on %s: %w\n--- prometheus log ---\n%s", addr, err, log)
	}

	t.Cleanup(func() {
		stop()
		p.client.CloseIdleConnections()
		if t.Failed() {
			log, err := os.ReadFile(logPath)
			if err != nil {
				t.Logf("prometheus log: %v", err)
				return
			}
			t.Logf("--- prometheus log (%s) ---\n%s", logPath, log)
		}
	})
	return p, false, nil
}

// waitReady polls /-/ready until it answers 200, the process exits, or
// promReadyTimeout passes.
func (p *Prometheus) waitReady(exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(promReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("exited before ready: %v", *waitErr)
		default:
		}
		lastErr = p.get(context.Background(), "/-/ready")
		if lastErr == nil {
			return nil
		}
		time.Sleep(promPollInterval)
	}
	return fmt.Errorf("not ready after %v: %v", promReadyTimeout, lastErr)
}

// get fetches path and returns an error unless the status is 200.
func (p *Prometheus) get(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return nil
}

// Query runs a PromQL instant query at the current time through
// /api/v1/query and returns the response's data member. A response with
// status "error" is returned as an error carrying Prometheus's message.
func (p *Prometheus) Query(ctx context.Context, expr string) (PromQueryResult, error) {
	form := url.Values{"query": {expr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/api/v1/query",
		strings.NewReader(form.Encode()))
	if err != nil {
		return PromQueryResult{}, fmt.Errorf("query %q: %w", expr, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.client.Do(req)
	if err != nil {
		return PromQueryResult{}, fmt.Errorf("query %q: %w", expr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return PromQueryResult{}, fmt.Errorf("query %q: read response: %w", expr, err)
	}
	// The API answers 400/422/503 with the same JSON envelope as success,
	// so decode before looking at the status code.
	var env struct {
		Status    string          `json:"status"`
		Data      PromQueryResult `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return PromQueryResult{}, fmt.Errorf("query %q: %s: decode %q: %w", expr, resp.Status, body, err)
	}
	if env.Status != "success" {
		return PromQueryResult{}, fmt.Errorf("query %q: %s: %s: %s", expr, resp.Status, env.ErrorType, env.Error)
	}
	return env.Data, nil
}

// WaitForSeries polls the instant query expr until it returns a sample and
// returns that sample's value. The test fails if no sample appears within
// timeout, if the query is invalid, or if it returns more than one sample
// (the caller should aggregate or narrow the selector so the value is not an
// arbitrary pick).
func (p *Prometheus) WaitForSeries(t testing.TB, expr string, timeout time.Duration) float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	polls := 0
	for {
		polls++
		ctx, cancel := context.WithTimeout(context.Background(), promQueryTimeout)
		res, err := p.Query(ctx, expr)
		cancel()
		if err != nil {
			t.Fatalf("WaitForSeries: %v", err)
		}
		samples, err := res.Vector()
		if err != nil {
			t.Fatalf("WaitForSeries %q: %v", expr, err)
		}
		switch {
		case len(samples) == 1:
			return samples[0].Value
		case len(samples) > 1:
			t.Fatalf("WaitForSeries %q: %d samples, want exactly one: %+v", expr, len(samples), samples)
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("WaitForSeries %q: no sample after %v (%d polls)", expr, timeout, polls)
		}
		time.Sleep(min(2*promPollInterval, time.Until(deadline)))
	}
}

// Promtool returns the path of promtool, installing Debian's prometheus
// package (which ships it) if needed. If it cannot be installed the test is
// skipped, or fails under CI=true.
func Promtool(t testing.TB) string {
	t.Helper()
	promEnsurePackage(t)
	return promtoolBin
}

// CheckMetrics runs "promtool check metrics" on a text exposition and fails
// the test with promtool's output if it reports anything: parse errors and
// lint warnings (such as a counter without the _total suffix) alike.
func CheckMetrics(t testing.TB, exposition []byte) {
	t.Helper()
	tool := Promtool(t)
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	// promtool exits 0 and prints nothing for a clean exposition; it exits 3
	// for lint problems and 1 for parse errors. Treat any output as a problem
	// too, so that a future promtool that only warns still fails the test.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- exposition ---\n%s", promErrOrNone(err), out, exposition)
	}
}

// CheckRules runs "promtool check rules" with every lint enabled and fatal on
// a Prometheus rule file, and fails the test with promtool's output if the
// file is invalid or has lint findings.
func CheckRules(t testing.TB, file string) {
	t.Helper()
	tool := Promtool(t)
	out, err := exec.Command(tool, "check", "rules", "--lint=all", "--lint-fatal", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", file, err, out)
	}
	// A clean run prints only "Checking FILE" and "SUCCESS: N rules found";
	// anything else is a finding promtool chose not to make fatal.
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Checking ") || strings.HasPrefix(line, "SUCCESS: ") {
			continue
		}
		t.Fatalf("promtool check rules %s: unexpected output %q\n%s", file, line, out)
	}
}

func promErrOrNone(err error) string {
	if err == nil {
		return "exit status 0 but output"
	}
	return err.Error()
}

// promEnsurePackage installs Debian's prometheus package through the
// project's idempotent installer and checks that both binaries are there.
func promEnsurePackage(t testing.TB) {
	t.Helper()
	err := promInstallPackage("prometheus")
	if err == nil {
		for _, bin := range []string{prometheusBin, promtoolBin} {
			if _, statErr := os.Stat(bin); statErr != nil {
				err = fmt.Errorf("package prometheus installed but %w", statErr)
				break
			}
		}
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prometheus is required under CI=true: %v", err)
	}
	t.Skipf("prometheus not available (run testdata/install-deps.sh prometheus as root): %v", err)
}

// promInstallPackage runs the module's testdata/install-deps.sh.
func promInstallPackage(pkgs ...string) error {
	script, err := promInstallScript()
	if err != nil {
		return err
	}
	cmd := exec.Command("bash", append([]string{script}, pkgs...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", script, strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// promInstallScript finds testdata/install-deps.sh by walking up from the
// working directory, which "go test" sets to the package under test, to the
// module root.
func promInstallScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locate testdata/install-deps.sh: %w", err)
	}
	for range 16 {
		script := filepath.Join(dir, "testdata", "install-deps.sh")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("locate testdata/install-deps.sh: %w", err)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("locate testdata/install-deps.sh: no go.mod above the working directory")
}

// promCheckTarget enforces the project rule that test servers only talk
// to loopback addresses.
func promCheckTarget(target string) error {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("target %q: bad port %q", target, port)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q: not a loopback address", target)
	}
	return nil
}

// promWriteConfig writes the server configuration. It is written as
// JSON, which Prometheus's YAML parser accepts, so that target strings need
// no hand escaping.
func promWriteConfig(path string, targets []string) error {
	if targets == nil {
		targets = []string{}
	}
	type staticConfig struct {
		Targets []string `json:"targets"`
	}
	type scrapeConfig struct {
		JobName        string         `json:"job_name"`
		ScrapeInterval string         `json:"scrape_interval"`
		ScrapeTimeout  string         `json:"scrape_timeout"`
		StaticConfigs  []staticConfig `json:"static_configs"`
	}
	config := struct {
		Global        map[string]string `json:"global"`
		ScrapeConfigs []scrapeConfig    `json:"scrape_configs"`
	}{
		Global: map[string]string{
			"scrape_interval":     promScrapeEvery,
			"scrape_timeout":      promScrapeEvery,
			"evaluation_interval": promScrapeEvery,
		},
		ScrapeConfigs: []scrapeConfig{{
			JobName:        promJobName,
			ScrapeInterval: promScrapeEvery,
			ScrapeTimeout:  promScrapeEvery,
			StaticConfigs:  []staticConfig{{Targets: targets}},
		}},
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return fmt.Errorf("encode prometheus config: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write prometheus config %s: %w", path, err)
	}
	return nil
}

// promFreeAddr returns a loopback address whose port was free a moment ago.
func promFreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free loopback port: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("find free loopback port: %w", err)
	}
	return addr, nil
}
