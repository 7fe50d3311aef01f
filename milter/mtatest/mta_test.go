package mtatest

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// These tests prove the harness against both real MTAs with a bare
// go-milter v0.5.0 server (protocol version 2), independent of sluice's own
// milter code.

const (
	deliverTimeout = 30 * time.Second
	headerName     = "X-Mtatest-Milter"
	// A subject the test milter answers with a quarantine.
	quarantineSubject = "please quarantine"
)

// macroRecord is what the test milter saw at one stage of one message.
type macroRecord struct {
	stage  string
	macros map[string]string
}

// milterLog collects macroRecords from all of a server's sessions.
type milterLog struct {
	mu      sync.Mutex
	records []macroRecord
}

func (l *milterLog) add(stage string, macros map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, macroRecord{stage, maps.Clone(macros)})
}

// count returns how many records of stage there are.
func (l *milterLog) count(stage string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.stage == stage {
			n++
		}
	}
	return n
}

// first returns the macros seen at the first record of stage.
func (l *milterLog) first(stage string) (map[string]string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if r.stage == stage {
			return r.macros, true
		}
	}
	return nil, false
}

// headerMilter adds "X-Mtatest-Milter: queue-id=<i macro>" at the end of
// every message, and quarantines messages whose subject asks for it.
// go-milter makes one per connection, and a fresh one after each message it
// accepts. Sendmail, with its own macro lists, sends i at MAIL FROM only
// (docs/sendmail.md): the milter keeps it from there, as sluice does.
type headerMilter struct {
	milter.NoOpMilter
	log        *milterLog
	quarantine bool
	queueID    string
}

func (h *headerMilter) Connect(host, family string, port uint16, addr net.IP, m *milter.Modifier) (milter.Response, error) {
	h.log.add("connect", m.Macros)
	return milter.RespContinue, nil
}

func (h *headerMilter) MailFrom(from string, m *milter.Modifier) (milter.Response, error) {
	h.log.add("mail", m.Macros)
	h.quarantine = false
	h.queueID = m.Macros["i"]
	return milter.RespContinue, nil
}

func (h *headerMilter) Header(name, value string, m *milter.Modifier) (milter.Response, error) {
	if strings.EqualFold(name, "Subject") && strings.Contains(value, quarantineSubject) {
		h.quarantine = true
	}
	return milter.RespContinue, nil
}

func (h *headerMilter) Headers(hdr textproto.MIMEHeader, m *milter.Modifier) (milter.Response, error) {
	return milter.RespContinue, nil
}

func (h *headerMilter) Body(m *milter.Modifier) (milter.Response, error) {
	h.log.add("eom", m.Macros)
	id := m.Macros["i"]
	if id == "" {
		id = h.queueID
	}
	if err := m.AddHeader(headerName, "queue-id="+id); err != nil {
		return nil, err
	}
	if h.quarantine {
		if err := m.Quarantine("mtatest"); err != nil {
			return nil, err
		}
	}
	return milter.RespAccept, nil
}

// startHeaderMilter serves a headerMilter on a new listener of the given
// network and returns its spec and log.
func startHeaderMilter(t *testing.T, network string) (string, *milterLog) {
	ln, spec := MilterListener(t, network)
	log := &milterLog{}
	srv := &milter.Server{
		NewMilter: func() milter.Milter { return &headerMilter{log: log} },
		Actions:   milter.OptAddHeader | milter.OptQuarantine,
	}
	// Serve returns when MilterListener's cleanup closes the listener.
	go srv.Serve(ln)
	return spec, log
}

// startMTA starts the named MTA with the given milter and default action.
func startMTA(t *testing.T, name, spec, action string) *MTA {
	t.Helper()
	switch name {
	case "postfix":
		return StartPostfix(t, PostfixOptions{Milter: spec, DefaultAction: action})
	case "sendmail":
		return StartSendmail(t, SendmailOptions{Milter: spec, DefaultAction: action})
	}
	t.Fatalf("unknown MTA %q", name)
	return nil
}

// testMessage returns a CRLF message whose body has lines the client must
// dot-stuff, and the body the Maildir file should then hold.
func testMessage(subject string) (raw, wantBody []byte) {
	body := "first line\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n"
	raw = []byte("From: Alice <alice@lab.example>\r\n" +
		"To: Bob <bob@lab.example>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@mtatest.example>\r\n" +
		"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n" +
		"\r\n" + body)
	return raw, []byte(strings.ReplaceAll(body, "\r\n", "\n"))
}

func TestMilterAddsHeader(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		for _, network := range []string{"unix", "tcp"} {
			t.Run(name+"/"+network, func(t *testing.T) {
				t.Parallel()
				spec, log := startHeaderMilter(t, network)
				mta := startMTA(t, name, spec, "tempfail")
				if mta.Name() != name {
					t.Errorf("Name() = %q, want %q", mta.Name(), name)
				}

				c := DialSMTP(t, mta.Addr())
				if c.Greeting.Code != 220 || !strings.HasPrefix(c.Greeting.Text, mta.Hostname()+" ") {
					t.Fatalf("greeting %q, want 220 %s ...", c.Greeting, mta.Hostname())
				}
				if r := c.Cmd("EHLO client.example"); r.Code != 250 || !strings.Contains(r.Text, "\n") {
					t.Fatalf("EHLO: want a multi-line 250, got %q", r)
				}

				// Message 1: delivered with the milter's header.
				// The sender is in a foreign domain: Sendmail's {mail_addr}
				// for a local sender would be the bare user name.
				raw, wantBody := testMessage("harness check one")
				r := c.Send("alice@sender.example", []string{"bob@lab.example"}, raw)
				id := r.QueueID()
				if r.Code != 250 || id == "" {
					t.Fatalf("first message: want 250 with a queue id, got %q", r)
				}

				// Message 2, same session: quarantined by the milter.
				raw2, _ := testMessage(quarantineSubject)
				r = c.Send("alice@lab.example", []string{"carol@lab.example"}, raw2)
				id2 := r.QueueID()
				if r.Code != 250 || id2 == "" {
					t.Fatalf("second message: want 250 with a queue id, got %q", r)
				}
				if r := c.Quit(); r.Code != 221 {
					t.Errorf("QUIT: %q", r)
				}

				ds := mta.WaitDelivered(t, 1, deliverTimeout)
				mta.WaitIdle(t, deliverTimeout)
				if ds = mta.Delivered(t); len(ds) != 1 {
					t.Fatalf("%d messages delivered, want 1 (the second is quarantined)", len(ds))
				}
				d := ds[0]
				if got := d.Recipient(); got != "bob@lab.example" {
					t.Errorf("Delivered-To %q, want bob@lab.example", got)
				}
				if got, want := d.Get(headerName), "queue-id="+id; got != want {
					t.Errorf("%s: %q, want %q (the i macro at end of message must be the queue id in the DATA reply)", headerName, got, want)
				}
				if last := d.Header[len(d.Header)-1]; last.Name != headerName {
					t.Errorf("last header field is %q, want the one the milter added", last.Raw)
				}
				if got := d.Get("Subject"); got != "harness check one" {
					t.Errorf("Subject %q", got)
				}
				if !bytes.Equal(d.Body, wantBody) {
					t.Errorf("body (dot-stuffing round trip):\n got %q\nwant %q", d.Body, wantBody)
				}
				if held := mta.Held(t); !slices.Equal(held, []string{id2}) {
					t.Errorf("held %q, want [%s]", held, id2)
				}

				// Starting the MTA must not have opened SMTP sessions of its
				// own: the milter saw exactly the test's one connection.
				if n := log.count("connect"); n != 1 {
					t.Errorf("milter saw %d SMTP connections, want 1", n)
				}

				// The macros the harness configures reach the milter.
				conn, ok := log.first("connect")
				if !ok {
					t.Fatal("milter saw no connect")
				}
				if got := conn["{client_addr}"]; got != "127.0.0.1" {
					t.Errorf("{client_addr} at connect = %q, want 127.0.0.1 (macros %v)", got, conn)
				}
				if p, err := strconv.Atoi(conn["{client_port}"]); err != nil || p <= 0 {
					t.Errorf("{client_port} at connect = %q, want a port (macros %v)", conn["{client_port}"], conn)
				}
				if _, ok := conn["{client_name}"]; !ok {
					t.Errorf("{client_name} not sent at connect (macros %v)", conn)
				}
				mail, _ := log.first("mail")
				if got := mail["{mail_addr}"]; got != "alice@sender.example" {
					t.Errorf("{mail_addr} at MAIL = %q (macros %v)", got, mail)
				}
			})
		}
	}
}

// TestDefaultAction checks each MTA's behaviour when its milter is down.
func TestDefaultAction(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		for _, tc := range []struct {
			action    string
			wantClass int // of the first reply that is not 2xx/3xx, or 2 if none
		}{
			{"accept", 2},
			{"tempfail", 4},
			{"reject", 5},
		} {
			t.Run(name+"/"+tc.action, func(t *testing.T) {
				t.Parallel()
				mta := startMTA(t, name, DeadMilter(t, "unix"), tc.action)
				r := sessionResult(t, mta)
				t.Logf("%v, milter down, default action %s: %q", mta, tc.action, r)
				if r.Code/100 != tc.wantClass {
					t.Fatalf("milter down, default action %s: got %q, want a %dxx", tc.action, r, tc.wantClass)
				}
				if tc.wantClass != 2 {
					mta.AssertNothingDelivered(t, deliverTimeout)
					return
				}
				d := mta.WaitDelivered(t, 1, deliverTimeout)[0]
				if got := d.Get(headerName); got != "" {
					t.Errorf("%s present without a milter: %q", headerName, got)
				}
			})
		}
	}
}

// sessionResult runs greeting, EHLO and one transaction and returns the
// first reply that is not 2xx/3xx, or the final 250.
func sessionResult(t *testing.T, mta *MTA) Reply {
	t.Helper()
	c := DialSMTP(t, mta.Addr())
	if c.Greeting.Code/100 != 2 {
		return c.Greeting
	}
	if r := c.Cmd("EHLO client.example"); r.Code/100 != 2 {
		return r
	}
	raw, _ := testMessage("default action")
	return c.Send("alice@lab.example", []string{"bob@lab.example"}, raw)
}

// TestExtraConfigAndRouting checks that extra configuration reaches each
// MTA (a tiny message size limit), that discard.example is accepted
// without delivery, and that other domains are refused at RCPT.
func TestExtraConfigAndRouting(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mta *MTA
			if name == "postfix" {
				mta = StartPostfix(t, PostfixOptions{ExtraConfig: []string{"message_size_limit = 2000"}})
			} else {
				mta = StartSendmail(t, SendmailOptions{ExtraConfig: []string{"define(`confMAX_MESSAGE_SIZE', `2000')dnl"}})
			}
			c := DialSMTP(t, mta.Addr())
			c.Cmd("EHLO client.example")

			small, _ := testMessage("small")
			if r := c.Send("alice@lab.example", []string{"sink@discard.example"}, small); r.Code != 250 {
				t.Fatalf("discard.example: %q", r)
			}
			if r := c.Cmd("MAIL FROM:<alice@lab.example>"); r.Code != 250 {
				t.Fatalf("MAIL: %q", r)
			}
			if r := c.Cmd("RCPT TO:<someone@elsewhere.example>"); r.Code/100 != 5 {
				t.Fatalf("RCPT to a foreign domain: got %q, want 5xx", r)
			}
			if r := c.Cmd("RSET"); r.Code != 250 {
				t.Fatalf("RSET: %q", r)
			}
			big := append(small[:len(small):len(small)], bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef\r\n"), 100)...)
			if r := c.Send("alice@lab.example", []string{"bob@lab.example"}, big); r.Code != 552 {
				t.Fatalf("5 KB message with a 2000-byte limit: got %q, want 552", r)
			}
			mta.AssertNothingDelivered(t, deliverTimeout)
			if !strings.Contains(mta.Log(), "sink@discard.example") {
				t.Errorf("log does not mention the discarded message:\n%s", mta.Log())
			}
		})
	}
}

func TestSendmailMilterSpec(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"unix:/tmp/sl-m-1/milter.sock", "unix:/tmp/sl-m-1/milter.sock"},
		{"inet:127.0.0.1:7357", "inet:7357@127.0.0.1"},
		{"inet:127.0.0.2:25", "inet:25@127.0.0.2"},
		{"inet:[::1]:7357", "inet6:7357@::1"},
	} {
		got, err := SendmailMilterSpec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("SendmailMilterSpec(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"unix:relative.sock",
		"inet:192.0.2.1:7357", // not loopback
		"inet:localhost:7357", // names are ambiguous; IPs only
		"inet:127.0.0.1",
		"inet:127.0.0.1:0",
		"inet:127.0.0.1:99999",
		"local:/tmp/x.sock",
		"7357@127.0.0.1",
		"unix:/" + strings.Repeat("x", 107),
	} {
		if got, err := SendmailMilterSpec(bad); err == nil {
			t.Errorf("SendmailMilterSpec(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Reply
	}{
		{"220 mx.example ESMTP\r\n", Reply{220, "mx.example ESMTP", "220 mx.example ESMTP\r\n"}},
		{"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
			Reply{250, "mx.example\nPIPELINING\n8BITMIME", "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"}},
		{"250\r\n", Reply{250, "", "250\r\n"}},
		{"451 4.7.1 bare LF\n", Reply{451, "4.7.1 bare LF", "451 4.7.1 bare LF\n"}},
	} {
		got, err := readReply(newLineReader(strings.NewReader(tc.in + "221 next\r\n")))
		if err != nil || got != tc.want {
			t.Errorf("readReply(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"",                         // EOF
		"250-unfinished\r\n",       // EOF inside a reply
		"25\r\n",                   // short
		"abc text\r\n",             // not a code
		"250-one\r\n251 two\r\n",   // code changes
		"250_text\r\n",             // bad separator
		"099 too small\r\n",        // out of range
		strings.Repeat("9", 70000), // line too long
	} {
		if got, err := readReply(newLineReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readReply(%.40q) = %#v, want an error", bad, got)
		}
	}
}

func TestReplyQueueID(t *testing.T) {
	for _, tc := range []struct {
		r    Reply
		want string
	}{
		{Reply{Code: 250, Text: "2.0.0 Ok: queued as 38EAF984FB8"}, "38EAF984FB8"},
		{Reply{Code: 250, Text: "2.0.0 6ANDwiwV006970 Message accepted for delivery"}, "6ANDwiwV006970"},
		{Reply{Code: 250, Text: "2.0.0 Ok"}, ""},
		{Reply{Code: 451, Text: "4.7.1 queued as nothing"}, ""},
	} {
		if got := tc.r.QueueID(); got != tc.want {
			t.Errorf("%q.QueueID() = %q, want %q", tc.r.Text, got, tc.want)
		}
	}
}

func TestEncodeData(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n.\r\n"},
		{"no final newline", "no final newline\r\n.\r\n"},
		{"bare\nLF\n.x\n", "bare\nLF\n..x\n\r\n.\r\n"},
		{"bare\rCR\r.x\r\n", "bare\rCR\r.x\r\n.\r\n"},
	} {
		if got := string(EncodeData([]byte(tc.in))); got != tc.want {
			t.Errorf("EncodeData(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseDelivered(t *testing.T) {
	raw := "Delivered-To: bob@lab.example\n" +
		"Received: from x\n\tby y; Mon, 23 Nov 2026\n" +
		"Subject:no space\n" +
		"X-CR: value\r\n" +
		"not a field\n" +
		"\n" +
		"body\n\nmore\n"
	d := ParseDelivered([]byte(raw))
	want := []Field{
		{"Delivered-To", "bob@lab.example", "Delivered-To: bob@lab.example"},
		{"Received", "from x\n\tby y; Mon, 23 Nov 2026", "Received: from x\n\tby y; Mon, 23 Nov 2026"},
		{"Subject", "no space", "Subject:no space"},
		{"X-CR", "value\r", "X-CR: value\r"},
		{"", "not a field", "not a field"},
	}
	if !slices.Equal(d.Header, want) {
		t.Errorf("header:\n got %#v\nwant %#v", d.Header, want)
	}
	if string(d.Body) != "body\n\nmore\n" {
		t.Errorf("body %q", d.Body)
	}
	if d.Recipient() != "bob@lab.example" || d.Get("subject") != "no space" || len(d.Values("received")) != 1 {
		t.Errorf("accessors: %q %q %q", d.Recipient(), d.Get("subject"), d.Values("received"))
	}
	if h := ParseDelivered([]byte("A: 1\nB: 2")); len(h.Header) != 2 || h.Body != nil {
		t.Errorf("header without body: %#v", h)
	}
}

// TestConcurrentInstances runs two instances of each MTA at the same time
// and checks that they share neither deliveries nor logs.
func TestConcurrentInstances(t *testing.T) {
	for _, name := range []string{"postfix", "sendmail"} {
		for i := range 2 {
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				t.Parallel()
				mta := startMTA(t, name, "", "accept")
				rcpt := fmt.Sprintf("%s-user%d@lab.example", name, i)
				sibling := fmt.Sprintf("%s-user%d@lab.example", name, 1-i)
				c := DialSMTP(t, mta.Addr())
				c.Cmd("EHLO client.example")
				raw, _ := testMessage(fmt.Sprintf("instance %d", i))
				if r := c.Send("alice@lab.example", []string{rcpt}, raw); r.Code != 250 {
					t.Fatalf("%q", r)
				}
				c.Quit()
				mta.WaitDelivered(t, 1, deliverTimeout)
				mta.WaitIdle(t, deliverTimeout)
				ds := mta.Delivered(t)
				if len(ds) != 1 || ds[0].Recipient() != rcpt {
					t.Fatalf("%d deliveries; want exactly one, to %s", len(ds), rcpt)
				}
				// The delivery's log line may reach the log after the
				// message reaches the mailbox.
				mta.WaitLog(t, rcpt, deliverTimeout)
				// Each log line names the host that wrote it: every line
				// in this instance's log must come from this instance.
				short, _, _ := strings.Cut(mta.Hostname(), ".")
				for line := range strings.Lines(mta.Log()) {
					if f := strings.Fields(line); len(f) < 4 || f[3] != short {
						t.Errorf("log line not from %s: %q", short, line)
					}
				}
				if strings.Contains(mta.Log(), sibling) {
					t.Errorf("log mentions the sibling instance's recipient %s", sibling)
				}
			})
		}
	}
}

// TestSubmitLocal submits through the instance's own sendmail(1): with
// NonSMTPDMilters the milter sees the message, after Postfix's simulated
// connect from localhost; without it the message is delivered unfiltered.
func TestSubmitLocal(t *testing.T) {
	for _, withMilter := range []bool{true, false} {
		t.Run(fmt.Sprintf("non_smtpd_milters=%v", withMilter), func(t *testing.T) {
			t.Parallel()
			spec, log := startHeaderMilter(t, "unix")
			mta := StartPostfix(t, PostfixOptions{Milter: spec, DefaultAction: "tempfail", NonSMTPDMilters: withMilter})
			raw := []byte("From: Alice <alice@lab.example>\nTo: Bob <bob@lab.example>\nSubject: local\n\n.\nlast line\n")
			out, err := mta.SubmitLocal(t, "alice@lab.example", []string{"bob@lab.example"}, raw)
			if err != nil || out != "" {
				t.Fatalf("sendmail: %v, output %q; want success and no output", err, out)
			}
			ds := mta.WaitDelivered(t, 1, deliverTimeout)
			mta.WaitIdle(t, deliverTimeout)
			if q := mta.Queued(t); len(q) != 0 {
				t.Errorf("queued after WaitIdle: %v", q)
			}
			d := ds[0]
			if d.Recipient() != "bob@lab.example" || d.Get("Return-Path") != "<alice@lab.example>" {
				t.Errorf("delivered to %q with Return-Path %q", d.Recipient(), d.Get("Return-Path"))
			}
			if got := d.Get("Received"); !strings.Contains(got, "from userid 0") {
				t.Errorf("Received: %q, want Postfix's local submission form (from userid 0)", got)
			}
			// "-i": the lone dot is a line of the body.
			if string(d.Body) != ".\nlast line\n" {
				t.Errorf("body %q", d.Body)
			}
			// "by HOST (Postfix, from userid 0)\n\tid QUEUEID; DATE"
			_, id, _ := strings.Cut(d.Get("Received"), "\tid ")
			id, _, _ = strings.Cut(id, ";")
			if withMilter {
				if got, want := d.Get(headerName), "queue-id="+id; got != want {
					t.Errorf("%s: %q, want %q", headerName, got, want)
				}
				conn, ok := log.first("connect")
				if !ok {
					t.Fatal("milter saw no connect")
				}
				for k, want := range map[string]string{"{client_addr}": "127.0.0.1", "{client_name}": "localhost", "{client_port}": "0", "_": "localhost [127.0.0.1]"} {
					if conn[k] != want {
						t.Errorf("simulated connect: %s = %q, want %q (macros %v)", k, conn[k], want, conn)
					}
				}
				// At MAIL only i and {mail_addr}: no {mail_host} or
				// {mail_mailer} as for an SMTP client.
				mail, _ := log.first("mail")
				if len(mail) != 2 || mail["i"] != id || mail["{mail_addr}"] != "alice@lab.example" {
					t.Errorf("macros at MAIL %v, want i=%s and {mail_addr}=alice@lab.example only", mail, id)
				}
			} else {
				if got := d.Get(headerName); got != "" {
					t.Errorf("without non_smtpd_milters the milter added %s: %q", headerName, got)
				}
				if n := log.count("connect"); n != 0 {
					t.Errorf("without non_smtpd_milters the milter saw %d connections", n)
				}
			}
		})
	}
}

// TestSubmitLocalSendmail submits through the Sendmail instance's
// submission program: it relays the message over SMTP from 127.0.0.1,
// so the milter sees it, and sendmail(1) returns once the daemon has
// answered, leaving nothing in clientmqueue.
func TestSubmitLocalSendmail(t *testing.T) {
	spec, log := startHeaderMilter(t, "tcp")
	mta := StartSendmail(t, SendmailOptions{Milter: spec})
	raw := []byte("From: Alice <alice@lab.example>\nTo: Bob <bob@lab.example>\nSubject: local\n\n.\nlast line\n")
	out, err := mta.SubmitLocal(t, "alice@lab.example", []string{"bob@lab.example"}, raw)
	if err != nil || out != "" {
		t.Fatalf("sendmail: %v, output %q; want success and no output", err, out)
	}
	ds := mta.WaitDelivered(t, 1, deliverTimeout)
	mta.WaitIdle(t, deliverTimeout)
	if q := mta.Queued(t); len(q) != 0 {
		t.Errorf("queued after WaitIdle: %v", q)
	}
	d := ds[0]
	if d.Recipient() != "bob@lab.example" || d.Get("Return-Path") != "<alice@lab.example>" {
		t.Errorf("delivered to %q with Return-Path %q", d.Recipient(), d.Get("Return-Path"))
	}
	// The daemon's Received: names the submission program's host, then
	// the program's own ("by HOST (8.17.1.9/8.17.1.9/Submit)").
	rcvd := d.Values("Received")
	if len(rcvd) != 2 || !strings.HasPrefix(rcvd[0], "from "+mta.Hostname()+" (localhost [127.0.0.1])") || !strings.Contains(rcvd[1], "/Submit) id ") {
		t.Errorf("Received: %q", rcvd)
	}
	// "-i": the lone dot is a line of the body.
	if string(d.Body) != ".\nlast line\n" {
		t.Errorf("body %q", d.Body)
	}
	if !strings.HasPrefix(d.Get(headerName), "queue-id=") || d.Get(headerName) == "queue-id=" {
		t.Errorf("%s: %q, want the daemon's queue id", headerName, d.Get(headerName))
	}
	conn, ok := log.first("connect")
	if !ok {
		t.Fatal("milter saw no connect")
	}
	if conn["{client_addr}"] != "127.0.0.1" {
		t.Errorf("connect macros %v, want {client_addr} 127.0.0.1", conn)
	}
}
