package filters

// SameName reports whether a and b are the same header field name:
// equal but for the case of ASCII letters. Bytes from 0x80 up must match
// exactly. The MTAs compare names so (Sendmail's sm_strcasecmp, Postfix's
// strcasecmp in the C locale), and a header edit names its field by name
// and index, the i-th field of that name: a name sluice matched and the
// MTA did not would move the index onto another field. strings.EqualFold
// folds Unicode and must not be used for field names: it takes
// "X-Sluice-Baye\u017f" (long s) for "X-Sluice-Bayes" and "\u212a" (Kelvin
// sign) for "k".
func SameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if x, y := a[i], b[i]; x != y && lowerASCII(x) != lowerASCII(y) {
			return false
		}
	}
	return true
}

// NameKey returns name with its ASCII letters lower-cased and every other
// byte kept: a map key under which the names SameName takes for equal
// meet. strings.ToLower folds Unicode ("\u212a" becomes "k") and must not
// be used for that.
func NameKey(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return name
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// messageFields are the names of fields that belong to the message itself
// (RFC 5322 section 3.6, MIME, DKIM), keyed by NameKey.
var messageFields = map[string]bool{
	"date": true, "from": true, "sender": true, "reply-to": true,
	"to": true, "cc": true, "bcc": true, "message-id": true,
	"in-reply-to": true, "references": true, "subject": true,
	"comments": true, "keywords": true, "return-path": true,
	"received": true, "mime-version": true, "dkim-signature": true,
}

// MessageField reports whether name is a field of the message itself
// rather than one a filter adds: those of RFC 5322 section 3.6 (Resent-
// ones too), MIME's (MIME-Version, Content-*), DKIM's and ARC's. No
// filter may own such a name (see FieldOwner): it would delete every
// message's own field of that name as forged.
func MessageField(name string) bool {
	key := NameKey(name)
	if messageFields[key] {
		return true
	}
	for _, prefix := range []string{"resent-", "content-", "arc-"} {
		if len(key) > len(prefix) && key[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}
