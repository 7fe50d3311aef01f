package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/senders"
	"github.com/sluice-mail/sluice/milter"
)

// Exit statuses of sluice test. Verdicts are ordered as their precedence,
// so that with several messages the status is that of the strongest
// verdict; 1 and 2 keep their meaning of every sluice command (error,
// usage).
const (
	testExitAccept     = 0
	testExitError      = 1
	testExitDiscard    = 10
	testExitQuarantine = 11
	testExitTempfail   = 12
	testExitReject     = 13
)

func testExitCode(a filters.Action) int {
	switch a {
	case filters.Discard:
		return testExitDiscard
	case filters.Quarantine:
		return testExitQuarantine
	case filters.Tempfail:
		return testExitTempfail
	case filters.Reject:
		return testExitReject
	}
	return testExitAccept
}

// testFlags are the options of sluice test.
type testFlags struct {
	from       string
	fromSet    bool
	rcpts      []string
	clientIP   string
	clientName string
	helo       string
	queueID    string
	mta        string
	macros     []string
	format     string
	archive    bool
}

func (c *cli) newTestCmd() *cobra.Command {
	var tf testFlags
	cmd := &cobra.Command{
		Use:   "test [flags] [MESSAGE...]",
		Short: "Show what the configured filters would do with a message (dry run)",
		Long: `Test runs the configured pipeline offline on each MESSAGE (a message file,
mbox, maildir or directory, as for train; "-" or none reads standard input)
exactly as the daemon would for a message an MTA hands it: the same filters
in the same order with the same stores, through the same per-stage code. It
prints what each filter decided at each stage and why, the header edits,
and the final verdict with the SMTP reply the client would get.

The envelope comes from the flags; without --from the sender is the
message's Return-Path, else its Sender, else the first address of its
From (the null sender only when it names none), without --rcpt the
recipients are the addresses in To and Cc. A copy written by an archive
filter is tested with the envelope it records (the sender of the mbox
"From " line or of the maildir copy's Return-Path, the recipients of
X-Sluice-Envelope-To, the queue id of X-Sluice-Queue-ID), without the
fields the archive put on top.

Nothing is learned and nothing is archived: a bayes filter opens its
store read-only (a user who may only read it can run the test, and the
writers' lock is left to the daemon and sluice train), fits no n-gram
model and learns nothing; what auto-learning would learn is shown, and
the header lacks the daemon's autolearn note. A message the store has
learned already is shown as such: the daemon would not learn it again,
nor move one learned in the other class. An archive filter writes
into a scratch directory that is removed (the paths it would have used
are shown), a senders filter's seen list is a scratch copy. --archive
lets archive filters write their copies for real, and shows the path of
each copy written.

Exit status: 0 delivered (accept), 10 discard, 11 quarantine, 12 tempfail,
13 reject; with several messages the strongest of them. 1 is an error (a
broken configuration, a message that could not be read or larger than 256
MiB, a message without a recipient and no --rcpt, no message found), 2 a
usage error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tf.fromSet = cmd.Flags().Changed("from")
			code, err := c.dryRun(cmd, args, tf)
			if err != nil || code != 0 {
				return &exitError{code: code, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tf.from, "from", "", "envelope sender (MAIL FROM), with or without <>; \"\" or \"<>\" is the null sender")
	f.StringArrayVar(&tf.rcpts, "rcpt", nil, "envelope recipient (RCPT TO); repeat for several")
	f.StringVar(&tf.clientIP, "client-ip", "127.0.0.1", "address of the SMTP client")
	f.StringVar(&tf.clientName, "client-name", "unknown", "verified host name of the SMTP client; \"unknown\" for none")
	f.StringVar(&tf.helo, "helo", "", "HELO/EHLO argument (default: the client name, or [address] without one)")
	f.StringVar(&tf.queueID, "queue-id", "", "the MTA's queue id, as filters see it from RCPT TO on")
	f.StringVar(&tf.mta, "mta", "postfix", "MTA whose view to give the filters: postfix or sendmail")
	f.StringArrayVar(&tf.macros, "macro", nil, "MTA macro NAME=VALUE, e.g. {auth_authen}=alice; repeat for several")
	f.StringVar(&tf.format, "format", "text", "output format: text or json")
	f.BoolVar(&tf.archive, "archive", false, "let archive filters write their copies")
	return cmd
}

// dryRun runs sluice test and returns its exit status.
func (c *cli) dryRun(cmd *cobra.Command, args []string, tf testFlags) (int, error) {
	if tf.format != "text" && tf.format != "json" {
		return 2, fmt.Errorf("--format %q: want text or json", tf.format)
	}
	conn, err := tf.conn()
	if err != nil {
		return 2, err
	}
	paths, err := inputPaths(args, "", false, cmd.InOrStdin())
	if err != nil {
		return testExitError, err
	}
	cfg, err := c.loadConfig("")
	if err != nil {
		return testExitError, err
	}
	scratch, err := os.MkdirTemp("", "sluice-test-")
	if err != nil {
		return testExitError, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	archiveDir := &archiveScratch{dir: filepath.Join(scratch, "archive")}
	var written *archiveWrites
	if tf.archive {
		written = &archiveWrites{}
	}
	learned := &autolearnWouldLearn{}
	reg := dryRunRegistry(c.reg, scratch, archiveDir, written, learned)
	// Filters log what the daemon would log; only their warnings and
	// errors matter here, and they must not mix with the report.
	logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	pipeline, err := config.Build(cfg, reg, logger, nil)
	if err != nil {
		return testExitError, err
	}
	defer pipeline.Close()
	policy, _ := filters.ParseFailurePolicy(cfg.FilterDefaults.OnFailure)
	// Spilled bodies go to the system's temporary directory: the
	// daemon's body.temp_dir may not exist, or not be writable by the
	// user running the test, and does not change any verdict.
	mcfg := milter.Config{Pipeline: pipeline, BodyMemoryLimit: int64(cfg.Body.MemoryLimit), OnFailure: policy}

	w := bufio.NewWriter(cmd.OutOrStdout())
	defer w.Flush()
	var report func(testReport) error
	if tf.format == "json" {
		enc := json.NewEncoder(w)
		report = func(r testReport) error { return enc.Encode(r) }
	} else {
		first := true
		report = func(r testReport) error {
			if !first {
				w.WriteString("\n")
			}
			first = false
			return r.writeText(w)
		}
	}

	status := testExitAccept
	failed := false
	n := 0
	// Under the locks an mbox's writers take, as train reads it: a test
	// run over the daemon's archive must not replay the record it is
	// appending, cut short.
	rd := mboxReader(cmd, "test", maxTestBytes)
	for _, p := range paths {
		err := rd.Walk(cmd.Context(), p, func(m mailbox.Message) error {
			n++
			if m.Err == nil && m.Truncated {
				m.Err = fmt.Errorf("larger than %d MiB, more than a test holds in memory: not tested", maxTestBytes>>20)
			}
			if m.Err != nil {
				failed = true
				fmt.Fprintf(cmd.ErrOrStderr(), "sluice test: %s: %s\n", printable(m.Name), oneLine(m.Err.Error()))
				return report(testReport{Message: m.Name, Error: m.Err.Error()})
			}
			tx, err := tf.transaction(conn, m.Data, m.From)
			if err != nil {
				failed = true
				fmt.Fprintf(cmd.ErrOrStderr(), "sluice test: %s: %s\n", printable(m.Name), oneLine(err.Error()))
				return report(testReport{Message: m.Name, Error: err.Error()})
			}
			res, err := milter.Replay(cmd.Context(), mcfg, tx, logger)
			if err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			r := newTestReport(m.Name, tx, res)
			r.WouldAutolearn = learned.take()
			if written != nil {
				r.Archived = written.take()
			} else {
				r.WouldArchive, err = archiveDir.copies()
				if err != nil {
					return err
				}
			}
			status = max(status, testExitCode(res.Action))
			return report(r)
		})
		if err != nil {
			return testExitError, err
		}
	}
	if err := w.Flush(); err != nil {
		return testExitError, err
	}
	if n == 0 {
		// No verdict to report: the 0 of "delivered" would tell a
		// script that a message passed.
		return testExitError, noMessagesError(paths)
	}
	if failed {
		return testExitError, nil
	}
	return status, nil
}

// maxTestBytes bounds a message that test replays: it holds the whole
// message in memory, where the daemon spills a large body to a file. Far
// above any MTA's size limit (Postfix's default is 10 MB), it keeps a
// device or a huge file named by mistake (/dev/zero, a disk image) from
// taking all memory; the rest of such a message is read and dropped, so
// the next message of an mbox is still tested.
const maxTestBytes = 256 << 20

// conn builds the client connection from the flags, with the macros the
// chosen MTA sends at connect and HELO (see milter/mtatest/doc.go). A
// client without a name is reported as Postfix reports it: the host name
// is the address in brackets, {client_name} is "unknown".
func (tf testFlags) conn() (filters.Conn, error) {
	conn := filters.Conn{Hostname: tf.clientName, Family: "unknown", Macros: map[string]string{}}
	unnamed := tf.clientName == "" || tf.clientName == "unknown"
	if unnamed {
		conn.Hostname = "unknown"
	}
	if tf.clientIP != "" {
		a, err := netip.ParseAddr(tf.clientIP)
		if err != nil {
			return conn, fmt.Errorf("--client-ip: %w", err)
		}
		conn.Addr = a.Unmap()
		conn.Family = "tcp4"
		if conn.Addr.Is6() {
			conn.Family = "tcp6"
		}
		conn.Macros["{client_addr}"] = conn.Addr.String()
		if unnamed {
			conn.Hostname = "[" + conn.Addr.String() + "]"
		}
	}
	conn.Macros["{client_name}"] = tf.clientName
	if unnamed {
		conn.Macros["{client_name}"] = "unknown"
	}
	conn.Helo = tf.helo
	if conn.Helo == "" {
		conn.Helo = conn.Hostname
	}
	switch tf.mta {
	case "postfix":
		// Postfix sends its name and version in v by default
		// (milter_macro_v); headerfix tells the MTAs apart by it.
		conn.Macros["v"] = "Postfix"
	case "sendmail":
	default:
		return conn, fmt.Errorf("--mta %q: want postfix or sendmail", tf.mta)
	}
	for _, kv := range tf.macros {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return conn, fmt.Errorf("--macro %q: want NAME=VALUE", kv)
		}
		conn.Macros[k] = v
	}
	return conn, nil
}

// transaction is the SMTP transaction of one message: the envelope from
// the flags or, failing them, from the message: the envelope an archive
// copy records, else the message's header. fromLine is the mbox "From "
// line the message was read under, or nil.
func (tf testFlags) transaction(conn filters.Conn, raw, fromLine []byte) (milter.Transaction, error) {
	mta := milter.Postfix
	if tf.mta == "sendmail" {
		mta = milter.Sendmail
	}
	headers, body := milter.ParseMessage(raw, mta)
	copied, isCopy := readArchiveCopy(headers, fromLine)
	if isCopy {
		// The fields the archive put on top are no part of the message
		// the daemon saw: its filters must not see them either.
		headers = headers[copied.top:]
	}
	tx := milter.Transaction{Conn: conn, QueueID: tf.queueID, Headers: headers, Body: strings.NewReader(string(body))}
	if tx.QueueID == "" && isCopy {
		tx.QueueID = copied.queueID
	}
	tx.Conn.Macros = maps.Clone(conn.Macros)
	from := tf.from
	switch {
	case tf.fromSet:
	case isCopy:
		from = copied.from
	default:
		from = senderOf(headers)
	}
	// The milter library takes the angle brackets off MAIL FROM and
	// RCPT TO before the filters see them: "<>" is the null sender "".
	tx.From = filters.Address{Addr: strings.Trim(from, "<>")}
	rcpts := tf.rcpts
	if len(rcpts) == 0 && isCopy {
		rcpts = copied.rcpts
	}
	if len(rcpts) == 0 {
		rcpts = recipientsOf(headers)
	}
	if len(rcpts) == 0 {
		return tx, errors.New("no recipient: the message has no To or Cc address; give --rcpt")
	}
	for _, r := range rcpts {
		tx.Rcpts = append(tx.Rcpts, filters.Address{Addr: strings.Trim(r, "<>")})
	}
	if mta == milter.Postfix {
		// Taken off after they named the envelope: the filters behind
		// Postfix never see them.
		tx.Headers = slices.DeleteFunc(tx.Headers, func(h filters.Header) bool { return droppedByPostfix(h.Name) })
	}
	return tx, nil
}

// archiveCopy is what a copy the archive filter wrote records besides
// the message the daemon saw (see docs/archive.md): its envelope, and how
// many fields at the top of the header are the archive's own.
type archiveCopy struct {
	top     int
	from    string
	rcpts   []string
	queueID string
}

// readArchiveCopy recognises a copy written by the archive filter: an
// mbox record whose header starts with the archive's X-Sluice-Queue-ID,
// or a maildir file whose header starts with the archive's Return-Path
// and then that field, followed by an X-Sluice-Envelope-To per recipient
// and the X-Sluice-Verdict. Its envelope is the one the archive recorded:
// the sender in the "From " line (in a maildir copy, the Return-Path on
// top) and the recipients in X-Sluice-Envelope-To. The header fields of
// the message itself name other addresses: Postfix drops a Return-Path
// the client wrote, Sendmail keeps a forged one, and From, To and Cc are
// the author's (a mailing list, a bounce, a Bcc recipient).
func readArchiveCopy(hs []filters.Header, fromLine []byte) (archiveCopy, bool) {
	var c archiveCopy
	i := 0
	if fromLine == nil {
		if len(hs) == 0 || !filters.SameName(hs[0].Name, "Return-Path") {
			return c, false
		}
		c.from = strings.Trim(strings.TrimSpace(hs[0].Value), "<>")
		i = 1
	} else {
		line := strings.TrimRight(string(fromLine), "\r\n")
		sender, _, _ := strings.Cut(strings.TrimPrefix(line, "From "), " ")
		// The archive writes the null sender as local delivery agents
		// do.
		if sender != "MAILER-DAEMON" {
			c.from = sender
		}
	}
	if i >= len(hs) || !filters.SameName(hs[i].Name, archive.FieldQueueID) {
		return c, false
	}
	c.queueID = strings.TrimSpace(hs[i].Value)
	for i++; i < len(hs) && filters.SameName(hs[i].Name, archive.FieldEnvelopeTo); i++ {
		c.rcpts = append(c.rcpts, strings.TrimSpace(hs[i].Value))
	}
	if i >= len(hs) || !filters.SameName(hs[i].Name, archive.FieldVerdict) {
		return c, false
	}
	c.top = i + 1
	return c, true
}

// droppedByPostfix reports whether Postfix removes a field of this name
// from every message as it comes in, before its milters see the header:
// the default of message_drop_headers (postconf(5), Postfix 3.0 and
// later). A Return-Path, Bcc or Content-Length the client wrote counts
// for the Bayes filter's tokens and the message's size in sluice test
// only if the daemon sees it too.
func droppedByPostfix(name string) bool {
	for _, n := range []string{"Bcc", "Content-Length", "Resent-Bcc", "Return-Path"} {
		if filters.SameName(name, n) {
			return true
		}
	}
	return false
}

// senderOf is the envelope sender a message shows: its Return-Path, else
// the address of its Sender (which RFC 5322 3.6.2 asks for when From
// names several authors), else the first address of its From. A field
// net/mail cannot parse gives the address in its last <...>, if that
// holds an "@". Only a message naming no sender at all gets the null
// sender: a From of two authors, or one with a stray character, taken
// for "<>" would meet the rules for bounces ("<> REJECT") and give a
// verdict the daemon never gives that message.
func senderOf(hs []filters.Header) string {
	for _, name := range []string{"Return-Path", "Sender", "From"} {
		for _, h := range hs {
			if !filters.SameName(h.Name, name) {
				continue
			}
			v := strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(h.Value, "\r", ""), "\n", ""))
			if v == "<>" {
				return ""
			}
			if list, err := mail.ParseAddressList(v); err == nil && len(list) > 0 {
				return list[0].Address
			}
			if addr, ok := lastAngleAddress(v); ok {
				return addr
			}
		}
	}
	return ""
}

// lastAngleAddress returns what the last <...> of v holds, if that holds
// an "@": the address of a mailbox net/mail cannot parse.
func lastAngleAddress(v string) (string, bool) {
	i := strings.LastIndexByte(v, '<')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(v[i:], '>')
	if j <= 0 || !strings.Contains(v[i+1:i+j], "@") {
		return "", false
	}
	return v[i+1 : i+j], true
}

// recipientsOf lists the addresses of a message's To and Cc fields.
// Addresses net/mail cannot parse are read as senderOf reads them.
func recipientsOf(hs []filters.Header) []string {
	var out []string
	for _, h := range hs {
		if !filters.SameName(h.Name, "To") && !filters.SameName(h.Name, "Cc") {
			continue
		}
		v := strings.ReplaceAll(strings.ReplaceAll(h.Value, "\r", ""), "\n", "")
		if list, err := mail.ParseAddressList(v); err == nil {
			for _, a := range list {
				out = append(out, a.Address)
			}
			continue
		}
		// One address net/mail cannot parse would cost the field all
		// its others: read each piece between commas on its own, as
		// senderOf reads a sender. (A comma quoted in a display name
		// splits that name, whose address then stands alone.)
		for _, piece := range strings.Split(v, ",") {
			if a, err := mail.ParseAddress(piece); err == nil {
				out = append(out, a.Address)
			} else if addr, ok := lastAngleAddress(piece); ok {
				out = append(out, addr)
			}
		}
	}
	return out
}

// dryRunRegistry returns reg with the factories of the filters that keep
// lasting state replaced by ones that leave it alone: a bayes filter
// opens its store read-only, does not auto-learn (it tells learned
// what it would learn), fit its n-gram model again nor create a missing
// store, a senders filter records new domains in a scratch
// copy of its seen file, and an archive filter writes under archiveDir,
// or, with written set (--archive), where the daemon would and tells
// written each copy. The filters are otherwise built from their
// options as the daemon builds them, and decide as they do there.
func dryRunRegistry(reg filters.Registry, scratch string, archiveDir *archiveScratch, written *archiveWrites, learned *autolearnWouldLearn) filters.Registry {
	out := maps.Clone(reg)
	if _, ok := reg["bayes"]; ok {
		out["bayes"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var cfg bayes.Config
			if err := decode(&cfg); err != nil {
				return nil, err
			}
			if cfg.Store == "" || cfg.Store == bayes.StoreBolt {
				db, err := dryRunBoltStore(cfg.DBPath(env.StateDir), scratch, env.Name)
				if err != nil {
					return nil, err
				}
				cfg.DB = db
			}
			env.Observer = learned
			// Read-only: a test run by a user who may only read the
			// store, or on a store on a read-only file system, works,
			// and it creates nothing beside the store (no lock file
			// owned by whoever runs it) and never takes the writers'
			// lock that the daemon and sluice train wait for.
			return bayes.OpenReadOnly(env, cfg, version)
		}
	}
	if _, ok := reg["senders"]; ok {
		out["senders"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var cfg senders.Config
			if err := decode(&cfg); err != nil {
				return nil, err
			}
			// Built once as the daemon builds it, on its own seen file
			// (only read: nothing is added, so Close writes nothing), so
			// that a configuration the daemon refuses (a seen_file in a
			// missing directory, a name that is no file name) is refused
			// here too, not run on the scratch copy.
			check := env
			check.Observer = nil
			check.Logger = slog.New(slog.DiscardHandler)
			real, err := senders.New(check, cfg, nil)
			if err != nil {
				return nil, err
			}
			real.Close()
			// One message needs no watching of the rules files.
			var never time.Duration
			cfg.ReloadInterval = &never
			name := env.Name
			if name == "" {
				name = "senders"
			}
			seen := filepath.Join(scratch, "senders-"+strings.ReplaceAll(name, "/", "_")+".seen")
			if err := copyIfExists(cfg.SeenPath(env.StateDir, name), seen); err != nil {
				return nil, err
			}
			cfg.SeenFile = seen
			return senders.New(env, cfg, nil)
		}
	}
	if _, ok := reg["archive"]; ok && written != nil {
		out["archive"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var cfg archive.Config
			if err := decode(&cfg); err != nil {
				return nil, err
			}
			env.Observer = written
			return archive.New(env, cfg)
		}
	}
	if _, ok := reg["archive"]; ok && written == nil {
		out["archive"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var cfg archive.Config
			if err := decode(&cfg); err != nil {
				return nil, err
			}
			// The daemon's targets checked as the daemon checks them
			// (CheckOnly: nothing repaired), so that one it refuses
			// (the root directory) is refused here too.
			check := env
			check.CheckOnly = true
			check.Observer = nil
			if _, err := archive.New(check, cfg); err != nil {
				return nil, err
			}
			// Every target moves below archiveDir, where its path
			// minus that prefix is the one the daemon would use (a
			// relative state_dir taken from the current directory).
			targets := map[string]string{}
			for k, t := range cfg.Targets {
				if !filepath.IsAbs(t) {
					abs, err := filepath.Abs(filepath.Join(env.StateDir, t))
					if err != nil {
						return nil, err
					}
					t = abs
				}
				targets[k] = filepath.Join(archiveDir.dir, t)
				if err := archiveDir.mirrorObstacle(t, targets[k], cfg.Format); err != nil {
					return nil, err
				}
			}
			cfg.Targets = targets
			env.Observer = scratchCopies{scratch: archiveDir, maildir: cfg.Format == archive.FormatMaildir}
			return archive.New(env, cfg)
		}
	}
	return out
}

// archiveScratch is the scratch directory archive filters write into
// without --archive, and what in it stands for things in the way of the
// daemon's copies (see mirrorObstacle).
type archiveScratch struct {
	dir string
	mu  sync.Mutex
	// obstacles maps the scratch path of each obstacle to whether it is
	// a directory.
	obstacles map[string]bool
	// written lists the paths of the copies made since copies was last
	// called, as the daemon would have written them.
	written []string
}

// mirrorObstacle puts at scratch, the scratch path of the archive target
// real (made absolute), what at real fails the daemon's copy: a directory
// where an mbox goes, a file where a maildir goes. The copy in the
// scratch directory then fails as the daemon's does, and the report shows
// the failure and the verdict on_failure gives, not a copy the daemon
// cannot write. A target with placeholders is left alone: its path
// depends on the message.
func (a *archiveScratch) mirrorObstacle(real, scratch, format string) error {
	if strings.ContainsRune(real, '{') {
		return nil
	}
	fi, err := os.Stat(real)
	if err != nil {
		// Missing: the archive makes it, here as there.
		return nil
	}
	maildir := format == archive.FormatMaildir
	if fi.IsDir() == maildir {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.obstacles == nil {
		a.obstacles = map[string]bool{}
	}
	a.obstacles[scratch] = fi.IsDir()
	return a.makeObstacle(scratch, fi.IsDir())
}

func (a *archiveScratch) makeObstacle(p string, dir bool) error {
	var err error
	if dir {
		err = os.MkdirAll(p, 0o700)
	} else if err = os.MkdirAll(filepath.Dir(p), 0o700); err == nil {
		err = os.WriteFile(p, nil, 0o600)
	}
	if err != nil {
		return fmt.Errorf("archive scratch directory: %w", err)
	}
	return nil
}

// dryRunBoltStore returns the bbolt store a dry run reads in place of the
// one at db: db itself where it holds a store, else an empty store made
// in the scratch directory. A store that does not exist yet, or an empty
// file (made with install or touch for its owner and mode), is one the
// daemon would make or fill in as an empty store, which scores as this
// one does; made here, it would belong to whoever runs the test (root,
// before the first start) and could not be opened by the daemon's user,
// and a read-only open could not read it at all. A missing directory is
// left for the open to refuse, as the daemon does.
func dryRunBoltStore(db, scratch, name string) (string, error) {
	fi, err := os.Lstat(db)
	missing := errors.Is(err, fs.ErrNotExist)
	if err == nil && fi.Mode().Type() == fs.ModeSymlink {
		fi, err = os.Stat(db)
	}
	empty := err == nil && fi.Mode().IsRegular() && fi.Size() == 0
	if !missing && !empty {
		return db, nil
	}
	if fi, err := os.Stat(filepath.Dir(db)); err != nil || !fi.IsDir() {
		return db, nil
	}
	if name == "" {
		name = "bayes"
	}
	path := filepath.Join(scratch, "bayes-"+strings.ReplaceAll(name, "/", "_")+".db")
	st, err := classifier.Open(path)
	if err != nil {
		return "", fmt.Errorf("empty store in the scratch directory: %w", err)
	}
	if err := st.Close(); err != nil {
		return "", fmt.Errorf("empty store in the scratch directory: %w", err)
	}
	return path, nil
}

// autolearnWouldLearn collects what bayes filters would have auto-learned
// (see bayes.WouldLearnObserver), so that the report can say so: the dry
// run learns nothing, and the header lacks the daemon's autolearn= note.
type autolearnWouldLearn struct {
	mu      sync.Mutex
	learned []testAutolearn
}

func (a *autolearnWouldLearn) BayesWouldAutolearn(filter, class, learnedAs string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.learned = append(a.learned, testAutolearn{Filter: filter, Class: class, LearnedAs: learnedAs})
}

// take returns what was collected since the last call, for one message.
func (a *autolearnWouldLearn) take() []testAutolearn {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.learned
	a.learned = nil
	return l
}

// copyIfExists copies the file at src to dst; a missing src is no error.
func copyIfExists(src, dst string) error {
	data, err := os.ReadFile(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("scratch copy of %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return fmt.Errorf("scratch copy of %s: %w", src, err)
	}
	return nil
}

// archiveWrites collects the paths of the copies that archive filters
// write for real (sluice test --archive), so that the report can show the
// administrator where to find them.
type archiveWrites struct {
	mu    sync.Mutex
	paths []string
}

func (a *archiveWrites) ArchiveCopyWritten(filter, target, path string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paths = append(a.paths, path)
}

// take returns the paths written since the last call, for one message.
func (a *archiveWrites) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.paths
	a.paths = nil
	return p
}

// scratchCopies is told of each copy that an archive filter writes into
// the scratch directory, and records the path the daemon would have
// written: the mbox file, or the maildir (as a directory, with a final
// "/") for the message's file in its new/. The filter's format says
// which: a directory named new or cur may as well hold an mbox.
type scratchCopies struct {
	scratch *archiveScratch
	maildir bool
}

func (s scratchCopies) ArchiveCopyWritten(filter, target, path string) {
	real := strings.TrimPrefix(path, s.scratch.dir)
	if s.maildir {
		real = filepath.Dir(filepath.Dir(real)) + string(filepath.Separator)
	}
	a := s.scratch
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.written, real) {
		a.written = append(a.written, real)
	}
}

// copies returns the paths the archive copies written under the scratch
// directory during one message would have had (see scratchCopies), and
// empties it for the next, but for the obstacles, made again.
func (a *archiveScratch) copies() ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	dir := a.dir
	paths := a.written
	a.written = nil
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("archive scratch directory: %w", err)
	}
	for p, isDir := range a.obstacles {
		if err := a.makeObstacle(p, isDir); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// testReport is what sluice test prints for one message; its JSON form is
// one line of --format json.
type testReport struct {
	Message string `json:"message"`
	// Error is set when the message could not be tested.
	Error     string         `json:"error,omitempty"`
	Envelope  *testEnvelope  `json:"envelope,omitempty"`
	Decisions []testDecision `json:"decisions,omitempty"`
	// Verdict is accept, quarantine, discard, tempfail or reject.
	Verdict    string       `json:"verdict,omitempty"`
	Stage      string       `json:"stage,omitempty"`
	Filter     string       `json:"filter,omitempty"`
	Reason     string       `json:"reason,omitempty"`
	Reply      string       `json:"reply,omitempty"`
	Quarantine string       `json:"quarantine,omitempty"`
	Refused    []testRefuse `json:"refused_rcpts,omitempty"`
	Edits      []testEdit   `json:"edits,omitempty"`
	// HeadersSent and BodySent: whether the MTA hands them over with
	// this pipeline (only when a filter reads them). Set for a message
	// tested, even when false; a report of a message that could not be
	// tested has neither, as it says nothing of the pipeline.
	HeadersSent  *bool    `json:"headers_sent,omitempty"`
	BodySent     *bool    `json:"body_sent,omitempty"`
	WouldArchive []string `json:"would_archive,omitempty"`
	// WouldAutolearn: what bayes filters would have auto-learned (the
	// dry run learns nothing), and whether the store has it already.
	WouldAutolearn []testAutolearn `json:"would_autolearn,omitempty"`
	// Archived: the copies --archive wrote (an mbox, or the message's
	// file in a maildir's new/).
	Archived []string `json:"archived,omitempty"`
}

type testEnvelope struct {
	ClientIP   string            `json:"client_ip,omitempty"`
	ClientName string            `json:"client_name"`
	Helo       string            `json:"helo"`
	From       string            `json:"from"`
	Rcpts      []string          `json:"rcpts"`
	QueueID    string            `json:"queue_id,omitempty"`
	Macros     map[string]string `json:"macros,omitempty"`
}

type testDecision struct {
	Filter string `json:"filter"`
	Stage  string `json:"stage"`
	// Action is the verdict the pipeline used: for a failed call, the
	// one its failure policy gave.
	Action     string     `json:"action"`
	Reason     string     `json:"reason,omitempty"`
	Reply      string     `json:"reply,omitempty"`
	Edits      []testEdit `json:"edits,omitempty"`
	DurationMS float64    `json:"duration_ms"`
	Failure    string     `json:"failure,omitempty"`
	Error      string     `json:"error,omitempty"`
}

type testAutolearn struct {
	Filter string `json:"filter"`
	// Class is spam or ham.
	Class string `json:"class"`
	// LearnedAs is the class the store has learned the message in
	// already, spam or ham: then the daemon changes nothing (it never
	// moves a message to the other class). Empty if it has not.
	LearnedAs string `json:"learned_as,omitempty"`
}

type testEdit struct {
	// Kind is add, insert, change or delete.
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	// Index: insert position, or which field of that name (from 1).
	Index int `json:"index,omitempty"`
}

type testRefuse struct {
	Rcpt   string `json:"rcpt"`
	Action string `json:"action"`
	Reply  string `json:"reply"`
	Filter string `json:"filter"`
	Reason string `json:"reason,omitempty"`
}

func newTestReport(name string, tx milter.Transaction, res milter.Result) testReport {
	r := testReport{
		Message: name,
		Envelope: &testEnvelope{ClientName: tx.Conn.Hostname, Helo: tx.Conn.Helo, From: tx.From.Addr,
			QueueID: tx.QueueID, Macros: tx.Conn.Macros},
		Verdict: res.Action.String(), Stage: res.Stage.String(), Filter: res.Filter, Reason: res.Reason,
		Quarantine: res.Quarantine, HeadersSent: &res.HeadersSent, BodySent: &res.BodySent,
	}
	if tx.Conn.Addr.IsValid() {
		r.Envelope.ClientIP = tx.Conn.Addr.String()
	}
	for _, a := range tx.Rcpts {
		r.Envelope.Rcpts = append(r.Envelope.Rcpts, a.Addr)
	}
	if res.Reply != nil {
		r.Reply = res.Reply.Sent().String()
	}
	for _, d := range res.Decisions {
		td := testDecision{Filter: d.Filter, Stage: d.Stage.String(), Action: d.Verdict.Action.String(), Reason: d.Verdict.Reason,
			Edits: testEdits(d.Verdict.Edits), DurationMS: float64(d.Duration.Microseconds()) / 1000, Failure: d.Failure}
		if d.Err != nil {
			td.Error = d.Err.Error()
		}
		if a := d.Verdict.Action; a == filters.Reject || a == filters.Tempfail {
			reply := filters.DefaultReply(a)
			if d.Verdict.Reply != nil {
				reply = *d.Verdict.Reply
			}
			td.Reply = reply.Sent().String()
		}
		r.Decisions = append(r.Decisions, td)
	}
	for _, rf := range res.Refused {
		r.Refused = append(r.Refused, testRefuse{Rcpt: rf.Rcpt, Action: rf.Action.String(), Reply: rf.Reply.Sent().String(), Filter: rf.Filter, Reason: rf.Reason})
	}
	r.Edits = testEdits(res.Edits)
	return r
}

func testEdits(es []filters.HeaderEdit) []testEdit {
	var out []testEdit
	for _, e := range es {
		te := testEdit{Kind: e.Kind.String(), Name: e.Name, Value: e.Value}
		if e.Kind != filters.AddHeader {
			te.Index = e.Index
		}
		out = append(out, te)
	}
	return out
}

// writeText prints the report for a person.
func (r testReport) writeText(w io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("message:  %s\n", printable(r.Message))
	if r.Error != "" {
		p("error:    %s\n", oneLine(r.Error))
		return nil
	}
	e := r.Envelope
	client := e.ClientName
	switch {
	case e.ClientIP != "" && e.ClientName == "["+e.ClientIP+"]":
		client += " (no host name)"
	case e.ClientIP != "":
		client += " [" + e.ClientIP + "]"
	}
	p("client:   %s, HELO %s\n", printable(client), printable(e.Helo))
	p("from:     <%s>\n", printable(e.From))
	p("to:       <%s>\n", printable(strings.Join(e.Rcpts, ">, <")))
	if r.HeadersSent != nil && !*r.HeadersSent {
		p("          (no filter reads the header: the MTA sends no header fields)\n")
	}
	p("filters:\n")
	if len(r.Decisions) == 0 {
		p("  (no filter ran)\n")
	}
	for _, d := range r.Decisions {
		p("  %-8s %-12s %-10s %8.3fms", d.Stage, d.Filter, d.Action, d.DurationMS)
		if d.Failure != "" {
			p("  FAILED (%s): %s", d.Failure, oneLine(d.Error))
		}
		if d.Reply != "" {
			p("  %s", d.Reply)
		}
		if d.Reason != "" {
			p("  -- %s", oneLine(d.Reason))
		}
		p("\n")
		for _, ed := range d.Edits {
			p("      %s\n", ed.text())
		}
	}
	for _, rf := range r.Refused {
		p("refused:  <%s> %s by %s: %s", printable(rf.Rcpt), rf.Action, rf.Filter, printable(rf.Reply))
		if rf.Reason != "" {
			p(" -- %s", oneLine(rf.Reason))
		}
		p("\n")
	}
	if len(r.Edits) > 0 {
		p("header edits sent to the MTA:\n")
		for _, ed := range r.Edits {
			p("  %s\n", ed.text())
		}
	}
	for _, a := range r.WouldArchive {
		if strings.HasSuffix(a, string(filepath.Separator)) {
			a += " (maildir)"
		}
		p("archive:  would write %s (dry run: not written; --archive writes it)\n", printable(a))
	}
	for _, a := range r.Archived {
		p("archive:  wrote %s\n", printable(a))
	}
	for _, a := range r.WouldAutolearn {
		p("autolearn: %s\n", a.text())
	}
	verdict := r.Verdict
	if r.Filter != "" {
		verdict += " by " + r.Filter
	}
	p("verdict:  %s at %s\n", verdict, r.Stage)
	if r.Reason != "" {
		p("reason:   %s\n", oneLine(r.Reason))
	}
	switch r.Verdict {
	case "reject", "tempfail":
		p("reply:    %s\n", printable(r.Reply))
	case "quarantine":
		p("reply:    250 (accepted, then held by the MTA: %s)\n", printable(r.Quarantine))
	case "discard":
		p("reply:    250 (accepted, then dropped)\n")
	default:
		p("reply:    250 (delivered)\n")
	}
	return nil
}

// text says what the daemon's auto-learning does with the message.
func (a testAutolearn) text() string {
	name := printable(a.Filter)
	switch a.LearnedAs {
	case "":
		return fmt.Sprintf("%s would learn it as %s (dry run: not learned, so the header has no autolearn note)", name, a.Class)
	case a.Class:
		return fmt.Sprintf("%s already learned it as %s: nothing to learn (the daemon adds no autolearn note either)", name, a.Class)
	}
	return fmt.Sprintf("%s already learned it as %s: not moved to %s, auto-learning never moves a message (the daemon adds no autolearn note either)",
		name, a.LearnedAs, a.Class)
}

func (e testEdit) text() string {
	switch e.Kind {
	case "add":
		return fmt.Sprintf("add     %s: %s", e.Name, oneLine(e.Value))
	case "insert":
		return fmt.Sprintf("insert  %s: %s (at position %d)", e.Name, oneLine(e.Value), e.Index)
	case "change":
		return fmt.Sprintf("change  %s #%d to: %s", e.Name, e.Index, oneLine(e.Value))
	}
	return fmt.Sprintf("delete  %s #%d", e.Name, e.Index)
}

// oneLine shows folding and stray line breaks of a value visibly, and
// escapes the other control characters: values and reasons carry the
// sender's text to the administrator's terminal.
var oneLineReplacer = strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`)

func oneLine(s string) string { return printable(oneLineReplacer.Replace(s)) }
