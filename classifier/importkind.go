package classifier

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"strings"
)

// importHead is how much of an import's input is looked at to tell a
// file of another kind given by mistake.
const importHead = 512

// byteOrderMark is UTF-8's byte order mark, which Windows editors write
// at the start of a text file they save.
const byteOrderMark = "\ufeff"

// peekInput wraps r so that its start can be looked at, and returns the
// wrapped reader with up to importHead bytes of that start. A read error
// stays with the reader and is met again by whoever reads it.
//
// A byte order mark at the start is left out, of the head and of what
// the reader reads: a word list edited on Windows (the .MSG_COUNT line an
// administrator adds to a list without one) starts with one, and read as
// part of the first line it made a token of ".ENCODING", whose check of
// a raw list it so escaped, or hid ".MSG_COUNT". Like a CR before each
// line end, it changes no record, nor the input's fingerprint.
func peekInput(r io.Reader) (*bufio.Reader, []byte) {
	br := bufio.NewReaderSize(r, 64*1024)
	head, _ := br.Peek(importHead)
	if bytes.HasPrefix(head, []byte(byteOrderMark)) {
		br.Discard(len(byteOrderMark))
		head, _ = br.Peek(importHead)
	}
	return br, head
}

// compressors are the magic numbers of the compressors a dump or an
// export may be kept under (a rotated backup, a copy sent by mail), with
// the command that decompresses to standard output.
var compressors = []struct{ name, magic, cat string }{
	{"gzip", "\x1f\x8b", "zcat"},
	{"xz", "\xfd7zXZ\x00", "xzcat"},
	// "BZh", the block size (a digit, '?' here), and the magic of a
	// first block or of the end of an empty stream: no text starts so.
	{"bzip2", "BZh?1AY&SY", "bzcat"},
	{"bzip2", "BZh?\x17rE8P\x90", "bzcat"},
	{"zstd", "\x28\xb5\x2f\xfd", "zstdcat"},
}

// Compressed reports whether head, the start of a file, is the start of
// a file compressed with gzip, xz, bzip2 or zstd, with the compressor's
// name and the command that decompresses it to standard output: input
// of sluice's commands (an import, a mailbox) kept compressed by
// mistake, which read as text would fail on binary garbage.
func Compressed(head []byte) (name, cat string, ok bool) {
	for _, c := range compressors {
		if hasMagic(head, c.magic) {
			return c.name, c.cat, true
		}
	}
	return "", "", false
}

// wrongInput says what the start of an import's input (head) shows it
// to be when that is not what the import reads (bogoutil: a bogoutil
// word list; else an export): a compressed file, a word list or store
// database rather than its text, or the other of the two text formats.
// It returns "" when the input may be what was asked for; what it then
// holds is checked line by line. Read as text, such files failed at
// their first line with an error that quoted binary garbage, or that
// named a field count or the export's header, not the mistake.
func wrongInput(head []byte, bogoutil bool) string {
	want, cmd := "an export", "sluice db import -"
	if bogoutil {
		want, cmd = "a bogoutil word list", "sluice db import --bogoutil -"
	}
	if name, cat, ok := Compressed(head); ok {
		return name + "-compressed, not " + want + ": decompress it first, or pipe it in (" + cat + " FILE | " + cmd + ")"
	}
	// The databases bogofilter keeps its word list in (Debian builds it
	// with Berkeley DB, SQLite or Tokyo Cabinet), and a sluice store:
	// the files that hold what the dump or export is made of.
	switch {
	case berkeleyDB(head):
		return "a Berkeley DB file (bogofilter's wordlist.db), not " + want + ": dump it with \"bogoutil -d FILE\" and import that with --bogoutil"
	case bytes.HasPrefix(head, []byte("SQLite format 3\x00")):
		return "an SQLite database (bogofilter's wordlist.db), not " + want + ": dump it with \"bogoutil -d FILE\" and import that with --bogoutil"
	case bytes.HasPrefix(head, []byte("ToKyO CaBiNeT")):
		return "a Tokyo Cabinet database (bogofilter's wordlist.tc), not " + want + ": dump it with \"bogoutil -d FILE\" and import that with --bogoutil"
	case len(head) >= 20 && binary.NativeEndian.Uint32(head[16:]) == boltMagic:
		return "a sluice token store, not " + want + ": export it with \"sluice db export --db FILE\" and import that"
	}
	first, _, _ := bytes.Cut(head, []byte("\n"))
	line := strings.TrimSuffix(string(first), "\r")
	switch {
	case bogoutil && strings.HasPrefix(line, "sluice-classifier-export "):
		return "a sluice export, not a bogoutil word list: import it without --bogoutil"
	case !bogoutil && bogoutilLine(line):
		return "a bogofilter word list (bogoutil -d), not an export: import it with --bogoutil"
	}
	return ""
}

// berkeleyDB reports whether head is the first page of a Berkeley DB
// btree or hash database: its magic number at offset 12, in the byte
// order of the machine that wrote it.
func berkeleyDB(head []byte) bool {
	if len(head) < 16 {
		return false
	}
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		switch order.Uint32(head[12:]) {
		case 0x053162, 0x061561: // btree, hash
			return true
		}
	}
	return false
}

// bogoutilLine reports whether line reads as a line of a bogoutil word
// list: a token, then two or three counts.
func bogoutilLine(line string) bool {
	f := strings.Fields(line)
	if len(f) != 3 && len(f) != 4 {
		return false
	}
	for _, n := range f[1:] {
		if _, err := strconv.ParseUint(n, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// hasMagic reports whether head starts with magic, in which '?' stands
// for a digit from 1 to 9.
func hasMagic(head []byte, magic string) bool {
	if len(head) < len(magic) {
		return false
	}
	for i := range len(magic) {
		if magic[i] == '?' {
			if head[i] < '1' || head[i] > '9' {
				return false
			}
		} else if head[i] != magic[i] {
			return false
		}
	}
	return true
}
