package config

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"

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

// syntaxBudget bounds the bytes syntaxError decodes again to find the
// line of an error, so that a huge broken file is not decoded once per
// line; past it, the line yaml.v3 gave stands.
const syntaxBudget = 64 << 20

// syntaxError turns a yaml.v3 syntax error in data into an Error at the
// line that has the mistake. yaml.v3 numbers the line where the
// construct around the mistake starts (the mapping, the quoted string),
// for parser errors the line before that, and on the first line it gives
// none: a tab indenting the third line of a section was reported on its
// second. The mistake is on the first line, from the one yaml.v3 gave
// on, whose text up to its end fails with the same message: the decoder
// reads in order, so the lines before it decode (or fail otherwise) and
// with it the decoder meets the mistake as in the whole file.
func syntaxError(file string, data []byte, err error) error {
	given, msg := splitYAMLError(err)
	line := given
	lines := bytes.SplitAfter(data, []byte("\n"))
	end, spent := 0, 0
	for n := 1; n <= len(lines); n++ {
		end += len(lines[n-1])
		if n < given {
			continue
		}
		if spent += end; spent > syntaxBudget {
			break
		}
		var doc yaml.Node
		if _, perr := decodeDocuments(data[:end], &doc); perr != nil {
			if _, m := splitYAMLError(perr); m == msg {
				line = n
				break
			}
		}
	}
	if line > 0 && line <= len(lines) {
		msg += hint(string(lines[line-1]), msg)
	}
	return &Error{File: file, Line: line, Err: errors.New(msg)}
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
