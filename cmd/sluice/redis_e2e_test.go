package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// redisURL is the --db form of the store with prefix on srv.
func redisURL(srv *redistest.Server, prefix string) string {
	return "redis://" + srv.Addr + "/0?prefix=" + prefix
}

// redisTrainFixtures trains the fixtures into the Redis store at url
// through the command line.
func redisTrainFixtures(t *testing.T, url string) {
	t.Helper()
	for _, class := range []string{"spam", "ham"} {
		r := runCLI(t, "", "train", "--db", url, "--"+class, fixture(class))
		if r.code != 0 || !strings.HasPrefix(r.stdout, "14 messages: 14 learned as "+class) {
			t.Fatalf("train %s into %s: %+v", class, url, r)
		}
	}
}

// redisDaemonConfig is a daemon with one bayes filter on a Redis store.
func redisDaemonConfig(listen, addr, prefix, extra string) string {
	return fmt.Sprintf(`listen:
  - %s
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
filters:
  - type: bayes
    on_failure: tempfail
    timeout: 5s
    options:
      store: redis
      redis:
        addrs: [%s]
        key_prefix: %s
        timeout: 300ms
      stats_interval: 100ms
      spam:
        action: tag
%s`, listen, addr, prefix, extra)
}

// redisMilterHeader sends raw (a message with LF or CRLF line ends)
// through the milter at a and returns the X-Sluice-Bayes value the
// filter added, unfolded.
func redisMilterHeader(t *testing.T, a net.Addr, raw []byte) string {
	t.Helper()
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, body, _ := bytes.Cut(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
	var fields [][2]string
	for _, line := range strings.Split(string(head), "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(fields) > 0 {
			fields[len(fields)-1][1] += "\r\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		fields = append(fields, [2]string{name, strings.TrimPrefix(value, " ")})
	}
	steps := []func() (*gomilter.Action, error){
		func() (*gomilter.Action, error) { return s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1") },
		func() (*gomilter.Action, error) { return s.Helo("h.example") },
		func() (*gomilter.Action, error) { return s.Mail("a@example.org", nil) },
		func() (*gomilter.Action, error) { return s.Rcpt("b@lab.example", nil) },
	}
	for _, f := range fields {
		steps = append(steps, func() (*gomilter.Action, error) { return s.HeaderField(f[0], f[1]) })
	}
	steps = append(steps, s.HeaderEnd)
	for _, step := range steps {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))))
	if err != nil || act.Code != gomilter.ActAccept {
		t.Fatalf("end of message: %v %v", act, err)
	}
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader && m.HeaderName == "X-Sluice-Bayes" {
			return strings.ReplaceAll(strings.ReplaceAll(m.HeaderValue, "\r\n", ""), "\n", "")
		}
	}
	return ""
}

var redisSpamicity = regexp.MustCompile(`spamicity=([0-9.]+)`)

func redisScore(t *testing.T, header string) float64 {
	t.Helper()
	m := redisSpamicity.FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("no spamicity in header %q", header)
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

// Two daemons share one Redis store. The command line trains a message
// into the store; the other daemon, which was not told anything, scores
// it with the new counts on the very next message, exactly as "sluice
// classify" on the store does.
func TestRedisTwoDaemonsShareStore(t *testing.T) {
	srv := redistest.Start(t)
	url := redisURL(srv, "shared")
	redisTrainFixtures(t, url)

	a := startDaemonWith(t, redisDaemonConfig("address: inet:127.0.0.1:0", srv.Addr, "shared", ""))
	b := startDaemonWith(t, redisDaemonConfig("address: inet:127.0.0.1:0", srv.Addr, "shared", ""))
	raw, err := os.ReadFile(fixture("check", "unsure.eml"))
	if err != nil {
		t.Fatal(err)
	}
	before := redisScore(t, redisMilterHeader(t, b.info.Milter[0], raw))
	if got := redisScore(t, redisMilterHeader(t, a.info.Milter[0], raw)); got != before {
		t.Fatalf("the two daemons disagree before training: %v and %v", got, before)
	}

	// Train it as spam five times over (five copies differing in
	// Message-ID, so five messages), then ask daemon b at once.
	dir := t.TempDir()
	for i := range 5 {
		copy := bytes.Replace(raw, []byte("\nSubject:"), fmt.Appendf(nil, "\nMessage-ID: <copy%d@example.org>\nSubject:", i), 1)
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.eml", i)), copy, 0o644)
	}
	if r := runCLI(t, "", "train", "--db", url, "--spam", dir); r.code != 0 || !strings.HasPrefix(r.stdout, "5 messages: 5 learned") {
		t.Fatalf("train: %+v", r)
	}
	after := redisScore(t, redisMilterHeader(t, b.info.Milter[0], raw))
	if after <= before {
		t.Errorf("daemon b scores the message %v after it was trained as spam, %v before", after, before)
	}
	cl := runCLI(t, "", "classify", "--db", url, "--format", "tsv", fixture("check", "unsure.eml"))
	fields := strings.Split(strings.TrimSpace(cl.stdout), "\t")
	if len(fields) != 3 || fields[1] != strconv.FormatFloat(after, 'f', 6, 64) {
		t.Errorf("sluice classify on the store says %q, daemon b %.6f", cl.stdout, after)
	}
	// Both daemons report the store's totals: 19 spam now. Daemon a
	// classified once (one round trip); b twice, one round trip each: the
	// second time, after the training, the same round trip brought the
	// counts that training changed, from the store's change log.
	for name, d := range map[string]*testDaemon{"a": a, "b": b} {
		waitFor(t, func() bool {
			return strings.Contains(d.metrics(t), `sluice_bayes_store_messages{class="spam",filter="bayes"} 19`)
		})
		trips := map[string]int{"a": 1, "b": 2}[name]
		m := d.metrics(t)
		for _, want := range []string{
			fmt.Sprintf(`sluice_bayes_redis_round_trip_seconds_count{filter="bayes",op="lookup"} %d`, trips),
			`sluice_bayes_redis_pool_gets_total{filter="bayes",result="hit"}`,
			`sluice_bayes_redis_pool_connections{filter="bayes",state="idle"}`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("daemon %s: metrics lack %s", name, want)
			}
		}
	}
}

// Real Postfix, one sluice, Redis killed and hung while mail flows: every
// message is delivered, tagged "Unsure, store unavailable", within the
// store timeout, although the filter's on_failure is tempfail. Redis back
// (empty, retrained): classification resumes, with no restart or reload.
func TestRedisPostfixStoreDown(t *testing.T) {
	mtatest.Require(t)
	srv := redistest.Start(t)
	url := redisURL(srv, "pf")
	redisTrainFixtures(t, url)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, redisDaemonConfig(fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock), srv.Addr, "pf", ""))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	n := 0
	send := func(phase string) time.Duration {
		t.Helper()
		n++
		msg := bytes.Replace(ham, []byte("\nSubject:"), fmt.Appendf(nil, "\nX-Phase: %s %d\nSubject:", phase, n), 1)
		msg = bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
		start := time.Now()
		r := c.Send("erin@lab.example", []string{fmt.Sprintf("bob%d@lab.example", n)}, msg)
		took := time.Since(start)
		if r.Code != 250 {
			t.Errorf("%s: message %d: %v, want 250", phase, n, r)
		}
		c.Cmd("RSET")
		return took
	}
	send("up")
	srv.Kill(t)
	for range 3 {
		if took := send("killed"); took > 2*time.Second {
			t.Errorf("a message took %v with Redis killed and a 300ms store timeout", took)
		}
	}
	srv.Restart(t)
	srv.Pause(t)
	for range 2 {
		if took := send("hung"); took > 2*time.Second {
			t.Errorf("a message took %v with Redis hung and a 300ms store timeout", took)
		}
	}
	srv.Resume(t)
	redisTrainFixtures(t, url)
	send("back")
	c.Quit()

	mta.WaitDelivered(t, n, 30*time.Second)
	got := map[string]string{}
	for _, d := range mta.Delivered(t) {
		got[strings.Fields(d.Get("X-Phase"))[0]+" "+d.Recipient()] = strings.ReplaceAll(d.Get("X-Sluice-Bayes"), "\n", "")
	}
	if len(got) != n {
		t.Fatalf("%d messages delivered, want %d: %v", len(got), n, got)
	}
	unavailable := regexp.MustCompile(`^Unsure, store unavailable, queue_id=[0-9A-Za-z]+, version=`)
	classified := regexp.MustCompile(`^Ham, spamicity=0\.\d{6}, queue_id=`)
	for k, v := range got {
		want := classified
		if strings.HasPrefix(k, "killed") || strings.HasPrefix(k, "hung") {
			want = unavailable
		}
		if !want.MatchString(v) {
			t.Errorf("%s: X-Sluice-Bayes %q, want %s", k, v, want)
		}
	}
	m := td.metrics(t)
	for _, want := range []string{
		`sluice_bayes_store_unavailable_total{filter="bayes"} 5`,
		`sluice_messages_total{verdict="accept"} 7`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`sluice_bayes_redis_errors_total\{filter="bayes",op="lookup"\} [5-9]`).MatchString(m) {
		t.Error("metrics do not count the failed lookups")
	}
	if strings.Contains(m, `sluice_filter_failures_total{filter="bayes"`) {
		t.Error("the outage counted as filter failures: the filter should have answered itself")
	}
}

// redisBuildSluice builds the sluice command into a temporary directory
// and returns the binary's path: the training run that
// TestRedisTrainKilledMidway kills is a real sluice process.
func redisBuildSluice(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// redisMbox writes n distinct messages into one mbox and returns its path.
func redisMbox(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spam.mbox")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		fmt.Fprintf(w, "From sender%d@example.com Mon Jan  1 00:00:00 2024\n", i)
		fmt.Fprintf(w, "From: sender%d@example.com\nTo: rcpt@lab.example\nSubject: offer %d number w%dq\nMessage-ID: <m%d@example.com>\n\n", i, i, i%97, i)
		for j := range 150 {
			fmt.Fprintf(w, "word%dz%d ", (i*7+j*13)%5000, j%11)
		}
		fmt.Fprintf(w, "\nunique%dtoken\n\n", i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// A "sluice train" process SIGKILLed in the middle of training leaves a
// store where every message is counted fully or not at all: the totals
// equal the learned-message digests, and every token's counts are exactly
// the sum over the messages whose digest is in the store.
func TestRedisTrainKilledMidway(t *testing.T) {
	srv := redistest.Start(t)
	const total = 4000
	mbox := redisMbox(t, total)
	url := redisURL(srv, "kill")
	// A configuration without a bayes filter: the default options, as
	// the test's own tokenising below assumes.
	cfg := filepath.Join(t.TempDir(), "sluice.yml")
	if err := os.WriteFile(cfg, []byte("state_dir: "+t.TempDir()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}, KeyPrefix: "kill"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The messages tokenised as sluice train does, and the counts of
	// learned messages at which its batches end (see trainer.add).
	c, err := bayes.NewClassifier(context.Background(), st, bayes.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var ops []classifier.LearnOp
	raw, _ := os.ReadFile(mbox)
	for _, m := range bytes.Split(raw, []byte("\nFrom sender"))[0:] {
		if !bytes.HasPrefix(m, []byte("From sender")) {
			m = append([]byte("From sender"), m...)
		}
		_, msg, _ := bytes.Cut(m, []byte("\n"))
		ops = append(ops, c.PrepareBytes(msg, classifier.Spam, false))
	}
	batchEnd := map[int]bool{}
	inBatch, tokens := 0, 0
	for i, op := range ops {
		inBatch++
		tokens += len(op.Tokens)
		if inBatch >= trainBatch || tokens >= trainBatchTokens {
			batchEnd[i+1] = true
			inBatch, tokens = 0, 0
		}
	}
	cmd := exec.Command(redisBuildSluice(t), "--config", cfg, "train", "--db", url, "--spam", mbox)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	rdb := srv.Client(t)
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Kill it while Redis works through a batch (one pipeline of
		// scripts, one a message): the count is then no batch's end.
		v, _ := rdb.HGet(ctx, "{kill}:meta", "spam").Int()
		if v >= 500 && !batchEnd[v] {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("training ended before it could be killed (%d learned): %v\n%s", v, err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("training did not get going: %d learned after 60 s\n%s", v, stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("train process: %v, want killed\n%s", err, stderr.String())
	}

	learned := map[classifier.Digest]bool{}
	if err := st.WalkDigests(ctx, func(d classifier.DigestClass) error { learned[d.Digest] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	size, err := st.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int(size.Spam) != len(learned) || size.Ham != 0 {
		t.Fatalf("totals %+v, but %d messages recorded as learned", size.Totals, len(learned))
	}
	if len(learned) == 0 || len(learned) == total {
		t.Fatalf("%d of %d messages learned: the kill did not land mid-way", len(learned), total)
	}
	// What the store must hold: the tokens of exactly the learned
	// messages.
	want := map[string]uint32{}
	seen := 0
	for _, op := range ops {
		if !learned[op.Digest] {
			continue
		}
		seen++
		for _, tok := range op.Tokens {
			want[tok]++
		}
	}
	if seen != len(learned) {
		t.Fatalf("%d of the mbox's messages match the %d learned digests", seen, len(learned))
	}
	got := 0
	err = st.Walk(ctx, func(r classifier.Record) error {
		got++
		if r.Ham != 0 || r.Spam != want[r.Token] {
			return fmt.Errorf("token %q: spam %d ham %d, want spam %d", r.Token, r.Spam, r.Ham, want[r.Token])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != len(want) {
		t.Errorf("%d tokens in the store, %d in the learned messages", got, len(want))
	}
	t.Logf("killed after %d of %d messages (batches end at %v); store consistent: %d tokens", len(learned), total, slices.Sorted(maps.Keys(batchEnd)), got)
}

// Moving a store with the command line: bbolt -> export -> import into
// Redis -> export is the same text, and back into bbolt likewise; a
// mistyped prefix is no store at all.
func TestRedisDBExportImportCLI(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "bayes.db")
	trainFixtures(t, db)
	exp1 := filepath.Join(dir, "from-bolt.txt")
	if r := runCLI(t, "", "db", "export", "--db", db, exp1); r.code != 0 {
		t.Fatalf("export: %+v", r)
	}
	url := redisURL(srv, "moved")
	if r := runCLI(t, "", "db", "import", "--db", url, exp1); r.code != 0 || !strings.Contains(r.stdout, "14 spam and 14 ham messages into "+url) {
		t.Fatalf("import into Redis: %+v", r)
	}
	exp2 := filepath.Join(dir, "from-redis.txt")
	if r := runCLI(t, "", "db", "export", "--db", url, exp2); r.code != 0 {
		t.Fatalf("export from Redis: %+v", r)
	}
	back := filepath.Join(dir, "back.db")
	if r := runCLI(t, "", "db", "import", "--db", back, exp2); r.code != 0 {
		t.Fatalf("import into bbolt: %+v", r)
	}
	exp3 := filepath.Join(dir, "back.txt")
	runCLI(t, "", "db", "export", "--db", back, exp3)
	b1, _ := os.ReadFile(exp1)
	b2, _ := os.ReadFile(exp2)
	b3, _ := os.ReadFile(exp3)
	if len(b1) < 1000 || !bytes.Equal(b1, b2) || !bytes.Equal(b1, b3) {
		t.Errorf("exports differ: bbolt %d bytes, Redis %d, bbolt again %d", len(b1), len(b2), len(b3))
	}
	st := runCLI(t, "", "db", "stats", "--db", url)
	if st.code != 0 || !strings.Contains(st.stdout, "messages:  14 spam, 14 ham") || !strings.Contains(st.stdout, "store:     "+url) {
		t.Errorf("db stats on Redis: %+v", st)
	}
	for _, cmd := range [][]string{{"db", "stats"}, {"classify", fixture("check", "ham.eml")}} {
		r := runCLI(t, "", append(cmd, "--db", redisURL(srv, "typo"))...)
		if r.code == 0 || !strings.Contains(r.stderr, "no token store at redis://") {
			t.Errorf("%v on an empty prefix: %+v", cmd, r)
		}
	}
	if r := runCLI(t, "", "db", "stats", "--db", "redis://me:secret@"+srv.Addr); r.code == 0 || strings.Contains(r.stderr, "secret") {
		t.Errorf("a password in the URL: %+v", r)
	}
}

// The configuration examples of docs/scaling.md build a working daemon
// pipeline. A single-server example runs against a real Redis (with a
// password, as the examples have): a message through it gets a verdict
// from the store. Sentinel and Cluster examples point at loopback ports
// where nothing listens: they must build all the same (the filter starts
// while its Redis is down) and tag messages as unavailable; the classifier
// tests run those deployments for real.
func TestRedisScalingDocExamples(t *testing.T) {
	const password = "sluice-test-pw"
	srv := redistest.Start(t, "--requirepass", password)
	t.Setenv("SLUICE_REDIS_PASSWORD", password)
	n, live := 0, 0
	for _, b := range yamlBlocks("docs/scaling.md", readDoc(t, "docs/scaling.md")) {
		text := dedent(b.text)
		if !strings.HasPrefix(text, "# sluice.yml") {
			continue
		}
		n++
		var doc struct {
			Filters []struct {
				Options struct {
					Redis struct {
						Addrs   []string `yaml:"addrs"`
						Cluster bool     `yaml:"cluster"`
						Master  string   `yaml:"sentinel_master"`
					} `yaml:"redis"`
				} `yaml:"options"`
			} `yaml:"filters"`
		}
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
			t.Fatalf("docs/scaling.md:%d: %v", b.line, err)
		}
		if len(doc.Filters) == 0 || len(doc.Filters[0].Options.Redis.Addrs) == 0 {
			t.Fatalf("docs/scaling.md:%d: no redis.addrs in the example", b.line)
		}
		r := doc.Filters[0].Options.Redis
		single := !r.Cluster && r.Master == ""
		for i, a := range r.Addrs {
			to := srv.Addr
			if !single {
				to = fmt.Sprintf("127.0.0.1:%d", 1+i)
			}
			text = strings.ReplaceAll(text, a, to)
		}
		dir := t.TempDir()
		text = strings.ReplaceAll(text, "/var/lib/sluice", dir)
		pw := filepath.Join(dir, "redis.pass")
		os.WriteFile(pw, []byte(password+"\n"), 0o600)
		text = strings.ReplaceAll(text, "/etc/sluice/redis.pass", pw)
		ca := filepath.Join(dir, "ca.pem")
		redisWriteCA(t, ca)
		text = strings.ReplaceAll(text, "/etc/sluice/redis-ca.pem", ca)
		cfg, err := config.Parse("docs/scaling.md", []byte(text), registry())
		if err != nil {
			t.Errorf("docs/scaling.md:%d: %v", b.line, err)
			continue
		}
		p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Errorf("docs/scaling.md:%d: %v", b.line, err)
			continue
		}
		body := filters.NewBody(1<<20, dir)
		body.Write([]byte("hello\r\n"))
		m := &filters.Message{QueueID: "Q1", Headers: []filters.Header{{Name: "Subject", Value: "hi"}}, Body: body}
		res := p.Run(context.Background(), filters.StageEOM, m)
		p.Close()
		var header string
		for _, e := range res.Verdict.Edits {
			if e.Kind == filters.AddHeader && e.Name == "X-Sluice-Bayes" {
				header = e.Value
			}
		}
		want := "Unsure, spamicity="
		if single {
			live++
		} else {
			want = "Unsure, store unavailable"
		}
		if !strings.HasPrefix(header, want) {
			t.Errorf("docs/scaling.md:%d: header %q, want %s...", b.line, header, want)
		}
	}
	if n < 3 || live == 0 {
		t.Errorf("found %d configuration examples in docs/scaling.md (%d single-server), want the single, Sentinel and Cluster ones", n, live)
	}
}

// redisWriteCA writes a self-signed CA certificate (PEM) to path.
func redisWriteCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// scalingDocACL returns the ACL SETUSER command of docs/scaling.md as
// arguments for Do, with password in place of PASSWORD.
func scalingDocACL(t *testing.T, password string) []any {
	t.Helper()
	var acl string
	for _, line := range strings.Split(readDoc(t, "docs/scaling.md"), "\n") {
		if strings.Contains(line, "ACL SETUSER") {
			acl = line
		}
	}
	_, acl, ok := strings.Cut(acl, "ACL SETUSER")
	if !ok {
		t.Fatal("docs/scaling.md has no ACL SETUSER line")
	}
	args := []any{"ACL", "SETUSER"}
	for _, f := range strings.Fields(acl) {
		f = strings.ReplaceAll(strings.Trim(f, "'"), `\|`, "|")
		args = append(args, strings.ReplaceAll(f, "PASSWORD", password))
	}
	return args
}

// The ACL of docs/scaling.md is enough for everything sluice does: the
// command line trains, classifies, dumps, exports, prunes and reads the
// stats as that user, and a daemon classifies.
func TestRedisScalingDocACL(t *testing.T) {
	const password = "acl-test-pw"
	args := scalingDocACL(t, password)
	srv := redistest.Start(t)
	ctx := context.Background()
	if err := srv.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	t.Setenv("SLUICE_TEST_ACL_PW", password)
	url := "redis://sluice@" + srv.Addr + "/0?password_env=SLUICE_TEST_ACL_PW"
	redisTrainFixtures(t, url)
	dir := t.TempDir()
	for _, cmd := range [][]string{
		{"classify", fixture("check", "spam.eml")},
		{"db", "stats"},
		{"db", "dump"},
		{"db", "export", filepath.Join(dir, "export.txt")},
		{"db", "prune", "--max-count", "1"},
	} {
		r := runCLI(t, "", append(cmd, "--db", url)...)
		if r.code != 0 {
			t.Errorf("%v as the ACL user: %+v", cmd, r)
		}
	}
	cfg := strings.Replace(redisDaemonConfig("address: inet:127.0.0.1:0", srv.Addr, "sluice", "      autolearn:\n        spam: 0.5\n"),
		"        timeout: 300ms\n", "        timeout: 300ms\n        username: sluice\n        password_env: SLUICE_TEST_ACL_PW\n", 1)
	td := startDaemonWith(t, cfg)
	raw, _ := os.ReadFile(fixture("check", "spam.eml"))
	if h := redisMilterHeader(t, td.info.Milter[0], raw); !strings.HasPrefix(h, "Spam,") || !strings.HasSuffix(h, "autolearn=spam") {
		t.Errorf("daemon as the ACL user (classify and auto-learn): header %q", h)
	}
}

// The ACL of docs/scaling.md also lets the user train with
// redis.wait_replicas, which ends each training round trip with WAIT, and
// import an export: a store with a replica, trained and imported as that
// user.
func TestRedisScalingDocACLWaitReplicas(t *testing.T) {
	const password = "acl-test-pw"
	args := scalingDocACL(t, password)
	master := redistest.Start(t)
	ctx := context.Background()
	if err := master.Client(t).Do(ctx, args...).Err(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	deadline := time.Now().Add(30 * time.Second)
	for replica.Info(t, "replication")["master_link_status"] != "up" {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not connect to its master within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Setenv("SLUICE_TEST_ACL_PW", password)
	url := "redis://sluice@" + master.Addr + "/0?password_env=SLUICE_TEST_ACL_PW&wait_replicas=1"
	redisTrainFixtures(t, url)

	// An export imported into an empty store as the same user.
	export := filepath.Join(t.TempDir(), "export.txt")
	if r := runCLI(t, "", "db", "export", "--db", url, export); r.code != 0 {
		t.Fatalf("db export as the ACL user: %+v", r)
	}
	if err := master.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "db", "import", "--db", url, export); r.code != 0 {
		t.Errorf("db import with wait_replicas as the ACL user: %+v", r)
	}
}
