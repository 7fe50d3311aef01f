package milter

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
)

// Address is a listener address in Postfix's milter syntax, so that what an
// administrator writes in smtpd_milters can be pasted into sluice's config:
//
//	unix:/run/sluice/sluice.sock
//	inet:127.0.0.1:7357
//	inet:[::1]:7357
//
// inet6:[::1]:7357 is taken too, but Postfix does not take it: it knows
// the kinds inet, unix and local only (3.7 logs "invalid transport name:
// inet6 in Milter service" and applies milter_default_action to every
// message).
type Address struct {
	// Network is "unix", "tcp4" or "tcp6".
	Network string
	// Addr is the socket path or host:port.
	Addr string
}

// String returns the address in Postfix syntax, an IPv6 address in
// brackets after inet:. Only a host name bound as IPv6 (inet6:NAME:PORT)
// has no Postfix spelling, and keeps inet6:, so that it reads back as
// what it is.
func (a Address) String() string {
	switch a.Network {
	case "unix":
		return "unix:" + a.Addr
	case "tcp6":
		if host, _, err := net.SplitHostPort(a.Addr); err != nil || net.ParseIP(host) == nil {
			return "inet6:" + a.Addr
		}
	}
	return "inet:" + a.Addr
}

// ParseAddress parses a listener address in Postfix syntax. A host is
// required for inet and inet6: sluice never listens on all interfaces
// unless told so explicitly (e.g. "inet:0.0.0.0:7357").
func ParseAddress(s string) (Address, error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Address{}, fmt.Errorf("listener %q: want unix:/path, inet:host:port or inet:[host]:port for IPv6", s)
	}
	switch kind {
	case "unix", "local":
		if !filepath.IsAbs(rest) {
			return Address{}, fmt.Errorf("listener %q: socket path must be absolute", s)
		}
		if len(rest) > 107 {
			return Address{}, fmt.Errorf("listener %q: socket path longer than 107 bytes", s)
		}
		if strings.HasSuffix(rest, "/") {
			// The path of a directory: the same text in the MTA's
			// milter setting would never reach the socket.
			return Address{}, fmt.Errorf("listener %q: socket path ends in \"/\"", s)
		}
		if last := rest[strings.LastIndex(rest, "/")+1:]; last == "." || last == ".." {
			// Cleaned, "/run/sluice/." would put the socket in the
			// directory's place; the MTA, resolving the text as
			// written, would look in the directory.
			return Address{}, fmt.Errorf("listener %q: socket path names a directory (its last element is %q)", s, last)
		}
		if strings.ContainsFunc(rest, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
			// Postfix splits smtpd_milters at blanks and commas (3.7
			// took unix:/tmp/my milter/s.sock for unix:/tmp/my and a
			// second milter), Sendmail its S= at commas: the socket
			// would be served, and no MTA reach it.
			return Address{}, fmt.Errorf("listener %q: socket path has a blank, comma or control character; an MTA's milter setting could not name it", s)
		}
		return Address{Network: "unix", Addr: filepath.Clean(rest)}, nil
	case "inet", "inet6":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Address{}, fmt.Errorf("listener %q: %s", s, addressForm(kind, rest))
		}
		if host == "" {
			return Address{}, fmt.Errorf("listener %q: host is missing (write e.g. inet:127.0.0.1:7357)", s)
		}
		if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			// "inet: 127.0.0.1:7357" passed here and failed only at
			// start, looking up the host " 127.0.0.1".
			return Address{}, fmt.Errorf("listener %q: host %q has a blank or control character", s, host)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return Address{}, fmt.Errorf("listener %q: bad port %q", s, port)
		}
		network := "tcp4"
		ip := net.ParseIP(host)
		switch {
		case kind == "inet6":
			network = "tcp6"
			if ip != nil && ip.To4() != nil {
				return Address{}, fmt.Errorf("listener %q: inet6 needs an IPv6 host", s)
			}
		case ip != nil && ip.To4() == nil:
			// inet:[::1]:7357, as Postfix writes an IPv6 milter
			// address: it has no inet6: kind. net.SplitHostPort
			// takes an IPv6 address in brackets only.
			network = "tcp6"
		}
		return Address{Network: network, Addr: net.JoinHostPort(host, port)}, nil
	}
	return Address{}, fmt.Errorf("listener %q: unknown kind %q (want unix, inet or inet6)", s, kind)
}

// addressForm says what is wrong with rest, the part after "inet:" or
// "inet6:" that net.SplitHostPort refused: Sendmail's PORT@HOST (an
// administrator who copies the S= of sendmail.mc), or no HOST:PORT at
// all. net.SplitHostPort's own words ("missing port in address" for
// inet:7357) would send the reader after the wrong half.
func addressForm(kind, rest string) string {
	want := "want inet:HOST:PORT, e.g. inet:127.0.0.1:7357 (inet:[::1]:7357 for IPv6)"
	if kind == "inet6" {
		want = "want inet6:[HOST]:PORT, e.g. inet6:[::1]:7357"
	}
	if port, host, ok := strings.Cut(rest, "@"); ok && port != "" && host != "" && !strings.ContainsAny(port, ":[]") {
		if kind == "inet6" || strings.Contains(host, ":") {
			// An IPv6 address goes in brackets, after inet: too.
			host = "[" + strings.Trim(host, "[]") + "]"
		}
		return fmt.Sprintf("%s:%s@%s is Sendmail's form; sluice writes it %s:%s:%s", kind, port, strings.Trim(host, "[]"), kind, host, port)
	}
	return want
}

// UnixOptions sets the owner and permissions of a unix socket, so that the
// MTA's user can connect (Postfix's smtpd runs as "postfix").
type UnixOptions struct {
	// Mode is the socket's permission bits, e.g. 0660.
	Mode os.FileMode
	// Group, when set, becomes the socket's group (name or numeric id).
	Group string
	// CheckInterval is how often the listener checks that its socket
	// file is still at its path; 0 means DefaultSocketCheckInterval.
	CheckInterval time.Duration
}

// DefaultSocketCheckInterval is how often a unix listener looks for its
// socket file by default. A socket file removed or replaced while the
// daemon runs (an rm, a cleaner of old files, a second daemon started on
// the path once it was free) leaves the listener alive but unreachable:
// every MTA connection fails and the MTA applies its milter default
// action to all mail, while nothing in sluice would show it. One lstat(2)
// every few seconds costs nothing and bounds that time.
const DefaultSocketCheckInterval = 5 * time.Second

// Listen opens a listener. For a unix socket an existing file at the path
// is replaced only if it is a socket nobody answers on (left behind by a
// crash); a live socket means another daemon runs there, and that is an
// error rather than a silent takeover.
func Listen(a Address, opts UnixOptions) (net.Listener, error) {
	if a.Network != "unix" {
		ln, err := net.Listen(a.Network, a.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		return ln, nil
	}
	if err := removeStaleSocket(a.Addr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", a, err)
	}
	if err := mkdirSearchable(filepath.Dir(a.Addr)); err != nil {
		return nil, fmt.Errorf("listen %s: %w", a, err)
	}
	ul, err := listenUnix(a.Addr, opts)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", a, err)
	}
	fi, err := os.Lstat(a.Addr)
	if err != nil {
		ul.Close()
		return nil, fmt.Errorf("listen %s: %w", a, err)
	}
	every := opts.CheckInterval
	if every <= 0 {
		every = DefaultSocketCheckInterval
	}
	own := &unixListener{UnixListener: ul, path: a.Addr, file: fi, stop: make(chan struct{})}
	go own.watch(every)
	return own, nil
}

// unixListener removes its socket file when it is closed, if the file at
// the path is still the one it bound. Go's own unlink on close removes
// whatever is there by then: after the file was deleted while the daemon
// ran (a tmp cleaner, an rm), that may be the live socket of the daemon
// started since, or a file that is not a socket at all.
//
// It also watches the path: once its socket file is gone from there,
// nobody can connect to it any more, and Accept fails with an error
// saying so (see watch).
type unixListener struct {
	*net.UnixListener
	path string
	file fs.FileInfo
	once sync.Once
	stop chan struct{}

	mu sync.Mutex
	// lost is set when the socket file was found removed or replaced.
	lost error
}

// watch checks every interval that the socket file at the path is still
// the one bound. When it is not, it records why and closes the socket,
// so that Accept returns that error: a listener nobody can reach fails
// as a listener, and the daemon stops for its supervisor to start it
// again, which makes the socket anew. The bound socket keeps its inode
// alive, so another file at the path never has the same identity. An
// lstat that fails otherwise (a directory made unsearchable) says
// nothing about the socket and is ignored.
func (l *unixListener) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		fi, err := os.Lstat(l.path)
		var lost error
		switch {
		case errors.Is(err, fs.ErrNotExist):
			lost = fmt.Errorf("socket file %s was removed while sluice ran; the MTA can no longer connect to it", l.path)
		case err == nil && !os.SameFile(fi, l.file):
			lost = fmt.Errorf("socket file %s was replaced while sluice ran; the MTA can no longer connect to this listener", l.path)
		}
		if lost == nil {
			continue
		}
		l.mu.Lock()
		l.lost = lost
		l.mu.Unlock()
		l.UnixListener.Close()
		return
	}
}

// Accept returns the next connection; once watch found the socket file
// gone, it returns the error that says so.
func (l *unixListener) Accept() (net.Conn, error) {
	c, err := l.UnixListener.Accept()
	if err != nil {
		l.mu.Lock()
		lost := l.lost
		l.mu.Unlock()
		if lost != nil {
			return nil, lost
		}
	}
	return c, err
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		close(l.stop)
		if fi, lerr := os.Lstat(l.path); lerr == nil && os.SameFile(fi, l.file) {
			os.Remove(l.path)
		}
	})
	return err
}

// listenBacklog is the queue of connections not yet accepted; the kernel
// caps it at net.core.somaxconn, as it does Go's own listeners.
const listenBacklog = 4096

// listenUnix binds a unix socket at path and gives it its group and mode
// before it listens. Until listen(2) a connection is refused, as if the
// daemon were not up yet; net.Listen binds and listens at once, which
// leaves the umask's mode (often 0755) on a live socket for a moment: the
// MTA is refused with EACCES then, or a local user let in.
func listenUnix(path string, opts UnixOptions) (*net.UnixListener, error) {
	// The group is looked up first (it may read /etc/group or ask NSS):
	// while the socket is bound but not listening, another instance
	// starting at the same path would take it for stale.
	gid := -1
	if opts.Group != "" {
		var err error
		if gid, err = LookupGroup(opts.Group); err != nil {
			return nil, err
		}
	}
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), path)
	// FileListener works on a duplicate of the descriptor.
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return nil, os.NewSyscallError("bind", err)
	}
	if boundHook != nil {
		boundHook(path)
	}
	if err := setSocketAccess(path, gid, opts); err != nil {
		os.Remove(path)
		return nil, err
	}
	if err := syscall.Listen(fd, listenBacklog); err != nil {
		os.Remove(path)
		return nil, os.NewSyscallError("listen", err)
	}
	if listeningHook != nil {
		listeningHook(path)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// listeningHook, when set by a test, is called as soon as a unix socket
// accepts connections.
var listeningHook func(path string)

// boundHook, when set by a test, is called as soon as a unix socket is
// bound, before it gets its group and mode.
var boundHook func(path string)

// staleHook, when set by a test, is called when the socket file at path
// was found stale, before it is removed.
var staleHook func(path string)

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; not touching it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	if staleHook != nil {
		staleHook(path)
	}
	// Only the file probed is stale: another instance starting at the
	// same moment may have replaced it with its own socket since. That
	// socket may well get the inode number just freed; its time of
	// creation tells it apart from a file left by a crash.
	if now, err := os.Lstat(path); err != nil || !os.SameFile(now, fi) || !now.ModTime().Equal(fi.ModTime()) {
		return fmt.Errorf("%s was replaced while probed (another instance starting?); not touching it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

func setSocketAccess(path string, gid int, opts UnixOptions) error {
	mode := opts.Mode
	if mode == 0 {
		mode = 0o660
	}
	return socketFileAccess(path, gid, opts.Group, mode)
}

// LookupGroup returns the id of the group g, a name or a number, that a
// unix listener's socket is to get (UnixOptions.Group). Listen looks it
// up; a configuration can be checked with it before.
func LookupGroup(g string) (int, error) {
	if id, err := strconv.Atoi(g); err == nil {
		// chown(2) reads -1 (and its unsigned form) as "leave the
		// group", which would leave the socket's group silently as it
		// was.
		if id < 0 || id >= 1<<32-1 {
			return 0, fmt.Errorf("group %q: not a group id", g)
		}
		return id, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", g, err)
	}
	id, err := strconv.Atoi(grp.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q: non-numeric gid %q", g, grp.Gid)
	}
	return id, nil
}

// chgrpChmodPath sets the group (gid, unless negative; group names it for
// errors) and mode of the socket at path, once the caller has made sure
// path still names it.
func chgrpChmodPath(path string, gid int, group string, mode os.FileMode) error {
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			return fmt.Errorf("chgrp %s: %w", group, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// mkdirSearchable creates the missing directories of dir with mode 0755,
// whatever the umask: the MTA's user (postfix, smmsp) must be able to
// search them to reach the socket, and the packaged unit's UMask=0007
// would make them 0750, owned by sluice, and the MTA fail to connect
// while sluice runs fine. Directories that exist are left as they are.
func mkdirSearchable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirSearchable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // made meanwhile, by another
		}
		return err
	}
	return os.Chmod(dir, 0o755)
}
