package senders

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Globs and regular expressions are many (a campaign list can hold
// thousands) and each costs real time to try, so a lookup must not try
// them all. Every pattern is reduced to a few literal strings ("factors")
// of which every match contains at least one: the longest literal run of
// a glob, or what regexp/syntax shows a regular expression requires. One
// Aho-Corasick automaton over all factors finds, in one pass over the
// name, the patterns whose factor occurs; only those are tried. Patterns
// with no usable factor (".*", "[a-z]+") are always tried.

// compileRegex compiles a rules file regular expression. Names are
// compared in lower case, so matching ignores case.
func compileRegex(expr string) (*regexp.Regexp, error) {
	// Parse alone first, so that an error quotes the expression as the
	// administrator wrote it.
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, err
	}
	return regexp.Compile("(?i)" + expr)
}

// globMatch reports whether name matches the glob p, where * matches any
// run of characters, dots included, and ? any one character. Names are
// ASCII but for a label that is not valid IDNA, which keeps its UTF-8
// letters ("-é.example", see parseDomain): ? takes one of those whole,
// as the administrator reads it, not one byte of it.
func globMatch(p, name string) bool {
	px, nx := 0, 0
	star, mark := -1, 0
	for nx < len(name) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				star, mark = px, nx
				px++
				continue
			case '?':
				_, w := utf8.DecodeRuneInString(name[nx:])
				px++
				nx += w
				continue
			default:
				if c == name[nx] {
					px++
					nx++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last * swallow one more character and retry.
		px = star + 1
		mark++
		nx = mark
	}
	for px < len(p) && p[px] == '*' {
		px++
	}
	return px == len(p)
}

// globLiteral counts the literal characters of a glob: the more, the more
// specific the glob. A label kept in punycode counts the letters it
// stands for, as the administrator reads the name: "ü" is one
// character, not the seven of "xn--tda", or "*.ü.example" would rank
// before "mail.*.example", whose literal text is longer, and decide
// for mail.ü.example instead of it.
func globLiteral(g string) int {
	n := strings.Count(g, ".")
	for _, l := range strings.Split(g, ".") {
		if strings.HasPrefix(l, "xn--") && !strings.ContainsAny(l, "*?") {
			if u, err := idnaProfile.ToUnicode(l); err == nil {
				l = u
			}
		}
		n += utf8.RuneCountInString(l) - strings.Count(l, "*") - strings.Count(l, "?")
	}
	return n
}

// globFactor returns the longest literal run of a glob, "" if none.
func globFactor(g string) string {
	best := ""
	for _, run := range strings.FieldsFunc(g, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(best) {
			best = run
		}
	}
	return best
}

// maxFactorSet bounds the strings a regular expression is reduced to.
const maxFactorSet = 16

// litInfo is what analysis learns of the strings a regular expression
// matches: either the exact set of them (exactOK), or a set of which each
// match contains one (need; nil when nothing is known).
type litInfo struct {
	exact   []string
	exactOK bool
	need    []string
}

// needSet returns strings of which every match contains one, or nil.
func (l litInfo) needSet() []string {
	if !l.exactOK {
		return l.need
	}
	if len(l.exact) == 0 {
		return nil
	}
	for _, s := range l.exact {
		if s == "" {
			return nil
		}
	}
	return l.exact
}

// regexFactors returns strings of which every match of the rules file
// regular expression expr contains one, or nil when there are none.
// Inputs are lower case, so case-insensitive literals are lower-cased.
func regexFactors(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl|syntax.FoldCase)
	if err != nil {
		return nil
	}
	return analyzeRegex(re.Simplify()).needSet()
}

func analyzeRegex(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []string{""}, exactOK: true}
	case syntax.OpLiteral:
		s := string(re.Rune)
		if re.Flags&syntax.FoldCase != 0 {
			// Non-ASCII letters have case foldings outside what a
			// simple lower-casing gives (the Kelvin sign folds to k):
			// claim nothing rather than something wrong.
			if !isASCII(s) {
				return litInfo{}
			}
			s = strings.ToLower(s)
		}
		return litInfo{exact: []string{s}, exactOK: true}
	case syntax.OpCharClass:
		var set []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(set) == 8 {
					return litInfo{}
				}
				if r >= utf8.RuneSelf || r < 'A' || r > 'Z' {
					set = append(set, string(r))
				} else {
					// Inputs are lower case: an upper-case letter can
					// only match through its lower-case twin, which a
					// case-insensitive class holds too.
					set = append(set, strings.ToLower(string(r)))
				}
			}
		}
		return litInfo{exact: dedupe(set), exactOK: len(set) > 0}
	case syntax.OpCapture:
		return analyzeRegex(re.Sub[0])
	case syntax.OpPlus:
		return litInfo{need: analyzeRegex(re.Sub[0]).needSet()}
	case syntax.OpRepeat:
		if re.Min == 0 {
			return litInfo{}
		}
		return litInfo{need: analyzeRegex(re.Sub[0]).needSet()}
	case syntax.OpConcat:
		return analyzeConcat(re.Sub)
	case syntax.OpAlternate:
		return analyzeAlternate(re.Sub)
	}
	// Star, Quest, AnyChar, NoMatch...: nothing is known.
	return litInfo{}
}

// analyzeConcat builds the exact set of a concatenation while it stays
// small; where it cannot, the best need set of the parts still holds for
// the whole.
func analyzeConcat(subs []*syntax.Regexp) litInfo {
	cur := []string{""}
	allExact := true
	var best []string
	consider := func(set []string) {
		if betterFactors(set, best) {
			best = set
		}
	}
	for _, sub := range subs {
		info := analyzeRegex(sub)
		if info.exactOK && len(cur)*len(info.exact) <= maxFactorSet {
			next := make([]string, 0, len(cur)*len(info.exact))
			for _, a := range cur {
				for _, b := range info.exact {
					next = append(next, a+b)
				}
			}
			cur = dedupe(next)
			continue
		}
		allExact = false
		consider(litInfo{exact: cur, exactOK: true}.needSet())
		if info.exactOK {
			cur = info.exact
			continue
		}
		consider(info.need)
		cur = []string{""}
	}
	if allExact {
		return litInfo{exact: cur, exactOK: true}
	}
	consider(litInfo{exact: cur, exactOK: true}.needSet())
	return litInfo{need: best}
}

func analyzeAlternate(subs []*syntax.Regexp) litInfo {
	var exact, need []string
	exactOK, needOK := true, true
	for _, sub := range subs {
		info := analyzeRegex(sub)
		if info.exactOK && exactOK {
			exact = append(exact, info.exact...)
		} else {
			exactOK = false
		}
		if set := info.needSet(); set != nil && needOK {
			need = append(need, set...)
		} else {
			needOK = false
		}
	}
	if exactOK && len(exact) <= maxFactorSet {
		return litInfo{exact: dedupe(exact), exactOK: true}
	}
	if needOK && len(need) <= 4*maxFactorSet {
		return litInfo{need: dedupe(need)}
	}
	return litInfo{}
}

// betterFactors prefers sets whose shortest string is longer (rarer in
// names), then smaller sets.
func betterFactors(a, b []string) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	ma, mb := minLen(a), minLen(b)
	return ma > mb || ma == mb && len(a) < len(b)
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}

func dedupe(set []string) []string {
	sort.Strings(set)
	out := set[:0]
	for i, s := range set {
		if i == 0 || s != set[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// acAuto is an Aho-Corasick automaton over byte strings, with its
// transitions completed into a dense table over the byte classes that
// occur in the words (all other bytes share class 0): one table lookup
// per input byte.
type acAuto struct {
	class [256]uint16
	width int32
	delta []int32 // state*width + class -> state
	// dict links a state to the next state along its suffix chain that
	// ends a word; 0 (the root) ends the chain.
	dict []int32
	// outs[outAt[s]:outAt[s+1]] are the ids of the words ending at s.
	outAt []int32
	outs  []int32
}

type acWord struct {
	s  string
	id int32
}

func buildAC(words []acWord) *acAuto {
	a := &acAuto{}
	var used [256]bool
	for _, w := range words {
		for i := 0; i < len(w.s); i++ {
			used[w.s[i]] = true
		}
	}
	a.width = 1
	for c := range used {
		if used[c] {
			a.class[c] = uint16(a.width)
			a.width++
		}
	}
	total := 1
	for _, w := range words {
		total += len(w.s)
	}
	a.delta = make([]int32, a.width, int(a.width)*total)
	own := make([][]int32, 1, total)
	for _, w := range words {
		st := int32(0)
		for i := 0; i < len(w.s); i++ {
			at := st*a.width + int32(a.class[w.s[i]])
			next := a.delta[at]
			if next == 0 {
				next = int32(len(own))
				own = append(own, nil)
				a.delta = append(a.delta, make([]int32, a.width)...)
				a.delta[at] = next
			}
			st = next
		}
		own[st] = append(own[st], w.id)
	}

	// Breadth first, so that a state's failure state (shallower) has its
	// row complete when the state's own row is filled in. Before a row is
	// filled in, its non-zero entries are exactly the trie edges.
	n := len(own)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := int32(0); c < a.width; c++ {
		if v := a.delta[c]; v != 0 {
			queue = append(queue, v)
		}
	}
	for qi := 0; qi < len(queue); qi++ {
		u := queue[qi]
		for c := int32(0); c < a.width; c++ {
			f := a.delta[fail[u]*a.width+c]
			if v := a.delta[u*a.width+c]; v != 0 {
				fail[v] = f
				queue = append(queue, v)
			} else {
				a.delta[u*a.width+c] = f
			}
		}
	}
	a.dict = make([]int32, n)
	for _, v := range queue {
		if f := fail[v]; len(own[f]) > 0 {
			a.dict[v] = f
		} else {
			a.dict[v] = a.dict[f]
		}
	}
	a.outAt = make([]int32, n+1)
	for s, ids := range own {
		a.outAt[s+1] = a.outAt[s] + int32(len(ids))
		a.outs = append(a.outs, ids...)
	}
	// Mark the transitions into states where some word ends, so that
	// the scan looks at the output tables only there.
	for i, v := range a.delta {
		if len(own[v]) > 0 || a.dict[v] != 0 {
			a.delta[i] = v | acOutput
		}
	}
	return a
}

// acOutput flags a transition into a state where a word ends.
const acOutput = -1 << 31

// scan appends to out the id of every word occurring in s (an id once per
// occurrence).
func (a *acAuto) scan(s string, out []int32) []int32 {
	st := int32(0)
	for i := 0; i < len(s); i++ {
		st = a.delta[st*a.width+int32(a.class[s[i]])]
		if st < 0 {
			st &^= acOutput
			for o := st; o != 0; o = a.dict[o] {
				out = append(out, a.outs[a.outAt[o]:a.outAt[o+1]]...)
			}
		}
	}
	return out
}

// pattern is a glob or regular expression rule, compiled.
type pattern struct {
	rule int32
	glob string
	re   *regexp.Regexp
}

// patternSet holds the glob and regular expression rules in precedence
// order (see docs/senders.md): globs with more literal characters first,
// then regular expressions; at equal rank, file order. A pattern's id is
// its position.
type patternSet struct {
	pats    []pattern
	ac      *acAuto
	always  []int32 // patterns without factor
	regexes []int32 // every regular expression, for names not in IDNA form
	watch   bool    // some pattern is a WATCH rule
	decide  bool    // some pattern is not
}

func buildPatterns(rules []Rule) patternSet {
	var ps patternSet
	// A group of identical keys ranks at its first occurrence, the
	// tagged ones first: "a tagged rule beats an untagged one with the
	// same key" holds for patterns as for literal keys.
	first := map[string]int{}
	lits := map[int]int{} // rule index -> literal characters of its glob
	var idx []int
	for i := range rules {
		r := &rules[i]
		if r.kind != keyGlob && r.kind != keyRegex {
			continue
		}
		k := string(rune('0'+r.kind)) + r.norm
		if _, ok := first[k]; !ok {
			first[k] = i
		}
		if r.kind == keyGlob {
			lits[i] = globLiteral(r.norm)
		}
		idx = append(idx, i)
	}
	rank := func(i int) (int, int, int, int) {
		r := &rules[i]
		kindRank, lit := 0, 0
		if r.kind == keyRegex {
			kindRank = 1
		} else {
			lit = -lits[i]
		}
		tagged := 1
		if r.Tagged {
			tagged = 0
		}
		return kindRank, lit, first[string(rune('0'+r.kind))+r.norm], tagged
	}
	sort.SliceStable(idx, func(a, b int) bool {
		k1, l1, f1, t1 := rank(idx[a])
		k2, l2, f2, t2 := rank(idx[b])
		switch {
		case k1 != k2:
			return k1 < k2
		case l1 != l2:
			return l1 < l2
		case f1 != f2:
			return f1 < f2
		}
		return t1 < t2
	})
	var words []acWord
	for _, i := range idx {
		r := &rules[i]
		id := int32(len(ps.pats))
		p := pattern{rule: int32(i)}
		var factors []string
		if r.kind == keyGlob {
			p.glob = r.norm
			if f := globFactor(r.norm); f != "" {
				factors = []string{f}
			}
		} else {
			p.re = r.re
			factors = regexFactors(r.norm)
			ps.regexes = append(ps.regexes, id)
		}
		ps.pats = append(ps.pats, p)
		if r.Action == Watch {
			ps.watch = true
		} else {
			ps.decide = true
		}
		if len(factors) == 0 {
			ps.always = append(ps.always, id)
			continue
		}
		for _, f := range factors {
			words = append(words, acWord{s: f, id: id})
		}
	}
	if len(words) > 0 {
		ps.ac = buildAC(words)
	}
	return ps
}

// match tries the patterns that can match name against it, in precedence
// order: the first deciding rule for subj goes to m.Rule unless a literal
// key decided already, and every WATCH rule that matches goes to m.Watch.
func (ps *patternSet) match(rules []Rule, m *Match, subj Subject, name string, raw bool) {
	if len(ps.pats) == 0 || !ps.watch && m.Rule != nil {
		return
	}
	var buf [32]int32
	cands := buf[:0]
	if ps.ac != nil {
		cands = ps.ac.scan(name, cands)
	}
	uni := ""
	if len(ps.regexes) > 0 {
		// Regular expressions also see the Unicode form of an
		// internationalised name, so that they can be written with the
		// letters a look-alike domain uses.
		if uni = unicodeForm(name); uni != "" && ps.ac != nil {
			cands = ps.ac.scan(uni, cands)
		}
	}
	cands = append(cands, ps.always...)
	if raw {
		// A name that is not valid IDNA was not case-mapped as the
		// factors assume: try every regular expression.
		cands = append(cands, ps.regexes...)
	}
	slices.Sort(cands)
	prev := int32(-1)
	for _, id := range cands {
		if id == prev {
			continue
		}
		prev = id
		p := &ps.pats[id]
		r := &rules[p.rule]
		if !r.Scope.Has(subj) {
			continue
		}
		watch := r.Action == Watch
		if !watch && m.Rule != nil {
			continue
		}
		var ok bool
		if p.re != nil {
			ok = p.re.MatchString(name) || uni != "" && p.re.MatchString(uni)
		} else {
			ok = globMatch(p.glob, name)
		}
		if !ok {
			continue
		}
		if watch {
			m.Watch = append(m.Watch, r)
		} else {
			m.Rule = r
		}
	}
}
