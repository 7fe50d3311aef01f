package classifier

import "testing"

// A milter after sluice in smtpd_milters (a DKIM or DMARC verifier, an
// ARC sealer), or the delivery, adds trace fields of its own above the
// message: Authentication-Results (RFC 8601), the ARC set (RFC 8617) and
// Received-SPF (RFC 7208). The delivered copy is still the message the
// daemon saw and learned; these fields were part of the digest, so a
// message the daemon auto-learned as spam, trained as ham from the inbox,
// was learned twice rather than moved.
func TestTraceFieldsLeftOutOfDigest(t *testing.T) {
	base := "From: a@example.org\nSubject: hi\nMessage-ID: <1@example.org>\nDKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b=abc\n\nbody line\n"
	delivered := "Return-Path: <a@example.org>\n" +
		"ARC-Seal: i=1; a=rsa-sha256; d=mx.example.net; s=arc; cv=none; b=xyz\n" +
		"ARC-Message-Signature: i=1; a=rsa-sha256; d=mx.example.net; s=arc; b=uvw\n" +
		"ARC-Authentication-Results: i=1; mx.example.net; dkim=pass header.d=example.org\n" +
		"Authentication-Results: mx.example.net; dkim=pass (2048-bit key) header.d=example.org;\n\tdmarc=pass (p=reject dis=none) header.from=example.org\n" +
		"Received-SPF: Pass (mailfrom) identity=mailfrom; client-ip=192.0.2.1; helo=mail.example.org;\n" +
		"Received: from mail.example.org (mail.example.org [192.0.2.1])\n\tby mx.example.net (Postfix) with ESMTPS id 4XyZ1n2Kq7z\n" +
		base
	want := MessageDigest([]byte(base))
	if got := MessageDigest([]byte(delivered)); got != want {
		t.Errorf("the delivered copy's digest %s differs from the message's %s", got, want)
	}
	if got := NewTokenizer(TokenizerOptions{}).Digest([]byte(delivered)); got != want {
		t.Errorf("the tokenizer's digest of the delivered copy %s differs from the message's %s", got, want)
	}
	// The message's own fields still count.
	if MessageDigest([]byte("Authentication-Result: x\n"+base)) == want {
		t.Error("a field that is no trace field was left out of the digest")
	}
}

// Fields that a scanner after sluice or the delivery adds (Exim's
// Envelope-to and Delivery-date, Cyrus's X-Sieve, X-Virus-Scanned), and
// the flags Evolution keeps in each message of its mbox folders (which
// change whenever the user reads or flags the message), are no part of
// the message the daemon saw: with them in the digest, a nightly
// retraining of an Evolution folder learned its flagged messages again.
func TestDeliveryAndClientFieldsLeftOutOfDigest(t *testing.T) {
	base := "From: a@example.org\nSubject: hi\nMessage-ID: <2@example.org>\n\nbody line\n"
	want := MessageDigest([]byte(base))
	for _, extra := range []string{
		"Envelope-to: b@example.net\nDelivery-date: Sun, 06 Dec 2026 10:00:00 +0000\n",
		"X-Virus-Scanned: clamav-milter 1.0.7 at mx.example.net\nX-Virus-Status: Clean\n",
		"X-Sieve: CMU Sieve 3.0\n",
		"X-Evolution: 00000001-0010\n",
	} {
		if got := MessageDigest([]byte(extra + base)); got != want {
			t.Errorf("with %q the digest %s differs from the message's %s", extra, got, want)
		}
	}
	// A field of a similar name that a sender wrote still counts.
	if MessageDigest([]byte("X-Evolution-Format: text/plain\n"+base)) == want {
		t.Error("X-Evolution-Format, a field the sender's client writes, was left out of the digest")
	}
}
