package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// cliRunner times "sluice classify --list -" over the test files: one
// process per round, as bogofilter -b is run, so its time includes what a
// command pays and a daemon does not (the process start, opening the
// store, reading the n-gram model, building the token index) and reads
// each file as the command does.
type cliRunner struct {
	bin, config, db string
}

// newCLIRunner builds the sluice command into dir and writes a
// configuration that gives its bayes filter the parameters p, so that it
// scores as the in-process rounds do.
func newCLIRunner(dir, db string, p classifier.Params) (*cliRunner, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out)
	}
	config := filepath.Join(dir, "classify.yml")
	conf := fmt.Sprintf("state_dir: %s\nfilters:\n  - type: bayes\n    options:\n"+
		"      robx: %g\n      robs: %g\n      min_dev: %g\n      spam_cutoff: %g\n      ham_cutoff: %g\n      min_spam: 0\n      min_ham: 0\n",
		dir, p.RobX, p.RobS, p.MinDev, p.SpamCutoff, p.HamCutoff)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return &cliRunner{bin: bin, config: config, db: db}, nil
}

// score runs one round and returns its seconds. Every verdict must be the
// in-process run's (want, in the order of test).
func (c *cliRunner) score(test []sample, want []scored) (float64, error) {
	var list strings.Builder
	index := make(map[string]int, len(test))
	for i, s := range test {
		list.WriteString(s.path + "\n")
		index[s.path] = i
	}
	cmd := exec.Command(c.bin, "classify", "--config", c.config, "--db", c.db, "--format", "tsv", "--list", "-")
	cmd.Stdin = strings.NewReader(list.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	secs := time.Since(start).Seconds()
	// The exit status is the verdict of the last message, 3 on error.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() <= 2) {
		return 0, fmt.Errorf("sluice classify: %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(test) {
		return 0, fmt.Errorf("sluice classify: %d results for %d messages\n%s", len(lines), len(test), stderr.String())
	}
	for _, line := range lines {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return 0, fmt.Errorf("sluice classify output %q", line)
		}
		i, ok := index[f[0]]
		if !ok {
			return 0, fmt.Errorf("sluice classify output for unknown path %q", f[0])
		}
		if _, err := strconv.ParseFloat(f[1], 64); err != nil {
			return 0, fmt.Errorf("sluice classify output %q: %w", line, err)
		}
		if want != nil && f[2] != want[i].verdict.String() {
			return 0, fmt.Errorf("sluice classify: %s is %s, in process %s", f[0], f[2], want[i].verdict)
		}
	}
	return secs, nil
}

// perMessage times one "sluice classify FILE" process per message over
// test, as a procmail recipe runs it (and as bogofilter-milter runs
// bogofilter), and returns the seconds. Each exit status must be the
// verdict of the in-process run (want, in the order of test).
func (c *cliRunner) perMessage(test []sample, want []scored) (float64, error) {
	return timeEach(test, want, func(s sample) *exec.Cmd {
		return exec.Command(c.bin, "classify", "--config", c.config, "--db", c.db, s.path)
	})
}

// bogofilterPerMessage is perMessage for bogofilter; want is its bulk
// run's.
func bogofilterPerMessage(dir string, test []sample, want []scored) (float64, error) {
	return timeEach(test, want, func(s sample) *exec.Cmd {
		return exec.Command("bogofilter", "-d", dir, "-I", s.path)
	})
}

// timeEach runs the command of each sample in turn and returns the
// seconds they took in all. Both programs give the verdict as the exit
// status: 0 spam, 1 ham, 2 unsure, 3 error.
func timeEach(test []sample, want []scored, command func(sample) *exec.Cmd) (float64, error) {
	var secs float64
	for i, s := range test {
		cmd := command(s)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		secs += time.Since(start).Seconds()
		status := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			status = ee.ExitCode()
		} else if err != nil {
			return 0, fmt.Errorf("%s: %w", cmd.Path, err)
		}
		var got classifier.Verdict
		switch status {
		case 0:
			got = classifier.VerdictSpam
		case 1:
			got = classifier.VerdictHam
		case 2:
			got = classifier.VerdictUnsure
		default:
			return 0, fmt.Errorf("%s %s: exit status %d\n%s", filepath.Base(cmd.Path), s.path, status, stderr.String())
		}
		if got != want[i].verdict {
			return 0, fmt.Errorf("%s %s: %s, in bulk %s", filepath.Base(cmd.Path), s.path, got, want[i].verdict)
		}
	}
	return secs, nil
}
