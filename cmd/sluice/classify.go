package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
	"github.com/sluice-mail/sluice/filters/archive"
)

// Exit statuses of classify, bogofilter's, so that procmail recipes
// written for bogofilter keep working.
const (
	statusSpam   = 0
	statusHam    = 1
	statusUnsure = 2
	statusError  = 3
)

func (c *cli) newClassifyCmd() *cobra.Command {
	var (
		sf      storeFlags
		format  string
		explain bool
		list    string
	)
	cmd := &cobra.Command{
		Use:                   "classify --db FILE [--format text|tsv|json] [--explain] [--list LISTFILE] [PATH...]",
		DisableFlagsInUseLine: true,
		Short:                 "Classify messages as spam, ham or unsure",
		Long: `Classify scores the messages at each PATH (message file, mbox, maildir or
directory, as for train; "-" or no PATH reads standard input) against the
token store, with the parameters of the configuration's bayes filter, and
prints one result per message:

  text  PATH: spam, spamicity=0.999871 (the reason follows an unsure verdict)
  tsv   PATH<TAB>SPAMICITY<TAB>VERDICT   (verdict spam, ham or unsure;
        a message that could not be read: PATH<TAB>-<TAB>error)
  json  one JSON object per line

--explain adds the tokens that decided (text and json).

Exit status with one message: 0 spam, 1 ham, 2 unsure, 3 error, as
bogofilter's. With several: 0, or 3 if any message could not be
classified, or if they came on standard input alone (where a piped
message is expected). With none (an empty directory, mbox, file or
list): 3.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := c.classify(cmd, args, sf, format, explain, list)
			if err != nil || code != 0 {
				return &exitError{code: code, err: err}
			}
			return nil
		},
	}
	sf.add(cmd, false)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, tsv or json")
	cmd.Flags().BoolVar(&explain, "explain", false, "show the tokens that decided")
	cmd.Flags().StringVar(&list, "list", "", "read paths from `LISTFILE`, one per line (- for standard input)")
	// A usage error is an error (3), not the unsure verdict that cobra's
	// usual status 2 would read as.
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &exitError{code: statusError, err: fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())}
	})
	return cmd
}

// classify returns the exit status and, for a failure of the whole
// command, its error.
func (c *cli) classify(cmd *cobra.Command, args []string, sf storeFlags, format string, explain bool, list string) (int, error) {
	// The writer needs the classifier's cutoffs, known once the store is
	// open; the format is checked before, so that a typo costs no open.
	var newOut func(classifier.Params) resultWriter
	w := bufio.NewWriter(cmd.OutOrStdout())
	defer w.Flush()
	switch format {
	case "text":
		newOut = func(p classifier.Params) resultWriter { return textResult{w: w, explain: explain, params: p} }
	case "tsv":
		if explain {
			return statusError, fmt.Errorf("--explain needs --format text or json: tsv has exactly three columns")
		}
		newOut = func(p classifier.Params) resultWriter { return tsvResult{w: w, params: p} }
	case "json":
		// JSON carries the exact float64, which compares with the
		// cutoffs as the verdict did.
		newOut = func(classifier.Params) resultWriter { return jsonResult{json.NewEncoder(w)} }
	default:
		return statusError, fmt.Errorf("--format %q: want text, tsv or json", format)
	}
	paths, err := inputPaths(args, list, cmd.Flags().Changed("list"), cmd.InOrStdin())
	if err != nil {
		return statusError, err
	}
	setup, err := c.bayesSetup(sf.db)
	if err != nil {
		return statusError, err
	}
	st, err := setup.openStore(storeRead)
	if err != nil {
		return statusError, err
	}
	defer st.Close()
	cl, err := bayesClassifier(st, setup)
	if err != nil {
		return statusError, err
	}
	// One message from a procmail recipe would otherwise spend most of
	// its run copying the whole n-gram model out of the store.
	cl.UseModelInPlace()
	out := newOut(cl.Params())
	ctx := cmd.Context()
	// A half-imported store still answers, as the daemon's does; the
	// exit status stays the verdict, which a procmail recipe reads.
	msg, _, err := incompleteImport(ctx, setup, st)
	if err != nil {
		return statusError, err
	}
	if msg != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "sluice classify: warning: %s; until then verdicts may be off\n", msg)
	}
	// The classifier reads only the first MaxBytes of a message: holding
	// more of a huge one would only cost memory.
	rd := mboxReader(cmd, "classify", cl.Tokenizer().MaxBytes())
	report := func(j *classifyJob) error {
		if j.m.Err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "sluice classify: %s: %s\n", printable(j.m.Name), printable(j.m.Err.Error()))
			return out.failed(j.m.Name, j.m.Err)
		}
		if j.err != nil {
			// The store failed: every further message would too.
			return fmt.Errorf("%s: %w", j.m.Name, j.err)
		}
		return out.result(j.m.Name, j.res)
	}
	n, failed, last, err := classifyAll(ctx, rd, paths, cl, explain, min(runtime.GOMAXPROCS(0), maxClassifyWorkers), report)
	if err != nil {
		return statusError, err
	}
	if err := w.Flush(); err != nil {
		return statusError, err
	}
	// A model the store holds but that could not be used (damaged, or
	// unreadable) leaves the scores to the token counts alone, as in the
	// daemon, which logs why. Said here too, or the verdicts differ from
	// those in the daemon's header without a word; the exit status stays
	// the verdict, as with a half-imported store.
	if err := cl.ModelErr(); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "sluice classify: warning: %s: n-gram model not used (%s): the messages were scored on the token counts alone\n",
			printable(setup.db), printable(err.Error()))
	}
	switch {
	case n == 0:
		// No verdict to report; a script expecting one message must
		// not read the 0 of "all fine" as spam.
		if len(paths) == 0 {
			return statusError, fmt.Errorf("no messages: --list %s names no path", list)
		}
		return statusError, noMessagesError(paths)
	case n == 1 && failed == 0:
		return verdictExit(last), nil
	case failed > 0:
		return statusError, nil
	case list == "" && len(paths) == 1 && paths[0] == mailbox.Stdin:
		// Standard input alone is how procmail pipes one message, and
		// Postfix's local(8) hands a mailbox_command the message with
		// a From_ line but its body's "From " lines unquoted: a body
		// that holds what reads as an mbox separator (a pasted or
		// attached mbox) comes out as several messages. The 0 of
		// several, read as one message's verdict, is spam: a recipe
		// filed such a ham to Junk. No single verdict is an error.
		fmt.Fprintf(cmd.ErrOrStderr(), "sluice classify: standard input held %d messages (an mbox, or one message with an unquoted \"From \" line in its body): exit status %d, not a verdict\n", n, statusError)
		return statusError, nil
	}
	return 0, nil
}

// classifierInput returns what c reads of m: the message, and before it,
// in a store imported from bogofilter, the mbox From_ line it was read
// under. bogofilter reads that line as a header line (of each message of
// an mbox it learns with -M, and of a message file cut out of one, or
// piped by procmail, with -B), so its word list holds the tokens of the
// From_ lines of what it learned, and the bogofilter dialect makes them
// as it does; without them, a message scored other than bogofilter
// scored it. The digest leaves the line out either way.
//
// The Return-Path line that the archive filter writes at the top of a
// maildir copy is left out (see withoutArchiveReturnPath).
func classifierInput(m mailbox.Message, c *classifier.Classifier) []byte {
	m.Data = withoutArchiveReturnPath(m.Data)
	if len(m.From) == 0 || c.Params().Limits.Dialect != classifier.DialectBogofilter {
		return m.Data
	}
	return append(slices.Clip(m.From), m.Data...)
}

// withoutArchiveReturnPath returns data without the Return-Path line
// that the archive filter writes at the top of a maildir copy, where an
// mbox copy has its "From " line, to keep the envelope sender. The daemon
// never saw that field (Postfix drops Return-Path before its milters see
// the header; Sendmail writes its own only as it delivers), so it is no
// part of the message the daemon classified and learned. The tokenizer
// reads a Return-Path, and "sluice train" from a maildir archive learned
// the sender's tokens with each message, or took them from the other
// class's counts when it moved one the daemon had learned. The archive's
// copy is told by the X-Sluice-Queue-ID on the next line; a delivered
// copy has the delivery's Delivered-To or Received there.
func withoutArchiveReturnPath(data []byte) []byte {
	line, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte("Return-Path: <")) || !bytes.HasPrefix(rest, []byte(archive.FieldQueueID+":")) {
		return data
	}
	return rest
}

// maxClassifyWorkers bounds the goroutines classify scores messages on,
// and so the messages it holds at a time (see classifyAll): past a few
// cores, reading the files is what takes the time.
const maxClassifyWorkers = 8

// classifyJob is one message on its way through classifyAll.
type classifyJob struct {
	m    mailbox.Message
	res  classifier.Result
	err  error         // the classifier's
	done chan struct{} // closed once res and err are set
}

// classifyAll classifies the messages at paths on workers goroutines and
// hands each to report in the order the paths and their messages come in,
// so that the output is the same whatever the number of workers. It
// returns how many messages there were, how many could not be read, the
// last verdict, and the first error of report or of reading the paths,
// after which it stops.
//
// While one file is read (under its mbox locks), the messages read before
// it are being scored: the two overlap, and a machine with more than one
// core scores several messages at once. At most a few messages per worker
// are held at a time, each of at most the tokenizer's MaxBytes.
func classifyAll(ctx context.Context, rd mailbox.Reader, paths []string, cl *classifier.Classifier, explain bool, workers int,
	report func(*classifyJob) error) (n, failed int, last classifier.Verdict, err error) {
	workers = max(workers, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan *classifyJob, workers)
	inOrder := make(chan *classifyJob, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range todo {
				if j.m.Err == nil {
					j.res, j.err = cl.ClassifyBytes(ctx, classifierInput(j.m, cl), explain)
				}
				j.m.Data, j.m.From = nil, nil
				close(j.done)
			}
		})
	}
	reported := make(chan error, 1)
	go func() {
		var err error
		for j := range inOrder {
			<-j.done
			if err != nil {
				continue // stopping: the rest is not reported
			}
			n++
			if j.m.Err != nil {
				failed++
			} else if j.err == nil {
				last = j.res.Verdict
			}
			if err = report(j); err != nil {
				cancel()
			}
		}
		reported <- err
	}()
	var walkErr error
	for _, p := range paths {
		walkErr = rd.Walk(ctx, p, func(m mailbox.Message) error {
			j := &classifyJob{m: m, done: make(chan struct{})}
			// Queued in order first: the reporter waits for each in
			// turn, and a job it holds is sure to be done.
			select {
			case inOrder <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case todo <- j:
			case <-ctx.Done():
				j.err = ctx.Err()
				close(j.done)
				return ctx.Err()
			}
			return nil
		})
		if walkErr != nil {
			break
		}
	}
	close(todo)
	close(inOrder)
	wg.Wait()
	// A report's error comes first: it is why the walk was cut short.
	if err := <-reported; err != nil {
		return n, failed, last, err
	}
	return n, failed, last, walkErr
}

func verdictExit(v classifier.Verdict) int {
	switch v {
	case classifier.VerdictSpam:
		return statusSpam
	case classifier.VerdictHam:
		return statusHam
	}
	return statusUnsure
}

// resultWriter prints one result per message in one format.
type resultWriter interface {
	result(name string, res classifier.Result) error
	failed(name string, err error) error
}

// spamicity is the spamicity of a part of a message, which has no
// verdict of its own, with six decimals.
func spamicity(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

// tsvField keeps a path on its line and in its column: tabs and line
// breaks in a file name are written as \t, \n and \r, and a backslash as
// \\, so that "a<TAB>b" and a file named `a\tb` print differently.
var tsvField = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

type tsvResult struct {
	w io.Writer
	// params are the classifier's: the spamicity is printed on its
	// verdict's side of their cutoffs (classifier.FormatSpamicity).
	params classifier.Params
}

func (t tsvResult) result(name string, res classifier.Result) error {
	_, err := fmt.Fprintf(t.w, "%s\t%s\t%s\n", tsvField.Replace(name), classifier.FormatSpamicity(res, t.params), res.Verdict)
	return err
}

func (t tsvResult) failed(name string, _ error) error {
	_, err := fmt.Fprintf(t.w, "%s\t-\terror\n", tsvField.Replace(name))
	return err
}

type textResult struct {
	w io.Writer
	// explain shows what decided under each verdict, even when no token
	// counted (no clues): the n-gram model alone may then have decided,
	// and an empty explanation says that no token counted.
	explain bool
	// params are the classifier's: the spamicity is printed on its
	// verdict's side of their cutoffs (classifier.FormatSpamicity).
	params classifier.Params
}

// The text format is for people at a terminal: a file name's control
// characters (an escape sequence, a line end) and bytes that are not
// UTF-8 (a C1 control to some terminals) are shown escaped (printable),
// as tsv and json escape them in their own ways.

func (t textResult) result(name string, res classifier.Result) error {
	line := fmt.Sprintf("%s: %s, spamicity=%s", printable(name), res.Verdict, classifier.FormatSpamicity(res, t.params))
	if res.Truncated {
		// Scored on its first max_bytes (or max_tokens) only.
		line += ", truncated"
	}
	if res.Reason != "" {
		line += " (" + res.Reason + ")"
	}
	if _, err := fmt.Fprintln(t.w, line); err != nil {
		return err
	}
	if !t.explain {
		return nil
	}
	fmt.Fprintf(t.w, "  %d tokens, %d used; learned from %d spam and %d ham\n", res.Tokens, res.Used, res.Totals.Spam, res.Totals.Ham)
	for _, p := range res.Parts {
		fmt.Fprintf(t.w, "  %s alone: spamicity=%s, %d used\n", p.Name, spamicity(p.Spamicity), p.Used)
	}
	fmt.Fprintf(t.w, "  %-8s %6s %6s  %s\n", "prob", "spam", "ham", "token")
	for _, cl := range res.Clues {
		if _, err := fmt.Fprintf(t.w, "  %.6f %6d %6d  %s\n", cl.Prob, cl.Spam, cl.Ham, strconv.Quote(cl.Token)); err != nil {
			return err
		}
	}
	return nil
}

func (t textResult) failed(name string, err error) error {
	_, werr := fmt.Fprintf(t.w, "%s: error: %s\n", printable(name), printable(err.Error()))
	return werr
}

type jsonResult struct{ enc *json.Encoder }

// jsonLine is one line of --format json.
type jsonLine struct {
	Path string `json:"path"`
	// PathBase64 is the path's bytes when they are not UTF-8 (a Latin-1
	// file name): JSON strings cannot hold them, and path has U+FFFD in
	// their place.
	PathBase64 string   `json:"path_base64,omitempty"`
	Verdict    string   `json:"verdict"` // spam, ham or unsure; error in a jsonFailure
	Spamicity  *float64 `json:"spamicity,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	// Tokens and Used are in every result's line, 0 too (a message of
	// new words only has no token that counts), as the documented line
	// shows them: a script reads them without a check. A message that
	// could not be read has neither (jsonFailure).
	Tokens    int        `json:"tokens"`
	Used      int        `json:"used"`
	Truncated bool       `json:"truncated,omitempty"`
	Clues     []jsonClue `json:"clues,omitempty"`
	Parts     []jsonPart `json:"parts,omitempty"`
}

// jsonFailure is the line of --format json of a message that could not
// be read: no spamicity, no counts.
type jsonFailure struct {
	Path       string `json:"path"`
	PathBase64 string `json:"path_base64,omitempty"` // as in jsonLine
	Verdict    string `json:"verdict"`               // error
	Error      string `json:"error"`
}

type jsonPart struct {
	Name      string  `json:"name"`
	Spamicity float64 `json:"spamicity"`
	Used      int     `json:"used"`
}

type jsonClue struct {
	Token string  `json:"token"`
	Spam  uint32  `json:"spam"`
	Ham   uint32  `json:"ham"`
	Prob  float64 `json:"prob"`
}

func (j jsonResult) result(name string, res classifier.Result) error {
	s := res.Spamicity
	line := jsonLine{Path: name, PathBase64: pathBase64(name), Verdict: res.Verdict.String(), Spamicity: &s, Reason: res.Reason,
		Tokens: res.Tokens, Used: res.Used, Truncated: res.Truncated}
	for _, c := range res.Clues {
		line.Clues = append(line.Clues, jsonClue{Token: c.Token, Spam: c.Spam, Ham: c.Ham, Prob: c.Prob})
	}
	for _, p := range res.Parts {
		line.Parts = append(line.Parts, jsonPart{Name: p.Name, Spamicity: p.Spamicity, Used: p.Used})
	}
	return j.enc.Encode(line)
}

func (j jsonResult) failed(name string, err error) error {
	return j.enc.Encode(jsonFailure{Path: name, PathBase64: pathBase64(name), Verdict: "error", Error: err.Error()})
}

// pathBase64 is name in base64 when it is not UTF-8, else "".
func pathBase64(name string) string {
	if utf8.ValidString(name) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(name))
}

// noMessagesError says that none of paths held a message. It names them
// all when they are few, and else how many there were and the first few:
// a --list of thousands of empty directories is no one line's worth.
func noMessagesError(paths []string) error {
	return fmt.Errorf("no messages found in %s", namePaths(paths))
}

// namePaths names paths in an error line: all of them when they are few,
// else how many there were and the first few.
func namePaths(paths []string) string {
	const named = 3
	if len(paths) <= named {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("the %d paths given (%s and %d more)", len(paths), strings.Join(paths[:named], ", "), len(paths)-named)
}
