package mtatest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// MilterListener opens a listener for a milter server under test and
// returns it with its spec for PostfixOptions.Milter or
// SendmailOptions.Milter. network is "unix" (a socket in a fresh directory
// under /tmp, short enough for sun_path) or "tcp" (127.0.0.1, a free port).
// The listener is closed, and the directory removed, when the test ends.
//
// Postfix's smtpd runs as the unprivileged user postfix, so the socket's
// directory is made world-searchable and the socket world-writable; on
// loopback test machines that is harmless.
func MilterListener(t testing.TB, network string) (net.Listener, string) {
	t.Helper()
	switch network {
	case "unix":
		dir, err := os.MkdirTemp("/tmp", "sl-m-")
		if err != nil {
			t.Fatalf("milter listener: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatalf("milter listener: %v", err)
		}
		path := filepath.Join(dir, "milter.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatalf("milter listener: %v", err)
		}
		t.Cleanup(func() { ln.Close() })
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatalf("milter listener: %v", err)
		}
		return ln, "unix:" + path
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("milter listener: %v", err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln, "inet:" + ln.Addr().String()
	}
	t.Fatalf("milter listener: network %q is not unix or tcp", network)
	return nil, ""
}

// DeadMilter returns a milter spec on which nothing listens, to test what
// an MTA does when its milter is down: for "unix" a path in a fresh empty
// directory, for "tcp" a loopback port that was free a moment ago.
func DeadMilter(t testing.TB, network string) string {
	t.Helper()
	switch network {
	case "unix":
		dir, err := os.MkdirTemp("/tmp", "sl-m-")
		if err != nil {
			t.Fatalf("dead milter: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return "unix:" + filepath.Join(dir, "milter.sock")
	case "tcp":
		port, err := freePort()
		if err != nil {
			t.Fatalf("dead milter: %v", err)
		}
		return "inet:" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	t.Fatalf("dead milter: network %q is not unix or tcp", network)
	return ""
}

// FailingListener is a real listener whose first Accepts fail with Errs,
// in order, wrapped as package net wraps the errors of accept(2): for
// tests of a server that must go on serving after an accept error of the
// moment (no memory or socket buffers, a connection that failed while
// it waited in the queue).
type FailingListener struct {
	net.Listener
	Errs []syscall.Errno
}

// Accept fails with the next of Errs, and once they are used up accepts.
func (l *FailingListener) Accept() (net.Conn, error) {
	if len(l.Errs) > 0 {
		errno := l.Errs[0]
		l.Errs = l.Errs[1:]
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", errno)}
	}
	return l.Listener.Accept()
}
