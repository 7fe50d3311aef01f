package filters_test

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// A header value may span lines only by folding: a line break followed by
// a space or tab. Any other line break would end the field early, and what
// follows it would read as a field of its own (a header injected from,
// say, a subject line copied into a tag) in every copy of the message
// sluice writes itself, such as an archive.
func TestHeaderEditValueLineBreaks(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{"plain", true},
		{"", true},
		{"one\n\ttwo", true},
		{"one\r\n two", true},
		{"one\n two\n\tthree", true},
		{"x\r\nBcc: evil@example.net", false},
		{"x\nBcc: evil@example.net", false},
		{"x\rBcc: evil@example.net", false},
		{"x\r\tfolded with a bare CR", false},
		{"ends in a break\n", false},
		{"ends in a break\r\n", false},
		{"\n starts with a fold", true},
		{"nul\x00", false},
	}
	for _, tc := range tests {
		for _, kind := range []filters.EditKind{filters.AddHeader, filters.InsertHeader, filters.ChangeHeader} {
			e := filters.HeaderEdit{Kind: kind, Name: "X-Tag", Value: tc.value, Index: 1}
			err := e.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("%s %q: error %v, want ok=%v", kind, tc.value, err, tc.ok)
			}
		}
	}
}

// The milter protocol carries an edit's index in 32 bits (and the edge
// sends an insert's index plus one). A larger index must be refused, not
// wrapped around to a small one that changes or deletes another field or
// inserts at the top.
func TestHeaderEditIndexFitsTheProtocol(t *testing.T) {
	for _, kind := range []filters.EditKind{filters.InsertHeader, filters.ChangeHeader, filters.DeleteHeader} {
		for _, idx := range []int{1 << 32, 1<<32 + 1, 1 << 31} {
			e := filters.HeaderEdit{Kind: kind, Name: "Subject", Value: "x", Index: idx}
			if err := e.Validate(); err == nil {
				t.Errorf("%s at index %d accepted", kind, idx)
			}
		}
		e := filters.HeaderEdit{Kind: kind, Name: "Subject", Value: "x", Index: 1000}
		if err := e.Validate(); err != nil {
			t.Errorf("%s at index 1000: %v", kind, err)
		}
	}
}

// A configured field name must leave room on the field's first line for
// the first word of its value: the name and that word cannot be folded
// apart, and RFC 5322 2.1.1 limits a line to 998 characters.
func TestCheckFieldName(t *testing.T) {
	name := func(n int) string { return "X-" + strings.Repeat("n", n-2) }
	tests := []struct {
		name  string
		first int
		want  string // "" for no error
	}{
		{"X-Sluice-DNSBL", 190, ""},
		{name(806), 190, ""}, // 806 + len(": ") + 190 is 998
		{name(807), 190, "807 characters leave no room on a line of 998"},
		{name(996), 0, ""},
		{name(997), 0, "997 characters leave no room"},
		{"X Bad", 1, "invalid byte 0x20"},
		{"X-B\u00e4d", 1, "invalid byte 0xc3"},
		{"", 1, "empty field name"},
	}
	for _, tc := range tests {
		err := filters.CheckFieldName(tc.name, tc.first)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckFieldName(%.20q..., %d): %v", tc.name, tc.first, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckFieldName(%.20q..., %d): %v, want an error containing %q", tc.name, tc.first, err, tc.want)
		}
	}
}
