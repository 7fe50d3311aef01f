package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// unwritableDir returns an existing directory in which this process
// cannot create files: one with its write bits off, or, as root, whom
// those do not stop, a read-only tmpfs, unmounted when the test ends.
// Without the privilege to mount as root the test is skipped, except
// under CI, where that is a failure.
func unwritableDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spill")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return dir
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=64k"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a read-only tmpfs: %v", err)
		}
		t.Skipf("mount a read-only tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// A body.temp_dir that exists but in which sluice cannot create files
// (a directory made by root for it, a path the unit's ProtectSystem
// leaves read-only) stops the start, and fails a reload, naming the key,
// as a directory sluice cannot create does: every message larger than
// body.memory_limit would otherwise reach the filters cut short, and be
// delivered unfiltered and unarchived under on_failure: accept, until
// someone reads the "storing message body" errors.
func TestTempDirNotWritable(t *testing.T) {
	dir := unwritableDir(t)

	path := filepath.Join(t.TempDir(), "sluice.yml")
	cfg := strings.Replace(daemonConfig, "%s", "X-Tag", 1) + "body:\n  temp_dir: " + dir + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: log}
	done := make(chan error, 1)
	sigs := make(chan os.Signal, 1)
	go func() { done <- d.run(context.Background(), sigs, func(ready) { sigs <- syscall.SIGTERM }) }()
	select {
	case err := <-done:
		if want := fmt.Sprintf("%s:13: body.temp_dir: ", path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("start with an unwritable body.temp_dir: %v, want an error naming %s and saying it is not writable", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not return")
	}

	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)+"body:\n  temp_dir: "+dir+"\n"), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	if !strings.Contains(td.log.String(), td.config+":13: body.temp_dir: ") {
		t.Errorf("reload error does not name the file and line of body.temp_dir:\n%s", td.log)
	}
	if name, _ := td.addedHeader(t); name != "X-First" {
		t.Errorf("after the failed reload: header %q, want the running X-First", name)
	}
}

// A body.temp_dir that another local user owns (made in /tmp before
// sluice started, after a reboot emptied it) stops the start, and fails
// a reload, naming the key and the owner: that user could replace or
// remove the bodies sluice spills there.
func TestTempDirOtherUser(t *testing.T) {
	dir := otherUsersDir(t)
	path := filepath.Join(t.TempDir(), "sluice.yml")
	err := startError(t, path, strings.Replace(daemonConfig, "%s", "X-Tag", 1)+"body:\n  temp_dir: "+dir+"\n")
	const want = "is owned by uid 65534"
	if at := fmt.Sprintf("%s:13: body.temp_dir: ", path); err == nil || !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), want) {
		t.Errorf("start with another user's body.temp_dir: %v, want an error naming %s and saying %q", err, at, want)
	}

	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-First", 1))
	os.WriteFile(td.config, []byte(strings.Replace(daemonConfig, "%s", "X-Second", 1)+"body:\n  temp_dir: "+dir+"\n"), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reload failed") })
	if l := td.log.String(); !strings.Contains(l, td.config+":13: body.temp_dir: ") || !strings.Contains(l, want) {
		t.Errorf("reload error does not name the file and line of body.temp_dir and the owner:\n%s", l)
	}
	if name, _ := td.addedHeader(t); name != "X-First" {
		t.Errorf("after the failed reload: header %q, want the running X-First", name)
	}
}

// With body.temp_dir empty, bodies go to $TMPDIR or /tmp: a $TMPDIR that
// another local user controls stops the start, as a temp_dir named in
// the file does.
func TestTempDirSystemOtherUser(t *testing.T) {
	dir := otherUsersDir(t)
	t.Setenv("TMPDIR", dir)
	err := startError(t, filepath.Join(t.TempDir(), "sluice.yml"), strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	if err == nil || !strings.Contains(err.Error(), "body.temp_dir") || !strings.Contains(err.Error(), "is owned by uid 65534") {
		t.Errorf("start with $TMPDIR another user's: %v, want an error on body.temp_dir saying who owns it", err)
	}
}

// otherUsersDir returns a new directory that uid 65534 owns, as another
// local user's would be.
func otherUsersDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chown: %v", err)
		}
		t.Skipf("chown (needs root): %v", err)
	}
	return dir
}

// startError writes cfg to path and starts a daemon on it, stopping it
// once ready; it returns what the start returned.
func startError(t *testing.T, path, cfg string) error {
	t.Helper()
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cli: &cli{configPath: path, configSet: true, reg: filtertest.Registry()}, stderr: &syncBuffer{}}
	done := make(chan error, 1)
	sigs := make(chan os.Signal, 1)
	go func() { done <- d.run(context.Background(), sigs, func(ready) { sigs <- syscall.SIGTERM }) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not return")
		return nil
	}
}
