// Package mailbox reads the messages that "sluice train" and "sluice
// classify" are given: single message files, mbox files (mboxrd and
// mboxo), maildirs, and directories holding any of these, recursively.
//
// Rules, as documented in docs/training.md:
//
//   - a file whose first line starts with "From " is an mbox; a "From "
//     line after an empty line starts the next message, and one ">" is
//     taken off ">From ", ">>From " ... lines (mboxrd unquoting);
//   - any other file is one message;
//   - a directory with cur/ and new/ subdirectories is a maildir: the
//     files of new/ and cur/ are its messages (tmp/ holds deliveries in
//     progress and is left alone);
//   - any other directory is walked recursively, in name order;
//   - entries whose name starts with "." are skipped inside directories,
//     so that a Maildir++ folder such as ~/Maildir/.Spam is only read when
//     named, never as part of ~/Maildir;
//   - "-" is standard input, read as a file.
package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Message is one message read from a path.
type Message struct {
	// Name identifies the message: the file's path, or "PATH#N" for the
	// N-th message (from 1) of an mbox holding more than one.
	Name string
	// Data is the message without an mbox "From " line, unquoted.
	Data []byte
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
	if path == Stdin {
		return Read(Stdin, stdin, fn)
	}
	return files(path, func(file string, err error) error {
		if err != nil {
			return fn(Message{Name: file, Err: err})
		}
		f, err := os.Open(file)
		if err != nil {
			return fn(Message{Name: file, Err: err})
		}
		defer f.Close()
		return Read(file, f, fn)
	})
}

// files calls visit for every file at path, by the rules of the package
// comment, or with the error that kept a file or directory from being
// listed.
func files(path string, visit func(file string, err error) error) error {
	fi, err := os.Stat(path)
	if err != nil {
		return visit(path, err)
	}
	if !fi.IsDir() {
		return visit(path, nil)
	}
	if isMaildir(path) {
		for _, sub := range []string{"new", "cur"} {
			if err := flatFiles(filepath.Join(path, sub), visit); err != nil {
				return err
			}
		}
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return visit(path, err)
	}
	for _, e := range entries { // ReadDir sorts by name
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		fi, err := os.Stat(p) // follows a symlink to a file
		switch {
		case err != nil:
			err = visit(p, err)
		case fi.IsDir() && e.Type()&fs.ModeSymlink != 0:
			// Not followed: a link back up would loop.
		case fi.IsDir():
			err = files(p, visit)
		case fi.Mode().IsRegular():
			err = visit(p, nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flatFiles lists the files of a maildir's new/ or cur/.
func flatFiles(dir string, visit func(file string, err error) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return visit(dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		if err := visit(filepath.Join(dir, e.Name()), nil); err != nil {
			return err
		}
	}
	return nil
}

func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// ErrEmpty is reported for an empty file: there is nothing to classify or
// learn.
var ErrEmpty = errors.New("empty message")

// Read reads one message or an mbox from r, naming messages after name.
func Read(name string, r io.Reader, fn func(Message) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(5)
	if err != nil && !errors.Is(err, io.EOF) {
		return fn(Message{Name: name, Err: err})
	}
	if len(head) == 0 {
		return fn(Message{Name: name, Err: ErrEmpty})
	}
	if string(head) != "From " {
		data, err := io.ReadAll(br)
		if err != nil {
			return fn(Message{Name: name, Err: err})
		}
		return fn(Message{Name: name, Data: data, Size: int64(len(data))})
	}
	return readMbox(name, br, fn)
}

// readMbox splits an mbox. A message is passed on only once the next one
// starts or the input ends, so that an mbox of one message is named like a
// plain file.
func readMbox(name string, br *bufio.Reader, fn func(Message) error) error {
	var (
		pending *Message
		cur     bytes.Buffer
		size    int64
		n       int
		inMsg   bool
		blank   = true // the line before was empty (or there was none)
	)
	flush := func(last bool) error {
		if !inMsg {
			return nil
		}
		data := bytes.Clone(cur.Bytes())
		// The empty line before the next "From " belongs to the mbox, not
		// to the message.
		if !last || bytes.HasSuffix(data, []byte("\n\n")) || bytes.HasSuffix(data, []byte("\n\r\n")) {
			data = trimOneNewline(data)
		}
		n++
		m := &Message{Name: name + "#" + strconv.Itoa(n), Data: data, Size: size}
		if len(data) == 0 {
			m.Data, m.Err = nil, ErrEmpty
		}
		cur.Reset()
		size = 0
		if pending != nil {
			if err := fn(*pending); err != nil {
				return err
			}
		}
		pending = m
		return nil
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			size += int64(len(line))
			switch {
			case blank && bytes.HasPrefix(line, []byte("From ")):
				if err := flush(false); err != nil {
					return err
				}
				inMsg = true
			case inMsg:
				if isQuotedFrom(line) {
					line = line[1:]
				}
				cur.Write(line)
			}
			blank = len(bytes.TrimRight(line, "\r\n")) == 0
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if pending != nil {
				if err := fn(*pending); err != nil {
					return err
				}
			}
			return fn(Message{Name: name, Err: fmt.Errorf("mbox after message %d: %w", n, err)})
		}
	}
	if err := flush(true); err != nil {
		return err
	}
	if pending == nil {
		return nil
	}
	if n == 1 {
		pending.Name = name
	}
	return fn(*pending)
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

func trimOneNewline(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	if bytes.HasSuffix(b, []byte("\n")) {
		return b[:len(b)-1]
	}
	return b
}

// ReadList reads a list of paths, one per line, as --list takes them.
// Empty lines are skipped; nothing else is trimmed, since a file name may
// start or end with a space.
func ReadList(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line != "" {
			paths = append(paths, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read list: %w", err)
	}
	return paths, nil
}

// TotalSize returns the bytes the messages at the paths take, for a
// progress bar; standard input and unreadable paths count 0.
func TotalSize(paths []string) int64 {
	var total int64
	for _, p := range paths {
		if p == Stdin {
			continue
		}
		files(p, func(file string, err error) error {
			if fi, serr := os.Stat(file); err == nil && serr == nil {
				total += fi.Size()
			}
			return nil
		})
	}
	return total
}
