package senders

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A glob on a name that is not valid IDNA, whose labels keep their
// letters: "?" is one of them, as docs/senders.md says.
func TestMatchGlobQuestionMarkNonASCII(t *testing.T) {
	rs := compile(t, "-?.example REJECT\nab--???.example REJECT\n", DefaultScope)
	checkMatches(t, rs, []matchCase{
		{MailFrom, "x@-é.example", 1, nil},
		{MailFrom, "x@-éé.example", 0, nil},
		{MailFrom, "x@ab--déf.example", 2, nil},
		{MailFrom, "x@ab--dé.example", 0, nil},
	})
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		{"emalsrv.*", "emalsrv.ups.com", true},
		{"emalsrv.*", "emalsrv.", true},
		{"emalsrv.*", "emalsrv", false},
		{"emalsrv.*", "x.emalsrv.ups.com", false},
		{"*.linkedinmail.*", "a.linkedinmail.com", true},
		{"*.linkedinmail.*", "a.b.linkedinmail.co.uk", true},
		{"*.linkedinmail.*", "linkedinmail.com", false},
		{"linkedin-*.com", "linkedin-secure.com", true},
		{"linkedin-*.com", "linkedin-a.b.com", true},
		{"linkedin-*.com", "linkedin-secure.com.evil", false},
		{"*", "", true},
		{"*", "anything.at.all", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"*ab", "aab", true},
		{"*aab", "aaab", true},
		{"a*a*a*a*b", strings.Repeat("a", 40), false},
		// A label that is not valid IDNA keeps its UTF-8 letters: ?
		// takes one whole.
		{"-?.example", "-é.example", true},
		{"-??.example", "-é.example", false},
		{"*-?.example", "x-é.example", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.glob, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v", tt.glob, tt.name, got)
		}
		// Against the standard library on the same question.
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(tt.glob)) + "$"
		if want := regexp.MustCompile(re).MatchString(tt.name); want != tt.want {
			t.Errorf("test case %q %q disagrees with regexp %s", tt.glob, tt.name, re)
		}
	}
}

func TestRegexFactors(t *testing.T) {
	tests := []struct {
		expr string
		want []string // nil: always tried
	}{
		{`^(emalsrv|complains)\.`, []string{"complains.", "emalsrv."}},
		{`linkedin`, []string{"linkedin"}},
		{`LinkedIn`, []string{"linkedin"}},
		{`^mail[0-9]+\.example\.`, []string{".example."}},
		{`^(mx|mail)[0-9]*\.spam\.`, []string{".spam."}},
		{`pay[pq]al`, []string{"paypal", "payqal"}},
		{`(a|b)(c|d)(e|f)(g|h)(i|j)`, []string{ // the product grows too big: the first 16
			"aceg", "aceh", "acfg", "acfh", "adeg", "adeh", "adfg", "adfh",
			"bceg", "bceh", "bcfg", "bcfh", "bdeg", "bdeh", "bdfg", "bdfh"}},
		{`.*`, nil},
		{`[a-z]+\.com$`, []string{".com"}},
		{`^x?$`, nil},
		{`(foo)+bar`, []string{"foo"}},
		{`(fo)+bar`, []string{"bar"}},
		{`(abc){2,}`, []string{"abc"}},
		{`a{0,3}`, nil},
		{`\bpay`, []string{"pay"}},
		{`раура`, nil}, // non-ASCII case folding: claim nothing
		{`(?-i)ABC`, []string{"ABC"}},
	}
	for _, tt := range tests {
		got := regexFactors(tt.expr)
		if !slices.Equal(got, tt.want) {
			t.Errorf("regexFactors(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// The prefilter must never drop a pattern that matches: for random
// expressions and names, whenever the expression matches, some factor
// occurs in the name.
func TestRegexFactorsSound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	atoms := []string{"a", "b", "ab", "mx", `\.`, "[ab]", "[a-z]", ".", "(a|bc)", "(x|y|z)", "[0-9]", "(mail|mx)", "-", "k"}
	ops := []string{"", "", "", "*", "+", "?", "{2}", "{1,3}"}
	alphabet := "abkmxyz.-019"
	for i := 0; i < 1500; i++ {
		var b strings.Builder
		if rng.IntN(3) == 0 {
			b.WriteString("^")
		}
		for j := 0; j < 1+rng.IntN(5); j++ {
			b.WriteString(atoms[rng.IntN(len(atoms))])
			b.WriteString(ops[rng.IntN(len(ops))])
		}
		if rng.IntN(3) == 0 {
			b.WriteString("$")
		}
		expr := b.String()
		if rng.IntN(4) == 0 {
			expr = "(" + expr + ")|" + atoms[rng.IntN(len(atoms))]
		}
		re, err := compileRegex(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		factors := regexFactors(expr)
		for k := 0; k < 40; k++ {
			name := make([]byte, rng.IntN(12))
			for n := range name {
				name[n] = alphabet[rng.IntN(len(alphabet))]
			}
			if !re.Match(name) || factors == nil {
				continue
			}
			found := false
			for _, f := range factors {
				if strings.Contains(string(name), f) {
					found = true
					break
				}
			}
			if !found {
				t.Fatalf("%s matches %q, which holds none of the factors %q", expr, name, factors)
			}
		}
	}
}

func TestAhoCorasick(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc.-"[rng.IntN(5)]
		}
		return string(b)
	}
	for round := 0; round < 200; round++ {
		var words []acWord
		for i := 0; i < 1+rng.IntN(30); i++ {
			words = append(words, acWord{s: word(1 + rng.IntN(5)), id: int32(i)})
		}
		a := buildAC(words)
		for k := 0; k < 50; k++ {
			s := word(rng.IntN(20)) + "xyz"
			got := a.scan(s, nil)
			var want []int32
			for i := 0; i < len(s); i++ {
				for _, w := range words {
					if strings.HasSuffix(s[:i+1], w.s) {
						want = append(want, w.id)
					}
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("words %v, text %q: scan %v, want %v", words, s, got, want)
			}
		}
	}
}

// Rules.Match, with its prefilter, decides as trying every pattern in
// precedence order would.
func TestPatternsAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	labels := []string{"mail", "mx", "emalsrv", "bank", "pay", "a1", "secure", "com", "net", "xn--bcher-kva", "login"}
	globs := []string{"%s.*", "*.%s.*", "%s-*.%s", "*%s?.%s", "?%s.*", "*.%s", "%s.%s.*", "%s*%s"}
	regexes := []string{`^%s\.`, `^%s\.%s$`, `\.%s$`, `^(%s|mx)[0-9]*\.`, `%s.*%s`, `[0-9]%s`, `^%s[0-9]\.%s`}
	fill := func(tmpl string) string {
		for strings.Contains(tmpl, "%s") {
			tmpl = strings.Replace(tmpl, "%s", labels[rng.IntN(len(labels))], 1)
		}
		return tmpl
	}
	var text strings.Builder
	for i := 0; i < 300; i++ {
		action := []string{"REJECT", "OK", "DISCARD", "WATCH"}[rng.IntN(4)]
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&text, "%s %s\n", fill(globs[rng.IntN(len(globs))]), action)
			continue
		}
		fmt.Fprintf(&text, "/%s/ %s\n", fill(regexes[rng.IntN(len(regexes))]), action)
	}
	rs := compile(t, text.String(), DefaultScope)
	const names = 2500
	decided, watched := 0, 0
	for k := 0; k < names; k++ {
		var parts []string
		for j := 0; j < 1+rng.IntN(4); j++ {
			l := labels[rng.IntN(len(labels))]
			if rng.IntN(3) == 0 {
				l += fmt.Sprint(rng.IntN(10))
			}
			parts = append(parts, l)
		}
		name := strings.Join(parts, ".")
		m := rs.MatchName(MailFrom, Name{Local: "x", Domain: name})

		// Naive: every pattern, in precedence order.
		var want *Rule
		var watch []*Rule
		uni := unicodeForm(name)
		for i := range rs.pats.pats {
			p := &rs.pats.pats[i]
			r := &rs.rules[p.rule]
			ok := p.re != nil && (p.re.MatchString(name) || uni != "" && p.re.MatchString(uni)) || p.re == nil && globMatch(p.glob, name)
			switch {
			case !ok:
			case r.Action == Watch:
				watch = append(watch, r)
			case want == nil:
				want = r
			}
		}
		if m.Rule != want || !slices.Equal(m.Watch, watch) {
			t.Fatalf("%s: rule %v watch %v, naive %v watch %v", name, m.Rule, m.Watch, want, watch)
		}
		if want != nil {
			decided++
		}
		if len(watch) > 0 {
			watched++
		}
	}
	if decided < names/10 || watched < names/10 || decided > names*9/10 {
		t.Errorf("%d names decided, %d watched of %d: the random rules do not exercise both outcomes", decided, watched, names)
	}
}
