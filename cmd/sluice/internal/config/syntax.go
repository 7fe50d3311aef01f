package config

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// decodeDocuments decodes the first YAML document of data into doc and
// returns the first later document that has content, or nil. Every
// document is read, so that a syntax error anywhere in data is an error.
func decodeDocuments(data []byte, doc *yaml.Node) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// A "---" starts another document, which the decoding above leaves
	// unread: its keys would be ignored without a word. Empty documents
	// (a trailing "---") are harmless. Each Decode consumes input, so the
	// loop ends at the end of data.
	var second *yaml.Node
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			return second, nil
		}
		if err != nil {
			return nil, err
		}
		if second == nil && len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			second = next.Content[0]
		}
	}
}

// bom is the UTF-8 byte order mark, U+FEFF.
const bom = "\uFEFF"

// misplacedBOM returns an error at the first byte order mark of data that
// does not start it. One at the start is accepted, as YAML allows; one
// further on is what two files joined give when the second was saved
// with one (by an editor on Windows), and yaml.v3 reads it as part of the
// text: the key after it was reported as unknown, with the mark invisible
// in the message.
func misplacedBOM(file string, data []byte) error {
	start := 0
	if bytes.HasPrefix(data, []byte(bom)) {
		start = len(bom)
	}
	i := bytes.Index(data[start:], []byte(bom))
	if i < 0 {
		return nil
	}
	i += start
	lineStart := bytes.LastIndexByte(data[:i], '\n') + 1
	return &Error{
		File:   file,
		Line:   bytes.Count(data[:i], []byte("\n")) + 1,
		Column: utf8.RuneCount(data[lineStart:i]) + 1,
		Err:    errors.New("a byte order mark (U+FEFF) in the middle of the file (two files joined, the second saved with one?); only the start of the file may have one: remove it"),
	}
}

// syntaxBudget bounds the bytes syntaxError decodes again to find the
// place of an error, so that a huge broken file is not decoded once per
// line; past it, the line yaml.v3 gave stands.
const syntaxBudget = 64 << 20

// syntaxTime bounds the time syntaxError decodes again, as syntaxBudget
// does the bytes. The bytes alone do not bound the time: yaml.v3 checks
// every flow list or mapping still open at each token, so that a line
// nested 10000 deep costs a hundred times more per byte, and 50 KB of it
// took 80 seconds within the byte budget, holding config check, the
// start, or a reload and the stop signal behind it.
const syntaxTime = time.Second

// syntaxError turns a yaml.v3 syntax error in data into an Error at the
// line and column that have the mistake. yaml.v3 numbers the line where
// the construct around the mistake starts (the mapping, the quoted
// string), for parser errors the line before that, and on the first line
// it gives none: a tab indenting the third line of a section was
// reported on its second. The mistake is on the first line, from the one
// yaml.v3 gave on, whose text up to its end fails with the same message:
// the decoder reads in order, so the lines before it decode (or fail
// otherwise) and with it the decoder meets the mistake as in the whole
// file. Its column is found the same way, character by character; an
// error that needs the end of the line to show has none.
func syntaxError(file string, data []byte, err error) error {
	given, msg := splitYAMLError(err)
	spent := 0
	deadline := time.Now().Add(syntaxTime)
	within := func() bool { return spent <= syntaxBudget && time.Now().Before(deadline) }
	fails := func(prefix []byte) bool {
		var doc yaml.Node
		spent += len(prefix)
		_, perr := decodeDocuments(prefix, &doc)
		if perr == nil {
			return false
		}
		_, m := splitYAMLError(perr)
		return m == msg
	}
	line, col := given, 0
	lines := bytes.SplitAfter(data, []byte("\n"))
	end := 0
	for n := 1; n <= len(lines) && within(); n++ {
		end += len(lines[n-1])
		if n < given || !fails(data[:end]) {
			continue
		}
		line = n
		start := end - len(lines[n-1])
		text := strings.TrimRight(string(lines[n-1]), "\r\n")
		if strings.HasPrefix(msg, "did not find expected ','") {
			// A flow list or mapping not closed: every prefix after
			// its first item fails so, and the column would point at
			// that item, not at the missing bracket.
			text = ""
		}
		// By the bytes each character takes in the file: a byte that
		// is no UTF-8 is one character of one byte (utf8.RuneLen of
		// the replacement character a range loop gives for it would
		// be 3, past the end of the line).
		for i := 0; i < len(text) && within(); {
			_, size := utf8.DecodeRuneInString(text[i:])
			if fails(data[:start+i+size]) {
				col = utf8.RuneCountInString(text[:i]) + 1
				break
			}
			i += size
		}
		break
	}
	if line > 0 && line <= len(lines) {
		msg += hint(string(lines[line-1]), msg)
	}
	return &Error{File: file, Line: line, Column: col, Err: errors.New(msg)}
}

// hint explains the messages of yaml.v3 that name the mistake least
// clearly for the common case, given the text of the line.
func hint(text, msg string) string {
	indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
	switch {
	case strings.Contains(indent, "\t") && !strings.Contains(msg, "tab"):
		return " (a tab: YAML indents with spaces only)"
	case msg == "found unexpected end of stream" && strings.ContainsAny(text, `"'`):
		return " (a quote on this line is not closed)"
	}
	return ""
}

// splitYAMLError splits a yaml.v3 error into its line (0 if none) and
// its message without the "yaml: line N: " prefix.
func splitYAMLError(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}
