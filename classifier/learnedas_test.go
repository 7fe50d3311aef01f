package classifier_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// LearnedAs tells the class a message was learned in, under the digest
// Train and Autolearn record, and None for a message not learned; a
// store without a digest lookup of its own has its digests walked. The
// copy of a message delivered from a mailbox (LF line ends, a trace
// field above it) is the message the daemon learned with CRLF.
func TestLearnedAs(t *testing.T) {
	ctx := context.Background()
	spam := "From: a@example.org\r\nSubject: prize\r\n\r\nclaim your prize\r\n"
	ham := "From: b@example.org\r\nSubject: notes\r\n\r\nthe meeting notes\r\n"
	delivered := "Received: from mx by mailbox\n" + strings.ReplaceAll(spam, "\r\n", "\n")
	for _, sc := range digestStoreKinds(redistest.Start(t), "learnedas") {
		t.Run(sc.name, func(t *testing.T) {
			st := sc.open(t)
			defer st.Close()
			c := classifier.New(st, classifier.Params{})
			if out, err := c.Train(ctx, strings.NewReader(spam), classifier.Spam); err != nil || out != classifier.Learned {
				t.Fatalf("train spam: %v, %v", out, err)
			}
			if out, err := c.Train(ctx, strings.NewReader(ham), classifier.Ham); err != nil || out != classifier.Learned {
				t.Fatalf("train ham: %v, %v", out, err)
			}
			for _, tc := range []struct {
				name, raw string
				want      classifier.Class
			}{
				{"spam", spam, classifier.Spam},
				{"ham", ham, classifier.Ham},
				{"delivered copy", delivered, classifier.Spam},
				{"unknown", "From: c@example.org\r\n\r\nnever learned\r\n", classifier.None},
			} {
				got, err := c.LearnedAs(ctx, strings.NewReader(tc.raw))
				if err != nil || got != tc.want {
					t.Errorf("%s: learned as %v, %v; want %v", tc.name, got, err, tc.want)
				}
			}
		})
	}
}
