package classifier

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Mail in scripts written without spaces between words, other than CJK:
// Thai (in UTF-8, TIS-620 and windows-874), Lao, Khmer, Myanmar. Also the
// seeds of FuzzTokenize.
var unspacedMessages = []string{
	// Thai, UTF-8 in the subject and the body.
	"From: shop@example.co.th\r\nSubject: โปรโมชั่นพิเศษ\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"สวัสดีครับ ลูกค้าที่รัก\r\n" +
		"สินค้าลดราคาพิเศษวันนี้เท่านั้น สั่งซื้อได้ที่เว็บไซต์ของเรา\r\n" +
		"น้ำดื่มฟรีทุกการสั่งซื้อ\r\n",
	// Thai in TIS-620, quoted-printable: "ราคาพิเศษ ส่งฟรีทั่วประเทศ".
	"From: shop@example.co.th\r\nSubject: offer\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=TIS-620\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"=C3=D2=A4=D2=BE=D4=E0=C8=C9 =CA=E8=A7=BF=C3=D5=B7=D1=E8=C7=BB=C3=D0=E0=B7=\r\n=C8\r\n",
	// Thai in windows-874, base64: "ยินดีต้อนรับสู่ร้านค้าออนไลน์".
	"From: shop@example.co.th\r\nSubject: welcome\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=windows-874\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"wtS5tNW16c25w9G6ytnow+nSuaTp0s3NueTFuewK\r\n",
	// Lao, Khmer and Myanmar lines, then Thai mixed with English.
	"From: a@example.org\r\nSubject: lines\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"ສະບາຍດີ ຂໍ້ມູນ\r\n" +
		"ភាសាខ្មែរ\r\n" +
		"မြန်မာ ကမ္ဘာ\r\n" +
		"Click here ราคาพิเศษ for cheap meds\r\n",
}

// isVowelOrToneMark reports whether r is a sign written on or beside a
// consonant: a combining mark, or the Thai and Lao vowel signs AM, which
// Unicode classes as letters but UAX #29 as spacing marks.
func isVowelOrToneMark(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Mc) || r == 0x0e33 || r == 0x0eb3
}

// Runs of these scripts give overlapping pairs of clusters (a base
// character with the vowel signs and tone marks written on it), as CJK
// runs give pairs of characters, rather than one "word" per run, which
// was dropped as soon as it was longer than maxTokenLen. No token starts
// with a vowel sign or tone mark, whatever the charset the text came in.
func TestTokenizeUnspacedScripts(t *testing.T) {
	tk := NewTokenizer(TokenizerOptions{})
	tests := []struct {
		name   string
		raw    string
		want   []string
		absent []string
	}{
		{"thai utf-8", unspacedMessages[0],
			[]string{
				// สวัสดีครับ: ส วั ส ดี ค รั บ.
				"สวั", "วัส", "สดี", "ดีค", "ครั", "รับ",
				// ลูกค้าที่รัก: ลู ก ค้ า ที่ รั ก.
				"ลูก", "กค้", "ค้า", "าที่", "ที่รั", "รัก",
				// A run longer than maxTokenLen bytes.
				// สินค้าลดราคาพิเศษวันนี้เท่านั้น.
				"สิน", "ค้า", "ลด", "ษวั", "นนี้", "นี้เ", "เท่", "ท่า", "านั้", "นั้น", "น",
				// น้ำดื่ม: the vowel sign AM stays with its consonant.
				"น้ำดื่", "ดื่ม",
				// โปรโมชั่นพิเศษ in the subject.
				"subj:มชั่", "subj:ชั่น", "subj:พิเ", "subj:เศ", "subj:ษ",
			},
			[]string{"สวัสดีครับ", "ลูกค้าที่รัก", "ำด", "subj:โปรโมชั่นพิเศษ"}},
		{"thai tis-620", unspacedMessages[1],
			[]string{"รา", "าค", "คา", "าพิ", "พิเ", "เศ", "ศษ", "ษ", "ส่ง", "งฟ", "ฟรี", "รีทั่", "ทั่ว", "ทศ", "charset:tis-620"},
			[]string{"ราคาพิเศษ", "ส่งฟรีทั่วประเทศ"}},
		{"thai windows-874", unspacedMessages[2],
			[]string{"ยิน", "นดี", "ดีต้", "ต้อ", "สู่ร้", "ร้า", "ลน์", "น์"},
			[]string{"ยินดีต้อนรับสู่ร้านค้าออนไลน์"}},
		{"lao khmer myanmar mixed", unspacedMessages[3],
			[]string{
				// ສະບາຍດີ: ສ ະ ບ າ ຍ ດີ.
				"ສະ", "ະບ", "ບາ", "າຍ", "ຍດີ", "ດີ",
				// ຂໍ້ມູນ: ຂໍ້ ມູ ນ.
				"ຂໍ້ມູ", "ມູນ",
				// ភាសាខ្មែរ: ភា សា ខ្មែ រ (the consonant after the
				// coeng is written under the one before).
				"ភាសា", "សាខ្មែ", "ខ្មែរ",
				// မြန်မာ: မြ န် မာ.
				"မြန်", "န်မာ", "မာ",
				// ကမ္ဘာ: က မ္ဘာ (the virama stacks ဘ under မ).
				"ကမ္ဘာ", "မ္ဘာ",
				// The English words and their pairs stay.
				"click", "here", "cheap", "meds", "click here", "cheap meds",
				"รา", "าพิ", "ศษ",
			},
			[]string{"ສະບາຍດີ", "ភាសាខ្មែរ", "មែរ", "មែ", "မြန်မာ", "ဘာ", "ราคาพิเศษ"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tk.TokenizeBytes([]byte(tt.raw))
			for _, w := range tt.want {
				if !slices.Contains(m.Tokens, w) {
					t.Errorf("missing %q in %q", w, m.Tokens)
				}
			}
			for _, a := range tt.absent {
				if slices.Contains(m.Tokens, a) {
					t.Errorf("unexpected %q", a)
				}
			}
			for _, tok := range m.Tokens {
				if !utf8.ValidString(tok) {
					t.Errorf("token %q is not valid UTF-8", tok)
				}
				body := tok
				if i := strings.IndexByte(tok, ':'); i >= 0 {
					body = tok[i+1:]
				}
				if r, _ := utf8.DecodeRuneInString(body); isVowelOrToneMark(r) {
					t.Errorf("token %q starts with the mark %U", tok, r)
				}
			}
		})
	}
}

// Marks with no base before them (at the start of a line, after a space,
// after a Latin word) start no token, and a base followed by a pile of
// marks gives no token longer than maxTokenLen bytes.
func TestTokenizeUnspacedStrayMarks(t *testing.T) {
	raw := "Subject: x\r\n\r\n่สวัสดี ้ีครับ abc่ั\r\nก" + strings.Repeat("่", 5000) + "ข\r\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"สวั", "สดี", "ครั", "รับ", "abc"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q in %q", w, m.Tokens)
		}
	}
	for _, tok := range m.Tokens {
		if r, _ := utf8.DecodeRuneInString(tok); isVowelOrToneMark(r) {
			t.Errorf("token %q starts with the mark %U", tok, r)
		}
		if len(tok) > maxTokenLen+len("subj:") {
			t.Errorf("%d-byte token %.24q...", len(tok), tok)
		}
	}
	// The consonant after the pile of marks still pairs on its own.
	if !slices.Contains(m.Tokens, "ข") {
		t.Errorf("missing %q in %q", "ข", m.Tokens)
	}
}

// FuzzTokenizeUnspaced tokenises arbitrary text as a message body: no
// token starts with a mark of the unspaced scripts, and none of their
// cluster pairs is longer than maxTokenLen bytes.
func FuzzTokenizeUnspaced(f *testing.F) {
	for _, s := range []string{"สวัสดีครับ ลูกค้าที่รัก", "น้ำดื่ม", "ສະບາຍດີ ຂໍ້ມູນ", "ភាសាខ្មែរ", "មែ្្ក",
		"မြန်မာ", "Click here ราคาพิเศษ for cheap meds", "่่ก่ abc่ั ่́", "ᨠ᩠ᨠ"} {
		f.Add(s)
	}
	tk := NewTokenizer(TokenizerOptions{MaxBytes: 1 << 16, MaxTokens: 2000})
	f.Fuzz(func(t *testing.T, text string) {
		m := tk.TokenizeBytes([]byte("Subject: x\r\n\r\n" + text))
		for _, tok := range m.Tokens {
			body := tok
			if i := strings.IndexByte(tok, ':'); i >= 0 {
				body = tok[i+1:]
			}
			r, _ := utf8.DecodeRuneInString(body)
			if !isUnspaced(r) {
				continue
			}
			if isClusterMark(r) {
				t.Fatalf("token %q starts with the mark %U", tok, r)
			}
			if len(body) > maxTokenLen {
				t.Fatalf("%d-byte token %.24q...", len(tok), tok)
			}
		}
	})
}

// The Indic scripts write spaces between words, but many of their vowel
// signs are spacing marks (Mc), which the word scanner took for
// separators: "भारत" was read as "भ" and "रत", "हिन्दी" as "ह" and "न्द",
// fragments that match nothing a Hindi, Bengali or Tamil message says.
// Each word is now one token.
func TestTokenizeIndicWords(t *testing.T) {
	raw := "Subject: =?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte("भारत ऑफर")) + "?=\n" +
		"Content-Type: text/plain; charset=utf-8\n\n" +
		"हिन्दी में सस्ता लोन। বাংলা ভাষা। தமிழ் மொழி। ಕನ್ನಡ భాష\n"
	m := NewTokenizer(TokenizerOptions{}).TokenizeBytes([]byte(raw))
	for _, w := range []string{"subj:भारत", "subj:ऑफर", "हिन्दी", "में", "सस्ता", "लोन", "বাংলা", "ভাষা", "தமிழ்", "மொழி", "ಕನ್ನಡ", "భాష", "हिन्दी में", "में सस्ता"} {
		if !slices.Contains(m.Tokens, w) {
			t.Errorf("missing %q; got %q", w, m.Tokens)
		}
	}
	for _, frag := range []string{"subj:भ", "subj:रत", "ह", "न्द"} {
		if slices.Contains(m.Tokens, frag) {
			t.Errorf("fragment %q among the tokens %q", frag, m.Tokens)
		}
	}
}
