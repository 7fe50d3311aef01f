package filters_test

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

func TestSameName(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"X-Sluice-Bayes", "X-Sluice-Bayes", true},
		{"X-Sluice-Bayes", "x-sluice-bayes", true},
		{"FROM", "from", true},
		{"", "", true},
		{"From", "Fro", false},
		{"From", "Form", false},
		{"X-Sluice-Baye\u017f", "X-Sluice-Bayes", false}, // long s: EqualFold says true
		{"X-Sluice-Baye\u017f", "X-SLUICE-BAYES", false},
		{"X-Sluice-Baye\u017f", "x-sluice-baye\u017f", true},
		{"X-\u212a", "X-k", false}, // Kelvin sign: EqualFold says true
		{"X-\u212a", "X-K", false},
		{"X-\u212a", "x-\u212a", true},
		{"\u00c4rger", "\u00e4rger", false}, // no folding beyond ASCII
		{"X-@", "X-`", false},               // 0x40 and 0x60 differ by 0x20 too
		{"X-[", "X-{", false},
	}
	for _, tt := range tests {
		if got := filters.SameName(tt.a, tt.b); got != tt.want {
			t.Errorf("SameName(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := filters.SameName(tt.b, tt.a); got != tt.want {
			t.Errorf("SameName(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
		if got := filters.NameKey(tt.a) == filters.NameKey(tt.b); got != tt.want {
			t.Errorf("NameKey(%q) == NameKey(%q) is %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if got := filters.NameKey("X-Sluice-Baye\u017f-\u212a"); got != "x-sluice-baye\u017f-\u212a" {
		t.Errorf("NameKey folded more than ASCII: %q", got)
	}
}

// An edit names its field by name and index, and the MTA counts only the
// fields whose names match in ASCII. With Unicode folding, a sender's
// "X-Sluice-Baye\u017f" (long s) or "X-\u212a" (Kelvin sign) field took an
// index, and the model deleted or changed another field than the MTA:
// a forged X-Sluice-Bayes stayed in what later filters and the archive
// read, while the MTA deleted it.
func TestApplyEditsCountsNamesInASCII(t *testing.T) {
	base := func() []filters.Header {
		return []filters.Header{
			{Name: "X-Sluice-Baye\u017f", Value: "long"}, {Name: "X-Sluice-Bayes", Value: "Spam"},
			{Name: "X-\u212a", Value: "kelvin"}, {Name: "X-K", Value: "k1"}, {Name: "x-k", Value: "k2"}, {Name: "X-Sluice-Bayes", Value: "Ham"},
		}
	}
	del := func(name string, i int) filters.HeaderEdit {
		return filters.HeaderEdit{Kind: filters.DeleteHeader, Name: name, Index: i}
	}
	tests := []struct {
		name  string
		edits []filters.HeaderEdit
		want  string
	}{
		{"delete first", []filters.HeaderEdit{del("X-Sluice-Bayes", 1)},
			"X-Sluice-Baye\u017f=long X-\u212a=kelvin X-K=k1 x-k=k2 X-Sluice-Bayes=Ham"},
		{"delete all, last first", []filters.HeaderEdit{del("X-Sluice-Bayes", 2), del("X-Sluice-Bayes", 1)},
			"X-Sluice-Baye\u017f=long X-\u212a=kelvin X-K=k1 x-k=k2"},
		{"change first", []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "X-K", Index: 1, Value: "new"}},
			"X-Sluice-Baye\u017f=long X-Sluice-Bayes=Spam X-\u212a=kelvin X-K=new x-k=k2 X-Sluice-Bayes=Ham"},
		{"change second", []filters.HeaderEdit{{Kind: filters.ChangeHeader, Name: "x-K", Index: 2, Value: "new"}},
			"X-Sluice-Baye\u017f=long X-Sluice-Bayes=Spam X-\u212a=kelvin X-K=k1 x-k=new X-Sluice-Bayes=Ham"},
	}
	for _, tc := range tests {
		var parts []string
		for _, h := range filters.ApplyEdits(base(), tc.edits) {
			parts = append(parts, h.Name+"="+h.Value)
		}
		if s := strings.Join(parts, " "); s != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, s, tc.want)
		}
	}

	m := &filters.Message{Headers: base()}
	if v, _ := m.Header("X-Sluice-Bayes"); v != "Spam" {
		t.Errorf("Header(X-Sluice-Bayes) = %q, want %q", v, "Spam")
	}
}

func TestMessageField(t *testing.T) {
	for _, name := range []string{"Subject", "FROM", "message-id", "Resent-From", "Content-Type", "content-disposition", "MIME-Version", "DKIM-Signature", "ARC-Seal", "Received", "Return-Path"} {
		if !filters.MessageField(name) {
			t.Errorf("%s: not taken for a field of the message", name)
		}
	}
	for _, name := range []string{"X-Sluice-Bayes", "X-Bogosity", "X-Subject", "Content-", "Resent-", "Subjects", "Authentication-Results", "X-Spam-Status", "Su\u017fject"} {
		if filters.MessageField(name) {
			t.Errorf("%s: taken for a field of the message", name)
		}
	}
}
