package classifier

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// shapeOf returns the header-shape tokens ("rnet:", "date:", "ord:") of a
// message.
func shapeOf(t *testing.T, msg string) []string {
	t.Helper()
	var out []string
	for _, tok := range NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(msg)).Tokens {
		if strings.HasPrefix(tok, "rnet:") || strings.HasPrefix(tok, "date:") || strings.HasPrefix(tok, "ord:") {
			out = append(out, tok)
		}
	}
	return out
}

func TestShapeTokens(t *testing.T) {
	msg := "Received: from localhost (localhost [127.0.0.1])\r\n" +
		"\tby mx.example.org (Postfix) with ESMTP id 1A2B; Tue,  6 Aug 2002 07:21:49 -0400\r\n" +
		"Received: from relay.example.net (relay.example.net [198.51.100.20]) by\r\n" +
		"\tmx.example.org (8.11.6/8.11.6) with ESMTP id g747Q; Sun, 4 Aug 2002 08:26:55 +0100\r\n" +
		"Received: from friend (dsl-7.dial.example.com [203.0.113.77]) by\r\n" +
		"\trelay.example.net (Postfix) with SMTP id 2E74; Sun, 4 Aug 2002 00:23:54 -0700\r\n" +
		"Received: from inside (inside [10.1.2.3]) by friend; Sun, 4 Aug 2002 00:23:50 -0700\r\n" +
		"Return-Path: <a@example.com>\r\n" +
		"Delivered-To: b@example.org\r\n" +
		"X-Spam-Status: No\r\n" +
		"From: a@example.com\r\n" +
		"To: b@example.org\r\n" +
		"Subject: hello\r\n" +
		"Date: Sun, 4 Aug 2002 09:24:34 +0200 (CEST)\r\n" +
		"Message-ID: <1@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"X-Mailer: Kit\r\n" +
		"\r\nbody\r\n"
	got := shapeOf(t, msg)
	// The oldest public address is 203.0.113.77: 10.1.2.3 below it is
	// private. The order covers From, To, Subject, Date, Message-ID and
	// MIME-Version; X-Mailer is the seventh.
	want := []string{"date:+0200", "date:a, 9 a 9 9:9:9 +9 (a)", "ord:" + fnvHex("from,to,subject,date,message-id,mime-version"),
		"rnet:203.0", "rnet:203.0.113"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tok := range got {
		if !HeaderToken(tok) {
			t.Errorf("%q is not a header token", tok)
		}
	}
}

// fnvHex is the 32-bit FNV-1a hash of s in hex, as fieldOrder writes it.
func fnvHex(s string) string {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for i := range b {
		b[i] = digits[h>>(28-4*i)&0xf]
	}
	return string(b)
}

func TestShapeTokensSparse(t *testing.T) {
	// No Date, no public address, a date without a numeric zone
	// elsewhere: no "rnet:" or "date:" token, and the order of the
	// fields present.
	got := shapeOf(t, "Received: from lan (lan [192.168.1.5]) by gw\r\nSubject: hi\r\nFrom: x@y\r\n\r\nbody\r\n")
	want := []string{"ord:" + fnvHex("subject,from")}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	got = shapeOf(t, "Date: Wed, 24 Jul 2002 14:09:44 EST\r\n\r\nbody\r\n")
	want = []string{"date:a, 9 a 9 9:9:9 a", "date:nozone", "ord:" + fnvHex("date")}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// The order is a fingerprint of names, not of case or values.
	a := shapeOf(t, "FROM: a@b\r\nsubject: x\r\n\r\nbody\r\n")
	b := shapeOf(t, "From: c@d\r\nSubject: other\r\n\r\nbody\r\n")
	if !slices.Equal(a, b) {
		t.Errorf("%q != %q", a, b)
	}
}

func TestFirstIPv4(t *testing.T) {
	tests := []struct {
		in   string
		want [4]int
		ok   bool
	}{
		{"from a.example (b.example [192.0.2.7]) by c", [4]int{192, 0, 2, 7}, true},
		{"from 198.51.100.9-generic (x [198.51.100.9])", [4]int{198, 51, 100, 9}, true},
		{"by c.example (8.11.6/8.11.6) id 5.50.4910.0300; 1.2.3.4", [4]int{1, 2, 3, 4}, true},
		{"from x (256.1.1.1) (1.2.3) (1..2.3.4)", [4]int{}, false},
		{"from x (1.2.3.4.5)", [4]int{}, false},
		{"", [4]int{}, false},
	}
	for _, tc := range tests {
		ip, ok := firstIPv4([]byte(tc.in))
		var got [4]int
		if ok {
			for i, b := range ip.As4() {
				got[i] = int(b)
			}
		}
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("firstIPv4(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDateZone(t *testing.T) {
	for in, want := range map[string]string{
		"Sun, 4 Aug 2002 09:24:34 +0200":        "+0200",
		"Tue, 23 Jul 2002 18:22:10 -1900":       "-1900",
		"Wed, 24 Jul 2002 06:30:19 -0500 (CDT)": "-0500",
		"Wed, 24 Jul 2002 12:55:18 UT":          "",
		"Wed, 24 Jul 2002 12:55:18 +02000":      "",
		"Wed, 24 Jul 2002 12:55:18 +02":         "",
	} {
		if got := string(dateZone([]byte(in))); got != want {
			t.Errorf("dateZone(%q) = %q, want %q", in, got, want)
		}
	}
}

// parseDottedQuad accepts exactly the runs of digits and dots that
// netip.ParseAddr reads as an IPv4 address, with the same address:
// random runs of digits and dots, dense in near-misses (leading zeros,
// values past 255, empty and extra fields).
func TestParseDottedQuadAsNetip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const alphabet = "0123456789..0125"
	accepted := 0
	for range 400000 {
		b := make([]byte, 1+r.IntN(16))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		want, err := netip.ParseAddr(string(b))
		wantOK := err == nil && want.Is4()
		got, ok := parseDottedQuad(b)
		if ok != wantOK || ok && got != want {
			t.Fatalf("parseDottedQuad(%q) = %v, %v; netip.ParseAddr: %v, %v", b, got, ok, want, err)
		}
		if ok {
			accepted++
		}
	}
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.00", "10.0.0.1"} {
		want, err := netip.ParseAddr(s)
		got, ok := parseDottedQuad([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseDottedQuad(%q) = %v, %v; netip.ParseAddr: %v, %v", s, got, ok, want, err)
		}
	}
	if accepted < 100 {
		t.Errorf("only %d random runs were addresses: the test says little", accepted)
	}
}

// The order fingerprint of a message's copy in a mailbox is that of the
// message the daemon classified: the fields a later milter or the
// delivery puts on top (Authentication-Results, ARC, Received-SPF, virus
// scanners' marks, Envelope-to, Delivery-date, X-Sieve) and a mail
// client's state fields (Thunderbird's X-Mozilla-Status, Dovecot's
// X-UID) are not part of it, as they are not part of the message's
// digest. Otherwise moving the copy from spam to ham left the daemon's
// "ord:" count in spam for good, and scored the copy by another token.
func TestFieldOrderOfMailboxCopy(t *testing.T) {
	smtp := "From: Prize Team <win@example.net>\r\nTo: ann@example.org\r\nSubject: claim your prize\r\n" +
		"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <p1@example.net>\r\nMIME-Version: 1.0\r\n\r\nbody\r\n"
	want := shapeOf(t, smtp)
	for _, top := range []string{
		"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.net\r\n",
		"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=example.org; s=a; b=x\r\nReceived-SPF: pass\r\n",
		"X-Virus-Scanned: clamav\r\nX-Virus-Status: Clean\r\n",
		"Envelope-to: ann@example.org\r\nDelivery-date: Mon, 1 Jan 2024 10:00:01 +0000\r\nX-Sieve: CMU Sieve 2.3\r\n",
		"X-Mozilla-Status: 0001\r\nX-Mozilla-Status2: 00000000\r\n",
		"Return-Path: <win@example.net>\r\nDelivered-To: ann@example.org\r\nX-UID: 7\r\nStatus: RO\r\n",
	} {
		if got := shapeOf(t, top+smtp); !slices.Equal(got, want) {
			t.Errorf("with %q on top: %q, want %q as without", top, got, want)
		}
	}
}
