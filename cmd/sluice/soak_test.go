package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// The soak test runs the daemon with the shipped filters (headerfix,
// bayes on a trained bbolt store with auto-learning, senders, dnsbl
// against a DNS server on loopback, archive to an mbox) and drives it
// with many concurrent milter sessions while, at the same time, the
// configuration is reloaded over and over (alternating between two
// configurations that differ in filters and header field names, with a
// broken one now and then), "sluice train" writes to the same store,
// /metrics is scraped, and sessions are aborted and dropped mid-message.
//
// It checks what must hold whatever the interleaving: every reply comes
// within the client's timeout, the decisions are those of the
// configuration the session started under, every accepted message is in
// the archive exactly once with the body sent, no aborted or dropped
// one is, /metrics always answers and has no duplicate series, and
// after shutdown the goroutines and file descriptors are back to where
// they were. The race detector checks the rest.
//
// It runs a fixed number of sessions (soakSessions). Under -race on a
// busy 2-core machine that takes 35 to 50 s, mostly classifying, too long
// to run again with every "go test ./...", so it runs only when asked,
// once per "make test" (make soak):
//
//	SLUICE_SOAK=1 go test -race -run '^TestSoak$' ./cmd/sluice

const (
	soakSessions = 160
	soakWorkers  = 8
	// soakTimeout is the client's read and write timeout: a reply later
	// than that is a hang.
	soakTimeout = 20 * time.Second
)

// soakConfig is one of the two configurations the test alternates
// between.
type soakConfig struct {
	// bayesHeader and repairHeader are the verdict field of bayes and
	// the trace field of headerfix.
	bayesHeader, repairHeader string
	// blocks tells that the senders and dnsbl filters are in the
	// pipeline: a blocked sender is refused at MAIL FROM and a listed
	// client at connect.
	blocks bool
}

var soakConfigs = [2]soakConfig{
	{bayesHeader: "X-Sluice-Bayes", repairHeader: "X-Sluice-Repaired", blocks: true},
	{bayesHeader: "X-Soak-Bayes", repairHeader: "X-Soak-Repaired", blocks: false},
}

// soakConfigText returns the configuration file of soakConfigs[i].
func soakConfigText(i int, milterAddr, stateDir, rules, dnsAddr string) string {
	c := soakConfigs[i]
	var b strings.Builder
	fmt.Fprintf(&b, `listen:
  - address: %s
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 10s
state_dir: %s
body:
  memory_limit: 2KiB
  temp_dir: %s
filter_defaults:
  timeout: 15s
filters:
  - type: headerfix
    options:
      trace_header: %s
  - type: bayes
    options:
      stats_interval: 1s
      header:
        name: %s
      # Tag only: which way a message is classified moves with what
      # auto-learning and the concurrent "sluice train" runs have taught
      # the store by then (each train run fits the n-gram model again),
      # and the test checks the daemon, not the classifier.
      spam:
        action: tag
      autolearn:
        spam: 0.99
        ham: 0.01
`, milterAddr, stateDir, filepath.Join(stateDir, "tmp"), c.repairHeader, c.bayesHeader)
	if c.blocks {
		fmt.Fprintf(&b, `  - type: senders
    options:
      reload_interval: 0s
      files: [%s]
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 2s
      probe_interval: 100ms
      skip_private: false
      zones:
        - zone: bl.test
`, rules, dnsAddr)
	}
	fmt.Fprintf(&b, `  - type: archive
    options:
      verdict_header: %s
      targets:
        default: archive/all.mbox
`, c.bayesHeader)
	return b.String()
}

// soakState tells which configuration is in force. gen is even while
// soakConfigs[gen/2%2] is, odd while a reload is on its way.
type soakState struct{ gen atomic.Int64 }

// candidates returns the configurations a session may have got, given
// the generations seen before it connected and after the daemon
// answered its option negotiation (by then it has picked its config).
func (s *soakState) candidates(before, after int64) []int {
	if before == after && before%2 == 0 {
		return []int{int(before / 2 % 2)}
	}
	return []int{0, 1}
}

// soakMessage is one message a session sends.
type soakMessage struct {
	queueID string
	from    string
	headers [][2]string
	body    []byte // CRLF line ends, as an MTA sends it
}

// soakOutcome collects what the sessions saw, for the checks at the end.
type soakOutcome struct {
	mu sync.Mutex
	// accepted maps the queue id of each message the daemon accepted at
	// end of message to its body.
	accepted map[string][]byte
	// unfinished holds the queue ids of messages aborted or dropped.
	unfinished map[string]bool
	errs       []string
}

func (o *soakOutcome) errorf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.errs) < 50 {
		o.errs = append(o.errs, fmt.Sprintf(format, args...))
	}
}

func (o *soakOutcome) accept(qid string, body []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.accepted[qid] = body
}

func (o *soakOutcome) unfinish(qid string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unfinished[qid] = true
}

// soakBodies returns the bodies of the bayes fixtures (after their
// header), with CRLF line ends and a line mboxrd must quote.
func soakBodies(t *testing.T) [][]byte {
	t.Helper()
	var bodies [][]byte
	for _, class := range []string{"ham", "spam"} {
		files, err := filepath.Glob(fixture(class, "*.eml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("fixtures %s: %v", class, err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
			_, body, ok := bytes.Cut(raw, []byte("\n\n"))
			if !ok {
				t.Fatalf("%s: no body", f)
			}
			body = append(body, "From the soak test, a line mboxrd quotes.\n>From one quoted already.\n"...)
			bodies = append(bodies, bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n")))
		}
	}
	return bodies
}

// TestSoak is described at the top of this file.
func TestSoak(t *testing.T) {
	if os.Getenv("SLUICE_SOAK") == "" {
		t.Skip("soak test: set SLUICE_SOAK=1 to run it")
	}
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(stateDir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(stateDir, "bayes.db")
	trainFixtures(t, db)
	rules := filepath.Join(dir, "access")
	if err := os.WriteFile(rules, []byte("blocked.example\tREJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2") // the list's test entry
	dnsSrv.AddA("5.0.0.127.bl.test", 300, "127.0.0.2") // the listed client
	bodies := soakBodies(t)

	// The milter listener's port must stay the same across reloads (a
	// change needs a restart), so take a free one now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	milterAddr := ln.Addr().String()
	ln.Close()
	config := func(i int) string {
		return soakConfigText(i, "inet:"+milterAddr, stateDir, rules, dnsSrv.Addr)
	}

	// Baselines, once the test's own helpers are running.
	httpClient := &http.Client{Transport: &http.Transport{}, Timeout: soakTimeout}
	defer httpClient.CloseIdleConnections()
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	td := startDaemonReg(t, config(0), testRegistry())
	metricsURL := "http://" + td.info.Metrics.String() + "/metrics"
	var state soakState
	out := &soakOutcome{accepted: map[string][]byte{}, unfinished: map[string]bool{}}

	done := make(chan struct{}) // closed when the sessions are over
	var bg sync.WaitGroup

	// (a) Reloads: alternate the two configurations, with a broken file
	// every fourth time, which must leave the running one in force.
	var reloadsOK, reloadsFailed int
	bg.Add(1)
	go func() {
		defer bg.Done()
		cur := 0
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			broken := n%4 == 0
			if broken {
				os.WriteFile(td.config, []byte(config(1-cur)+"  - type: nosuchfilter\n"), 0o644)
			} else {
				state.gen.Add(1) // a reload is on its way
				os.WriteFile(td.config, []byte(config(1-cur)), 0o644)
			}
			td.sigs <- syscall.SIGHUP
			if broken {
				reloadsFailed++
			} else {
				reloadsOK++
			}
			// The counters go up once the reload is done (or failed).
			want := []string{
				fmt.Sprintf(`sluice_config_reloads_total{result="ok"} %d`, reloadsOK),
				fmt.Sprintf(`sluice_config_reloads_total{result="failed"} %d`, reloadsFailed),
			}
			if !soakWaitMetrics(httpClient, metricsURL, want) {
				out.errorf("reload %d: metrics never showed %q", n, want)
				return
			}
			if !broken {
				cur = 1 - cur
				state.gen.Add(1) // soakConfigs[cur] is in force
			}
		}
	}()

	// (b) Training from the command line on the store the daemon reads
	// and auto-learns into: the same message moved between the classes,
	// so that every run writes.
	var trainRuns atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			default:
			}
			class := "--spam"
			if n%2 == 1 {
				class = "--ham"
			}
			r := runCLI(t, "", "train", "--db", db, class, fixture("check", "unsure.eml"))
			if r.code != 0 {
				out.errorf("sluice train %s: exit %d: %s", class, r.code, r.stderr)
				return
			}
			trainRuns.Add(1)
		}
	}()

	// (c) Scrapes: every answer complete, without duplicate series (the
	// registry refuses to expose those and the handler answers 500).
	var scrapes atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			text, err := soakScrape(httpClient, metricsURL)
			if err != nil {
				out.errorf("scrape: %v", err)
				return
			}
			if err := soakCheckExposition(text); err != nil {
				out.errorf("scrape: %v", err)
				return
			}
			scrapes.Add(1)
		}
	}()

	// The sessions, and (d) aborts and drops among them.
	next := make(chan int)
	var workers sync.WaitGroup
	for range soakWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range next {
				soakSession(milterAddr, i, bodies, &state, out)
			}
		}()
	}
	for i := range soakSessions {
		next <- i
	}
	close(next)
	workers.Wait()
	close(done)
	bg.Wait()

	final, err := soakScrape(httpClient, metricsURL)
	if err != nil {
		t.Fatalf("last scrape: %v", err)
	}
	if err := td.stop(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	for _, e := range out.errs {
		t.Error(e)
	}
	t.Logf("%d sessions, %d messages accepted, %d aborted or dropped, %d+%d reloads, %d train runs, %d scrapes",
		soakSessions, len(out.accepted), len(out.unfinished), reloadsOK, reloadsFailed, trainRuns.Load(), scrapes.Load())
	if reloadsOK < 2 || trainRuns.Load() < 1 || scrapes.Load() < 1 {
		t.Errorf("too little went on beside the sessions to test anything")
	}

	if v := soakMetric(final, "sluice_session_panics_total"); v != 0 {
		t.Errorf("sluice_session_panics_total %v", v)
	}
	if v := soakMetric(final, `sluice_messages_total{verdict="accept"}`); v != float64(len(out.accepted)) {
		t.Errorf(`sluice_messages_total{verdict="accept"} %v, clients saw %d accepted`, v, len(out.accepted))
	}
	if strings.Contains(td.log.String(), "panic") {
		t.Errorf("the log mentions a panic")
	}
	soakCheckArchive(t, filepath.Join(stateDir, "archive", "all.mbox"), out)

	// Everything the daemon started has ended: its goroutines and its
	// descriptors (sockets, the store, the archive, spilled bodies).
	httpClient.CloseIdleConnections()
	soakWaitBaseline(t, "goroutines", goroutines, runtime.NumGoroutine, func() string {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		return b.String()
	})
	if fds >= 0 {
		soakWaitBaseline(t, "open file descriptors", fds, openFDs, func() string {
			return strings.Join(fdTargets(), "\n")
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(stateDir, "tmp")); len(entries) != 0 {
		t.Errorf("spilled bodies left behind: %d files", len(entries))
	}
}

// soakSession runs session i: its kind (i%8) says what it does.
func soakSession(addr string, i int, bodies [][]byte, state *soakState, out *soakOutcome) {
	kind := i % 8
	var raw net.Conn
	c := gomilter.NewClientWithOptions("tcp", addr, gomilter.ClientOptions{
		Dialer:       soakDialer{conn: &raw},
		ReadTimeout:  soakTimeout,
		WriteTimeout: soakTimeout,
		ActionMask:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	before := state.gen.Load()
	s, err := c.Session()
	if err != nil {
		out.errorf("session %d: %v", i, err)
		return
	}
	defer raw.Close()
	cands := state.candidates(before, state.gen.Load())
	// keep narrows the candidate configurations to those under which
	// the daemon's answer is right; none left is a wrong decision.
	keep := func(what string, ok func(c soakConfig) bool) bool {
		var kept []int
		for _, c := range cands {
			if ok(soakConfigs[c]) {
				kept = append(kept, c)
			}
		}
		if len(kept) == 0 {
			out.errorf("session %d (kind %d): %s under config(s) %v", i, kind, what, cands)
			return false
		}
		cands = kept
		return true
	}

	client := "127.0.0.1"
	if kind == 4 {
		client = "127.0.0.5" // listed in bl.test
	}
	act, err := s.Conn("client.example", gomilter.FamilyInet, 40000, client)
	if err != nil {
		out.errorf("session %d: connect: %v", i, err)
		return
	}
	if !keep(fmt.Sprintf("connect answered %v", act), func(c soakConfig) bool { return refused(act) == (c.blocks && kind == 4) }) {
		return
	}
	if refused(act) {
		s.Close()
		return
	}
	if _, err := s.Helo("client.example"); err != nil {
		out.errorf("session %d: helo: %v", i, err)
		return
	}

	msg := func(n int) soakMessage {
		qid := fmt.Sprintf("SOAK%04dN%d", i, n)
		m := soakMessage{
			queueID: qid,
			from:    "alice@example.org",
			headers: [][2]string{
				{"From", "Alice <alice@example.org>"},
				{"To", "bob@lab.example"},
				{"Subject", "soak " + qid},
				{"Message-ID", "<" + qid + "@example.org>"},
			},
			body: bodies[(i+n)%len(bodies)],
		}
		if kind == 3 {
			m.from = "mallory@blocked.example"
		}
		if i%3 == 0 {
			// A bare LF in a field, for headerfix to repair.
			m.headers = append(m.headers, [2]string{"X-Odd", "one\ntwo"})
		}
		return m
	}

	switch kind {
	case 5:
		// The MTA aborts the first message mid-body, then the client
		// sends another on the same connection.
		m := msg(0)
		if !soakUpToBody(s, m, i, out) {
			return
		}
		if _, err := s.BodyChunk(m.body[:len(m.body)/2]); err != nil {
			out.errorf("session %d: body: %v", i, err)
			return
		}
		if err := s.Abort(); err != nil {
			out.errorf("session %d: abort: %v", i, err)
			return
		}
		out.unfinish(m.queueID)
	case 6:
		// The MTA goes away mid-body.
		m := msg(0)
		if !soakUpToBody(s, m, i, out) {
			return
		}
		s.BodyChunk(m.body[:len(m.body)/2])
		raw.Close()
		out.unfinish(m.queueID)
		return
	}

	messages := 1
	if i%5 == 0 {
		messages = 2
	}
	for n := 1; n <= messages; n++ {
		m := msg(n)
		if err := s.Macros(gomilter.CodeMail, "i", m.queueID); err != nil {
			out.errorf("session %d: macros: %v", i, err)
			return
		}
		act, err := s.Mail(m.from, nil)
		if err != nil {
			out.errorf("session %d: mail: %v", i, err)
			return
		}
		if !keep(fmt.Sprintf("MAIL FROM answered %v", act), func(c soakConfig) bool { return refused(act) == (c.blocks && kind == 3) }) {
			return
		}
		if refused(act) {
			continue
		}
		if !soakRest(s, m, i, out) {
			return
		}
		mods, act, err := s.BodyReadFrom(bytes.NewReader(m.body))
		if err != nil {
			out.errorf("session %d: end of message: %v", i, err)
			return
		}
		if act.Code != gomilter.ActAccept {
			out.errorf("session %d: end of message answered %v, want accept", i, act)
			return
		}
		out.accept(m.queueID, m.body)
		var bayes, repaired []string
		for _, mod := range mods {
			switch mod.HeaderName {
			case "X-Sluice-Bayes", "X-Soak-Bayes":
				if mod.HeaderValue != "" {
					bayes = append(bayes, mod.HeaderName)
				}
			case "X-Sluice-Repaired", "X-Soak-Repaired":
				repaired = append(repaired, mod.HeaderName)
			}
		}
		if !keep(fmt.Sprintf("verdict fields %v", bayes), func(c soakConfig) bool { return len(bayes) == 1 && bayes[0] == c.bayesHeader }) {
			return
		}
		if !keep(fmt.Sprintf("trace fields %v", repaired), func(c soakConfig) bool {
			return len(repaired) == 0 || len(repaired) == 1 && repaired[0] == c.repairHeader
		}) {
			return
		}
	}
	if err := s.Close(); err != nil {
		out.errorf("session %d: quit: %v", i, err)
	}
}

// soakUpToBody sends a message up to its body, for sessions that do not
// finish it; MAIL FROM must be accepted.
func soakUpToBody(s *gomilter.ClientSession, m soakMessage, i int, out *soakOutcome) bool {
	if err := s.Macros(gomilter.CodeMail, "i", m.queueID); err != nil {
		out.errorf("session %d: macros: %v", i, err)
		return false
	}
	act, err := s.Mail(m.from, nil)
	if err != nil || act.Code != gomilter.ActContinue {
		out.errorf("session %d: mail: %v %v", i, act, err)
		return false
	}
	return soakRest(s, m, i, out)
}

// soakRest sends the recipient and the header fields of m.
func soakRest(s *gomilter.ClientSession, m soakMessage, i int, out *soakOutcome) bool {
	if act, err := s.Rcpt("bob@lab.example", nil); err != nil || act.Code != gomilter.ActContinue {
		out.errorf("session %d: rcpt: %v %v", i, act, err)
		return false
	}
	for _, h := range m.headers {
		if act, err := s.HeaderField(h[0], h[1]); err != nil || act.Code != gomilter.ActContinue {
			out.errorf("session %d: header %s: %v %v", i, h[0], act, err)
			return false
		}
	}
	if act, err := s.HeaderEnd(); err != nil || act.Code != gomilter.ActContinue {
		out.errorf("session %d: end of header: %v %v", i, act, err)
		return false
	}
	return true
}

// refused reports whether act refuses with a permanent error.
func refused(act *gomilter.Action) bool {
	return act.Code == gomilter.ActReject || act.Code == gomilter.ActReplyCode && act.SMTPCode >= 500
}

// soakDialer dials TCP and keeps the connection, so that a session can
// drop it as an MTA that goes away does.
type soakDialer struct{ conn *net.Conn }

func (d soakDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, soakTimeout)
	*d.conn = c
	return c, err
}

func soakScrape(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), nil
}

// soakCheckExposition checks that no series appears twice and that
// every value parses.
func soakCheckExposition(text string) error {
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return fmt.Errorf("line %q", line)
		}
		series, value := line[:i], line[i+1:]
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return fmt.Errorf("line %q: %v", line, err)
		}
		if seen[series] {
			return fmt.Errorf("series %s twice", series)
		}
		seen[series] = true
	}
	if !seen["sluice_sessions_in_flight"] {
		return errors.New("no sluice_sessions_in_flight")
	}
	return nil
}

// soakMetric returns the value of one series, or -1.
func soakMetric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// soakWaitMetrics scrapes until every line of want is in the answer,
// for at most soakTimeout.
func soakWaitMetrics(c *http.Client, url string, want []string) bool {
	deadline := time.Now().Add(soakTimeout)
	for time.Now().Before(deadline) {
		text, err := soakScrape(c, url)
		if err == nil {
			all := true
			for _, w := range want {
				all = all && strings.Contains(text, w+"\n")
			}
			if all {
				return true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// soakCheckArchive checks the mbox against the messages the clients
// saw accepted: each exactly once, with the body sent (line ends LF in
// the mbox), and nothing else.
func soakCheckArchive(t *testing.T, path string, out *soakOutcome) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	defer f.Close()
	seen := map[string]int{}
	err = archive.ReadMbox(bufio.NewReader(f), func(r archive.Record) error {
		qid := r.QueueID()
		seen[qid]++
		want, ok := out.accepted[qid]
		if !ok {
			if out.unfinished[qid] {
				t.Errorf("archive: message %s was aborted or dropped, yet archived", qid)
			} else {
				t.Errorf("archive: message %q was not accepted, yet archived", qid)
			}
			return nil
		}
		msg := bytes.ReplaceAll(r.Message, []byte("\r\n"), []byte("\n"))
		_, body, _ := bytes.Cut(msg, []byte("\n\n"))
		if w := bytes.ReplaceAll(want, []byte("\r\n"), []byte("\n")); !bytes.Equal(body, w) {
			t.Errorf("archive: message %s: body differs from the one sent:\n%q\nwant\n%q", qid, body, w)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	for qid := range out.accepted {
		if n := seen[qid]; n != 1 {
			t.Errorf("archive: accepted message %s archived %d times, want once", qid, n)
		}
	}
	for qid, n := range seen {
		if n > 1 {
			t.Errorf("archive: message %s archived %d times", qid, n)
		}
	}
}

// soakWaitBaseline waits, for at most 10 s, until count() is back to
// base; goroutines and descriptors end shortly after the daemon
// returns (a connection's reader, a timer), not in step with it.
func soakWaitBaseline(t *testing.T, what string, base int, count func() int, dump func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := count()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d after shutdown, %d before start:\n%s", what, n, base, dump())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openFDs returns the number of open file descriptors, -1 where
// /proc/self/fd cannot tell.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// fdTargets lists what the open descriptors point at.
func fdTargets() []string {
	entries, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}
