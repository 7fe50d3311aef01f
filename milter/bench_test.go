package milter_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// BenchmarkThroughput measures raw milter throughput with one client, go-milter's
// own, against:
//
//	sluice          sluice with an empty pipeline
//	bare            a bare go-milter v0.5.0 server with NoOpMilter, which
//	                asks for every protocol step
//	bare-sameproto  the same bare server negotiating the steps sluice
//	                negotiates with no filter (no headers, no body), so that
//	                the two do the same protocol work
//
// over unix and loopback inet sockets, with 1 and 8 concurrent clients.
// Each operation is one milter session carrying one ~5 kB message, as
// Postfix opens one milter connection per SMTP session: connect,
// option negotiation, macros, HELO, MAIL, RCPT, 10 headers, body, end of
// message, quit. The msgs/s metric is what testdata/bench/milter-throughput.sh
// compares.
func BenchmarkThroughput(b *testing.B) {
	for _, server := range []string{"sluice", "bare", "bare-sameproto"} {
		for _, network := range []string{"unix", "inet"} {
			for _, conc := range []int{1, 8} {
				b.Run(fmt.Sprintf("server=%s/net=%s/conc=%d", server, network, conc), func(b *testing.B) {
					clientNet, addr := benchServer(b, server, network)
					benchClients(b, clientNet, addr, conc)
				})
			}
		}
	}
}

// sluiceEmptyProtocol is what sluice negotiates with an empty pipeline:
// no unknown commands, no DATA, no headers, no end of headers, no body.
const sluiceEmptyProtocol = gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoBody

// benchActions is what the client offers and sluice asks for; go-milter's
// client refuses a server of protocol version 2 unless it stays within 0x3f.
const benchActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine

// benchServer starts the named server on a fresh listener and returns the
// client's network and address.
func benchServer(b *testing.B, server, network string) (string, string) {
	b.Helper()
	var ln net.Listener
	var err error
	if network == "unix" {
		// A short path: b.TempDir() can exceed the 107 bytes of sun_path.
		dir, derr := os.MkdirTemp("", "sl-bench-")
		if derr != nil {
			b.Fatal(derr)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		ln, err = net.Listen("unix", filepath.Join(dir, "m.sock"))
	} else {
		network = "tcp4"
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
	}
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	switch server {
	case "sluice":
		srv := milter.NewServer(milter.Config{Pipeline: filters.NewPipeline(nil, nil), BodyMemoryLimit: 1 << 20}, nil, nil)
		go func() { served <- srv.Serve(ln) }()
		b.Cleanup(func() {
			// Let the last sessions read their QUIT: Shutdown cuts idle
			// sessions off, and go-milter logs each cut as a read error.
			for deadline := time.Now().Add(5 * time.Second); srv.Sessions() > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				b.Errorf("shutdown: %v", err)
			}
			if err := <-served; !errors.Is(err, milter.ErrServerClosed) {
				b.Errorf("serve: %v", err)
			}
		})
	case "bare", "bare-sameproto":
		srv := &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}
		if server == "bare-sameproto" {
			srv.Actions = benchActions
			srv.Protocol = sluiceEmptyProtocol
		}
		go func() { served <- srv.Serve(ln) }()
		b.Cleanup(func() {
			srv.Close()
			<-served
		})
	default:
		b.Fatalf("unknown server %q", server)
	}

	// The comparison with bare-sameproto is only fair while sluice really
	// negotiates what it assumes.
	s, err := benchClient(network, ln.Addr().String()).Session()
	if err != nil {
		b.Fatal(err)
	}
	got := s.ProtocolOpts
	s.Close()
	if server != "bare" && got != sluiceEmptyProtocol {
		b.Fatalf("%s negotiated protocol %#x, the benchmark assumes %#x", server, got, sluiceEmptyProtocol)
	}
	return network, ln.Addr().String()
}

func benchClient(network, addr string) *gomilter.Client {
	return gomilter.NewClientWithOptions(network, addr, gomilter.ClientOptions{
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		ActionMask:   benchActions,
	})
}

// benchClients sends b.N messages from conc concurrent clients.
func benchClients(b *testing.B, network, addr string, conc int) {
	c := benchClient(network, addr)
	body := benchBody()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := benchMessage(c, body); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

var benchHeaders = [][2]string{
	{"Received", "from client.example (client.example [192.0.2.7])\n\tby mx.example (Postfix) with ESMTPS id 4XyZ1234\n\tfor <user@example.com>; Mon, 2 Jun 2025 10:00:00 +0000 (UTC)"},
	{"DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel; h=from:to:subject:date; bh=abc=; b=def="},
	{"From", "Sender Name <sender@example.org>"},
	{"To", "Recipient <user@example.com>"},
	{"Subject", "Quarterly report"},
	{"Date", "Mon, 2 Jun 2025 10:00:00 +0000"},
	{"Message-ID", "<20250602100000.1234@example.org>"},
	{"MIME-Version", "1.0"},
	{"Content-Type", "text/plain; charset=utf-8"},
	{"Content-Transfer-Encoding", "8bit"},
}

// benchBody returns a body of about 5 kB, in lines as an MTA sends it.
func benchBody() string {
	line := "The quick brown fox jumps over the lazy dog, again and again.\r\n"
	return strings.Repeat(line, 5000/len(line))
}

// benchMessage runs one milter session with one message, as an MTA does.
func benchMessage(c *gomilter.Client, body string) error {
	s, err := c.Session()
	if err != nil {
		return err
	}
	if err := benchTransaction(s, body); err != nil {
		s.Close()
		return err
	}
	return s.Close()
}

func benchTransaction(s *gomilter.ClientSession, body string) error {
	step := func(what string) func(*gomilter.Action, error) error {
		return func(act *gomilter.Action, err error) error {
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if act.Code != gomilter.ActContinue {
				return fmt.Errorf("%s: action %q, want continue", what, act.Code)
			}
			return nil
		}
	}
	if err := s.Macros(gomilter.CodeConn, "j", "mx.example", "{daemon_name}", "smtpd", "_", "client.example [192.0.2.7]"); err != nil {
		return err
	}
	if err := step("connect")(s.Conn("client.example", gomilter.FamilyInet, 41234, "192.0.2.7")); err != nil {
		return err
	}
	if err := s.Macros(gomilter.CodeHelo); err != nil {
		return err
	}
	if err := step("helo")(s.Helo("client.example")); err != nil {
		return err
	}
	if err := s.Macros(gomilter.CodeMail, "{mail_addr}", "sender@example.org"); err != nil {
		return err
	}
	if err := step("mail")(s.Mail("sender@example.org", []string{"SIZE=5400", "BODY=8BITMIME"})); err != nil {
		return err
	}
	if err := s.Macros(gomilter.CodeRcpt, "i", "4XyZ1234", "{rcpt_addr}", "user@example.com"); err != nil {
		return err
	}
	if err := step("rcpt")(s.Rcpt("user@example.com", nil)); err != nil {
		return err
	}
	for _, h := range benchHeaders {
		if err := step("header")(s.HeaderField(h[0], h[1])); err != nil {
			return err
		}
	}
	if err := step("end of headers")(s.HeaderEnd()); err != nil {
		return err
	}
	_, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("body: %w", err)
	}
	if act.Code != gomilter.ActAccept {
		return fmt.Errorf("end of message: action %q, want accept", act.Code)
	}
	return nil
}
