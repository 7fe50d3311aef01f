package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The monitoring kit in docs/: the Grafana dashboard and the Prometheus
// alert rules.
var (
	monitoringDashboard = filepath.Join(repoRoot, "docs", "grafana-dashboard.json")
	monitoringRules     = []string{
		filepath.Join(repoRoot, "docs", "alerts", "sluice.yml"),
		filepath.Join(repoRoot, "docs", "alerts", "senders.yml"),
	}
)

// Series that Prometheus makes itself, not sluice: the scrape's up and
// the alerts of the rules.
var monitoringPrometheusSeries = []string{"up", "ALERTS"}

// The alert rules pass promtool's checks with every lint, their unit tests
// pass, every alert of sluice.yml has a test, and the alerts the
// operations guide promises exist.
func TestMonitoringAlertRules(t *testing.T) {
	mtatest.CheckRules(t, monitoringRules[0])
	tool := mtatest.Promtool(t)
	cmd := exec.Command(tool, "test", "rules", "alerts_test.yml")
	cmd.Dir = filepath.Join(repoRoot, "testdata", "alerts")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	tests, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "alerts", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`alertname: (\S+)`).FindAllStringSubmatch(string(tests), -1) {
		tested[m[1]] = true
	}
	alerts := map[string]bool{}
	for _, file := range monitoringRules {
		for _, r := range monitoringRuleList(t, file) {
			alerts[r.Alert] = true
			if file == monitoringRules[0] && !tested[r.Alert] {
				t.Errorf("alert %s has no test in testdata/alerts/alerts_test.yml", r.Alert)
			}
		}
	}
	for _, want := range []string{"SluiceDown", "SluiceRestarting", "SluiceFilterFailing", "SluiceDNSBLListDown", "SluiceDNSBLListRefusing",
		"SluiceBayesStoreUnavailable", "SluiceArchiveFailing", "SluiceNewSenderDomain"} {
		if !alerts[want] {
			t.Errorf("no alert %s in docs/alerts/", want)
		}
	}
	// The table of docs/install.md names every alert, and no other.
	guide, err := os.ReadFile(filepath.Join(repoRoot, "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(Sluice[A-Za-z]+)` \\|").FindAllStringSubmatch(string(guide), -1) {
		listed[m[1]] = true
		if !alerts[m[1]] {
			t.Errorf("docs/install.md lists alert %s, which docs/alerts/ does not have", m[1])
		}
	}
	for a := range alerts {
		if !listed[a] {
			t.Errorf("alert %s is missing from the table in docs/install.md", a)
		}
	}
}

// sluice_session_panics_total counts two kinds of panic, each with its
// own log line and outcome (see libraryLog): one in sluice's session
// code, whose message got on_failure, and one the milter library
// recovered, whose connection was closed so that the MTA applied its
// milter default action. The alert on it must send the reader to both
// lines, not only to the first.
func TestMonitoringSessionPanicsAlertNamesBothLines(t *testing.T) {
	var desc string
	for _, r := range monitoringRuleList(t, monitoringRules[0]) {
		if r.Alert == "SluiceSessionPanics" {
			desc = r.Annotations["description"]
		}
	}
	if desc == "" {
		t.Fatal("no alert SluiceSessionPanics with a description in docs/alerts/sluice.yml")
	}
	for _, want := range []string{`"panic in milter session"`, `"panic in the milter library"`, "filter_defaults.on_failure", "milter default action"} {
		if !strings.Contains(desc, want) {
			t.Errorf("SluiceSessionPanics does not say %s: %s", want, desc)
		}
	}
}

type monitoringRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Annotations map[string]string `yaml:"annotations"`
}

func monitoringRuleList(t *testing.T, file string) []monitoringRule {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []monitoringRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []monitoringRule
	for _, g := range doc.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	Title      string           `json:"title"`
	UID        string           `json:"uid"`
	Schema     int              `json:"schemaVersion"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID          int    `json:"id"`
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(monitoringDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", monitoringDashboard, err)
	}
	return d
}

// The dashboard is a well-formed Grafana dashboard: unique panel ids,
// panels inside the 24-column grid without overlapping, every query panel
// on the dashboard's Prometheus data source variable, every variable it
// uses defined, and a panel for each topic the operations guide names.
func TestMonitoringDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || d.Schema < 30 || len(d.Panels) == 0 {
		t.Fatalf("dashboard: title %q, uid %q, schemaVersion %d, %d panels", d.Title, d.UID, d.Schema, len(d.Panels))
	}
	vars := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var titles []string
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: query %q with refId %q", p.Title, tg.Expr, tg.RefID)
			}
			refs[tg.RefID] = true
			for _, m := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] {
					t.Errorf("panel %q uses the undefined variable $%s", p.Title, m[1])
				}
			}
		}
	}
	// The topics of docs/install.md and the issue that asked for the
	// dashboard, each by a word of a panel title.
	for _, topic := range []string{"by verdict", "Refusals", "Filter time", "errors and timeouts", "List health", "Lookup errors",
		"Redis round trips", "Classification time", "Archive errors", "watched sender domains"} {
		if !slices.ContainsFunc(titles, func(s string) bool { return strings.Contains(s, topic) }) {
			t.Errorf("no dashboard panel about %q (panels: %v)", topic, titles)
		}
	}
}

// monitoringQueries returns every PromQL expression of the dashboard and
// the alert rules, by where it comes from.
func monitoringQueries(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			out["dashboard panel "+p.Title+" "+tg.RefID] = tg.Expr
		}
	}
	for _, file := range monitoringRules {
		for _, r := range monitoringRuleList(t, file) {
			out["alert "+r.Alert] = r.Expr
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(sluice_[a-z0-9_]+|up|ALERTS)\b`)

// Every metric the dashboard and the alert rules use exists on the
// /metrics of a daemon running every filter after some mail (and some
// trouble: a listed client, a list refusing queries, a Redis store that
// hangs, an archive that cannot be written). Then a real Prometheus
// scrapes that daemon and runs every dashboard query and alert
// expression: all must be valid, and the dashboard's return data.
func TestMonitoringMetricsExist(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	if err := os.WriteFile(filepath.Join(state, "blocked"), []byte("a file where the archive wants a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(t.TempDir(), "access")
	os.WriteFile(rules, []byte("watched.*\tWATCH\nbanned.example\tREJECT\n"), 0o644)
	dns := dnsbltest.Start(t)
	dns.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	// A list that answers everything with its "refused" code.
	for _, c := range []string{"1", "2", "3"} {
		dns.AddA(c+".0.0.127.refuse.test", 300, "127.255.255.254")
	}
	rds := redistest.Start(t)
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 300ms
      attempts: 1
      probe_interval: 200ms
      skip_private: false
      zones:
        - zone: bl.test
        - zone: refuse.test
          action: tag
  - type: senders
    options:
      files: [%s]
  - type: headerfix
  - type: bayes
    name: bayes-redis
    options:
      store: redis
      redis:
        addrs: [%s]
        key_prefix: monitoring
        timeout: 200ms
      stats_interval: 100ms
      header:
        name: X-Redis-Bayes
  - type: bayes
    name: bayes-local
    options:
      stats_interval: 100ms
      autolearn:
        ham: 0.5
  - type: archive
    options:
      targets:
        default: copies/all.mbox
  - type: archive
    name: archive-broken
    options:
      targets:
        default: blocked/all.mbox
`, state, dns.Addr, rules, rds.Addr))

	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	hdrs, body := monitoringSplit(ham)
	broken := append([][2]string{{"Date", "Fri, 8 Sep 2017 13:44:33 -0400\rX-Stray: merged"}}, hdrs...)
	a := td.info.Milter[0]
	monitoringSend(t, a, "127.0.0.1", "news@watched.example", broken, body) // watch, repair, autolearn, archives
	monitoringSend(t, a, "127.0.0.1", "alice@example.org", hdrs, body)      // cached lookups
	monitoringSend(t, a, "127.0.0.2", "alice@example.org", hdrs, body)      // listed: refused at connect
	monitoringSend(t, a, "127.0.0.3", "bob@banned.example", hdrs, body)     // refused sender
	rds.Pause(t)
	monitoringSend(t, a, "127.0.0.1", "carol@example.org", hdrs, body) // Redis hangs: unclassified
	rds.Resume(t)
	time.Sleep(300 * time.Millisecond) // a store measurement and a probe round

	exposition := td.metrics(t)
	present := map[string]bool{}
	for _, line := range strings.Split(exposition, "\n") {
		if name, _, ok := strings.Cut(line, "{"); ok && !strings.HasPrefix(line, "#") {
			present[name] = true
		} else if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			present[name] = true
		}
	}
	queries := monitoringQueries(t)
	used := map[string][]string{}
	for where, expr := range queries {
		for _, m := range metricName.FindAllString(expr, -1) {
			used[m] = append(used[m], where)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d metric names found in the dashboard and rules: %v", len(used), used)
	}
	for _, name := range sortedKeys(used) {
		if slices.Contains(monitoringPrometheusSeries, name) {
			continue
		}
		if !present[name] {
			t.Errorf("%s (used by %s) is not on the daemon's /metrics", name, strings.Join(used[name], ", "))
		}
	}
	if t.Failed() {
		t.Fatalf("/metrics:\n%s", grepLines(exposition, "sluice_"))
	}

	// A real Prometheus runs every query.
	prom := mtatest.StartPrometheus(t, td.info.Metrics.String())
	prom.WaitForSeries(t, `sluice_build_info`, 30*time.Second)
	prom.WaitForSeries(t, `count_over_time(sluice_build_info[1m]) >= 3`, 30*time.Second)
	expand := strings.NewReplacer("$job", "sluice", "$instance", ".*", "$__rate_interval", "1m", "${datasource}", "")
	var names []string
	for where := range queries {
		names = append(names, where)
	}
	sort.Strings(names)
	for _, where := range names {
		expr := expand.Replace(queries[where])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := prom.Query(ctx, expr)
		cancel()
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if !strings.HasPrefix(where, "dashboard ") || strings.Contains(expr, "ALERTS") {
			continue
		}
		if samples, err := res.Vector(); err != nil || len(samples) == 0 {
			t.Errorf("%s returns no data (%v): %s", where, err, expr)
		}
	}
}

// monitoringSplit splits a message file into header fields and body.
func monitoringSplit(raw []byte) ([][2]string, string) {
	head, body, _ := strings.Cut(string(raw), "\n\n")
	var hdrs [][2]string
	for _, line := range strings.Split(head, "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(hdrs) > 0 {
			hdrs[len(hdrs)-1][1] += "\n" + line
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			hdrs = append(hdrs, [2]string{k, strings.TrimSpace(v)})
		}
	}
	return hdrs, strings.ReplaceAll(body, "\n", "\r\n")
}

// monitoringSend sends one message through the milter at a as an MTA
// would for a client at clientIP, up to where sluice ends it.
func monitoringSend(t *testing.T, a fmt.Stringer, clientIP, from string, hdrs [][2]string, body string) {
	t.Helper()
	c := gomilter.NewClientWithOptions("tcp", a.String(), gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func(act *gomilter.Action, err error) bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return act.Code == gomilter.ActContinue
	}
	if !next(s.Conn("client.example", gomilter.FamilyInet, 4000, clientIP)) || !next(s.Helo("client.example")) ||
		!next(s.Mail(from, nil)) {
		return
	}
	s.Macros(gomilter.CodeRcpt, "i", "MON"+strings.ReplaceAll(clientIP, ".", ""))
	if !next(s.Rcpt("bob@lab.example", nil)) {
		return
	}
	for _, h := range hdrs {
		if !next(s.HeaderField(h[0], h[1])) {
			return
		}
	}
	if !next(s.HeaderEnd()) {
		return
	}
	if _, _, err := s.BodyReadFrom(strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

// A bayes filter that a reload removes takes its store gauges with it:
// left behind, they would report the size of a store nothing uses until
// a restart. The filter that stays keeps its gauges.
func TestBayesReloadDropsGaugesOfRemovedFilter(t *testing.T) {
	state := t.TempDir()
	cfg := func(both bool) string {
		s := fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    options:
      stats_interval: 100ms
`, state)
		if both {
			s += fmt.Sprintf(`  - type: bayes
    name: bayes-b
    options:
      db: %s
      stats_interval: 100ms
      header:
        name: X-Sluice-Bayes-B
`, filepath.Join(state, "b.db"))
		}
		return s
	}
	td := startDaemonWith(t, cfg(true))
	waitFor(t, func() bool {
		m := td.metrics(t)
		return dnsblMetric(m, "sluice_bayes_store_tokens", `filter="bayes"`) == 0 &&
			dnsblMetric(m, "sluice_bayes_store_tokens", `filter="bayes-b"`) == 0
	})
	os.WriteFile(td.config, []byte(cfg(false)), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	// No session holds the old configuration: it is closed at once.
	waitFor(t, func() bool {
		return dnsblMetric(td.metrics(t), "sluice_bayes_store_tokens", `filter="bayes-b"`) == -1
	})
	m := td.metrics(t)
	for _, name := range []string{"sluice_bayes_store_bytes", "sluice_bayes_store_messages", "sluice_bayes_ngram_messages", "sluice_bayes_store_import_incomplete"} {
		if v := dnsblMetric(m, name, `filter="bayes-b"`); v != -1 {
			t.Errorf("%s of the removed filter: %v", name, v)
		}
	}
	if v := dnsblMetric(m, "sluice_bayes_store_tokens", `filter="bayes"`); v != 0 {
		t.Errorf("the filter kept: sluice_bayes_store_tokens %v, want 0", v)
	}
}

// A reload that fails leaves the senders gauges as the configuration in
// force has them: the filter the failed reload built (with other rules
// files) reports its rules as it loads them, and is closed again when a
// later entry fails, but its numbers must not stay behind on
// sluice_sender_rules as if they were in force.
func TestSendersFailedReloadKeepsGauges(t *testing.T) {
	state := t.TempDir()
	one := filepath.Join(state, "one")
	two := filepath.Join(state, "two")
	os.WriteFile(one, []byte("a.example\tREJECT\nb.example\tREJECT\n"), 0o644)
	os.WriteFile(two, []byte("c.example\tREJECT\nd.example\tREJECT\ne.example\tREJECT\n"), 0o644)
	cfg := func(files, extra string) string {
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
%s`, state, files, extra)
	}
	td := startDaemonWith(t, cfg(one, ""))
	rules := func() float64 { return dnsblMetric(td.metrics(t), "sluice_sender_rules", `filter="senders"`) }
	if got := rules(); got != 2 {
		t.Fatalf("sluice_sender_rules at start: %v, want 2", got)
	}
	// Both files, and a bayes entry whose store cannot be opened (its
	// db is a directory): the senders filter is built, then the reload
	// fails.
	os.WriteFile(td.config, []byte(cfg(one+", "+two, fmt.Sprintf("  - type: bayes\n    options:\n      db: %s\n", state))), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	if got := rules(); got != 2 {
		t.Errorf("sluice_sender_rules after a failed reload: %v, want the 2 rules still in force", got)
	}
}

// A reload that fails leaves no series under a filter name that only the
// rejected configuration had. Its bayes filter was built (creating its
// auto-learn failure series at 0) and closed again when a later entry
// failed; left behind, those series would show a filter that never ran
// on dashboards and in alerts, until a restart.
func TestFailedReloadLeavesNoSeriesOfItsNewFilters(t *testing.T) {
	state := t.TempDir()
	base := fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
`, state)
	td := startDaemonWith(t, base)
	if v := dnsblMetric(td.metrics(t), "sluice_bayes_autolearn_failures_total", `filter="bayes"`, `class="spam"`); v != 0 {
		t.Fatalf("running filter's sluice_bayes_autolearn_failures_total %v, want 0", v)
	}
	// A new bayes filter, then an entry whose store cannot be opened (its
	// db is a directory): the reload fails after new-bayes was built.
	os.WriteFile(td.config, []byte(base+fmt.Sprintf(`  - type: bayes
    name: new-bayes
    options:
      db: %s
      header:
        name: X-New-Bayes
  - type: bayes
    name: broken
    options:
      db: %s
      header:
        name: X-Broken-Bayes
`, filepath.Join(state, "new.db"), state)), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	m := td.metrics(t)
	for _, line := range strings.Split(m, "\n") {
		if strings.Contains(line, `filter="new-bayes"`) || strings.Contains(line, `filter="broken"`) {
			t.Errorf("series of a filter of the failed reload: %s", line)
		}
	}
	if v := dnsblMetric(m, "sluice_bayes_autolearn_failures_total", `filter="bayes"`, `class="spam"`); v != 0 {
		t.Errorf("running filter's sluice_bayes_autolearn_failures_total after the failed reload: %v, want 0", v)
	}
}
