package classifier

import (
	"slices"
	"testing"
)

// TestAttachmentExtensionTrailing checks that the extension of an
// attachment's file name is read without the blanks and dots after it,
// which Windows drops from file names: "invoice.exe " and "doc.pdf.scr."
// are run as programs, and gave the tokens "ext:exe " and "ext:".
func TestAttachmentExtensionTrailing(t *testing.T) {
	raw := "Subject: t\nContent-Type: multipart/mixed; boundary=b\n\n" +
		"--b\nContent-Type: application/octet-stream; name=\"invoice.exe \"\n\nxx\n" +
		"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"doc.pdf.scr.\"\n\nxx\n" +
		"--b--\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"ext:exe", "ext:scr"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, w := range []string{"ext:exe ", "ext:"} {
		if slices.Contains(m.Tokens, w) {
			t.Errorf("unexpected %q", w)
		}
	}
}
