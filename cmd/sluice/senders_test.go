package main

// Tests of "sluice senders test" and of docs/senders.md: the options
// table against senders.Config, the configuration examples, the example
// session of the test command, the alert rules, and the rows of the
// senders metrics in docs/metrics.md.

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/metrics"
	"github.com/sluice-mail/sluice/filters/senders"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

const sendersAccess = "../../testdata/senders/access"

func TestSendersTestCommand(t *testing.T) {
	r := runCLI(t, "", "senders", "test", "prvs=1234abcdef=Bob@Emalsrv.UPS.com.", "--file", sendersAccess, "--helo", "dialup.example", "--client-name", "mx.example")
	want := `29 rules from ../../testdata/senders/access
mail_from bob@emalsrv.ups.com
  rule    ../../testdata/senders/access:41: /^(emalsrv|complains)\./ ERROR:"550 5.7.1 Phishing campaign"
  action  reject: 550 5.7.1 Phishing campaign
  watch   ../../testdata/senders/access:37: emalsrv.* WATCH (domain emalsrv.ups.com)
header_from bob@emalsrv.ups.com
  rule    ../../testdata/senders/access:41: /^(emalsrv|complains)\./ ERROR:"550 5.7.1 Phishing campaign"
  action  reject: 550 5.7.1 Phishing campaign
  watch   ../../testdata/senders/access:37: emalsrv.* WATCH (domain emalsrv.ups.com)
helo dialup.example
  rule    ../../testdata/senders/access:44: Helo:dialup.example REJECT
  action  reject: 550 5.7.1 Access denied
client_name mx.example
  rule    none matches
  action  continue
`
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stderr %q, output:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}

	actions := map[string]string{
		"x@linkedinmail.com":    "discard (the client gets 250, nothing is delivered)",
		"x@slow.example":        "tempfail: 451 4.7.1 Greylisted, try again later",
		"x@hold.example":        "quarantine: needs a look",
		"x@ok.spam.example":     "continue (OK: less specific rules do not apply)",
		"x@skip.example":        "continue (SKIP: no rule decides)",
		"<>":                    "reject: 550 5.7.1 We send no mail, so we take no bounces",
		"x@nothing.example":     "continue",
		"ceo+x@partner.example": "continue (OK: less specific rules do not apply)",
	}
	for addr, action := range actions {
		r := runCLI(t, "", "senders", "test", addr, "--file", sendersAccess)
		lines := strings.Split(r.stdout, "\n")
		if r.code != 0 || len(lines) < 4 || lines[3] != "  action  "+action {
			t.Errorf("%s: exit %d, output:\n%s\nwant the mail_from action %q", addr, r.code, r.stdout, action)
		}
		if addr == "<>" && strings.Contains(r.stdout, "header_from") {
			t.Errorf("the null sender was looked up as a From: address:\n%s", r.stdout)
		}
	}
}

// With the configuration: every senders filter, its file scopes, its
// reject_reply, and whether a watched domain is in its seen file.
func TestSendersTestCommandConfig(t *testing.T) {
	dir := t.TempDir()
	abs, _ := filepath.Abs("../../testdata/senders")
	seen := senders.Config{}.SeenPath(dir, "campaigns")
	os.WriteFile(seen, []byte("2026-03-01T10:02:03Z\temalsrv.ups.com\temalsrv.*\n"), 0o640)
	cfg := filepath.Join(dir, "sluice.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir: %s
filters:
  - type: senders
    name: hosts
    options:
      files:
        - path: %s/hosts
          match: [helo, client_name]
  - type: senders
    name: campaigns
    options:
      reject_reply: "554 5.7.1 Go away"
      files: [%s/access]
`, dir, abs, abs)), 0o644)
	r := runCLI(t, "", "--config", cfg, "senders", "test", "x@emalsrv.ups.com", "--client-name", "pool-1.dynamic.example")
	want := fmt.Sprintf(`filter hosts: 2 rules from %[1]s/hosts
mail_from x@emalsrv.ups.com
  rule    none matches
  action  continue
header_from x@emalsrv.ups.com
  rule    none matches
  action  continue
client_name pool-1.dynamic.example
  rule    %[1]s/hosts:3: .dynamic.example ERROR:"554 5.7.1 Dynamic address, use your provider's relay"
  action  reject: 554 5.7.1 Dynamic address, use your provider's relay

filter campaigns: 29 rules from %[1]s/access
mail_from x@emalsrv.ups.com
  rule    %[1]s/access:41: /^(emalsrv|complains)\./ ERROR:"550 5.7.1 Phishing campaign"
  action  reject: 550 5.7.1 Phishing campaign
  watch   %[1]s/access:37: emalsrv.* WATCH (domain emalsrv.ups.com seen since 2026-03-01T10:02:03Z)
header_from x@emalsrv.ups.com
  rule    %[1]s/access:41: /^(emalsrv|complains)\./ ERROR:"550 5.7.1 Phishing campaign"
  action  reject: 550 5.7.1 Phishing campaign
  watch   %[1]s/access:37: emalsrv.* WATCH (domain emalsrv.ups.com seen since 2026-03-01T10:02:03Z)
client_name pool-1.dynamic.example
  rule    none matches
  action  continue
`, abs)
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stderr %q, output:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
	}

	r = runCLI(t, "", "--config", cfg, "senders", "test", "x@spam.example", "--filter", "campaigns")
	if !strings.HasPrefix(r.stdout, "filter campaigns:") || !strings.Contains(r.stdout, "action  reject: 554 5.7.1 Go away") || strings.Contains(r.stdout, "filter hosts") {
		t.Errorf("--filter campaigns:\n%s", r.stdout)
	}
	r = runCLI(t, "", "--config", cfg, "senders", "test", "x@emalsrv.fedex.com", "--filter", "campaigns")
	if !strings.Contains(r.stdout, "(domain emalsrv.fedex.com is new: the daemon reports it)") {
		t.Errorf("a domain not in the seen file:\n%s", r.stdout)
	}
	if _, err := os.Stat(seen); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(seen); strings.Contains(string(data), "fedex") {
		t.Error("senders test wrote the seen file")
	}
}

func TestSendersTestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("ok.example OK\nbad.example REJEKT\n"), 0o644)
	none := filepath.Join(dir, "none.yml")
	os.WriteFile(none, []byte("filters: []\n"), 0o644)
	typo := filepath.Join(dir, "typo.yml")
	os.WriteFile(typo, []byte("filters:\n  - type: senders\n    options:\n      files: [/x]\n      watch_al: true\n"), 0o644)
	// The command reads the options as the daemon does: the line is the
	// file's, the message the same as "sluice config check" gives.
	scalar := filepath.Join(dir, "scalar.yml")
	os.WriteFile(scalar, []byte("filters:\n  - type: senders\n    options:\n      reload_interval: 5s\n      files: /etc/mail/access\n"), 0o644)
	interval := filepath.Join(dir, "interval.yml")
	os.WriteFile(interval, []byte("filters:\n  - type: senders\n    options:\n      files: [/x]\n      reload_interval: 5\n"), 0o644)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"senders", "test", "x@y.example", "--file", bad}, 1, bad + `:2: unknown action "REJEKT"`},
		{[]string{"--config", none, "senders", "test", "x@y.example"}, 1, "has no senders filter; name rules files with --file"},
		{[]string{"--config", none, "senders", "test", "x@y.example", "--filter", "x"}, 1, `has no senders filter named "x"`},
		{[]string{"--config", typo, "senders", "test", "x@y.example"}, 1, "watch_al"},
		{[]string{"--config", typo, "senders", "test", "x@y.example"}, 1, typo + ":5: filters[0].options.watch_al: unknown key"},
		{[]string{"--config", scalar, "senders", "test", "x@y.example"}, 1, scalar + ":5: filters[0].options.files: want a list"},
		{[]string{"--config", interval, "senders", "test", "x@y.example"}, 1, interval + `:5: filters[0].options.reload_interval: "5": want a duration with a unit`},
		{[]string{"senders", "test", "x@y.example", "--match", "helo"}, statusUsage, "--match applies to --file files only"},
		{[]string{"senders", "test", "x@y.example", "--file", bad, "--match", "envelope"}, statusUsage, `--match: unknown subject "envelope"`},
		{[]string{"senders", "test", "--file", bad}, statusUsage, "accepts 1 arg"},
		{[]string{"senders", "test", "x@y.example", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"senders", "test", "x@y.example", "--file", filepath.Join(dir, "missing")}, 1, "no such file"},
	}
	for _, tt := range tests {
		r := runCLI(t, "", tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
}

func TestDocSendersOptions(t *testing.T) {
	keys := map[string]bool{}
	ct := reflect.TypeOf(senders.Config{})
	for i := 0; i < ct.NumField(); i++ {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("yaml"), ",")
		keys[name] = true
	}
	ft := reflect.TypeOf(senders.FileConfig{})
	for i := 0; i < ft.NumField(); i++ {
		name, _, _ := strings.Cut(ft.Field(i).Tag.Get("yaml"), ",")
		keys["files[]."+name] = true
	}
	rows := docOptionRows(t, "docs/senders.md")
	for k := range keys {
		if _, ok := rows[k]; !ok {
			t.Errorf("docs/senders.md does not document option %s", k)
		}
	}
	for k := range rows {
		if !keys[k] {
			t.Errorf("docs/senders.md documents %s, which is not an option of senders.Config", k)
		}
	}
	want := map[string]string{
		"reload_interval": senders.DefaultReloadInterval.String(),
		"seen_limit":      fmt.Sprint(senders.DefaultSeenLimit),
		"reject_reply":    senders.DefaultReject,
		"watch_all":       "false",
		"files[].match":   "[" + strings.ReplaceAll(senders.DefaultScope.String(), ",", ", ") + "]",
	}
	for k, v := range want {
		if spans := codeSpans(rows[k]); len(spans) == 0 || spans[0] != v {
			t.Errorf("docs/senders.md: the default of %s is documented as %q, the code has %q", k, rows[k], v)
		}
	}
}

// Every configuration example of docs/senders.md builds a pipeline, with
// the files it names replaced by scratch copies.
func TestDocSendersExamples(t *testing.T) {
	n := 0
	for _, b := range yamlBlocks("docs/senders.md", readDoc(t, "docs/senders.md")) {
		b.text = dedent(b.text)
		if !strings.HasPrefix(b.text, "# sluice.yml") {
			continue
		}
		n++
		dir := t.TempDir()
		text := strings.ReplaceAll(b.text, "/var/lib/sluice", dir)
		for _, f := range []string{"/etc/mail/access", "/etc/sluice/hosts", "/etc/sluice/campaigns", "/etc/sluice/senders"} {
			local := filepath.Join(dir, filepath.Base(f))
			os.WriteFile(local, []byte("spam.example REJECT\nemalsrv.* WATCH\n"), 0o644)
			text = strings.ReplaceAll(text, f, local)
		}
		cfg, err := config.Parse("docs/senders.md", []byte(text), registry())
		if err != nil {
			t.Errorf("docs/senders.md:%d: %v", b.line, err)
			continue
		}
		p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Errorf("docs/senders.md:%d: %v", b.line, err)
			continue
		}
		p.Close()
	}
	if n < 2 {
		t.Errorf("found %d configuration examples in docs/senders.md", n)
	}
}

// The example session of "sluice senders test" in docs/senders.md is
// what the command prints for the rules of the getting-started example.
func TestDocSendersSession(t *testing.T) {
	doc := readDoc(t, "docs/senders.md")
	rulesAt := strings.Index(doc, "   # /etc/sluice/senders\n")
	if rulesAt < 0 {
		t.Fatal("docs/senders.md: no example rules file")
	}
	rulesText := doc[rulesAt:]
	rulesText = dedent(rulesText[:strings.Index(rulesText, "```")])
	dir := t.TempDir()
	rules := filepath.Join(dir, "senders")
	os.WriteFile(rules, []byte(rulesText), 0o644)
	cfg := filepath.Join(dir, "sluice.yml")
	os.WriteFile(cfg, []byte("state_dir: "+dir+"\nfilters:\n  - type: senders\n    options:\n      files: ["+rules+"]\n"), 0o644)

	at := strings.Index(doc, "$ sluice senders test ")
	if at < 0 {
		t.Fatal("docs/senders.md: no example session")
	}
	session := doc[at:]
	session = session[:strings.Index(session, "```")]
	n := 0
	for _, part := range strings.Split(session, "$ ")[1:] {
		cmd, expected, _ := strings.Cut(part, "\n")
		args := strings.Fields(cmd)[1:]
		r := runCLI(t, "", append([]string{"--config", cfg}, args...)...)
		got := strings.ReplaceAll(r.stdout, rules, "/etc/sluice/senders")
		if prefix, cut := strings.CutSuffix(expected, "...\n"); cut {
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("%s: output\n%s\ndoes not start as documented:\n%s", cmd, got, prefix)
			}
		} else if got != expected {
			t.Errorf("%s: output\n%s\ndocumented:\n%s", cmd, got, expected)
		}
		n++
	}
	if n < 2 {
		t.Errorf("%d commands in the example session", n)
	}
}

// The example alert rules pass promtool's checks and its unit tests
// (they fire on the first new domain, on a counter that appears with its
// first domain, and after a restart, and stay quiet otherwise), and the
// expression quoted in docs/senders.md is the file's.
func TestDocSendersAlerts(t *testing.T) {
	file := filepath.Join(repoRoot, "docs", "alerts", "senders.yml")
	mtatest.CheckRules(t, file)
	tool := mtatest.Promtool(t)
	cmd := exec.Command(tool, "test", "rules", "alerts_test.yml")
	cmd.Dir = filepath.Join(repoRoot, "testdata", "senders")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	rules, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, expr, _ := strings.Cut(string(rules), "expr: |\n")
	expr, _, _ = strings.Cut(expr, "        labels:")
	doc := readDoc(t, "docs/senders.md")
	for _, line := range strings.Split(strings.TrimSpace(expr), "\n") {
		if !strings.Contains(doc, strings.TrimSpace(line)) {
			t.Errorf("docs/senders.md does not quote the alert expression line %q", strings.TrimSpace(line))
		}
	}
}

// The senders metrics are documented in docs/metrics.md with their type
// and labels (docs_test.go checks names; this feeds the senders observer
// so that the series exist and their labels can be compared).
func TestDocSendersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "test", runtime.Version())
	var obs senders.Observer = m
	obs.SenderRulesLoaded("senders", 10, []string{"emalsrv.*"})
	obs.SenderRulesReloaded("senders", true)
	obs.SenderWatchNewDomain("senders", "emalsrv.*")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fam := range families {
		if !strings.HasPrefix(fam.GetName(), "sluice_sender_") {
			continue
		}
		var labels []string
		for _, lp := range fam.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		got[fam.GetName()] = strings.ToLower(fam.GetType().String()) + " " + strings.Join(labels, ",")
	}
	want := map[string]string{
		"sluice_sender_watch_new_domains_total":      "counter filter,pattern",
		"sluice_sender_rules":                        "gauge filter",
		"sluice_sender_rules_reloads_total":          "counter filter,result",
		"sluice_sender_rules_last_reload_successful": "gauge filter",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registered sender metrics %v, want %v", got, want)
	}
	doc := map[string]string{}
	for _, tbl := range mdTables(readDoc(t, "docs/metrics.md")) {
		if tbl.column("Metric") != 0 {
			continue
		}
		for _, r := range tbl.rows {
			name, _ := onlyCode(r.cell(0))
			doc[name] = r.cell(tbl.column("Type")) + " " + strings.Join(codeSpans(r.cell(tbl.column("Labels"))), ",")
		}
	}
	for name, w := range want {
		if doc[name] != w {
			t.Errorf("docs/metrics.md documents %s as %q, want %q", name, doc[name], w)
		}
	}
	for _, fam := range families {
		if fam.GetName() != "sluice_sender_watch_new_domains_total" {
			continue
		}
		if v := fam.GetMetric()[0].GetCounter().GetValue(); v != 1 {
			t.Errorf("sluice_sender_watch_new_domains_total = %v after one new domain, want 1", v)
		}
	}
}

// An empty --file is named as such, not blamed on a --match not given.
func TestSendersTestEmptyFile(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(rules, []byte("example.org REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "senders", "test", "a@example.org", "--file", rules, "--file", "")
	if r.code != statusUsage || !strings.Contains(r.stderr, "--file: empty path") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// senders test agrees with the filter on Postfix's client name
// "unknown": the daemon compares it with no rule, so a rule that would
// match the word (a glob, a regular expression, Connect:unknown) must
// not be shown as deciding.
func TestSendersTestClientNameUnknown(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "access")
	if err := os.WriteFile(rules, []byte("Connect:unknown REJECT\n/^unk/ REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "senders", "test", "a@example.org", "--file", rules, "--match", "client_name", "--client-name", "unknown")
	if r.code != 0 || !strings.Contains(r.stdout, "client_name unknown\n  rule    none looked up: Postfix's word for a client without a verified name\n  action  continue\n") {
		t.Errorf("exit %d, stderr %q, output:\n%s", r.code, r.stderr, r.stdout)
	}
	// Another name is still looked up.
	r = runCLI(t, "", "senders", "test", "a@example.org", "--file", rules, "--match", "client_name", "--client-name", "unknown.example")
	if r.code != 0 || !strings.Contains(r.stdout, "action  reject") {
		t.Errorf("a real name: exit %d, stderr %q, output:\n%s", r.code, r.stderr, r.stdout)
	}
}

// The header_from lookup reads ADDRESS as the filter reads a From:
// field, not as an envelope sender: the two differ for a display name,
// which a pasted From: line has, and for the envelope forms Postfix
// rewrites ("bob%spam.example"), which no mail reader shows as an
// address. Its verdict must be the filter's.
func TestSendersTestHeaderFromAsTheFilterReadsIt(t *testing.T) {
	tests := []struct {
		value, want string
	}{
		{"CEO <ceo@partner.example>", `header_from ceo@partner.example
  rule    ../../testdata/senders/access:30: ceo@partner.example OK
  action  continue (OK: less specific rules do not apply)
`},
		{"bob%spam.example", `header_from bob%spam.example
  rule    none looked up: a From: field of this text holds no address
  action  continue
`},
		{"a@nothing.example, bob@spam.example", `header_from a@nothing.example
  rule    none matches
  action  continue
header_from bob@spam.example
  rule    ../../testdata/senders/access:20: spam.example REJECT		# the whole zone
  action  reject: 550 5.7.1 Access denied
`},
	}
	rs, err := senders.Load([]senders.File{{Path: sendersAccess, Scope: senders.DefaultScope}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		r := runCLI(t, "", "senders", "test", tt.value, "--file", sendersAccess)
		_, got, _ := strings.Cut(r.stdout, "\nheader_from ")
		got = "header_from " + got
		if r.code != 0 || got != tt.want {
			t.Errorf("%q: exit %d, stderr %q, header_from lookups:\n%s\nwant:\n%s", tt.value, r.code, r.stderr, got, tt.want)
		}
		// The filter's own reading of a From: field with this value.
		names, _ := senders.FromFieldNames(tt.value)
		blocks := false
		for _, n := range names {
			if m := rs.MatchName(senders.HeaderFrom, n); m.Rule != nil && m.Rule.Action == senders.Reject {
				blocks = true
			}
		}
		if blocks != strings.Contains(tt.want, "action  reject") {
			t.Errorf("%q: the filter rejects: %v; the command says:\n%s", tt.value, blocks, got)
		}
	}
}
