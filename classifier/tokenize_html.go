package classifier

import (
	"bytes"

	"golang.org/x/net/html"
)

// htmlText tokenises an HTML body: the visible text, plus the hosts of link
// targets and image sources, which a reader never sees but which are the
// most stable part of a spam run.
func (w *walker) htmlText(s []byte) {
	z := html.NewTokenizer(bytes.NewReader(s))
	z.SetMaxBuf(len(s) + 4096)
	text := w.html[:0]
	hidden := 0 // depth inside <script>, <style>: not text a reader sees
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			// io.EOF, or a tokenizer error on garbage: either way, the
			// text so far is what there is.
			if cap(text) <= maxPooledArena {
				w.html = text
			}
			w.text(text)
			return
		case html.TextToken:
			if hidden == 0 {
				text = append(text, z.Text()...)
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, hasAttr := z.TagName()
			switch string(name) {
			case "script", "style":
				if tt == html.StartTagToken {
					hidden++
				} else if tt == html.EndTagToken && hidden > 0 {
					hidden--
				}
			case "b", "i", "u", "em", "strong", "font", "span", "a", "small", "big", "sub", "sup":
				// Inline formatting does not separate words: spammers
				// write "V<b></b>iagra" to split a word for filters
				// that would see two.
			default:
				text = append(text, ' ')
			}
			for hasAttr {
				var key, val []byte
				key, val, hasAttr = z.TagAttr()
				switch string(key) {
				case "href", "src", "action", "background":
					w.link(val)
				}
			}
		case html.CommentToken:
			// Comments are invisible and, like inline tags, used to
			// split words; they add neither text nor a separator.
		}
	}
}

// link adds the tokens of a link target or resource URL.
func (w *walker) link(u []byte) {
	u = bytes.TrimSpace(u)
	switch {
	case len(u) > 7 && bytes.EqualFold(u[:7], []byte("mailto:")):
		w.words(u[7:], "mailto:")
	default:
		w.urls(u)
	}
}
