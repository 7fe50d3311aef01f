package milter_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sluice-mail/sluice/milter"
)

// Whoever may write the socket's directory can replace the socket file
// between its bind and its chmod with a symbolic link. sluice, often
// root, must then not give the link's target the socket's mode and group
// (a 0666 /etc/shadow); it refuses to start instead, and the target keeps
// its mode and group.
func TestUnixListenerSocketReplacedByLink(t *testing.T) {
	a, _ := socketAddress(t)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A group of ours other than the file's own, if we have one, shows a
	// chgrp through the link.
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 1000
	} else if groups, _ := os.Getgroups(); len(groups) > 0 {
		for _, g := range groups {
			if g != gid {
				gid = g
				break
			}
		}
	}
	milter.SetBoundHook(func(p string) {
		if err := os.Rename(p, p+".moved"); err != nil {
			t.Errorf("move the socket away: %v", err)
		}
		if err := os.Symlink(victim, p); err != nil {
			t.Errorf("link: %v", err)
		}
	})
	t.Cleanup(func() { milter.SetBoundHook(nil) })
	ln, err := milter.Listen(a, milter.UnixOptions{Mode: 0o666, Group: strconv.Itoa(gid)})
	if err == nil {
		ln.Close()
		t.Errorf("Listen succeeded with its socket file replaced by a link")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q, want it to say the socket file became a symbolic link", err)
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target got mode %#o, want it left at 0600", fi.Mode().Perm())
	}
	if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != os.Getgid() {
		t.Errorf("the link's target got group %d, want it left at %d", got, os.Getgid())
	}
}

// The directories sluice creates for a unix socket get mode 0755 whatever
// the umask (the packaged unit's is 0007), as the docs say: the MTA's
// user must be able to search them to reach the socket. One that exists
// is left as it is.
func TestUnixSocketDirectoriesSearchable(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	kept := filepath.Join(base, "kept")
	if err := os.Mkdir(kept, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(base, "run", "sluice", "milter.sock"), filepath.Join(kept, "new", "milter.sock")} {
		a, err := milter.ParseAddress("unix:" + path)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := milter.Listen(a, milter.UnixOptions{Mode: 0o666})
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
	}
	for dir, want := range map[string]os.FileMode{
		filepath.Join(base, "run"): 0o755, filepath.Join(base, "run", "sluice"): 0o755,
		filepath.Join(kept, "new"): 0o755, kept: 0o700,
	} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", dir, got, want)
		}
	}
}

// A numeric group that chown(2) reads as "leave the group" (-1, or its
// unsigned form) is refused, rather than leaving the socket's group
// silently as it was.
func TestUnixSocketGroupIDChecked(t *testing.T) {
	for _, g := range []string{"-1", "4294967295", "-7"} {
		a, err := milter.ParseAddress("unix:" + filepath.Join(t.TempDir(), "s.sock"))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := milter.Listen(a, milter.UnixOptions{Mode: 0o660, Group: g})
		if err == nil {
			ln.Close()
			t.Errorf("group %q taken", g)
		} else if !strings.Contains(err.Error(), "not a group id") {
			t.Errorf("group %q: %v", g, err)
		}
	}
}
