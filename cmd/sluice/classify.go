package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/mailbox"
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
classified. With none (an empty directory, mbox or list): 3.`,
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
	var out resultWriter
	w := bufio.NewWriter(cmd.OutOrStdout())
	defer w.Flush()
	switch format {
	case "text":
		out = textResult{w: w, explain: explain}
	case "tsv":
		if explain {
			return statusError, fmt.Errorf("--explain needs --format text or json: tsv has exactly three columns")
		}
		out = tsvResult{w}
	case "json":
		out = jsonResult{json.NewEncoder(w)}
	default:
		return statusError, fmt.Errorf("--format %q: want text, tsv or json", format)
	}
	paths, err := inputPaths(args, list, cmd.InOrStdin())
	if err != nil {
		return statusError, err
	}
	setup, err := c.bayesSetup(sf.db)
	if err != nil {
		return statusError, err
	}
	st, err := setup.openStore(true)
	if err != nil {
		return statusError, err
	}
	defer st.Close()
	cl, err := bayesClassifier(st, setup)
	if err != nil {
		return statusError, err
	}
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
	var (
		n, failed int
		last      classifier.Verdict
	)
	// The classifier reads only the first MaxBytes of a message: holding
	// more of a huge one would only cost memory.
	rd := mboxReader(cmd, "classify", cl.Tokenizer().MaxBytes())
	for _, p := range paths {
		err := rd.Walk(ctx, p, func(m mailbox.Message) error {
			n++
			if m.Err != nil {
				failed++
				fmt.Fprintf(cmd.ErrOrStderr(), "sluice classify: %s: %s\n", printable(m.Name), printable(m.Err.Error()))
				return out.failed(m.Name, m.Err)
			}
			res, err := cl.ClassifyBytes(ctx, m.Data, explain)
			if err != nil {
				// The store failed: every further message would too.
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			last = res.Verdict
			return out.result(m.Name, res)
		})
		if err != nil {
			return statusError, err
		}
	}
	if err := w.Flush(); err != nil {
		return statusError, err
	}
	switch {
	case n == 0:
		// No verdict to report; a script expecting one message must
		// not read the 0 of "all fine" as spam.
		if len(paths) == 0 {
			return statusError, fmt.Errorf("no messages: --list %s names no path", list)
		}
		return statusError, fmt.Errorf("no messages found in %s", strings.Join(paths, ", "))
	case n == 1 && failed == 0:
		return verdictExit(last), nil
	case failed > 0:
		return statusError, nil
	}
	return 0, nil
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

func spamicity(f float64) string { return strconv.FormatFloat(f, 'f', 6, 64) }

// tsvField keeps a path on its line and in its column: tabs and line
// breaks in a file name are written as \t, \n and \r, and a backslash as
// \\, so that "a<TAB>b" and a file named `a\tb` print differently.
var tsvField = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

type tsvResult struct{ w io.Writer }

func (t tsvResult) result(name string, res classifier.Result) error {
	_, err := fmt.Fprintf(t.w, "%s\t%s\t%s\n", tsvField.Replace(name), spamicity(res.Spamicity), res.Verdict)
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
}

// The text format is for people at a terminal: a file name's control
// characters (an escape sequence, a line end) and bytes that are not
// UTF-8 (a C1 control to some terminals) are shown escaped (printable),
// as tsv and json escape them in their own ways.

func (t textResult) result(name string, res classifier.Result) error {
	line := fmt.Sprintf("%s: %s, spamicity=%s", printable(name), res.Verdict, spamicity(res.Spamicity))
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
	PathBase64 string     `json:"path_base64,omitempty"`
	Verdict    string     `json:"verdict"` // spam, ham, unsure or error
	Spamicity  *float64   `json:"spamicity,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Error      string     `json:"error,omitempty"`
	Tokens     int        `json:"tokens,omitempty"`
	Used       int        `json:"used,omitempty"`
	Truncated  bool       `json:"truncated,omitempty"`
	Clues      []jsonClue `json:"clues,omitempty"`
	Parts      []jsonPart `json:"parts,omitempty"`
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
	return j.enc.Encode(jsonLine{Path: name, PathBase64: pathBase64(name), Verdict: "error", Error: err.Error()})
}

// pathBase64 is name in base64 when it is not UTF-8, else "".
func pathBase64(name string) string {
	if utf8.ValidString(name) {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(name))
}
