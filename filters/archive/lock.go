package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluice-mail/sluice/filters/process"
	"github.com/sluice-mail/sluice/filters/trustedlink"
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
	pid := os.Getpid()
	start, _ := process.Start(pid)
	return lockHolder{pid: pid, start: start, host: process.Host()}
}

// dotLockContent is what sluice writes into a dot-lock: who holds it,
// how long the mbox was before the append, and what the holder has
// begun to write after that length (see recordHead), or noHead. If the
// holder dies in the middle of an append, the next sluice writer finds
// the lock, sees the process is gone, and cuts the mbox back to that
// length, so a half-written record never stays in the mbox; but only if
// what follows the length starts as the lock says. The length is
// believed only from a lock whose maker may write the mbox
// (trustedLockMaker).
//
// The head is padded to headWidth, so that marking what an append
// writes first (markDotLock) overwrites the lock's bytes in place,
// without the new file and rename a rewrite costs on every append.
func (h lockHolder) dotLockContent(size int64, head string) string {
	return fmt.Sprintf("sluice pid=%d start=%d host=%s size=%d head=%-*s\n", h.pid, h.start, h.host, size, headWidth, head)
}

// headWidth is the longest head recordHead makes: "1024:" and 32 hex
// digits.
const headWidth = 4 + 1 + 32

// noHead is the head of a dot-lock whose holder has written nothing
// into the mbox: every lock starts so, and a reader's stays so. A holder
// that dies then leaves a lock that records the mbox's length and none
// of the bytes after it: whatever a program that ignores the dot-lock
// appends after its death is that program's, not a half record.
const noHead = "-"

// headLen bounds the bytes of the start of a record that recordHead
// identifies: the separator, the "From " line and the first fields,
// the queue id among them.
const headLen = 1024

// recordHead identifies the bytes an append writes first, p: how many of
// them it judges (at most headLen) and their SHA-256, cut to 128 bits.
// A writer records it in its dot-lock before the bytes reach the mbox,
// so that whoever finds the lock of a dead writer can tell its half
// record from another program's message appended after its death.
func recordHead(p []byte) string {
	k := min(len(p), headLen)
	sum := sha256.Sum256(p[:k])
	return strconv.Itoa(k) + ":" + hex.EncodeToString(sum[:16])
}

// headBytes returns how many bytes a head that recordHead made judges,
// and false for anything else.
func headBytes(head string) (int, bool) {
	k, sum, ok := strings.Cut(head, ":")
	n, err := strconv.Atoi(k)
	if !ok || err != nil || n <= 0 || n > headLen || len(sum) != 32 {
		return 0, false
	}
	if _, err := hex.DecodeString(sum); err != nil {
		return 0, false
	}
	return n, true
}

// sluiceLock is a parsed sluice dot-lock.
type sluiceLock struct {
	pid   int
	start uint64
	host  string
	size  int64
	// head is what the holder began to write after size (see
	// recordHead), noHead, or "" for a lock of a sluice that did not
	// record it.
	head string
}

func parseDotLock(b []byte) (sluiceLock, bool) {
	var l sluiceLock
	fields := strings.Fields(string(b))
	if (len(fields) != 5 && len(fields) != 6) || fields[0] != "sluice" {
		return l, false
	}
	// Each key once, with its "=", as dotLockContent writes them: a
	// lock that says "size=" twice and no "start=" is not sluice's, and
	// its size, which the mbox would be cut back to, is no length a
	// sluice writer recorded.
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return l, false
		}
		seen[k] = true
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
		case "head":
			l.head = v
			if _, ok := headBytes(v); !ok && v != noHead {
				err = errors.New("bad head")
			}
		default:
			return l, false
		}
		if err != nil {
			return l, false
		}
	}
	// The head is new: a lock of an earlier sluice has none.
	ok := seen["pid"] && seen["start"] && seen["host"] && seen["size"]
	return l, ok && l.pid > 0 && l.size >= 0
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

// tryDotLock makes one attempt at the dot-lock lockPath of the mbox open
// as mbox. The lock is written in full to a temporary file first and then
// linked to its name, which fails if the name exists: so a lock file never
// exists without its content, even if the process dies in between (a lock
// created empty and filled afterwards could be left empty, and then look
// like another program's). Without hard links, see placeDotLock.
//
// A stale lock (see staleLock) is broken only by the holder of the
// exclusive kernel locks, which keep other sluice writers out; see
// breakDotLock for the programs they do not keep out. Our lock then takes
// its place as any lock is taken, which fails if another program was
// quicker, and only with every lock held is the mbox cut back to the
// length a dead sluice writer recorded: never while someone else may be
// appending.
//
// A reader (shared set) gets errStaleDotLock instead: other readers hold
// the shared locks too and may be at the same stale lock, where each
// would take the other's lock in the making for a dead writer's and
// remove it. The stale lock is then for the holder of the exclusive locks
// to break (Repair).
//
// prepare is called with the length a dead sluice holder recorded (-1 when
// there is none; then it must not change the file) and the head of what
// it wrote after it (see sluiceLock), and returns the length of the mbox
// to record in our lock.
func (a *Appender) tryDotLock(lockPath string, mbox *os.File, shared bool, prepare func(rollback int64, head string) (int64, error)) error {
	n, err := prepare(-1, "")
	if err != nil {
		return err
	}
	tmp, err := a.holder.writeLockTemp(lockPath, n, noHead)
	if err != nil {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	defer func() { os.Remove(tmp) }()
	err = a.placeDotLock(tmp, lockPath)
	if err == nil {
		return nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	found, err := a.staleLock(lockPath, mbox)
	if err != nil {
		return err
	}
	defer found.release()
	if !found.stale {
		return fmt.Errorf("dot-lock %s: %w", lockPath, errLockBusy)
	}
	if shared {
		return fmt.Errorf("dot-lock %s: %w", lockPath, errStaleDotLock)
	}
	if a.beforeBreak != nil {
		a.beforeBreak(lockPath)
	}
	// Lock files in the making exist only while their writer holds the
	// kernel locks, which we hold now: any other is a dead writer's.
	removeLockTemps(lockPath, tmp)
	if found.file != nil {
		broken, err := a.breakDotLock(lockPath, found.file)
		if err != nil {
			return err
		}
		if !broken {
			// Someone else removed it, and may have appended since:
			// what it recorded no longer tells what is whose.
			found.rollback = -1
		}
	}
	if err := a.placeDotLock(tmp, lockPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dot-lock %s: taken by another process after the stale one was broken: %w", lockPath, errLockBusy)
		}
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	if found.rollback < 0 {
		return nil
	}
	// Every lock is ours: nobody who respects any of them is appending,
	// so what lies beyond the recorded length is the dead writer's.
	if n, err = prepare(found.rollback, found.head); err == nil {
		err = a.rewriteDotLock(lockPath, n, noHead)
	}
	if err != nil {
		os.Remove(lockPath)
		return err
	}
	return nil
}

// placeDotLock gives the lock file written at tmp the name lockPath,
// failing with fs.ErrExist if a file has that name. It links tmp there,
// so that the lock never exists without its content. On a file system
// without hard links (see linkUnsupported) it creates lockPath with
// O_EXCL instead, which fails the same way, and copies tmp's content
// into it: there, a process that dies between the two leaves an empty
// lock, which is taken for another program's and broken when it is
// older than staleLockAge.
func (a *Appender) placeDotLock(tmp, lockPath string) error {
	err := a.link(tmp, lockPath)
	if err == nil || !linkUnsupported(err) {
		return err
	}
	a.noLinkLock.Do(func() {
		a.log.Warn("archive: the file system does not support hard links; dot-locks are created in place with O_EXCL instead",
			"lock", lockPath, "err", err)
	})
	content, err := readDotLockFile(tmp)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(lockPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(lockPath)
		return err
	}
	return nil
}

// rewriteDotLock replaces our own dot-lock at lockPath with one recording
// the length size and head, with a rename, so the mbox is never without
// it.
func (a *Appender) rewriteDotLock(lockPath string, size int64, head string) error {
	tmp, err := a.holder.writeLockTemp(lockPath, size, head)
	if err != nil {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	if err := os.Rename(tmp, lockPath); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	return nil
}

// markDotLock records in our own dot-lock at lockPath, which records the
// length size and noHead, what the append is about to write first,
// head: in place, the content keeping its length (see dotLockContent).
// The lock at the name must still be ours, as we wrote it; a process
// that dies while the bytes are overwritten leaves a lock that is read
// whole either way or, torn, not read as sluice's (its length is not
// believed, and the mbox is not cut back).
func (a *Appender) markDotLock(lockPath string, size int64, head string) error {
	f, err := os.OpenFile(lockPath, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	defer f.Close()
	was := a.holder.dotLockContent(size, noHead)
	now := a.holder.dotLockContent(size, head)
	buf := make([]byte, len(was)+1)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	if string(buf[:n]) != was || len(now) != len(was) {
		return fmt.Errorf("dot-lock %s: no longer the lock this process made", lockPath)
	}
	if _, err := f.WriteAt([]byte(now), 0); err != nil {
		return fmt.Errorf("dot-lock %s: %w", lockPath, err)
	}
	return nil
}

// breakDotLock removes the stale dot-lock at lockPath that staleLock
// judged, found, and no other. Between the judgement and now a program
// that takes only the dot-lock (dotlockfile(1), Dovecot with
// mbox_write_locks = dotlock), which the kernel locks do not keep out,
// may have broken the same lock, made its own and begun to append:
// removing or replacing that one would let us write, and cut the mbox
// back, while it appends. So the lock is first moved aside, then looked
// at; one that is not the lock judged is put back, and we try again
// later. It reports whether it removed the lock judged; false, without
// an error, when the name was free already.
func (a *Appender) breakDotLock(lockPath string, found fs.FileInfo) (bool, error) {
	aside := filepath.Join(filepath.Dir(lockPath), "."+filepath.Base(lockPath)+"-stale-"+strconv.Itoa(a.holder.pid))
	if err := os.Rename(lockPath, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil // removed meanwhile: the name is free
		}
		return false, fmt.Errorf("break stale dot-lock %s: %w", lockPath, err)
	}
	moved, err := os.Lstat(aside)
	if err == nil && os.SameFile(moved, found) {
		os.Remove(aside)
		return true, nil
	}
	if err := a.placeDotLock(aside, lockPath); err != nil {
		// A third lock took the name at once: the one moved aside is
		// no longer at its name whatever we do now.
		a.log.Warn("archive: a dot-lock taken while a stale one was broken could not be put back",
			"lock", lockPath, "err", err)
	}
	os.Remove(aside)
	return false, fmt.Errorf("dot-lock %s: replaced by another process while its stale lock was broken: %w", lockPath, errLockBusy)
}

// writeLockTemp writes our lock content into a new hidden file next to
// lockPath and returns its name.
func (h lockHolder) writeLockTemp(lockPath string, size int64, head string) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(lockPath), "."+filepath.Base(lockPath)+"-")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(h.dotLockContent(size, head))
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

// readDotLockFile returns the content of the dot-lock file at path, a
// regular file, of which it reads at most maxDotLockSize bytes. One being
// put back (see breakDotLock) is another process's, and may be anything.
func readDotLockFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, maxDotLockSize))
}

// maxDotLockSize bounds what is read of a dot-lock: ours are one short
// line, and whoever may write the directory may put anything at the name.
const maxDotLockSize = 512

// dotLockFound is what staleLock found at a dot-lock's name.
type dotLockFound struct {
	// stale is set when the lock may be broken.
	stale bool
	// rollback is the length a dead sluice holder recorded, and -1 for
	// other locks or when its maker is not trusted to have written it
	// (see trustedLockMaker); head is what it recorded of the bytes it
	// wrote after that length (see sluiceLock).
	rollback int64
	head     string
	// file is the lock judged, to be broken only if it is still the
	// one at the name; nil when none was there.
	file fs.FileInfo
	// open is the lock judged, held open until it is broken, so that
	// its inode number cannot go to a new lock made at its name
	// meanwhile and pass for it; nil for a symbolic link.
	open *os.File
}

// release closes what staleLock opened.
func (d dotLockFound) release() {
	if d.open != nil {
		d.open.Close()
	}
}

// staleLock tells whether the dot-lock at path, of the mbox open as mbox,
// may be broken. A sluice lock is stale when its process no longer exists
// on this host; any other lock when it is older than staleLockAge.
//
// The name is in a directory that others may write (a mail spool, the
// archive's directory as the daemon's user when root runs "sluice
// archive"): the lock is opened without following a symbolic link and
// without waiting for a writer (a FIFO), only a regular file is read, and
// only so much of it. A link or other special file is no sluice lock and
// is judged by its own age. The caller releases what it returns.
func (a *Appender) staleLock(path string, mbox *os.File) (found dotLockFound, err error) {
	found.rollback = -1
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		found.file, err = os.Lstat(path)
	} else if err == nil {
		found.open = f
		found.file, err = f.Stat()
	}
	defer func() {
		if err != nil {
			found.release()
		}
	}()
	if errors.Is(err, fs.ErrNotExist) {
		found.stale, found.file = true, nil // gone meanwhile: just try again
		return found, nil
	}
	if err != nil {
		return found, fmt.Errorf("read dot-lock %s: %w", path, err)
	}
	var content []byte
	if f != nil && found.file.Mode().IsRegular() {
		content, err = io.ReadAll(io.LimitReader(f, maxDotLockSize))
		if err != nil {
			return found, fmt.Errorf("read dot-lock %s: %w", path, err)
		}
	}
	if l, ok := parseDotLock(content); ok && l.host == a.holder.host {
		if process.Alive(l.pid, l.start) {
			return found, nil
		}
		found.stale = true
		if maker, ok := trustedLockMaker(found.file, mbox); ok {
			found.rollback, found.head = l.size, l.head
		} else {
			a.log.Warn("archive: a dead sluice process's dot-lock was made by a user who may not write the mbox; the length it records is ignored",
				"lock", path, "uid", maker)
		}
		return found, nil
	}
	found.stale = time.Since(found.file.ModTime()) > staleLockAge
	return found, nil
}

// trustedLockMaker reports whether the maker (owner) of the dot-lock
// lock may be trusted with the length it records, which the mbox open as
// mbox is cut back to: root, this process's user (see trustedOwner), or
// the mbox's owner. Anyone else who may write the directory, but not the
// mbox, could otherwise put a forged lock there and have sluice truncate
// the archive for them. It returns the maker's uid too.
func trustedLockMaker(lock fs.FileInfo, mbox *os.File) (uint32, bool) {
	maker, ok := fileOwner(lock)
	if !ok {
		return 0, false
	}
	if trustedOwner(maker) {
		return maker, true
	}
	fi, err := mbox.Stat()
	if err != nil {
		return maker, false
	}
	owner, ok := fileOwner(fi)
	return maker, ok && owner == maker
}

// fileOwner returns the uid that owns fi's file.
func fileOwner(fi fs.FileInfo) (uint32, bool) { return trustedlink.Owner(fi) }

// linkCount returns the number of names (hard links) of fi's file.
func linkCount(fi fs.FileInfo) (uint64, bool) {
	if fi == nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}

// trustedOwner reports whether a file uid owns may steer what this
// process does: root's, or this process's user's. It is the rule
// Postfix's local(8) applies to a symbolic link at a mailbox's name.
func trustedOwner(uid uint32) bool { return trustedlink.TrustedOwner(uid) }

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
		// By name: keep is os.CreateTemp's, "./.spam.lock-123" for a
		// relative lockPath, which Join would make ".spam.lock-123".
		if e.Name() != filepath.Base(keep) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
