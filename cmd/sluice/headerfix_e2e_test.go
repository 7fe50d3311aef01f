package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Tests of the headerfix filter through real MTAs, and of the MTA
// behaviour it is built on (docs/headerfix.md records the same facts).

const (
	headerfixDate = "Fri, 8 Sep 2017 13:44:33 -0400 (EDT)"
	headerfixFrom = `"Example Name" <example@example.com>`
	// headerfixSender is the envelope sender of every test message: the
	// value an MTA gives a From: field it makes up.
	headerfixSender = "alice@example.org"
)

// headerfixVariants are the three ways the Date: line of the same message
// can end, as raw SMTP data.
var headerfixVariants = map[string]string{
	"cr":   "Date: " + headerfixDate + "\rFrom: " + headerfixFrom + "\r\nSubject: line ends\r\n\r\nBody.\r\n",
	"lf":   "Date: " + headerfixDate + "\nFrom: " + headerfixFrom + "\r\nSubject: line ends\r\n\r\nBody.\r\n",
	"crlf": "Date: " + headerfixDate + "\r\nFrom: " + headerfixFrom + "\r\nSubject: line ends\r\n\r\nBody.\r\n",
}

// headerfixSendmailRelaxed makes Sendmail accept bare CR ("U") and bare LF
// ("G") in DATA, which Debian's Sendmail refuses by default since the
// SMTP smuggling fixes. The harness has no access map, so the srv_features
// ruleset returns the flags for every client.
var headerfixSendmailRelaxed = []string{"LOCAL_RULESETS\nSsrv_features\nR$*\t$# U G"}

// headerfixRecorder is a filter that keeps the header fields it is shown
// at end of message, per first recipient, and makes the header edits it
// is told to for a recipient.
type headerfixRecorder struct {
	mu    sync.Mutex
	seen  map[string][]filters.Header
	edits map[string][]filters.HeaderEdit
}

func newHeaderfixRecorder() *headerfixRecorder {
	return &headerfixRecorder{seen: map[string][]filters.Header{}, edits: map[string][]filters.HeaderEdit{}}
}

func (r *headerfixRecorder) Name() string { return "recorder" }

func (r *headerfixRecorder) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true}
}

func (r *headerfixRecorder) Check(_ context.Context, _ filters.Stage, m *filters.Message) (filters.Verdict, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.Rcpts) == 0 {
		return filters.Verdict{}, nil
	}
	key := m.Rcpts[0].Addr
	r.seen[key] = append([]filters.Header(nil), m.Headers...)
	return filters.Verdict{Edits: r.edits[key]}, nil
}

func (r *headerfixRecorder) headers(rcpt string) ([]filters.Header, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.seen[rcpt]
	return h, ok
}

// headerfixMTA starts Postfix or Sendmail wired to the milter spec.
func headerfixMTA(t *testing.T, kind, spec string) *mtatest.MTA {
	t.Helper()
	switch kind {
	case "postfix":
		return mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec})
	case "sendmail":
		return mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec})
	case "sendmail-relaxed":
		return mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: spec, ExtraConfig: headerfixSendmailRelaxed})
	}
	t.Fatalf("unknown MTA %q", kind)
	return nil
}

// headerfixSend sends one message to rcpt on a connection of its own
// (Sendmail closes the connection when it refuses a bare CR or LF) and
// returns the reply to the end of data.
func headerfixSend(t *testing.T, mta *mtatest.MTA, rcpt, raw string) mtatest.Reply {
	t.Helper()
	c := mtatest.DialSMTP(t, mta.Addr())
	defer c.Close()
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		t.Fatalf("EHLO: %v", r)
	}
	return c.Send(headerfixSender, []string{rcpt}, []byte(raw))
}

// headerfixDelivered returns the delivered copy for rcpt.
func headerfixDelivered(t *testing.T, ds []mtatest.Delivered, rcpt string) mtatest.Delivered {
	t.Helper()
	for _, d := range ds {
		if d.Recipient() == rcpt {
			return d
		}
	}
	t.Fatalf("nothing delivered to %s", rcpt)
	return mtatest.Delivered{}
}

// headerfixFields lists a delivered header as "Name: value" lines, for
// comparisons and failure messages.
func headerfixFields(fs []mtatest.Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name + ": " + f.Value
	}
	return out
}

// TestHeaderfixMTAObservations re-checks, with a filter that only
// records, what Postfix and Sendmail hand a milter for the three line-end
// variants and where they put edited fields. The headerfix filter is built
// on these facts; if an MTA update changes one, this test says which.
func TestHeaderfixMTAObservations(t *testing.T) {
	mtatest.Require(t)
	for _, kind := range []string{"postfix", "sendmail", "sendmail-relaxed"} {
		t.Run(kind, func(t *testing.T) {
			rec := newHeaderfixRecorder()
			srv := milter.NewServer(milter.Config{Pipeline: filters.NewPipeline([]filters.Step{{Filter: rec}}, nil), BodyMemoryLimit: 1 << 20}, nil, nil)
			ln, spec := mtatest.MilterListener(t, "tcp")
			go srv.Serve(ln)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			mta := headerfixMTA(t, kind, spec)

			// Where an inserted field lands, and which Received: a
			// change of the first one hits.
			// Model index 0 (the top of the fields the milter saw) goes
			// out as wire index 1: the edge skips the MTA's own Received:.
			rec.edits["ins1@lab.example"] = []filters.HeaderEdit{{Kind: filters.InsertHeader, Index: 0, Name: "X-Ins", Value: "1"}}
			rec.edits["chg@lab.example"] = []filters.HeaderEdit{{Kind: filters.ChangeHeader, Index: 1, Name: "Received", Value: "changed"}}
			msgs := map[string]string{
				"cr":   headerfixVariants["cr"],
				"lf":   headerfixVariants["lf"],
				"crlf": headerfixVariants["crlf"],
				"fold": "Subject: a\r\n b\r\n\tc\r\n\r\nBody.\r\n",
				"nul":  "Subject: x\x00y\r\n\r\nBody.\r\n",
				"ins1": "A: 1\r\nB: 2\r\n\r\nBody.\r\n",
				"chg":  "Received: from x by y; " + headerfixDate + "\r\nA: 1\r\n\r\nBody.\r\n",
				// A From: with nothing in it.
				"emptyfrom": "From:\r\nSubject: x\r\n\r\nBody.\r\n",
				// Fields added under the names of Sendmail's made-up ones.
				"addresent": "Subject: s\r\n\r\nBody.\r\n",
				"addrpath":  "Subject: s\r\n\r\nBody.\r\n",
			}
			rec.edits["addresent@lab.example"] = []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "Resent-From", Value: "bob@example.net"}}
			rec.edits["addrpath@lab.example"] = []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "Return-Path", Value: "<bob@example.net>"}}
			if kind == "sendmail-relaxed" {
				// Only CRLF ends a line: not a bare LF before text that is
				// no field, nor two of them.
				msgs["lfnotfield"] = "Subject: a\nb c\r\nX-Z: z\r\n\r\nBody.\r\n"
				msgs["lflf"] = "Subject: x\n\nX-Q: q\r\n\r\nBody.\r\n"
				// A bare CR before a space, a LF right before the CRLF, and
				// a CR right before it.
				msgs["crsp"] = "Subject: x\r y\r\n\r\nBody.\r\n"
				msgs["lfcrlf"] = "Subject: x\n\r\n\r\nBody.\r\n"
				msgs["crcrlf"] = "X-F: end\r\r\n\r\nBody.\r\n"
			}
			if kind == "sendmail" {
				// Refused anywhere in the data, the body too.
				msgs["bodycr"] = "Subject: s\r\n\r\nBo\rdy.\r\n"
				msgs["bodylf"] = "Subject: s\r\n\r\nBo\ndy.\r\n"
			}
			refused := map[string]string{}
			if kind == "sendmail" {
				refused["cr"] = "421 4.5.0 Bare carriage return (CR) not allowed"
				refused["lf"] = "421 4.5.0 Bare linefeed (LF) not allowed"
				refused["bodycr"] = refused["cr"]
				refused["bodylf"] = refused["lf"]
			}
			names := slices.Sorted(func(yield func(string) bool) {
				for k := range msgs {
					if !yield(k) {
						return
					}
				}
			})
			delivered := 0
			for _, k := range names {
				r := headerfixSend(t, mta, k+"@lab.example", msgs[k])
				if want, ok := refused[k]; ok {
					if r.String() != want {
						t.Errorf("%s: reply %q, want %q", k, r.String(), want)
					}
					continue
				}
				if r.Code != 250 {
					t.Fatalf("%s: reply %v", k, r)
				}
				delivered++
			}
			mta.WaitDelivered(t, delivered, 30*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			ds := mta.Delivered(t)
			seen := func(k string) []filters.Header {
				h, ok := rec.headers(k + "@lab.example")
				if !ok {
					t.Fatalf("%s: the milter saw no header", k)
				}
				return h
			}
			value := func(hs []filters.Header, name string) []string {
				var vs []string
				for _, h := range hs {
					if strings.EqualFold(h.Name, name) {
						vs = append(vs, h.Value)
					}
				}
				return vs
			}
			expect := func(k, what string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s: got %q, want %q", k, what, got, want)
				}
			}

			// Every MTA: CRLF is two fields, folding reaches the milter as
			// LF plus the continuation's whitespace.
			expect("crlf", "milter Date", value(seen("crlf"), "Date"), []string{headerfixDate})
			expect("crlf", "milter From", value(seen("crlf"), "From"), []string{headerfixFrom})
			expect("fold", "milter Subject", value(seen("fold"), "Subject"), []string{"a\n b\n\tc"})
			expect("fold", "delivered Subject", headerfixDelivered(t, ds, "fold@lab.example").Values("Subject"), []string{"a\n b\n\tc"})

			// Both MTAs count their own Received: in an insert index but
			// hide it from the milter and from change indexes.
			ins := headerfixFields(headerfixDelivered(t, ds, "ins1@lab.example").Header)
			i := slices.IndexFunc(ins, func(s string) bool { return strings.HasPrefix(s, "X-Ins: ") })
			if i < 1 || !strings.Contains(ins[i-1], "by "+mta.Hostname()) {
				t.Errorf("ins1: X-Ins not right below the MTA's Received:\n%s", strings.Join(ins, "\n"))
			}
			chg := headerfixDelivered(t, ds, "chg@lab.example")
			rcv := chg.Values("Received")
			if len(rcv) != 2 || !strings.Contains(rcv[0], "by "+mta.Hostname()) || rcv[1] != "changed" {
				t.Errorf("chg: Received fields %q, want the MTA's own and \"changed\"", rcv)
			}
			if got := value(seen("chg"), "Received"); len(got) != 1 {
				t.Errorf("chg: the milter saw Received fields %q, want only the client's", got)
			}

			// An empty From: counts as missing for Sendmail, which drops
			// it and makes up its own; Postfix keeps it and adds none.
			// An added Resent-From: goes into Sendmail's slot for one,
			// which it does not write, and an added Return-Path: takes
			// the place of Sendmail's own.
			empty := headerfixDelivered(t, ds, "emptyfrom@lab.example")
			resent := headerfixDelivered(t, ds, "addresent@lab.example")
			rpath := headerfixDelivered(t, ds, "addrpath@lab.example")
			if kind == "postfix" {
				expect("emptyfrom", "milter From", value(seen("emptyfrom"), "From"), []string{""})
				expect("emptyfrom", "delivered From", empty.Values("From"), []string{""})
				expect("addresent", "delivered Resent-From", resent.Values("Resent-From"), []string{"bob@example.net"})
			} else {
				expect("emptyfrom", "milter From", value(seen("emptyfrom"), "From"), []string(nil))
				expect("emptyfrom", "delivered From", empty.Values("From"), []string{headerfixSender})
				expect("addresent", "delivered Resent-From", resent.Values("Resent-From"), []string(nil))
				expect("addrpath", "delivered Return-Path", rpath.Values("Return-Path"), []string{"<bob@example.net>"})
			}

			switch kind {
			case "postfix":
				// A bare CR becomes a space, in the milter's view and in the
				// mailbox; Postfix adds the From it did not see, at the end,
				// where the milter sees it.
				merged := headerfixDate + " From: " + headerfixFrom
				expect("cr", "milter Date", value(seen("cr"), "Date"), []string{merged})
				expect("cr", "milter From", value(seen("cr"), "From"), []string{headerfixSender})
				d := headerfixDelivered(t, ds, "cr@lab.example")
				expect("cr", "delivered Date", d.Values("Date"), []string{merged})
				expect("cr", "delivered From", d.Values("From"), []string{headerfixSender})
				// A bare LF ends the line.
				expect("lf", "milter Date", value(seen("lf"), "Date"), []string{headerfixDate})
				expect("lf", "milter From", value(seen("lf"), "From"), []string{headerfixFrom})
				expect("lf", "delivered From", headerfixDelivered(t, ds, "lf@lab.example").Values("From"), []string{headerfixFrom})
				// A NUL cuts the value off.
				expect("nul", "milter Subject", value(seen("nul"), "Subject"), []string{"x"})
				expect("nul", "delivered Subject", headerfixDelivered(t, ds, "nul@lab.example").Values("Subject"), []string{"x"})
				// Wire index 1 goes above the first field the milter saw.
				if i+1 >= len(ins) || ins[i+1] != "A: 1" {
					t.Errorf("ins1: X-Ins not right above A:\n%s", strings.Join(ins, "\n"))
				}
			case "sendmail":
				expect("nul", "milter Subject", value(seen("nul"), "Subject"), []string{"xy"})
				expect("nul", "delivered Subject", headerfixDelivered(t, ds, "nul@lab.example").Values("Subject"), []string{"xy"})
				// Wire index 1 goes above the Date: Sendmail added and the
				// milter never saw: hidden fields count.
				if i+1 >= len(ins) || !strings.HasPrefix(ins[i+1], "Date: ") || slices.Index(ins, "A: 1") < i+2 {
					t.Errorf("ins1: X-Ins not above Sendmail's own Date:\n%s", strings.Join(ins, "\n"))
				}
			case "sendmail-relaxed":
				// The bare CR and LF stay in the value; the From Sendmail
				// adds because it saw none is not shown to the milter.
				expect("cr", "milter Date", value(seen("cr"), "Date"), []string{headerfixDate + "\rFrom: " + headerfixFrom})
				expect("cr", "milter From", value(seen("cr"), "From"), []string(nil))
				d := headerfixDelivered(t, ds, "cr@lab.example")
				expect("cr", "delivered Date", d.Values("Date"), []string{headerfixDate + "\rFrom: " + headerfixFrom})
				expect("cr", "delivered From", d.Values("From"), []string{headerfixSender})
				expect("lf", "milter Date", value(seen("lf"), "Date"), []string{headerfixDate + "\nFrom: " + headerfixFrom})
				expect("lf", "milter From", value(seen("lf"), "From"), []string(nil))
				// Sendmail indents the line after the LF: the From: line
				// becomes part of the Date field.
				d = headerfixDelivered(t, ds, "lf@lab.example")
				expect("lf", "delivered Date", d.Values("Date"), []string{headerfixDate + "\n From: " + headerfixFrom})
				expect("lf", "delivered From", d.Values("From"), []string{headerfixSender})
				expect("lfnotfield", "milter Subject", value(seen("lfnotfield"), "Subject"), []string{"a\nb c"})
				expect("lfnotfield", "delivered Subject", headerfixDelivered(t, ds, "lfnotfield@lab.example").Values("Subject"), []string{"a\n b c"})
				expect("lflf", "milter Subject", value(seen("lflf"), "Subject"), []string{"x\n\nX-Q: q"})
				expect("lflf", "delivered Subject", headerfixDelivered(t, ds, "lflf@lab.example").Values("Subject"), []string{"x\n \n X-Q: q"})
				expect("crsp", "milter Subject", value(seen("crsp"), "Subject"), []string{"x\r y"})
				expect("crsp", "delivered Subject", headerfixDelivered(t, ds, "crsp@lab.example").Values("Subject"), []string{"x\r y"})
				expect("lfcrlf", "milter Subject", value(seen("lfcrlf"), "Subject"), []string{"x\n"})
				// A blank continuation line: "Subject: x<LF> <LF>".
				expect("lfcrlf", "delivered Subject", headerfixDelivered(t, ds, "lfcrlf@lab.example").Values("Subject"), []string{"x\n "})
				expect("crcrlf", "milter X-F", value(seen("crcrlf"), "X-F"), []string{"end"})
				expect("crcrlf", "delivered X-F", headerfixDelivered(t, ds, "crcrlf@lab.example").Values("X-F"), []string{"end"})
			}
		})
	}
}

// headerfixDaemon runs the daemon in-process on the config text with the
// shipped filters, the archive and a recorder type "hfrecorder" (a filter
// placed after headerfix that records what it is shown).
func headerfixDaemon(t *testing.T, configText string, rec *headerfixRecorder) *testDaemon {
	t.Helper()
	reg := registry()
	reg["hfrecorder"] = func(filters.Env, func(any) error) (filters.Filter, error) { return rec, nil }
	return startDaemonReg(t, configText, reg)
}

// headerfixArchived reads the archive's maildir copy for rcpt and returns
// its header without the fields the archive itself puts on top.
func headerfixArchived(t *testing.T, dir, rcpt string) []mtatest.Field {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "new", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := mtatest.ParseDelivered([]byte(strings.ReplaceAll(string(raw), "\r\n", "\n")))
		if !slices.Contains(d.Values(archive.FieldEnvelopeTo), rcpt) {
			continue
		}
		var out []mtatest.Field
		for _, fd := range d.Header {
			if strings.HasPrefix(fd.Name, "X-Sluice-") && fd.Name != "X-Sluice-Repaired" || fd.Name == "Return-Path" {
				continue
			}
			out = append(out, fd)
		}
		return out
	}
	t.Fatalf("no archived copy for %s in %s", rcpt, dir)
	return nil
}

// headerfixOwnFields drops the fields the MTA adds at delivery and its own
// Received: (the first one), leaving what the message brought and the
// milter edited.
func headerfixOwnFields(d mtatest.Delivered) []mtatest.Field {
	var out []mtatest.Field
	ownReceived := false
	for _, f := range d.Header {
		switch strings.ToLower(f.Name) {
		case "return-path", "x-original-to", "delivered-to":
			continue
		case "received":
			if !ownReceived {
				ownReceived = true
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// End to end: the daemon with headerfix, a recording filter after it and
// the archive, through real Postfix and through Sendmail told to accept
// bare CR and LF. A Date: line ending in a bare CR arrives as separate,
// correct Date: and From: fields with no made-up From:, and so do the LF
// and CRLF variants; the later filter and the archive see the same
// header the mailbox gets.
func TestHeaderfixEndToEnd(t *testing.T) {
	mtatest.Require(t)
	for _, kind := range []string{"postfix", "sendmail-relaxed"} {
		t.Run(kind, func(t *testing.T) {
			state := t.TempDir()
			archiveDir := filepath.Join(state, "archive")
			var listen, spec string
			if kind == "postfix" {
				sock := filepath.Join(socketDir(t), "sluice.sock")
				listen = fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock)
				spec = "unix:" + sock
			} else {
				listen = "address: inet:127.0.0.1:0"
			}
			rec := newHeaderfixRecorder()
			td := headerfixDaemon(t, fmt.Sprintf(`listen:
  - %s
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: headerfix
  - type: hfrecorder
  - type: archive
    options:
      format: maildir
      targets:
        default: %s
`, listen, state, archiveDir), rec)
			if spec == "" {
				spec = "inet:" + td.info.Milter[0].String()
			}
			mta := headerfixMTA(t, kind, spec)

			msgs := map[string]string{
				"cr":   headerfixVariants["cr"],
				"lf":   headerfixVariants["lf"],
				"crlf": headerfixVariants["crlf"],
				// Several broken lines, and a Received: chain broken in the
				// middle, in one header block.
				"many": "Received: from b.example by a.example; " + headerfixDate + "\rReceived: from c.example by b.example; " + headerfixDate +
					"\r\nReceived: from d.example by c.example; " + headerfixDate +
					"\r\nMessage-ID: <many@example.com>\rDate: " + headerfixDate + "\nFrom: " + headerfixFrom +
					"\r\nSubject: =?UTF-8?Q?caf=C3=A9?=\r\n folded\r\nX-Note: half\rway\r\n\r\nBody.\r\n",
			}
			for _, k := range []string{"cr", "lf", "crlf", "many"} {
				if r := headerfixSend(t, mta, k+"@lab.example", msgs[k]); r.Code != 250 {
					t.Fatalf("%s: reply %v", k, r)
				}
			}
			mta.WaitDelivered(t, len(msgs), 30*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			ds := mta.Delivered(t)

			for _, k := range []string{"cr", "lf", "crlf"} {
				d := headerfixDelivered(t, ds, k+"@lab.example")
				fields := strings.Join(headerfixFields(d.Header), "\n")
				if got := d.Values("Date"); !reflect.DeepEqual(got, []string{headerfixDate}) {
					t.Errorf("%s: Date fields %q, want one %q\n%s", k, got, headerfixDate, fields)
				}
				if got := d.Values("From"); !reflect.DeepEqual(got, []string{headerfixFrom}) {
					t.Errorf("%s: From fields %q, want one %q (none made up)\n%s", k, got, headerfixFrom, fields)
				}
				if got := d.Values("Subject"); !reflect.DeepEqual(got, []string{"line ends"}) {
					t.Errorf("%s: Subject fields %q\n%s", k, got, fields)
				}
				if strings.Contains(string(d.Raw), "\r") {
					t.Errorf("%s: a CR is left in the delivered message:\n%q", k, d.Raw)
				}
				for _, f := range d.Header {
					if f.Name == "" {
						t.Errorf("%s: delivered header has a line that is no field: %q", k, f.Raw)
					}
				}
				repaired := d.Values("X-Sluice-Repaired")
				// Postfix already split the LF variant itself.
				needed := k == "cr" || k == "lf" && kind != "postfix"
				switch {
				case needed && len(repaired) != 1:
					t.Errorf("%s: X-Sluice-Repaired %q, want one", k, repaired)
				case needed && !strings.HasPrefix(repaired[0], "split Date/From"):
					t.Errorf("%s: X-Sluice-Repaired %q", k, repaired[0])
				case !needed && len(repaired) != 0:
					t.Errorf("%s: X-Sluice-Repaired %q on a message that needed no repair", k, repaired)
				}
			}

			many := headerfixDelivered(t, ds, "many@lab.example")
			fields := strings.Join(headerfixFields(many.Header), "\n")
			// Postfix gets the whole chain back in order. Sendmail would
			// put an added Received: above its own, so there the bare CR
			// inside the chain became a space instead.
			rcv := many.Values("Received")
			hop := func(from, by string) string { return "from " + from + " by " + by + "; " + headerfixDate }
			wantRcv := []string{hop("b.example", "a.example"), hop("c.example", "b.example"), hop("d.example", "c.example")}
			if kind != "postfix" {
				wantRcv = []string{wantRcv[0] + " Received: " + wantRcv[1], wantRcv[2]}
			}
			if len(rcv) < 1 || !strings.Contains(rcv[0], "by "+mta.Hostname()) || !reflect.DeepEqual(rcv[1:], wantRcv) {
				t.Errorf("many: Received fields %q, want the MTA's and then %q\n%s", rcv, wantRcv, fields)
			}
			for name, want := range map[string][]string{
				"Message-ID": {"<many@example.com>"},
				"Date":       {headerfixDate},
				"From":       {headerfixFrom},
				"Subject":    {"=?UTF-8?Q?caf=C3=A9?=\n folded"},
				"X-Note":     {"half way"},
			} {
				if got := many.Values(name); !reflect.DeepEqual(got, want) {
					t.Errorf("many: %s fields %q, want %q\n%s", name, got, want, fields)
				}
			}

			// The filter after headerfix and the archive saw what was
			// delivered. With Sendmail, the fields Sendmail adds itself are
			// never shown to filters, and an added From: takes the place of
			// the one Sendmail made up, so there only the values of each
			// field name are compared.
			for _, k := range []string{"cr", "lf", "crlf", "many"} {
				rcpt := k + "@lab.example"
				d := headerfixOwnFields(headerfixDelivered(t, ds, rcpt))
				arch := headerfixArchived(t, archiveDir, rcpt)
				seen, ok := rec.headers(rcpt)
				if !ok {
					t.Fatalf("%s: the recorder saw nothing", k)
				}
				var seenFields []mtatest.Field
				for _, h := range seen {
					seenFields = append(seenFields, mtatest.Field{Name: h.Name, Value: h.Value})
				}
				if kind == "postfix" {
					want := headerfixFields(d)
					if got := headerfixFields(seenFields); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: later filter saw\n%s\nmailbox has\n%s", k, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					if got := headerfixFields(arch); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: archive has\n%s\nmailbox has\n%s", k, strings.Join(got, "\n"), strings.Join(want, "\n"))
					}
					continue
				}
				for _, f := range append(seenFields, arch...) {
					if got, want := headerfixValues(arch, f.Name), headerfixValues(d, f.Name); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: %s: archive has %q, mailbox %q", k, f.Name, got, want)
					}
					if got, want := headerfixValues(seenFields, f.Name), headerfixValues(d, f.Name); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: %s: later filter saw %q, mailbox has %q", k, f.Name, got, want)
					}
				}
			}

			// Postfix: the CR variant and, in "many", the Received chain
			// and the Message-ID line, all merged by Postfix. Sendmail:
			// the bare characters: two CRs and two LFs before a field, one
			// CR inside X-Note and one in the Received chain.
			metrics := td.metrics(t)
			want := []string{
				`sluice_headerfix_messages_total{action="fix",filter="headerfix"} 2`,
				`sluice_headerfix_repairs_total{filter="headerfix",kind="split_merged"} 3`,
			}
			if kind != "postfix" {
				want = []string{
					`sluice_headerfix_messages_total{action="fix",filter="headerfix"} 3`,
					`sluice_headerfix_repairs_total{filter="headerfix",kind="split_cr"} 2`,
					`sluice_headerfix_repairs_total{filter="headerfix",kind="split_lf"} 2`,
					`sluice_headerfix_repairs_total{filter="headerfix",kind="space_cr"} 2`,
				}
			}
			for _, w := range want {
				if !strings.Contains(metrics, w) {
					t.Errorf("metrics lack %s", w)
				}
			}
		})
	}
}

func headerfixValues(fs []mtatest.Field, name string) []string {
	var vs []string
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Policy reject refuses the message with the configured reply, through
// Postfix, and lets a clean message through.
func TestHeaderfixEndToEndReject(t *testing.T) {
	mtatest.Require(t)
	rec := newHeaderfixRecorder()
	td := headerfixDaemon(t, `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: 5s
filters:
  - type: headerfix
    options:
      policy: reject
      reply: "554 5.6.0 Header line ends in a bare CR or LF; see RFC 5322 2.2"
`, rec)
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "inet:" + td.info.Milter[0].String()})
	r := headerfixSend(t, mta, "cr@lab.example", headerfixVariants["cr"])
	if r.Code != 554 || r.Text != "5.6.0 Header line ends in a bare CR or LF; see RFC 5322 2.2" {
		t.Errorf("bare CR: reply %v", r)
	}
	if r := headerfixSend(t, mta, "crlf@lab.example", headerfixVariants["crlf"]); r.Code != 250 {
		t.Errorf("CRLF: reply %v", r)
	}
	ds := mta.WaitDelivered(t, 1, 30*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	if ds = mta.Delivered(t); len(ds) != 1 || ds[0].Recipient() != "crlf@lab.example" {
		t.Errorf("delivered %d messages, want only the CRLF one", len(ds))
	}
}

// headerfixRecorded starts a daemon running headerfix and, after it, a
// filter that records what it sees, and an MTA of kind that passes mail
// through it.
func headerfixRecorded(t *testing.T, kind string) (*headerfixRecorder, *mtatest.MTA) {
	t.Helper()
	rec := newHeaderfixRecorder()
	td := headerfixDaemon(t, `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
shutdown_timeout: 5s
filters:
  - type: headerfix
  - type: hfrecorder
`, rec)
	return rec, headerfixMTA(t, kind, "inet:"+td.info.Milter[0].String())
}

// End to end: trace fields a sender put in its message never reach the
// mailbox, through Postfix and through Sendmail, whether the header needed
// repair (then the filter's own field is the only one) or not (then there
// is none). The recording filter after headerfix sees none of them either.
func TestHeaderfixEndToEndForgedTrace(t *testing.T) {
	mtatest.Require(t)
	for _, kind := range []string{"postfix", "sendmail-relaxed"} {
		t.Run(kind, func(t *testing.T) {
			rec, mta := headerfixRecorded(t, kind)
			const forged = "X-Sluice-Repaired: nothing, trust me\r\n"
			msgs := map[string]string{
				"cr":   forged + strings.Replace(headerfixVariants["cr"], "\r\n\r\n", "\r\nx-sluice-repaired: nothing\r\n\r\n", 1),
				"crlf": forged + headerfixVariants["crlf"],
			}
			for _, k := range []string{"cr", "crlf"} {
				if r := headerfixSend(t, mta, k+"@lab.example", msgs[k]); r.Code != 250 {
					t.Fatalf("%s: reply %v", k, r)
				}
			}
			mta.WaitDelivered(t, len(msgs), 30*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			ds := mta.Delivered(t)
			for _, k := range []string{"cr", "crlf"} {
				d := headerfixDelivered(t, ds, k+"@lab.example")
				fields := strings.Join(headerfixFields(d.Header), "\n")
				repaired := d.Values("X-Sluice-Repaired")
				switch {
				case k == "cr" && (len(repaired) != 1 || !strings.HasPrefix(repaired[0], "split Date/From")):
					t.Errorf("%s: X-Sluice-Repaired %q, want only the filter's\n%s", k, repaired, fields)
				case k == "crlf" && len(repaired) != 0:
					t.Errorf("%s: X-Sluice-Repaired %q, want none\n%s", k, repaired, fields)
				}
				seen, ok := rec.headers(k + "@lab.example")
				if !ok {
					t.Fatalf("%s: the recorder saw nothing", k)
				}
				for _, h := range seen {
					if strings.EqualFold(h.Name, "X-Sluice-Repaired") && strings.HasPrefix(h.Value, "nothing") {
						t.Errorf("%s: a later filter saw the forged field %q", k, h.Value)
					}
				}
			}
		})
	}
}

// headerfixSpelt returns the values of the fields spelt exactly name
// (not filters.SameName), in order.
func headerfixSpelt(fs []mtatest.Field, name string) []string {
	var vs []string
	for _, f := range fs {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// End to end, through Postfix and through Sendmail told to accept bare CR
// and LF: messages that once came out of the repair wrong. want gives,
// for each field name as spelt, the values the mailbox must have, and the
// filter after headerfix must have seen the same (with Sendmail, but for
// fields of the names Sendmail makes up and hides).
func TestHeaderfixEndToEndEdgeCases(t *testing.T) {
	mtatest.Require(t)
	two, three := headerfixDate+" (two)", headerfixDate+" (three)"
	type edgeCase struct {
		raw  string
		want map[string]map[string][]string // MTA kind, spelling, values
	}
	cases := map[string]edgeCase{
		// Fields whose names differ in case only: each keeps its own
		// spelling with its own value. Postfix merged the first two;
		// Sendmail keeps the CR, and the CR becomes a space as the
		// header already has a Date.
		"case": {
			raw: "Date: " + headerfixDate + "\rDATE: " + two + "\r\ndate: " + three + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Date": {headerfixDate}, "DATE": {two}, "date": {three}},
				"sendmail-relaxed": {"Date": {headerfixDate + " DATE: " + two}, "DATE": nil, "date": {three}},
			},
		},
		// An empty From: behind a bare CR. Sendmail, which drops an
		// empty From: and makes up its own, must not have that one
		// filled with nothing; Postfix's made-up From: must not be
		// emptied. Postfix leaves a Subject of free text alone.
		"emptyfrom": {
			raw: "Subject: x\rFrom:  \r\nTo: bob@lab.example\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"x From:  "}, "From": {headerfixSender}},
				"sendmail-relaxed": {"Subject": {"x"}, "From": {headerfixSender}},
			},
		},
		// The client sent two Date: fields, one behind a bare CR. The
		// second is the client's, with a field of the client's after
		// it, not one Postfix made up: it stays.
		"twodates": {
			raw: "Message-ID: <two@example.org>\rDate: " + headerfixDate + "\r\nSubject: s\r\nDate: " + two + "\r\nX-Last: 1\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Date": {headerfixDate, two}},
				"sendmail-relaxed": {"Message-ID": {"<two@example.org> Date: " + headerfixDate}, "Date": {two}},
			},
		},
		// An empty From: does not keep a real one after it from being
		// split off.
		"twofrom": {
			raw: "Subject: x\rFrom:\r\nX-A: y\rFrom: " + headerfixFrom + "\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"X-A": {"y From: " + headerfixFrom}, "From": {headerfixSender}},
				"sendmail-relaxed": {"Subject": {"x"}, "X-A": {"y"}, "From": {headerfixFrom}},
			},
		},
		// Sendmail keeps a slot for each field its configuration can
		// make up; an added field of that name fills the slot, and a
		// slot for a field Sendmail does not write (Resent-*: the
		// message is not being resent) is never written: the field was
		// lost. With Sendmail such a field is not split off.
		"resent": {
			raw: "Subject: x\rResent-From: bob@example.net\r\nTo: bob@lab.example\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"x Resent-From: bob@example.net"}, "Resent-From": nil},
				"sendmail-relaxed": {"Subject": {"x Resent-From: bob@example.net"}, "Resent-From": nil},
			},
		},
		"fullname": {
			raw: "Subject: x\rFull-Name: Bob Example\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Subject": {"x Full-Name: Bob Example"}},
				"sendmail-relaxed": {"Subject": {"x Full-Name: Bob Example"}},
			},
		},
		"datefromempty": {
			raw: "Date: " + headerfixDate + "\rFrom:\r\nSubject: x\r\n\r\nBody.\r\n",
			want: map[string]map[string][]string{
				"postfix":          {"Date": {headerfixDate}, "From": {headerfixSender}},
				"sendmail-relaxed": {"Date": {headerfixDate}, "From": {headerfixSender}},
			},
		},
	}
	for _, kind := range []string{"postfix", "sendmail-relaxed"} {
		t.Run(kind, func(t *testing.T) {
			rec, mta := headerfixRecorded(t, kind)
			names := slices.Sorted(maps.Keys(cases))
			for _, k := range names {
				if r := headerfixSend(t, mta, k+"@lab.example", cases[k].raw); r.Code != 250 {
					t.Fatalf("%s: reply %v", k, r)
				}
			}
			mta.WaitDelivered(t, len(cases), 30*time.Second)
			mta.WaitIdle(t, 30*time.Second)
			ds := mta.Delivered(t)
			for _, k := range names {
				d := headerfixOwnFields(headerfixDelivered(t, ds, k+"@lab.example"))
				seen, _ := rec.headers(k + "@lab.example")
				var seenFields []mtatest.Field
				for _, h := range seen {
					seenFields = append(seenFields, mtatest.Field{Name: h.Name, Value: h.Value})
				}
				for _, name := range slices.Sorted(maps.Keys(cases[k].want[kind])) {
					want := cases[k].want[kind][name]
					if got := headerfixSpelt(d, name); !reflect.DeepEqual(got, want) {
						t.Errorf("%s: mailbox has %s fields %q, want %q\n%s", k, name, got, want, strings.Join(headerfixFields(d), "\n"))
					}
					hidden := kind != "postfix" && name == "From"
					if got := headerfixSpelt(seenFields, name); !hidden && !reflect.DeepEqual(got, want) {
						t.Errorf("%s: later filter saw %s fields %q, want %q", k, name, got, want)
					}
				}
			}
		})
	}
}

// sluice test --mta sendmail predicts what headerfix does to a message
// file as Sendmail hands it over: the same messages go through real
// Sendmail (told to accept bare CR and LF) to the daemon, and through the
// dry run. The trace field the mailbox got must be the one the dry run
// adds, and the header a later filter saw must be the file's header with
// the dry run's edits made. A file with LF line ends is a message stored
// on disk, which a client sends with CRLF line ends: it needs no repair.
func TestHeaderfixDryRunSendmail(t *testing.T) {
	mtatest.Require(t)
	rec, mta := headerfixRecorded(t, "sendmail-relaxed")
	cfg := dryRunConfig(t, "filters:\n  - type: headerfix\n")

	msgs := map[string]string{
		// A bare LF does not end a line in Sendmail: the text after it
		// stays in the field, as the milter sees it.
		"lf":     headerfixVariants["lf"],
		"first":  "X-A: a\nX-B: b\r\nSubject: s\r\n\r\nBody.\r\n",
		"chain":  "Subject: x\r\nX-C: y\nX-D: z\nX-E: w\r\n\r\nBody.\r\n",
		"notaf":  "Subject: a\nb c\r\nX-Z: z\r\n\r\nBody.\r\n",
		"lfcrlf": "Subject: x\n\r\nX-C: y\r\n\r\nBody.\r\n",
		"folded": "X-A: p\n q\r\nX-Z: z\r\n\r\nBody.\r\n",
		"crlf":   headerfixVariants["crlf"],
		"cr":     headerfixVariants["cr"],
	}
	names := slices.Sorted(maps.Keys(msgs))
	for _, k := range names {
		if r := headerfixSend(t, mta, k+"@lab.example", msgs[k]); r.Code != 250 {
			t.Fatalf("%s: reply %v", k, r)
		}
	}
	mta.WaitDelivered(t, len(msgs), 30*time.Second)
	mta.WaitIdle(t, 30*time.Second)
	ds := mta.Delivered(t)

	dir := t.TempDir()
	for _, k := range names {
		rcpt := k + "@lab.example"
		file := filepath.Join(dir, k+".eml")
		if err := os.WriteFile(file, []byte(msgs[k]), 0o644); err != nil {
			t.Fatal(err)
		}
		cr := runCLI(t, "", "test", "--config", cfg, "--format", "json", "--mta", "sendmail",
			"--from", headerfixSender, "--rcpt", rcpt, file)
		var rep testReport
		if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
			t.Fatalf("%s: sluice test: exit %d, %v\n%s%s", k, cr.code, err, cr.stdout, cr.stderr)
		}
		var predicted []string
		for _, e := range rep.Edits {
			if e.Kind == "add" && e.Name == "X-Sluice-Repaired" {
				predicted = append(predicted, e.Value)
			}
		}
		got := headerfixDelivered(t, ds, rcpt).Values("X-Sluice-Repaired")
		if !reflect.DeepEqual(predicted, got) {
			t.Errorf("%s: sluice test predicts X-Sluice-Repaired %q, the mailbox has %q", k, predicted, got)
		}

		hdrs, _ := milter.ParseMessage([]byte(msgs[k]), milter.Sendmail)
		want := filters.ApplyEdits(hdrs, dryRunEditsBack(t, rep.Edits))
		seen, ok := rec.headers(rcpt)
		if !ok {
			t.Fatalf("%s: the recorder saw nothing", k)
		}
		if !reflect.DeepEqual(seen, want) {
			t.Errorf("%s: sluice test predicts a later filter sees\n%q\nit saw\n%q", k, want, seen)
		}
	}

	// The same messages stored with LF line ends: each bare LF is then a
	// line end, and what stays is what a client sends of it.
	lfFile := filepath.Join(dir, "stored.eml")
	if err := os.WriteFile(lfFile, []byte("Date: "+headerfixDate+"\nFrom: "+headerfixFrom+"\nSubject: s\n\nBody.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cr := runCLI(t, "", "test", "--config", cfg, "--format", "json", "--mta", "sendmail", "--rcpt", "x@lab.example", lfFile)
	var rep testReport
	if err := json.Unmarshal([]byte(cr.stdout), &rep); err != nil {
		t.Fatalf("stored: sluice test: exit %d, %v\n%s%s", cr.code, err, cr.stdout, cr.stderr)
	}
	if len(rep.Edits) != 0 {
		t.Errorf("stored: a file with LF line ends gets edits %+v", rep.Edits)
	}
}
