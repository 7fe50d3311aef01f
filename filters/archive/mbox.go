package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-mail/sluice/filters/trustedlink"
)

// Modes of what the archive creates. Archived mail is as private as a
// mailbox: the group may read (e.g. an admin group that retrains), others
// may not.
const (
	dirMode  = 0o750
	fileMode = 0o640
)

// Appender writes records into mbox files and maildirs safely: many
// goroutines and processes may append to the same mbox at once, each
// record is written whole or not at all, and it is on disk (fsync) when
// Append returns. The zero value is not usable; use NewAppender.
type Appender struct {
	locks   pathLocks
	holder  lockHolder
	timeout time.Duration
	log     *slog.Logger
	seq     atomic.Uint64 // maildir file names
	now     func() time.Time
	// beforeBreak, when set, is called after a stale dot-lock was
	// judged and before it is broken: tests put a racing process's
	// doing there.
	beforeBreak func(lockPath string)
	// link is os.Link; tests make it fail as it does on file systems
	// without hard links.
	link func(oldname, newname string) error
	// Each fallback for a file system without hard links is logged
	// once (see linkUnsupported).
	noLinkLock, noLinkMaildir sync.Once
	// dirSync fsyncs a directory (syncDir); every directory the
	// appender syncs goes through it, so that tests can see which.
	dirSync func(dir string) error
	// tmpMu guards tmpCleaned: when each maildir's tmp/ was last
	// cleaned (see cleanTmp), and tmpPruned: when maildirs not used
	// for tmpCleanInterval were last forgotten.
	tmpMu      sync.Mutex
	tmpCleaned map[string]time.Time
	tmpPruned  time.Time
	// roots are the archive's top directories (see SetRoots).
	roots []string
}

// SetRoots names the archive's top directories: the directories of the
// targets' paths before their first placeholder (see Config.Roots), which
// the administrator wrote and which are taken as given. Below one of
// them, every directory of a path the appender reads or writes that is a
// symbolic link is followed only if root or this process's user owns it
// (see trustedlink.WalkDirs), and no directory is created through any
// other: those directories are the daemon's user's, and a link it put
// there would steer root's "sluice archive move" into a directory of its
// choosing. A path below none of them is taken as given but for its last
// component (see OpenTrustedLink). It must be called before the appender
// is used.
func (a *Appender) SetRoots(roots ...string) {
	a.roots = nil
	for _, r := range roots {
		if abs, err := filepath.Abs(r); err == nil {
			a.roots = append(a.roots, abs)
		}
	}
}

// rootOf returns the deepest of the appender's roots that dir is in (or
// is), and dir made absolute (a command's argument may be relative to
// the working directory), or false if it is in none. The comparison is
// of the names as written: a path that reaches the archive by another
// spelling (through a link above the root) is taken as given.
func (a *Appender) rootOf(dir string) (root, abs string, ok bool) {
	if len(a.roots) == 0 {
		return "", "", false
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", false
	}
	for _, r := range a.roots {
		rel, err := filepath.Rel(r, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if !ok || len(r) > len(root) {
			root, ok = r, true
		}
	}
	return root, abs, ok
}

// checkDirs returns an error if a directory of path below its root is a
// symbolic link not to be followed (see SetRoots).
func (a *Appender) checkDirs(path string) error {
	root, dir, ok := a.rootOf(filepath.Dir(path))
	if !ok {
		return nil
	}
	return trustedlink.WalkDirs(root, dir, nil)
}

// NewAppender returns an appender that waits at most lockTimeout for an
// mbox's locks. log receives warnings (a rolled-back record); nil
// discards them.
func NewAppender(lockTimeout time.Duration, log *slog.Logger) *Appender {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Appender{holder: thisProcess(), timeout: lockTimeout, log: log, now: time.Now, link: os.Link, dirSync: syncDir}
}

// lockedMbox is an mbox file with every lock held.
type lockedMbox struct {
	f    *os.File
	path string
	size int64 // length before the append
	// dirSynced is set when this open created the file and fsync'd the
	// directory that holds its name (see openMboxFile).
	dirSynced bool
	// noDotLock is set for a reader that could not make the dot-lock
	// (see tryReadLock): the one at path+lockSuffix is not ours.
	noDotLock bool
}

func (l *lockedMbox) unlock() {
	// The dot-lock goes first: the kernel locks, released by Close, keep
	// other sluice writers out until it is gone.
	if !l.noDotLock {
		os.Remove(l.path + lockSuffix)
	}
	l.f.Close()
}

// lockMbox opens (creating it if needed) and locks the mbox at path:
// flock and a record lock, then the dot-lock path.lock. Other programs
// take these in different orders (mutt: kernel locks first; procmail and
// Postfix: the dot-lock first), so whoever cannot get the dot-lock while
// holding the kernel locks lets go of everything and tries again a little
// later, and two of them can never wait for each other.
//
// A dot-lock left behind by a sluice process that died in the middle of an
// append tells how long the mbox was before it: the mbox is cut back to
// that, removing the half-written record, if the lock's maker could have
// written the mbox itself (see trustedLockMaker).
func (a *Appender) lockMbox(ctx context.Context, path string) (*lockedMbox, error) {
	var l *lockedMbox
	err := a.retryLock(ctx, path, func(context.Context) error {
		var err error
		l, err = a.tryLockMbox(path)
		return err
	})
	return l, err
}

// retryLock calls try until it returns anything but errLockBusy, waiting
// a little longer each time, for at most the appender's lock timeout;
// try gets a context that ends then.
func (a *Appender) retryLock(ctx context.Context, path string, try func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var last error
	for attempt := 0; ; attempt++ {
		err := try(ctx)
		if !errors.Is(err, errLockBusy) {
			return err
		}
		last = err
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("lock %s: not obtained within %s: %w", path, a.timeout, last)
			}
			return fmt.Errorf("lock %s: %w", path, err)
		}
	}
}

// openLocked opens the file at path with open and takes the kernel locks
// on it with lock, without waiting: errLockBusy if someone holds them.
// While this process waited, the file at path may have been replaced
// ("sluice archive move" rewrites it, logrotate renames it): the locks
// must be on the file that is there now, so that is checked after.
func openLocked(path string, open func() (*os.File, error), lock func(*os.File) error) (*os.File, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	if err := lock(f); err != nil {
		f.Close()
		if wouldBlock(err) {
			return nil, fmt.Errorf("lock %s: %w (%w)", path, errLockBusy, err)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if same, err := samePath(f, path); err != nil || !same {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s was replaced while we waited for its lock: %w", path, errLockBusy)
	}
	return f, nil
}

// openMboxFile opens the mbox at path for appending, creating it if
// needed. A symbolic link there is followed only if root or this
// process's user owns it (see OpenTrustedLink): whoever may write the
// archive's directory (the daemon's user, if a message it handled got
// the better of it) could otherwise put a link there to
// /root/.ssh/authorized_keys, and root's "sluice archive move --to ham"
// would append a message of the sender's making to it.
//
// Only a regular file is an mbox. A FIFO there (the same people can make
// one) opens at once for reading and writing, takes the start of a
// record into its buffer and then blocks the write for good: past the
// filter's deadline, with the locks held and every later copy to the path
// waiting behind it. It cannot be cut back either.
//
// Nor is a file with more than one name: the rule for symbolic links does
// not see a hard link, which the same people can put there, to a file of
// root's where fs.protected_hardlinks is off (/etc/crontab), for root's
// "sluice archive move" to append to. Postfix's local(8) refuses such a
// mailbox too.
//
// An mbox that root creates (see adoptDirOwner) goes to the owner of its
// directory. The directory of an mbox it creates is fsync'd: the record
// is, before the append returns, but a power cut could still lose the
// file's name, and the record with it.
//
// created reports whether this open made the file (and synced its
// directory).
func (a *Appender) openMboxFile(path string) (f *os.File, created bool, err error) {
	// Exclusively first, to know whether the file is new.
	f, err = OpenTrustedLink(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, fileMode)
	created, exclusive, dir := err == nil, err == nil, filepath.Dir(path)
	if errors.Is(err, fs.ErrExist) {
		f, err = OpenTrustedLink(path, os.O_RDWR|os.O_APPEND, 0)
		if errors.Is(err, fs.ErrNotExist) {
			// O_EXCL does not follow a symbolic link: the name is a link
			// to a file that does not exist (yet), which is created
			// through it, in the directory of the link's target (or the
			// file was removed meanwhile and is created again). That
			// directory holds the new name, and is synced and adopted
			// as the mbox's own would be; another writer that created
			// the file in the meantime makes this only a sync too many.
			f, err = OpenTrustedLink(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, fileMode)
			if err == nil {
				created = true
				if dir, err = createdDir(f, path); err != nil {
					f.Close()
					return nil, false, err
				}
			}
		}
	}
	if err != nil {
		return nil, false, err
	}
	if created && os.Geteuid() == 0 {
		if err := adoptDirOwner(f, dir); err != nil {
			f.Close()
			if exclusive {
				os.Remove(path)
			}
			return nil, false, fmt.Errorf("open %s: %w", path, err)
		}
	}
	if created {
		// The file stays if this fails: another writer may have opened
		// it already, and an empty mbox is a valid one.
		if err := a.dirSync(dir); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("open %s: fsync its directory: %w", path, err)
		}
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("open %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if n, ok := linkCount(fi); err == nil && ok && n > 1 {
		err = fmt.Errorf("open %s: the file has %d hard links, not one: not written", path, n)
	}
	if err != nil {
		f.Close()
		return nil, false, err
	}
	return f, created, nil
}

// createdDir returns the directory in which f, the mbox just created at
// path, has its name: path's own, or, through a symbolic link at path,
// the directory of the file it leads to, checked to be f.
func createdDir(f *os.File, path string) (string, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	a, aerr := f.Stat()
	b, berr := os.Stat(resolved)
	if aerr != nil || berr != nil || !os.SameFile(a, b) {
		return "", fmt.Errorf("open %s: the symbolic link was replaced while it was followed", path)
	}
	return filepath.Dir(resolved), nil
}

// OpenTrustedLink is os.OpenFile, except that a symbolic link at path (its
// last component) is followed only if root or this process's user owns
// it, as Postfix's local(8) does with a mailbox (see trustedlink.Open).
// Whoever owns a link chose its target: followed by root, a link a user
// put in a folder of theirs would have root read or write a file the user
// may not (/etc/shadow, /root/.ssh/authorized_keys). Links further up the
// path are followed.
func OpenTrustedLink(path string, flag int, perm fs.FileMode) (*os.File, error) {
	return trustedlink.Open(path, flag, perm)
}

// TrustedLink reports whether a symbolic link described by link (as
// os.Lstat returns it) may be followed by the rule of OpenTrustedLink,
// and returns an *UntrustedLinkError if not.
func TrustedLink(path string, link fs.FileInfo) error {
	return trustedlink.Check(path, link)
}

// UntrustedLinkError is a symbolic link not followed because neither
// root nor this process's user owns it (see OpenTrustedLink).
type UntrustedLinkError = trustedlink.UntrustedError

func (a *Appender) tryLockMbox(path string) (*lockedMbox, error) {
	var created bool
	f, err := openLocked(path, func() (*os.File, error) {
		f, c, err := a.openMboxFile(path)
		created = c
		return f, err
	}, tryKernelLocks)
	if err != nil {
		return nil, err
	}
	l := &lockedMbox{f: f, path: path, dirSynced: created}
	err = a.tryDotLock(path+lockSuffix, f, false, func(rollback int64, head string) (int64, error) {
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		size := fi.Size()
		if rollback >= 0 && size != l.size {
			// Grown since it was first measured, under the kernel
			// locks: by a writer that takes only the dot-lock, after
			// the dead one. Not all beyond rollback is the dead
			// writer's, and nothing is cut.
			a.log.Warn("archive: an mbox grew after a dead sluice process's append; its incomplete record is left in place",
				"path", path)
			rollback = -1
		}
		if rollback >= 0 && rollback < size {
			other, err := messageAfterDeadWriter(f, rollback, size, head)
			if err != nil {
				return 0, err
			}
			if other {
				a.log.Warn("archive: what follows the length a sluice process that died while appending recorded is not only its incomplete record; it is left in place",
					"path", path)
				rollback = -1
			}
		}
		if rollback >= 0 && rollback < size {
			if err := cutBack(f, rollback); err != nil {
				return 0, err
			}
			a.log.Warn("archive: removed the incomplete record of a sluice process that died while appending",
				"path", path, "bytes", size-rollback)
			size = rollback
		}
		l.size = size
		return size, nil
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	// The length was measured before the dot-lock was ours. A writer
	// that takes only the dot-lock (dotlockfile and cat, Dovecot with
	// mbox_write_locks = dotlock) is not kept out by the kernel locks,
	// and may have appended and unlocked in between: cutting back to
	// that length would take its record with ours. Now that nobody can
	// write, check, and try again if the mbox grew.
	fi, err := f.Stat()
	if err != nil || fi.Size() != l.size {
		l.unlock()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		return nil, fmt.Errorf("%s grew while we took its dot-lock: %w", path, errLockBusy)
	}
	return l, nil
}

func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// messageAfterDeadWriter reports whether the bytes of f from rollback to
// size, after the length a sluice process that died holding the mbox's
// dot-lock recorded, hold anything but the incomplete record it was
// appending. A program that takes only the kernel locks ignores the dead
// process's dot-lock, and may have appended a message since; cutting
// back to rollback would take that message too.
//
// head is what the dead process recorded of the first bytes it wrote
// (see sluiceLock). With noHead it had written none: all of it is
// another program's. Otherwise the bytes must start as it recorded (a
// lock of an earlier sluice, head "", did not record them). And the
// record starts with its own "From " line and quotes every other line
// that would (mboxrd), so a second one begins another program's message.
func messageAfterDeadWriter(f *os.File, rollback, size int64, head string) (bool, error) {
	switch head {
	case noHead:
		return true, nil
	case "":
	default:
		n, ok := headBytes(head)
		if !ok || size-rollback < int64(n) {
			return true, nil
		}
		start := make([]byte, n)
		if _, err := f.ReadAt(start, rollback); err != nil {
			return false, err
		}
		if recordHead(start) != head {
			return true, nil
		}
	}
	lineStart := rollback == 0
	if rollback > 0 {
		var prev [1]byte
		if _, err := f.ReadAt(prev[:], rollback-1); err != nil {
			return false, err
		}
		lineStart = prev[0] == '\n'
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, rollback, size-rollback), 64<<10)
	froms := 0
	for {
		chunk, err := r.ReadSlice('\n')
		if lineStart && bytes.HasPrefix(chunk, []byte("From ")) {
			if froms++; froms > 1 {
				return true, nil
			}
		}
		// A line longer than the buffer comes in pieces; only the
		// first starts a line.
		lineStart = len(chunk) > 0 && chunk[len(chunk)-1] == '\n'
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return false, nil
		default:
			return false, err
		}
	}
}

// cutBack truncates f to size and makes that durable.
func cutBack(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// mkdirAll is os.MkdirAll with the archive's directory mode, except that
// the parent of each directory it makes is fsync'd, and a directory root
// creates goes to the owner of the directory it is made in (see
// adoptDirOwner). A new directory's name is an entry in its parent: until
// the parent reaches the disk, a power cut may lose the directory and
// every message already fsync'd in it.
//
// Below one of the appender's roots (see SetRoots), the directories are
// walked and made one at a time, and none is made, or followed, through
// a symbolic link not to be followed.
func (a *Appender) mkdirAll(dir string) error {
	if root, abs, ok := a.rootOf(dir); ok {
		if err := a.mkdirAllAbove(root); err != nil {
			return err
		}
		return trustedlink.WalkDirs(root, abs, a.mkdirOne)
	}
	return a.mkdirAllAbove(dir)
}

// mkdirAllAbove is mkdirAll for a path taken as given: links anywhere in
// it are followed.
func (a *Appender) mkdirAllAbove(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := a.mkdirAllAbove(parent); err != nil {
			return err
		}
	}
	return a.mkdirOne(dir)
}

// mkdirOne makes the directory dir, whose parent exists, and syncs the
// parent; a directory found at the name (made meanwhile by someone else,
// who syncs its parent and whose it stays) is no error.
func (a *Appender) mkdirOne(dir string) error {
	parent := filepath.Dir(dir)
	err := os.Mkdir(dir, dirMode)
	if errors.Is(err, fs.ErrExist) {
		// Made meanwhile by someone else, who syncs its parent and
		// whose it stays. (Below a root, WalkDirs judges what it is.)
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil
		}
	}
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		if err := adoptNewDir(dir, parent); err != nil {
			return err
		}
	}
	if err := a.dirSync(parent); err != nil {
		return fmt.Errorf("mkdir %s: fsync %s: %w", dir, parent, err)
	}
	return nil
}

// adoptNewDir gives the directory dir, which root has just made in
// parent, to the owner of parent (see adoptDirOwner).
func adoptNewDir(dir, parent string) error {
	// Through the open directory: whoever owns parent may put something
	// else at the name meanwhile, and a chown by name would follow a
	// symbolic link.
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := adoptDirOwner(d, parent); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return nil
}

// adoptDirOwner gives f, which root has just created in dir, to the owner
// and group of dir unless root owns that too. The archive's directory is
// the daemon's: a file or directory of root's in it (made by root's
// "sluice archive move", the first to write a new month's archive), with
// the modes the archive gives (0640, 0750), would keep the daemon from
// ever writing there. Its owner could make the same file itself.
func adoptDirOwner(f *os.File, dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return f.Chown(int(st.Uid), int(st.Gid))
}

// separator returns what must precede a new record so that its "From "
// line follows an empty line: nothing for an empty file or one ending in
// "\n\n", else the missing line ends.
func separator(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	tail := make([]byte, min(size, 2))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case len(tail) == 2 && tail[0] == '\n' && tail[1] == '\n':
		return nil, nil
	case tail[len(tail)-1] == '\n':
		return []byte("\n"), nil
	}
	return []byte("\n\n"), nil
}

// AppendMbox appends one record to the mbox at path, creating the file
// and its directories if needed. write writes the record: the "From "
// line and the quoted message, ending in a line end; AppendMbox adds the
// empty line that ends it. The record is fsync'd before AppendMbox
// returns. If anything fails, the file is cut back to its length before
// the append, so it never holds part of a record. It returns the bytes
// appended.
func (a *Appender) AppendMbox(ctx context.Context, path string, write func(w *bufio.Writer) error) (int64, error) {
	unlock, err := a.locks.lock(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	defer unlock()
	if err := a.mkdirAll(filepath.Dir(path)); err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	l, err := a.lockMbox(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	defer l.unlock()
	if l.size == 0 && !l.dirSynced {
		// Another writer may have created the file and not yet fsync'd
		// its directory (each does that before its first record, so a
		// record in the file means it has): a power cut could then lose
		// the name with the record this append acknowledges.
		dir, err := createdDir(l.f, path)
		if err == nil {
			err = a.dirSync(dir)
		}
		if err != nil {
			return 0, fmt.Errorf("archive %s: fsync the directory of the empty mbox: %w", path, err)
		}
	}
	// The dot-lock says what the append writes first before any of it
	// reaches the file: if this process dies now, the next writer must
	// not take a message that another program appends after its death
	// for a half record of this one (see messageAfterDeadWriter).
	cw := &countWriter{w: &headWriter{f: l.f, mark: func(p []byte) error {
		return a.markDotLock(path+lockSuffix, l.size, recordHead(p))
	}}}
	returned := false
	defer func() {
		if !returned {
			// write panicked (the pipeline recovers it and fails the
			// filter): its partial record goes as a failed one does,
			// while the locks are still held, and the panic goes on
			// (an error cutting back is lost with it: the panic says
			// more).
			cutBackOwn(l, cw.n)
		}
	}()
	n, err := appendLocked(l, cw, write)
	returned = true
	if err == nil {
		// The filter's time ran out during the flush or fsync: the
		// pipeline has gone on without this copy (and a tempfail brings
		// the message back), so it must not stay either.
		err = ctx.Err()
	}
	if err != nil {
		if cerr := cutBackOwn(l, n); cerr != nil {
			return 0, fmt.Errorf("archive %s: %w; cutting the partial record back failed too: %v", path, err, cerr)
		}
		return 0, fmt.Errorf("archive %s: %w (nothing kept)", path, err)
	}
	return n, nil
}

// appendLocked writes one record at the end of the locked mbox, through
// cw, which counts the bytes written to it, and syncs it. It returns the
// bytes it wrote to the file, also when it fails.
func appendLocked(l *lockedMbox, cw *countWriter, write func(w *bufio.Writer) error) (int64, error) {
	sep, err := separator(l.f, l.size)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(cw, 64<<10)
	bw.Write(sep)
	if err := write(bw); err != nil {
		return cw.n, err
	}
	bw.WriteByte('\n')
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	if err := l.f.Sync(); err != nil {
		return cw.n, fmt.Errorf("fsync: %w", err)
	}
	return cw.n, nil
}

// cutBackOwn takes the written bytes of a failed append back off the
// locked mbox, but only if they are all that follows the length measured
// under the locks. Anything more is another writer's, one that took none
// of our locks or whose dot-lock was removed under it (whoever may write
// the directory can do that): cutting back to the length measured would
// take its message with ours, and so the mbox is left as it is.
func cutBackOwn(l *lockedMbox, written int64) error {
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != l.size+written {
		return fmt.Errorf("another process appended meanwhile, without the locks; the mbox was left as it is from byte %d on (%d bytes of this record among %d)",
			l.size, written, fi.Size()-l.size)
	}
	return cutBack(l.f, l.size)
}

// AppendMaildir delivers one message into the maildir dir (creating it
// with tmp/, new/ and cur/ if needed, each directory made fsync'd in its
// parent, see mkdirAll) the way delivery agents do: written
// and fsync'd in tmp/, then linked into new/ and removed from tmp/ (or,
// without hard links, renamed there: see renameNew), and new/ fsync'd, so
// a reader never sees part of a message. write writes
// the message with LF line ends. It returns the bytes written. Once the
// message is in new/ it counts as delivered: a failed fsync of new/ is
// logged, not returned.
//
// File names are unique per Appender only (each filter of each pipeline
// a reload builds has its own, all with this process's pid), and a file
// name may come back in a container whose sluice is always pid 1: a name
// already taken in tmp/ or new/ is passed over for one with random bits
// (see maildirName), never written over.
//
// Files that deliveries which died left in tmp/ are removed with the
// first message into a maildir and now and then after (see cleanTmp).
func (a *Appender) AppendMaildir(ctx context.Context, dir string, write func(w *bufio.Writer) error) (int64, error) {
	_, n, err := a.appendMaildir(ctx, dir, write)
	return n, err
}

// appendMaildir is AppendMaildir, and also returns the path of the file
// it delivered into new/, for the filter to tell a CopyObserver.
func (a *Appender) appendMaildir(ctx context.Context, dir string, write func(w *bufio.Writer) error) (string, int64, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := a.mkdirAll(filepath.Join(dir, sub)); err != nil {
			return "", 0, fmt.Errorf("archive %s: %w", dir, err)
		}
	}
	// Before the message is written: leftovers may be what fills the
	// disk.
	if a.tmpCleanDue(dir) {
		a.cleanTmp(dir)
	}
	var (
		name, tmp string
		n         int64
		err       error
		finish    func(f *os.File) error
	)
	if os.Geteuid() == 0 {
		// A copy root writes ("sluice test --archive") goes to the
		// maildir's owner, as an mbox does (see adoptDirOwner).
		finish = func(f *os.File) error { return adoptDirOwner(f, filepath.Join(dir, "tmp")) }
	}
	for attempt := 0; ; attempt++ {
		name = a.maildirName(attempt > 0)
		tmp = filepath.Join(dir, "tmp", name)
		// writeSynced creates the file exclusively: on a name that is
		// taken, it fails before write is called.
		n, err = writeSynced(tmp, write, finish)
		if !errors.Is(err, fs.ErrExist) || attempt == maildirNameAttempts {
			break
		}
	}
	if err != nil {
		if !errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
		}
		return "", 0, fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("archive %s: %w", dir, err)
	}
	name, err = a.linkNew(dir, tmp, name)
	if err != nil {
		os.Remove(tmp)
		return "", 0, fmt.Errorf("archive %s: %w", dir, err)
	}
	if err := a.dirSync(filepath.Join(dir, "new")); err != nil {
		// The message is in new/ and readers see it: reporting a
		// failure now would make the caller archive it again (a
		// tempfail retry). Only a crash before the directory reaches
		// the disk could still lose it.
		a.log.Warn("archive: message delivered to maildir, but its directory could not be fsync'd",
			"maildir", dir, "file", name, "err", err)
	}
	return filepath.Join(dir, "new", name), n, nil
}

// A file in a maildir's tmp/ neither modified nor changed for tmpMaxAge
// (see leftOver) is the leftover of a delivery that died between writing
// it and linking it into new/ (a crash, a power cut): the maildir
// convention (qmail, Dovecot) is 36
// hours, far longer than any delivery takes. A maildir's tmp/ is cleaned
// with the first message an appender delivers there and then at most
// every tmpCleanInterval, not with every message: it is a scan of the
// directory.
const (
	tmpMaxAge        = 36 * time.Hour
	tmpCleanInterval = 8 * time.Hour
)

// tmpCleanDue reports whether the tmp/ of the maildir dir is to be
// cleaned now, and if so notes that it is, so that concurrent deliveries
// leave it to this one.
func (a *Appender) tmpCleanDue(dir string) bool {
	a.tmpMu.Lock()
	defer a.tmpMu.Unlock()
	now := a.now()
	if last, ok := a.tmpCleaned[dir]; ok && now.Sub(last) < tmpCleanInterval {
		return false
	}
	if a.tmpCleaned == nil {
		a.tmpCleaned = map[string]time.Time{}
	}
	// A path template with recipients makes a maildir per recipient:
	// those last cleaned an interval ago or more are due anyway and are
	// forgotten, at most once an interval, so that the map holds only
	// the maildirs of the last two intervals.
	if now.Sub(a.tmpPruned) >= tmpCleanInterval {
		for d, last := range a.tmpCleaned {
			if now.Sub(last) >= tmpCleanInterval {
				delete(a.tmpCleaned, d)
			}
		}
		a.tmpPruned = now
	}
	a.tmpCleaned[dir] = now
	return true
}

// cleanTmp removes the regular files in the maildir's tmp/ that were
// neither modified nor changed for tmpMaxAge (see leftOver), and logs
// each. Nothing else is touched: not a
// directory, not a symbolic link (nor what it points to), nor anything
// outside tmp/, which whoever may write the maildir could otherwise
// steer root's removals to. A failure is logged; the delivery goes on.
func (a *Appender) cleanTmp(dir string) {
	tmp := filepath.Join(dir, "tmp")
	removed, err := a.removeOldTmp(tmp)
	for _, r := range removed {
		a.log.Info("archive: removed a file left in a maildir's tmp/ by a delivery that did not finish",
			"maildir", dir, "file", r.name, "modified", r.modified)
	}
	if err != nil {
		a.log.Warn("archive: could not clean a maildir's tmp/", "maildir", dir, "err", err)
	}
}

type removedTmp struct {
	name     string
	modified time.Time
}

// removeOldTmp does cleanTmp's work in the directory tmp and returns
// what it removed. A name it cannot judge or remove is passed over and
// reported in the error, with the others.
func (a *Appender) removeOldTmp(tmp string) ([]removedTmp, error) {
	// tmp/ itself must be a directory, not a link to one: opened as an
	// os.Root, whose operations stay inside it, and checked to be the
	// directory that was at the name, not a link put there meanwhile.
	before, err := os.Lstat(tmp)
	if err != nil {
		return nil, err
	}
	if !before.IsDir() {
		return nil, fmt.Errorf("%s is not a directory (%s)", tmp, before.Mode().Type())
	}
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if opened, err := root.Stat("."); err != nil || !os.SameFile(before, opened) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s was replaced while it was opened", tmp)
	}
	d, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tmp, err)
	}
	now := a.now()
	var (
		removed []removedTmp
		errs    []error
	)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		// Lstat: a name may have become a link since it was listed.
		fi, err := root.Lstat(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // delivered or removed meanwhile
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tmp, err))
			continue
		}
		if !fi.Mode().IsRegular() || !leftOver(fi, now) {
			continue
		}
		err = root.Remove(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", filepath.Join(tmp, e.Name()), err))
			continue
		}
		removed = append(removed, removedTmp{name: e.Name(), modified: fi.ModTime()})
	}
	return removed, errors.Join(errs...)
}

// leftOver reports whether the file fi in tmp/ has been neither modified
// nor changed for tmpMaxAge before now. The modification time alone is
// not enough: a writer may set it back on a file it has just written
// (Dovecot dates a message appended over IMAP with its INTERNALDATE by
// utime(2) in tmp/ and renames it out only when the transaction
// commits), while utime(2) cannot set back the inode change time, which
// is what Dovecot's own cleaning of tmp/ goes by.
func leftOver(fi fs.FileInfo, now time.Time) bool {
	if now.Sub(fi.ModTime()) < tmpMaxAge {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	return now.Sub(changeTime(st)) >= tmpMaxAge
}

// maildirNameAttempts bounds the names tried for one message; each later
// one carries 64 random bits, so only a broken directory uses them up.
// Without them, the next sequence number was tried, which the writers
// that share this pid and host name (other sluice processes in containers,
// other appenders of this one) number their messages by too: on a clock
// that had not moved on, eleven names in a row could be theirs, and the
// copy failed.
const maildirNameAttempts = 10

// maildirName returns a new file name as maildir(5) describes it: the
// time, the pid, a sequence number and the host. With random set it
// carries 64 random bits too ("R", as Dovecot writes them), for a name
// that no other writer can make (see renameNew).
func (a *Appender) maildirName(random bool) string {
	now := a.now()
	name := strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + strconv.Itoa(a.holder.pid) + "Q" + strconv.FormatUint(a.seq.Add(1), 10)
	if random {
		var b [8]byte
		rand.Read(b[:])
		name += "R" + hex.EncodeToString(b[:])
	}
	return name + "." + maildirHost(a.holder.host)
}

// linkNew gives the message written at tmp its name in new/ and removes
// it from tmp/; it returns the name in new/. link(2), as qmail delivers,
// because rename(2) silently replaces a file of the same name, another
// message; a taken name is passed over for a new one. On a file system
// without hard links the message is renamed instead (see renameNew).
func (a *Appender) linkNew(dir, tmp, name string) (string, error) {
	for attempt := 0; ; attempt++ {
		err := a.link(tmp, filepath.Join(dir, "new", name))
		if err == nil {
			break
		}
		if linkUnsupported(err) {
			a.noLinkMaildir.Do(func() {
				a.log.Warn("archive: the file system does not support hard links; maildir messages are renamed into new/ under names with random bits instead",
					"maildir", dir, "err", err)
			})
			return a.renameNew(dir, tmp)
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		if attempt == maildirNameAttempts {
			return "", fmt.Errorf("no free name in new/ after %d attempts: %w", attempt+1, err)
		}
		name = a.maildirName(true)
	}
	if err := os.Remove(tmp); err != nil {
		// The message is delivered; the leftover in tmp/ is never read
		// as mail, and reported so that it can be removed.
		a.log.Warn("archive: message delivered to maildir, but its file in tmp/ could not be removed",
			"maildir", dir, "file", name, "err", err)
	}
	return name, nil
}

// renameNew moves the message written at tmp into new/ with rename(2),
// which the maildir protocol allows where link(2) is not available. A
// rename replaces a file of the same name, so the name carries 64 random
// bits besides the time, pid and sequence number that the names of link
// deliveries have, which two appenders of one process can share (see
// AppendMaildir): no other writer makes it. A name found taken all the
// same is passed over.
func (a *Appender) renameNew(dir, tmp string) (string, error) {
	for attempt := 0; ; attempt++ {
		name := a.maildirName(true)
		target := filepath.Join(dir, "new", name)
		if _, err := os.Lstat(target); err == nil {
			if attempt == maildirNameAttempts {
				return "", fmt.Errorf("no free name in new/ after %d attempts", attempt+1)
			}
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if err := os.Rename(tmp, target); err != nil {
			return "", err
		}
		return name, nil
	}
}

// linkUnsupported reports whether err, from link(2), says the file system
// cannot make hard links (some FUSE and network file systems): EPERM,
// which Linux returns for that (not for a permission denied, which is
// EACCES); ENOTSUP or EOPNOTSUPP; ENOSYS; or EXDEV, which some of them
// return although both names are on one mount.
func linkUnsupported(err error) bool {
	for _, e := range []syscall.Errno{syscall.EPERM, syscall.ENOTSUP, syscall.EOPNOTSUPP, syscall.ENOSYS, syscall.EXDEV} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// writeSynced creates path exclusively, fills it with write and syncs it.
// finish, when not nil, is called on the open file before the sync: what
// is done to the file there (its mode, its owner) is done to the file
// written, whatever has been put at path meanwhile.
func writeSynced(path string, write func(w *bufio.Writer) error, finish func(f *os.File) error) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return 0, err
	}
	returned := false
	defer func() {
		if !returned {
			// write or finish panicked (a bug; the pipeline recovers
			// it and fails the filter): the half-written file goes,
			// and its descriptor with it, while the panic goes on.
			f.Close()
			os.Remove(path)
		}
	}()
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, 64<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && finish != nil {
		err = finish(f)
	}
	returned = true
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return cw.n, err
}

// headWriter writes to f, calling mark with the first bytes before they
// are written.
type headWriter struct {
	f      *os.File
	mark   func(p []byte) error
	marked bool
}

func (h *headWriter) Write(p []byte) (int, error) {
	if !h.marked && len(p) > 0 {
		if err := h.mark(p); err != nil {
			return 0, err
		}
		h.marked = true
	}
	return h.f.Write(p)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// maildirHost writes the host name as maildir(5) asks: "/" and ":" would
// break the file name, so they are written \057 and \072. A "," is
// written \054 the same way: some readers split the name at commas too,
// taking what follows one for an info field (a size, S=, or a flag).
func maildirHost(h string) string {
	out := make([]byte, 0, len(h))
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '/':
			out = append(out, `\057`...)
		case ':':
			out = append(out, `\072`...)
		case ',':
			out = append(out, `\054`...)
		default:
			out = append(out, h[i])
		}
	}
	return string(out)
}
