package main

// These tests keep the command lines in README.md and docs/ true to the
// command tree of newRootCmd, in the manner of docs_test.go: every
// command a reader can run is documented with every flag it has, and
// every `sluice ...` command line the docs show names commands and flags
// that exist.

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluice-mail/sluice/filters"
)

// docCommand is one command line of the docs, from the word sluice on.
type docCommand struct {
	file string
	line int
	args []string
}

// shellEnd matches the words that end a command on a shell line.
var shellEnd = regexp.MustCompile(`^(\||\|\||&&|;|>|>>|<|2>|2>&1|#|\)|&)`)

// docCommands returns the sluice command lines of the docs: the lines of
// fenced blocks and the code spans of prose in which a word "sluice" (or
// a path ending in /sluice) is followed by one of the top-level commands
// of root or by a flag. "sluice train: PATH: reason", an error message,
// is not a command line.
func docCommands(t *testing.T, root *cobra.Command) []docCommand {
	t.Helper()
	var out []docCommand
	add := func(file string, line int, text string) {
		words := strings.Fields(text)
		for i := 0; i < len(words); i++ {
			w := strings.Trim(words[i], "`$(")
			if w != "sluice" && !strings.HasSuffix(w, "bin/sluice") || i+1 >= len(words) {
				continue
			}
			next, _, _ := strings.Cut(words[i+1], "=")
			if !isCommand(root, next) && root.PersistentFlags().Lookup(strings.TrimPrefix(next, "--")) == nil {
				continue
			}
			var args []string
			for _, a := range words[i+1:] {
				if shellEnd.MatchString(a) {
					break
				}
				args = append(args, strings.TrimRight(a, "`"))
			}
			out = append(out, docCommand{file: file, line: line, args: args})
			return
		}
	}
	for _, f := range docFiles(t) {
		inFence := false
		lang := ""
		for i, line := range strings.Split(readDoc(t, f), "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "```") {
				inFence = !inFence
				lang = strings.TrimPrefix(trimmed, "```")
				continue
			}
			switch {
			case inFence && (lang == "yaml" || lang == "json" || lang == "promql"):
			case inFence:
				add(f, i+1, line)
			default:
				for _, span := range codeSpans(line) {
					add(f, i+1, span)
				}
			}
		}
	}
	return out
}

func isCommand(root *cobra.Command, name string) bool {
	for _, c := range root.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return true
		}
	}
	return false
}

// TestDocCommandLines: every sluice command line in README.md and docs/
// runs a command that exists, with flags that command has.
func TestDocCommandLines(t *testing.T) {
	root := newRootCmd(registry())
	lines := docCommands(t, root)
	if len(lines) < 20 {
		t.Fatalf("found only %d sluice command lines in the docs; is the pattern broken?", len(lines))
	}
	for _, dc := range lines {
		cmd := root
		positional := false
		for i := 0; i < len(dc.args); i++ {
			// A synopsis writes choices as (--spam|--ham) or
			// stats|dump, and optional parts in brackets.
			a := strings.TrimRight(strings.TrimLeft(dc.args[i], "[("), "]).")
			if a == "--" {
				break
			}
			alts := strings.Split(a, "|")
			if strings.HasPrefix(a, "--") && len(a) > 2 {
				for _, alt := range alts {
					name, _, hasValue := strings.Cut(strings.TrimPrefix(alt, "--"), "=")
					f := cmd.Flag(name)
					if f == nil {
						t.Errorf("%s:%d: %q: %s has no flag --%s", dc.file, dc.line, strings.Join(dc.args, " "), cmd.CommandPath(), name)
						continue
					}
					if !hasValue && f.NoOptDefVal == "" && len(alts) == 1 {
						i++ // the flag's value
					}
				}
				continue
			}
			if strings.HasPrefix(a, "-") || a == "" {
				continue // -h, a shorthand, or "-" for standard input
			}
			if !positional && cmd.HasSubCommands() {
				var sub *cobra.Command
				for _, alt := range alts {
					if sub = findSub(cmd, alt); sub == nil {
						t.Errorf("%s:%d: %q: %s has no command %q", dc.file, dc.line, strings.Join(dc.args, " "), cmd.CommandPath(), alt)
					}
				}
				if len(alts) == 1 && sub != nil {
					cmd = sub
					continue
				}
				// Several commands, or none: check the flags that
				// follow against the group, whose own flags they
				// inherit.
			}
			positional = true
		}
	}
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, c := range cmd.Commands() {
		if c.Name() == name || c.HasAlias(name) {
			return c
		}
	}
	return nil
}

// TestDocCommands: every command a user can run is shown in the docs,
// and every flag of it is named in a page that shows the command.
func TestDocCommands(t *testing.T) {
	root := newRootCmd(registry())
	lines := docCommands(t, root)
	texts := map[string]string{}
	for _, f := range docFiles(t) {
		texts[f] = readDoc(t, f)
	}
	// shownIn lists the files with a command line that runs cmd.
	shownIn := func(cmd *cobra.Command) map[string]bool {
		want := strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "sluice"))
		files := map[string]bool{}
		for _, dc := range lines {
			var words []string
			for _, a := range dc.args {
				if !strings.HasPrefix(a, "-") {
					words = append(words, a)
				}
			}
			if len(words) >= len(want) && strings.Join(words[:len(want)], " ") == strings.Join(want, " ") {
				files[dc.file] = true
			}
		}
		return files
	}
	// flagsNamed checks that every flag of cmd is named in one of files.
	flagsNamed := func(cmd *cobra.Command, files map[string]bool) {
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			for file := range files {
				if strings.Contains(texts[file], "--"+f.Name) {
					return
				}
			}
			t.Errorf("%s has the flag --%s, which no page showing the command names (%v)", cmd.CommandPath(), f.Name, sortedKeys(files))
		})
	}
	var walk func(cmd *cobra.Command)
	checked := 0
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub)
		}
		if cmd == root {
			// The flags of sluice itself (--config, --version) go
			// with any command: a page that shows one may name them.
			files := map[string]bool{}
			for _, dc := range lines {
				files[dc.file] = true
			}
			flagsNamed(cmd, files)
			return
		}
		// A group (config, db, archive, senders) is shown through the
		// lines of its commands, and its flags are theirs too.
		files := shownIn(cmd)
		if len(files) == 0 {
			t.Errorf("no page of the docs shows the command %q", cmd.CommandPath())
			return
		}
		checked++
		flagsNamed(cmd, files)
	}
	walk(root)
	if checked < 10 {
		t.Fatalf("checked only %d commands", checked)
	}
}

// TestDocExitStatuses: the exit statuses the docs give for sluice
// classify (docs/training.md, and the bogofilter note of docs/install.md)
// and sluice test (docs/install.md) are those of the code, usage errors
// included.
func TestDocExitStatuses(t *testing.T) {
	classify := map[string]int{"spam": statusSpam, "ham": statusHam, "unsure": statusUnsure, "error": statusError}
	training := readDoc(t, "docs/training.md")
	_, section, ok := strings.Cut(training, "\n### Exit status\n")
	if !ok {
		t.Fatal(`docs/training.md has no section "Exit status"`)
	}
	section, _, _ = strings.Cut(section, "\n#")
	got := map[string]int{}
	for _, tbl := range mdTables(section) {
		if tbl.column("Status") != 0 {
			continue
		}
		for _, r := range tbl.rows {
			code, err := strconv.Atoi(r.cell(0))
			word, _, _ := strings.Cut(r.cell(1), " ")
			if err != nil {
				t.Errorf("docs/training.md, Exit status: %q is not a status", r.cell(0))
				continue
			}
			got[word] = code
		}
	}
	if !reflect.DeepEqual(got, classify) {
		t.Errorf("docs/training.md gives the exit statuses of sluice classify as %v, the code's are %v", got, classify)
	}
	install := readDoc(t, "docs/install.md")
	bogo := regexp.MustCompile(`same exit statuses \(([^)]*)\)`).FindStringSubmatch(install)
	if bogo == nil {
		t.Fatal("docs/install.md no longer names the exit statuses of sluice classify")
	}
	got = map[string]int{}
	for _, part := range strings.Split(bogo[1], ", ") {
		code, word, _ := strings.Cut(part, " ")
		n, err := strconv.Atoi(code)
		if err != nil {
			t.Errorf("docs/install.md: %q is not a status and its meaning", part)
		}
		got[word] = n
	}
	if !reflect.DeepEqual(got, classify) {
		t.Errorf("docs/install.md gives the exit statuses of sluice classify as %v, the code's are %v", got, classify)
	}

	// sluice test: "- The exit status is the verdict: `0` delivered, ...".
	_, item, ok := strings.Cut(install, "\n- The exit status is the verdict:")
	if !ok {
		t.Fatal("docs/install.md no longer lists the exit statuses of sluice test")
	}
	item, _, _ = strings.Cut(item, "\n\n")
	item, _, _ = strings.Cut(item, "\n- ")
	want := map[string]int{
		"delivered":  testExitCode(filters.Accept),
		"discard":    testExitCode(filters.Discard),
		"quarantine": testExitCode(filters.Quarantine),
		"tempfail":   testExitCode(filters.Tempfail),
		"reject":     testExitCode(filters.Reject),
		"error":      testExitError,
		"usage":      2,
	}
	got = map[string]int{}
	for _, m := range regexp.MustCompile("`(\\d+)`(?: means an| a)? (\\w+)").FindAllStringSubmatch(strings.Join(strings.Fields(item), " "), -1) {
		n, _ := strconv.Atoi(m[1])
		got[m[2]] = n
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docs/install.md gives the exit statuses of sluice test as %v, the code's are %v", got, want)
	}

	// Usage errors exit as documented.
	if r := runCLI(t, "", "classify", "--no-such-flag"); r.code != classify["error"] {
		t.Errorf("sluice classify with an unknown flag exits %d, docs/training.md says %d", r.code, classify["error"])
	}
	if r := runCLI(t, "", "test", "--no-such-flag"); r.code != want["usage"] {
		t.Errorf("sluice test with an unknown flag exits %d, docs/install.md says %d", r.code, want["usage"])
	}
}

// TestDocInstallFromSource: the steps of "From source" in docs/install.md
// work in the order given: the file the build commands write is the one
// the next step installs as /usr/bin/sluice, and the files it installs
// from the checkout exist.
func TestDocInstallFromSource(t *testing.T) {
	install := readDoc(t, "docs/install.md")
	_, section, ok := strings.Cut(install, "\n## From source\n")
	if !ok {
		t.Fatal(`docs/install.md has no section "From source"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	built := map[string]bool{}
	var installed []string
	for _, line := range strings.Split(section, "\n") {
		words := strings.Fields(line)
		switch {
		case len(words) >= 2 && words[0] == "make" && words[1] == "build":
			built["bin/sluice"] = true // the Makefile's target
		case len(words) > 0 && (words[0] == "go" || strings.HasPrefix(words[0], "CGO_ENABLED=")) && strings.Contains(line, " build "):
			for i, w := range words {
				if w == "-o" && i+1 < len(words) {
					built[words[i+1]] = true
				}
			}
		case len(words) >= 4 && words[0] == "install" && words[1] == "-m":
			if src := words[3]; !strings.HasPrefix(src, "/") {
				installed = append(installed, src)
			}
			if words[len(words)-1] == "/usr/bin/sluice" && !built[words[3]] {
				t.Errorf("docs/install.md installs %s as /usr/bin/sluice, but its build commands write %v", words[3], sortedKeys(built))
			}
		}
	}
	if len(built) == 0 || len(installed) < 3 {
		t.Fatalf("found builds %v and installed files %v in docs/install.md, From source; is the pattern broken?", sortedKeys(built), installed)
	}
	if !built["bin/sluice"] || len(built) != 1 {
		t.Errorf("the build commands of docs/install.md, From source, write %v: each should write bin/sluice, which the next step installs", sortedKeys(built))
	}
	for _, f := range installed {
		if f == "bin/sluice" {
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, f)); err != nil {
			t.Errorf("docs/install.md, From source, installs %s from the checkout: %v", f, err)
		}
	}
}

// TestDocHelpNames: the names with an underscore that the help texts use
// (configuration keys and options such as state_dir, subjects such as
// mail_from, MTA parameters and macros) are names the docs use too, in a
// code span: a help text cannot send the reader after an option that has
// another name.
func TestDocHelpNames(t *testing.T) {
	root := newRootCmd(registry())
	spans := map[string]bool{}
	for _, f := range docFiles(t) {
		for _, line := range strings.Split(readDoc(t, f), "\n") {
			for _, s := range codeSpans(line) {
				for _, w := range strings.FieldsFunc(s, func(r rune) bool {
					return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
				}) {
					spans[w] = true
				}
			}
		}
	}
	snake := regexp.MustCompile(`\b[a-z0-9]+(?:_[a-z0-9]+)+\b`)
	checked := 0
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
		text := cmd.Short + "\n" + cmd.Long + "\n" + cmd.Use
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) { text += "\n" + f.Usage })
		for _, name := range snake.FindAllString(text, -1) {
			checked++
			if !spans[name] {
				t.Errorf("the help of %q names %s, which no page of the docs names in a code span", cmd.CommandPath(), name)
			}
		}
	}
	walk(root)
	if checked < 5 {
		t.Fatalf("found only %d names in the help texts; is the pattern broken?", checked)
	}
}

// config check without a file to read says that it checked the built-in
// defaults, so that an administrator whose file is elsewhere does not
// take the output for a check of that file.
func TestConfigCheckOnDefaults(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "sluice.yml")
	c := &cli{configPath: missing, reg: testRegistry()}
	cmd := c.newConfigCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs([]string{"check"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "sluice config check: no file at " + missing + ": these are the built-in defaults\n"; errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	if !strings.Contains(out.String(), "inet:127.0.0.1:7357") {
		t.Errorf("stdout lacks the default listener:\n%s", out.String())
	}
	// A file that is there is checked without a word on standard error.
	os.WriteFile(missing, []byte("log:\n  level: debug\n"), 0o644)
	out.Reset()
	errb.Reset()
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if errb.Len() != 0 || !strings.Contains(out.String(), "level: debug") {
		t.Errorf("with a file: stderr %q, stdout:\n%s", errb.String(), out.String())
	}
}

// TestUsageErrorsExitStatus: every usage error exits 2, as README.md
// says and as an unknown flag did, classify's 3, its status of every
// error (its 2 means unsure). Cobra's own refusals (flags that exclude
// or require each other, a wrong number of arguments, an unknown
// command) and the command lines the commands refuse themselves exited 1,
// the status of a failure: "train --spam --ham", "senders test" without
// an address.
func TestUsageErrorsExitStatus(t *testing.T) {
	readme := readDoc(t, "README.md")
	if !strings.Contains(strings.Join(strings.Fields(readme), " "), "and `2` on a usage error") {
		t.Error("README.md no longer says that a usage error exits 2")
	}
	for _, tc := range []struct {
		want int
		args []string
	}{
		{statusUsage, []string{"train", "--spam", "--ham", "/dev/null"}},
		{statusUsage, []string{"train", "/dev/null"}},
		{statusUsage, []string{"train", "--spam", "-", "-"}},
		{statusUsage, []string{"senders", "test"}},
		{statusUsage, []string{"senders", "test", "a@example.org", "b@example.org"}},
		{statusUsage, []string{"senders", "test", "--match", "helo", "a@example.org"}},
		{statusUsage, []string{"senders", "test", "--file", "/dev/null", "--match", "envelope", "a@example.org"}},
		{statusUsage, []string{"serve", "extra"}},
		{statusUsage, []string{"config", "check", "a.yml", "b.yml"}},
		{statusUsage, []string{"config", "check", ""}},
		{statusUsage, []string{"config", "chek"}},
		{statusUsage, []string{"no-such-command"}},
		{statusUsage, []string{"archive", "show", "/dev/null"}},
		{statusUsage, []string{"archive", "move", "--queue-id", "Q1", "/dev/null"}},
		{statusUsage, []string{"archive", "move", "--queue-id", "Q1", "--to", "notaverdict", "/dev/null"}},
		{statusUsage, []string{"train", "--spam", "--db", "redis://127.0.0.1:6379/0?bogus=1", "/dev/null"}},
		{statusUsage, []string{"train", "--spam", "--db", "redis://127.0.0.1:6379/0?timeout=banana", "/dev/null"}},
		{statusUsage, []string{"db", "stats", "--db", "redis://127.0.0.1:notaport"}},
		{statusError, []string{"classify", "--db", "redis://127.0.0.1:6379/0?bogus=1", "/dev/null"}},
		{statusUsage, []string{"db", "prune"}},
		{statusUsage, []string{"--config", "", "test"}},
		{statusUsage, []string{"test", "-", "-"}},
		{statusError, []string{"classify", "-", "-"}},
		{statusError, []string{"classify", "--list", ""}},
		{statusError, []string{"--config", "", "classify"}},
		{statusError, []string{"classify", "--no-such-flag"}},
	} {
		r := runCLI(t, "", tc.args...)
		if r.code != tc.want || !strings.Contains(r.stderr, "for usage") {
			t.Errorf("sluice %q: exit %d, want %d with a pointer to the help; stderr %q", tc.args, r.code, tc.want, r.stderr)
		}
	}
}

// TestDocTrainExitStatuses: the exit statuses docs/training.md gives for
// sluice train are those a script sees, case by case.
func TestDocTrainExitStatuses(t *testing.T) {
	text := strings.Join(strings.Fields(readDoc(t, "docs/training.md")), " ")
	_, para, ok := strings.Cut(text, "A message that cannot be read (missing file, blank file) is reported on standard error as `sluice train: PATH: reason`;")
	if !ok {
		t.Fatal("docs/training.md no longer says what sluice train does with a message that cannot be read")
	}
	_, para, ok = strings.Cut(para, " It is 0 when ")
	if !ok {
		t.Fatal("docs/training.md no longer lists the exit statuses of sluice train")
	}
	para, _, _ = strings.Cut(para, ". ")
	docs := map[int]string{}
	for _, part := range strings.Split(para, "; ") {
		code, what, ok := strings.Cut(part, " for ")
		if n, err := strconv.Atoi(code); ok && err == nil {
			docs[n] = what
		}
	}
	dir := t.TempDir()
	msg := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(msg, []byte("From: a@example.org\nSubject: hello\n\nhello there\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.db")
	for _, c := range []struct {
		args   []string
		status int
		phrase string // in what the docs give for status
	}{
		{[]string{"--spam", "--no-such-flag", msg}, 2, "an unknown flag"},
		{[]string{msg}, 2, "neither or both of `--spam` and `--ham`"},
		{[]string{"--spam", "--ham", msg}, 2, "neither or both of `--spam` and `--ham`"},
		{[]string{"--spam", "--unlearn", msg}, 1, "the store cannot be opened"},
	} {
		r := runCLI(t, "", append([]string{"train", "--db", missing}, c.args...)...)
		if r.code != c.status {
			t.Errorf("train %v: exit %d, want %d; stderr %q", c.args, r.code, c.status, r.stderr)
		}
		if !strings.Contains(docs[c.status], c.phrase) {
			t.Errorf("train %v exits %d, but docs/training.md gives %d for %q, not for %s", c.args, c.status, c.status, docs[c.status], c.phrase)
		}
	}
}
