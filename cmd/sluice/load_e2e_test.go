package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

const (
	loadClients  = 16
	loadSessions = 120 // SMTP sessions, loadClients at a time
	loadPerConn  = 5   // messages per session
)

// loadConfig returns configuration v ("A" or "B"): they differ in the
// replies and in where the mbox archive is.
func loadConfig(v, shutdown, milterAddr, stateDir, rules, dnsAddr string) string {
	text := strings.ReplaceAll(fmt.Sprintf(`listen:
  - address: inet:%s
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: SHUTDOWN
state_dir: %s
body:
  memory_limit: 2KiB
  temp_dir: %s/tmp
filter_defaults:
  timeout: 30s
filters:
  - type: headerfix
  - type: senders
    options:
      reload_interval: 0s
      reject_reply: "554 5.7.1 Load sender refused (VARIANT)"
      files: [%s]
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 2s
      skip_private: false
      zones:
        - zone: bl.test
          reply: "554 5.7.1 Load client listed (VARIANT)"
  - type: bayes
    options:
      refit: 1s
      stats_interval: 1s
      spam:
        action: tag
      autolearn:
        spam: 0.99
        ham: 0.01
  - name: mbox
    type: archive
    timeout: 60s
    options:
      targets:
        default: archive/VARIANT/all.mbox
        spam: archive/VARIANT/spam.mbox
        reject: archive/VARIANT/rejected.mbox
  - name: maildir
    type: archive
    timeout: 60s
    options:
      format: maildir
      targets:
        default: archive/md/{rcpt}
`, milterAddr, stateDir, stateDir, rules, dnsAddr), "VARIANT", v)
	return strings.ReplaceAll(text, "SHUTDOWN", shutdown)
}

// loadSent is what one client saw for one message.
type loadSent struct {
	msgID string
	body  []byte // as sent, CRLF
	reply mtatest.Reply
	err   error
	kind  string // "ok", "blocked" (sender), "listed" (client), "aborted"
	rcpts []string
}

// loadSend runs one transaction on c without failing the test from a
// goroutine: the reply to the end of data, or the error.
func loadSend(c *mtatest.Client, from string, to []string, raw []byte) (mtatest.Reply, error) {
	cmds := []string{"MAIL FROM:<" + from + ">"}
	for _, rcpt := range to {
		cmds = append(cmds, "RCPT TO:<"+rcpt+">")
	}
	for _, cmd := range append(cmds, "DATA") {
		r, err := c.Exchange(cmd)
		if err != nil {
			return r, err
		}
		if r.Code/100 != 2 && r.Code != 354 {
			return r, nil
		}
	}
	if err := c.WriteRaw(mtatest.EncodeData(raw)); err != nil {
		return mtatest.Reply{}, err
	}
	return c.ReadReply()
}

// TestLoadPostfixEndToEnd pushes a few hundred messages through real
// Postfix from many clients at once into a daemon running every shipped
// filter (archive twice: an mbox per configuration and verdict, and a
// maildir per recipient), while "sluice train" writes to the store and
// the configuration is switched between two variants with SIGHUP. Pairs
// of sessions send the same messages at about the same time, so that
// auto-learning meets each twice; some bodies are large (spilled to
// disk, with lines mboxrd quotes and SMTP stuffs), some Date fields end
// in a bare CR for headerfix, some transactions are abandoned. It checks
// that delivered mail, the archives, the log, the store and the metrics
// agree, that every Postfix session kept one configuration, and that
// nothing leaks. It takes about 40 s (several minutes under -race), so
// it runs only when asked, as "make test" does (its soak step):
//
//	SLUICE_LOAD=1 go test -run '^TestLoadPostfix' ./cmd/sluice
func TestLoadPostfixEndToEnd(t *testing.T) {
	le := newLoadEnv(t)
	stateDir, db, rules, dnsSrv, bodies, milterAddr := le.stateDir, le.db, le.rules, le.dns, le.bodies, le.milterAddr
	config := func(v string) string { return loadConfig(v, "10s", milterAddr, stateDir, rules, dnsSrv.Addr) }

	goroutines, fds := runtime.NumGoroutine(), openFDs()
	td := startDaemonWith(t, config("A"))
	mta := startLoadPostfix(t, milterAddr)

	startGoroutines, startFDs := runtime.NumGoroutine(), openFDs()
	done := make(chan struct{})
	var bg sync.WaitGroup
	var errMu sync.Mutex
	var bgErrs []string
	bgErr := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		bgErrs = append(bgErrs, fmt.Sprintf(format, args...))
	}
	reloads, trains := 0, 0
	bg.Add(2)
	go func() {
		defer bg.Done()
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-time.After(700 * time.Millisecond):
			}
			if err := os.WriteFile(td.config, []byte(config([]string{"A", "B"}[n%2])), 0o644); err != nil {
				bgErr("write config: %v", err)
				return
			}
			td.sigs <- syscall.SIGHUP
			reloads++
		}
	}()
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
			if r := runCLI(t, "", "train", "--db", db, class, fixture("check", "unsure.eml")); r.code != 0 {
				bgErr("train: exit %d: %s", r.code, r.stderr)
				return
			}
			trains++
			time.Sleep(200 * time.Millisecond)
		}
	}()

	sent := make([][]loadSent, loadSessions)
	next := make(chan int)
	var wg sync.WaitGroup
	for range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				sent[s] = loadSession(t, mta.Addr(), s, bodies)
			}
		}()
	}
	start := time.Now()
	for s := range loadSessions {
		next <- s
	}
	close(next)
	wg.Wait()
	close(done)
	bg.Wait()
	t.Logf("sessions done in %s, %d reloads, %d train runs", time.Since(start), reloads, trains)
	time.Sleep(3 * time.Second)
	t.Logf("running: goroutines %d -> %d, fds %d -> %d", startGoroutines, runtime.NumGoroutine(), startFDs, openFDs())
	for _, e := range bgErrs {
		t.Error(e)
	}

	accepted := map[string]loadSent{} // by queue id
	var blocked, listed, aborted, deliveries int
	// A session keeps the configuration it started under: its replies
	// and archive name one variant.
	variantOf := map[int]string{}
	qidSession := map[string]int{}
	variantRe := regexp.MustCompile(`^554 5\.7\.1 Load (?:sender refused|client listed) \(([AB])\)$`)
	for s := range sent {
		for _, m := range sent[s] {
			if m.kind == "blocked" || m.kind == "listed" {
				v := ""
				if sm := variantRe.FindStringSubmatch(m.reply.String()); sm != nil {
					v = sm[1]
				}
				if variantOf[s] == "" {
					variantOf[s] = v
				} else if variantOf[s] != v {
					t.Errorf("session %d: replies of configuration %s and %s", s, variantOf[s], v)
				}
			}
			if m.kind == "ok" && m.reply.Code == 250 {
				qidSession[m.reply.QueueID()] = s
			}
			switch {
			case m.err != nil:
				t.Errorf("%s: %v", m.msgID, m.err)
			case m.kind == "ok":
				if m.reply.Code != 250 || m.reply.QueueID() == "" {
					t.Errorf("%s: reply %v, want 250", m.msgID, m.reply)
					continue
				}
				accepted[m.reply.QueueID()] = m
				deliveries += len(m.rcpts)
			case m.kind == "aborted":
				aborted++
			case m.kind == "blocked":
				blocked++
				if !strings.HasPrefix(m.reply.String(), "554 5.7.1 Load sender refused (") {
					t.Errorf("%s: blocked sender got %v", m.msgID, m.reply)
				}
			case m.kind == "listed":
				listed++
				if !strings.HasPrefix(m.reply.String(), "554 5.7.1 Load client listed (") {
					t.Errorf("%s: listed client got %v", m.msgID, m.reply)
				}
			}
		}
	}
	t.Logf("%d accepted, %d blocked senders, %d listed clients, %d aborted", len(accepted), blocked, listed, aborted)

	mta.WaitDelivered(t, deliveries, 120*time.Second)
	mta.WaitIdle(t, 60*time.Second)
	seen := map[string]int{}
	class := map[string]string{}       // queue id -> Spam, Ham, Unsure
	learnedBy := map[string][]string{} // Message-ID -> queue ids marked autolearn=
	autolearned := 0
	var learnedFiles [][3]string // queue id, class, delivered file
	receivedID := regexp.MustCompile(`with ESMTP id ([0-9A-Za-z]+)`)
	for _, d := range mta.Delivered(t) {
		if from := d.Values("From"); len(from) != 1 || from[0] != "Alice <alice@example.org>" {
			t.Errorf("%s: From fields %q", d.Get("Message-ID"), from)
		}
		if date := d.Values("Date"); len(date) != 1 || date[0] != "Mon, 07 Dec 2026 12:00:00 +0000" {
			t.Errorf("%s: Date fields %q", d.Get("Message-ID"), date)
		}
		for _, name := range []string{"Message-ID", "Subject", "To", "X-Sluice-Bayes"} {
			if n := len(d.Values(name)); n != 1 {
				t.Errorf("%s: %d %s fields", d.Get("Message-ID"), n, name)
			}
		}
		qid := ""
		for _, r := range d.Values("Received") {
			if m := receivedID.FindStringSubmatch(r); m != nil {
				qid = m[1]
				break
			}
		}
		seen[qid]++
		m, ok := accepted[qid]
		if !ok {
			t.Errorf("delivered %s (queue id %q), not accepted", d.Get("Message-ID"), qid)
			continue
		}
		if want := bytes.ReplaceAll(m.body, []byte("\r\n"), []byte("\n")); !bytes.Equal(d.Body, want) {
			t.Errorf("%s: delivered body differs", qid)
		}
		bayes := d.Get("X-Sluice-Bayes")
		class[qid], _, _ = strings.Cut(bayes, ",")
		if strings.Contains(bayes, "autolearn=") && d.Recipient() == "bob@lab.example" {
			autolearned++
			learnedFiles = append(learnedFiles, [3]string{qid, strings.TrimSpace(bayes[strings.Index(bayes, "autolearn=")+len("autolearn="):]), d.File})
			learnedBy[m.msgID] = append(learnedBy[m.msgID], qid)
		}
	}
	for qid := range accepted {
		if m := accepted[qid]; seen[qid] != len(m.rcpts) {
			t.Errorf("%s delivered %d times, want %d", qid, seen[qid], len(m.rcpts))
		}
	}
	for id, qids := range learnedBy {
		if len(qids) > 1 {
			t.Errorf("message %s auto-learned %d times (%v)", id, len(qids), qids)
		}
	}

	// The archives.
	mboxCount := map[string]int{}
	for _, name := range []string{"A/all.mbox", "A/spam.mbox", "B/all.mbox", "B/spam.mbox"} {
		path := filepath.Join(stateDir, "archive", name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		for _, r := range archiveReadPython(t, path) {
			fields, body := archiveSplit(r.Message)
			qids := archiveField(fields, "X-Sluice-Queue-ID")
			if len(qids) != 1 {
				t.Errorf("%s: record with queue ids %q", name, qids)
				continue
			}
			qid := qids[0]
			mboxCount[qid]++
			m, ok := accepted[qid]
			if !ok {
				t.Errorf("%s holds %s, not accepted", name, qid)
				continue
			}
			if want := bytes.ReplaceAll(m.body, []byte("\r\n"), []byte("\n")); !bytes.Equal(body, want) {
				t.Errorf("%s: %s: body differs", name, qid)
			}
			if strings.HasSuffix(name, "spam.mbox") != (class[qid] == "Spam") {
				t.Errorf("%s: %s delivered as %q", name, qid, class[qid])
			}
			if v := variantOf[qidSession[qid]]; !strings.HasPrefix(name, v+"/") {
				t.Errorf("%s: %s archived there, its session had configuration %q", name, qid, v)
			}
		}
	}
	mdCount := map[string]int{} // queue id and recipient
	mdFiles, _ := filepath.Glob(filepath.Join(stateDir, "archive", "md", "*", "new", "*"))
	for _, f := range mdFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := mtatest.ParseDelivered(raw)
		qid := d.Get("X-Sluice-Queue-ID")
		rcpt := filepath.Base(filepath.Dir(filepath.Dir(f)))
		if to := d.Values("X-Sluice-Envelope-To"); len(to) != 1 || to[0] != rcpt {
			t.Errorf("maildir %s: %s: envelope recipients %q", rcpt, qid, to)
		}
		mdCount[qid+" "+rcpt]++
		if m, ok := accepted[qid]; !ok {
			t.Errorf("maildir holds %s, not accepted", qid)
		} else if want := bytes.ReplaceAll(m.body, []byte("\r\n"), []byte("\n")); !bytes.Equal(d.Body, want) {
			t.Errorf("%s: maildir body differs", qid)
		}
	}
	for _, tmp := range []string{"bob@lab.example", "carol@lab.example"} {
		if left, _ := os.ReadDir(filepath.Join(stateDir, "archive", "md", tmp, "tmp")); len(left) != 0 {
			t.Errorf("maildir %s tmp/ holds %d files", tmp, len(left))
		}
	}
	for qid, m := range accepted {
		if mboxCount[qid] != 1 {
			t.Errorf("%s archived %d times in the mboxes", qid, mboxCount[qid])
		}
		for _, rcpt := range m.rcpts {
			if n := mdCount[qid+" "+rcpt]; n != 1 {
				t.Errorf("%s archived %d times in the maildir of %s", qid, n, rcpt)
			}
		}
	}
	if len(mdFiles) != deliveries {
		t.Errorf("%d maildir copies, want %d", len(mdFiles), deliveries)
	}

	// The log: one message line per message that reached MAIL FROM.
	logText := td.log.String()
	msgLines := regexp.MustCompile(`(?m)^.* msg=message .*$`).FindAllString(logText, -1)
	var acceptLines, rejectLines, abortLines int
	for _, l := range msgLines {
		switch {
		case strings.Contains(l, " verdict=accept "):
			acceptLines++
		case strings.Contains(l, " verdict=reject "):
			rejectLines++
		case strings.Contains(l, " verdict=aborted "):
			abortLines++
		default:
			t.Errorf("log line %s", l)
		}
	}
	if acceptLines != len(accepted) || rejectLines != blocked || abortLines != aborted {
		t.Errorf("log: %d accept lines, %d reject lines, %d aborted; want %d, %d, %d", acceptLines, rejectLines, abortLines, len(accepted), blocked, aborted)
	}
	if n := strings.Count(logText, "msg=\"connection refused\""); n != listedSessions(sent) {
		t.Errorf("log: %d connection refused lines, want %d", n, listedSessions(sent))
	}

	m := td.metrics(t)
	for _, c := range []struct {
		series string
		want   int
	}{
		{`sluice_messages_total{verdict="accept"}`, len(accepted)},
		{`sluice_messages_total{verdict="reject"}`, blocked},
		{`sluice_messages_total{verdict="aborted"}`, aborted},
		{`sluice_filter_decisions_total{filter="senders",stage="mail",verdict="reject"}`, blocked},
		{`sluice_filter_decisions_total{filter="dnsbl",stage="connect",verdict="reject"}`, listedSessions(sent)},
		{`sluice_archive_messages_total{filter="mbox",target="default"}`, len(accepted) - countClass(class, "Spam")},
		{`sluice_archive_messages_total{filter="mbox",target="spam"}`, countClass(class, "Spam")},
		{`sluice_archive_messages_total{filter="maildir",target="default"}`, deliveries},
	} {
		if got := max(0, archiveMetric(t, m, c.series)); got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.series, got, c.want)
		}
	}
	var bayesTotal, learnedTotal float64
	for _, v := range []string{"spam", "ham", "unsure"} {
		bayesTotal += max(0, archiveMetric(t, m, `sluice_bayes_messages_total{filter="bayes",verdict="`+v+`"}`))
	}
	for _, c := range []string{"spam", "ham"} {
		learnedTotal += max(0, archiveMetric(t, m, `sluice_bayes_autolearned_total{class="`+c+`",filter="bayes"}`))
	}
	if bayesTotal != float64(len(accepted)) {
		t.Errorf("bayes classified %v messages, want %d", bayesTotal, len(accepted))
	}
	if learnedTotal != float64(autolearned) {
		t.Errorf("sluice_bayes_autolearned_total %v, delivered messages marked autolearn= %d", learnedTotal, autolearned)
	}
	t.Logf("%d autolearned", autolearned)

	// The fixtures (14 and 14), the message "sluice train" moves between
	// the classes, and what the daemon learned: each once.
	r := runCLI(t, "", "db", "stats", "--db", db)
	mm := regexp.MustCompile(`messages:\s+(\d+) spam, (\d+) ham`).FindStringSubmatch(r.stdout)
	dm := regexp.MustCompile(`digests:\s+(\d+) learned`).FindStringSubmatch(r.stdout)
	if mm == nil || dm == nil {
		t.Fatalf("db stats: %+v", r)
	}
	if got, want := atoi(t, mm[1])+atoi(t, mm[2]), 28+1+autolearned; got != want || atoi(t, dm[1]) != want {
		t.Errorf("store holds %d messages, %s digests; want %d\n%s", got, dm[1], want, r.stdout)
	}
	// The daemon's measure of the store, a second or so later.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = td.metrics(t)
		spam := archiveMetric(t, m, `sluice_bayes_store_messages{class="spam",filter="bayes"}`)
		ham := archiveMetric(t, m, `sluice_bayes_store_messages{class="ham",filter="bayes"}`)
		if spam == float64(atoi(t, mm[1])) && ham == float64(atoi(t, mm[2])) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("sluice_bayes_store_messages spam %v ham %v, db stats %s, %s", spam, ham, mm[1], mm[2])
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, c := range []string{"Spam", "Ham", "Unsure"} {
		series := `sluice_bayes_messages_total{filter="bayes",verdict="` + strings.ToLower(c) + `"}`
		if got := max(0, archiveMetric(t, m, series)); got != float64(countClass(class, c)) {
			t.Errorf("%s = %v, delivered %d", series, got, countClass(class, c))
		}
	}
	total := len(accepted) + blocked + aborted
	for _, c := range []struct {
		series string
		want   int
	}{
		{`sluice_sessions_total`, loadSessions},
		{`sluice_message_duration_seconds_count`, total},
		{`sluice_filter_decisions_total{filter="bayes",stage="eom",verdict="continue"}`, len(accepted)},
		{`sluice_filter_decisions_total{filter="mbox",stage="eom",verdict="continue"}`, len(accepted)},
		{`sluice_filter_decisions_total{filter="maildir",stage="eom",verdict="continue"}`, len(accepted)},
		{`sluice_archive_append_duration_seconds_count{filter="maildir"}`, deliveries},
		{`sluice_archive_append_duration_seconds_count{filter="mbox"}`, len(accepted)},
	} {
		if got := max(0, archiveMetric(t, m, c.series)); got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.series, got, c.want)
		}
	}
	if got, want := dnsblMetric(m, "sluice_dnsbl_lookups_total", `zone="bl.test"`, `result="listed"`), listedSessions(sent); got != float64(want) {
		t.Errorf("dnsbl listed lookups %v, want %d", got, want)
	}
	if got, want := dnsblMetric(m, "sluice_dnsbl_lookups_total", `zone="bl.test"`, `result="not_listed"`), loadSessions-listedSessions(sent); got != float64(want) {
		t.Errorf("dnsbl not listed lookups %v, want %d", got, want)
	}
	for _, series := range []string{"sluice_sessions_in_flight", "sluice_session_panics_total", "sluice_log_lines_dropped_total"} {
		if got := archiveMetric(t, m, series); got != 0 {
			t.Errorf("%s = %v, want 0", series, got)
		}
	}
	if strings.Contains(m, "sluice_filter_failures_total{") {
		t.Errorf("filter failures:\n%s", grepLines(m, "sluice_filter_failures_total"))
	}
	nv := map[string]int{}
	for _, v := range variantOf {
		nv[v]++
	}
	t.Logf("sessions by configuration: %v", nv)
	var mdBytes, mboxBytes int64
	for _, f := range mdFiles {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		mdBytes += fi.Size()
	}
	if got := archiveMetric(t, m, `sluice_archive_bytes_total{filter="maildir",target="default"}`); got != float64(mdBytes) {
		t.Errorf("maildir: sluice_archive_bytes_total %v, files hold %d bytes", got, mdBytes)
	}
	for _, name := range []string{"A/all.mbox", "A/spam.mbox", "B/all.mbox", "B/spam.mbox"} {
		if fi, err := os.Stat(filepath.Join(stateDir, "archive", name)); err == nil {
			mboxBytes += fi.Size()
		}
	}
	if got := max(0, archiveMetric(t, m, `sluice_archive_bytes_total{filter="mbox",target="default"}`)) + max(0, archiveMetric(t, m, `sluice_archive_bytes_total{filter="mbox",target="spam"}`)); got != float64(mboxBytes) {
		t.Errorf("mbox: sluice_archive_bytes_total %v, files hold %d bytes", got, mboxBytes)
	}
	// What the daemon learned is the message the user's mailbox and the
	// archive hold: trained again from either, it is already learned.
	for _, lf := range learnedFiles {
		qid, cls, file := lf[0], lf[1], lf[2]
		if i := strings.IndexAny(cls, ",; "); i >= 0 {
			cls = cls[:i]
		}
		r := runCLI(t, "", "train", "--db", db, "--no-refit", "--"+cls, file)
		if !strings.HasPrefix(r.stdout, "1 message: 0 learned as "+cls+", 1 already learned") {
			t.Errorf("%s: delivered copy trained again as %s: %s%s", qid, cls, r.stdout, r.stderr)
		}
		v := variantOf[qidSession[qid]]
		var paths []string
		for _, name := range []string{"all.mbox", "spam.mbox"} {
			if p := filepath.Join(stateDir, "archive", v, name); fileExists(p) {
				paths = append(paths, p)
			}
		}
		r = runCLI(t, "", append([]string{"train", "--db", db, "--no-refit", "--" + cls, "--queue-id", qid}, paths...)...)
		if !strings.HasPrefix(r.stdout, "1 message: 0 learned as "+cls+", 1 already learned") {
			t.Errorf("%s: archived copy trained again as %s: %s%s", qid, cls, r.stdout, r.stderr)
		}
	}
	fixed := 0
	for _, m := range accepted {
		if strings.HasSuffix(m.msgID, "-0@example.org>") || strings.HasSuffix(m.msgID, "-3@example.org>") {
			fixed++
		}
	}
	if got := max(0, archiveMetric(t, m, `sluice_headerfix_messages_total{action="fix",filter="headerfix"}`)); got != float64(fixed) {
		t.Errorf("headerfix fixed %v messages, want %d\n%s", got, fixed, grepLines(m, "headerfix"))
	}

	if err := td.stop(); err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(stateDir, "tmp")); len(left) != 0 {
		t.Errorf("spilled bodies left behind: %d files", len(left))
	}
	soakWaitBaseline(t, "goroutines", goroutines+2, runtime.NumGoroutine, func() string {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		return b.String()
	})
	if fds >= 0 {
		soakWaitBaseline(t, "open file descriptors", fds, openFDs, func() string {
			return strings.Join(fdTargets(), "\n")
		})
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countClass(class map[string]string, c string) int {
	n := 0
	for _, v := range class {
		if v == c {
			n++
		}
	}
	return n
}

func listedSessions(sent [][]loadSent) int {
	n := 0
	for _, s := range sent {
		if len(s) == 1 && s[0].kind == "listed" {
			n++
		}
	}
	return n
}

// loadBuf appends to a byte slice.
type loadBuf []byte

func (b *loadBuf) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// loadSession runs SMTP session s: every seventh from a listed client
// (refused at connect; one entry), the others loadPerConn messages,
// every fourth from a blocked sender.
func loadSession(t *testing.T, addr string, s int, bodies [][]byte) []loadSent {
	source := "127.0.0.1"
	if s%7 == 3 {
		source = "127.0.0.5"
	}
	c := mtatest.DialSMTPFrom(t, addr, source)
	c.Timeout = 150 * time.Second
	defer c.Close()
	if _, err := c.Exchange(fmt.Sprintf("EHLO client%d.example", s)); err != nil {
		return []loadSent{{msgID: fmt.Sprintf("session %d", s), err: err}}
	}
	if source != "127.0.0.1" {
		r, err := c.Exchange("MAIL FROM:<alice@example.org>")
		return []loadSent{{msgID: fmt.Sprintf("session %d", s), reply: r, err: err, kind: "listed"}}
	}
	var out []loadSent
	for n := range loadPerConn {
		// Sessions 2k and 2k+1 send the same messages, at about the
		// same time.
		id := fmt.Sprintf("<load-%d-%d@example.org>", s/2, n)
		from, kind := "alice@example.org", "ok"
		if (s/2*loadPerConn+n)%4 == 1 {
			from, kind = "mallory@blocked.example", "blocked"
		}
		body := append([]byte(nil), bodies[(s/2+n)%len(bodies)]...)
		body = append(body, fmt.Sprintf("Load message %d of session %d.\r\n", n, s/2)...)
		if (s/2+n)%6 == 0 {
			// A large body, spilled to disk, with lines the mbox must
			// quote and SMTP must stuff.
			for i := range 3000 {
				fmt.Fprintf((*loadBuf)(&body), "From line %d of a large body, padded to some length: %s\r\n", i, strings.Repeat("x", i%50))
				switch i % 7 {
				case 0:
					body = append(body, ">From quoted\r\n.dot\r\n..two dots\r\n\r\n"...)
				case 3:
					body = append(body, ">>>From deeper   \r\n \r\n"...)
				}
			}
		}
		date := "Date: Mon, 07 Dec 2026 12:00:00 +0000\r\n"
		if n%3 == 0 {
			// The Date field ends in a bare CR: Postfix makes the two
			// fields one, and headerfix splits them again.
			date = "Date: Mon, 07 Dec 2026 12:00:00 +0000\r"
		}
		raw := []byte(date + "From: Alice <" + from + ">\r\nTo: bob@lab.example\r\nSubject: load " + id + "\r\nMessage-ID: " + id + "\r\n")
		raw = append(raw, "\r\n"...)
		raw = append(raw, body...)
		rcpts := []string{"bob@lab.example"}
		if n%4 == 2 {
			rcpts = append(rcpts, "carol@lab.example")
		}
		r, err := loadSend(c, from, rcpts, raw)
		out = append(out, loadSent{msgID: id, body: body, reply: r, err: err, kind: kind, rcpts: rcpts})
		if err != nil {
			return out
		}
		if r.Code != 250 {
			if _, err := c.Exchange("RSET"); err != nil {
				return out
			}
		}
	}
	// A transaction the client abandons: with RSET after RCPT, or by
	// going away in the middle of the data.
	switch s % 5 {
	case 4:
		for _, cmd := range []string{"MAIL FROM:<alice@example.org>", "RCPT TO:<bob@lab.example>", "RSET"} {
			if _, err := c.Exchange(cmd); err != nil {
				return append(out, loadSent{msgID: fmt.Sprintf("session %d rset", s), err: err})
			}
		}
		out = append(out, loadSent{msgID: fmt.Sprintf("session %d rset", s), kind: "aborted"})
	case 2:
		for _, cmd := range []string{"MAIL FROM:<alice@example.org>", "RCPT TO:<bob@lab.example>", "DATA"} {
			if _, err := c.Exchange(cmd); err != nil {
				return append(out, loadSent{msgID: fmt.Sprintf("session %d drop", s), err: err})
			}
		}
		c.WriteRaw([]byte("Subject: dropped\r\n\r\nhalf a bo"))
		c.Close()
		return append(out, loadSent{msgID: fmt.Sprintf("session %d drop", s), kind: "aborted"})
	}
	c.Exchange("QUIT")
	return out
}

// TestLoadPostfixShutdown stops the daemon in the middle of the load:
// mail Postfix took (250) must be exactly the mail the daemon logged as
// accepted and archived, nothing else archived.
func TestLoadPostfixShutdown(t *testing.T) {
	le := newLoadEnv(t)
	stateDir, bodies, milterAddr := le.stateDir, le.bodies, le.milterAddr
	td := startDaemonWith(t, loadConfig("A", "1s", milterAddr, stateDir, le.rules, le.dns.Addr))
	mta := startLoadPostfix(t, milterAddr)

	sent := make([][]loadSent, loadSessions)
	next := make(chan int)
	var wg sync.WaitGroup
	for range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				sent[s] = loadSession(t, mta.Addr(), s, bodies)
			}
		}()
	}
	var stopErr error
	stopped := make(chan struct{})
	for s := range loadSessions {
		if s == loadSessions/3 {
			go func() {
				stopErr = td.stop()
				close(stopped)
			}()
		}
		next <- s
	}
	close(next)
	wg.Wait()
	<-stopped
	if stopErr != nil {
		t.Errorf("daemon exit: %v", stopErr)
	}

	accepted := map[string]loadSent{}
	deliveries, other := 0, map[int]int{}
	for s := range sent {
		for _, m := range sent[s] {
			if m.err != nil {
				continue
			}
			if m.kind == "ok" && m.reply.Code == 250 {
				accepted[m.reply.QueueID()] = m
				deliveries += len(m.rcpts)
			} else {
				other[m.reply.Code]++
			}
		}
	}
	t.Logf("%d accepted, other replies %v", len(accepted), other)
	mta.WaitDelivered(t, deliveries, 120*time.Second)
	mta.WaitIdle(t, 60*time.Second)

	archived := map[string]int{}
	for _, name := range []string{"A/all.mbox", "A/spam.mbox"} {
		path := filepath.Join(stateDir, "archive", name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		for _, r := range archiveReadPython(t, path) {
			fields, _ := archiveSplit(r.Message)
			for _, q := range archiveField(fields, "X-Sluice-Queue-ID") {
				archived[q]++
			}
		}
	}
	for qid := range accepted {
		if archived[qid] != 1 {
			t.Errorf("%s: Postfix took it, archived %d times", qid, archived[qid])
		}
	}
	for qid := range archived {
		if _, ok := accepted[qid]; !ok {
			t.Errorf("%s: archived, Postfix did not take it\n%s", qid, grepLines(mta.Log(), qid))
		}
	}
	if left, _ := os.ReadDir(filepath.Join(stateDir, "tmp")); len(left) != 0 {
		t.Errorf("spilled bodies left behind: %d files", len(left))
	}
	lines := regexp.MustCompile(`(?m)^.* msg=message .* verdict=accept .*$`).FindAllString(td.log.String(), -1)
	if len(lines) != len(accepted) {
		t.Errorf("%d accept lines in the log, Postfix took %d", len(lines), len(accepted))
	}
}

// loadEnv is what both load tests start from: a state directory with a
// store trained on the fixtures, a senders rules file, a DNS list on
// loopback listing two test clients, the message bodies, and a free
// port for the milter (fixed, so that it survives reloads).
type loadEnv struct {
	stateDir, db, rules string
	dns                 *dnsbltest.Server
	bodies              [][]byte
	milterAddr          string
}

// newLoadEnv skips unless SLUICE_LOAD is set, and prepares a loadEnv.
func newLoadEnv(t *testing.T) loadEnv {
	t.Helper()
	if os.Getenv("SLUICE_LOAD") == "" {
		t.Skip("set SLUICE_LOAD=1 (make test does, in its soak step)")
	}
	mtatest.Require(t)
	dir := t.TempDir()
	le := loadEnv{stateDir: filepath.Join(dir, "state"), rules: filepath.Join(dir, "access")}
	if err := os.MkdirAll(filepath.Join(le.stateDir, "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	le.db = filepath.Join(le.stateDir, "bayes.db")
	trainFixtures(t, le.db)
	if err := os.WriteFile(le.rules, []byte("blocked.example\tREJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	le.dns = dnsbltest.Start(t)
	le.dns.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	le.dns.AddA("5.0.0.127.bl.test", 300, "127.0.0.2")
	le.bodies = soakBodies(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	le.milterAddr = ln.Addr().String()
	ln.Close()
	return le
}

// startLoadPostfix starts a Postfix that hands mail to the milter at
// addr, with no limits of its own on the load's clients.
func startLoadPostfix(t *testing.T, addr string) *mtatest.MTA {
	t.Helper()
	return mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "inet:" + addr, DefaultAction: "tempfail",
		ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0",
			"milter_command_timeout = 60s", "milter_content_timeout = 120s"}})
}
