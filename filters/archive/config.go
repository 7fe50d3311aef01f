package archive

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/sluice-mail/sluice/filters"
)

// Config is the filter's options, as written under options: in the
// configuration file. docs/archive.md lists them with their defaults.
type Config struct {
	// Format is "mbox" (mboxrd, the default) or "maildir".
	Format string `yaml:"format"`
	// Targets maps a verdict (see Verdicts) to a path template: an mbox
	// file, or a maildir directory. Relative paths are relative to the
	// daemon's state_dir.
	Targets map[string]string `yaml:"targets"`
	// VerdictHeader is the field whose first word says spam, ham or
	// unsure; default X-Sluice-Bayes, the bayes filter's.
	VerdictHeader string `yaml:"verdict_header"`
	// LockTimeout bounds the wait for an mbox's locks; default 5s.
	LockTimeout time.Duration `yaml:"lock_timeout"`
}

// Defaults.
const (
	DefaultVerdictHeader = "X-Sluice-Bayes"
	DefaultLockTimeout   = 5 * time.Second
)

// Verdicts are the keys of Config.Targets, in the order a message is
// matched against them: its action if the message was refused, discarded
// or held (reject, tempfail, discard, quarantine), then the class in the
// verdict header (spam, ham, unsure), then default.
var Verdicts = []string{"reject", "tempfail", "discard", "quarantine", "spam", "ham", "unsure", "default"}

// Placeholders a path template may use, in braces. {verdict} is the
// matched key of targets, {action} the message's action (accept for
// delivered mail), {date} the day as 2006-01-02 with {year}, {month},
// {day} its parts (local time), {rcpt} a recipient address, {rcpt_local}
// and {rcpt_domain} its two halves. A template with a recipient
// placeholder writes one copy per recipient (recipients that render to
// the same path share one).
var Placeholders = []string{"verdict", "action", "date", "year", "month", "day", "rcpt", "rcpt_local", "rcpt_domain"}

// Formats.
const (
	FormatMbox    = "mbox"
	FormatMaildir = "maildir"
)

// settings is a checked Config.
type settings struct {
	format        string
	targets       map[string]pathTemplate
	verdictHeader string
	lockTimeout   time.Duration
}

func (c Config) check(stateDir string) (settings, error) {
	s := settings{format: c.Format, verdictHeader: c.VerdictHeader, lockTimeout: c.LockTimeout, targets: map[string]pathTemplate{}}
	switch s.format {
	case "":
		s.format = FormatMbox
	case FormatMbox, FormatMaildir:
	default:
		return s, fmt.Errorf("format %q: want mbox or maildir", c.Format)
	}
	if s.verdictHeader == "" {
		s.verdictHeader = DefaultVerdictHeader
	}
	// Printable ASCII without blank or colon, as the fields the MTA
	// passes on: a name with other bytes would match no field, and
	// every message would be filed as if it had no verdict.
	if err := (filters.HeaderEdit{Name: s.verdictHeader}).Validate(); err != nil {
		return s, fmt.Errorf("verdict_header: %w", err)
	}
	if s.lockTimeout < 0 {
		return s, errors.New("lock_timeout: must not be negative")
	}
	if s.lockTimeout == 0 {
		s.lockTimeout = DefaultLockTimeout
	}
	if len(c.Targets) == 0 {
		return s, errors.New("targets: at least one verdict needs a path")
	}
	keys := make([]string, 0, len(c.Targets))
	for k := range c.Targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !isVerdict(k) {
			return s, fmt.Errorf("targets: unknown verdict %q (want one of %s)", k, strings.Join(Verdicts, ", "))
		}
		t, err := parsePathTemplate(c.Targets[k], stateDir)
		if err != nil {
			return s, fmt.Errorf("targets.%s: %w", k, err)
		}
		s.targets[k] = t
	}
	return s, nil
}

func isVerdict(k string) bool {
	for _, v := range Verdicts {
		if v == k {
			return true
		}
	}
	return false
}

// pathTemplate is a target path with placeholders, parsed once when the
// config is read, so that an unknown placeholder is a config error.
type pathTemplate struct {
	raw   string
	parts []tmplPart
	// perRcpt is set when a recipient placeholder is used.
	perRcpt bool
}

type tmplPart struct {
	literal string
	field   string // placeholder name when literal is ""
}

func parsePathTemplate(s, stateDir string) (pathTemplate, error) {
	t := pathTemplate{raw: s}
	if s == "" {
		return t, errors.New("empty path")
	}
	if err := filters.CheckPath(s); err != nil {
		return t, err
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return t, fmt.Errorf("path %q has a control character", s)
		}
	}
	if !filepath.IsAbs(s) {
		if stateDir == "" {
			return t, fmt.Errorf("path %q is relative and there is no state_dir", s)
		}
		s = filepath.Join(stateDir, s)
	}
	s = filepath.Clean(s)
	if s == "/" {
		return t, errors.New("path is the root directory")
	}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, fmt.Errorf("path %q: '}' without '{'", t.raw)
			}
			t.parts = append(t.parts, tmplPart{literal: rest})
			break
		}
		if strings.IndexByte(rest[:i], '}') >= 0 {
			return t, fmt.Errorf("path %q: '}' without '{'", t.raw)
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("path %q: '{' without '}'", t.raw)
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{literal: rest[:i]})
		}
		name := rest[i+1 : i+j]
		if !isPlaceholder(name) {
			return t, fmt.Errorf("path %q: unknown placeholder {%s} (known: {%s})", t.raw, name, strings.Join(Placeholders, "}, {"))
		}
		if strings.HasPrefix(name, "rcpt") {
			t.perRcpt = true
		}
		t.parts = append(t.parts, tmplPart{field: name})
		rest = rest[i+j+1:]
	}
	// cutComponent keeps a name that holds values to maxName bytes by
	// cutting the values only: a name whose own text is longer would
	// be one the file system refuses (NAME_MAX, 255 bytes), itself or
	// with what the mbox's lock files add, and every copy would fail.
	lit := 0
	for _, p := range t.parts {
		if p.field != "" {
			continue
		}
		for k, seg := range strings.Split(p.literal, "/") {
			if k > 0 {
				lit = 0
			}
			if lit += len(seg); lit > maxName {
				return t, fmt.Errorf("path %q: a file or directory name of more than %d bytes, placeholders not counted (NAME_MAX is 255, and an mbox's lock files add to its name)", t.raw, maxName)
			}
		}
	}
	return t, nil
}

func isPlaceholder(name string) bool {
	for _, p := range Placeholders {
		if p == name {
			return true
		}
	}
	return false
}

// root returns the directory of the template's path before its first
// placeholder: the part the administrator wrote, taken as given (see
// Appender.SetRoots). For a path without placeholders it is the mbox's
// (or maildir's) parent.
func (t pathTemplate) root() string {
	if p, ok := t.static(); ok {
		return filepath.Dir(p)
	}
	// The path is absolute and clean, so it starts with a literal "/".
	lit := t.parts[0].literal
	if i := strings.LastIndexByte(lit, '/'); i > 0 {
		return lit[:i]
	}
	return "/"
}

// Roots returns the archive's top directories, one per target (see
// Appender.SetRoots), with relative paths taken relative to stateDir.
func (c Config) Roots(stateDir string) ([]string, error) {
	s, err := c.check(stateDir)
	if err != nil {
		return nil, err
	}
	return s.roots(), nil
}

func (s settings) roots() []string {
	var out []string
	for _, v := range slices.Sorted(maps.Keys(s.targets)) {
		out = append(out, s.targets[v].root())
	}
	return out
}

// static returns the path when the template has no placeholders.
func (t pathTemplate) static() (string, bool) {
	if len(t.parts) == 1 && t.parts[0].field == "" {
		return t.parts[0].literal, true
	}
	return "", false
}

// render fills in the placeholders. Every value is passed through
// pathSafe, so whatever a sender puts in an address stays inside one
// path component: no "/", no "." or "..", no control characters. A
// component that holds values and comes out longer than maxName is cut
// (see cutComponent).
func (t pathTemplate) render(values map[string]string) string {
	var b []byte
	start := 0 // where the current component starts in b
	tail := 0  // where the literal text after its last value starts
	subst := false
	for _, p := range t.parts {
		if p.field != "" {
			b = append(b, pathSafe(values[p.field])...)
			subst, tail = true, len(b)
			continue
		}
		lit := p.literal
		for {
			i := strings.IndexByte(lit, '/')
			if i < 0 {
				b = append(b, lit...)
				break
			}
			b = append(b, lit[:i]...)
			if subst {
				b = cutComponent(b, start, tail)
			}
			b = append(b, '/')
			start, tail, subst = len(b), len(b), false
			lit = lit[i+1:]
		}
	}
	if subst {
		b = cutComponent(b, start, tail)
	}
	out := string(b)
	// PATH.lock is the dot-lock of the mbox PATH (see lockMbox). A value
	// must not make a path end in ".lock": a recipient such as
	// bob.lock@ could otherwise create a file where the archive takes
	// bob's lock, and bob's copies would fail until that file looked
	// stale and was replaced. Unless the template itself ends so, such a
	// path ends in "_lock" instead.
	last := t.parts[len(t.parts)-1]
	if strings.HasSuffix(out, lockSuffix) && !strings.HasSuffix(last.literal, lockSuffix) {
		out = out[:len(out)-len(lockSuffix)] + "_" + lockSuffix[1:]
	}
	return out
}

// maxName bounds a file or directory name that holds values. NAME_MAX is
// 255 bytes, and the archive makes two names from an mbox's: its dot-lock,
// NAME.lock, and the temporary file the lock is made from,
// .NAME.lock-DIGITS (see writeLockTemp); 200 leaves room for both.
const maxName = 200

// cutComponent cuts the path component b[start:], which holds values, to
// maxName bytes if it is longer. The literal text after its last value,
// b[tail:] (".mbox", say), is kept; the bytes before it are cut, at the
// start of a UTF-8 sequence if one is near, so that a template's own
// non-ASCII text is not split. Two long addresses that differ only past the cut share a
// file, as pathSafe makes some addresses share one.
func cutComponent(b []byte, start, tail int) []byte {
	if len(b)-start <= maxName {
		return b
	}
	keep := len(b) - tail
	cut := max(start+maxName-keep, start)
	// At most UTFMax-1 bytes back, and not before the value's first
	// byte: in text that is not UTF-8 there may be no start of a
	// sequence to find.
	for i := cut; i >= max(start, cut-utf8.UTFMax+1); i-- {
		if utf8.RuneStart(b[i]) {
			cut = i
			break
		}
	}
	return append(b[:cut], b[tail:]...)
}

// lockSuffix is what a dot-lock adds to the path of its mbox.
const lockSuffix = ".lock"

// maxComponent bounds one substituted value, well under NAME_MAX (255).
const maxComponent = 100

// pathSafe turns s into a string that is safe as (part of) one path
// component: ASCII letters are lower-cased, letters, digits and
// ".+-=_@" are kept, every other byte becomes "_", a leading "." becomes
// "_" (so neither "." nor ".." nor a hidden file can result), and the
// result is at most maxComponent bytes and never empty.
//
// Non-ASCII letters, digits and combining marks (an SMTPUTF8 local part
// such as "jürgen" or "山田") are kept too, in NFC and lower case:
// replaced byte by byte, "ü@" and "ö@" both became "__@" and shared one
// mailbox with each other and with the ASCII "__@". Anything else that is
// not ASCII (spaces, format and bidi controls, look-alike slashes, bytes
// that are not UTF-8) still becomes "_", one per byte, but for U+FFFD,
// one "_" as for the byte it stands for. The cut at
// maxComponent bytes never splits a character.
func pathSafe(s string) string {
	if !isASCII(s) && utf8.ValidString(s) {
		s = norm.NFC.String(s)
	}
	b := make([]byte, 0, min(len(s), maxComponent))
	for i := 0; i < len(s) && len(b) < maxComponent; {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) {
				r = unicode.ToLower(r)
				if len(b)+utf8.RuneLen(r) > maxComponent {
					break
				}
				b = utf8.AppendRune(b, r)
				i += n
				continue
			}
			c = '_'
			if r == utf8.RuneError {
				// A byte that is not UTF-8, or U+FFFD, as which the
				// archive's fields record such a byte: one "_"
				// either way, so that a copy's recipient field gives
				// the path the copy was written to.
				i += n
			} else {
				i++
			}
			b = append(b, c)
			continue
		}
		i++
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.' || c == '+' || c == '-' || c == '=' || c == '_' || c == '@':
		default:
			c = '_'
		}
		b = append(b, c)
	}
	if len(b) == 0 {
		return "_"
	}
	if b[0] == '.' {
		b[0] = '_'
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
