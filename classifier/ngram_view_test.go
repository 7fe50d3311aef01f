package classifier

import (
	"slices"
	"strings"
	"testing"
)

// The n-gram features leave out the header fields added after the daemon
// scored the message (its verdict field, the archive's X-Sluice-*
// fields), so that a delivered or archived copy scores, and is learned,
// as the message the daemon saw.
func TestNgramFeaturesLeaveOutFieldsAddedLater(t *testing.T) {
	plain := "Return-Path: <alice@example.org>\n" +
		"Received: from mx.example.org by mail.example.com; Mon, 7 Dec 2026 10:00:00 +0000\n" +
		"From: Alice <alice@example.org>\n" +
		"To: bob@example.com\n" +
		"Subject: the quarterly figures\n" +
		"\n" +
		"Hello Bob,\n\nhere are the figures you asked for.\n"
	insert := func(top, below string) string {
		i := strings.Index(plain, "From: ")
		return top + plain[:i] + below + plain[i:]
	}
	tk := NewTokenizer(TokenizerOptions{SkipFields: []string{"X-Junk-Verdict"}})
	want := NgramFeatures([]byte(plain))
	wantMsg := tk.TokenizeBytes([]byte(plain)).Features
	for name, copy := range map[string]string{
		"archived": insert("X-Sluice-Queue-ID: 4ZkQ8m1xYz\nX-Sluice-Envelope-To: bob@example.com\nX-Sluice-Verdict: spam; action=accept\n",
			"X-Sluice-Bayes: Spam, spamicity=0.999871,\n queue_id=4ZkQ8m1xYz, version=1.0.0\n"),
		"bogofilter": insert("", "X-Bogosity: Ham, tests=bogofilter, spamicity=0.000000, version=1.2.5\n"),
		"mbox":       "From alice@example.org Mon Dec  7 10:00:00 2026\n" + insert("", "X-Sluice-Bayes: Ham, spamicity=0.000131\n"),
		"crlf":       strings.ReplaceAll(insert("X-SLUICE-QUEUE-ID: 4ZkQ8m1xYz\n", ""), "\n", "\r\n"),
	} {
		if got := NgramFeatures([]byte(copy)); !slices.Equal(got, want) {
			t.Errorf("%s copy: %d n-gram features, %d of the message's", name, len(got), len(want))
		}
		msg := tk.TokenizeBytes([]byte(copy))
		if !slices.Equal(msg.Features, wantMsg) {
			t.Errorf("%s copy: the tokenizer gave other features", name)
		}
	}
	// A field named in SkipFields is left out by a tokenizer told so.
	verdict := insert("", "X-Junk-Verdict: spam\n")
	if got := tk.TokenizeBytes([]byte(verdict)).Features; !slices.Equal(got, wantMsg) {
		t.Error("a SkipFields field changed the features")
	}
	// Other fields count, in the header and further down, and so do the
	// ones a delivery adds: the corpus the model was chosen on has them.
	for _, other := range []string{insert("X-Mailer: Outlook\n", ""), insert("", "X-Unsent: 1\n"), plain + "P.S. and one more line\n",
		insert("Delivered-To: bob@example.com\n", ""), insert("", "Status: RO\n")} {
		if got := NgramFeatures([]byte(other)); slices.Equal(got, want) {
			t.Errorf("a change that gives tokens left the features alone: %q", other)
		}
	}
}

// Fields to leave out beyond the window change nothing, a header longer
// than the window is cut, and a field left out of a long header lets
// the bytes after it into the window, as if it were not there.
func TestNgramViewLongHeader(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() < 3*ngramBytes; i++ {
		b.WriteString("Received: from relay" + strings.Repeat("x", i%40) + ".example.net by mx.example.com\n")
	}
	long := b.String() + "Subject: hi\n\nbody\n"
	if v := ngramView(nil, []byte(long), nil); string(v) != long {
		t.Errorf("a header with no field to leave out was copied (%d bytes)", len(v))
	}
	withDelivered := "X-Sluice-Queue-ID: 4ZkQ8m1xYz\n" + long
	v := ngramView(nil, []byte(withDelivered), nil)
	if len(v) != 2*ngramBytes || !strings.HasPrefix(long, string(v)) {
		t.Errorf("view of %d bytes, want the first %d of the header without the field", len(v), 2*ngramBytes)
	}
	if !slices.Equal(NgramFeatures([]byte(withDelivered)), NgramFeatures([]byte(long))) {
		t.Error("a left-out field changed a long header's features")
	}
	// One field line longer than the window, after a field to leave out:
	// the view is the window's worth of it.
	huge := "Subject: " + strings.Repeat("w", 10*ngramBytes) + "\n\nbody\n"
	if v := ngramView(nil, []byte("X-Sluice-Bayes: Ham\n"+huge), nil); string(v) != huge[:2*ngramBytes] {
		t.Errorf("view of a long line: %d bytes, want the first %d", len(v), 2*ngramBytes)
	}
	beyond := long[:4*ngramBytes/2+10] + "\nX-Sluice-Bayes: Spam\n" + long[4*ngramBytes/2+10:]
	if !slices.Equal(NgramFeatures([]byte(beyond)), NgramFeatures([]byte(long))) {
		t.Error("a field beyond the window changed the features")
	}
}
