package milter_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// startServer runs a sluice milter server on a loopback port with the given
// filters and returns its address.
func startServer(t *testing.T, cfg milter.Config) (*milter.Server, string) {
	t.Helper()
	return startServerObserved(t, cfg, nil)
}

// startServerObserved is startServer with an observer of the server.
func startServerObserved(t *testing.T, cfg milter.Config, obs milter.Observer) (*milter.Server, string) {
	t.Helper()
	srv := milter.NewServer(cfg, nil, obs)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv, ln)
	return srv, ln.Addr().String()
}

// serveOn serves ln with srv until the test ends, then shuts srv down.
func serveOn(t *testing.T, srv *milter.Server, ln net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
}

func pipeline(fs ...filters.Filter) *filters.Pipeline {
	steps := make([]filters.Step, len(fs))
	for i, f := range fs {
		steps[i] = filters.Step{Filter: f, Timeout: 2 * time.Second}
	}
	return filters.NewPipeline(steps, nil)
}

func dial(t *testing.T, addr string) *gomilter.ClientSession {
	t.Helper()
	c := gomilter.NewClientWithOptions("tcp4", addr, gomilter.ClientOptions{
		ReadTimeout:  5 * time.Second,
		WriteTimeout: 5 * time.Second,
		ActionMask:   gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// must returns a checker for a client call's (action, error) pair.
func must(t *testing.T) func(*gomilter.Action, error) *gomilter.Action {
	return func(act *gomilter.Action, err error) *gomilter.Action {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return act
	}
}

// sendMessage sends one message (MAIL to end of body) and returns the
// modifications and the final action.
func sendMessage(t *testing.T, s *gomilter.ClientSession, from, rcpt string, hdr [][2]string, body string) ([]gomilter.ModifyAction, *gomilter.Action) {
	t.Helper()
	s.Macros(gomilter.CodeMail, "i", "")
	if act := must(t)(s.Mail(from, []string{"SIZE=100", "BODY=8BITMIME"})); act.Code != gomilter.ActContinue {
		return nil, act
	}
	s.Macros(gomilter.CodeRcpt, "i", "QID"+rcpt)
	if act := must(t)(s.Rcpt(rcpt, nil)); act.Code != gomilter.ActContinue {
		return nil, act
	}
	for _, h := range hdr {
		if act := must(t)(s.HeaderField(h[0], h[1])); act.Code != gomilter.ActContinue {
			return nil, act
		}
	}
	if act := must(t)(s.HeaderEnd()); act.Code != gomilter.ActContinue {
		return nil, act
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mods, act
}

// The same SMTP session carries several messages: accepted, rejected at end
// of message, rejected at MAIL FROM, accepted again. Each must still see the
// connection's client address and HELO (go-milter would otherwise build a
// fresh handler after the first non-continue reply).
func TestSeveralMessagesKeepConnectionData(t *testing.T) {
	rejectSender := &filtertest.Fixed{FilterName: "mailcheck", At: filters.StagesOf(filters.StageMailFrom)}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(&senderReject{bad: "bad@example.net"}, &filtertest.Script{}, rejectSender)})
	s := dial(t, addr)
	s.Macros(gomilter.CodeConn, "j", "mx.example", "{client_addr}", "192.0.2.7")
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	s.Macros(gomilter.CodeHelo) // Postfix sends an empty macro packet here
	must(t)(s.Helo("helo.example"))

	want := "client=192.0.2.7 helo=helo.example"
	steps := []struct {
		from, rcpt string
		code       gomilter.ActionCode
		smtp       int
		header     bool
	}{
		{"a@example.org", "ok@lab.example", gomilter.ActAccept, 0, true},
		{"a@example.org", "reject@lab.example", gomilter.ActReplyCode, 550, false},
		{"bad@example.net", "ok@lab.example", gomilter.ActReplyCode, 550, false},
		{"a@example.org", "tempfail@lab.example", gomilter.ActReplyCode, 451, false},
		{"a@example.org", "discard@lab.example", gomilter.ActDiscard, 0, false},
		{"a@example.org", "ok2@lab.example", gomilter.ActAccept, 0, true},
	}
	for i, st := range steps {
		mods, act := sendMessage(t, s, st.from, st.rcpt, [][2]string{{"Subject", "hi"}}, "body\r\n")
		if act.Code != st.code || act.SMTPCode != st.smtp {
			t.Fatalf("message %d: got action %c %d %q, want %c %d", i, act.Code, act.SMTPCode, act.SMTPText, st.code, st.smtp)
		}
		if st.code == gomilter.ActReplyCode && st.smtp == 550 && !strings.Contains(act.SMTPText, "5.7.1") {
			t.Errorf("message %d: reply %q lacks the enhanced status", i, act.SMTPText)
		}
		var got string
		for _, m := range mods {
			if m.Code == gomilter.ActAddHeader && m.HeaderName == "X-Sluice-Test" {
				got = m.HeaderValue
			}
		}
		if st.header && got != want {
			t.Errorf("message %d: header %q, want %q", i, got, want)
		}
		if !st.header && got != "" {
			t.Errorf("message %d: refused message got header %q", i, got)
		}
	}
	if n := rejectSender.Calls(); n != 5 {
		// Every message that reached MAIL FROM past the first filter...
		// except the one senderReject refused first (reject stops the stage).
		t.Errorf("mail-stage filter ran %d times, want 5", n)
	}
}

// senderReject rejects one envelope sender at MAIL FROM.
type senderReject struct{ bad string }

func (f *senderReject) Name() string { return "senderreject" }
func (f *senderReject) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageMailFrom)}
}
func (f *senderReject) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if m.From.Addr == f.bad {
		return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: "Sender banned"}}, nil
	}
	return filters.Verdict{}, nil
}

// recorder keeps a copy of what it saw at end of message.
type recorder struct {
	mu       sync.Mutex
	msgs     []filters.Message
	bodies   [][]byte
	spilled  []bool
	needBody bool
}

func (r *recorder) Name() string { return "recorder" }
func (r *recorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: r.needBody}
}
func (r *recorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := *m
	cp.Headers = append([]filters.Header(nil), m.Headers...)
	cp.Macros = map[string]string{}
	for k, v := range m.Macros {
		cp.Macros[k] = v
	}
	conn := *m.Conn
	cp.Conn = &conn
	r.msgs = append(r.msgs, cp)
	var body []byte
	spilled := false
	if m.Body != nil {
		body, _ = io.ReadAll(m.Body.Reader())
		spilled = m.Body.Spilled()
	}
	r.bodies = append(r.bodies, body)
	r.spilled = append(r.spilled, spilled)
	return filters.Verdict{}, nil
}

func TestMessageModel(t *testing.T) {
	rec := &recorder{needBody: true}
	tmp := t.TempDir()
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec), BodyMemoryLimit: 1024, TempDir: tmp})
	s := dial(t, addr)
	s.Macros(gomilter.CodeConn, "j", "mx.example", "{daemon_name}", "smtpd")
	must(t)(s.Conn("[192.0.2.9]", gomilter.FamilyInet6, 25, "2001:db8::9"))
	s.Macros(gomilter.CodeHelo)
	must(t)(s.Helo("h.example"))

	hdrs := [][2]string{
		{"Received", "from a by b"},
		{"subject", "Grüße"},
		{"X-Empty", ""},
		{"Received", "from c by d"},
		{"X-Folded", "one\n\ttwo"},
	}
	big := strings.Repeat("0123456789abcdef\r\n", 1000) // 18 kB: spills past 1 kB
	_, act := sendMessage(t, s, "", "u@lab.example", hdrs, big)
	if act.Code != gomilter.ActAccept {
		t.Fatalf("action %c", act.Code)
	}
	_, act = sendMessage(t, s, "x@example.org", "v@lab.example", hdrs[:1], "small\r\n")
	if act.Code != gomilter.ActAccept {
		t.Fatalf("action %c", act.Code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 2 {
		t.Fatalf("recorded %d messages", len(rec.msgs))
	}
	m := rec.msgs[0]
	if len(m.Headers) != len(hdrs) {
		t.Fatalf("headers %v", m.Headers)
	}
	for i, h := range hdrs {
		if m.Headers[i].Name != h[0] || m.Headers[i].Value != h[1] {
			t.Errorf("header %d: got %q: %q, want %q: %q", i, m.Headers[i].Name, m.Headers[i].Value, h[0], h[1])
		}
	}
	if m.From.Addr != "" {
		t.Errorf("null sender came through as %q", m.From.Addr)
	}
	if got := strings.Join(m.From.Args, " "); got != "SIZE=100 BODY=8BITMIME" {
		t.Errorf("ESMTP args %q", got)
	}
	if m.Conn.Addr.String() != "2001:db8::9" || m.Conn.Family != "tcp6" || m.Conn.Helo != "h.example" {
		t.Errorf("conn %+v", m.Conn)
	}
	if v, ok := m.Macro("daemon_name"); !ok || v != "smtpd" {
		t.Errorf("connect macro lost after empty HELO macros: %q %v", v, ok)
	}
	if m.QueueID != "QIDu@lab.example" {
		t.Errorf("queue id %q", m.QueueID)
	}
	if string(rec.bodies[0]) != big || !rec.spilled[0] {
		t.Errorf("big body: %d bytes, spilled %v", len(rec.bodies[0]), rec.spilled[0])
	}
	if string(rec.bodies[1]) != "small\r\n" || rec.spilled[1] {
		t.Errorf("small body %q spilled %v", rec.bodies[1], rec.spilled[1])
	}
	if len(rec.msgs[1].Headers) != 1 || rec.msgs[1].Conn.Helo != "h.example" {
		t.Errorf("second message: %+v", rec.msgs[1])
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
}

// Only the protocol steps filters need are negotiated.
func TestNegotiatesOnlyNeededSteps(t *testing.T) {
	tests := []struct {
		name   string
		f      filters.Filter
		noBody bool
		noHdrs bool
	}{
		{"header-adder", &filtertest.Script{}, true, true},
		{"body-reader", &recorder{needBody: true}, false, false},
		{"header-reader", &recorder{}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := startServer(t, milter.Config{Pipeline: pipeline(tc.f)})
			s := dial(t, addr)
			if got := s.ProtocolOption(gomilter.OptNoBody); got != tc.noBody {
				t.Errorf("NoBody = %v, want %v", got, tc.noBody)
			}
			if got := s.ProtocolOption(gomilter.OptNoHeaders); got != tc.noHdrs {
				t.Errorf("NoHeaders = %v, want %v", got, tc.noHdrs)
			}
		})
	}
}

func TestFilterFailures(t *testing.T) {
	tests := []struct {
		name   string
		f      *filtertest.Fixed
		policy filters.FailurePolicy
		want   gomilter.ActionCode
	}{
		{"error-accept", &filtertest.Fixed{Err: filtertest.ErrTest}, filters.FailAccept, gomilter.ActAccept},
		{"error-tempfail", &filtertest.Fixed{Err: filtertest.ErrTest}, filters.FailTempfail, gomilter.ActReplyCode},
		{"panic-accept", &filtertest.Fixed{Panic: "boom"}, filters.FailAccept, gomilter.ActAccept},
		{"timeout-accept", &filtertest.Fixed{Delay: time.Minute, IgnoreContext: true}, filters.FailAccept, gomilter.ActAccept},
		{"timeout-tempfail", &filtertest.Fixed{Delay: time.Minute}, filters.FailTempfail, gomilter.ActReplyCode},
		{"bad-reply", &filtertest.Fixed{Verdict: filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 250, Text: "ok"}}}, filters.FailAccept, gomilter.ActAccept},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.FilterName = tc.name
			tc.f.At = filters.StagesOf(filters.StageEOM)
			p := filters.NewPipeline([]filters.Step{{Filter: tc.f, Timeout: 200 * time.Millisecond, OnFailure: tc.policy}}, nil)
			_, addr := startServer(t, milter.Config{Pipeline: p})
			s := dial(t, addr)
			must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
			must(t)(s.Helo("h"))
			for i := 0; i < 2; i++ { // the session survives the failure
				_, act := sendMessage(t, s, "a@b", "c@d", nil, "x\r\n")
				if act.Code != tc.want {
					t.Fatalf("message %d: action %c, want %c", i, act.Code, tc.want)
				}
				if act.Code == gomilter.ActReplyCode && act.SMTPCode != 451 {
					t.Fatalf("reply %d %s", act.SMTPCode, act.SMTPText)
				}
			}
		})
	}
}

// Shutdown lets a message in flight finish, then closes; no temp file and
// no goroutine is left behind.
func TestGracefulShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	tmp := t.TempDir()
	slow := &filtertest.Fixed{FilterName: "slow", At: filters.StagesOf(filters.StageEOM), Delay: 300 * time.Millisecond, NeedBody: true,
		Verdict: filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Slow", Value: "done"}}}}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(slow), BodyMemoryLimit: 16, TempDir: tmp}, nil, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	idle := dial(t, ln.Addr().String()) // a second, idle session
	must(t)(idle.Conn("c", gomilter.FamilyInet, 1, "192.0.2.2"))

	s := dial(t, ln.Addr().String())
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Helo("h"))
	must(t)(s.Mail("a@b", nil))
	must(t)(s.Rcpt("c@d", nil))
	must(t)(s.HeaderEnd())
	must(t)(s.BodyChunk(bytes.Repeat([]byte("x"), 4096)))
	for srv.Sessions() != 2 {
		time.Sleep(time.Millisecond)
	}

	type result struct {
		mods []gomilter.ModifyAction
		act  *gomilter.Action
		err  error
	}
	res := make(chan result, 1)
	go func() {
		mods, act, err := s.End()
		res <- result{mods, act, err}
	}()
	time.Sleep(50 * time.Millisecond) // the filter is now working on it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-res
	if r.err != nil || r.act.Code != gomilter.ActAccept || len(r.mods) != 1 || r.mods[0].HeaderValue != "done" {
		t.Fatalf("in-flight message: %+v %+v %v", r.mods, r.act, r.err)
	}
	if err := <-served; err != milter.ErrServerClosed {
		t.Errorf("Serve returned %v", err)
	}
	if _, err := net.DialTimeout("tcp4", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
	s.Close()
	idle.Close()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// socketAddress returns a unix socket address in a new directory under
// /tmp (short enough for a socket path).
func socketAddress(t *testing.T) (milter.Address, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "sl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "m.sock")
	a, err := milter.ParseAddress("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	return a, path
}

func TestUnixListenerReplacesOnlyStaleSocket(t *testing.T) {
	a, path := socketAddress(t)
	ln, err := milter.Listen(a, milter.UnixOptions{Mode: 0o666})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if _, err := milter.Listen(a, milter.UnixOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listen on a live socket: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); err == nil {
		t.Fatal("Close left the socket file")
	}
	// Simulate a crash: a socket file stays, nobody answers.
	raw, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	raw.SetUnlinkOnClose(false)
	raw.Close()
	ln2, err := milter.Listen(a, milter.UnixOptions{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	os.WriteFile(path, []byte("x"), 0o600)
	if _, err := milter.Listen(a, milter.UnixOptions{}); err == nil {
		t.Fatal("a regular file was replaced by a socket")
	}
}

func TestParseAddress(t *testing.T) {
	good := map[string]string{
		"unix:/run/sluice/sluice.sock": "unix:/run/sluice/sluice.sock",
		"inet:127.0.0.1:7357":          "inet:127.0.0.1:7357",
		"inet6:[::1]:7357":             "inet:[::1]:7357",
		"inet:[::1]:7357":              "inet:[::1]:7357",
		"inet:localhost:7357":          "inet:localhost:7357",
	}
	for in, want := range good {
		a, err := milter.ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("%s: %v %v", in, a, err)
		}
	}
	for _, bad := range []string{"", "/run/x.sock", "unix:relative.sock", "inet:7357", "inet::7357", "inet:127.0.0.1:99999", "inet6:127.0.0.1:25", "inet:::1:25", "tcp:127.0.0.1:1",
		// A blank after the colon, which lookup would fail on only at
		// start; a socket path naming a directory.
		"inet: 127.0.0.1:7357", "inet:127.0.0.1 :7357", "inet6:[ ::1]:7357", "unix:/run/sluice/", "unix:/run/sluice/s.sock/"} {
		if _, err := milter.ParseAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Postfix knows no inet6: kind (3.7 logs "invalid transport name: inet6
// in Milter service" and applies milter_default_action to every message);
// it writes an IPv6 address in brackets after inet:. sluice takes that
// text, binds it as IPv6, and writes it back so, for main.cf.
func TestParseAddressPostfixIPv6(t *testing.T) {
	for in, want := range map[string]milter.Address{
		"inet:[::1]:7357":              {Network: "tcp6", Addr: "[::1]:7357"},
		"inet:[::]:7357":               {Network: "tcp6", Addr: "[::]:7357"},
		"inet:[2001:db8::25]:7357":     {Network: "tcp6", Addr: "[2001:db8::25]:7357"},
		"inet6:[::1]:7357":             {Network: "tcp6", Addr: "[::1]:7357"},
		"inet:[127.0.0.1]:7357":        {Network: "tcp4", Addr: "127.0.0.1:7357"},
		"inet:[::ffff:127.0.0.1]:7357": {Network: "tcp4", Addr: "[::ffff:127.0.0.1]:7357"},
	} {
		a, err := milter.ParseAddress(in)
		if err != nil || a != want {
			t.Errorf("ParseAddress(%q) = %s %s, %v; want %s %s", in, a.Network, a.Addr, err, want.Network, want.Addr)
		}
	}
	for in, want := range map[string]string{
		"inet:[::1]:7357":       "inet:[::1]:7357",
		"inet6:[::1]:7357":      "inet:[::1]:7357",
		"inet6:localhost:7357":  "inet6:localhost:7357", // no Postfix spelling binds a name as IPv6 only
		"inet:[127.0.0.1]:7357": "inet:127.0.0.1:7357",
	} {
		a, err := milter.ParseAddress(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddress(%q).String() = %q, %v; want %q", in, a.String(), err, want)
		}
		if b, err := milter.ParseAddress(a.String()); err != nil || b != a {
			t.Errorf("%q does not read back as %s %s: %s %s, %v", a.String(), a.Network, a.Addr, b.Network, b.Addr, err)
		}
	}
}

// A socket path with a blank, a comma or a control character is refused:
// Postfix splits smtpd_milters at blanks and commas (3.7 took
// "unix:/tmp/my milter/s.sock" for the milters "unix:/tmp/my" and
// "milter/s.sock", and applied milter_default_action to every message),
// Sendmail its S= equates at commas, so no MTA could name the socket,
// which sluice bound and served all the same.
func TestParseAddressUnixPathMTAsCannotName(t *testing.T) {
	for _, bad := range []string{
		"unix:/run/my milter/sluice.sock",
		"unix:/run/sluice/sluice.sock ",
		"unix:/run/sluice/a,b.sock",
		"unix:/run/sluice/sluice\tx.sock",
		"unix:/run/sluice/sluice\n.sock",
		"local:/run/sluice/sluice.sock\u00a0",
	} {
		if a, err := milter.ParseAddress(bad); err == nil || !strings.Contains(err.Error(), "could not name it") {
			t.Errorf("ParseAddress(%q) = %s %q, %v; want an error saying the MTA could not name it", bad, a.Network, a.Addr, err)
		}
	}
	if _, err := milter.ParseAddress("unix:/run/sluice-1/sluice_2.sock"); err != nil {
		t.Errorf("a plain path: %v", err)
	}
}

// A socket path whose last element is "." or ".." names a directory, as
// one ending in "/" does: cleaned, it would serve a socket in the
// directory's place (or fail at start), while the MTA, resolving the
// text as written, could never reach it.
func TestParseAddressUnixPathNamingADirectory(t *testing.T) {
	for _, bad := range []string{
		"unix:/run/sluice/.",
		"unix:/run/sluice/..",
		"local:/run/sluice/sluice.sock/..",
		"unix:/.",
	} {
		if a, err := milter.ParseAddress(bad); err == nil || !strings.Contains(err.Error(), "names a directory") {
			t.Errorf("ParseAddress(%q) = %s %q, %v; want an error saying it names a directory", bad, a.Network, a.Addr, err)
		}
	}
	for in, want := range map[string]string{
		"unix:/run/sluice/./sluice.sock": "/run/sluice/sluice.sock",
		"unix:/run/sluice/.sock":         "/run/sluice/.sock",
		"unix:/run/sluice/..sock":        "/run/sluice/..sock",
	} {
		if a, err := milter.ParseAddress(in); err != nil || a.Addr != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, a.Addr, err, want)
		}
	}
}

// An address without a host, or in Sendmail's S= syntax (which
// docs/sendmail.md shows next to sluice's), is refused with an error
// that shows the form sluice wants, not net.SplitHostPort's "missing
// port in address" for an address that has a port.
func TestParseAddressErrorShowsTheForm(t *testing.T) {
	for in, want := range map[string]string{
		"inet:7357":             "want inet:HOST:PORT, e.g. inet:127.0.0.1:7357",
		"inet:7357@127.0.0.1":   "Sendmail's form; sluice writes it inet:127.0.0.1:7357",
		"inet6:7357@::1":        "Sendmail's form; sluice writes it inet6:[::1]:7357",
		"inet:7357@::1":         "Sendmail's form; sluice writes it inet:[::1]:7357",
		"inet:::1:7357":         "inet:[::1]:7357 for IPv6",
		"inet6:::1:7357":        "want inet6:[HOST]:PORT, e.g. inet6:[::1]:7357",
		"inet:127.0.0.1:7357:1": "want inet:HOST:PORT, e.g. inet:127.0.0.1:7357",
	} {
		_, err := milter.ParseAddress(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddress(%q) = %v, want an error with %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "missing port") {
			t.Errorf("ParseAddress(%q) = %v: the address has a port", in, err)
		}
	}
}

// A discard decided at connect is carried into each message: Postfix does
// not allow DISCARD as a connect or HELO reply.
func TestDiscardAtConnectAppliesPerMessage(t *testing.T) {
	f := &filtertest.Fixed{FilterName: "conndiscard", At: filters.StagesOf(filters.StageConnect), Verdict: filters.Verdict{Action: filters.Discard}}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(f)})
	s := dial(t, addr)
	if act := must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1")); act.Code != gomilter.ActContinue {
		t.Fatalf("connect reply %c, want continue", act.Code)
	}
	if act := must(t)(s.Helo("h")); act.Code != gomilter.ActContinue {
		t.Fatalf("helo reply %c, want continue", act.Code)
	}
	for i := 0; i < 2; i++ {
		if act := must(t)(s.Mail("a@b", nil)); act.Code != gomilter.ActDiscard {
			t.Fatalf("message %d: MAIL reply %c, want discard", i, act.Code)
		}
	}
}

// An edit decided at MAIL FROM is applied to the model once the header
// block is complete, in the place the MTA will put it.
func TestEarlyEditsAppliedAfterHeaders(t *testing.T) {
	early := &filtertest.Fixed{FilterName: "early", At: filters.StagesOf(filters.StageMailFrom),
		Verdict: filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Early", Value: "1"}}}}
	rec := &recorder{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(early, rec)})
	s := dial(t, addr)
	must(t)(s.Conn("c", gomilter.FamilyInet, 1, "192.0.2.1"))
	mods, act := sendMessage(t, s, "a@b", "c@d", [][2]string{{"Subject", "s"}, {"From", "f"}}, "x\r\n")
	if act.Code != gomilter.ActAccept || len(mods) != 1 || mods[0].HeaderName != "X-Early" {
		t.Fatalf("action %c mods %+v", act.Code, mods)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var names []string
	for _, h := range rec.msgs[0].Headers {
		names = append(names, h.Name)
	}
	if got := strings.Join(names, ","); got != "Subject,From,X-Early" {
		t.Errorf("model headers %s, want Subject,From,X-Early", got)
	}
}

// A header block over 1 MiB is refused for good as its fields arrive,
// before the filters see it cut short; the session then takes the next
// message as usual.
func TestHeaderBlockBound(t *testing.T) {
	reader := &filtertest.Fixed{FilterName: "reader", At: filters.StagesOf(filters.StageEOM), NeedHeaders: true}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(reader, &filtertest.Script{})})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	must(t)(s.Helo("helo.example"))

	big := make([][2]string, 300)
	for i := range big {
		big[i] = [2]string{"X-Pad", strings.Repeat("p", 3990)}
	}
	_, act := sendMessage(t, s, "alice@example.org", "ok@lab.example", big, "body\r\n")
	if act.Code != gomilter.ActReplyCode || act.SMTPCode != 552 || !strings.Contains(act.SMTPText, "5.3.4 Message header too large") {
		t.Fatalf("huge header block: action %c %d %q, want a 552 5.3.4 reply", act.Code, act.SMTPCode, act.SMTPText)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	mods, act := sendMessage(t, s, "alice@example.org", "ok@lab.example", big[:200], "body\r\n")
	if act.Code != gomilter.ActAccept && act.Code != gomilter.ActContinue {
		t.Fatalf("next message, 800 kB of header: action %c %d %q, want accept", act.Code, act.SMTPCode, act.SMTPText)
	}
	if len(mods) == 0 {
		t.Error("next message: the script filter added no header")
	}
}

// quarantineIP quarantines every message of connections from one address.
type quarantineIP struct{ addr string }

func (quarantineIP) Name() string { return "ip" }
func (quarantineIP) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageConnect)}
}
func (q quarantineIP) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if m.Conn.Addr.String() == q.addr {
		return filters.Verdict{Action: filters.Quarantine, Reason: "listed"}, nil
	}
	return filters.Verdict{}, nil
}

// A second connect on the same milter session starts a new client: the
// first one's connect verdict does not carry over to its messages.
func TestSecondConnectStartsClean(t *testing.T) {
	p := filters.NewPipeline([]filters.Step{{Filter: quarantineIP{"192.0.2.1"}}}, nil)
	_, addr := startServer(t, milter.Config{Pipeline: p})
	s := dial(t, addr)
	must(t)(s.Conn("bad", gomilter.FamilyInet, 1, "192.0.2.1"))
	must(t)(s.Conn("good", gomilter.FamilyInet, 1, "192.0.2.2"))
	must(t)(s.Mail("a@example.org", nil))
	must(t)(s.Rcpt("b@example.org", nil))
	must(t)(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m.Code == gomilter.ActQuarantine {
			t.Errorf("the second client's message was quarantined for the first client (%c)", act.Code)
		}
	}
}

// Closing a unix listener removes its own socket file only: not the live
// socket of a daemon started at the same path after the file was deleted,
// and not a file put there since.
func TestUnixListenerCloseRemovesOnlyItsOwnFile(t *testing.T) {
	a, path := socketAddress(t)
	first, err := milter.Listen(a, milter.UnixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path) // the first daemon's socket file is gone
	second, err := milter.Listen(a, milter.UnixOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first.Close() // the first daemon stops
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("stopping the first daemon cut off the second: %v", err)
	} else {
		c.Close()
	}
	os.Remove(path)
	if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	second.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious\n" {
		t.Errorf("Close removed a file that is not its socket: %q, %v", b, err)
	}
}

// A session that Shutdown closes between messages ends quietly: go-milter
// logs every read error other than io.EOF, and the deadline Shutdown uses
// to end an idle session is not an error worth a log line at each stop.
func TestShutdownClosesIdleSessionWithoutReadError(t *testing.T) {
	var goLog lockedBuffer
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(&goLog)
	t.Cleanup(func() { log.SetOutput(prevOut); log.SetFlags(prevFlags) })

	srv := milter.NewServer(milter.Config{Pipeline: pipeline()}, nil, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	idle := dial(t, ln.Addr().String())
	must(t)(idle.Conn("c", gomilter.FamilyInet, 1, "192.0.2.2"))
	for srv.Sessions() != 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-served
	if out := goLog.String(); out != "" {
		t.Errorf("go-milter logged at shutdown: %q", out)
	}
}

// A session that Shutdown finds in the middle of a connection stage (a
// blocklist lookup at connect) is between messages, and closes: but only
// once its reply is written. Cut off before, the MTA never got the
// verdict the filters reached (a listed client's reject), and applied
// its milter default action instead (with accept, the client went on
// unfiltered), and go-milter logged the failed write ("Error writing
// packet: ... i/o timeout"), a WARN at every stop of a busy daemon.
func TestShutdownLetsConnectionStageReply(t *testing.T) {
	var goLog lockedBuffer
	prevOut, prevFlags := log.Writer(), log.Flags()
	log.SetOutput(&goLog)
	t.Cleanup(func() { log.SetOutput(prevOut); log.SetFlags(prevFlags) })

	listed := &filtertest.Fixed{FilterName: "dnsbl", At: filters.StagesOf(filters.StageConnect), Delay: 300 * time.Millisecond,
		Verdict: filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 554, Enhanced: "5.7.1", Text: "Listed"}}}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(listed)}, nil, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	s := dial(t, ln.Addr().String())
	type answer struct {
		act *gomilter.Action
		err error
	}
	got := make(chan answer, 1)
	go func() {
		act, err := s.Conn("mx.example.net", gomilter.FamilyInet, 1, "192.0.2.2")
		got <- answer{act, err}
	}()
	for listed.Calls() != 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	<-served
	a := <-got
	if a.err != nil || a.act.Code != gomilter.ActReplyCode || a.act.SMTPCode != 554 {
		t.Errorf("connect: action %+v, error %v; want the filter's 554 reject", a.act, a.err)
	}
	if out := goLog.String(); out != "" {
		t.Errorf("go-milter logged at shutdown: %q", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for the log package's writes from
// session goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The client in the log line: an MTA reports a client without a verified
// host name by its address in brackets, which the line shows as Postfix's
// own log does, unknown[ADDRESS], not as the address twice.
func TestSummaryClient(t *testing.T) {
	for _, tc := range []struct{ host, addr, want string }{
		{"mx.example.net", "192.0.2.1", "mx.example.net[192.0.2.1]"},
		{"[192.0.2.1]", "192.0.2.1", "unknown[192.0.2.1]"},
		{"unknown", "192.0.2.1", "unknown[192.0.2.1]"},
		{"[IPv6:2001:db8::1]", "2001:db8::1", "unknown[2001:db8::1]"},
		{"[2001:db8::1]", "2001:db8::1", "unknown[2001:db8::1]"},
		{"[192.0.2.9]", "192.0.2.1", "[192.0.2.9][192.0.2.1]"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			sums := &summaries{}
			_, addr := startServerObserved(t, milter.Config{Pipeline: pipeline()}, sums)
			s := dial(t, addr)
			family := gomilter.FamilyInet
			if strings.Contains(tc.addr, ":") {
				family = gomilter.FamilyInet6
			}
			must(t)(s.Conn(tc.host, family, 1, tc.addr))
			sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
			s.Close()
			sums.wait()
			sums.mu.Lock()
			defer sums.mu.Unlock()
			if len(sums.sums) != 1 {
				t.Fatalf("%d message summaries, want 1", len(sums.sums))
			}
			if got := sums.sums[0].Client; got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
}

// A unix socket has its configured group and mode from the moment it
// accepts connections: not the umask's for an instant, in which the MTA
// may be refused with EACCES, or a local user let in.
func TestUnixListenerModeBeforeListening(t *testing.T) {
	a, path := socketAddress(t)
	// Another group of ours, if we have one, shows a chgrp done late.
	gid := os.Getgid()
	if groups, _ := os.Getgroups(); len(groups) > 0 {
		for _, g := range groups {
			if g != gid {
				gid = g
				break
			}
		}
	}
	var seen os.FileMode
	var seenGid int
	milter.SetListeningHook(func(p string) {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("socket file when listening: %v", err)
			return
		}
		seen = fi.Mode().Perm()
		seenGid = int(fi.Sys().(*syscall.Stat_t).Gid)
	})
	t.Cleanup(func() { milter.SetListeningHook(nil) })
	ln, err := milter.Listen(a, milter.UnixOptions{Mode: 0o660, Group: strconv.Itoa(gid)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != path {
		t.Errorf("listener address %q, want %q", got, path)
	}
	if seen != 0o660 || seenGid != gid {
		t.Errorf("socket accepted connections with mode %#o, group %d; want %#o, group %d", seen, seenGid, 0o660, gid)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
}

// Two daemons starting at once on the same path, with a stale socket file
// there: the one that finds the file replaced by the other's live socket
// after its probe fails to start, rather than removing that socket.
func TestUnixListenerKeepsSocketBoundSinceProbe(t *testing.T) {
	a, path := socketAddress(t)
	raw, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	raw.SetUnlinkOnClose(false)
	raw.Close() // stale
	// Left by a crash a while ago.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	var other net.Listener
	milter.SetStaleHook(func(p string) {
		// The other daemon removes the stale file and binds.
		os.Remove(p)
		var err error
		if other, err = net.Listen("unix", p); err != nil {
			t.Errorf("other daemon: %v", err)
		}
	})
	t.Cleanup(func() { milter.SetStaleHook(nil) })
	ln, err := milter.Listen(a, milter.UnixOptions{})
	milter.SetStaleHook(nil)
	if other == nil {
		t.Fatal("the stale socket was not probed")
	}
	defer other.Close()
	if err == nil {
		ln.Close()
		t.Fatal("Listen took over the socket another daemon bound after the probe")
	}
	c, derr := net.Dial("unix", path)
	if derr != nil {
		t.Fatalf("the other daemon's socket is gone: %v (Listen: %v)", derr, err)
	}
	c.Close()
}
