package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// dryRunCase is one message sent through Postfix and given to sluice
// test.
type dryRunCase struct {
	name   string
	file   string // the message, a fixture under testdata/
	source string // the client's loopback address
	from   string
	rcpts  []string
	want   string // the verdict both must agree on
	edit   string // a field sluice test must edit
}

// Acceptance test of sluice test: the fixtures go through the daemon via
// real Postfix and through sluice test with the same configuration (every
// shipped filter: dnsbl, senders, headerfix, bayes, archive) and the same
// envelope. Both must agree on the verdict, the reply, which filters ran
// at which stage with which answer, and the header block delivered: the
// one Postfix wrote into the mailbox, minus the fields Postfix adds
// itself, equals the message file with sluice test's edits made.
func TestDryRunMatchesDaemonPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	trainFixtures(t, filepath.Join(state, "bayes.db"))
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	dnsSrv.AddA("2.0.0.127.tag.test", 300, "127.0.0.2")
	dnsSrv.AddA("4.0.0.127.tag.test", 300, "127.0.0.3")
	dnsSrv.AddTXT("4.0.0.127.tag.test", 300, "Tagged for testing")
	rules := filepath.Join(t.TempDir(), "access")
	os.WriteFile(rules, []byte(`slow.example	ERROR:"451 4.7.1 Greylisted, try again later"
garden-club.example	DISCARD
banned.example	REJECT
hold.example	QUARANTINE:"needs a look"
watched.*	WATCH
`), 0o644)

	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: 2s
      skip_private: false
      zones:
        - zone: bl.test
          reply: "554 5.7.1 Client {listed} rejected: listed on {zone}"
        - zone: tag.test
          action: tag
          txt: true
  - type: senders
    options:
      files: [%s]
  - type: headerfix
  - type: bayes
    options:
      # The fixture store (14 short messages a class) scores its clear
      # ham about 0.1, above the default ham cutoff chosen for stores
      # trained on real mail.
      ham_cutoff: 0.2
      spam:
        action: reject
        reply: "554 5.7.1 Spam rejected (spamicity {spamicity}, queue id {queue_id})"
      unsure:
        action: quarantine
  - type: archive
    options:
      targets:
        default: archive/all.mbox
`, sock, state, dnsSrv.Addr, rules))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	// A header line ending in a bare CR, which Postfix turns into a
	// space: headerfix splits the merged field again.
	merged := filepath.Join(t.TempDir(), "merged-date.eml")
	os.WriteFile(merged, []byte("From: erin@lab.example\r\nTo: bob@lab.example\r\nDate: Fri, 8 Sep 2017 13:44:33 -0400\rSubject: meeting notes\r\n"+
		"Message-ID: <merged@lab.example>\r\n\r\nThe notes from today's meeting are attached to the wiki page.\r\n"+
		// Words of the ham the store learned, so that the message is
		// ham and delivered (with only the sentence above, both the
		// token counts and the n-gram model have too little to go on:
		// unsure).
		"Test disk thursday agenda call notes alert results hotel proposal.\r\n"+
		"Commit tests agenda tracker answer proposal notes hotel build project thursday.\r\n"), 0o644)

	// Spaces and a tab after a colon, and CRs in body lines: both MTAs
	// take off only the one space after a colon, and Postfix makes a CR
	// inside a body line a space and drops those at the end of a line.
	// The Bayes filter's byte n-grams see every byte of them, so sluice
	// test must hand the filters the same bytes for the same spamicity.
	spaced := filepath.Join(t.TempDir(), "spaced.eml")
	os.WriteFile(spaced, []byte("From: erin@lab.example\r\nTo:   bob@lab.example\r\nSubject:\tmeeting notes\r\n"+
		"Date: Fri, 8 Sep 2017 13:44:33 -0400\r\nMessage-ID: <spaced@lab.example>\r\n\r\n"+
		"The notes from\rtoday's meeting are attached\rto the wiki page.\r\r\n"+
		"Test disk thursday agenda call notes alert results hotel proposal.\r\n"+
		"Commit tests agenda tracker answer proposal notes hotel build project thursday.\r\n"), 0o644)

	cases := []dryRunCase{
		{"ham", fixture("check", "ham.eml"), "127.0.0.1", "erin@lab.example", []string{"bob@lab.example"}, "accept", "X-Sluice-Bayes"},
		{"spam", fixture("check", "spam.eml"), "127.0.0.1", "promo@casino-royal.example", []string{"bob@lab.example"}, "reject", ""},
		// One token that counts, on the ham side, and an n-gram model
		// of 28 messages near 0.5: unsure.
		{"short message", fixture("check", "unsure.eml"), "127.0.0.1", "someone@elsewhere.example", []string{"bob@lab.example"}, "quarantine", ""},
		{"unsure", filepath.Join(repoRoot, "testdata", "classifier", "koi8r.eml"), "127.0.0.1", "alice@sender.example", []string{"bob@lab.example"}, "quarantine", ""},
		{"discarded sender", filepath.Join(repoRoot, "testdata", "archive", "newsletter.eml"), "127.0.0.1", "offers@garden-club.example", []string{"bob@lab.example"}, "discard", ""},
		{"greylisted sender", filepath.Join(repoRoot, "testdata", "classifier", "html.eml"), "127.0.0.1", "alice@slow.example", []string{"bob@lab.example"}, "tempfail", ""},
		{"banned sender", filepath.Join(repoRoot, "testdata", "classifier", "qp.eml"), "127.0.0.1", "alice@banned.example", []string{"bob@lab.example"}, "reject", ""},
		{"held sender, two recipients", fixture("check", "ham.eml"), "127.0.0.1", "alice@hold.example", []string{"bob@lab.example", "carol@lab.example"}, "quarantine", ""},
		{"spam from a held sender", fixture("check", "spam.eml"), "127.0.0.1", "alice@hold.example", []string{"bob@lab.example"}, "reject", ""},
		{"tagged client", fixture("check", "ham.eml"), "127.0.0.4", "erin@lab.example", []string{"bob@lab.example"}, "accept", "X-Sluice-DNSBL"},
		{"listed client", filepath.Join(repoRoot, "testdata", "classifier", "base64.eml"), "127.0.0.2", "alice@sender.example", []string{"bob@lab.example"}, "reject", ""},
		{"watched sender, two recipients", fixture("check", "ham.eml"), "127.0.0.1", "news@watched.example", []string{"bob@lab.example", "dave@lab.example"}, "accept", "X-Sluice-Bayes"},
		{"merged header field", merged, "127.0.0.1", "erin@lab.example", []string{"bob@lab.example"}, "accept", "Date"},
		{"spaces after colons, CRs in the body", spaced, "127.0.0.1", "erin@lab.example", []string{"bob@lab.example"}, "accept", "X-Sluice-Bayes"},
	}
	delivered := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			logStart := len(td.log.String())
			c := mtatest.DialSMTPFrom(t, mta.Addr(), tc.source)
			var reply mtatest.Reply
			if r := c.Cmd("EHLO client.example"); r.Code != 250 {
				reply = r
			} else {
				reply = c.Send(tc.from, tc.rcpts, toCRLF(raw))
			}
			c.Quit()
			daemon := dryRunDaemonLine(t, td, logStart)

			args := []string{"test", "--config", td.config, "--format", "json", "--client-ip", tc.source,
				"--client-name", daemon.clientName, "--helo", "client.example", "--from", tc.from}
			for _, r := range tc.rcpts {
				args = append(args, "--rcpt", r)
			}
			if daemon.fields["queue_id"] != "" {
				args = append(args, "--queue-id", daemon.fields["queue_id"])
			}
			cr := runCLI(t, "", append(args, tc.file)...)
			var rep testReport
			if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
				t.Fatalf("sluice test: exit %d, %v\n%s%s", cr.code, err, cr.stdout, cr.stderr)
			}
			if want := testExitCode(mustAction(t, rep.Verdict)); cr.code != want {
				t.Errorf("sluice test exit %d, want %d for %s", cr.code, want, rep.Verdict)
			}

			// The verdict, the reply and each filter's answer.
			if tc.want != "" && rep.Verdict != tc.want {
				t.Errorf("sluice test: verdict %s, want %s", rep.Verdict, tc.want)
			}
			if rep.Verdict != daemon.fields["verdict"] {
				t.Errorf("verdict: sluice test %s, daemon %s", rep.Verdict, daemon.fields["verdict"])
			}
			if rep.Reply != daemon.fields["reply"] {
				t.Errorf("reply: sluice test %q, daemon %q", rep.Reply, daemon.fields["reply"])
			}
			if got, want := dryRunDecisions(rep), daemon.decisions(); got != want {
				t.Errorf("filters:\n sluice test %s\n daemon      %s", got, want)
			}
			if rep.Verdict == "reject" || rep.Verdict == "tempfail" {
				if got := fmt.Sprintf("%d %s", reply.Code, reply.Text); got != rep.Reply {
					t.Errorf("the client got %q, sluice test says %q", got, rep.Reply)
				}
				return
			}
			if reply.Code != 250 {
				t.Fatalf("the client got %v for a message sluice test says is %s", reply, rep.Verdict)
			}
			switch rep.Verdict {
			case "discard":
				return
			case "quarantine":
				if qid := reply.QueueID(); !slices.Contains(mta.Held(t), qid) {
					t.Errorf("Postfix did not hold %s (held: %v)", qid, mta.Held(t))
				}
				return
			}

			// The header block Postfix delivered to each recipient is the
			// file's with sluice test's edits made.
			delivered += len(tc.rcpts)
			ds := mta.WaitDelivered(t, delivered, 20*time.Second)
			hdrs, _ := milter.ParseMessage(raw, milter.Postfix)
			want := filters.ApplyEdits(hdrs, dryRunEditsBack(t, rep.Edits))
			if !slices.ContainsFunc(rep.Edits, func(e testEdit) bool { return e.Name == tc.edit }) {
				t.Errorf("sluice test reports no edit of %s: %+v", tc.edit, rep.Edits)
			}
			for _, d := range ds[delivered-len(tc.rcpts):] {
				got := withoutPostfixFields(d.Header, daemon.fields["queue_id"])
				if !reflect.DeepEqual(got, want) {
					t.Errorf("delivered to %s:\n%s\nsluice test:\n%s", d.Recipient(), fieldList(got), fieldList(want))
				}
			}
		})
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", td.log)
	}
}

// dryRunDaemon is the daemon's log line about one message or refused
// connection.
type dryRunDaemon struct {
	fields     map[string]string
	clientName string
}

// decisions is the daemon's list of filter answers without the times.
func (d dryRunDaemon) decisions() string {
	return regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(d.fields["filters"], "")
}

// dryRunDaemonLine waits for the log line that ends the message or the
// connection, logged after offset.
func dryRunDaemonLine(t *testing.T, td *testDaemon, offset int) dryRunDaemon {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(td.log.String()[offset:], "\n") {
			f := slogFields(line)
			if f["msg"] != "message" && f["msg"] != "connection refused" {
				continue
			}
			// The session logs "name[address]"; Postfix names a client
			// it has no name for "[address]".
			name := f["client"][:max(0, strings.LastIndex(f["client"], "["))]
			if strings.HasPrefix(name, "[") {
				name = "unknown"
			}
			return dryRunDaemon{fields: f, clientName: name}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for the message:\n%s", td.log.String()[offset:])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slogFields parses a line of slog's text format: key=value pairs, the
// value bare or a quoted Go string.
func slogFields(line string) map[string]string {
	f := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		key, rest, ok := strings.Cut(line, "=")
		if !ok {
			break
		}
		var value string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			value, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			value, rest, _ = strings.Cut(rest, " ")
		}
		f[key] = value
		line = rest
	}
	return f
}

// dryRunDecisions writes sluice test's filter answers as the daemon logs
// them (without the times).
func dryRunDecisions(r testReport) string {
	var parts []string
	for _, d := range r.Decisions {
		s := fmt.Sprintf("%s@%s=%s", d.Filter, d.Stage, d.Action)
		if d.Failure != "" {
			s += "!" + d.Failure
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func mustAction(t *testing.T, s string) filters.Action {
	a, err := filters.ParseAction(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// dryRunEditsBack turns the edits of a JSON report back into HeaderEdits.
func dryRunEditsBack(t *testing.T, es []testEdit) []filters.HeaderEdit {
	kinds := map[string]filters.EditKind{"add": filters.AddHeader, "insert": filters.InsertHeader, "change": filters.ChangeHeader, "delete": filters.DeleteHeader}
	var out []filters.HeaderEdit
	for _, e := range es {
		k, ok := kinds[e.Kind]
		if !ok {
			t.Fatalf("edit kind %q", e.Kind)
		}
		out = append(out, filters.HeaderEdit{Kind: k, Name: e.Name, Value: e.Value, Index: e.Index})
	}
	return out
}

// withoutPostfixFields drops the fields a milter never sees: those the
// local delivery agent puts on top and Postfix's own Received field.
func withoutPostfixFields(fs []mtatest.Field, queueID string) []filters.Header {
	var out []filters.Header
	for i, f := range fs {
		if i < 3 && (f.Name == "Return-Path" || f.Name == "X-Original-To" || f.Name == "Delivered-To") {
			continue
		}
		if f.Name == "Received" && strings.Contains(f.Value, "(Postfix) with ESMTP id "+queueID) {
			continue
		}
		// The value as written, less only the one space after the colon
		// that the MTAs take off before a milter sees a field (and tell
		// when there was none): spaces and tabs the sender put there
		// count.
		_, value, _ := strings.Cut(f.Raw, ":")
		v, spaced := strings.CutPrefix(value, " ")
		out = append(out, filters.Header{Name: f.Name, Value: v, NoSpace: !spaced})
	}
	return out
}

func fieldList(hs []filters.Header) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "  %q\n", h.String())
	}
	return b.String()
}

// toCRLF gives every line of a fixture the CRLF end SMTP needs; a bare CR
// stays as it is.
func toCRLF(b []byte) []byte {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}
