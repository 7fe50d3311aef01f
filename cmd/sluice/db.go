package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// bayesType is the filter type whose options name the store.
const bayesType = "bayes"

// storeFlags are the flags every store command shares.
type storeFlags struct {
	db string
}

// add defines --db on cmd, for its subcommands too when persistent.
func (f *storeFlags) add(cmd *cobra.Command, persistent bool) {
	flags := cmd.Flags()
	if persistent {
		flags = cmd.PersistentFlags()
	}
	flags.Var((*dbFlag)(&f.db), "db", "token store `FILE` or redis://HOST:PORT[/DB][?prefix=...] URL (default: the store of the first bayes filter of the config, else <state_dir>/bayes.db)")
}

// dbFlag is the value of --db. An empty one is refused: "" stands for
// "not given", the configuration's store, and "--db $NEWDB" with the
// variable unset would import into, prune or train the store the daemon
// uses instead of the one meant.
type dbFlag string

func (d *dbFlag) Set(s string) error {
	if s == "" {
		return errors.New("--db is empty (a variable not set?): give a file or a redis:// URL, or leave --db out for the configuration's store")
	}
	*d = dbFlag(s)
	return nil
}

func (d *dbFlag) String() string { return string(*d) }

func (d *dbFlag) Type() string { return "string" }

// bayesSetup is what the CLI takes from the configuration: the store
// (a bbolt file or Redis) and the options of the first bayes filter, so
// that training and classifying from the command line tokenise and score
// exactly as the daemon does.
type bayesSetup struct {
	db       string // the store's name for messages: path or redis:// URL
	cfg      bayes.Config
	stateDir string
}

// bayesSetup reads the config (--config) for the store and options.
// dbFlag, when set, overrides the store: a file name, or a redis:// URL
// (see bayes.ParseRedisURL).
func (c *cli) bayesSetup(dbFlag string) (bayesSetup, error) {
	cfg, err := c.loadConfig("")
	if err != nil {
		return bayesSetup{}, err
	}
	var s bayesSetup
	for i, f := range cfg.Filters {
		if f.Type != bayesType {
			continue
		}
		// Strictly, as the daemon reads them: a misspelt option must not
		// silently train with other limits than the daemon's.
		if err := cfg.DecodeOptions(i, &s.cfg); err != nil {
			return bayesSetup{}, err
		}
		break
	}
	switch {
	case bayes.IsRedisURL(dbFlag):
		r, err := bayes.ParseRedisURL(dbFlag)
		if err != nil {
			return bayesSetup{}, badUsage(fmt.Errorf("--db: %w", err))
		}
		s.cfg.Store, s.cfg.Redis, s.cfg.DB = bayes.StoreRedis, r, ""
	case dbFlag != "":
		s.cfg.Store, s.cfg.Redis, s.cfg.DB = bayes.StoreBolt, bayes.RedisConfig{}, dbFlag
	}
	s.stateDir = cfg.StateDir
	s.db = s.cfg.StoreName(cfg.StateDir)
	return s, nil
}

// storeAccess is what a command does with the store.
type storeAccess int

const (
	// storeWrite: the command writes, creating the store where there is
	// none (import, train).
	storeWrite storeAccess = iota
	// storeWriteExisting: the command writes a store that must exist
	// (prune, refit, train --unlearn).
	storeWriteExisting
	// storeRead: the command only reads a store that must exist, and
	// opens it read-only, so that a user who may read the store but not
	// write it, its lock file or its directory can run it.
	storeRead
)

// openStore opens the store. A command that does not create the store
// must not make an empty one where the user mistyped a path or a key
// prefix: access says what the command does.
func (s bayesSetup) openStore(access storeAccess) (classifier.Store, error) {
	existing := access != storeWrite
	noStore := fmt.Errorf("no token store at %s (train one with sluice train, or give --db)", s.db)
	if existing && s.cfg.Store != bayes.StoreRedis {
		fi, err := os.Stat(s.db)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, noStore
			}
			return nil, err
		}
		// An empty file (touched, or made with "install /dev/null" for its
		// owner and mode) holds no store yet: opening it would write one,
		// and classify would answer unsure for want of training.
		if fi.Mode().IsRegular() && fi.Size() == 0 {
			return nil, noStore
		}
	}
	var st classifier.Store
	var err error
	if access == storeRead {
		st, err = s.cfg.OpenStoreReadOnly(s.stateDir)
	} else {
		st, err = s.cfg.OpenStore(s.stateDir, nil, nil)
	}
	if err != nil {
		return nil, err
	}
	if ex, ok := st.(interface {
		Exists(context.Context) (bool, error)
	}); ok && existing {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		found, err := ex.Exists(ctx)
		cancel()
		if err == nil && !found {
			err = noStore
		}
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

func (c *cli) newDBCmd() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Inspect and maintain the Bayes token store",
		Long: `db works on the token store of the bayes filter: the file or the Redis
URL (redis://HOST:PORT[/DB][?prefix=NAME]) named by --db, else the store of
the first bayes filter of the configuration, else <state_dir>/bayes.db. It
is safe while the daemon runs. See docs/training.md and docs/scaling.md.`,
	}
	sf.add(cmd, true)
	cmd.AddCommand(c.newDBStatsCmd(&sf), c.newDBDumpCmd(&sf), c.newDBPruneCmd(&sf), c.newDBExportCmd(&sf), c.newDBImportCmd(&sf), c.newDBRefitCmd(&sf))
	return cmd
}

// withStore runs fn on the store named by the flags and closes it.
func (c *cli) withStore(sf *storeFlags, access storeAccess, fn func(ctx context.Context, setup bayesSetup, st classifier.Store) error) error {
	setup, err := c.bayesSetup(sf.db)
	if err != nil {
		return err
	}
	st, err := setup.openStore(access)
	if err != nil {
		return err
	}
	err = fn(context.Background(), setup, st)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", setup.db, cerr)
	}
	return err
}

func (c *cli) newDBStatsCmd(sf *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Print the size of the token store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(sf, storeRead, func(ctx context.Context, setup bayesSetup, st classifier.Store) error {
				s, err := st.Stats(ctx)
				if err != nil {
					return err
				}
				dialect, err := st.Meta(ctx, classifier.MetaDialect)
				if err != nil {
					return err
				}
				if dialect == "" {
					dialect = string(classifier.DialectSluice)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "store:     %s\n", setup.db)
				fmt.Fprintf(w, "dialect:   %s\n", dialect)
				fmt.Fprintf(w, "messages:  %d spam, %d ham\n", s.Spam, s.Ham)
				fmt.Fprintf(w, "tokens:    %d (%d seen in one message only)\n", s.Tokens, s.Singular)
				fmt.Fprintf(w, "digests:   %d learned messages remembered\n", s.Digests)
				fmt.Fprintf(w, "features:  %d of them keep their n-gram features\n", s.Features)
				m, id, err := classifier.StoredModel(ctx, st)
				switch {
				case err != nil:
					fmt.Fprintf(w, "ngram:     unreadable: %v\n", err)
				case m == nil:
					fmt.Fprintln(w, "ngram:     no model")
				default:
					fmt.Fprintf(w, "ngram:     model %s fitted on %d spam and %d ham\n", id, m.Spam, m.Ham)
				}
				fmt.Fprintf(w, "size:      %d bytes\n", s.Bytes)
				if s.Oldest != 0 {
					fmt.Fprintf(w, "last seen: %s to %s\n", dateString(s.Oldest), dateString(s.Newest))
				}
				// A store left half imported counts part of a word list:
				// its verdicts are off, and importing again is refused.
				im, err := classifier.IncompleteImport(ctx, st)
				switch {
				case err != nil:
					return err
				case im.Began == "":
				case im.State() == classifier.ImportRunning:
					fmt.Fprintf(w, "import:    IN PROGRESS: an import begun %s has not finished (%s); its counts are incomplete until it does\n", im.Began, im.Progress())
				default:
					fmt.Fprintf(w, "import:    INCOMPLETE: an import begun %s has not finished (%s); import into a new store\n", im.Began, im.Progress())
				}
				return nil
			})
		},
	}
}

// incompleteImport says, for a store that holds part of an import that
// has not finished, what that means and the way out; "" for any other
// store. running is set when the import is known to be still running:
// the way out is then to wait. Otherwise the import may have been
// stopped, and the same export imported again into the store would count
// the part twice, so the way out is a new store.
func incompleteImport(ctx context.Context, setup bayesSetup, st classifier.Store) (msg string, running bool, err error) {
	m, err := classifier.IncompleteImport(ctx, st)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", setup.db, err)
	}
	if m.Began == "" {
		return "", false, nil
	}
	if m.State() == classifier.ImportRunning {
		return fmt.Sprintf("%s holds part of an import begun %s that has not finished (%s), so its counts are incomplete until it does: wait for it to finish",
			setup.db, m.Began, m.Progress()), true, nil
	}
	return fmt.Sprintf("%s holds part of an import begun %s that has not finished (%s), so its counts are wrong: "+
		"import the export again into a new store (sluice db import --db NEWFILE FILE) and point the bayes filter's db at it", setup.db, m.Began, m.Progress()), false, nil
}

// refuseIncompleteImport returns an error for a command that writes to a
// store holding part of an import that has not finished: whatever it
// counts, deletes or fits follows the counts of a fragment of the word
// list, and is lost if the store has to be replaced by a whole import.
// what names the command's work ("refit the n-gram model"), verb the
// command to run once the import is done or the new store in place
// ("prune"), "" if there is no need.
func refuseIncompleteImport(ctx context.Context, setup bayesSetup, st classifier.Store, what, verb string) error {
	msg, running, err := incompleteImport(ctx, setup, st)
	switch {
	case err != nil:
		return err
	case msg == "":
		return nil
	case verb != "" && running:
		msg += ", then " + verb
	case verb != "":
		msg += ", then " + verb + " that"
	}
	return fmt.Errorf("refusing to %s: %s", what, msg)
}

func dateString(d classifier.Date) string {
	if t := d.Time(); !t.IsZero() {
		return t.Format(time.DateOnly)
	}
	return strconv.Itoa(int(d))
}

func (c *cli) newDBDumpCmd(sf *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "dump",
		Short: "List every token with its counts",
		Long: `Dump lists the tokens of the store, one per line, in byte order:

  TOKEN<TAB>SPAM<TAB>HAM<TAB>LASTSEEN

SPAM and HAM are the numbers of learned spam and ham messages the token
occurred in, LASTSEEN the day it was last learned (YYYYMMDD). A token with
white space or control characters is written as a Go-quoted string. Dump
is for reading and grepping; to move a store, use export and import.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(sf, storeRead, func(ctx context.Context, _ bayesSetup, st classifier.Store) error {
				w := bufio.NewWriter(cmd.OutOrStdout())
				// A bbolt store is read a batch at a time, and printed
				// between reads: a pager left open on the output must
				// not hold training out (see BoltStore.WalkBatched).
				walk := st.Walk
				if bs, ok := st.(*classifier.BoltStore); ok {
					walk = bs.WalkBatched
				}
				err := walk(ctx, func(r classifier.Record) error {
					_, err := fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", dumpToken(r.Token), r.Spam, r.Ham, r.LastSeen)
					return err
				})
				if err != nil {
					return err
				}
				return w.Flush()
			})
		},
	}
}

func dumpToken(t string) string {
	if t == "" || t[0] == '"' || strings.IndexFunc(t, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return strconv.Quote(t)
	}
	return t
}

// maxPruneDays bounds --older-than: about 1900 years, so that the cut-off
// day stays well after year 1 whatever today is.
const maxPruneDays = 700000

func (c *cli) newDBPruneCmd(sf *storeFlags) *cobra.Command {
	var days int
	var maxCount uint32
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete old or rare tokens",
		Long: `Prune deletes tokens to keep the store small. With --older-than, tokens
not learned for that many days go; with --max-count, tokens seen in at
most that many messages go; with both, only tokens that match both (old
and rare), which is the usual way to shrink a store without losing what
it knows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ageSet := cmd.Flags().Changed("older-than")
			countSet := cmd.Flags().Changed("max-count")
			if !ageSet && !countSet {
				return badUsage(errors.New("prune: give --older-than DAYS, --max-count N, or both"))
			}
			// No token is seen in fewer than one message, so 0 names no
			// rare token; taken as no count at all (PruneOptions' zero),
			// --older-than alone would decide, and every old token would
			// go, however often seen.
			if countSet && maxCount == 0 {
				return badUsage(errors.New("prune: --max-count 0: want 1 or more (a token is seen in at least one message)"))
			}
			// An age of zero or less must not be dropped (with --max-count,
			// rare tokens of any age, those learned today too, would go),
			// and a day before year 1 is no Date: it wrapped round to one
			// after every token.
			if ageSet && (days < 1 || days > maxPruneDays) {
				return badUsage(fmt.Errorf("prune: --older-than %d: want 1 to %d days", days, maxPruneDays))
			}
			var opts classifier.PruneOptions
			if days > 0 {
				opts.Before = classifier.DateOf(time.Now().AddDate(0, 0, -days))
			}
			opts.MaxCount = maxCount
			return c.withStore(sf, storeWriteExisting, func(ctx context.Context, setup bayesSetup, st classifier.Store) error {
				if err := refuseIncompleteImport(ctx, setup, st, "prune", "prune"); err != nil {
					return err
				}
				n, err := st.Prune(ctx, opts)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pruned %d tokens from %s\n", n, setup.db)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&days, "older-than", 0, "delete tokens last learned more than `DAYS` days ago")
	cmd.Flags().Uint32Var(&maxCount, "max-count", 0, "delete tokens seen in at most `N` messages (spam+ham)")
	return cmd
}

func (c *cli) newDBExportCmd(sf *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "export [FILE]",
		Short: "Write the whole store as text (standard output without FILE)",
		Long: `Export writes every token, the message counts and the digests of learned
messages in a text format that "sluice db import" reads back losslessly:
the way to move a store to another machine or a later version of sluice.
It holds the store's records of the inputs imported into it, which an
import of the export records too, so that the new store refuses those
inputs as the old one does.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(sf, storeRead, func(ctx context.Context, setup bayesSetup, st classifier.Store) error {
				// An export carries no import mark: imported elsewhere,
				// a fragment of a word list would pass for a whole store.
				if err := refuseIncompleteImport(ctx, setup, st, "export", "export"); err != nil {
					return err
				}
				if len(args) == 0 || args[0] == "-" {
					return classifier.Export(ctx, st, cmd.OutOrStdout())
				}
				// FILE is the output, not the store to export: "sluice db
				// export /var/lib/sluice/bayes.db" would replace the store
				// (the default one) with its text export, which the
				// daemon cannot open.
				if setup.cfg.Store != bayes.StoreRedis && sameFile(args[0], setup.db) {
					return fmt.Errorf("export %s: that is the store being exported (FILE is where the export goes; the store is --db, or the configuration's): give another file, or none for standard output", args[0])
				}
				return exportToFile(args[0], func(w io.Writer) error { return classifier.Export(ctx, st, w) })
			})
		},
	}
}

func (c *cli) newDBImportCmd(sf *storeFlags) *cobra.Command {
	var bogoutil, again bool
	cmd := &cobra.Command{
		Use:   "import [--bogoutil] [--again] [FILE]",
		Short: "Add an export or a bogofilter word list to the store",
		Long: `Import reads FILE (standard input without FILE, or with "-") and adds its
counts to the store, creating the store if needed.

Without --bogoutil, FILE is the output of "sluice db export"; imported
into an empty store it reproduces the exported one exactly. An export of
which the store has learned any message already (the same export
imported twice) is refused: it would count those messages twice.

The store records each input it imports (a fingerprint of its tokens,
counts and message totals), and refuses the same input a second time:
a bogofilter word list, or an export of a store that only imported one,
holds no messages to compare, and would be counted twice. An export
carries the records of the exported store, which the store takes over.
--again imports such an input once more on purpose.

With --bogoutil, FILE is a bogofilter word list dumped by
"bogoutil -d wordlist.db". The store must be empty or already hold an
imported bogofilter list: it is marked as bogofilter's, and sluice then
tokenises and scores as bogofilter does (see docs/training.md). Restart or
reload the daemon after importing into the store it uses.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			name := "standard input"
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in, name = f, args[0]
			}
			// The input is checked before the store is opened: a refused
			// import must not leave an empty store where there was none,
			// which classify would then use instead of reporting that
			// there is no store.
			var checked *classifier.ImportInput
			var err error
			if bogoutil {
				checked, err = classifier.CheckBogoutil(in)
			} else {
				checked, err = classifier.CheckImport(in)
			}
			if err != nil {
				return fmt.Errorf("import %s: %w", name, err)
			}
			defer checked.Close()
			checked.Again = again
			// A store file the import makes must not stay behind if the
			// import fails before it writes (a full disk): see
			// classifier.BoltStore.RemoveIfEmpty.
			setup, err := c.bayesSetup(sf.db)
			if err != nil {
				return err
			}
			made := setup.cfg.Store != bayes.StoreRedis && !exists(setup.db)
			lockMade := made && !exists(setup.db+".lock")
			err = c.withStore(sf, storeWrite, func(ctx context.Context, setup bayesSetup, st classifier.Store) error {
				s, err := checked.Into(ctx, st)
				if bs, ok := st.(*classifier.BoltStore); ok && err != nil && made {
					bs.RemoveIfEmpty(ctx)
				}
				if errors.Is(err, classifier.ErrAlreadyImported) {
					return fmt.Errorf("import %s: %w; to count it a second time on purpose, import it with --again", name, err)
				}
				if errors.Is(err, classifier.ErrDialect) {
					return fmt.Errorf("import %s: %w; import into a new store (--db NEWFILE) and point the bayes filter's db at it", name, err)
				}
				if err != nil {
					return fmt.Errorf("import %s: %w", name, err)
				}
				summary := fmt.Sprintf("imported %d tokens, %d digests, %d spam and %d ham messages into %s",
					s.Tokens, s.Digests, s.Totals.Spam, s.Totals.Ham, setup.db)
				if !bogoutil {
					if err := refitAfterImport(ctx, st, setup); err != nil {
						// The import itself is in the store, whole. An error
						// that reads as a failed import invites running it
						// again, which would count every record twice.
						fmt.Fprintln(cmd.OutOrStdout(), summary)
						return fmt.Errorf("import %s: the import is complete, but the n-gram model was not fitted again: %w; "+
							"do not import %s again, which would count it twice: once the cause is fixed, run sluice db refit --db %s",
							name, err, name, setup.db)
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), summary)
				return nil
			})
			// The lock file goes with the store: removed above, or never
			// made whole (a disk too full for its first pages).
			if err != nil && lockMade && !exists(setup.db) {
				os.Remove(setup.db + ".lock")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&bogoutil, "bogoutil", false, `FILE is a bogofilter word list from "bogoutil -d"`)
	cmd.Flags().BoolVar(&again, "again", false, "import FILE even if the store records it as imported already, counting it a second time")
	return cmd
}

// refitAfterImport fits the n-gram model on the store an import wrote.
func refitAfterImport(ctx context.Context, st classifier.Store, setup bayesSetup) error {
	c, err := bayesClassifier(st, setup)
	if err != nil {
		return err
	}
	_, err = c.Refit(ctx)
	return err
}

// exists reports whether there is a file (of any kind) at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

func (c *cli) newDBRefitCmd(sf *storeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "refit",
		Short: "Fit the n-gram model again on every learned message",
		Long: `Refit fits the n-gram model afresh on the features (byte sequences
and tokens) of every message the store has learned, and stores it.
"sluice train" and "sluice db import" do this themselves; refit is for
messages the daemon learned by itself (the bayes option autolearn),
which only join the model at the next fit. The daemon reads the new
model with the next message it classifies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.withStore(sf, storeWriteExisting, func(ctx context.Context, setup bayesSetup, st classifier.Store) error {
				// The import fits the model itself, in this store once it
				// finishes or in the new one.
				if err := refuseIncompleteImport(ctx, setup, st, "refit the n-gram model", ""); err != nil {
					return err
				}
				cl, err := bayesClassifier(st, setup)
				if err != nil {
					return err
				}
				m, err := cl.Refit(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				switch {
				case !cl.NgramOn():
					fmt.Fprintln(w, "the n-gram model is off (bayes.ngram: off, or a store imported from bogofilter); nothing to fit")
				case m == nil:
					fmt.Fprintln(w, "no learned message has features; the store has no n-gram model")
				default:
					fmt.Fprintf(w, "n-gram model fitted on %d spam and %d ham messages\n", m.Spam, m.Ham)
				}
				return nil
			})
		},
	}
}

// exportToFile writes an export to path. A new or regular file is written
// beside itself and renamed over path once complete and synced, so an
// export that fails (a full disk, a damaged store) leaves the previous
// export, often the only backup of a store, as it was, and no half
// export under its name. A new file is readable by its owner only: an
// export holds words and addresses of the mail it learned from. A FIFO or
// a device (/dev/stdout) is written in place. A symbolic link at path is
// written through (see exportTarget).
func exportToFile(path string, export func(io.Writer) error) (err error) {
	target, err := exportTarget(path)
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	perm := os.FileMode(0o600)
	// Through path, the links checked: /dev/stdout leads to a link of
	// /proc whose target ("pipe:[1234]") names no file, but the kernel
	// follows it.
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if err := export(f); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		perm = fi.Mode().Perm()
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err = export(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("export %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		// The rename is durable once the directory is synced; the export
		// itself is complete either way.
		d.Sync()
		d.Close()
	}
	return nil
}

// maxExportLinks bounds a chain of symbolic links, as the kernel's
// ELOOP does.
const maxExportLinks = 40

// exportTarget returns the file an export to path replaces: path, or,
// for a symbolic link, the file it points to, which need not exist yet
// (a link to a backup disk made before the first export), so that the
// link stays a link, as the archive filter appends through one. A link
// is followed only if root or this user owns it (archive.TrustedLink):
// root's export must not write a file another user's link chose
// (/etc/shadow), and is refused instead. Links further up the path are
// left to the kernel.
func exportTarget(path string) (string, error) {
	p := path
	for range maxExportLinks {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		if err := archive.TrustedLink(p, fi); err != nil {
			return "", err
		}
		dest, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(p), dest)
		}
		p = dest
	}
	return "", fmt.Errorf("more than %d symbolic links: %w", maxExportLinks, syscall.ELOOP)
}
