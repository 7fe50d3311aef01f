package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pathLocks serialises the appends of one process to one file: sessions
// of the daemon wait here, cheaply and in order, instead of polling the
// dot-lock against each other. Entries are removed when unused, so a
// path template with recipients does not grow the map without bound.
type pathLocks struct {
	mu sync.Mutex
	m  map[string]*pathLock
}

type pathLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// lock waits for path's lock, or until ctx ends.
func (p *pathLocks) lock(ctx context.Context, path string) (unlock func(), err error) {
	p.mu.Lock()
	if p.m == nil {
		p.m = map[string]*pathLock{}
	}
	l := p.m[path]
	if l == nil {
		l = &pathLock{ch: make(chan struct{}, 1)}
		p.m[path] = l
	}
	l.refs++
	p.mu.Unlock()
	release := func() {
		p.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(p.m, path)
		}
		p.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	return func() {
		<-l.ch
		release()
	}, nil
}

// lockHolder identifies this process in the dot-locks it creates: its pid
// and start time (so that a process that got the pid of a dead holder,
// as a restarted daemon in a container does, is not taken for it) and
// the host.
type lockHolder struct {
	pid   int
	start uint64
	host  string
}

func thisProcess() lockHolder {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	pid := os.Getpid()
	start, _ := processStart(pid)
	return lockHolder{pid: pid, start: start, host: strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, host)}
}

// dotLockContent is what sluice writes into a dot-lock: who holds it and
// how long the mbox was before the append. If the holder dies in the
// middle of an append, the next sluice writer finds the lock, sees the
// process is gone, and cuts the mbox back to that length, so a
// half-written record never stays in the mbox.
func (h lockHolder) dotLockContent(size int64) string {
	return fmt.Sprintf("sluice pid=%d start=%d host=%s size=%d\n", h.pid, h.start, h.host, size)
}

// sluiceLock is a parsed sluice dot-lock.
type sluiceLock struct {
	pid   int
	start uint64
	host  string
	size  int64
}

func parseDotLock(b []byte) (sluiceLock, bool) {
	var l sluiceLock
	fields := strings.Fields(string(b))
	if len(fields) != 5 || fields[0] != "sluice" {
		return l, false
	}
	seen := 0
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pid":
			l.pid, err = strconv.Atoi(v)
		case "start":
			l.start, err = strconv.ParseUint(v, 10, 64)
		case "host":
			l.host = v
		case "size":
			l.size, err = strconv.ParseInt(v, 10, 64)
		default:
			return l, false
		}
		if err != nil {
			return l, false
		}
		seen++
	}
	return l, seen == 4 && l.pid > 0 && l.size >= 0
}

// staleLockAge is how old a dot-lock that sluice cannot attribute to a
// process must be before it is removed: procmail's default lock timeout
// (LOCKTIMEOUT, 1024 s). No archive append takes that long.
const staleLockAge = 1024 * time.Second

// errLockBusy says another holder has one of the mbox's locks, or the
// file was replaced while we waited: trying again may succeed. Any other
// error (no permission, a full disk) would only repeat, and is returned
// at once.
var errLockBusy = errors.New("held by another process")

// errStaleDotLock says a reader found a stale dot-lock, which only the
// holder of the exclusive kernel locks may break (see tryDotLock).
var errStaleDotLock = errors.New("stale, and to be broken under a writer's locks")

// tryDotLock makes one attempt at the dot-lock lockPath. The lock is
// written in full to a temporary file first and then linked to its name,
// which fails if the name exists: so a lock file never exists without its
// content, even if the process dies in between (a lock created empty and
// filled afterwards could be left empty, and then look like another
// program's). A stale lock (see staleLock) is repaired and replaced by
// ours with a rename, so the mbox is never without a lock meanwhile;
// the caller holds the kernel locks, which keep other sluice writers out.
//
// That holds for the exclusive kernel locks only. A reader (shared set)
// gets errStaleDotLock instead: other readers hold the shared locks too
// and may be at the same stale lock, where each would take the other's
// lock in the making for a dead writer's and remove it, and their
// renames would replace each other's lock. The stale lock is then for
// the holder of the exclusive locks to break (Repair).
//
// prepare is called with the length a dead sluice holder recorded (-1 when
// there is none; then it must not change the file) and returns the length
// of the mbox to record in our lock.
func (h lockHolder) tryDotLock(lockPath string, shared bool, prepare func(rollback int64) (int64, error)) error {
	n, err := prepare(-1)
	if err != nil {
		return err
	}
	tmp, err := h.writeLockTemp(lockPath, n)
	if err != nil {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	defer func() { os.Remove(tmp) }()
	err = os.Link(tmp, lockPath)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	stale, rollback, err := h.staleLock(lockPath)
	if err != nil {
		return err
	}
	if !stale {
		return fmt.Errorf("dot-lock %s: %w", lockPath, errLockBusy)
	}
	if shared {
		return fmt.Errorf("dot-lock %s: %w", lockPath, errStaleDotLock)
	}
	// Lock files in the making exist only while their writer holds the
	// kernel locks, which we hold now: any other is a dead writer's.
	removeLockTemps(lockPath, tmp)
	if rollback >= 0 {
		if n, err = prepare(rollback); err != nil {
			return err
		}
		os.Remove(tmp)
		if tmp, err = h.writeLockTemp(lockPath, n); err != nil {
			return fmt.Errorf("dot-lock %s: %w", lockPath, err)
		}
	}
	if err := os.Rename(tmp, lockPath); err != nil {
		return fmt.Errorf("replace stale dot-lock %s: %w", lockPath, err)
	}
	return nil
}

// writeLockTemp writes our lock content into a new hidden file next to
// lockPath and returns its name.
func (h lockHolder) writeLockTemp(lockPath string, size int64) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(lockPath), "."+filepath.Base(lockPath)+"-")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(h.dotLockContent(size))
	if err == nil {
		// Through the open file, not its name: a reader run as root
		// ("sluice train" on a user's mbox) makes this file in a
		// directory its user may write, who can put a symbolic link at
		// the name, and a chmod by name would change the link's target.
		err = f.Chmod(0o640)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// staleLock reports whether the dot-lock at path may be broken, and the
// rollback length a sluice lock carries (-1 for other locks). A sluice
// lock is stale when its process no longer exists on this host; any
// other lock when it is older than staleLockAge.
func (h lockHolder) staleLock(path string) (bool, int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, -1, nil // gone meanwhile: just try again
	}
	if err != nil {
		return false, -1, fmt.Errorf("read dot-lock %s: %w", path, err)
	}
	if l, ok := parseDotLock(b); ok && l.host == h.host {
		if alive(l.pid, l.start) {
			return false, -1, nil
		}
		return true, l.size, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist), -1, nil
	}
	return time.Since(fi.ModTime()) > staleLockAge, -1, nil
}

// alive reports whether the process pid exists and, when its start time
// can be read, started at start.
func alive(pid int, start uint64) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if st, ok := processStart(pid); ok && start != 0 {
		return st == start
	}
	return true
}

// processStart returns the start time of process pid in clock ticks after
// boot, field 22 of /proc/PID/stat (proc(5)); false where /proc cannot
// tell.
func processStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// tryKernelLocks takes flock(2) and a POSIX record lock on the whole file
// without waiting. flock is what other sluice processes use; the record
// lock (an open-file-description lock, so that it also works between
// goroutines) is what mutt, procmail and Postfix's local(8) take on
// Linux by default.
func tryKernelLocks(f *os.File) error {
	return tryKernelLocksOf(f, syscall.LOCK_EX, syscall.F_WRLCK)
}

// tryKernelReadLocks takes the shared forms of the locks tryKernelLocks
// takes: they keep writers out but not other readers (Dovecot, for one,
// reads an mbox under an fcntl read lock), and need no write access.
func tryKernelReadLocks(f *os.File) error {
	return tryKernelLocksOf(f, syscall.LOCK_SH, syscall.F_RDLCK)
}

func tryKernelLocksOf(f *os.File, flockHow int, recordType int16) error {
	if err := syscall.Flock(int(f.Fd()), flockHow|syscall.LOCK_NB); err != nil {
		return err
	}
	if err := recordLock(f, recordType); err != nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return err
	}
	return nil
}

// wouldBlock reports whether an error of flock(2) or fcntl(2) locking
// means "held by someone else". Only for those calls: elsewhere EACCES
// means no permission.
func wouldBlock(err error) bool {
	return errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)
}

// backoff returns the pause before the next attempt to get a lock: short
// at first, then growing to 50 ms.
func backoff(attempt int) time.Duration {
	return min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// removeLockTemps removes the lock files in the making of lockPath other
// than keep: the names os.CreateTemp gave them in writeLockTemp, the
// prefix and then digits only. The mbox "spam.lock-x" has lock files in
// the making ".spam.lock-x.lock-123" that share the prefix of spam's and
// are not spam's to remove; a glob would also read the mbox's name as a
// pattern.
func removeLockTemps(lockPath, keep string) {
	dir, prefix := filepath.Dir(lockPath), "."+filepath.Base(lockPath)+"-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if p := filepath.Join(dir, e.Name()); p != keep {
			os.Remove(p)
		}
	}
}
