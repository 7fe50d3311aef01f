package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
	"github.com/sluice-mail/sluice/filters/archive"
)

// archiveType is the config type of the archive filter.
const archiveType = "archive"

func (c *cli) newArchiveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Find and move messages in the mbox archives of the archive filter",
	}
	cmd.AddCommand(c.newArchiveShowCmd(), c.newArchiveMoveCmd())
	return cmd
}

// selectFlags are the --message-id and --queue-id flags.
type selectFlags struct {
	messageIDs, queueIDs []string
}

func (s *selectFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&s.messageIDs, "message-id", nil, "pick the messages with this Message-ID (repeatable)")
	cmd.Flags().StringArrayVar(&s.queueIDs, "queue-id", nil, "pick the messages with this queue id (repeatable)")
}

func (s *selectFlags) selector() (mailbox.Select, error) {
	sel := mailbox.Select{MessageIDs: s.messageIDs, QueueIDs: s.queueIDs}
	if sel.All() {
		return sel, badUsage(errors.New("give --queue-id or --message-id"))
	}
	return sel, nil
}

func (c *cli) newArchiveShowCmd() *cobra.Command {
	var sf selectFlags
	cmd := &cobra.Command{
		Use:                   "show (--queue-id ID | --message-id ID)... MBOX...",
		DisableFlagsInUseLine: true,
		Short:                 "Print archived messages picked by queue id or Message-ID",
		Long: `Show prints the records of the MBOX files that have one of the queue ids
(the X-Sluice-Queue-ID field the archive writes) or Message-IDs, as they
are stored: an mbox on standard output, which "sluice classify" and
"sluice train" read from standard input. It reads under the locks the
daemon takes to append, so it shows whole records only. On a terminal,
control characters other than tab and line end, and bytes that are not
UTF-8, are shown as escapes (\x1b) instead: a message must not send
escape sequences to the terminal. The exit status is 1 when no message
matched.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := sf.selector()
			if err != nil {
				return err
			}
			if err := notDirectories(args); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			app, err := c.archiveAppender(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			// Piped into classify or train, the records go out byte for
			// byte; on a terminal (root's, often) the escape sequences
			// a sender put in a message would be obeyed, so there they
			// are shown escaped, lines and tabs kept.
			onTerminal := isTerminal(cmd.OutOrStdout())
			w := bufio.NewWriter(cmd.OutOrStdout())
			n := 0
			for _, path := range args {
				err := readArchiveLocked(ctx, app, path, cmd.ErrOrStderr(), func(r archive.RecordAt) error {
					if !sel.Match(r.Head.Message) {
						return nil
					}
					n++
					// From the file to the output: a 50 MB message is
					// not held in memory to be shown.
					var out io.Writer = w
					var esc *escapeWriter
					if onTerminal {
						esc = &escapeWriter{w: w, keep: "\t\n"}
						out = esc
					}
					if _, err := io.Copy(out, r.Raw()); err != nil {
						return err
					}
					if esc != nil {
						esc.Flush()
					}
					return w.WriteByte('\n')
				})
				if err != nil {
					// What is buffered is whole records: out with them,
					// or the output ends inside a record, and a "sluice
					// train" it is piped into learns the part as a
					// message.
					return errors.Join(err, w.Flush())
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("no message with %s in %s", describeSelect(sel), strings.Join(args, ", "))
			}
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func (c *cli) newArchiveMoveCmd() *cobra.Command {
	var (
		sf selectFlags
		to string
	)
	cmd := &cobra.Command{
		Use:                   "move (--queue-id ID | --message-id ID)... --to VERDICT|PATH MBOX...",
		DisableFlagsInUseLine: true,
		Short:                 "Move archived messages to the archive of another verdict",
		Long: `Move takes the records with one of the queue ids or Message-IDs out of
the MBOX files and appends them to another mbox: --to names a verdict
(spam, ham, unsure, reject ...), resolved through the targets of the first
archive filter of the configuration as the filter would have chosen the
file for that verdict, or a path (anything with a "/").

Each record is appended to its new mbox first, under the same locks the
daemon takes, and only then removed from the old one, so a failure
half-way leaves a copy in both rather than in neither. When an append
fails, the records appended before it are still removed from the old
mbox, so that running move again does not copy them twice. The daemon may
keep archiving meanwhile, but its copies into an mbox that move is
rewriting wait for the rewrite (about 4 s per GB), and fail after the
filter's lock_timeout (see docs/archive.md). Move does not train: pair it with "sluice train"
(see docs/training.md). The exit status is 1 when no message matched.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := sf.selector()
			if err != nil {
				return err
			}
			if to == "" {
				return badUsage(errors.New("--to is required"))
			}
			if !strings.Contains(to, "/") && !slices.Contains(archive.Verdicts, to) {
				// Checked before anything is read: found only when a
				// record matched, it exited as a failure to move.
				return badUsage(fmt.Errorf("--to %s: neither a verdict (%s) nor an mbox path (with a /)", to, strings.Join(archive.Verdicts, ", ")))
			}
			// All of them before the first move: an error half-way
			// leaves the administrator to find out what was moved.
			if err := notDirectories(args); err != nil {
				return err
			}
			dest, err := c.archiveDestination(to)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			app, err := c.archiveAppender(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			total := 0
			// A source holding only records already in their destination
			// is no error by itself: a move over every archive
			// (archive/*.mbox) reads the destination too, and finds
			// there what it has just moved. Only a move that moved
			// nothing says so.
			// Its warning of a read without the dot-lock is left to the
			// move, which fails without it.
			if err := oneRecordPerQueueID(ctx, app, args, sel, io.Discard); err != nil {
				return err
			}
			var already error
			for _, src := range args {
				n, err := moveRecords(ctx, cmd.OutOrStdout(), app, src, sel, dest)
				var ai *alreadyInError
				if errors.As(err, &ai) {
					if already == nil {
						already = err
					}
					continue
				}
				if err != nil {
					return err
				}
				total += n
			}
			if total == 0 && already != nil {
				return already
			}
			if total == 0 {
				return fmt.Errorf("no message with %s in %s", describeSelect(sel), strings.Join(args, ", "))
			}
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&to, "to", "", "the verdict (or mbox `PATH`) to move the messages to")
	return cmd
}

// notDirectories returns an error naming the first of paths that is a
// directory: a maildir target of the archive filter, which show and move
// do not read. Other errors (a missing file) are left to the read, which
// names them.
func notDirectories(paths []string) error {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return fmt.Errorf("%s is a directory, not an mbox: show and move read mbox archives; a maildir holds a file per message (find them with grep -l, move them with mv)", p)
		}
	}
	return nil
}

// archiveAppender returns the appender show and move read and write
// with: below the top directories of the configuration's archive filters
// (see archive.Appender.SetRoots), a directory that is a symbolic link
// is followed only if root or the user running the command owns it. The
// daemon's user owns those directories, and a link it put there would
// have root's move create or append to a file where the link points
// (/etc, /root), or root's show print one from there.
//
// A user other than root who may read the archive but not the
// configuration (a group given read access to the archive) still gets
// show, with a warning: the links such a user follows lead only where
// that user may go anyway.
func (c *cli) archiveAppender(warn io.Writer) (*archive.Appender, error) {
	app := archive.NewAppender(mboxLockTimeout, nil)
	cfg, err := c.loadConfig("")
	if err != nil && errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		fmt.Fprintf(warn, "sluice: warning: the configuration cannot be read (%v): symbolic links among the archive's directories are followed whoever owns them\n", err)
		return app, nil
	}
	if err != nil {
		return nil, err
	}
	configs, err := archiveConfigs(cfg)
	if err != nil {
		return nil, err
	}
	var roots []string
	for _, ac := range configs {
		r, err := ac.Roots(cfg.StateDir)
		if err != nil {
			return nil, fmt.Errorf("%s: the archive filter: %w", cfg.File, err)
		}
		roots = append(roots, r...)
	}
	app.SetRoots(roots...)
	return app, nil
}

// archiveConfigs returns the options of the configuration's archive
// filters, in their order, read strictly as the daemon reads them.
func archiveConfigs(cfg *config.Config) ([]archive.Config, error) {
	var out []archive.Config
	for i, f := range cfg.Filters {
		if f.Type != archiveType {
			continue
		}
		var ac archive.Config
		if f.Options.Kind != 0 {
			text, err := yaml.Marshal(&f.Options)
			if err == nil {
				dec := yaml.NewDecoder(bytes.NewReader(text))
				dec.KnownFields(true)
				err = dec.Decode(&ac)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: filters[%d].options: %w", cfg.File, i, err)
			}
		}
		out = append(out, ac)
	}
	return out, nil
}

// archiveDestination returns how --to picks the mbox for a record.
func (c *cli) archiveDestination(to string) (func(archive.Record) (string, error), error) {
	if strings.Contains(to, "/") {
		return func(archive.Record) (string, error) { return to, nil }, nil
	}
	cfg, err := c.loadConfig("")
	if err != nil {
		return nil, err
	}
	configs, err := archiveConfigs(cfg)
	if err != nil {
		return nil, err
	}
	for _, ac := range configs {
		stateDir := cfg.StateDir
		return func(r archive.Record) (string, error) {
			p, err := ac.TargetPath(stateDir, to, r)
			if err != nil {
				return "", fmt.Errorf("--to %s: %w", to, err)
			}
			return p, nil
		}, nil
	}
	name := "the configuration " + cfg.File
	if cfg.File == "" {
		name = "the built-in configuration"
	}
	return nil, fmt.Errorf("--to %s: %s has no archive filter; give a path instead", to, name)
}

// oneRecordPerQueueID checks, before anything is moved, that each queue
// id of sel picks one message in the mboxes at paths. Postfix's short
// queue ids (its default, enable_long_queue_ids = no) are made of the
// microseconds and the queue file's inode number, and are given again
// once both come round: an archive kept for months holds several
// messages under one id, and moving all that the id picks would file an
// unrelated message (an old spam) with the other verdict's. The copies
// of one message, one per recipient with a {rcpt} template, have the
// same "From " line (its sender and the time it was archived) and
// Message-ID, and count as one.
func oneRecordPerQueueID(ctx context.Context, app *archive.Appender, paths []string, sel mailbox.Select, warn io.Writer) error {
	if len(sel.QueueIDs) == 0 {
		return nil
	}
	type first struct{ name, identity string }
	seen := map[string]first{}
	var errs []error
	for _, path := range paths {
		n := 0
		err := readArchiveLocked(ctx, app, path, warn, func(r archive.RecordAt) error {
			n++
			qid := strings.TrimSpace(r.Head.QueueID())
			picked := false
			for _, want := range sel.QueueIDs {
				picked = picked || qid != "" && qid == strings.TrimSpace(want)
			}
			if !picked {
				return nil
			}
			name := fmt.Sprintf("%s#%d", path, n)
			identity := r.Head.From() + "\n" + strings.Join(archive.HeaderValues(r.Head.Message, "Message-ID"), " ")
			f, ok := seen[qid]
			switch {
			case !ok:
				seen[qid] = first{name: name, identity: identity}
			case f.identity != identity && f.name != "":
				errs = append(errs, fmt.Errorf("queue id %s picks different messages: %s and %s "+
					"(Postfix gives a short queue id again after a while); pick the one meant with --message-id, "+
					"or see them with sluice archive show --queue-id %s",
					printable(qid), printable(f.name), printable(name), printable(qid)))
				// One error per id is enough to tell.
				seen[qid] = first{identity: f.identity}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing moved: %w", errors.Join(errs...))
	}
	return nil
}

// alreadyInError is moveRecords' error when every record it picked is
// already in its destination.
type alreadyInError struct{ src, dest string }

func (e *alreadyInError) Error() string {
	return fmt.Sprintf("%s: the message is already in %s", e.src, e.dest)
}

// moveRecords appends the picked records of src to their destinations and
// then removes them from src. It reports each move on standard output. A
// record whose destination is src stays; when all are such records, the
// error is an *alreadyInError. Records are copied from file to file, not
// held in memory: the archive may hold 50 MB messages.
func moveRecords(ctx context.Context, out io.Writer, app *archive.Appender, src string, sel mailbox.Select, dest func(archive.Record) (string, error)) (int, error) {
	type picked struct {
		rec  archive.RecordAt
		dest string
	}
	var (
		moves []picked
		// appendErr is the append that stopped the copying.
		appendErr error
		noDotLock error
	)
	// Whole records only, as under the append locks: a record half
	// written by a daemon that died or is appending now must not be
	// copied. The records are read from the file as it was then; the
	// daemon may append meanwhile, and an append adds only beyond it.
	err := app.ReadLockedAt(ctx, src, func(err error) { noDotLock = err }, func(r *io.SectionReader) error {
		if noDotLock != nil {
			// Without the dot-lock the records could not be removed
			// after they were copied.
			return fmt.Errorf("archive %s: %w", src, noDotLock)
		}
		var already *alreadyInError
		err := archive.ScanMbox(r, r.Size(), func(rec archive.RecordAt) error {
			if !sel.Match(rec.Head.Message) {
				return nil
			}
			d, err := dest(rec.Head)
			if err != nil {
				return err
			}
			if sameFile(d, src) {
				if already == nil {
					already = &alreadyInError{src: src, dest: d}
				}
				return nil
			}
			moves = append(moves, picked{rec, d})
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if len(moves) == 0 && already != nil {
			return already
		}
		// A failed append (a full disk) stops the move, but the records
		// appended before it are still removed from src: left in both,
		// they would be appended a second time when the move is run
		// again.
		for i, m := range moves {
			if _, err := app.AppendMbox(ctx, m.dest, func(w *bufio.Writer) error {
				return copyRecord(w, m.rec)
			}); err != nil {
				appendErr = err
				moves = moves[:i]
				break
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(moves) == 0 {
		return 0, appendErr
	}
	// A record is identified by its exact bytes, the ones appended above,
	// through their length and SHA-256.
	type identity struct {
		size int64
		sum  [sha256.Size]byte
	}
	moved := map[identity]int{}
	for _, m := range moves {
		moved[identity{m.rec.Size, m.rec.Sum}]++
	}
	n, err := app.RemoveRecords(ctx, src, func(r archive.RecordAt) bool {
		if id := (identity{r.Size, r.Sum}); moved[id] > 0 {
			moved[id]--
			return true
		}
		return false
	})
	if err != nil {
		return 0, errors.Join(appendErr, fmt.Errorf("copied to the new archive, but removing from %s failed: %w", src, err))
	}
	if n != len(moves) {
		// Another process removed some of them meanwhile.
		return n, errors.Join(appendErr, fmt.Errorf("copied %d messages, but only %d were still in %s to remove", len(moves), n, src))
	}
	for _, m := range moves {
		id := m.rec.Head.QueueID()
		if id == "" {
			id = strings.Join(archive.HeaderValues(m.rec.Head.Message, "Message-ID"), " ")
		}
		// The id is the sender's text, shown on the administrator's
		// terminal.
		fmt.Fprintf(out, "moved %s from %s to %s\n", printable(id), printable(src), printable(m.dest))
	}
	return n, appendErr
}

// copyRecord writes the bytes of rec to w, and fails, for the append to
// be cut back, if they are not the ones read when rec was found: a
// program that rewrites an mbox in place (an IMAP server expunging) may
// have changed them since.
func copyRecord(w io.Writer, rec archive.RecordAt) error {
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, sum), rec.Raw()); err != nil {
		return err
	}
	if [sha256.Size]byte(sum.Sum(nil)) != rec.Sum {
		return errors.New("the record changed in the old mbox while it was copied")
	}
	return nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// mboxLockTimeout is how long a command waits for the locks of an mbox: an
// append holds them for milliseconds, so a longer wait means a stuck
// holder, which the error then names.
const mboxLockTimeout = 30 * time.Second

// readArchiveLocked finds the records of the mbox at path under the locks
// a reader takes (see archive.Appender.ReadLocked), so that neither a
// record the daemon is appending nor the half record of a daemon that
// died while appending is read: printed, it would be trained on as a
// whole message. A user who may only read the archive cannot make its
// dot-lock, and is told that a writer that takes only the dot-lock is not
// kept out.
func readArchiveLocked(ctx context.Context, app *archive.Appender, path string, warn io.Writer, fn func(archive.RecordAt) error) error {
	return app.ReadLockedAt(ctx, path, func(err error) {
		fmt.Fprintf(warn, "sluice: warning: reading %s without its dot-lock (%v): a record appended now by a program that takes only the dot-lock may show cut short\n", path, err)
	}, func(r *io.SectionReader) error {
		if err := archive.ScanMbox(r, r.Size(), fn); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	})
}

// describeSelect says what --message-id and --queue-id asked for.
func describeSelect(sel mailbox.Select) string {
	var parts []string
	for _, id := range sel.MessageIDs {
		parts = append(parts, "Message-ID "+id)
	}
	for _, id := range sel.QueueIDs {
		parts = append(parts, "queue id "+id)
	}
	return strings.Join(parts, " or ")
}
