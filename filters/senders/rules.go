package senders

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// File is a rules file to load and the subjects its untagged rules apply
// to.
type File struct {
	Path  string
	Scope Scope
}

// Rules is a compiled set of rules files. It is immutable and safe for
// concurrent use.
type Rules struct {
	rules []Rule
	// Literal keys, each mapped to a slot. A domain maps to a pair of
	// slots: the rules of "example.com" (the domain and its sub-domains)
	// and of ".example.com" (sub-domains only), so that a lookup costs one
	// map access per label.
	addrs      map[addrKey]int32
	plusAddrs  map[addrKey]int32 // user+*@domain, keyed by user
	domains    map[string]int32  // index into dslots
	dslots     []domainSlots
	locals     map[string]int32
	plusLocals map[string]int32 // user+*@, keyed by user
	null       int32            // slot of <>, or -1
	// patterns maps a glob's or regular expression's kind and text to
	// its slot, which only serves to tell the rule of each subject that
	// decides among identical keys (see findBlocking): matching goes by
	// pats.
	patterns map[string]int32
	slots    []slot
	pats     patternSet
	uses     Scope
	// blocking is, per subject, the rule that blocks most (index+1, 0
	// for none); see Rules.strongest.
	blocking [numSubjects]int32
	notes    []Note
	stamps   []stamp
}

type addrKey struct{ local, domain string }

// domainSlots are the slots of a domain's two kinds of rules; -1 for none.
type domainSlots struct{ self, sub int32 }

// slot holds the rules of one literal key: per subject the deciding rule
// (index+1, 0 for none), and the WATCH rules.
type slot struct {
	decide [numSubjects]int32
	watch  []int32
}

// stamp identifies the version of a file that was read.
type stamp struct {
	path  string
	size  int64
	mtime time.Time
	ino   uint64
	ctime int64
	err   string
}

func stampOf(path string, fi os.FileInfo, err error) stamp {
	if err != nil {
		return stamp{path: path, err: err.Error()}
	}
	st := stamp{path: path, size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
		st.ctime = ctimeOf(sys)
	}
	return st
}

// maxRulesFile bounds a rules file. 64 MiB is some 2.5 million rules, whose
// compiled form would take over a gigabyte (about 50 MB per 100,000
// rules); the bound keeps a device or a huge file named by mistake
// (/dev/zero, a mail spool) from taking all memory when the daemon starts
// or reloads, and when "sluice senders test" reads it.
const maxRulesFile = 64 << 20

// Load reads and compiles the rules files. Malformed lines make it fail
// with a *ParseError listing them with file and line.
func Load(files []File) (*Rules, error) {
	srcs := make([]Source, 0, len(files))
	stamps := make([]stamp, 0, len(files))
	for _, f := range files {
		fh, err := os.Open(f.Path)
		if err != nil {
			return nil, fmt.Errorf("rules file: %w", err)
		}
		fi, err := fh.Stat()
		var data []byte
		if err == nil {
			data, err = io.ReadAll(io.LimitReader(fh, maxRulesFile+1))
		}
		fh.Close()
		if err == nil && len(data) > maxRulesFile {
			err = fmt.Errorf("larger than %d MiB, more than any list of rules needs: not read", maxRulesFile>>20)
		}
		if err != nil {
			return nil, fmt.Errorf("rules file %s: %w", f.Path, err)
		}
		// The stamp is taken before reading: a write that lands during
		// the read shows as a change at the next check.
		stamps = append(stamps, stampOf(f.Path, fi, nil))
		srcs = append(srcs, Source{Name: f.Path, Data: data, Scope: f.Scope})
	}
	rs, err := Compile(srcs...)
	if err != nil {
		return nil, err
	}
	rs.stamps = stamps
	return rs, nil
}

// Compile parses and compiles rules files given as text.
func Compile(srcs ...Source) (*Rules, error) {
	var (
		rules []Rule
		notes []Note
		perr  ParseError
	)
	for _, src := range srcs {
		rules, notes = parseSource(src, rules, &perr, notes)
	}
	if len(perr.Lines) > 0 {
		return nil, &perr
	}
	rs := &Rules{
		rules:      rules,
		addrs:      map[addrKey]int32{},
		plusAddrs:  map[addrKey]int32{},
		domains:    map[string]int32{},
		locals:     map[string]int32{},
		plusLocals: map[string]int32{},
		null:       -1,
		patterns:   map[string]int32{},
		notes:      notes,
	}
	for i := range rs.rules {
		r := &rs.rules[i]
		rs.uses |= r.Scope
		if why := neverMatches(r); why != "" {
			rs.notes = append(rs.notes, Note{File: r.File, Line: r.Line, Text: why, NoEffect: true})
		}
		var s *slot
		switch r.kind {
		case keyAddress:
			s = slotOf(rs, rs.addrs, addrKey{r.local, r.norm})
		case keyPlusAddress:
			s = slotOf(rs, rs.plusAddrs, addrKey{r.local, r.norm})
		case keyDomain, keySubdomains:
			s = rs.domainSlot(r.norm, r.kind == keySubdomains)
		case keyLocal:
			s = slotOf(rs, rs.locals, r.local)
		case keyPlusLocal:
			s = slotOf(rs, rs.plusLocals, r.local)
		case keyNull:
			if rs.null < 0 {
				rs.null = int32(len(rs.slots))
				rs.slots = append(rs.slots, slot{})
			}
			s = &rs.slots[rs.null]
		case keyGlob, keyRegex:
			// Of identical patterns, the first that applies to a
			// subject decides, a tagged one before an untagged one,
			// as buildPatterns ranks them for matching; the others
			// decide nothing and are noted.
			s = slotOf(rs, rs.patterns, string(rune('0'+r.kind))+r.norm)
		default:
			continue
		}
		rs.place(s, i)
	}
	rs.pats = buildPatterns(rs.rules)
	rs.findBlocking()
	return rs, nil
}

// findBlocking sets rs.blocking from the rules that can decide: the
// deciding rule of each key, literal or pattern (not those it hides). The
// null sender's rules decide for the envelope sender only.
func (rs *Rules) findBlocking() {
	consider := func(subj Subject, i int) {
		r := &rs.rules[i]
		e := r.Action.effect()
		if e == filters.Continue || !r.Scope.Has(subj) {
			return
		}
		if cur := rs.blocking[subj]; cur != 0 {
			ce := rs.rules[cur-1].Action.effect()
			if e < ce || e == ce && int(cur-1) < i {
				return
			}
		}
		rs.blocking[subj] = int32(i + 1)
	}
	for si := range rs.slots {
		for subj := Subject(0); subj < numSubjects; subj++ {
			if d := rs.slots[si].decide[subj]; d != 0 && (int32(si) != rs.null || subj == MailFrom) {
				consider(subj, int(d-1))
			}
		}
	}
}

// strongest returns the rule for subj whose action blocks most (reject,
// then tempfail, quarantine and discard), the first in file order among
// equals; nil when no rule for subj blocks anything. It is what a name
// that was not looked up might have matched.
func (rs *Rules) strongest(subj Subject) *Rule {
	if i := rs.blocking[subj]; i != 0 {
		return &rs.rules[i-1]
	}
	return nil
}

// slotOf returns the slot of key in m, creating it.
func slotOf[K comparable](rs *Rules, m map[K]int32, key K) *slot {
	idx, ok := m[key]
	if !ok {
		idx = int32(len(rs.slots))
		m[key] = idx
		rs.slots = append(rs.slots, slot{})
	}
	return &rs.slots[idx]
}

// domainSlot returns the slot of the domain's rules of one kind, creating
// it.
func (rs *Rules) domainSlot(domain string, sub bool) *slot {
	di, ok := rs.domains[domain]
	if !ok {
		di = int32(len(rs.dslots))
		rs.domains[domain] = di
		rs.dslots = append(rs.dslots, domainSlots{-1, -1})
	}
	at := &rs.dslots[di].self
	if sub {
		at = &rs.dslots[di].sub
	}
	if *at < 0 {
		*at = int32(len(rs.slots))
		rs.slots = append(rs.slots, slot{})
	}
	return &rs.slots[*at]
}

// place puts rule i into its key's slot. For each subject the first rule
// wins, except that a tagged rule beats an untagged one; a rule that wins
// for no subject is noted as hidden.
func (rs *Rules) place(s *slot, i int) {
	r := &rs.rules[i]
	if r.Action == Watch {
		s.watch = append(s.watch, int32(i))
		return
	}
	used := false
	var by *Rule
	for subj := Subject(0); subj < numSubjects; subj++ {
		if !r.Scope.Has(subj) {
			continue
		}
		cur := s.decide[subj]
		if cur == 0 || r.Tagged && !rs.rules[cur-1].Tagged {
			s.decide[subj] = int32(i + 1)
			used = true
			continue
		}
		by = &rs.rules[cur-1]
	}
	if !used && by != nil {
		rs.notes = append(rs.notes, Note{File: r.File, Line: r.Line, NoEffect: true,
			Text: fmt.Sprintf("%s is hidden by %s:%d, which has the same key; the first one counts", r.Key, by.File, by.Line)})
	}
}

// Len returns the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Uses reports whether any rule applies to the subject, so that callers
// can skip looking up subjects no rule is about.
func (rs *Rules) Uses(s Subject) bool { return rs.uses.Has(s) }

// HasWatch reports whether any rule is a WATCH rule.
func (rs *Rules) HasWatch() bool { return len(rs.WatchKeys()) > 0 }

// WatchKeys returns the keys of the WATCH rules as written, each once, in
// file order.
func (rs *Rules) WatchKeys() []string {
	var keys []string
	seen := map[string]bool{}
	for i := range rs.rules {
		if r := &rs.rules[i]; r.Action == Watch && !seen[r.Key] {
			seen[r.Key] = true
			keys = append(keys, r.Key)
		}
	}
	return keys
}

// Notes returns the lines that were read but are not used: Sendmail
// entries about other things than senders, entries hidden by an earlier
// one with the same key, and rules that can never match.
func (rs *Rules) Notes() []Note { return rs.notes }

// Files returns the paths the rules were loaded from.
func (rs *Rules) Files() []string {
	out := make([]string, len(rs.stamps))
	for i, st := range rs.stamps {
		out[i] = st.path
	}
	return out
}

// current stats the files the rules came from.
func (rs *Rules) current() []stamp {
	out := make([]stamp, len(rs.stamps))
	for i, st := range rs.stamps {
		fi, err := os.Stat(st.path)
		out[i] = stampOf(st.path, fi, err)
	}
	return out
}

func sameStamps(a, b []stamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].path != b[i].path || a[i].size != b[i].size || !a[i].mtime.Equal(b[i].mtime) ||
			a[i].ino != b[i].ino || a[i].ctime != b[i].ctime || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

// Match is the result of looking up one subject.
type Match struct {
	Subject Subject
	// Name is the subject in compared form.
	Name Name
	// Rule is the rule that decides, nil when none matches.
	Rule *Rule
	// Watch lists the WATCH rules that match.
	Watch []*Rule
}

// Match looks up a subject: an address for MailFrom and HeaderFrom, a
// host name for Helo and ClientName.
func (rs *Rules) Match(subj Subject, value string) Match {
	if subj.isAddress() {
		return rs.MatchName(subj, ParseAddress(value))
	}
	return rs.MatchName(subj, ParseHost(value))
}

// MatchName looks up a subject already in compared form. The order, the
// first deciding rule winning:
//
//  1. the address: user+detail@domain, user+*@domain, user@domain;
//  2. the domain, then each parent domain from the longest: .parent
//     (sub-domains only) before parent;
//  3. the local part: user+detail@, user+*@, user@;
//  4. globs, the one with most literal characters first;
//  5. regular expressions, in file order.
//
// Rules of every step are still visited for WATCH rules.
func (rs *Rules) MatchName(subj Subject, n Name) Match {
	m := Match{Subject: subj, Name: n}
	if n.Null {
		if subj == MailFrom && rs.null >= 0 {
			rs.visit(&m, rs.null)
		}
		return m
	}
	addr := subj.isAddress() && n.Local != ""
	user, plus := n.Local, false
	if i := strings.IndexByte(n.Local, '+'); i > 0 {
		user, plus = n.Local[:i], true
	}
	domain := n.Domain
	// An address on an address literal (user@[192.0.2.1]) is looked up
	// like any other address.
	if addr && domain != "" {
		if idx, ok := rs.addrs[addrKey{n.Local, domain}]; ok {
			rs.visit(&m, idx)
		}
		if plus {
			if idx, ok := rs.plusAddrs[addrKey{user, domain}]; ok {
				rs.visit(&m, idx)
			}
			if idx, ok := rs.addrs[addrKey{user, domain}]; ok {
				rs.visit(&m, idx)
			}
		}
	}
	if n.Literal {
		// An address literal is compared as a whole, never as a domain
		// with parents.
		if di, ok := rs.domains[domain]; ok {
			rs.visitDomain(&m, di, false)
		}
		domain = ""
	}
	if domain != "" {
		if di, ok := rs.domains[domain]; ok {
			rs.visitDomain(&m, di, false)
		}
		for i := 0; i < len(domain); i++ {
			if domain[i] != '.' {
				continue
			}
			if di, ok := rs.domains[domain[i+1:]]; ok {
				rs.visitDomain(&m, di, true)
			}
		}
	}
	if addr {
		if idx, ok := rs.locals[n.Local]; ok {
			rs.visit(&m, idx)
		}
		if plus {
			if idx, ok := rs.plusLocals[user]; ok {
				rs.visit(&m, idx)
			}
			if idx, ok := rs.locals[user]; ok {
				rs.visit(&m, idx)
			}
		}
	}
	if domain != "" {
		rs.pats.match(rs.rules, &m, subj, domain, n.raw)
	}
	return m
}

// visitDomain applies the rules of a domain to m: for a parent of the
// name (parent set) the sub-domain-only rules first, then the others.
func (rs *Rules) visitDomain(m *Match, di int32, parent bool) {
	ds := rs.dslots[di]
	if parent && ds.sub >= 0 {
		rs.visit(m, ds.sub)
	}
	if ds.self >= 0 {
		rs.visit(m, ds.self)
	}
}

// visit applies a literal key's slot to m.
func (rs *Rules) visit(m *Match, idx int32) {
	s := &rs.slots[idx]
	if m.Rule == nil {
		if d := s.decide[m.Subject]; d != 0 {
			m.Rule = &rs.rules[d-1]
		}
	}
	for _, w := range s.watch {
		if r := &rs.rules[w]; r.Scope.Has(m.Subject) {
			m.Watch = append(m.Watch, r)
		}
	}
}
