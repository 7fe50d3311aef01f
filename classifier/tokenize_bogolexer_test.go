package classifier_test

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// TestBogoDialectMatchesBogolexer checks the bogofilter dialect against
// real bogofilter: each message must give exactly the tokens bogolexer -p
// prints for it, as a word list imported from bogofilter holds only
// those. Each case is a rule of bogofilter's lexer the dialect once
// missed, with look-alikes the rule leaves alone.
func TestBogoDialectMatchesBogolexer(t *testing.T) {
	needBogofilter(t)
	for _, tc := range []struct{ name, raw string }{{
		// The 30-byte limit counts the tag: "rcvd:" and a 26-byte host
		// name make no token.
		name: "tag counts in the length limit",
		raw: "Received: from phobos.labs.netnoteinc.com (localhost [127.0.0.1])\n" +
			"\tby mx.example with ESMTP; Thu, 22 Aug 2002 08:17:21 -0400\n" +
			"To: twentyfivecharacterswordx@tolong.example\n" +
			"Subject: aaaaaaaaaabbbbbbbbbbcccccccc aaaaaaaaaabbbbbbbbbbccccc\n" +
			"X-Long: aaaaaaaaaabbbbbbbbbbcccccccc aaaaaaaaaabbbbbbbbbbccccc\n\n" +
			"aaaaaaaaaabbbbbbbbbbcccccccccc aaaaaaaaaabbbbbbbbbbcccccccccd1\n",
	}, {
		name: "VERP addresses in header text",
		raw: "Return-Path: <sentto-2242572-52726-1030016790-zzzz=spamassassin.taint.org@returns.groups.yahoo.com>\n" +
			"X-Egroups-Return: secprog-return-123-jm=x@y.example\n" +
			"X-Not: abc-12-34-cd abc-1-cd-x=e@f abc-12.5-34-cd=e@f abc-12-34-cd.=e@f abc-de-fg-cd=e@f\n" +
			"X-Also: ab-12-34-cd=e@f abc--12-cd=e@f Abc-12a-34-CD=e.f@g abc-12-34-cd=e=f@g\n" +
			"Subject: x\n\nsentto-2242572-52726-zzzz=a@b.example in the body\n",
	}, {
		name: "queue ids in any header field",
		raw: "Received: from lugh.example (lugh.example [194.125.145.45])\n" +
			"    by dogma.example (8.11.6/8.11.6) with ESMTP id gB37qp826485 for\n" +
			"    <jm@jmason.example>; Tue, 3 Dec 2002 07:52:52 GMT\n" +
			"Received: by relay.example id <qid77@kept.example> ID abcd efg\n" +
			"X-MIME-Autoconverted: from quoted-printable to 8bit by dogma.example\n" +
			"    id gB37qp826486\nX-Other: valid id:jjj abcid xid hhh\nSubject: x\n\nbody id idword\n",
	}, {
		name: "MIME-Version comment and cut IPv4 addresses",
		raw: "MIME-Version: 1.0 (Apple Message framework v482)\n" +
			"User-Agent: Microsoft-Entourage/9.0.1.3108\nSubject: x\n\n" +
			"build 1.2.3.4567 and 10.20.30.256 or 1.2.300.4\n",
	}, {
		name: "MIME part headers as written and file name parameters",
		raw: "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\nSubject: x\n\n" +
			"--BB\nContent-type: text/plain; charset=us-ascii\nX-MIME-Autoconverted: from 8bit to quoted-printable\n\n" +
			"partword\n--BB\nContent-Type: application/octet-stream; NAME=\"report.txt\"\n" +
			"Content-Disposition: attachment; filename=notes.doc; xname=q; names=abc\n\nAAAA\n--BB--\n",
	}, {
		name: "IP addresses and dollar amounts in discarded HTML",
		raw: "Subject: x\nContent-Type: text/html\n\n<html><body><!-- hidden 10.1.2.3 $25 commentword -->" +
			"<form method=\"post\" action=\"http://65.217.159.103/response/response.asp\">" +
			"<td class=\"cell $19.99\">visible</td></form>\n<a href=\"http://192.0.2.7/x\">link</a></body></html>\n",
	}, {
		name: "inline PGP signature",
		raw: "Subject: x\n\nsigned words here\n-----BEGIN PGP SIGNATURE-----\n" +
			"Version: GnuPG v1.0.6 (GNU/Linux)\nComment: see http://www.gnupg.example\n\n" +
			"iD8DBQE9ZQJ/ZpVKBj0ik1ERAmbTAJ9wIsOKf0H9ldgqL1YGlVMQjsm 192.0.2.9\n=Rf+d\n" +
			"-----END PGP SIGNATURE-----\nafter the signature\n",
	}, {
		name: "DOCTYPE in plain text",
		raw: "Subject: x\nContent-Type: text/plain\n\nbefore words <!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.0 Transitional//EN\">\n" +
			"<p class=\"zz\">para</p> <a href=\"http://h.example/p\">link</a> more\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("bogolexer", "-C", "-p")
			cmd.Stdin = strings.NewReader(tc.raw)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("bogolexer -C -p: %v", err)
			}
			var want []string
			for _, l := range strings.Split(string(out), "\n") {
				if l != "" && !slices.Contains(want, l) {
					want = append(want, l)
				}
			}
			slices.Sort(want)
			got := classifier.NewTokenizer(classifier.TokenizerOptions{Dialect: classifier.DialectBogofilter}).TokenizeBytes([]byte(tc.raw)).Tokens
			if !slices.Equal(got, want) {
				var missing, extra bytes.Buffer
				for _, w := range want {
					if !slices.Contains(got, w) {
						missing.WriteString(" " + w)
					}
				}
				for _, g := range got {
					if !slices.Contains(want, g) {
						extra.WriteString(" " + g)
					}
				}
				t.Errorf("tokens differ from bogolexer's\nmissing:%s\nextra:%s", missing.String(), extra.String())
			}
		})
	}
}
