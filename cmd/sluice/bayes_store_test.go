package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
)

// bayesVerdict sends raw (header and body, CRLF) through the daemon's
// listener at a and returns the final action and the X-Sluice-Bayes value
// the daemon added, "" for none.
func bayesVerdict(t *testing.T, a net.Addr, queueID string, raw []byte) (gomilter.ActionCode, string) {
	t.Helper()
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ActionMask: gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if _, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mail("erin@lab.example", nil); err != nil {
		t.Fatal(err)
	}
	s.Macros(gomilter.CodeRcpt, "i", queueID)
	if _, err := s.Rcpt("bob@lab.example", nil); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.ReplaceAll(string(head), "\r\n\t", " "), "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		if _, err := s.HeaderField(name, strings.TrimPrefix(value, " ")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.BodyReadFrom(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if m.Code == gomilter.ActAddHeader && m.HeaderName == "X-Sluice-Bayes" {
			return act.Code, m.HeaderValue
		}
	}
	return act.Code, ""
}

// The store file removed while the daemon runs (rm to start over) is
// made again, empty, by the daemon's next read, as at start: mail is then
// tagged as not trained enough, as by a daemon started without a store.
// Every read failed until someone wrote a new store otherwise (the
// daemon learns only what it could read), and with on_failure: tempfail
// every message was refused with 451.
func TestBayesStoreRemovedWhileServing(t *testing.T) {
	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    on_failure: tempfail
    options:
      autolearn:
        ham: 0.05
`, state))
	raw, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	raw = []byte(strings.ReplaceAll(string(raw), "\n", "\r\n"))
	a := td.info.Milter[0]
	// Auto-learned: the daemon let go of its read handle to write.
	if act, v := bayesVerdict(t, a, "Q1", raw); act != gomilter.ActAccept || !strings.HasPrefix(v, "Ham,") || !strings.Contains(v, "autolearn=ham") {
		t.Fatalf("before the store was removed: action %c, header %q; want ham, auto-learned", act, v)
	}
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{"Q2", "Q3"} {
		msg := bytes.Replace(raw, []byte("Subject: "), []byte(fmt.Sprintf("Subject: Fwd%d: ", i)), 1)
		if act, v := bayesVerdict(t, a, q, msg); act != gomilter.ActAccept || !strings.HasPrefix(v, "Unsure,") {
			t.Errorf("message %s after the store was removed: action %c, header %q; want accepted, tagged unsure", q, act, v)
		}
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("the store was not made again: %v", err)
	}
}
