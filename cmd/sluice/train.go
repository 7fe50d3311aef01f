package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// trainBatch is how many messages one store transaction learns at most.
// For mail of ordinary size trainBatchTokens ends a batch first (at the
// mean of the SpamAssassin corpus, 443 tokens a message, after about 450
// messages): the messages bound only keeps the digests and outcomes of a
// batch of very small messages in proportion.
//
// It was 200, which ended batches at 89,000 tokens on that corpus, and
// most of the cost of training was then in commits: a message's tokens
// fall all over the token bucket's key space, so a batch of a few hundred
// messages already dirties most of its leaf pages, and each transaction
// reads, rewrites and writes out nearly the whole tree, whatever the
// batch's size. Fewer, larger batches do that fewer times.
const trainBatch = 1000

// trainBatchTokens bounds the tokens of one batch as well, and so how
// long the daemon's classifications may wait for a batch (see package
// classifier): the time a batch's transaction holds the store grows with
// its tokens, not its messages. 200 messages of max_tokens (20,000)
// distinct tokens each, such as long text or log attachments, were 4
// million in one transaction of about 20 s: longer than the 10 s the
// daemon waits for the store before its filter fails.
const trainBatchTokens = 200_000

func (c *cli) newTrainCmd() *cobra.Command {
	var (
		sf             storeFlags
		spam, ham      bool
		unlearn        bool
		noRefit        bool
		list           string
		messageIDs     []string
		queueIDs       []string
		progressPeriod = 100 * time.Millisecond
	)
	cmd := &cobra.Command{
		Use:                   "train --db FILE (--spam|--ham) [--unlearn] [--no-refit] [--message-id ID]... [--queue-id ID]... [--list LISTFILE] [PATH...]",
		DisableFlagsInUseLine: true,
		Short:                 "Learn messages as spam or ham",
		Long: `Train learns the messages at each PATH as spam (--spam) or ham (--ham).
A PATH is a message file, an mbox, a maildir, or a directory, read
recursively; "-" or no PATH at all reads one message (or an mbox) from
standard input. --list reads more paths from LISTFILE, one per line
("-" for standard input).

Learning a message again in the same class changes nothing; learning it in
the other class moves it there (a misfiled message is retrained by simply
training it as what it is). --unlearn removes messages learned in the
class; it needs an existing store. Training works while the daemon runs.

--message-id and --queue-id pick messages out of the PATHs: those with
that Message-ID, or with that queue id in the X-Sluice-Queue-ID field the
archive filter records. Both may be repeated; a message matching any of
them is learned, the others are skipped. If none matches, nothing is
learned and the exit status is 1. Retraining a message found in the spam
archive as ham is thus one command:

  sluice train --ham --queue-id 4XyZ1n2Kq7z /var/lib/sluice/archive/spam.mbox

A run that changed the store fits the n-gram model again on every
learned message, which takes seconds on a large store. --no-refit leaves
the model as it was: for scripts that retrain one message at a time
(a user moving it to the junk folder). The running daemon fits it again
within its refit interval (hourly by default); where none runs, run
"sluice db refit" from cron.

On a terminal a progress bar shows on standard error; a summary line goes
to standard output. Messages that cannot be read are reported on standard
error, the others are still learned, and the exit status is then 1.

Ctrl-C (SIGINT) or SIGTERM stops the run at the next message, or in
the middle of one that is still being read: the messages read so far
are learned, the summary line ends in
"(interrupted)", and the exit status is 130 (143 for SIGTERM). Training
the same paths again learns the rest. A second Ctrl-C ends the run at
once.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			class := classifier.Spam
			if ham {
				class = classifier.Ham
			}
			paths, err := inputPaths(args, list, cmd.Flags().Changed("list"), cmd.InOrStdin())
			if err != nil {
				return err
			}
			setup, err := c.bayesSetup(sf.db)
			if err != nil {
				return err
			}
			// Learning creates a missing store; unlearning from one would
			// only hide a mistyped path behind "0 unlearned".
			access := storeWrite
			if unlearn {
				access = storeWriteExisting
			}
			// A store the run makes must not stay behind if it learns
			// nothing (a mistyped PATH, a --queue-id that matches no
			// message): classify would answer unsure from it instead of
			// reporting that there is no store. See db import.
			made := !unlearn && setup.cfg.Store != bayes.StoreRedis && !exists(setup.db)
			lockMade := made && !exists(setup.db+".lock")
			st, err := setup.openStore(access)
			if err != nil {
				return err
			}
			defer func() {
				if bs, ok := st.(*classifier.BoltStore); ok && made {
					bs.RemoveIfEmpty(context.Background())
				}
				st.Close()
				if lockMade && !exists(setup.db) {
					os.Remove(setup.db + ".lock")
				}
			}()
			// Whatever is learned into a half-imported store is lost when
			// the store is replaced by a whole import, the only repair of
			// an import that was stopped.
			if err := refuseIncompleteImport(cmd.Context(), setup, st, "train", "train"); err != nil {
				return err
			}
			t := &trainer{class: class, unlearn: unlearn, errw: cmd.ErrOrStderr(),
				sel: mailbox.Select{MessageIDs: messageIDs, QueueIDs: queueIDs}}
			if t.c, err = bayesClassifier(st, setup); err != nil {
				return err
			}
			if isTerminal(cmd.ErrOrStderr()) {
				t.bar = &progressBar{w: cmd.ErrOrStderr(), total: mailbox.TotalSize(paths), every: progressPeriod, start: time.Now()}
			}
			// Ctrl-C (or SIGTERM) ends the reading at the next message
			// (stop); the store writes go on under ctx, so that a batch
			// begun is whole and the summary can say what was learned.
			ctx := cmd.Context()
			stop, unwatch := stopOnSignal(ctx)
			defer unwatch()
			// The classifier reads only the first MaxBytes of a
			// message: holding more of a huge one would only cost
			// memory.
			rd := mboxReader(cmd, "train", t.c.Tokenizer().MaxBytes())
			warn := rd.Warn
			rd.Warn = func(path string, err error) {
				t.out.Lock()
				defer t.out.Unlock()
				t.clearBar()
				warn(path, err)
			}
			if len(t.sel.QueueIDs) > 0 {
				if err := oneMessagePerQueueID(stop, rd, paths, t.sel, t.c); err != nil {
					if stop.Err() != nil {
						fmt.Fprintln(cmd.ErrOrStderr(), "sluice train: interrupted before anything was learned")
						return &exitError{code: interruptStatus(context.Cause(stop))}
					}
					return err
				}
			}
			if err := t.learnAll(ctx, stop, rd, paths, runtime.GOMAXPROCS(0)); err != nil {
				return t.failed(cmd.OutOrStdout(), err)
			}
			// The messages read are learned, interrupted or not: one
			// batch at most, and its outcomes belong in the summary.
			if err := t.flush(ctx); err != nil {
				return t.failed(cmd.OutOrStdout(), err)
			}
			readAll := stop.Err() == nil
			fitted := false
			if readAll && t.changed() && !noRefit {
				// The n-gram model is fitted on all learned messages at
				// once, so that the order of training runs does not
				// matter (see classifier/ngram.go). That reads every
				// learned message and can take long, so a signal stops it
				// too; the model is stored whole or not at all.
				_, err := t.c.Refit(stop)
				switch {
				case err == nil:
					fitted = true
				case stop.Err() == nil:
					// The messages are learned whatever became of the
					// fit. Training them again would fit too (see
					// changed), but only after reading them all again:
					// the short way to the model is a refit of its own.
					t.clearBar()
					fmt.Fprintln(cmd.OutOrStdout(), t.summary())
					return fmt.Errorf("the messages counted above are learned, but the n-gram model was not fitted again: %w; "+
						"once the cause is fixed, run sluice db refit --db %s", err, setup.db)
				}
			}
			t.clearBar()
			// A signal after the last of the work is no interruption;
			// neither is a fit left out on purpose (--no-refit).
			if !readAll || t.changed() && !fitted && !noRefit {
				note := "the messages counted above are learned"
				if !readAll {
					note += ", the rest were not read"
				}
				fmt.Fprintln(cmd.OutOrStdout(), t.summary()+" (interrupted)")
				fmt.Fprintf(cmd.ErrOrStderr(), "sluice train: interrupted: %s; %s\n", note, refitNote(t.changed()))
				return &exitError{code: interruptStatus(context.Cause(stop))}
			}
			if !t.sel.All() && t.read == 0 {
				return fmt.Errorf("no message with %s in %s", describeSelect(t.sel), namePaths(paths))
			}
			fmt.Fprintln(cmd.OutOrStdout(), t.summary())
			if t.errors > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	sf.add(cmd, false)
	cmd.Flags().BoolVar(&spam, "spam", false, "learn the messages as spam")
	cmd.Flags().BoolVar(&ham, "ham", false, "learn the messages as ham")
	cmd.Flags().BoolVar(&unlearn, "unlearn", false, "remove the messages from the class instead")
	cmd.Flags().BoolVar(&noRefit, "no-refit", false, "do not fit the n-gram model again (the daemon or sluice db refit does it later)")
	cmd.Flags().StringVar(&list, "list", "", "read paths from `LISTFILE`, one per line (- for standard input)")
	cmd.Flags().StringArrayVar(&messageIDs, "message-id", nil, "learn only the messages with this Message-ID (repeatable)")
	cmd.Flags().StringArrayVar(&queueIDs, "queue-id", nil, "learn only the archived messages with this queue id (repeatable)")
	cmd.MarkFlagsMutuallyExclusive("spam", "ham")
	cmd.MarkFlagsOneRequired("spam", "ham")
	return cmd
}

// interrupted is the cause of a run stopped by a signal.
type interrupted struct{ sig os.Signal }

func (i interrupted) Error() string { return "interrupted by " + i.sig.String() }

// stopOnSignal returns a context that ends at the first SIGINT or SIGTERM,
// with an interrupted as its cause, and a func that stops watching. Once
// one came, the signals have their default action again: a second Ctrl-C
// ends a run that does not stop by itself (one waiting on a pipe that
// sends nothing) at once.
func stopOnSignal(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs)
			cancel(interrupted{sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(nil)
	}
}

// interruptStatus is the exit status of a run stopped for cause: 128 and
// the signal's number, as a shell reports a program the signal ended
// (130 for Ctrl-C), so that a script sees the same as before the signal
// was caught; 1 for any other end of the run's context.
func interruptStatus(cause error) int {
	var i interrupted
	if errors.As(cause, &i) {
		if n, ok := i.sig.(syscall.Signal); ok {
			return 128 + int(n)
		}
	}
	return 1
}

// refitNote tells the admin of an interrupted run whether the n-gram
// model, which it did not fit again, needs fitting.
func refitNote(changed bool) string {
	if !changed {
		return "nothing was learned"
	}
	return "the n-gram model was not fitted again: the next run that learns anything fits it, or run sluice db refit"
}

// mboxReader is how train, classify and test read their paths: an mbox under
// the locks its writers take, as archive show reads one, so that a record
// the archive filter (or a delivery agent) is appending, or the half
// record of one that died, is not read as a message cut short. The
// warning names the command, and comes once a run: a user training from
// a read-only corpus of many mboxes would get it for every one.
func mboxReader(cmd *cobra.Command, command string, maxBytes int) mailbox.Reader {
	errw := cmd.ErrOrStderr()
	var once sync.Once
	return mailbox.Reader{
		Stdin:    cmd.InOrStdin(),
		MaxBytes: maxBytes,
		Locks:    archive.NewAppender(mboxLockTimeout, nil),
		Warn: func(path string, err error) {
			once.Do(func() {
				fmt.Fprintf(errw, "sluice %s: warning: reading %s without its dot-lock (%v): a message appended now by a program that takes only the dot-lock may be read cut short; other mboxes read so are not named\n", command, printable(path), err)
			})
		},
	}
}

// bayesClassifier is the classifier the daemon's bayes filter would use
// on st: same tokenizer limits (so digests and tokens match) and
// parameters.
func bayesClassifier(st classifier.Store, setup bayesSetup) (*classifier.Classifier, error) {
	c, err := bayes.NewClassifier(context.Background(), st, setup.cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setup.db, err)
	}
	return c, nil
}

// inputPaths returns the PATH arguments and the paths of the list file;
// standard input when there are none. listSet tells that --list was
// given: an empty name ("--list $NEWFILES" with the variable unset) is
// an error, not a run on standard input, which in a hook holds a message
// that would be learned or scored in the list's place.
func inputPaths(args []string, list string, listSet bool, stdin io.Reader) ([]string, error) {
	if listSet && list == "" {
		return nil, badUsage(errors.New(`--list: empty file name: give LISTFILE, or "-" for standard input`))
	}
	var paths []string
	if list != "" {
		var r io.Reader = stdin
		if list != mailbox.Stdin {
			f, err := os.Open(list)
			if err != nil {
				return nil, fmt.Errorf("--list: %w", err)
			}
			defer f.Close()
			r = f
		}
		ps, err := mailbox.ReadList(r)
		if err != nil {
			return nil, fmt.Errorf("--list %s: %w", list, err)
		}
		paths = ps
	}
	paths = append(paths, args...)
	if len(paths) == 0 && list == "" {
		paths = []string{mailbox.Stdin}
	}
	stdinUses := 0
	if list == mailbox.Stdin {
		stdinUses++
	}
	for _, p := range paths {
		if p == mailbox.Stdin {
			stdinUses++
		}
	}
	if stdinUses > 1 {
		return nil, badUsage(errors.New(`standard input ("-") can be read only once`))
	}
	return paths, nil
}

// trainer learns messages in batches and counts what happened.
type trainer struct {
	c       *classifier.Classifier
	class   classifier.Class
	unlearn bool
	// out serialises the progress bar and errw: the reading of the
	// messages warns on its own goroutine.
	out  sync.Mutex
	errw io.Writer
	bar  *progressBar
	// sel picks the messages to learn; the others are skipped.
	sel mailbox.Select

	batch    []classifier.LearnOp
	tokens   int // in batch
	read     int
	errors   int
	outcomes map[classifier.Outcome]int
}

// trainJob is one message on its way through learnAll.
type trainJob struct {
	m     mailbox.Message
	match bool               // selected (see trainer.sel), and op prepared
	op    classifier.LearnOp // valid with match
	done  chan struct{}      // closed once match and op are set
}

// oneMessagePerQueueID checks, before anything is learned, that each
// queue id of sel picks one message in paths. Postfix's short queue ids
// (its default, enable_long_queue_ids = no) are made of the microseconds
// and the queue file's inode number, and are given again once both come
// round: an archive kept for months holds several messages under one id,
// and learning all that the id picks would learn an unrelated message,
// often a spam as ham. The copies of one message, one per recipient with
// a {rcpt} template, have its digest and count as one. Standard input
// cannot be read twice and is left out of the check.
func oneMessagePerQueueID(ctx context.Context, rd mailbox.Reader, paths []string, sel mailbox.Select, c *classifier.Classifier) error {
	type first struct {
		name   string
		digest classifier.Digest
	}
	seen := map[string]first{}
	var errs []error
	// Warnings about reading (an archive read without its dot-lock) come
	// from the run that learns, once.
	rd.Warn = nil
	for _, p := range paths {
		if p == mailbox.Stdin {
			continue
		}
		err := rd.Walk(ctx, p, func(m mailbox.Message) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if m.Err != nil {
				// Reported by the run that learns.
				return nil
			}
			qid := sel.QueueID(m.Data)
			if qid == "" {
				return nil
			}
			d := c.Tokenizer().Digest(classifierInput(m, c))
			f, ok := seen[qid]
			if !ok {
				seen[qid] = first{name: m.Name, digest: d}
				return nil
			}
			if f.digest != d && f.name != "" {
				errs = append(errs, fmt.Errorf("queue id %s picks different messages: %s and %s "+
					"(Postfix gives a short queue id again after a while); pick the one meant with --message-id, "+
					"or see it with sluice archive show --queue-id %s",
					printable(qid), printable(f.name), printable(m.Name), printable(qid)))
				// One error per id is enough to tell.
				seen[qid] = first{digest: f.digest}
			}
			return nil
		})
		if err != nil && ctx.Err() != nil {
			return err
		}
		// Other errors of reading p are the learning run's to report.
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing learned: %w", errors.Join(errs...))
	}
	return nil
}

// learnAll reads the messages at paths, prepares them (tokens, digest,
// features) on workers goroutines and learns them in the order they come
// in, in batches (see add), so that the outcomes are the same whatever
// the number of workers. The learning of one batch, which the store does
// on one core, overlaps with the reading and preparing of the next. It
// returns the first error of learning or of reading the paths; a stop
// (a signal) ends the reading at the next message and is no error: what
// was read is learned but the last, partial batch, which the caller
// flushes.
//
// At most a batch of prepared messages and a few read ones per worker are
// held at a time.
func (t *trainer) learnAll(ctx, stop context.Context, rd mailbox.Reader, paths []string, workers int) error {
	workers = max(workers, 1)
	// failed ends the walk once learning failed.
	walk, failed := context.WithCancel(stop)
	defer failed()
	todo := make(chan *trainJob, workers)
	inOrder := make(chan *trainJob, trainBatch)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range todo {
				if j.m.Err == nil && t.sel.Match(j.m.Data) {
					j.match = true
					j.op = t.c.PrepareBytes(classifierInput(j.m, t.c), t.class, t.unlearn)
				}
				j.m.Data, j.m.From = nil, nil
				close(j.done)
			}
		})
	}
	learned := make(chan error, 1)
	go func() {
		var err error
		for j := range inOrder {
			<-j.done
			if err == nil {
				if err = t.add(ctx, j); err != nil {
					failed()
				}
			}
		}
		learned <- err
	}()
	var walkErr error
	for _, p := range paths {
		// The learner and the workers take every job until their
		// channels close, so the sends block only while they are busy.
		walkErr = rd.Walk(walk, p, func(m mailbox.Message) error {
			if walk.Err() != nil {
				return context.Cause(walk)
			}
			j := &trainJob{m: m, done: make(chan struct{})}
			inOrder <- j
			todo <- j
			return nil
		})
		if walk.Err() != nil || walkErr != nil {
			break
		}
	}
	close(todo)
	close(inOrder)
	wg.Wait()
	if err := <-learned; err != nil {
		return err
	}
	if stop.Err() != nil {
		// Whatever the walk returned, it was told to stop.
		return nil
	}
	return walkErr
}

// add counts a prepared message and learns the batch once it is full.
func (t *trainer) add(ctx context.Context, j *trainJob) error {
	t.out.Lock()
	t.bar.add(j.m.Size)
	if j.m.Err != nil {
		t.errors++
		t.clearBar()
		fmt.Fprintf(t.errw, "sluice train: %s: %s\n", printable(j.m.Name), printable(j.m.Err.Error()))
	}
	t.out.Unlock()
	if !j.match {
		return nil
	}
	t.read++
	op := j.op
	t.batch = append(t.batch, op)
	t.tokens += len(op.Tokens)
	if len(t.batch) >= trainBatch || t.tokens >= trainBatchTokens {
		return t.flush(ctx)
	}
	return nil
}

func (t *trainer) flush(ctx context.Context) error {
	if len(t.batch) == 0 {
		return nil
	}
	outs, err := t.c.Learn(ctx, t.batch)
	if err != nil {
		return fmt.Errorf("learning %d messages: %w", len(t.batch), err)
	}
	if t.outcomes == nil {
		t.outcomes = map[classifier.Outcome]int{}
	}
	for _, o := range outs {
		t.outcomes[o]++
	}
	t.batch = t.batch[:0]
	t.tokens = 0
	return nil
}

// failed ends a run that err stopped part way: a batch that could not
// be written (a full disk), or a path that could not be read. The
// batches written before it stay in the store, each having been one
// transaction: the summary counts those, to w, so that the administrator
// knows what the store holds, and the error says that the rest were not
// learned and that the n-gram model was not fitted again. A run that
// wrote nothing fails with err alone.
func (t *trainer) failed(w io.Writer, err error) error {
	t.clearBar()
	if len(t.outcomes) == 0 {
		return err
	}
	// The failed batch, or the one still being gathered, is not in the
	// store: the summary counts only what is.
	t.read -= len(t.batch)
	fmt.Fprintln(w, t.summary())
	return fmt.Errorf("%w; the messages counted above are learned, the rest were not; %s", err, refitNote(t.changed()))
}

// changed reports whether any message was learned, moved or unlearned,
// or learned again (which may add the n-gram features of a message
// learned before the store kept them).
func (t *trainer) changed() bool {
	o := t.outcomes
	return o[classifier.Learned]+o[classifier.Moved]+o[classifier.Unlearned]+o[classifier.AlreadyLearned] > 0
}

func (t *trainer) clearBar() {
	if t.bar != nil {
		t.bar.clear()
	}
}

// summary is the one line train prints, e.g. "28 messages: 26 learned as
// spam, 1 already learned, 1 moved from ham to spam, 0 errors".
func (t *trainer) summary() string {
	other := classifier.Ham
	if t.class == classifier.Ham {
		other = classifier.Spam
	}
	o := t.outcomes
	var parts []string
	if t.unlearn {
		parts = []string{
			fmt.Sprintf("%d unlearned from %s", o[classifier.Unlearned], t.class),
			fmt.Sprintf("%d not learned as %s", o[classifier.NotLearned], t.class),
		}
	} else {
		parts = []string{
			fmt.Sprintf("%d learned as %s", o[classifier.Learned], t.class),
			fmt.Sprintf("%d already learned", o[classifier.AlreadyLearned]),
			fmt.Sprintf("%d moved from %s to %s", o[classifier.Moved], other, t.class),
		}
	}
	parts = append(parts, plural(t.errors, "error", "errors"))
	return fmt.Sprintf("%s: %s", plural(t.read, "message", "messages"), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// isTerminal reports whether w is a terminal (a character device), where
// a progress bar that redraws itself is welcome. Writing one to /dev/null,
// also a character device, costs nothing.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar redraws one line: a bar by bytes read (when the total is
// known), the messages so far and the rate. A nil bar does nothing.
type progressBar struct {
	w     io.Writer
	total int64
	every time.Duration
	start time.Time

	bytes int64
	n     int
	drawn time.Time
}

func (p *progressBar) add(size int64) {
	if p == nil {
		return
	}
	p.bytes += size
	p.n++
	if now := time.Now(); now.Sub(p.drawn) >= p.every {
		p.drawn = now
		p.draw(now)
	}
}

func (p *progressBar) draw(now time.Time) {
	const width = 30
	rate := float64(p.n) / max(now.Sub(p.start).Seconds(), 1e-3)
	if p.total <= 0 {
		fmt.Fprintf(p.w, "\r%d messages, %.0f/s", p.n, rate)
		return
	}
	frac := min(float64(p.bytes)/float64(p.total), 1)
	filled := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %d messages, %.0f/s", strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100, p.n, rate)
}

// clear erases the bar's line so that other output starts clean.
func (p *progressBar) clear() {
	if p != nil && !p.drawn.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = time.Time{}
	}
}
