package main

import (
	"slices"
	"testing"

	"github.com/sluice-mail/sluice/filters"
)

// Without --from, sluice test takes the envelope sender from the
// message. A From of several authors, or one net/mail cannot parse, gave
// the null sender, which the senders rules for bounces ("<> REJECT")
// then met: a verdict the daemon never gives that message.
func TestDryRunSenderOf(t *testing.T) {
	for _, tc := range []struct {
		fields []filters.Header
		want   string
	}{
		{[]filters.Header{{Name: "From", Value: "Alice <alice@example.org>"}}, "alice@example.org"},
		{[]filters.Header{{Name: "From", Value: "alice@example.org, bob@example.org"}}, "alice@example.org"},
		{[]filters.Header{{Name: "From", Value: "alice@example.org, bob@example.org"}, {Name: "Sender", Value: "carol@example.org"}}, "carol@example.org"},
		{[]filters.Header{{Name: "From", Value: "Alice (the [boss] <alice@example.org>"}}, "alice@example.org"},
		{[]filters.Header{{Name: "From", Value: "a@example.org"}, {Name: "Return-Path", Value: "<>"}}, ""},
		{[]filters.Header{{Name: "From", Value: "a@example.org"}, {Name: "Return-Path", Value: "<bounce@example.net>"}}, "bounce@example.net"},
		{[]filters.Header{{Name: "From", Value: "nobody at all"}}, ""},
		{[]filters.Header{{Name: "Subject", Value: "no sender"}}, ""},
	} {
		if got := senderOf(tc.fields); got != tc.want {
			t.Errorf("%v: sender %q, want %q", tc.fields, got, tc.want)
		}
	}
}

// Without --rcpt, sluice test takes the recipients from To and Cc. One
// address net/mail cannot parse cost every other address of its field.
func TestDryRunRecipientsOf(t *testing.T) {
	for _, tc := range []struct {
		fields []filters.Header
		want   []string
	}{
		{[]filters.Header{{Name: "To", Value: "Alice <alice@example.org>, bob@example.org"}}, []string{"alice@example.org", "bob@example.org"}},
		{[]filters.Header{{Name: "To", Value: "alice@example.org"}, {Name: "Cc", Value: "carol@example.org"}}, []string{"alice@example.org", "carol@example.org"}},
		{[]filters.Header{{Name: "To", Value: "Alice (the [boss] <alice@example.org>, bob@example.org"}}, []string{"alice@example.org", "bob@example.org"}},
		{[]filters.Header{{Name: "To", Value: "\"Smith, Bob <bob@example.org>, carol@example.org"}}, []string{"bob@example.org", "carol@example.org"}},
		{[]filters.Header{{Name: "To", Value: "undisclosed-recipients:;"}}, nil},
		{[]filters.Header{{Name: "To", Value: "nobody at all"}}, nil},
	} {
		if got := recipientsOf(tc.fields); !slices.Equal(got, tc.want) {
			t.Errorf("%v: recipients %q, want %q", tc.fields, got, tc.want)
		}
	}
}
