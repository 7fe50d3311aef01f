// Package mailbox reads the messages that "sluice train" and "sluice
// classify" are given: single message files, mbox files (mboxrd and
// mboxo), MMDF files, maildirs, and directories holding any of these,
// recursively.
//
// Rules, as documented in docs/training.md:
//
//   - a file whose first line, after any empty lines, starts with
//     "From " (and is no header field, as "From : a@example.org" is) is
//     an mbox; a "From " line after an empty line starts the next
//     message, and one ">" is taken off ">From ", ">>From " ... lines
//     (mboxrd unquoting); after a first separator with a ctime date, only
//     separators with one count, and the first line of a git
//     format-patch patch only when the first separator was one too; a
//     message Thunderbird marked expunged (see thunderbirdExpunged), and
//     an IMAP server's folder-state message first in the file (see
//     imapPseudoMessage), are skipped (the latter in an MMDF file too);
//   - a file whose first line, after any empty lines, is "\x01\x01\x01\x01"
//     is an MMDF mailbox, whose messages lie between such lines (see
//     readMMDF);
//   - a file compressed with gzip, xz, bzip2 or zstd is reported, not
//     read;
//   - any other file is one message, if named, without any empty lines
//     before its header; met in a directory, one whose first line that
//     is not empty is no header field is reported, not read (see
//     errNoMail);
//   - a directory with cur/ and new/ subdirectories, or with tmp/ and
//     one of them, or with cur/ holding files with maildir names (a
//     copy that dropped empty ones, see maildirSubs), is a maildir: the
//     files of new/ and cur/ are its messages (tmp/ holds deliveries in
//     progress and is left alone), except those flagged T (marked for
//     deletion); one renamed or deleted by a mail client while the walk
//     runs is read under its new name, or skipped, and each message
//     (by its unique name) is read once, even if moved from new/ to cur/
//     after it was read; a directory named cur that holds files with
//     maildir names is read as a maildir's cur/;
//   - any other directory is walked recursively, in name order;
//   - entries whose name starts with "." are skipped inside directories,
//     so that a Maildir++ folder such as ~/Maildir/.Spam is only read when
//     named, never as part of ~/Maildir; so are messages an MH reader
//     removed (see mhRemoved), and a mailbox's dot-lock beside it (see
//     dotLockOfListed);
//   - a symbolic link (a path given, a directory's entry, a maildir's
//     cur/ or new/ or message) is followed only if root or this user owns
//     it, by the rule of archive.OpenTrustedLink; others are reported;
//   - "-" is standard input, read as a file;
//   - a UTF-8 byte order mark at the start of a file or of standard input
//     is left out (see skipByteOrderMark);
//   - an mbox or MMDF file is read under the locks its writers take when the
//     caller asks for it (see Reader.Locks), as train and classify do.
package mailbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters/archive"
)

// separatorLine is an mbox separator as delivery agents write it: "From ",
// the envelope sender, and a ctime(3) date ("Mon Jan  1 00:00:00 2024").
// The sender may be missing ("From  Mon Jan ..."), as a writer that has
// none writes it: read as body, the line merged its message into the one
// before.
var separatorLine = regexp.MustCompile(`^From (?:\S+)? +[A-Z][a-z]{2} +[A-Z][a-z]{2} +\d{1,2} +\d{1,2}:\d{2}`)

// patchLine is the first line of a patch that git format-patch writes: the
// commit id (SHA-1 or SHA-256) and a fixed ctime date, which is no
// delivery's. In a message it is body (a patch pasted, or attached as
// plain text); only an mbox of patches has it as its separators.
var patchLine = regexp.MustCompile(`^From [0-9a-f]{40}(?:[0-9a-f]{24})? Mon Sep 17 00:00:00 2001\r?\n?$`)

// Message is one message read from a path.
type Message struct {
	// Name identifies the message: the file's path, or "PATH#N" for the
	// N-th message (from 1) of an mbox holding more than one.
	Name string
	// Data is the message without an mbox "From " line, unquoted. Read
	// with a bound (see ReadCapped), it holds at most that many bytes and
	// one more. It is the message's own: fn may keep it after it
	// returns.
	Data []byte
	// From is the mbox "From " line the message was read under, with
	// its line end (at most maxFromLine bytes of it), or nil: a message
	// of a plain file, a maildir or an MMDF file has none. It is no part
	// of the message, but bogofilter reads it as a header line, and a
	// word list imported from bogofilter holds its tokens.
	From []byte
	// Truncated is set when the message is longer than Data: the bound
	// cut it. The byte past the bound that Data still holds tells a
	// consumer bounded the same way that the message was longer.
	Truncated bool
	// Size is how many bytes of input the message took (with its mbox
	// separator), for progress reports.
	Size int64
	// Err is set when the message or the file could not be read; Data is
	// then nil. Walk goes on with the next file.
	Err error
}

// Stdin is the path that names standard input.
const Stdin = "-"

// Walk calls fn for every message at path, in a stable order. Files and
// directories that cannot be read are reported through fn as a Message
// with Err set. Walk returns the first error fn returns, and stops there.
func Walk(path string, stdin io.Reader, fn func(Message) error) error {
	return WalkCapped(path, stdin, 0, fn)
}

// WalkCapped is Walk with each message's Data bounded as ReadCapped does.
func WalkCapped(path string, stdin io.Reader, maxBytes int, fn func(Message) error) error {
	return Reader{Stdin: stdin, MaxBytes: maxBytes}.Walk(context.Background(), path, fn)
}

// Reader says how Walk reads.
type Reader struct {
	// Stdin is what the path "-" reads.
	Stdin io.Reader
	// MaxBytes bounds each message's Data as ReadCapped does (0: no
	// bound).
	MaxBytes int
	// Locks, when set, reads each mbox file (not standard input, nor a
	// maildir's messages) under the locks its writers take, through
	// archive.Appender.ReadLocked: the daemon's archive filter, a local
	// delivery agent or Dovecot may be appending to it, and a record read
	// in the middle of an append, or left half written by a writer that
	// died, would be read as a whole message cut short. A file whose
	// locks cannot be had in time is reported as unreadable.
	Locks *archive.Appender
	// Warn is told when an mbox is read without its dot-lock, which this
	// user may not make (see archive.Appender.ReadLocked).
	Warn func(path string, err error)
}

// Walk calls fn for every message at path, as the package function Walk
// does.
func (r Reader) Walk(ctx context.Context, path string, fn func(Message) error) error {
	stdin, maxBytes := r.Stdin, r.MaxBytes
	if path == Stdin {
		return ReadCapped(Stdin, ctxReader{ctx, stdin}, maxBytes, fn)
	}
	return files(path, func(e entry, err error) error {
		if err != nil {
			return fn(Message{Name: e.path, Err: err})
		}
		if e.md != nil && e.md.read[uniqueName(e.path)] {
			// Read already under another name (see listing.read).
			return nil
		}
		f, err := e.open()
		if e.md != nil && errors.Is(err, fs.ErrNotExist) {
			// A mail client renamed or deleted the message since its
			// directory was listed: a live folder is no error.
			moved, rerr := e.md.renamed(e.path)
			if rerr != nil {
				return fn(Message{Name: e.path, Err: rerr})
			}
			if moved == "" || trashed(moved) {
				return nil
			}
			e.path, e.name = filepath.Join(e.md.dir, moved), moved
			f, err = e.open()
		}
		if e.md != nil {
			uniq := uniqueName(e.path)
			if e.md.read[uniq] {
				// Renamed to a name of the listing that was read.
				if err == nil {
					f.Close()
				}
				return nil
			}
			e.md.read[uniq] = true
		}
		if err != nil && e.found && e.md == nil && e.dir != nil && errors.Is(err, fs.ErrNotExist) {
			// Removed or renamed since its directory was listed, as a
			// maildir's message is above: a live folder is no error.
			// An MH reader removes message N by renaming it ",N"
			// (see mhRemoved) and refiles it by a link and an unlink,
			// and the walk of a large folder takes long enough that a
			// user's rmm or refile meanwhile failed a nightly train.
			// The file is gone: there is nothing to learn or score.
			return nil
		}
		if err != nil {
			m := Message{Name: e.path, Err: err}
			if fi, err := e.stat(); err == nil {
				m.Size = fi.Size() // counted by TotalSize
			}
			return fn(m)
		}
		defer f.Close()
		fn := fileSized(f, fn)
		if e.md == nil && isEmptyFile(f) {
			// A mailbox with no message in it, such as an archive
			// whose last record "sluice archive move" moved away, or
			// a spool file after delivery: nothing to read, and no
			// error for a nightly "train --spam ARCHIVE_DIR" to trip
			// on. A file of blank lines is still reported.
			return nil
		}
		if e.found && e.md == nil && !isMailFile(f) {
			// Not learned, nor scored, as a message of garbage.
			return fn(Message{Name: e.path, Err: errNoMail})
		}
		if r.Locks != nil && e.md == nil && isMboxFile(f) {
			return r.readLocked(ctx, e.path, f, fn)
		}
		return ReadCapped(e.path, ctxReader{ctx, f}, maxBytes, fn)
	})
}

// fileSized returns fn for the messages of the regular file f, with the
// bytes of f that no message took counted in the error that ended the
// reading (a file refused at its start, or a read that failed part way):
// every byte that TotalSize counts is reported once, and a progress bar
// over it ends at its end. An error that ends the reading is one with no
// size; one for a message of nothing but white space has its own.
func fileSized(f *os.File, fn func(Message) error) func(Message) error {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return fn
	}
	var read int64
	return func(m Message) error {
		if m.Err != nil && m.Size == 0 {
			m.Size = max(fi.Size()-read, 0)
		}
		read += m.Size
		return fn(m)
	}
}

// ctxReader is r that fails once ctx has ended. The caller of Walk looks
// at its context between messages, but the rest of a message past
// MaxBytes is read on to find the next one: a file that never ends (a
// device such as /dev/zero, a pipe that keeps sending) was read for ever
// after Ctrl-C or a SIGTERM.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if c.ctx.Err() != nil {
		return 0, context.Cause(c.ctx)
	}
	return c.r.Read(p)
}

// isEmptyFile reports whether f is a regular file of no bytes.
func isEmptyFile(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// isMboxFile reports whether f is a regular file that starts as an mbox
// does (see ReadCapped). A pipe or device named on the command line is
// read as it is: it has no writers to lock out.
func isMboxFile(f *os.File) bool {
	mbox, regular := atStart(f, func(br *bufio.Reader) bool {
		first := firstTextLine(br)
		return startsMbox(first) || bytes.Equal(first, mmdfMark)
	})
	return regular && mbox
}

// errNoMail is reported for a file met in a directory that is no mail:
// a mail client's or server's index, summary, settings or list of folders
// kept beside its mailboxes (Thunderbird's Inbox.msf and
// msgFilterRules.dat, Dovecot's dovecot.list.index and subscriptions in
// the root of a LAYOUT=fs mail directory), or a token store put there.
var errNoMail = notRead("not read: no mail message nor mailbox (its first line is no header field); name the file to read it as one message")

// isMailFile reports whether f, met in a directory, may hold mail: its
// first line that is not empty is a header field, an mbox or MMDF
// separator, or its start is a compressor's (which ReadCapped reports
// better). A file that is not regular is left to the reading to judge.
func isMailFile(f *os.File) bool {
	mail, regular := atStart(f, func(br *bufio.Reader) bool {
		if notMail(br) != nil {
			return true
		}
		first := firstTextLine(br)
		return len(first) == 0 || classifier.IsFieldLine(first) || startsMbox(first) || bytes.Equal(first, mmdfMark)
	})
	return !regular || mail
}

// atStart returns what judge says of the start of f, read as ReadCapped
// will read it, through a buffer of the same size, but without moving
// f's offset; and whether f is a regular file (if not, judge is not
// called).
func atStart(f *os.File, judge func(*bufio.Reader) bool) (verdict, regular bool) {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false, false
	}
	br := readBuffers.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(f, 0, fi.Size()))
	defer func() {
		br.Reset(nil)
		readBuffers.Put(br)
	}()
	skipByteOrderMark(br)
	return judge(br), true
}

// byteOrderMark is the UTF-8 byte order mark, which Windows tools write
// before a message or mbox they save.
var byteOrderMark = []byte("\ufeff")

// skipByteOrderMark drops a byte order mark at the start of what br
// reads, and returns how many bytes it dropped. The mark is no part of a
// message: kept, it made the first line of the header no header field,
// and the tokenizer read the whole header as body text; it made an mbox
// one message, its From_ lines and all; and it made the digest another
// than that of the same message without it.
func skipByteOrderMark(br *bufio.Reader) int {
	head, _ := br.Peek(len(byteOrderMark))
	if !bytes.Equal(head, byteOrderMark) {
		return 0
	}
	n, _ := br.Discard(len(byteOrderMark))
	return n
}

// skipEmptyLines drops the empty lines (LF or CRLF) at the start of what
// br reads, and returns how many bytes it dropped.
func skipEmptyLines(br *bufio.Reader) int {
	n := 0
	for {
		b, _ := br.Peek(2)
		var end int
		switch {
		case len(b) > 0 && b[0] == '\n':
			end = 1
		case len(b) == 2 && b[0] == '\r' && b[1] == '\n':
			end = 2
		default:
			return n
		}
		d, _ := br.Discard(end)
		n += d
	}
}

// countSkipped returns fn with skipped bytes of the input, which no
// message holds, counted in the size of the first message passed on
// (for progress reports, see Message.Size). A first message with no size
// is an error that ended the reading, whose caller counts what is left
// of the input.
func countSkipped(skipped int, fn func(Message) error) func(Message) error {
	if skipped == 0 {
		return fn
	}
	first := true
	return func(m Message) error {
		if first && m.Size > 0 {
			m.Size += int64(skipped)
		}
		first = false
		return fn(m)
	}
}

// readLocked reads the mbox file open as f under its writers' locks. An
// error before the first message (the locks not had in time) is reported
// as the file's; one after comes from fn, and stops the walk.
func (r Reader) readLocked(ctx context.Context, file string, f *os.File, fn func(Message) error) error {
	read := false
	warn := func(err error) {
		if r.Warn != nil {
			r.Warn(file, err)
		}
	}
	// The locks are taken on the file at the path, which must still be
	// the one opened: the walk opened it through its directory, which
	// may have been replaced by a link since.
	err := r.Locks.ReadLockedFile(ctx, file, f, warn, func(rd io.Reader) error {
		read = true
		return ReadCapped(file, ctxReader{ctx, rd}, r.MaxBytes, fn)
	})
	if err != nil && !read {
		return fn(Message{Name: file, Err: err})
	}
	return err
}

// entry is a file found by a walk.
type entry struct {
	// path names the file.
	path string
	// dir is the directory the file was listed in, open, and name its
	// name there. The file is opened through dir: a directory on the way
	// that its owner replaces by a link while the walk runs (to /etc)
	// leads nowhere else. dir is nil for the path given and for a
	// symbolic link that is followed, which are opened by path.
	dir  *os.Root
	name string
	// md is the listing of a maildir's new/ or cur/ for their files,
	// which mail clients rename at any time, and nil for other files.
	md *listing
	// found is set for a file met in a directory, not named by the
	// caller.
	found bool
}

// openFlags open a message file met in a directory for reading.
// O_NONBLOCK: a FIFO put in the place of a file after the listing must
// not hold the walk up waiting for a writer; it makes no difference to a
// regular file.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

// open opens the entry's file; a symbolic link at its name is followed
// only by the rule of archive.OpenTrustedLink. A file named by the caller
// is opened without O_NONBLOCK: a named pipe (mkfifo) is read as it is,
// the open waiting for its writer, where with O_NONBLOCK the first read
// would find no writer yet and end at once, an empty message, and leave
// the writer blocked. A run waiting on it stops at a second Ctrl-C, as
// one waiting on a pipe that sends nothing.
func (e entry) open() (*os.File, error) {
	flags := openFlags
	if !e.found {
		flags = os.O_RDONLY
	}
	if e.dir == nil {
		return archive.OpenTrustedLink(e.path, flags, 0)
	}
	// Through the directory, which follows no link out of it.
	return e.dir.OpenFile(e.name, flags, 0)
}

// stat is os.Stat of the entry's file, by the rules of open.
func (e entry) stat() (fs.FileInfo, error) {
	if e.dir == nil {
		return statTrusted(e.path)
	}
	return e.dir.Stat(e.name)
}

// visitFunc is called for every file found, or with the error that kept a
// file or directory from being listed.
type visitFunc func(e entry, err error) error

// files calls visit for every file at path, by the rules of the package
// comment. Symbolic links, the path given included, are followed only if
// root or this process's user owns them (archive.OpenTrustedLink): root
// reading users' folders ("sluice train --ham /home/*/Maildir") must not
// read, and learn, what a user's link points to.
func files(path string, visit visitFunc) error {
	fi, err := statTrusted(path)
	if err != nil {
		return visit(entry{path: path}, err)
	}
	if !fi.IsDir() {
		return visit(entry{path: path}, nil)
	}
	dir, err := openRoot(path, fi)
	if err != nil {
		return visit(entry{path: path}, err)
	}
	defer dir.Close()
	return walkDir(dir, path, visit)
}

// statTrusted is os.Stat, except that a symbolic link at path is followed
// only by the rule of archive.OpenTrustedLink.
func statTrusted(path string) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return fi, err
	}
	if err := archive.TrustedLink(path, fi); err != nil {
		return nil, err
	}
	return os.Stat(path)
}

// openRoot opens the directory at path, which was found to be fi, for
// the files under it to be opened through it; it is an error if path
// names another directory by now.
func openRoot(path string, fi fs.FileInfo) (*os.Root, error) {
	dir, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	now, err := dir.Stat(".")
	if err != nil || !os.SameFile(fi, now) {
		dir.Close()
		return nil, fmt.Errorf("%s was replaced while it was opened", path)
	}
	return dir, nil
}

// walkDir calls visit for every file in the directory dir, found at path.
func walkDir(dir *os.Root, path string, visit visitFunc) error {
	if subs := maildirSubs(dir); subs != nil {
		read := map[string]bool{} // see listing.read
		for _, sub := range subs {
			if err := flatFiles(dir, path, sub, read, visit); err != nil {
				return err
			}
		}
		return nil
	}
	// A maildir's cur/ named by itself (~/Maildir/.Junk/cur) is read as
	// the maildir would read it.
	if filepath.Base(path) == "cur" && maildirNames(dir, ".") {
		return flatList(dir, path, map[string]bool{}, visit)
	}
	entries, err := readDir(path)
	if err != nil {
		return visit(entry{path: path}, err)
	}
	for _, e := range entries { // ReadDir sorts by name
		if strings.HasPrefix(e.Name(), ".") || mhRemoved(e.Name()) || dotLockOfListed(entries, e.Name()) {
			continue
		}
		p := filepath.Join(path, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			err = visitLink(dir, e.Name(), p, nil, visit)
		case e.IsDir():
			var sub *os.Root
			// Through dir: a link put in the directory's place
			// meanwhile leads nowhere outside it.
			if sub, err = dir.OpenRoot(e.Name()); err != nil {
				err = visit(entry{path: p}, err)
				break
			}
			err = walkDir(sub, p, visit)
			sub.Close()
		case e.Type().IsRegular():
			err = visit(entry{path: p, dir: dir, name: e.Name(), found: true}, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mhRemoved reports whether a name in a directory is that of a message an
// MH mail reader removed: nmh's rmm (and MH's before it) does not delete
// message N of a folder but renames it ",N" (or "#N", by the backup
// prefix it was built with), and such files stay until a cron job
// clears them. Walking the folder, they would be learned with the
// messages the user kept, as a maildir's messages flagged T would be.
// A file so named is still read when named.
func mhRemoved(name string) bool {
	if len(name) < 2 || name[0] != ',' && name[0] != '#' {
		return false
	}
	for i := 1; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

// dotLockOfListed reports whether name, in a directory listed as
// entries (sorted by name, as os.ReadDir returns them), is the dot-lock
// of a mailbox beside it: "spam.mbox.lock" next to "spam.mbox". It holds
// no mail (sluice's archive filter writes "sluice pid=... size=...", other
// programs a pid or nothing), and it comes and goes: it exists while a
// message is appended to the mailbox, and stays after a daemon that died
// appending until the next append or read breaks it, which reading the
// mailbox just before it in the walk may do. Read, it was an error either
// way ("not read: no mail message", or "no such file"), and a nightly
// "sluice train --spam" over the archive directory failed whenever the
// daemon was appending as the directory was listed. The archive filter
// never names a mailbox so (a target ending in ".lock" ends in "_lock").
func dotLockOfListed(entries []fs.DirEntry, name string) bool {
	mbox, ok := strings.CutSuffix(name, lockSuffix)
	if !ok || mbox == "" {
		return false
	}
	_, found := slices.BinarySearchFunc(entries, mbox, func(e fs.DirEntry, target string) int {
		return strings.Compare(e.Name(), target)
	})
	return found
}

// lockSuffix ends the name of an mbox's dot-lock (see archive.Appender).
const lockSuffix = ".lock"

// visitLink visits the file the symbolic link name in dir (at path p)
// points to, if its owner may have it followed and it is a regular file.
// A link to a directory is not followed: a link back up would loop.
func visitLink(dir *os.Root, name, p string, md *listing, visit visitFunc) error {
	link, err := dir.Lstat(name)
	if err == nil && link.Mode()&fs.ModeSymlink != 0 {
		err = archive.TrustedLink(p, link)
	}
	if err != nil {
		return visit(entry{path: p, md: md, found: true}, err)
	}
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		return visit(entry{path: p, md: md, found: true}, err)
	case fi.Mode().IsRegular() && (md == nil || !trashed(p)):
		return visit(entry{path: p, md: md, found: true}, nil)
	}
	return nil
}

// flatFiles lists the files of a maildir's new/ or cur/, sub of the
// maildir dir found at path. A symbolic link to a file is followed by the
// rule of archive.OpenTrustedLink (mairix and mu build maildirs of links,
// as the user who reads them); a dangling one is reported.
func flatFiles(dir *os.Root, path, sub string, read map[string]bool, visit visitFunc) error {
	p := filepath.Join(path, sub)
	fi, err := dir.Lstat(sub)
	var subDir *os.Root
	switch {
	case err != nil:
	case fi.Mode()&fs.ModeSymlink != 0:
		if err = archive.TrustedLink(p, fi); err == nil {
			if fi, err = os.Stat(p); err == nil {
				subDir, err = openRoot(p, fi)
			}
		}
	default:
		subDir, err = dir.OpenRoot(sub)
	}
	if err != nil {
		return visit(entry{path: p}, err)
	}
	defer subDir.Close()
	return flatList(subDir, p, read, visit)
}

// flatList lists the files of subDir, a maildir's new/ or cur/ found at
// p, for flatFiles.
func flatList(subDir *os.Root, p string, read map[string]bool, visit visitFunc) error {
	entries, err := readDir(p)
	if err != nil {
		return visit(entry{path: p}, err)
	}
	md := &listing{dir: p, read: read}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := filepath.Join(p, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			// Only links cost a stat: a maildir may hold many files.
			if err := visitLink(subDir, e.Name(), name, md, visit); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() || trashed(name) {
			continue
		}
		// found: a FIFO put in its place after the listing must not
		// hold the walk up (see openFlags).
		if err := visit(entry{path: name, dir: subDir, name: e.Name(), md: md, found: true}, nil); err != nil {
			return err
		}
	}
	return nil
}

// readDir is os.ReadDir; a test counts the calls. Only the names it
// returns are used: the files are opened through the directory's
// os.Root.
var readDir = os.ReadDir

// listing is one listing of a maildir's new/ or cur/, whose files a walk
// is reading.
type listing struct {
	dir string
	// now is cur/ as read again after the listing, when a listed file was
	// found gone: each file's name by its unique part (before the ":").
	// A client that flags or expunges a whole folder while it is read
	// (marking 20,000 messages read) leaves every file not yet read gone
	// under its listed name: cur/ is read again once, not once a file,
	// which took 290 s instead of 7 s for 20,000 messages.
	now map[string]string
	// read holds the unique names of the maildir's messages read (or
	// reported) so far, in new/ and cur/ both: a message the client
	// moves from new/ to cur/ after it was read there is listed again
	// in cur/, and a directory listed while its files are renamed may
	// list one under its old and its new name (readdir(3) leaves that
	// open). Either was read twice: two verdicts, one message counted
	// twice by train.
	read map[string]bool
}

// uniqueName is the unique name of the maildir message file: its name
// before the ":" of its flags, which a rename keeps.
func uniqueName(file string) string {
	uniq, _, _ := strings.Cut(filepath.Base(file), ":")
	return uniq
}

// renamed returns the name in the listing's directory that the message
// listed as file has now, or "" if it is gone. A reader moves a message
// from new/ to cur/ once it has seen it, and renames it in cur/ when its
// flags change; the unique name before the ":" stays. A message that
// left new/ is not looked for: cur/ is listed after new/ and holds it
// then.
func (l *listing) renamed(file string) (string, error) {
	if filepath.Base(l.dir) != "cur" {
		return "", nil
	}
	name := filepath.Base(file)
	uniq := uniqueName(name)
	if l.now != nil {
		now, ok := l.now[uniq]
		if !ok {
			// Gone from cur/ already when it was read again, after
			// the listing: expunged, or moved to another folder.
			return "", nil
		}
		if now != name {
			if _, err := os.Lstat(filepath.Join(l.dir, now)); err == nil {
				return now, nil
			}
		}
		// Renamed (again) since cur/ was read again.
	}
	entries, err := readDir(l.dir)
	if err != nil {
		return "", err
	}
	l.now = make(map[string]string, len(entries))
	for _, e := range entries {
		u, _, _ := strings.Cut(e.Name(), ":")
		if _, dup := l.now[u]; !dup { // the first in name order, as before
			l.now[u] = e.Name()
		}
	}
	if now, ok := l.now[uniq]; ok {
		return now, nil
	}
	return "", nil
}

// trashed reports whether the maildir message file carries the T flag
// (":2,...T..."): marked for deletion and not yet expunged. IMAP clients
// without the MOVE command move a message by copying it and marking the
// original \Deleted, which Dovecot and Courier store as T; a ham moved
// out of a Junk folder sits there so marked until the folder is expunged,
// and must not be learned as spam.
func trashed(file string) bool {
	_, info, ok := strings.Cut(filepath.Base(file), ":2,")
	return ok && strings.IndexByte(info, 'T') >= 0
}

// maildirSubs returns the subdirectories of dir to read if it is a
// maildir, new/ then cur/, and nil if it is not. A maildir has cur/ and
// new/, or tmp/ and one of them: a copy made by a tool that drops empty
// directories (rsync -m) lacks an empty new/ or cur/, and its tmp/,
// deliveries in progress, must still not be read. Such a copy has
// mostly lost its tmp/ too, which is empty but while a message is being
// delivered: a directory with cur/ alone is a maildir as well if cur/
// holds files with maildir names (see maildirNames), which a directory
// of .eml files does not; new/ alone (a corpus of new and old mail)
// marks none, and its files carry no flags to heed. Each may be a
// directory or a symbolic link, which flatFiles follows or reports: a
// maildir whose cur/ is a link that is not followed is still no plain
// directory, whose tmp/ would be read.
func maildirSubs(dir *os.Root) []string {
	has := func(sub string) bool {
		fi, err := dir.Lstat(sub)
		return err == nil && (fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0)
	}
	newDir, curDir := has("new"), has("cur")
	if !(newDir && curDir) && !((newDir || curDir) && has("tmp")) && !(curDir && maildirNames(dir, "cur")) {
		return nil
	}
	var subs []string
	if newDir {
		subs = append(subs, "new")
	}
	if curDir {
		subs = append(subs, "cur")
	}
	return subs
}

// ErrEmpty is reported for an empty file, or a message of nothing but
// blank lines: there is nothing to classify or learn.
var ErrEmpty = errors.New("empty message")

// hasText reports whether p holds anything but white space and line
// ends, which alone make no message.
func hasText(p []byte) bool {
	for _, c := range p {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return true
		}
	}
	return false
}

// textFinder is an io.Writer that only notes whether what goes through
// it has text (see hasText): the part of a message past the bound, which
// is dropped.
type textFinder struct{ found bool }

func (f *textFinder) Write(p []byte) (int, error) {
	f.found = f.found || hasText(p)
	return len(p), nil
}

// ReadCapped reads one message or an mbox from r, naming messages after
// name, holding at most maxBytes+1 bytes of each message in memory (0: no
// bound): a consumer that looks only at the first maxBytes,
// like the classifier's tokenizer, gets what it would get from the whole
// message, while one huge message in an mbox cannot exhaust memory. The
// rest of a longer message is read and dropped, so the next message of an
// mbox is still found, and Truncated is set.
func ReadCapped(name string, r io.Reader, maxBytes int, fn func(Message) error) error {
	br := readBuffers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readBuffers.Put(br)
	}()
	fn = countSkipped(skipByteOrderMark(br), fn)
	head, err := br.Peek(5)
	if err != nil && !errors.Is(err, io.EOF) {
		return fn(Message{Name: name, Err: err})
	}
	if len(head) == 0 {
		return fn(Message{Name: name, Err: ErrEmpty})
	}
	if err := notMail(br); err != nil {
		return fn(Message{Name: name, Err: err})
	}
	// A file may start with empty lines before its first separator, as
	// one whose writer puts an empty line before each separator; no
	// message starts with one.
	first := firstTextLine(br)
	if bytes.Equal(first, mmdfMark) {
		return readMMDF(name, br, maxBytes, fn)
	}
	if !startsMbox(first) {
		if classifier.IsFieldLine(first) {
			// Empty lines before the header are no part of the
			// message: kept, the first ended its header before it
			// began, and the tokenizer read the header as body text.
			fn = countSkipped(skipEmptyLines(br), fn)
		}
		return fn(readPlain(name, br, maxBytes))
	}
	return readMbox(name, br, maxBytes, fn)
}

// notRead is the error for input that is read but holds no message:
// a file of another kind, or text of a mailbox outside its messages.
type notRead string

func (e notRead) Error() string { return string(e) }

// notMail returns why the file or input br reads, which the caller has
// peeked into, is no message nor mbox, or nil. A compressed mbox
// (logrotate's spam.mbox.1.gz, an archived folder), read as it is, was
// one message of garbage, learned or scored without a word; it is
// refused instead, with the way out.
func notMail(br *bufio.Reader) error {
	head, _ := br.Peek(10)
	if name, cat, ok := classifier.Compressed(head); ok {
		return notRead(fmt.Sprintf("%s-compressed, not read: decompress it first, or pipe it in (%s FILE | sluice ... -)", name, cat))
	}
	return nil
}

// firstTextLine returns the first line of what br holds that is not
// empty, without its line end and without reading it: a line is looked
// for up to the size of br's buffer.
func firstTextLine(br *bufio.Reader) []byte {
	start := 0 // of the line looked at
	for {
		// One more byte than is held: Peek waits for no more than that.
		b, err := br.Peek(min(br.Buffered()+1, br.Size()))
		for {
			i := bytes.IndexByte(b[start:], '\n')
			if i < 0 {
				break
			}
			if line := bytes.TrimSuffix(b[start:start+i], []byte("\r")); len(line) > 0 {
				return line
			}
			start += i + 1
		}
		if err != nil || len(b) == br.Size() {
			return b[start:]
		}
	}
}

// startsMbox reports whether line, the first of a file that is not empty
// (see firstTextLine), makes the file an mbox: it starts with "From "
// and is no header field as the tokenizer tells one. "From :
// a@example.org" is a From field (RFC 822 allowed the blank, and spam
// still writes it); a separator line never is one, as the text before its
// first colon holds blanks between words.
func startsMbox(line []byte) bool {
	return bytes.HasPrefix(line, []byte("From ")) && !classifier.IsFieldLine(line)
}

// readBuffer is the size of the read buffer, and so the longest piece of
// a line held at once: a longer line is read in pieces.
const readBuffer = 64 << 10

// readBuffers keeps the read buffers of ReadCapped for the next file:
// "sluice classify --list" over thousands of small files allocated,
// cleared and gave back one of 64 kB per file, which cost more than
// reading the file. Every Message gets a copy of its bytes, never a
// slice of the buffer.
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

// readPlain reads a file that is one message, from br, which the caller
// has peeked into.
func readPlain(name string, br *bufio.Reader, maxBytes int) Message {
	limit := int64(math.MaxInt64)
	if maxBytes > 0 {
		limit = int64(maxBytes) + 1
	}
	// The peek filled the read buffer, which so holds all of a file of
	// up to 64 kB: room for that much is one allocation, where growing
	// from nothing took several and a copy each.
	var buf bytes.Buffer
	buf.Grow(int(min(int64(br.Buffered())+bytes.MinRead, limit)))
	if _, err := buf.ReadFrom(io.LimitReader(br, limit)); err != nil {
		return Message{Name: name, Err: err}
	}
	data := buf.Bytes()
	if maxBytes <= 0 {
		if !hasText(data) {
			return Message{Name: name, Err: ErrEmpty, Size: int64(len(data))}
		}
		return Message{Name: name, Data: data, Size: int64(len(data))}
	}
	var restText textFinder
	rest, err := io.Copy(&restText, br)
	if err != nil {
		return Message{Name: name, Err: err}
	}
	size := int64(len(data)) + rest
	if !hasText(data) && !restText.found {
		return Message{Name: name, Err: ErrEmpty, Size: size}
	}
	return Message{Name: name, Data: data, Size: size, Truncated: rest > 0}
}

// held is the part of an mbox message kept in memory: all of it up to
// limit bytes (0: no limit), how long the whole message is, and its last
// bytes, which decide whether a line end is trimmed off (see trimmed).
type held struct {
	buf   bytes.Buffer
	limit int
	total int64
	tail  []byte // the last 3 bytes at most
	// text is set once the message has more than white space and line
	// ends, held or not (see hasText).
	text bool
}

func (h *held) write(p []byte) {
	h.total += int64(len(p))
	h.text = h.text || hasText(p)
	h.tail = append(h.tail, p[max(len(p)-3, 0):]...)
	h.tail = h.tail[max(len(h.tail)-3, 0):]
	if h.limit > 0 {
		p = p[:min(len(p), max(h.limit-h.buf.Len(), 0))]
	}
	h.buf.Write(p)
}

func (h *held) reset() {
	h.buf.Reset()
	h.total = 0
	h.tail = h.tail[:0]
	h.text = false
}

// take ends the message held: it returns the first length bytes of it,
// or as many of those as are held, whether some were not held, and
// whether the message has text; h is then ready for the next message.
// The bytes returned are the caller's: h gets a new buffer.
func (h *held) take(length int64) (data []byte, truncated, text bool) {
	data = h.buf.Bytes()[:min(int64(h.buf.Len()), length)]
	h.buf = bytes.Buffer{}
	truncated, text = length > int64(len(data)), h.text
	h.reset()
	return data, truncated, text
}

// oneBehind passes a mailbox's messages on one behind the reading: a
// message is passed on only once the next one has ended, or the input
// has, so that a mailbox of one message is named like a plain file.
type oneBehind struct {
	name    string // the mailbox's
	fn      func(Message) error
	pending *Message
	n       int // the messages ended, passed on or not (the caller counts)
}

// hold passes on the message held, if any, and holds in its place
// message n, of data, read under the mbox From_ line from (nil for
// none); a message without text is held as ErrEmpty.
func (o *oneBehind) hold(data, from []byte, size int64, truncated, text bool) error {
	m := &Message{Name: o.name + "#" + strconv.Itoa(o.n), Data: data, From: from, Size: size, Truncated: truncated}
	if !text {
		m.Data, m.From, m.Err, m.Truncated = nil, nil, ErrEmpty, false
	}
	if o.pending != nil {
		if err := o.fn(*o.pending); err != nil {
			return err
		}
	}
	o.pending = m
	return nil
}

// fail passes on the message held, if any, then err, a read error that
// ends the mailbox (a kind, such as "mbox"), as a Message of its own.
func (o *oneBehind) fail(kind string, err error) error {
	if o.pending != nil {
		if err := o.fn(*o.pending); err != nil {
			return err
		}
	}
	return o.fn(Message{Name: o.name, Err: fmt.Errorf("%s after message %d: %w", kind, o.n, err)})
}

// last passes on the message held, if any, at the end of the input, with
// extra bytes of the input that belong to no other message counted in
// its size; the only message of the mailbox is named as the mailbox.
func (o *oneBehind) last(extra int64) error {
	if o.pending == nil {
		return nil
	}
	o.pending.Size += extra
	if o.n == 1 {
		o.pending.Name = o.name
	}
	return o.fn(*o.pending)
}

// trimmed returns how many bytes of line end at the message's end belong
// to the mbox, not to the message: the empty line before the next "From "
// line, or at the end of the input one that follows another line end.
func (h *held) trimmed(last bool) int64 {
	if last && !bytes.HasSuffix(h.tail, []byte("\n\n")) && !bytes.HasSuffix(h.tail, []byte("\n\r\n")) {
		return 0
	}
	switch {
	case bytes.HasSuffix(h.tail, []byte("\r\n")):
		return 2
	case bytes.HasSuffix(h.tail, []byte("\n")):
		return 1
	}
	return 0
}

// readMbox splits an mbox. A message is passed on only once the next one
// starts or the input ends, so that an mbox of one message is named like a
// plain file. Lines are read in pieces of at most readBuffer bytes, so
// that a message without line ends cannot be held whole either.
func readMbox(name string, br *bufio.Reader, maxBytes int, fn func(Message) error) error {
	var (
		out     = oneBehind{name: name, fn: fn}
		cur     held
		size    int64
		inMsg   bool
		strict  bool   // the first separator has a ctime date (see below)
		patches bool   // the first separator is a patch's (patchLine)
		blank   = true // the line before was empty (or there was none)
		// Where the current piece is in its line: at the start, in a
		// separator line (dropped), or in a line whose start decided
		// what happens to the rest.
		lineStart = true
		inSep     bool
		lineBlank bool
		run       quoteRun
		skipped   bool   // the last message ended was not passed on
		sepLine   []byte // the separator line of the current message
	)
	if maxBytes > 0 {
		cur.limit = maxBytes + 1
	}
	// The peek filled the read buffer, which so holds all of an mbox of
	// up to 64 kB: most often one message, which then needs no more
	// room than that.
	cur.buf.Grow(br.Buffered())
	flush := func(last bool) error {
		if !inMsg {
			return nil
		}
		// The trimmed line end is at the end: a message longer than
		// what is held keeps all of that as its start.
		data, truncated, text := cur.take(cur.total - cur.trimmed(last))
		out.n++
		if thunderbirdExpunged(data) || out.n == 1 && imapPseudoMessage(data) {
			// Gone from the folder, as far as its mail client
			// knows (see thunderbirdExpunged). Its bytes count with
			// the next message's, or the last's, for the progress
			// bar.
			skipped = true
			return nil
		}
		skipped = false
		err := out.hold(data, endLine(sepLine), size, truncated, text)
		size = 0
		return err
	}
	for {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			size += int64(len(piece))
			orig := piece
			more := errors.Is(err, bufio.ErrBufferFull) // of this line
			if run.open {
				piece = run.next(piece, more)
			}
			if lineStart {
				// After the first message, only a line that looks like an
				// envelope separator (sender, then an asctime date) starts
				// another: one message piped with its From_ line but with
				// an unquoted "From my point of view" paragraph is one.
				// A file whose first separator has another date form (some
				// exporters write one) is split at every "From " line, as
				// before: its writer's separators are not ours to judge.
				// A patch's first line separates only patches: in a
				// message it is a patch in the body (see patchLine).
				from := blank && bytes.HasPrefix(piece, []byte("From "))
				if from && !inMsg {
					strict = separatorLine.Match(piece)
					patches = patchLine.Match(piece)
				}
				inSep = from && (!inMsg || !strict ||
					separatorLine.Match(piece) && (patches || !patchLine.Match(piece)))
				lineBlank = true
				if inSep {
					if err := flush(false); err != nil {
						return err
					}
					inMsg = true
					sepLine = nil
				} else if isQuotedFrom(piece) {
					piece = piece[1:]
				} else if more && piece[0] == '>' {
					piece = run.start(piece)
				}
			}
			if inMsg && !inSep {
				cur.write(piece)
			}
			if inSep {
				sepLine = append(sepLine, piece[:min(len(piece), max(maxFromLine-len(sepLine), 0))]...)
			}
			lineBlank = lineBlank && len(bytes.TrimRight(orig, "\r\n")) == 0
			lineStart = orig[len(orig)-1] == '\n'
			if lineStart {
				blank = lineBlank
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return out.fail("mbox", err)
		}
	}
	if run.open && inMsg {
		// The input ended within the run: no "From " follows it.
		cur.write(run.next(nil, false))
	}
	if err := flush(true); err != nil {
		return err
	}
	var extra int64
	if skipped {
		extra = size
	}
	return out.last(extra)
}

// maxFromLine bounds the part of an mbox From_ line kept with its
// message (Message.From): a separator is a sender and a date, and a line
// of megabytes that starts with "From " is no separator a reader needs
// whole.
const maxFromLine = 1024

// endLine returns line with a line end, which a From_ line cut at
// maxFromLine, or one that ends the input, lacks: the line is read
// before the message's first header line, which must stay a line of its
// own.
func endLine(line []byte) []byte {
	if len(line) == 0 || line[len(line)-1] == '\n' {
		return line
	}
	return append(line, '\n')
}

// mozillaExpunged is the Expunged bit of Thunderbird's X-Mozilla-Status
// field (nsMsgMessageFlags::Expunged).
const mozillaExpunged = 0x0008

// thunderbirdExpunged reports whether the mbox message data (without its
// From_ line) is one that Thunderbird deleted, or moved to another folder:
// it sets the Expunged bit in the X-Mozilla-Status field it writes at the
// top of a message and leaves the message in the mbox until the
// folder is compacted. A ham the user moved out of Junk sits there so
// marked, and must not be learned as spam. The field counts only as the
// first, or after the fields Thunderbird writes before it in a message
// it fetched by POP (X-Account-Key, the account, and X-UIDL, the
// message's id on the server): one that a sender wrote comes after the
// trace fields of the delivery, and says nothing about the folder.
func thunderbirdExpunged(data []byte) bool {
	for {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return false
		}
		if bytes.EqualFold(name, []byte("X-Account-Key")) || bytes.EqualFold(name, []byte("X-UIDL")) {
			continue
		}
		if !bytes.EqualFold(name, []byte("X-Mozilla-Status")) {
			return false
		}
		flags, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 16, 16)
		return err == nil && flags&mozillaExpunged != 0
	}
}

// imapPseudoSubject is the Subject of the message that UW-IMAP (and
// Dovecot, where configured to) writes first in an mbox to keep the
// folder's IMAP state.
const imapPseudoSubject = "DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA"

// imapPseudoMessage reports whether the mbox message data (without its
// From_ line), the first of its file, is an IMAP server's folder state
// rather than mail: its header has an X-IMAP field (UIDVALIDITY and the
// next UID; a real message of such a folder has X-UID instead) and the
// pseudo-message's Subject. Both together: a sender would need the
// message to be the first of the file as well, which is no gain to him.
func imapPseudoMessage(data []byte) bool {
	var state, subject bool
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("X-IMAP")):
			state = true
		case bytes.EqualFold(name, []byte("Subject")):
			subject = string(bytes.TrimSpace(value)) == imapPseudoSubject
		}
	}
	return state && subject
}

// mmdfMark is the line, four ^A, that an MMDF mailbox (mutt's
// mbox_type=MMDF, MMDF and SCO delivery agents) writes before and after
// each message.
var mmdfMark = []byte("\x01\x01\x01\x01")

// isMMDFSeparator reports whether line, a whole line with its line end,
// is an MMDF separator.
func isMMDFSeparator(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.Equal(bytes.TrimSuffix(line, []byte("\r")), mmdfMark)
}

// readMMDF splits an MMDF mailbox: each message is what lies between an
// opening and a closing separator line, whole and as written, since MMDF
// quotes nothing; a From_ line that opens a message (mutt writes one) is
// dropped, as an mbox's is. A message whose closing separator is missing
// (the file ends) is still read. Blank lines between messages are
// allowed; any other text there belongs to no message and is reported
// once, after the messages, rather than dropped unseen. Messages are
// named and bounded as readMbox names and bounds them.
func readMMDF(name string, br *bufio.Reader, maxBytes int, fn func(Message) error) error {
	var (
		out       = oneBehind{name: name, fn: fn}
		cur       held
		size      int64
		inMsg     bool
		firstLine bool // the line read is a message's first
		inFrom    bool // in the From_ line that opened the message
		lineStart = true
		stray     bool // text outside the messages
	)
	if maxBytes > 0 {
		cur.limit = maxBytes + 1
	}
	cur.buf.Grow(br.Buffered())
	end := func() error {
		// MMDF trims no line end: the message is all that was written.
		data, truncated, text := cur.take(cur.total)
		out.n++
		if out.n == 1 && imapPseudoMessage(data) {
			// An IMAP server's folder state, as in an mbox: its
			// bytes count with the next message's.
			return nil
		}
		err := out.hold(data, nil, size, truncated, text)
		size = 0
		return err
	}
	for {
		piece, err := br.ReadSlice('\n')
		if len(piece) > 0 {
			size += int64(len(piece))
			whole := piece[len(piece)-1] == '\n'
			switch {
			case lineStart && (whole || errors.Is(err, io.EOF)) && isMMDFSeparator(piece):
				if inMsg {
					if err := end(); err != nil {
						return err
					}
				}
				inMsg = !inMsg
				firstLine = inMsg
			case !inMsg:
				stray = stray || hasText(piece)
			default:
				if lineStart && firstLine {
					inFrom = startsMbox(bytes.TrimRight(piece, "\r\n"))
				}
				if !inFrom {
					cur.write(piece)
				}
				if whole {
					firstLine, inFrom = false, false
				}
			}
			lineStart = whole
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return out.fail("MMDF mailbox", err)
		}
	}
	if inMsg {
		if err := end(); err != nil {
			return err
		}
	}
	// Blank lines after the last message count with it.
	if err := out.last(size); err != nil {
		return err
	}
	if stray {
		return fn(Message{Name: name, Err: notRead("MMDF mailbox with text outside its ^A^A^A^A separators: that text was not read")})
	}
	return nil
}

// quoteRun unquotes a line whose start, '>'s and then a part of "From ",
// is longer than the read buffer: whether it is a quoted "From " line
// (see isQuotedFrom) is known only once a later piece of it is read. One
// '>' is left out as soon as the run starts; it is written after all if
// no "From " follows, which gives the same bytes, since only '>'s of the
// line have been written by then.
type quoteRun struct {
	open  bool
	carry []byte // a part of "From " that ended a piece, held back
}

// start takes the first piece of a line that goes on beyond it (more
// pieces follow) and starts with '>', and returns what to write of it.
func (q *quoteRun) start(piece []byte) []byte {
	i := gtPrefix(piece)
	if !undecided(piece[i:]) {
		return piece
	}
	q.open = true
	q.carry = append(q.carry[:0], piece[i:]...)
	return piece[1:i]
}

// next takes the next piece of a line that start opened, more telling
// whether the line goes on beyond it, and returns what to write of it.
func (q *quoteRun) next(piece []byte, more bool) []byte {
	data := append(q.carry, piece...)
	q.carry = nil
	i := gtPrefix(data)
	if more && undecided(data[i:]) {
		q.carry = append(q.carry, data[i:]...)
		return data[:i]
	}
	q.open = false
	if bytes.HasPrefix(data[i:], []byte("From ")) {
		return data
	}
	return append([]byte{'>'}, data...)
}

// gtPrefix returns how many '>' p starts with.
func gtPrefix(p []byte) int {
	i := 0
	for i < len(p) && p[i] == '>' {
		i++
	}
	return i
}

// undecided reports whether rest, what follows a line's '>'s so far,
// could still become "From ": a proper prefix of it, or nothing.
func undecided(rest []byte) bool {
	return len(rest) < len("From ") && bytes.HasPrefix([]byte("From "), rest)
}

// isQuotedFrom reports whether line is ">From ", ">>From " ...: a body
// line the mbox writer quoted (mboxrd).
func isQuotedFrom(line []byte) bool {
	i := 0
	for i < len(line) && line[i] == '>' {
		i++
	}
	return i > 0 && bytes.HasPrefix(line[i:], []byte("From "))
}

// ReadList reads a list of paths, one per line, as --list takes them.
// Empty lines are skipped, and a CR before a line end and a byte order
// mark at the start, which Windows editors write, are dropped: up to two
// CRs, as a list converted to CRLF twice has (the line scanner drops one,
// and then one more goes). Nothing else is trimmed, since a file name may
// start or end with a space.
//
// A line with a NUL byte, which no path holds, or longer than maxListLine
// ends the reading with an error: what is read is no list but a message,
// an mbox, a compressed file or a device named by mistake, and a device
// such as /dev/urandom would otherwise be read into memory without end.
func ReadList(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxListLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSuffix(sc.Text(), "\r")
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if strings.IndexByte(line, 0) >= 0 {
			return nil, fmt.Errorf("read list: line %d holds a NUL byte, which no path does: not a list of paths, one per line", n)
		}
		if line == "" {
			continue
		}
		if len(paths) == 0 && startsMessage(line) {
			return nil, fmt.Errorf("read list: line %d reads as the start of a message or an mbox, not as a path: name the file as a PATH, without --list", n)
		}
		paths = append(paths, line)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("read list: line %d is longer than %d bytes, which no path is: not a list of paths, one per line", n+1, maxListLine)
		}
		return nil, fmt.Errorf("read list: %w", err)
	}
	return paths, nil
}

// startsMessage reports whether the first path of a list is rather the
// first line of a message ("Return-Path: <...>") or of an mbox ("From
// sender date"), named with --list by mistake: it has that form, and no
// file has that name. A maildir file's name has a colon too
// ("cur/1700000000.M1P2.host:2,S"), but also dots (and mostly a slash)
// before it, as a field's name has not: such a file renamed since the
// list was made is reported as one unreadable path, not as no list.
func startsMessage(line string) bool {
	b := []byte(line)
	colon := bytes.IndexByte(b, ':')
	field := classifier.IsFieldLine(b) && !bytes.ContainsAny(b[:colon], "/.")
	if !field && !startsMbox(b) {
		return false
	}
	_, err := os.Lstat(line)
	return errors.Is(err, fs.ErrNotExist)
}

// maxListLine bounds a line of a list: far above any path a system opens
// (4096 bytes on Linux).
const maxListLine = 64 << 10

// TotalSize returns the bytes the messages at the paths take, for a
// progress bar; standard input and unreadable paths count 0.
func TotalSize(paths []string) int64 {
	var total int64
	for _, p := range paths {
		if p == Stdin {
			continue
		}
		files(p, func(e entry, err error) error {
			if err != nil {
				return nil
			}
			if fi, err := e.stat(); err == nil {
				total += fi.Size()
			}
			return nil
		})
	}
	return total
}

// maildirNames reports whether the directory sub of dir holds a file
// named as a maildir's cur/ names its messages: with the info after
// ":2," (flags such as S and T), which no mail client or server gives a
// file elsewhere. It reads the directory only up to the first such name.
func maildirNames(dir *os.Root, sub string) bool {
	f, err := dir.Open(sub)
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(256)
		for _, n := range names {
			if !strings.HasPrefix(n, ".") && strings.Contains(n, ":2,") {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}
