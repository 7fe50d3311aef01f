package filters

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Body holds a message body as it streams in from the MTA: in memory up to
// a limit, and in a temporary file beyond it, so that a 50 MB message costs
// the daemon a file, not 50 MB of memory.
//
// The temporary file is unlinked as soon as it is created: it has no name
// from then on, so it disappears when the Body is closed or the process
// dies, whatever path the session takes (end of message, abort, client
// disconnect, crash).
type Body struct {
	memLimit int64
	dir      string

	mem  []byte
	file *os.File
	// size is the number of bytes stored, in mem or file; lost counts
	// those written after the body broke, which it could not keep.
	size int64
	lost int64
	err  error
}

// NewBody returns an empty body that keeps up to memLimit bytes in memory
// and spills the rest to a temporary file in dir ("" means os.TempDir).
func NewBody(memLimit int64, dir string) *Body {
	return &Body{memLimit: memLimit, dir: dir}
}

// Write appends p to the body. After a failed spill (disk full, no
// permission) the body is marked broken: Write keeps returning the error
// and Err reports it, so filters can tell a complete body from a partial one.
//
// The bytes a broken body could not keep still count in Size: the message
// the MTA holds has them, and the log reports its size.
func (b *Body) Write(p []byte) (int, error) {
	if b.err != nil {
		b.lost += int64(len(p))
		return 0, b.err
	}
	if b.file == nil && b.size+int64(len(p)) <= b.memLimit {
		b.mem = append(b.mem, p...)
		b.size += int64(len(p))
		return len(p), nil
	}
	if b.file == nil {
		if err := b.spill(); err != nil {
			b.err = err
			b.lost += int64(len(p))
			return 0, err
		}
	}
	n, err := b.file.WriteAt(p, b.size)
	b.size += int64(n)
	if err != nil {
		b.err = fmt.Errorf("body: write temp file: %w", err)
		b.lost += int64(len(p) - n)
		return n, b.err
	}
	return n, nil
}

func (b *Body) spill() error {
	if b.dir == "" {
		// The system's, $TMPDIR or /tmp, which sluice does not make:
		// checked as a directory named in the configuration is.
		if err := CheckBodyDir(os.TempDir()); err != nil {
			return fmt.Errorf("body: %w", err)
		}
	} else if err := prepareBodyDir(b.dir); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	f, err := os.CreateTemp(b.dir, "sluice-body-")
	if err != nil {
		return fmt.Errorf("body: create temp file: %w", err)
	}
	// Unlink at once: the open descriptor keeps the data reachable, and no
	// path of the session can leave the file behind.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return fmt.Errorf("body: unlink temp file: %w", err)
	}
	if _, err := f.WriteAt(b.mem, 0); err != nil {
		f.Close()
		return fmt.Errorf("body: write temp file: %w", err)
	}
	b.file = f
	b.mem = nil
	return nil
}

// prepareBodyDir checks dir before a body is spilled there, as the start
// does (see CheckBodyDir), each time: a directory removed while the
// daemon ran (a cleaner of old files, an rm) may have been made again by
// another user meanwhile, in /tmp by anyone. One still missing is made
// again with the mode it gets at start, or every large message until a
// restart would reach the filters cut short, and checked once made: it
// may be another user's that appeared since. Only the directory itself:
// a parent gone too is more than a cleaner's work.
func prepareBodyDir(dir string) error {
	err := CheckBodyDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(dir, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			err = CheckBodyDir(dir)
		}
	}
	return err
}

// CheckBodyDir makes sure that dir is a directory that no other local
// user controls: owned, and if it is a symbolic link the link too, by
// the user sluice runs as or by root, and not writable by every user
// unless sticky (as /tmp is). Whoever controls the directory could
// replace or remove what sluice writes there, or send it elsewhere
// through a link. Its error wraps fs.ErrNotExist when dir is missing.
func CheckBodyDir(dir string) error {
	link, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	fi := link
	if link.Mode()&fs.ModeSymlink != 0 {
		if err := ownedBySluiceOrRoot(dir, link, "a symbolic link"); err != nil {
			return err
		}
		if fi, err = os.Stat(dir); err != nil {
			return err
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if err := ownedBySluiceOrRoot(dir, fi, "the directory"); err != nil {
		return err
	}
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("%s is writable by every user and not sticky: refusing to write message bodies there (chmod o-w or +t)", dir)
	}
	return nil
}

// ownedBySluiceOrRoot returns an error unless fi, what names dir (the
// directory, or a link to it), is owned by the effective user or root.
func ownedBySluiceOrRoot(dir string, fi fs.FileInfo, what string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if euid := os.Geteuid(); int(st.Uid) != euid && st.Uid != 0 {
		return fmt.Errorf("%s: %s is owned by uid %d, not by sluice's user (uid %d) or root: refusing to write message bodies where another user controls them", dir, what, st.Uid, euid)
	}
	return nil
}

// snapshot returns a Body with b's content so far that b's later Write
// and Close leave alone: bytes already stored are never rewritten, and
// reads from a temporary file that b has since closed fail cleanly.
func (b *Body) snapshot() *Body {
	if b == nil {
		return nil
	}
	c := *b
	c.mem = b.mem[:len(b.mem):len(b.mem)]
	return &c
}

// Size returns the number of bytes received, also those a broken body
// could not keep (see Err); Reader gives only the ones kept.
func (b *Body) Size() int64 { return b.size + b.lost }

// Spilled reports whether the body went to a temporary file.
func (b *Body) Spilled() bool { return b.file != nil }

// Err returns the error that broke the body, if any: the body then holds
// only what was stored before it.
func (b *Body) Err() error { return b.err }

// Reader returns a reader over the whole body from its start. Several
// readers may be used one after another; each starts at the beginning.
func (b *Body) Reader() io.Reader {
	if b.file != nil {
		return io.NewSectionReader(b.file, 0, b.size)
	}
	return io.NewSectionReader(bytesReaderAt(b.mem), 0, int64(len(b.mem)))
}

// Close releases the body's memory and temporary file. It is safe to call
// more than once.
func (b *Body) Close() error {
	b.mem = nil
	b.size, b.lost = 0, 0
	if b.file == nil {
		return nil
	}
	err := b.file.Close()
	b.file = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("body: close temp file: %w", err)
	}
	return nil
}

type bytesReaderAt []byte

func (r bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
