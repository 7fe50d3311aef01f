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

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The corpus tests send every message of the SpamAssassin public corpus
// (about 6,000 real messages from 2002-2003: mailing lists, newsletters,
// spam with broken MIME, 8-bit header fields, bare CRs, long lines)
// through a real MTA and a daemon that runs every shipped filter, and
// check that each arrives as sent but for the header fields the MTA and
// sluice add, and that each is archived once, as delivered.
//
// The corpus is a 20 MB download that the unit tests must not depend on,
// so these run only when asked, from "make bench":
//
//	SLUICE_CORPUS=1 go test -run '^TestCorpusThrough' -timeout 30m ./cmd/sluice

// TestCorpusThroughPostfix checks each delivered copy against the message
// sent, as Postfix itself would deliver it, each archived copy against
// the delivered one, and that sluice classify gives each archived copy
// the spamicity the daemon gave the message.
func TestCorpusThroughPostfix(t *testing.T) {
	paths, msgs := corpusMessages(t)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	_, state := corpusDaemon(t, fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock), trainHalf(t, paths, msgs), "")
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
	codes := sendCorpus(t, mta, msgs)
	for i, code := range codes {
		if code != 250 {
			t.Fatalf("%s: reply %d", paths[i], code)
		}
	}
	delivered := corpusDelivered(t, mta, len(msgs), true)
	bad := 0
	for i, raw := range delivered {
		if raw == nil {
			bad++
			t.Errorf("%s was not delivered", paths[i])
			continue
		}
		got := stripAdded(raw, postfixFields)
		if want := postfixDelivers(msgs[i]); !bytes.Equal(got, want) {
			bad++
			if bad <= 20 {
				t.Errorf("%s arrived changed: %s", paths[i], firstDifference(want, got))
			}
		}
	}
	// The archive's copy of a message classifies as the daemon classified
	// the message (docs/archive.md: the X-Sluice-* fields give neither
	// tokens nor n-gram bytes), so that training it later teaches what
	// the daemon saw.
	// (A mailbox copy also has the fields the MTA adds when it delivers,
	// which the daemon never sees; those do count.)
	daemon := map[string]string{}
	verdicts := map[string]int{}
	for _, d := range mta.Delivered(t) {
		// "Ham, spamicity=0.000131, queue_id=..., version=..."
		v := strings.Fields(strings.NewReplacer(",", " ", "=", " ").Replace(d.Get("X-Sluice-Bayes")))
		if len(v) < 3 || v[1] != "spamicity" {
			t.Fatalf("%s: X-Sluice-Bayes %q", d.Recipient(), d.Get("X-Sluice-Bayes"))
		}
		daemon[d.Recipient()] = v[2] + " " + strings.ToLower(v[0])
		verdicts[strings.ToLower(v[0])]++
	}
	t.Logf("verdicts: %v", verdicts)
	if verdicts["ham"] < len(msgs)/2 || verdicts["spam"] < len(msgs)/5 {
		t.Errorf("verdicts %v: the store was not trained", verdicts)
	}
	differ := 0
	for _, name := range []string{"spam", "ham", "unsure"} {
		mbox := filepath.Join(state, "archive", name+".mbox")
		var rcpts []string
		f, err := os.Open(mbox)
		if err != nil {
			t.Fatal(err)
		}
		err = archive.ReadMbox(f, func(r archive.Record) error {
			rcpts = append(rcpts, strings.Join(archive.HeaderValues(r.Message, "X-Sluice-Envelope-To"), ","))
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "", "classify", "--db", filepath.Join(state, "bayes.db"), "--format", "tsv", mbox)
		if r.code == 3 || r.stderr != "" {
			t.Fatalf("classify %s: %+v", mbox, r)
		}
		k := 0
		for line := range strings.Lines(r.stdout) {
			f := strings.Split(strings.TrimRight(line, "\n"), "\t")
			if len(f) != 3 || f[0] != mbox+"#"+strconv.Itoa(k+1) || k >= len(rcpts) {
				t.Fatalf("classify %s: line %q", mbox, line)
			}
			if got, want := f[1]+" "+f[2], daemon[rcpts[k]]; got != want {
				differ++
				if differ <= 20 {
					t.Errorf("%s: the daemon classified it %s, sluice classify its archived copy %s", rcpts[k], want, got)
				}
			}
			k++
		}
		if k != len(rcpts) {
			t.Errorf("classify %s: %d lines for %d records", mbox, k, len(rcpts))
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d archived copies classified otherwise than the daemon did", differ, len(msgs))
	}

	// The archive holds each message as delivered, less the fields
	// Postfix adds at delivery.
	bad += checkCorpusArchive(t, state, paths, delivered, nil, func(i int) []byte {
		return stripAdded(delivered[i], postfixFields)
	}, func(b []byte) []byte { return b })
	if bad > 0 {
		t.Errorf("%d of %d messages changed", bad, len(msgs))
	}
}

// TestCorpusThroughSendmail sends the corpus to two Sendmail instances, one
// without a milter and one with sluice, and checks that both answer each
// message alike and deliver it alike but for sluice's fields. Sendmail
// rewrites more than Postfix (it qualifies addresses, adds missing
// fields), so the instance without the milter says what to expect.
func TestCorpusThroughSendmail(t *testing.T) {
	paths, msgs := corpusMessages(t)
	td, state := corpusDaemon(t, "address: inet:127.0.0.1:0", func(db string) { trainFixtures(t, db) }, "")
	with := mtatest.StartSendmail(t, mtatest.SendmailOptions{Milter: "inet:" + td.info.Milter[0].String(), DefaultAction: "tempfail"})
	without := mtatest.StartSendmail(t, mtatest.SendmailOptions{})
	var codes, plainCodes []int
	t.Run("both", func(t *testing.T) {
		// Sendmail delivers some 20 messages a second here: the two
		// instances take their messages side by side.
		t.Run("with", func(t *testing.T) { t.Parallel(); codes = sendCorpus(t, with, msgs) })
		t.Run("without", func(t *testing.T) { t.Parallel(); plainCodes = sendCorpus(t, without, msgs) })
	})
	if t.Failed() {
		t.FailNow()
	}
	n, accepted := 0, make([]bool, len(msgs))
	for i := range msgs {
		if codes[i] != plainCodes[i] {
			t.Errorf("%s: reply %d with sluice, %d without", paths[i], codes[i], plainCodes[i])
		}
		if accepted[i] = codes[i] == 250 && plainCodes[i] == 250; accepted[i] {
			n++
		}
	}
	t.Logf("%d of %d messages accepted by both", n, len(msgs))
	delivered := corpusDelivered(t, with, n, true)
	plain := corpusDelivered(t, without, n, false)
	bad := 0
	for i := range msgs {
		if !accepted[i] {
			continue
		}
		if delivered[i] == nil || plain[i] == nil {
			bad++
			t.Errorf("%s was not delivered (with sluice %t, without %t)", paths[i], delivered[i] != nil, plain[i] != nil)
			continue
		}
		// Sendmail gives a message without a Message-Id or Date one of
		// its own, which differs between the instances.
		var made []string
		for _, name := range []string{"message-id", "date"} {
			if len(archive.HeaderValues(msgs[i], name)) == 0 {
				made = append(made, name)
			}
		}
		got, want := stripAdded(delivered[i], sendmailFields, made...), stripAdded(plain[i], sendmailFields, made...)
		if !bytes.Equal(got, want) {
			bad++
			if bad <= 20 {
				t.Errorf("%s arrived changed: %s", paths[i], firstDifference(want, got))
			}
		}
	}
	// Sendmail changes some fields when it delivers, after the milter saw
	// them: it drops the sender's Return-Path, folds address lists anew,
	// and puts a From: of the envelope sender in place of an empty one,
	// which its milters never see. So the archive's header cannot be
	// held against the mailbox's: its bodies are held against the bodies
	// sent.
	bad += checkCorpusArchive(t, state, paths, delivered, []string{"received"}, func(i int) []byte {
		return bodyOf(postfixDelivers(msgs[i]))
	}, bodyOf)
	if bad > 0 {
		t.Errorf("%d of %d messages changed", bad, n)
	}
}

// TestCorpusAutolearnThroughPostfix has the daemon auto-learn the corpus
// through Postfix and checks that the copies a user later trains are
// recognised as the messages it learned, by the digest that leaves out
// what delivery and the archive add: a delivered copy of a message it
// learned as ham, trained as ham, is already learned; the archive's spam
// file trained as ham moves exactly the messages learned as spam.
func TestCorpusAutolearnThroughPostfix(t *testing.T) {
	paths, msgs := corpusMessages(t)
	sock := filepath.Join(socketDir(t), "sluice.sock")
	_, state := corpusDaemon(t, fmt.Sprintf("address: unix:%s\n    mode: \"0666\"", sock), trainHalf(t, paths, msgs),
		"      autolearn:\n        spam: 0.99\n        ham: 0.01")
	db := filepath.Join(state, "bayes.db")
	// The store learned the messages as sent: Postfix must not rewrite
	// the header (as it does for local clients by default: it qualifies
	// addresses and re-folds address lists), or the daemon sees other
	// messages than those (21 of the 3,023).
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{
		Milter:        "unix:" + sock,
		DefaultAction: "tempfail",
		ExtraConfig:   []string{"local_header_rewrite_clients ="},
	})
	for i, code := range sendCorpus(t, mta, msgs) {
		if code != 250 {
			t.Fatalf("%s: reply %d", paths[i], code)
		}
	}
	corpusDelivered(t, mta, len(msgs), true)

	const (
		none = iota
		ham
		spam
	)
	// What the store holds of each message, by its digest (the corpus
	// has copies of some messages in more than one group): learned by
	// trainHalf, ham first, or auto-learned (the header says so).
	learned := map[classifier.Digest]int{}
	digest := func(i int) classifier.Digest { return classifier.MessageDigest(postfixDelivers(msgs[i])) }
	for _, class := range []int{ham, spam} {
		for i := 0; i < len(msgs); i += 2 {
			if corpusSpam(paths[i]) == (class == spam) {
				learned[digest(i)] = class
			}
		}
	}
	var hamCopies strings.Builder
	auto := map[int]int{}
	for _, d := range mta.Delivered(t) {
		i, ok := corpusIndex(d.Recipient(), len(msgs))
		if !ok {
			t.Fatalf("delivery to %q", d.Recipient())
		}
		v := d.Get("X-Sluice-Bayes")
		if strings.Contains(v, "autolearn=") && learned[digest(i)] != none {
			t.Errorf("message %d, learned before, was auto-learned again: %s", i, v)
		}
		switch {
		case strings.Contains(v, "autolearn=ham"):
			learned[digest(i)] = ham
			hamCopies.WriteString(d.File + "\n")
			auto[ham]++
		case strings.Contains(v, "autolearn=spam"):
			learned[digest(i)] = spam
			auto[spam]++
		}
	}
	t.Logf("auto-learned: %d ham, %d spam", auto[ham], auto[spam])
	if auto[ham] < len(msgs)/4 || auto[spam] < len(msgs)/20 {
		t.Fatalf("auto-learned %d ham, %d spam: too few to tell", auto[ham], auto[spam])
	}

	// The delivered copies of the messages learned as ham, as a user
	// would train them from the mailbox: all already learned.
	r := runCLI(t, hamCopies.String(), "train", "--db", db, "--ham", "--list", "-")
	want := fmt.Sprintf("%d messages: 0 learned as ham, %d already learned, 0 moved from spam to ham, 0 errors", auto[ham], auto[ham])
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Errorf("training the auto-learned ham's delivered copies: %+v, want %q", r, want)
	}

	// The archive's spam file trained as ham: the messages learned as
	// spam move, those learned as ham are already learned, the rest are
	// learned, each the first time the file holds it.
	var n, moved, already int
	f, err := os.Open(filepath.Join(state, "archive", "spam.mbox"))
	if err != nil {
		t.Fatal(err)
	}
	err = archive.ReadMbox(f, func(r archive.Record) error {
		rcpt := strings.Join(archive.HeaderValues(r.Message, "X-Sluice-Envelope-To"), ",")
		i, ok := corpusIndex(rcpt, len(msgs))
		if !ok {
			return fmt.Errorf("archived copy for %q", rcpt)
		}
		n++
		switch learned[digest(i)] {
		case spam:
			moved++
		case ham:
			already++
		}
		learned[digest(i)] = ham
		return nil
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "train", "--db", db, "--ham", filepath.Join(state, "archive", "spam.mbox"))
	want = fmt.Sprintf("%d messages: %d learned as ham, %d already learned, %d moved from spam to ham, 0 errors", n, n-moved-already, already, moved)
	if r.code != 0 || !strings.HasPrefix(r.stdout, want) {
		t.Errorf("training the archived spam as ham: %+v, want %q", r, want)
	}
}

// corpusMessages fetches the corpus (testdata/corpus) and returns its
// messages' paths and the messages as a client sends them.
func corpusMessages(t *testing.T) (paths []string, msgs [][]byte) {
	t.Helper()
	if os.Getenv("SLUICE_CORPUS") == "" {
		t.Skip("corpus test: set SLUICE_CORPUS=1 to run it")
	}
	mtatest.Require(t)
	out, err := exec.Command("../../testdata/corpus/fetch-spamassassin.sh").Output()
	if err != nil {
		t.Fatalf("fetch corpus: %v", err)
	}
	data := strings.TrimSpace(string(out))
	for _, g := range []string{"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"} {
		m, err := filepath.Glob(filepath.Join(data, g, "*.txt"))
		if err != nil || len(m) == 0 {
			t.Fatalf("corpus group %s: %d messages, %v", g, len(m), err)
		}
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	msgs = make([][]byte, len(paths))
	for i, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = corpusMessage(raw)
	}
	return paths, msgs
}

// trainHalf returns a function that trains a store on every other corpus
// message (those of even index), so that the verdicts of the rest are
// not all certain. It trains each as Postfix hands it to the daemon
// (postfixDelivers), not the corpus file: read as an mbox of one message
// (it starts with a From_ line), a file gives its ">From " lines back
// without the ">", and Postfix makes its bare CRs spaces, so 29 of them
// would be other messages than the daemon sees.
func trainHalf(t *testing.T, paths []string, msgs [][]byte) func(db string) {
	return func(db string) {
		dir := t.TempDir()
		for _, class := range []string{"ham", "spam"} {
			var list strings.Builder
			for i := 0; i < len(paths); i += 2 {
				if corpusSpam(paths[i]) != (class == "spam") {
					continue
				}
				name := filepath.Join(dir, strconv.Itoa(i)+".eml")
				if err := os.WriteFile(name, postfixDelivers(msgs[i]), 0o644); err != nil {
					t.Fatal(err)
				}
				list.WriteString(name + "\n")
			}
			r := runCLI(t, list.String(), "train", "--db", db, "--"+class, "--list", "-")
			t.Logf("train %s: %s", class, strings.TrimSpace(r.stdout))
			if r.code != 0 {
				t.Fatalf("train %s: %+v", class, r)
			}
		}
	}
}

// corpusSpam reports whether a corpus message is in a spam group.
func corpusSpam(path string) bool {
	return strings.HasPrefix(filepath.Base(filepath.Dir(path)), "spam-")
}

// corpusDaemon starts the daemon with every shipped filter on listen (a
// listen entry's YAML) and returns it and its state directory, where the
// archive goes and the Bayes store bayes.db, which train makes. The DNSBL
// and the senders file list nothing the corpus holds; bodies over 64 KiB
// are spilled to disk. bayes is added to the Bayes filter's options
// (YAML at their indentation).
func corpusDaemon(t *testing.T, listen string, train func(db string), bayes string) (*testDaemon, string) {
	t.Helper()
	state := t.TempDir()
	train(filepath.Join(state, "bayes.db"))
	rules := filepath.Join(state, "senders")
	if err := os.WriteFile(rules, []byte("blocked.example REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnsbltest.Start(t)
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - %s
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
%s
  - type: archive
    timeout: 60s
    options:
      targets:
        spam: archive/spam.mbox
        ham: archive/ham.mbox
        unsure: archive/unsure.mbox
`, listen, state, dnsSrv.Addr, rules, bayes))
	return td, state
}

// sendCorpus sends msgs to mta over four SMTP connections, message i to
// corpusRcpt(i), and returns the reply code to each.
func sendCorpus(t *testing.T, mta *mtatest.MTA, msgs [][]byte) []int {
	t.Helper()
	const clients = 4
	codes := make([]int, len(msgs))
	start := time.Now()
	t.Run("send to "+mta.Name(), func(t *testing.T) {
		for w := range clients {
			t.Run(strconv.Itoa(w), func(t *testing.T) {
				t.Parallel()
				dial := func() *mtatest.Client {
					c := mtatest.DialSMTP(t, mta.Addr())
					if r := c.Cmd("EHLO client.example"); r.Code != 250 {
						t.Fatalf("EHLO: %v", r)
					}
					return c
				}
				c := dial()
				for i := w; i < len(msgs); i += clients {
					r := c.Send("corpus@example.org", []string{corpusRcpt(i)}, msgs[i])
					codes[i] = r.Code
					switch {
					case r.Code == 421:
						// Sendmail closes the connection after a bare CR
						// (docs/headerfix.md).
						t.Logf("message %d: %v", i, r)
						c.Close()
						c = dial()
					case r.Code != 250:
						t.Logf("message %d: %v", i, r)
						c.Cmd("RSET")
					}
				}
				c.Quit()
			})
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	took := time.Since(start)
	t.Logf("%s: %d messages sent in %v (%.0f/s)", mta, len(msgs), took.Round(time.Millisecond), float64(len(msgs))/took.Seconds())
	return codes
}

// corpusDelivered waits until mta delivered n messages and returns each
// copy's raw bytes by message index (nil for a message not delivered). A
// second copy of a message fails the test, and so does a copy with other
// than one X-Sluice-Bayes field (viaSluice) or with any (not viaSluice).
func corpusDelivered(t *testing.T, mta *mtatest.MTA, n int, viaSluice bool) [][]byte {
	t.Helper()
	newDir := filepath.Join(mta.Dir(), "mail", "inbox", "new")
	deadline := time.Now().Add(10 * time.Minute)
	for {
		entries, _ := os.ReadDir(newDir)
		if len(entries) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages delivered after 10 minutes", mta, len(entries), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mta.WaitIdle(t, time.Minute)
	var out [][]byte
	for _, d := range mta.Delivered(t) {
		i, ok := corpusIndex(d.Recipient(), 1e5)
		if !ok {
			t.Fatalf("%s: delivery to %q", mta, d.Recipient())
		}
		if i >= len(out) {
			out = append(out, make([][]byte, i+1-len(out))...)
		}
		if out[i] != nil {
			t.Errorf("%s: a second copy of message %d", mta, i)
		}
		out[i] = d.Raw
		verdicts := 0
		for _, f := range d.Header {
			if strings.EqualFold(f.Name, "X-Sluice-Bayes") {
				verdicts++
			}
		}
		if want := map[bool]int{true: 1}[viaSluice]; verdicts != want {
			t.Errorf("%s: message %d has %d X-Sluice-Bayes fields, want %d", mta, i, verdicts, want)
		}
	}
	return out
}

// checkCorpusArchive checks that the archive under state holds one copy of
// each delivered message, and that of message i, stripped of sluice's
// fields and of the MTA's fields listed in mta, gives want(i) when passed
// to part. It returns how many copies differ.
func checkCorpusArchive(t *testing.T, state string, paths []string, delivered [][]byte, mta []string, want func(i int) []byte, part func([]byte) []byte) int {
	t.Helper()
	archived, bad := 0, 0
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
			i, ok := corpusIndex(rcpts[0], len(delivered))
			if !ok || delivered[i] == nil {
				return fmt.Errorf("record %d of %s.mbox: recipient %q of no delivered message", archived, name, rcpts[0])
			}
			want := want(i)
			if got := part(stripAdded(r.Message, mta)); !bytes.Equal(got, want) {
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
	copies := 0
	for _, d := range delivered {
		if d != nil {
			copies++
		}
	}
	t.Logf("archived: %v", perMbox)
	if archived != copies {
		t.Errorf("%d copies archived, want %d", archived, copies)
	}
	return bad
}

func corpusRcpt(i int) string { return fmt.Sprintf("m%05d@lab.example", i) }

// corpusIndex returns the index of the message corpusRcpt gave rcpt, if
// it is one of n.
func corpusIndex(rcpt string, n int) (int, bool) {
	var i int
	if _, err := fmt.Sscanf(rcpt, "m%05d@lab.example", &i); err != nil || rcpt != corpusRcpt(i) || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

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
// named X-Sluice-*), the ones an MTA puts on top when it delivers (mta
// lists them, lower-cased, in their order), and any named in also
// (lower-cased).
func stripAdded(msg []byte, mta []string, also ...string) []byte {
	var out bytes.Buffer
	lines := bytes.SplitAfter(msg, []byte("\n"))
	inHeader, drop, top, next := true, false, len(mta) > 0, 0
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
			// Each of the MTA's fields once, in its order; the message's
			// own Return-Path or Delivered-To, further down, stays.
			if k := slices.Index(mta[next:], lower); k >= 0 {
				next, drop = next+k+1, true
				continue
			}
			top = false
		}
		drop = strings.HasPrefix(lower, "x-sluice-") || slices.Contains(also, lower)
		if !drop {
			out.Write(line)
		}
	}
	return out.Bytes()
}

// bodyOf returns what follows the blank line that ends msg's header.
func bodyOf(msg []byte) []byte {
	if bytes.HasPrefix(msg, []byte("\n")) {
		return msg[1:]
	}
	if _, body, ok := bytes.Cut(msg, []byte("\n\n")); ok {
		return body
	}
	return nil
}

// postfixFields and sendmailFields are the fields the harness's MTAs put
// on top of a copy they deliver, in order (mtatest.Delivered).
var (
	postfixFields  = []string{"return-path", "x-original-to", "delivered-to", "received"}
	sendmailFields = []string{"delivered-to", "return-path", "received"}
)

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
