package mtatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// installTimeout bounds one run of testdata/install-deps.sh: an apt-get
// update plus a few packages on a slow mirror.
const installTimeout = 10 * time.Minute

// Require makes sure the test can use the given Debian packages: it must run
// as root and testdata/install-deps.sh must be able to install whatever is
// missing. If not, the test is skipped, or fails under CI=true (see
// Unavailable). With no packages it only checks for root.
func Require(t testing.TB, pkgs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root to run MTAs and install %s", strings.Join(pkgs, " "))
	}
	if len(pkgs) == 0 {
		return
	}
	if _, err := runScript(installTimeout, "install-deps.sh", pkgs...); err != nil {
		Unavailable(t, "cannot install %s: %v", strings.Join(pkgs, " "), err)
	}
}

// Unavailable reports that something the test needs is missing. Under
// CI=true that is a failure (t.Fatal): CI must never pass by skipping.
// Elsewhere the test is skipped with the reason.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("required under CI=true: %s", reason)
	}
	t.Skipf("skipped: %s", reason)
}

// testdataDir returns the repository's testdata directory, located from
// this source file so that tests in any package (any working directory)
// find the scripts.
func testdataDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate testdata: no caller information")
	}
	// This file is milter/mtatest/require.go.
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata")
	if _, err := os.Stat(filepath.Join(dir, "mta", "common.sh")); err != nil {
		return "", fmt.Errorf("locate testdata/mta: %w", err)
	}
	return dir, nil
}

// runScript runs a script below testdata (e.g. "mta/postfix-up.sh") and
// returns its standard output. Errors carry standard error.
func runScript(timeout time.Duration, name string, args ...string) (string, error) {
	dir, err := testdataDir()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(dir, name)}, args...)...)
	// The MTA binaries live in /usr/sbin, which a test's PATH may lack.
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	// The scripts start daemons with their output redirected to files; if
	// one ever kept our pipes open, Wait must still return.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return stdout.String(), fmt.Errorf("%s %s: timed out after %v\n%s", name, strings.Join(args, " "), timeout, stderr.String())
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
