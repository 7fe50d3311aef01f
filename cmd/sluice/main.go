// Command sluice is a mail-filtering daemon for Postfix and Sendmail that
// speaks the milter protocol. See docs/ for how to run it.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultConfigPath is read when --config is not given; when it does not
// exist sluice runs on built-in defaults.
const defaultConfigPath = "/etc/sluice/sluice.yml"

func main() {
	root := newRootCmd(registry())
	if err := run(root, os.Args[1:]); err != nil {
		reportError(os.Stderr, err)
		os.Exit(exitCode(err))
	}
}

// reportError writes the error that ends sluice to w, as "sluice: ...",
// unless the command has reported it already (an *exitError without an
// error: classify's verdict, or a daemon that logged its failure). The
// error may name a path as given (an empty folder, a list, a store), and
// is shown as the per-message error lines are (printable), so that a
// file name cannot drive the terminal; its line breaks and tabs (the
// usage hint below a usage error) stay.
func reportError(w io.Writer, err error) {
	var ee *exitError
	if !errors.As(err, &ee) || ee.err != nil {
		fmt.Fprintln(w, "sluice:", escapeControls(err.Error(), "\n\t"))
	}
}

// run executes the command line args and returns what main reports; an
// *exitError carries an exit status other than 1.
func run(root *cobra.Command, args []string) error {
	if args == nil {
		// Cobra reads os.Args for a nil slice.
		args = []string{}
	}
	root.SetArgs(args)
	started := false
	noteStart(root, &started)
	cmd, err := root.ExecuteC()
	if help, _ := root.Flags().GetBool("help"); help && err == nil {
		return nil // the help asked for ("sluice --help classify")
	}
	if cmd == root {
		if i := classifyWord(args); i >= 0 {
			return misplacedClassify(root, args[:i], err)
		}
	}
	var ee *exitError
	var ue usageErr
	switch {
	case err == nil:
	case errors.As(err, &ue):
		// The command found its command line wrong, whatever status
		// it meant to give a failure.
		return usageError(cmd, err)
	case !started && !errors.As(err, &ee):
		// Cobra refused the command line before the command ran: an
		// unknown command, a wrong number of arguments, flags that
		// exclude or require each other ("train --spam --ham"). Its
		// errors are plain ones, which exited 1, the status of a
		// failure, where a bad flag exits with the usage status.
		return usageError(cmd, err)
	}
	return err
}

// usageErr marks an error in the command line that a command finds
// itself (a flag value, flags that go together), for run to give it the
// usage status.
type usageErr struct{ err error }

func (e usageErr) Error() string { return e.err.Error() }
func (e usageErr) Unwrap() error { return e.err }

// badUsage marks err as a usage error (see usageErr).
func badUsage(err error) error { return usageErr{err: err} }

// noteStart makes every command of the tree under cmd set *started when
// its RunE begins, so that run tells the errors of the command from
// cobra's refusals of the command line.
func noteStart(cmd *cobra.Command, started *bool) {
	if runE := cmd.RunE; runE != nil {
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			*started = true
			return runE(cmd, args)
		}
	}
	for _, sub := range cmd.Commands() {
		noteStart(sub, started)
	}
}

// statusUsage is the exit status of a usage error (a bad flag or
// argument), told apart from 1, an error met doing the work; classify's
// is statusError instead, as its 2 means unsure (see usageError).
const statusUsage = 2

// usageError returns err as a usage error of cmd, with the exit status
// for one and a pointer to the command's help.
func usageError(cmd *cobra.Command, err error) error {
	code := statusUsage
	if cmd.Name() == "classify" && cmd.Parent() != nil && !cmd.Parent().HasParent() {
		// bogofilter's statuses, which procmail recipes read as
		// verdicts: every error is 3.
		code = statusError
	}
	return &exitError{code: code, err: fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())}
}

// classifyWord is the index of the word classify in args, before any
// "--", or -1.
func classifyWord(args []string) int {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "classify" {
			return i
		}
	}
	return -1
}

// misplacedClassify is the error of a command line that names classify
// but on which cobra settled on no command: a flag before the word that
// sluice does not know ("sluice --bogus classify"), which cobra takes to
// consume the next word as its value, or --config without its value
// ("sluice --config $UNSET classify"). Cobra's own outcome, an unknown
// command (1) or the help (0), reads as ham or spam to a procmail recipe;
// classify's convention, bogofilter's, is 3 for any error. before is the
// part of the command line ahead of the word, err what cobra returned.
func misplacedClassify(root *cobra.Command, before []string, err error) error {
	if perr := root.ParseFlags(before); perr != nil {
		err = perr
	} else if err == nil {
		err = fmt.Errorf("no command ran: %q took classify as its value", strings.Join(before, " "))
	}
	return &exitError{code: statusError, err: fmt.Errorf("classify: %w", err)}
}

// exitError carries a specific exit status out of a command; err may be
// nil when the status says it all (e.g. classify's verdict).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// cli holds what every command shares: the global flags and the filter
// registry.
type cli struct {
	configPath string
	configSet  bool
	reg        filters.Registry
}

func newRootCmd(reg filters.Registry) *cobra.Command {
	c := &cli{reg: reg}
	root := &cobra.Command{
		Use:   "sluice",
		Short: "A mail filter for Postfix and Sendmail (milter)",
		Long: `sluice is a mail-filtering daemon that speaks the milter protocol. Postfix
(smtpd_milters) or Sendmail (INPUT_MAIL_FILTER) hand it each message; a
pipeline of filters decides whether it is delivered, tagged, held,
discarded or refused.

Configuration is one YAML file (--config, default ` + defaultConfigPath + `;
built-in defaults when that file does not exist). See docs/configuration.md.

Exit status: 0 on success, 1 on an error, 2 on a usage error (an unknown
command or flag, a wrong number of arguments, flags that go together
wrongly). classify and test report verdicts instead; see their help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, args []string) {
			c.configSet = cmd.Flags().Changed("config")
		},
	}
	root.PersistentFlags().StringVar(&c.configPath, "config", defaultConfigPath, "configuration file")
	// "sluice --version" is what administrators and scripts try first.
	root.Version = version
	root.SetVersionTemplate(versionLine() + "\n")
	root.Flags().Bool("version", false, "print the version of sluice")
	root.AddCommand(c.newServeCmd(), newVersionCmd(), c.newConfigCmd(), c.newTrainCmd(), c.newClassifyCmd(), c.newDBCmd(), c.newArchiveCmd(), c.newSendersCmd(), c.newTestCmd(), newGenManCmd())
	// Cobra refuses an unknown command at the top level only: "sluice
	// config chek FILE" printed the help of "config" and exited 0, so a
	// "config check && reload" script went ahead unchecked.
	for _, sub := range root.Commands() {
		if sub.HasSubCommands() && !sub.Runnable() {
			sub.Args = cobra.NoArgs
			sub.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	root.SetFlagErrorFunc(usageError)
	return root
}

// loadConfig reads the config named by --config (or the positional FILE
// of a command). A missing default file means built-in defaults; a
// missing file the user named is an error.
func (c *cli) loadConfig(file string) (*config.Config, error) {
	path := c.configPath
	explicit := c.configSet
	if file != "" {
		path, explicit = file, true
	}
	if explicit && path == "" {
		// "--config $UNSET": config.Load takes "" for the built-in
		// defaults, which have no filters; serve would pass every
		// message unfiltered, whatever the default file holds.
		return nil, badUsage(fmt.Errorf("--config is empty (a variable not set?): give a file, or leave --config out for %s", defaultConfigPath))
	}
	cfg, err := config.Load(path, c.reg)
	if err != nil && !explicit && errors.Is(err, fs.ErrNotExist) {
		// A symlink whose target is gone (a configuration on a mount
		// that is not there) is not "no file": running on the defaults
		// would pass mail unfiltered.
		if _, lerr := os.Lstat(path); lerr == nil {
			return nil, fmt.Errorf("%s is a symlink to a missing file: %w", path, err)
		}
		return config.Default(), nil
	}
	return cfg, err
}

// versionLine is what "sluice version" and "sluice --version" print.
func versionLine() string {
	return fmt.Sprintf("sluice %s (%s %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of sluice",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}

func (c *cli) newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with the configuration file",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check [FILE]",
		Short: "Check a configuration file and print the effective configuration",
		Long: `Check reads the configuration (FILE, else --config), builds every filter
to check its options, and prints the effective configuration with all
defaults filled in. Errors name the file, the line and the key, and the
exit status is 1. Without --config or FILE, and with no file at the
default path, it checks the built-in defaults and says so on standard
error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				if args[0] == "" {
					// "config check $NEW" with NEW unset: checking
					// the --config file instead would pass a file
					// nobody meant.
					return badUsage(errors.New("FILE is empty (a variable not set?): name the file to check, or give no FILE for the --config file"))
				}
				file = args[0]
			}
			cfg, err := c.loadConfig(file)
			if err != nil {
				return err
			}
			if cfg.File == "" {
				// Said, so that "check" of a file that is not where
				// sluice looks is not taken for a check of that file.
				fmt.Fprintf(cmd.ErrOrStderr(), "sluice config check: no file at %s: these are the built-in defaults\n", c.configPath)
			}
			// serve creates a missing body.temp_dir, but one that is not
			// a directory, or lies below a file, stops it, and a reload
			// too.
			if dir := cfg.Body.TempDir; dir != "" {
				fi, err := os.Stat(dir)
				if err == nil && !fi.IsDir() || errors.Is(err, syscall.ENOTDIR) {
					return cfg.At("body.temp_dir", fmt.Errorf("%s is not a directory", dir))
				}
			}
			if err := cfg.CheckGroups(); err != nil {
				return err
			}
			// The filters' warnings (a senders rule that can never
			// take effect), which the daemon would log: not errors, so
			// the exit status stays 0, but the check is where an
			// administrator who edited a file should see them.
			warn := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			if err := config.Check(cfg, c.reg, warn); err != nil {
				return err
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	return cmd
}
