package classifier

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Digest identifies a learned message. See MessageDigest.
type Digest [sha256.Size]byte

// String returns the digest in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// ParseDigest parses the hex form written by Digest.String.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("bad digest %q", s)
	}
	copy(d[:], b)
	return d, nil
}

// MessageDigest returns the identity of a message for learning. The same
// message must get the same digest when it is learned at SMTP time by the
// daemon and later retrained from a mailbox by the user, so the digest
// leaves out what delivery adds or rewrites: trace fields (Received,
// Return-Path, Delivered-To, Authentication-Results ...), mailbox
// bookkeeping (Status, X-UID ...), spam verdict fields, an mbox From_
// line, and CRLF versus LF line ends.
// Of a long body only the start counts (see digestBodyBytes), as for a
// tokenizer of the default MaxBytes. A classifier records
// Tokenizer.Digest, which also leaves out the fields of
// TokenizerOptions.SkipFields.
func MessageDigest(raw []byte) Digest {
	return messageDigest(raw, nil, digestBodyBytes(DefaultMaxBytes))
}

// Digest returns the identity under which a classifier with this tokenizer
// learns a message: MessageDigest of the part of raw the tokenizer reads
// (MaxBytes), leaving out the fields of SkipFields as well, which delivery
// adds (a verdict field of a configured name) just like those MessageDigest
// leaves out.
func (t *Tokenizer) Digest(raw []byte) Digest {
	return messageDigest(raw[:min(len(raw), t.opts.MaxBytes)], t.opts.SkipFields, digestBodyBytes(t.opts.MaxBytes))
}

// digestBodyBytes is how much of a message's body, its line ends made LF,
// goes into the digest of a message read up to maxBytes. The copies of a
// message longer than maxBytes are cut at different places of its body:
// the daemon's has CRLF line ends, a mailbox's LF and the trace fields of
// the delivery above the body. Digesting all that each copy holds gave
// every copy of such a message another digest, and a misfiled 2 MB
// message was learned in both classes rather than moved. A quarter of
// maxBytes is held by every copy whose header takes less than half of
// maxBytes, even with CRLF doubling the body's blank lines; a shorter
// body counts whole.
func digestBodyBytes(maxBytes int) int { return max(maxBytes/4, 1) }

// laterTrace reports whether a field (its name lower-cased) is one of the
// trace fields, other than Received, that a receiving host adds above a
// message: Authentication-Results (RFC 8601), the ARC set (RFC 8617) and
// Received-SPF (RFC 7208). A DKIM or DMARC verifier or an ARC sealer
// listed after sluice in smtpd_milters adds them after the daemon saw
// the message, so the delivered copy has them and the daemon's has not.
// So do a virus scanner after sluice (clamav-milter, amavis:
// X-Virus-Scanned, X-Virus-Status) and the delivery itself: Exim's
// Envelope-to and Delivery-date (added by its appendfile and maildir
// transports), Cyrus's X-Sieve.
// They are still tokenised: where sluice sees them, they say something
// of the message.
func laterTrace(name string) bool {
	switch name {
	case "authentication-results", "arc-authentication-results", "arc-message-signature", "arc-seal", "received-spf",
		"x-virus-scanned", "x-virus-status", "envelope-to", "delivery-date", "x-sieve":
		return true
	}
	return false
}

// messageDigest is MessageDigest, leaving out the fields named in extra
// (lower-cased) too, and the body after its first bodyBytes (with LF line
// ends, and without the line ends at its end).
func messageDigest(raw []byte, extra []string, bodyBytes int) Digest {
	raw = skipMboxFromLine(raw)
	// Every field: a digest must not change with a bound.
	fields, body, _, _ := parseHeader(nil, raw, nil, 0)
	h := sha256.New()
	for _, f := range fields {
		if f.is("received") || f.is("return-path") || laterTrace(string(f.name)) || skipHeader(string(f.name)) || mailStoreState(string(f.name)) || isExtraSkip(f.name, extra) {
			continue
		}
		h.Write(f.name)
		h.Write([]byte{':'})
		// Words joined by single spaces: folding and white space
		// changes in transit do not change the digest.
		for i, word := range bytes.Fields(f.value) {
			if i > 0 {
				h.Write([]byte{' '})
			}
			h.Write(word)
		}
		h.Write([]byte{'\n'})
	}
	h.Write([]byte{'\n'})
	// The line ends at the end are left out: an mbox takes one off, a
	// saved file may have one more. Of the body so trimmed, each line
	// with an LF, only the first bodyBytes count: a copy cut short by
	// its reader's bound (the end trimmed off it a mere cut of the
	// body's line end) holds at least that much of the same text.
	body = bytes.TrimRight(body, "\r\n")
	left := bodyBytes
	for len(body) > 0 && left > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) >= left {
			h.Write(line[:left])
			break
		}
		h.Write(line)
		h.Write([]byte{'\n'})
		left -= len(line) + 1
	}
	var d Digest
	h.Sum(d[:0])
	return d
}
