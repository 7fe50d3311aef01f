package archive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Record is one message of an mbox as it is stored.
type Record struct {
	// Raw is the record as stored: the "From " line and the quoted
	// message, ending in a line end, without the empty line that
	// separates it from the next record.
	Raw []byte
	// Message is the message: no "From " line, and one ">" taken off
	// every ">From ", ">>From " ... line (mboxrd).
	Message []byte
}

// From returns the record's "From " line without its line end.
func (r Record) From() string {
	line, _, _ := bytes.Cut(r.Raw, []byte("\n"))
	return string(line)
}

// Time returns the time in the record's "From " line, read in local time
// as the archive writes it.
func (r Record) Time() (time.Time, bool) {
	line := strings.TrimRight(r.From(), " \r")
	const layout = "Mon Jan _2 15:04:05 2006"
	if len(line) < len(layout) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(layout, line[len(line)-len(layout):], time.Local)
	return t, err == nil
}

// QueueID returns the queue id the archive recorded in the record, or "".
func (r Record) QueueID() string {
	if v := HeaderValues(r.Message, FieldQueueID); len(v) > 0 {
		return v[0]
	}
	return ""
}

// HeaderValues returns the values of the header fields named name
// (case-insensitive) in the header block of the message msg, in order,
// unfolded (continuation lines joined, line ends removed) and trimmed.
// The header block ends at the first empty line.
func HeaderValues(msg []byte, name string) []string {
	var (
		out     []string
		current *strings.Builder
	)
	flush := func() {
		if current != nil {
			out = append(out, strings.TrimSpace(current.String()))
			current = nil
		}
	}
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if current != nil {
				current.Write(line)
			}
			continue
		}
		flush()
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && filters.SameName(strings.TrimSpace(string(k)), name) {
			current = &strings.Builder{}
			current.Write(v)
		}
	}
	flush()
	return out
}

// ReadMbox calls fn for each record of the mbox read from r, in order. A
// record starts at a "From " line at the start of the input or after an
// empty line; the empty line before it belongs to the mbox, not to the
// message. Empty lines before the first "From " line are skipped; any
// other input before it is not an mbox: it is an error.
func ReadMbox(r io.Reader, fn func(Record) error) error {
	var cur []byte
	return scanMbox(r, mboxBuffer, func(line []byte, _ bool) {
		cur = append(cur, line...)
	}, func(int64, int64) error {
		rec := Record{Raw: cur, Message: unquote(cur)}
		cur = nil
		return fn(rec)
	})
}

// RecordAt is a record of an mbox that ScanMbox found: its start in
// memory, the whole of it left where it lies, so that a 50 MB message is
// not held in memory to be shown, copied or left out.
type RecordAt struct {
	// Head is the start of the record: the "From " line and the header
	// block with the empty line that ends it (all of the record if it
	// has none). Its Message has the header fields, for HeaderValues,
	// QueueID and Config.TargetPath, and its From and Time are the
	// record's.
	Head Record
	// Offset and Size locate the whole record, Record.Raw as ReadMbox
	// gives it, in the mbox.
	Offset, Size int64
	// Sum is the SHA-256 of the whole record: with Size, what tells it
	// from another record without holding either.
	Sum [sha256.Size]byte

	src io.ReaderAt
}

// Raw returns a reader over the whole record as stored, what Record.Raw
// holds. It reads the mbox ScanMbox was given.
func (r RecordAt) Raw() *io.SectionReader {
	return io.NewSectionReader(r.src, r.Offset, r.Size)
}

// ScanMbox calls fn for each record of the first size bytes of the mbox
// r, in order, as ReadMbox does, but with each record's header only in
// memory; fn reads the rest from r through RecordAt.Raw when it needs it.
func ScanMbox(r io.ReaderAt, size int64, fn func(RecordAt) error) error {
	return scanMboxAt(r, size, mboxBuffer, fn)
}

// scanMboxAt is ScanMbox reading through a buffer of bufSize bytes.
func scanMboxAt(r io.ReaderAt, size int64, bufSize int, fn func(RecordAt) error) error {
	var (
		head   []byte
		inHead = true
		sum    = sha256.New()
	)
	return scanMbox(io.NewSectionReader(r, 0, size), bufSize, func(line []byte, startsLine bool) {
		sum.Write(line)
		if !inHead {
			return
		}
		head = append(head, line...)
		// The empty line that ends the header block, as HeaderValues
		// finds it.
		if startsLine && (string(line) == "\n" || string(line) == "\r\n") {
			inHead = false
		}
	}, func(offset, n int64) error {
		rec := RecordAt{Head: Record{Raw: head, Message: unquote(head)}, Offset: offset, Size: n, src: r}
		sum.Sum(rec.Sum[:0])
		sum.Reset()
		head, inHead = nil, true
		return fn(rec)
	})
}

// mboxBuffer is the size of the buffer an mbox is read through; a longer
// line is read in pieces.
const mboxBuffer = 64 << 10

// scanMbox splits the mbox read from r into records, as ReadMbox
// describes. It calls add with the bytes of each record in order, a line
// or, for a line longer than bufSize, a piece of one at a time
// (startsLine tells which), valid until add returns; and end at the end
// of each record, with the offset of the record in r and its length.
func scanMbox(r io.Reader, bufSize int, add func(line []byte, startsLine bool), end func(offset, n int64) error) error {
	br := bufio.NewReaderSize(r, bufSize)
	var (
		inRec bool
		blank = true
		// pendingBlank: an empty line was read and held back; it is
		// part of the message unless a "From " line follows.
		pendingBlank bool
		// midLine: the last piece read did not end its line.
		midLine bool
		n       int
		// pos is the offset of what is read next; start and size
		// locate the current record.
		pos, start, size int64
	)
	put := func(line []byte, startsLine bool) {
		add(line, startsLine)
		size += int64(len(line))
	}
	emit := func() error {
		if !inRec {
			return nil
		}
		n++
		return end(start, size)
	}
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			switch {
			case midLine:
				// The rest of a line begun in an earlier piece: of the
				// record, or an error already returned.
				put(line, false)
			case blank && bytes.HasPrefix(line, []byte(fromLine)):
				pendingBlank = false
				if err := emit(); err != nil {
					return err
				}
				inRec = true
				start, size = pos, 0
				put(line, true)
			case !inRec && bytes.Equal(line, []byte("\n")):
				// Empty lines before the first record are no message:
				// an mbox emptied with "echo > FILE" holds one, and the
				// next append adds another before its "From " line.
			case !inRec:
				return fmt.Errorf("mbox: line %q before the first \"From \" line", truncate(line, 40))
			default:
				if pendingBlank {
					put([]byte("\n"), true)
					pendingBlank = false
				}
				if bytes.Equal(line, []byte("\n")) {
					pendingBlank = true
				} else {
					put(line, true)
				}
			}
			if !midLine {
				blank = bytes.Equal(line, []byte("\n"))
			}
			midLine = line[len(line)-1] != '\n'
			pos += int64(len(line))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("mbox after record %d: %w", n, err)
		}
	}
	return emit()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// unquote returns the message of a stored record: without its "From "
// line and with one ">" taken off each quoted "From " line.
func unquote(raw []byte) []byte {
	_, rest, _ := bytes.Cut(raw, []byte("\n"))
	out := make([]byte, 0, len(rest))
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if isQuotedFrom(line) {
			line = line[1:]
		}
		out = append(out, line...)
	}
	return out
}

func isQuotedFrom(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte(fromLine))
}

// Repair removes a half-written record that a sluice process left at the
// end of the mbox at path when it died while appending (its dot-lock
// still names it and the length to go back to). It does nothing when the
// file or such a lock does not exist.
func (a *Appender) Repair(ctx context.Context, path string) error {
	if err := a.checkDirs(path); err != nil {
		return err
	}
	if _, err := os.Stat(path + lockSuffix); err != nil {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	unlock, err := a.locks.lock(ctx, path)
	if err != nil {
		return err
	}
	defer unlock()
	l, err := a.lockMbox(ctx, path)
	if err != nil {
		return err
	}
	l.unlock()
	return nil
}

// ReadRecords reads the records of the mbox at path under the locks an
// append takes, after removing a dead writer's half-written record (see
// Repair): fn sees whole records only, never an append in progress or
// one cut short by a crash.
func (a *Appender) ReadRecords(ctx context.Context, path string, fn func(Record) error) error {
	if err := a.checkDirs(path); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	unlock, err := a.locks.lock(ctx, path)
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	defer unlock()
	l, err := a.lockMbox(ctx, path)
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	defer l.unlock()
	if err := ReadMbox(io.NewSectionReader(l.f, 0, l.size), fn); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ReadLocked calls read with the contents of the mbox at path as they
// were at one moment: whole records only, never an append in progress or
// the half record of a sluice process that died while appending.
//
// The locks are held only to find that moment, not for the read: read
// may take minutes (a training run over a large archive, or a pager
// that stops reading "sluice archive show"), and the daemon's archive
// filter must not wait that long to append. What read gets is the file
// up to the length it had under the locks, through a handle opened then:
// appends only add beyond it, a failed append cuts back only what it
// added, and "sluice archive move" replaces the file rather than
// rewriting it, which leaves the handle on the old one. (A program that
// rewrites an mbox in place, such as an IMAP server expunging, can
// still change what is read; it does so under the same locks, and only
// in a folder it serves.)
//
// It takes the locks an append takes, in their shared form where they
// have one: flock(2) and fcntl(2) read locks, which keep writers out but
// not other readers, and the dot-lock, which has no shared form and keeps
// out writers that take only it (dotlockfile(1), Dovecot with
// mbox_write_locks = dotlock). A stale dot-lock, and with a dead sluice
// writer's the half record it left, is removed first, under the
// exclusive locks, as the next append would.
//
// The dot-lock needs write access to the mbox's directory, which a user
// who may only read the mbox (a group given read access, a read-only file
// system) lacks. Then read is called under the kernel locks alone, after
// a dot-lock someone else holds is gone, and without a dead sluice
// writer's half record; warn is called first with the reason, since a
// writer that takes only the dot-lock is not kept out.
//
// A symbolic link at path is followed only if root or this process's
// user owns it (see OpenTrustedLink): a user's link in a folder that
// root reads must not show root the file it points to. The same goes for
// the directories of path below one of the appender's roots (see
// SetRoots).
func (a *Appender) ReadLocked(ctx context.Context, path string, warn func(error), read func(r io.Reader) error) error {
	return a.readLocked(ctx, path, nil, warn, func(r *io.SectionReader) error { return read(r) })
}

// ReadLockedAt is ReadLocked for a reader that reads the mbox out of
// order (ScanMbox, and the records it finds, read again to copy them).
func (a *Appender) ReadLockedAt(ctx context.Context, path string, warn func(error), read func(r *io.SectionReader) error) error {
	return a.readLocked(ctx, path, nil, warn, read)
}

// ReadLockedFile is ReadLocked for the mbox that the caller has open as
// want (nil: any), found at path: if path names another file once the
// locks are held, because a directory of the path was replaced meanwhile
// (by a link to /etc, say), that is an error, and nothing is read.
func (a *Appender) ReadLockedFile(ctx context.Context, path string, want *os.File, warn func(error), read func(r io.Reader) error) error {
	return a.readLocked(ctx, path, want, warn, func(r *io.SectionReader) error { return read(r) })
}

// readLocked is ReadLockedFile, giving read the mbox's bytes as an
// io.SectionReader.
func (a *Appender) readLocked(ctx context.Context, path string, want *os.File, warn func(error), read func(r *io.SectionReader) error) error {
	if err := a.checkDirs(path); err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	var (
		l *lockedMbox
		// noDotLock is why this user may not make the dot-lock, once
		// an attempt has shown it.
		noDotLock error
	)
	err := a.retryLock(ctx, path, func(ctx context.Context) error {
		var err error
		l, err = a.tryReadLock(path, noDotLock == nil)
		if errors.Is(err, errStaleDotLock) {
			// Break the lock (and cut a dead writer's half record
			// off) under a writer's locks, then read under a
			// reader's.
			if err = a.Repair(ctx, path); err == nil {
				return fmt.Errorf("%s: %w", path, errLockBusy)
			}
		}
		if noDotLock == nil && mayNotWrite(err) {
			noDotLock = err
			l, err = a.tryReadLock(path, false)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	if want != nil {
		a, aerr := l.f.Stat()
		b, berr := want.Stat()
		if aerr != nil || berr != nil || !os.SameFile(a, b) {
			l.unlock()
			return fmt.Errorf("archive %s: the path names another file than the one opened before: not read", path)
		}
	}
	// A second handle, without locks: the locks go with l's. While they
	// are held the path names l's file, which nobody can replace.
	snap, err := OpenTrustedLink(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		if err = sameFiles(snap, l.f); err != nil {
			snap.Close()
		}
	}
	size := l.size
	l.unlock()
	if err != nil {
		return fmt.Errorf("archive %s: %w", path, err)
	}
	defer snap.Close()
	if noDotLock != nil && warn != nil {
		warn(noDotLock)
	}
	return read(io.NewSectionReader(snap, 0, size))
}

// sameFiles returns an error unless f and g are handles on one file.
func sameFiles(f, g *os.File) error {
	a, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	b, err := g.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", g.Name(), err)
	}
	if !os.SameFile(a, b) {
		return fmt.Errorf("%s was replaced while locked", f.Name())
	}
	return nil
}

// mayNotWrite reports whether err says this user may not make a dot-lock
// or cut an mbox back: no write access, or a read-only file system.
func mayNotWrite(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// tryReadLock makes one attempt at a reader's locks on the mbox at path
// (see ReadLocked): the shared kernel locks, then, if dotLock is set, the
// dot-lock. Without the dot-lock, a dot-lock held by a live process makes
// it wait, and a dead sluice writer's one bounds what is read to the
// length it recorded.
func (a *Appender) tryReadLock(path string, dotLock bool) (*lockedMbox, error) {
	// Without waiting for a writer, should the name be a FIFO.
	open := func() (*os.File, error) { return OpenTrustedLink(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) }
	f, err := openLocked(path, open, tryKernelReadLocks)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	l := &lockedMbox{f: f, path: path, size: fi.Size()}
	if !dotLock {
		return a.boundWithoutDotLock(l)
	}
	// A stale dot-lock, which may mark a dead writer's half record, is
	// errStaleDotLock: prepare sees no rollback.
	err = a.tryDotLock(path+lockSuffix, f, true, func(int64, string) (int64, error) { return l.size, nil })
	if err != nil {
		f.Close()
		return nil, err
	}
	// A writer that takes only the dot-lock may have appended between
	// the Stat above and our dot-lock (see tryLockMbox).
	if fi, err := f.Stat(); err != nil || fi.Size() != l.size {
		l.unlock()
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		return nil, fmt.Errorf("%s grew while we took its dot-lock: %w", path, errLockBusy)
	}
	return l, nil
}

// boundWithoutDotLock prepares l, under the kernel read locks only, for
// a reader that may not make the dot-lock: it waits while another
// process holds one, and stops before the half record of a dead sluice
// writer, which it may not cut off.
func (a *Appender) boundWithoutDotLock(l *lockedMbox) (*lockedMbox, error) {
	l.noDotLock = true
	found, err := a.staleLock(l.path+lockSuffix, l.f)
	if err != nil {
		l.f.Close()
		return nil, err
	}
	found.release()
	if !found.stale {
		l.f.Close()
		return nil, fmt.Errorf("dot-lock %s%s: %w", l.path, lockSuffix, errLockBusy)
	}
	if found.rollback >= 0 && found.rollback < l.size {
		other, err := messageAfterDeadWriter(l.f, found.rollback, l.size, found.head)
		if err != nil {
			l.f.Close()
			return nil, err
		}
		if !other {
			l.size = found.rollback
		}
	}
	return l, nil
}

// sameFile returns an error unless the name leads, without a symbolic
// link, to the file of fi.
func sameFile(name string, fi fs.FileInfo) error {
	now, err := os.Lstat(name)
	if err != nil || !os.SameFile(now, fi) {
		return fmt.Errorf("the mbox was replaced or moved while it was locked (%s now leads elsewhere); nothing was removed", name)
	}
	return nil
}

// RemoveRecords rewrites the mbox at path without the records for which
// drop returns true, and returns how many it dropped; a record kept is
// copied from the old file, not held in memory. It holds the same
// locks as an append, writes the new mbox next to the old one and renames
// it into place, so a crash leaves either the old or the new file. Writers
// that were waiting for the lock notice the file was replaced and append
// to the new one.
func (a *Appender) RemoveRecords(ctx context.Context, path string, drop func(RecordAt) bool) (int, error) {
	if err := a.checkDirs(path); err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	unlock, err := a.locks.lock(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	defer unlock()
	l, err := a.lockMbox(ctx, path)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	defer l.unlock()
	fi, err := l.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	// The new file replaces the mbox itself, not a symbolic link to it
	// (an archive kept on another disk): renamed over the link, it would
	// leave the dropped records in the mbox the link pointed to.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	// Locks do not stop a rename: whoever may write the mbox's
	// directory can move it away and put a symbolic link at its name
	// meanwhile (to another archive, or to /etc/shadow when root runs
	// this), and a logrotate may rename it. The name must still lead to
	// the file locked and read, or the rename below would replace
	// another file and leave the records meant to go where they are.
	if err := sameFile(target, fi); err != nil {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	tmp := filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".sluice-tmp-"+strconv.Itoa(a.holder.pid))
	// A file of that name is what a removal with our pid left when it
	// was killed (no other can run: we hold the locks). Every "docker
	// run ... sluice archive move" has pid 1, so it would stay in the
	// way of all later ones.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	dropped := 0
	var written fs.FileInfo
	_, err = writeSynced(tmp, func(w *bufio.Writer) error {
		// Record by record from the file: a 50 MB message kept is
		// copied, not held.
		return ScanMbox(l.f, l.size, func(r RecordAt) error {
			if drop(r) {
				dropped++
				return nil
			}
			if _, err := io.Copy(w, r.Raw()); err != nil {
				return err
			}
			return w.WriteByte('\n')
		})
	}, func(f *os.File) error {
		// Owner and mode go through the open file, not the name: whoever
		// may write the mbox's directory can put a symbolic link at the
		// name meanwhile, and as root a chown by name would give the
		// link's target (/etc/shadow) to the mbox's owner.
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			// Keep the owner (the daemon's user) when root runs this.
			f.Chown(int(st.Uid), int(st.Gid))
		}
		if err := f.Chmod(fi.Mode().Perm()); err != nil {
			return err
		}
		var err error
		written, err = f.Stat()
		return err
	})
	if err == nil && dropped == 0 {
		os.Remove(tmp)
		return 0, nil
	}
	if err == nil {
		// Only the file written replaces the mbox, not what was put at
		// its name since.
		if now, lerr := os.Lstat(tmp); lerr != nil || !os.SameFile(now, written) {
			err = fmt.Errorf("%s was replaced while the new mbox was written", tmp)
		}
	}
	if err == nil {
		// Again, just before: the copy took time.
		err = sameFile(target, fi)
	}
	if err == nil {
		err = os.Rename(tmp, target)
	}
	if err == nil {
		err = a.dirSync(filepath.Dir(target))
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("archive %s: %w", path, err)
	}
	return dropped, nil
}
