package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// TestCorpusThroughPostfix sends every message of the SpamAssassin public
// corpus (about 6,000 real messages from 2002-2003: mailing lists,
// newsletters, spam with broken MIME, 8-bit headers, long lines) through
// a real Postfix and a daemon that runs every shipped filter, and checks
// that each arrives exactly as sent but for the header fields Postfix and
// sluice add, and that each is archived once, as delivered.
//
// The corpus is a 20 MB download that the unit tests must not depend on,
// so this runs only when asked, from "make bench":
//
//	SLUICE_CORPUS=1 go test -run '^TestCorpusThroughPostfix$' -timeout 20m ./cmd/sluice
func TestCorpusThroughPostfix(t *testing.T) {
	if os.Getenv("SLUICE_CORPUS") == "" {
		t.Skip("corpus test: set SLUICE_CORPUS=1 to run it")
	}
	mtatest.Require(t)
	out, err := exec.Command("../../testdata/corpus/fetch-spamassassin.sh").Output()
	if err != nil {
		t.Fatalf("fetch corpus: %v", err)
	}
	data := strings.TrimSpace(string(out))
	var paths []string
	for _, g := range []string{"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"} {
		m, err := filepath.Glob(filepath.Join(data, g, "*.txt"))
		if err != nil || len(m) == 0 {
			t.Fatalf("corpus group %s: %d messages, %v", g, len(m), err)
		}
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	msgs := make([][]byte, len(paths))
	for i, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = corpusMessage(raw)
	}

	state := t.TempDir()
	db := filepath.Join(state, "bayes.db")
	trainFixtures(t, db)
	rules := filepath.Join(state, "senders")
	if err := os.WriteFile(rules, []byte("blocked.example REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnsbltest.Start(t)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
body:
  memory_limit: 64KiB
filter_defaults:
  on_failure: tempfail
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      skip_private: false
      zones:
        - zone: bl.test
  - type: senders
    options:
      files: [%s]
  - type: headerfix
  - type: bayes
    options:
      spam:
        action: tag
  - type: archive
    timeout: 60s
    options:
      targets:
        spam: archive/spam.mbox
        ham: archive/ham.mbox
        unsure: archive/unsure.mbox
`, sock, state, dnsSrv.Addr, rules))
	// Postfix itself must not change what it is given, so that every
	// difference is sluice's: no header rewriting for local clients (it
	// would qualify bare addresses and add Date and Message-ID) and no
	// dropped fields (Postfix drops Content-Length by default).
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{
		Milter:        "unix:" + sock,
		DefaultAction: "tempfail",
		ExtraConfig: []string{
			"local_header_rewrite_clients =",
			"message_drop_headers =",
		},
	})

	const clients = 4
	start := time.Now()
	t.Run("send", func(t *testing.T) {
		for w := range clients {
			t.Run(strconv.Itoa(w), func(t *testing.T) {
				t.Parallel()
				c := mtatest.DialSMTP(t, mta.Addr())
				defer c.Quit()
				if r := c.Cmd("EHLO client.example"); r.Code != 250 {
					t.Fatalf("EHLO: %v", r)
				}
				for i := w; i < len(msgs); i += clients {
					if r := c.Send("corpus@example.org", []string{corpusRcpt(i)}, msgs[i]); r.Code != 250 {
						t.Errorf("%s: %v", paths[i], r)
						c.Cmd("RSET")
					}
				}
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	sent := time.Since(start)
	newDir := filepath.Join(mta.Dir(), "mail", "inbox", "new")
	deadline := time.Now().Add(10 * time.Minute)
	for {
		entries, _ := os.ReadDir(newDir)
		if len(entries) >= len(msgs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered after 10 minutes", len(entries), len(msgs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	mta.WaitIdle(t, time.Minute)
	t.Logf("%d messages accepted in %v (%.0f/s), all delivered %v after the start",
		len(msgs), sent.Round(time.Millisecond), float64(len(msgs))/sent.Seconds(), time.Since(start).Round(time.Millisecond))

	byRcpt := map[string]int{}
	for i := range msgs {
		byRcpt[corpusRcpt(i)] = i
	}
	delivered := make([][]byte, len(msgs))
	for _, d := range mta.Delivered(t) {
		i, ok := byRcpt[d.Recipient()]
		if !ok || delivered[i] != nil {
			t.Errorf("delivery to %q: unknown or a second copy", d.Recipient())
			continue
		}
		delivered[i] = d.Raw
		// Every message went through the Bayes filter: one verdict
		// field each, whatever the sender wrote.
		n := 0
		for _, f := range d.Header {
			if strings.EqualFold(f.Name, "X-Sluice-Bayes") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d X-Sluice-Bayes fields, want 1", paths[i], n)
		}
	}
	bad := 0
	for i, raw := range delivered {
		if raw == nil {
			bad++
			t.Errorf("%s was not delivered", paths[i])
			continue
		}
		got := stripAdded(raw, true)
		want := postfixDelivers(msgs[i])
		if !bytes.Equal(got, want) {
			bad++
			if bad <= 20 {
				t.Errorf("%s arrived changed: %s", paths[i], firstDifference(want, got))
			}
		}
	}

	// The archive holds one copy of each message, as delivered.
	archived := 0
	perMbox := map[string]int{}
	for _, name := range []string{"spam", "ham", "unsure"} {
		f, err := os.Open(filepath.Join(state, "archive", name+".mbox"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		err = archive.ReadMbox(f, func(r archive.Record) error {
			archived++
			perMbox[name]++
			rcpts := archive.HeaderValues(r.Message, "X-Sluice-Envelope-To")
			if len(rcpts) != 1 {
				return fmt.Errorf("record %d of %s.mbox: envelope recipients %q", archived, name, rcpts)
			}
			i, ok := byRcpt[rcpts[0]]
			if !ok {
				return fmt.Errorf("record %d of %s.mbox: unknown recipient %q", archived, name, rcpts[0])
			}
			want := archivedForm(stripAdded(delivered[i], true))
			if got := stripAdded(r.Message, false); !bytes.Equal(got, want) {
				bad++
				if bad <= 20 {
					t.Errorf("%s archived other than delivered: %s", paths[i], firstDifference(want, got))
				}
			}
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatalf("read %s.mbox: %v", name, err)
		}
	}
	t.Logf("archived: %v", perMbox)
	if archived != len(msgs) {
		t.Errorf("%d copies archived, want %d", archived, len(msgs))
	}
	if bad > 0 {
		t.Errorf("%d of %d messages changed", bad, len(msgs))
	}
}

func corpusRcpt(i int) string { return fmt.Sprintf("m%05d@lab.example", i) }

// corpusMessage makes a corpus file into what a client sends: without the
// mbox "From " line the corpus keeps in front of each message, which no
// MTA is ever given, and with CRLF line ends (a CR already there stays).
func corpusMessage(raw []byte) []byte {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	var b bytes.Buffer
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// postfixDelivers returns what Postfix writes into a mailbox for a
// message sent as msg, with no milter changing it (docs/headerfix.md):
// LF line ends, the CRs just before a line end dropped, and every other
// bare CR turned into a space; a message that does not end in a line end
// gets one (mtatest.EncodeData adds it before the final dot).
func postfixDelivers(msg []byte) []byte {
	var out []byte
	for line := range bytes.Lines(msg) {
		text := bytes.TrimRight(line, "\r\n")
		out = append(out, bytes.ReplaceAll(text, []byte("\r"), []byte(" "))...)
		out = append(out, '\n')
	}
	return out
}

// stripAdded removes from a message's header the fields sluice adds (any
// named X-Sluice-*) and, with mta, the ones Postfix puts on top when it
// delivers (Return-Path, X-Original-To, Delivered-To and its Received).
func stripAdded(msg []byte, mta bool) []byte {
	var out bytes.Buffer
	lines := bytes.SplitAfter(msg, []byte("\n"))
	inHeader, drop, top, next := true, false, mta, 0
	for i, line := range lines {
		if !inHeader {
			out.Write(bytes.Join(lines[i:], nil))
			break
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			inHeader = false
			out.Write(line)
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !drop {
				out.Write(line)
			}
			continue
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		lower := strings.ToLower(string(name))
		if top {
			// Each of Postfix's fields once, in its order; the message's
			// own Return-Path or Delivered-To, further down, stays.
			k := slices.Index(mtaFields, lower)
			if k >= next {
				next, drop = k+1, true
				continue
			}
			top = false
		}
		drop = strings.HasPrefix(lower, "x-sluice-")
		if !drop {
			out.Write(line)
		}
	}
	return out.Bytes()
}

// archivedForm is how the archive writes a message's header: a field the
// sender wrote with nothing after the colon ("X-MS-Has-Attach:") gets a
// space after it, since the MTA hands a milter each value with the
// space after the colon taken off and so "X:" and "X: " look the same
// (docs/archive.md, Format). Nothing else changes.
func archivedForm(msg []byte) []byte {
	var out []byte
	read := 0
	for line := range bytes.Lines(msg) {
		if len(bytes.TrimRight(line, "\n")) == 0 {
			break
		}
		read += len(line)
		if name, rest, ok := bytes.Cut(line, []byte(":")); ok && string(rest) == "\n" && !bytes.ContainsAny(name, " \t") {
			out = append(out, name...)
			out = append(out, ": \n"...)
			continue
		}
		out = append(out, line...)
	}
	return append(out, msg[read:]...)
}

// mtaFields are the fields Postfix's virtual(8) puts on top of a copy
// it delivers, in order.
var mtaFields = []string{"return-path", "x-original-to", "delivered-to", "received"}

// firstDifference describes where two messages first differ.
func firstDifference(want, got []byte) string {
	wl, gl := bytes.SplitAfter(want, []byte("\n")), bytes.SplitAfter(got, []byte("\n"))
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return fmt.Sprintf("line %d: want %.200q, got %.200q (%d and %d lines)", i+1, w, g, len(wl), len(gl))
		}
	}
	return "same lines"
}
