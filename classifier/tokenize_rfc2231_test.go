package classifier

import (
	"slices"
	"testing"
)

// TestRFC2231EmptyCharset checks that a file name in RFC 2231 form whose
// charset is left blank (nothing before the first of its two single
// quotes, which section 4 allows) gives its name and extension tokens.
// mime.ParseMediaType drops such a parameter, and the part's name was
// lost.
func TestRFC2231EmptyCharset(t *testing.T) {
	cases := []struct {
		head string
		want []string
	}{
		{"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=''invoice%20one.exe\n",
			[]string{"name:invoice", "name:one.exe", "ext:exe"}},
		{"Content-Type: application/octet-stream; name*0*='en'caf%C3%A9; name*1=\".scr\"\n",
			[]string{"name:café.scr", "ext:scr"}},
		{"Content-Type: application/octet-stream; name*=''r%E9sum%E9.zip\n",
			[]string{"name:résumé.zip", "ext:zip"}},
	}
	for _, tc := range cases {
		m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(tc.head + "\nxx\n"))
		for _, w := range tc.want {
			if !slices.Contains(m.Tokens, w) {
				t.Errorf("%q: missing %q; got %q", tc.head, w, m.Tokens)
			}
		}
	}
}
