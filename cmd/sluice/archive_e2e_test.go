package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// archivePyMsg is one message as Python's mailbox module reads it (see
// testdata/archive/mbox2json.py).
type archivePyMsg struct {
	From    string
	Message []byte
}

// archiveReadPython parses an mbox with Python's mailbox module: the
// independent reader the archive must satisfy.
func archiveReadPython(t testing.TB, path string) []archivePyMsg {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		mtatest.Require(t, "python3")
		py = "/usr/bin/python3"
	}
	cmd := exec.Command(py, "../../testdata/archive/mbox2json.py", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python mailbox on %s: %v\n%s", path, err, stderr.String())
	}
	var raw []struct{ From, Message string }
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatal(err)
	}
	msgs := make([]archivePyMsg, len(raw))
	for i, r := range raw {
		msgs[i] = archivePyMsg{From: r.From, Message: archiveLatin1(r.Message)}
	}
	return msgs
}

// archiveLatin1 turns the Latin-1 text the script prints back into bytes.
func archiveLatin1(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return b
}

// archiveSplit returns a message's header fields (raw lines, folding
// kept) and its body.
func archiveSplit(msg []byte) ([]string, []byte) {
	hdr, body, _ := bytes.Cut(msg, []byte("\n\n"))
	var fields []string
	for _, line := range strings.Split(string(hdr), "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(fields) > 0 {
			fields[len(fields)-1] += "\n" + line
			continue
		}
		fields = append(fields, line)
	}
	return fields, body
}

func archiveField(fields []string, name string) []string {
	var vs []string
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(k, name) {
			vs = append(vs, strings.TrimLeft(v, " \t"))
		}
	}
	return vs
}

// archiveBody returns body i of the end-to-end set: lines that mboxrd must
// quote, dots that SMTP must stuff, 8-bit text, a bare CR, long lines, and
// every fifth one large enough to take several writes.
func archiveBody(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Message %d.\r\n", i)
	switch i % 5 {
	case 0:
		b.WriteString("From the start of a line\r\n>From quoted once\r\n>>From quoted twice\r\n>>>From thrice\r\nFrom\r\n From indented\r\n")
	case 1:
		b.WriteString(".\r\n..\r\n.leading dot\r\n\r\n\r\nblank lines above\r\n")
	case 2:
		for j := 0; j < 4000; j++ {
			fmt.Fprintf(&b, "line %d of a large message, with From and >From inside the line\r\n", j)
			if j%500 == 0 {
				b.WriteString("From a line that must be quoted\r\n")
			}
		}
	case 3:
		b.WriteString("caf\xe9 cr\xe8me br\xfbl\xe9e\r\n")
		b.WriteString("a bare CR\rin the middle\r\n")
	case 4:
		b.WriteString(strings.Repeat("x", 2000) + "\r\n")
		b.WriteString("the last line has no line end")
	}
	return b.String()
}

func archiveRaw(i int, to string) []byte {
	subject := fmt.Sprintf("archive test %d", i)
	if i%3 == 0 {
		subject += "\r\n\twith a folded subject"
	}
	return []byte(fmt.Sprintf("From: Alice <alice@example.org>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <archive-%d@example.org>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n%s",
		to, subject, i, archiveBody(i)))
}

// archiveWantBody is the body the recipient gets: LF line ends, the line
// end SMTP adds to a body that lacks one, and a space for a bare CR
// (Postfix 3.7 replaces it before its milters or the mailbox see it).
func archiveWantBody(i int) []byte {
	b := strings.ReplaceAll(archiveBody(i), "\r\n", "\n")
	b = strings.ReplaceAll(b, "\r", " ")
	if !strings.HasSuffix(b, "\n") {
		b += "\n"
	}
	return []byte(b)
}

// archiveSend runs one transaction on c without failing the test from a
// goroutine: the reply to the end of data, or the error.
func archiveSend(c *mtatest.Client, from, to string, raw []byte) (mtatest.Reply, error) {
	for _, cmd := range []string{"MAIL FROM:<" + from + ">", "RCPT TO:<" + to + ">", "DATA"} {
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

// Acceptance 1 and 2: 50 SMTP sessions at once through real Postfix, all
// archived to one mbox. Python's mailbox module reads exactly the messages
// sent; each archived body is byte for byte the body delivered to the
// Maildir (and the body sent, so "From " quoting round-trips); the archived
// header is the delivered one, the script filter's field included, less
// what local delivery prepends. A message rejected at end of message is
// archived too, with who rejected it.
func TestArchiveEndToEndConcurrent(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	all, rejected := filepath.Join(dir, "archive", "all.mbox"), filepath.Join(dir, "archive", "rejected.mbox")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: archive
    timeout: 60s
    options:
      targets:
        default: archive/all.mbox
        reject: archive/rejected.mbox
  - type: script
    options:
      reject_text: Rejected by test filter
`, sock, dir))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail",
		ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0"}})

	const n = 50
	clients := make([]*mtatest.Client, n)
	for i := range clients {
		clients[i] = mtatest.DialSMTP(t, mta.Addr())
	}
	replies := make([]mtatest.Reply, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := c.Exchange("EHLO client" + strconv.Itoa(i) + ".example"); err != nil {
				errs[i] = err
				return
			}
			to := fmt.Sprintf("user%d@lab.example", i)
			replies[i], errs[i] = archiveSend(c, "alice@example.org", to, archiveRaw(i, to))
			c.Exchange("QUIT")
		}()
	}
	close(start)
	wg.Wait()
	queueIDs := map[string]int{}
	for i := range replies {
		if errs[i] != nil || replies[i].Code != 250 || replies[i].QueueID() == "" {
			t.Fatalf("session %d: %v %v", i, replies[i], errs[i])
		}
		queueIDs[replies[i].QueueID()] = i
	}
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	rej := c.Send("mallory@example.net", []string{"reject@lab.example"}, []byte("Subject: refused\r\nMessage-ID: <refused@example.net>\r\n\r\nFrom me, rejected\r\n"))
	if rej.Code != 550 {
		t.Fatalf("rejected message: %v", rej)
	}
	c.Quit()

	mta.WaitDelivered(t, n, 60*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	delivered := map[string]mtatest.Delivered{}
	for _, d := range mta.Delivered(t) {
		delivered[d.Get("Message-ID")] = d
	}
	if len(delivered) != n {
		t.Fatalf("%d messages delivered, want %d", len(delivered), n)
	}

	msgs := archiveReadPython(t, all)
	if len(msgs) != n {
		t.Fatalf("Python reads %d messages from the archive, want %d", len(msgs), n)
	}
	fromLine := regexp.MustCompile(`^alice@example\.org (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}$`)
	seen := map[int]bool{}
	for _, m := range msgs {
		fields, body := archiveSplit(m.Message)
		qids := archiveField(fields, "X-Sluice-Queue-ID")
		if len(qids) != 1 {
			t.Errorf("archived message with queue ids %q", qids)
			continue
		}
		i, ok := queueIDs[qids[0]]
		if !ok || seen[i] {
			t.Errorf("archived queue id %s: not sent, or archived twice", qids[0])
			continue
		}
		seen[i] = true
		if !fromLine.MatchString(m.From) {
			t.Errorf("message %d: From line %q", i, m.From)
		}
		if got, want := archiveField(fields, "X-Sluice-Envelope-To"), fmt.Sprintf("user%d@lab.example", i); len(got) != 1 || got[0] != want {
			t.Errorf("message %d: X-Sluice-Envelope-To %q, want %q", i, got, want)
		}
		if got := archiveField(fields, "X-Sluice-Verdict"); len(got) != 1 || got[0] != "default; action=accept" {
			t.Errorf("message %d: X-Sluice-Verdict %q", i, got)
		}
		if !bytes.Equal(body, archiveWantBody(i)) {
			t.Errorf("message %d: archived body differs from the body sent:\n%q\nwant\n%q", i, archiveHead(body), archiveHead(archiveWantBody(i)))
		}
		d, ok := delivered[fmt.Sprintf("<archive-%d@example.org>", i)]
		if !ok {
			t.Errorf("message %d was not delivered", i)
			continue
		}
		if !bytes.Equal(body, d.Body) {
			t.Errorf("message %d: archived body differs from the delivered one", i)
		}
		// The delivered header: what local(8) prepends (Return-Path,
		// X-Original-To, Delivered-To), Postfix's own Received field
		// (which Postfix does not show its milters), then what the
		// milter saw, with the script filter's field added at the end.
		var want []string
		for _, f := range d.Header {
			switch strings.ToLower(f.Name) {
			case "return-path", "x-original-to", "delivered-to":
				continue
			case "received":
				if strings.Contains(f.Value, "(Postfix) with ESMTP id "+qids[0]) {
					continue
				}
			}
			want = append(want, f.Raw)
		}
		got := fields[len(fields)-len(want):]
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("message %d: archived header\n%s\nwant (as delivered)\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(archiveField(fields, "X-Sluice-Test")) != 1 {
			t.Errorf("message %d: the script filter's field is missing", i)
		}
	}

	rmsgs := archiveReadPython(t, rejected)
	if len(rmsgs) != 1 {
		t.Fatalf("rejected archive: %d messages", len(rmsgs))
	}
	fields, body := archiveSplit(rmsgs[0].Message)
	if got := archiveField(fields, "X-Sluice-Verdict"); len(got) != 1 || got[0] != `reject; action=reject; filter=script; reason="recipient reject@lab.example"` {
		t.Errorf("rejected: X-Sluice-Verdict %q", got)
	}
	// Postfix names the queue id of a rejected message only in its log.
	if got := archiveField(fields, "X-Sluice-Queue-ID"); len(got) != 1 || !strings.Contains(mta.WaitLog(t, got[0]+": milter-reject: END-OF-MESSAGE", 10*time.Second), "5.7.1 Rejected by test filter") {
		t.Errorf("rejected: queue id %q not the one Postfix logged", got)
	}
	if string(body) != "From me, rejected\n" || !strings.HasPrefix(rmsgs[0].From, "mallory@example.net ") {
		t.Errorf("rejected: From %q, body %q", rmsgs[0].From, body)
	}

	m := td.metrics(t)
	for _, want := range []string{
		`sluice_archive_messages_total{filter="archive",target="default"} 50`,
		`sluice_archive_messages_total{filter="archive",target="reject"} 1`,
		`sluice_archive_append_duration_seconds_count{filter="archive"} 51`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if fi, err := os.Stat(all); err != nil || archiveMetric(t, m, `sluice_archive_bytes_total{filter="archive",target="default"}`) != float64(fi.Size()) {
		t.Errorf("sluice_archive_bytes_total does not add up to the mbox size: %v", err)
	}
	archiveFormail(t, all, n)
}

// archiveMetric returns the value of one series in a scrape, or -1.
func archiveMetric(t testing.TB, scrape, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// archiveHead shortens a body for an error message.
func archiveHead(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// archiveFormail splits the mbox with procmail's formail, a third reader,
// and checks it finds the same number of messages, each starting with its
// "From " line.
func archiveFormail(t *testing.T, path string, want int) {
	t.Helper()
	if _, err := exec.LookPath("formail"); err != nil {
		if out, err := exec.Command("../../testdata/install-deps.sh", "procmail").CombinedOutput(); err != nil {
			mtatest.Unavailable(t, "formail (procmail) cannot be installed: %v\n%s", err, out)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("formail", "-s", "sh", "-c", `cat > "$0/msg.$FILENO"`, out)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("formail: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(out, "msg.*"))
	if len(files) != want {
		t.Fatalf("formail splits the archive into %d messages, want %d", len(files), want)
	}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if !bytes.HasPrefix(b, []byte("From alice@example.org ")) || !bytes.Contains(b, []byte("\nX-Sluice-Queue-ID: ")) {
			t.Errorf("formail message %s starts %q", p, archiveHead(b))
		}
	}
}

// archiveChild runs the test binary as a daemon on the config file (see
// TestMain) and waits until it listens on the unix socket sock.
func archiveChild(t *testing.T, config, sock string, stderr *syncBuffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+config)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("child daemon not listening on %s: %v\n%s", sock, err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Acceptance 3: the daemon (a process of its own) is killed with SIGKILL
// while 30 SMTP sessions keep it appending large messages to one mbox.
// When it starts again it removes the record it was writing, so the mbox
// parses into whole messages only, and every message Postfix answered 250
// to is there in full. Rounds repeat until a kill hit the daemon while it
// held the archive's lock (at most 5), so the test cannot pass without
// having interrupted an append.
func TestArchiveCrashSafety(t *testing.T) {
	mtatest.Require(t)
	dir := t.TempDir()
	mbox := filepath.Join(dir, "all.mbox")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	config := filepath.Join(dir, "sluice.yml")
	os.WriteFile(config, []byte(fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: ""
log:
  level: warn
shutdown_timeout: 5s
filters:
  - type: archive
    timeout: 60s
    options:
      targets:
        default: %s
`, sock, mbox)), 0o644)
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail",
		ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0"}})

	body := func(id string) string {
		var b strings.Builder
		for j := 0; j < 3000; j++ {
			fmt.Fprintf(&b, "%s line %d: From here to there, a line of a large message\r\n", id, j)
			if j%300 == 0 {
				b.WriteString("From a line at the start\r\n")
			}
		}
		return b.String()
	}
	var (
		mu       sync.Mutex
		sent     = map[string]string{} // Message-ID -> body
		accepted = map[string]bool{}
	)
	logs := &syncBuffer{}
	caught, rounds := false, 0
	for ; rounds < 5 && !caught; rounds++ {
		child := archiveChild(t, config, sock, logs)
		const sessions = 30
		clients := make([]*mtatest.Client, sessions)
		for i := range clients {
			clients[i] = mtatest.DialSMTP(t, mta.Addr())
			clients[i].Timeout = 30 * time.Second
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Exchange("EHLO crash.example"); err != nil {
					return
				}
				for k := 0; k < 1000; k++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("<crash-%d-%d-%d@example.org>", rounds, i, k)
					b := body(id)
					raw := []byte("Subject: crash test\r\nMessage-ID: " + id + "\r\n\r\n" + b)
					mu.Lock()
					sent[id] = b
					mu.Unlock()
					r, err := archiveSend(c, "crash@example.org", "sink@discard.example", raw)
					if err != nil {
						return
					}
					if r.Code == 250 {
						mu.Lock()
						accepted[id] = true
						mu.Unlock()
						continue
					}
					// Refused (the milter is gone): reset and slow down.
					if _, err := c.Exchange("RSET"); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		// Kill once a few megabytes are in the mbox, i.e. under load.
		deadline := time.Now().Add(30 * time.Second)
		for {
			fi, err := os.Stat(mbox)
			if err == nil && fi.Size() > int64(rounds+1)*4<<20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the archive did not grow under load: %v", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		child.Process.Kill()
		child.Wait()
		if _, err := os.Stat(mbox + ".lock"); err == nil {
			caught = true
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		for _, c := range clients {
			c.Close()
		}
		wg.Wait()
	}
	if !caught {
		t.Fatalf("in %d rounds no SIGKILL hit the daemon while it held the archive's lock", rounds)
	}
	// A new daemon repairs the mbox when it starts.
	child := archiveChild(t, config, sock, logs)
	if _, err := os.Stat(mbox + ".lock"); err == nil {
		t.Error("the dot-lock of the killed daemon is still there after the restart")
	}
	child.Process.Signal(syscall.SIGTERM)
	child.Wait()

	msgs := archiveReadPython(t, mbox)
	found := map[string]bool{}
	for _, m := range msgs {
		fields, body := archiveSplit(m.Message)
		ids := archiveField(fields, "Message-ID")
		if len(ids) != 1 {
			t.Fatalf("archived message without a single Message-ID: %q", archiveHead(m.Message))
		}
		want, ok := sent[ids[0]]
		if !ok {
			t.Fatalf("archived message %s was never sent", ids[0])
		}
		if string(body) != strings.ReplaceAll(want, "\r\n", "\n") {
			t.Errorf("archived message %s is not whole: %d bytes of body, want %d", ids[0], len(body), len(want)-strings.Count(want, "\r"))
		}
		if found[ids[0]] {
			t.Errorf("message %s archived twice", ids[0])
		}
		found[ids[0]] = true
	}
	missing := 0
	for id := range accepted {
		if !found[id] {
			missing++
			t.Errorf("message %s was accepted (250) but is not in the archive", id)
		}
	}
	t.Logf("%d rounds; %d messages sent, %d accepted, %d archived (the rest were refused with 4xx once the daemon died); repair log:\n%s",
		rounds, len(sent), len(accepted), len(msgs), logs)
	if len(accepted) == 0 || missing > 0 {
		t.Fatalf("%d accepted, %d of them missing", len(accepted), missing)
	}
}

// Acceptance 4: the archive's file system is full, then read-only. Mail
// is still delivered (the default failure policy), each failed copy is
// counted and logged with the queue id, and neither the mbox nor the
// maildir keeps anything of it: the mbox is byte for byte what it was,
// tmp/ is empty, no lock is left. Once space is back, archiving resumes.
func TestArchiveDiskFullAndReadOnly(t *testing.T) {
	mtatest.Require(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "sluice-archive-test", mnt).CombinedOutput(); err != nil {
		mtatest.Unavailable(t, "cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	mbox, maildir := filepath.Join(mnt, "all.mbox"), filepath.Join(mnt, "maildir")
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: script
  - type: archive
    options:
      targets:
        default: %s
  - type: archive
    name: maildir
    options:
      format: maildir
      targets:
        default: %s
`, sock, mbox, maildir))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	send := func(name string, size int) string {
		t.Helper()
		raw := "Subject: " + name + "\r\nMessage-ID: <" + name + "@example.org>\r\n\r\n" + strings.Repeat("From a line of "+name+"\r\n", size/20+1)
		r := c.Send("alice@example.org", []string{name + "@lab.example"}, []byte(raw))
		if r.Code != 250 {
			t.Fatalf("%s: %v", name, r)
		}
		c.Cmd("RSET")
		return r.QueueID()
	}
	maildirCount := func() (n, tmp int) {
		news, _ := os.ReadDir(filepath.Join(maildir, "new"))
		tmps, _ := os.ReadDir(filepath.Join(maildir, "tmp"))
		return len(news), len(tmps)
	}
	checkUnchanged := func(when string, wantMbox []byte, wantNew int) {
		t.Helper()
		got, err := os.ReadFile(mbox)
		if err != nil || !bytes.Equal(got, wantMbox) {
			t.Errorf("%s: the mbox changed (%d bytes, was %d): %v", when, len(got), len(wantMbox), err)
		}
		if n, tmp := maildirCount(); n != wantNew || tmp != 0 {
			t.Errorf("%s: maildir new/ %d files (want %d), tmp/ %d (want 0)", when, n, wantNew, tmp)
		}
		for _, p := range []string{mbox + ".lock"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s: %s left behind", when, p)
			}
		}
	}

	send("first", 1000)
	afterFirst, _ := os.ReadFile(mbox)
	big := send("toolarge", 2<<20)
	checkUnchanged("disk full", afterFirst, 1)
	if !strings.Contains(td.log.String(), "queue_id="+big) || !strings.Contains(td.log.String(), "no space left on device") {
		t.Errorf("the failure is not logged with queue id %s:\n%s", big, td.log)
	}
	send("second", 1000)
	afterSecond, _ := os.ReadFile(mbox)
	if n, _ := maildirCount(); len(afterSecond) <= len(afterFirst) || n != 2 {
		t.Errorf("archiving did not resume once space was back: mbox %d bytes, maildir %d files", len(afterSecond), n)
	}

	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	ro := send("readonly", 1000)
	checkUnchanged("read-only", afterSecond, 2)
	if !strings.Contains(td.log.String(), "queue_id="+ro) || !strings.Contains(td.log.String(), "read-only file system") {
		t.Errorf("the read-only failure is not logged with queue id %s", ro)
	}
	c.Quit()

	mta.WaitDelivered(t, 4, 30*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	if n := len(mta.Delivered(t)); n != 4 {
		t.Errorf("%d messages delivered, want 4: archive failures must not stop mail", n)
	}
	msgs := archiveReadPython(t, mbox)
	if len(msgs) != 2 {
		t.Errorf("the mbox holds %d messages, want 2", len(msgs))
	}
	m := td.metrics(t)
	for _, want := range []string{
		`sluice_archive_errors_total{filter="archive",target="default"} 2`,
		`sluice_archive_errors_total{filter="maildir",target="default"} 2`,
		`sluice_archive_messages_total{filter="archive",target="default"} 2`,
		`sluice_archive_messages_total{filter="maildir",target="default"} 2`,
		`sluice_filter_failures_total{filter="archive",kind="error"} 2`,
		`sluice_messages_total{verdict="accept"} 4`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Acceptance 5: a ham that the store misclassifies as spam (a club
// newsletter with promotional words, testdata/archive/newsletter.eml) is
// delivered tagged Spam, auto-learned as spam by the daemon, and archived
// in the spam archive. It is found there by its queue id and relearned as
// ham in one command, which moves it out of spam; "sluice classify" then
// calls the archived copy ham, "sluice archive move" files it with the
// ham, and the daemon classifies the next copy of it as ham and archives
// it there.
func TestArchiveRetrainByQueueID(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	hamFile := "../../testdata/archive/newsletter.eml"
	// The scenario needs a ham the store gets wrong. With the n-gram
	// model averaged in, this store calls the newsletter unsure (0.76),
	// so the daemon and the command line score with the token counts
	// alone (ngram: off), which call it spam.
	cliConf := filepath.Join(state, "cli.yml")
	if err := os.WriteFile(cliConf, []byte("filters:\n  - type: bayes\n    options:\n      ngram: \"off\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, "", "classify", "--config", cliConf, "--db", db, hamFile); r.code != statusSpam {
		t.Fatalf("precondition: the newsletter classifies as %+v, want spam", r)
	}
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: archive
    options:
      targets:
        spam: archive/spam.mbox
        ham: archive/ham.mbox
        unsure: archive/unsure.mbox
  - type: bayes
    options:
      ngram: "off"
      spam:
        action: tag
      autolearn:
        spam: 0.99
`, sock, state))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})
	raw, err := os.ReadFile(hamFile)
	if err != nil {
		t.Fatal(err)
	}
	crlf := []byte(strings.ReplaceAll(string(raw), "\n", "\r\n"))
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	r := c.Send("offers@garden-club.example", []string{"bob@lab.example"}, crlf)
	if r.Code != 250 {
		t.Fatalf("newsletter: %v", r)
	}
	qid := r.QueueID()
	c.Cmd("RSET")

	spam, ham := filepath.Join(state, "archive", "spam.mbox"), filepath.Join(state, "archive", "ham.mbox")
	msgs := archiveReadPython(t, spam)
	if len(msgs) != 1 {
		t.Fatalf("spam archive: %d messages", len(msgs))
	}
	fields, _ := archiveSplit(msgs[0].Message)
	if q := archiveField(fields, "X-Sluice-Queue-ID"); len(q) != 1 || q[0] != qid {
		t.Errorf("archived queue id %q, Postfix said %s", q, qid)
	}
	if v := archiveField(fields, "X-Sluice-Bayes"); len(v) != 1 || !strings.HasPrefix(v[0], "Spam, ") || !strings.HasSuffix(v[0], "autolearn=spam") {
		t.Errorf("archived verdict header %q", v)
	}

	// One command: relearn it as ham, found by queue id.
	tr := runCLI(t, "", "train", "--config", cliConf, "--db", db, "--ham", "--queue-id", qid, spam)
	if want := "1 message: 0 learned as ham, 0 already learned, 1 moved from spam to ham, 0 errors\n"; tr.code != 0 || tr.stdout != want {
		t.Fatalf("train --ham --queue-id: %+v, want %q", tr, want)
	}
	show := runCLI(t, "", "archive", "show", "--queue-id", qid, spam)
	if show.code != 0 {
		t.Fatalf("archive show: %+v", show)
	}
	if cl := runCLI(t, show.stdout, "classify", "--config", cliConf, "--db", db, "--explain"); cl.code != statusHam || !strings.HasPrefix(cl.stdout, "-: ham, spamicity=") {
		t.Errorf("classify after retraining: %+v, want ham", cl)
	}
	if mv := runCLI(t, "", "--config", td.config, "archive", "move", "--queue-id", qid, "--to", "ham", spam); mv.code != 0 {
		t.Fatalf("archive move: %+v", mv)
	}
	if n := len(archiveReadPython(t, spam)); n != 0 {
		t.Errorf("%d messages left in the spam archive", n)
	}

	// The daemon reads the retrained store with its next message.
	r2 := c.Send("offers@garden-club.example", []string{"bob@lab.example"}, crlf)
	if r2.Code != 250 {
		t.Fatalf("ham again: %v", r2)
	}
	c.Quit()
	hams := archiveReadPython(t, ham)
	if len(hams) != 2 {
		t.Fatalf("ham archive: %d messages, want the moved one and the new one", len(hams))
	}
	fields, _ = archiveSplit(hams[1].Message)
	if q, v := archiveField(fields, "X-Sluice-Queue-ID"), archiveField(fields, "X-Sluice-Bayes"); len(q) != 1 || q[0] != r2.QueueID() || len(v) != 1 || !strings.HasPrefix(v[0], "Ham, ") {
		t.Errorf("the next copy: queue id %q (want %s), verdict %q", q, r2.QueueID(), v)
	}
}

// BenchmarkPostfixEndToEndArchive is acceptance 6, end to end: the cost
// the archive adds to mail flowing through real Postfix. smtp-source sends
// 2000 messages of ~5 KB over 8 sessions to the discard transport, through
// two sluice daemons (processes of their own) that differ only in the
// archive filter: both run the script filter, one also archives every
// message to one mbox with fsync. Rounds alternate between the two so that
// machine noise hits both alike; it reports the median rate of each and
// their ratio.
//
//	go test -run '^$' -bench PostfixEndToEndArchive -benchtime 5x ./cmd/sluice
func BenchmarkPostfixEndToEndArchive(b *testing.B) {
	mtatest.Require(b)
	source, err := exec.LookPath("smtp-source")
	if err != nil {
		source = "/usr/sbin/smtp-source"
	}
	mbox := filepath.Join(b.TempDir(), "bench.mbox")
	base := `listen:
  - address: inet:%s
metrics:
  listen: ""
log:
  level: warn
filters:
  - type: script
`
	setups := []struct {
		name  string
		extra string
	}{
		{"plain", ""},
		{"archive", "  - type: archive\n    options:\n      targets:\n        default: " + mbox + "\n"},
	}
	mtas := make([]*mtatest.MTA, len(setups))
	for i, s := range setups {
		child := startChildConfig(b, func(addr string) string { return fmt.Sprintf(base, addr) + s.extra })
		mtas[i] = mtatest.StartPostfix(b, mtatest.PostfixOptions{Milter: "inet:" + child.addr, DefaultAction: "tempfail",
			ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0"}})
	}
	const sessions, messages, size = 8, 2000, 5000
	rates := make([][]float64, len(setups))
	for n := 0; n < b.N; n++ {
		for i, s := range setups {
			rates[i] = append(rates[i], smtpSourceRound(b, source, mtas[i], s.name, sessions, messages, size, 5*time.Minute))
		}
	}
	recs := 0
	f, err := os.Open(mbox)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := archiveReadAll(f, &recs); err != nil {
		b.Fatal(err)
	}
	if recs != b.N*messages {
		b.Fatalf("the archive holds %d messages, want %d", recs, b.N*messages)
	}
	plain, arch := median(rates[0]), median(rates[1])
	b.ReportMetric(plain, "plain-msgs/s")
	b.ReportMetric(arch, "archive-msgs/s")
	b.ReportMetric(arch/plain, "archive/plain")
	b.Logf("rates per round (msgs/s): plain %s, archive %s", fmtRates(rates[0]), fmtRates(rates[1]))
}

// archiveReadAll counts the records of an mbox.
func archiveReadAll(r io.Reader, n *int) error {
	return archive.ReadMbox(r, func(archive.Record) error {
		*n++
		return nil
	})
}

// End to end through Sendmail told to accept bare LF, with headerfix only
// marking what it finds (policy tag): header values that hold a stray LF
// reach the archive as they reach the milter, and the archived header is
// the delivered one, field for field. Sendmail indents the line after a
// stray LF in the mailbox; an archive that wrote it as it is ended its
// header block at a value ending in LF, and showed a line after one as a
// field of its own (here a forged X-Sluice-Bayes).
func TestArchiveStrayLFInHeaderSendmail(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	archiveDir := filepath.Join(state, "archive")
	td := headerfixDaemon(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: headerfix
    options:
      policy: tag
  - type: archive
    options:
      format: maildir
      targets:
        default: %s
`, state, archiveDir), newHeaderfixRecorder())
	mta := headerfixMTA(t, "sendmail-relaxed", "inet:"+td.info.Milter[0].String())

	raw := "From: " + headerfixFrom + "\r\nDate: " + headerfixDate + "\r\nMessage-ID: <lf@example.com>\r\n" +
		"X-Lf: x\n\r\nSubject: hi\nX-Sluice-Bayes: Ham\r\nX-After: a\r\n\r\nBody.\r\n"
	if r := headerfixSend(t, mta, "lf@lab.example", raw); r.Code != 250 {
		t.Fatalf("reply %v", r)
	}
	ds := mta.WaitDelivered(t, 1, 30*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	d := headerfixDelivered(t, ds, "lf@lab.example")
	delivered := headerfixFields(headerfixOwnFields(d))
	archived := headerfixFields(headerfixArchived(t, archiveDir, "lf@lab.example"))
	if strings.Join(archived, "\n") != strings.Join(delivered, "\n") {
		t.Errorf("archived header:\n%s\nwant the delivered one:\n%s", strings.Join(archived, "\n"), strings.Join(delivered, "\n"))
	}
	if got := d.Values("X-After"); len(got) != 1 {
		t.Errorf("delivered X-After fields %q, want one", got)
	}
}
