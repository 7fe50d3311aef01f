// Package archive is the archive filter: at end of message, after every
// other filter has decided, it appends a copy of the message to an mbox
// (or delivers it into a maildir) chosen by the message's verdict, so
// that an administrator can find false positives and retrain from them.
//
// The copy is the message as the MTA will deliver it: the header fields
// in order with the edits of earlier filters applied (a verdict header,
// repaired fields), then the body. On top the archive records what the
// mailbox copy would not show: the queue id, the envelope recipients and
// the verdict, in X-Sluice-* fields, and the envelope sender in the mbox
// "From " line. See docs/archive.md.
//
// The filter is a Final filter (filters.Needs.Final): it runs last at end
// of message whatever its place in the configuration, also when a filter
// rejected the message, and reads the outcome in Message.Decided. It
// never changes the outcome; a failed write is an error, and the entry's
// failure policy decides what happens to the message (by default it is
// delivered).
package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/sluice-mail/sluice/filters"
)

// Observer is told what the filter writes, for metrics. It must be safe
// for concurrent use. filter is the filter's name, target the verdict key
// of the target (spam, ham, reject, default ...).
type Observer interface {
	// ArchiveAppended reports one copy written: its size and the time
	// the append took, locks and fsync included.
	ArchiveAppended(filter, target string, bytes int64, took time.Duration)
	// ArchiveFailed reports one copy that could not be written.
	ArchiveFailed(filter, target string)
}

// CopyObserver is told where each copy went: the mbox file, or the
// message's file in the maildir's new/. The filter asserts env.Observer
// to it apart from Observer; "sluice test --archive" uses it to show the
// administrator the copies it wrote.
type CopyObserver interface {
	ArchiveCopyWritten(filter, target, path string)
}

// Factory is the filters.Factory for type "archive".
func Factory(env filters.Env, decode func(v any) error) (filters.Filter, error) {
	var cfg Config
	if err := decode(&cfg); err != nil {
		return nil, err
	}
	return New(env, cfg)
}

// Filter is the archive filter.
type Filter struct {
	name string
	s    settings
	app  *Appender
	obs  Observer
	cobs CopyObserver
	log  *slog.Logger
	now  func() time.Time
}

var _ filters.Filter = (*Filter)(nil)

// New checks cfg and returns the filter. It creates no file; directories
// and archives are created with the first message that goes there. An
// mbox with a fixed path that a sluice process left with a half-written
// record (it died while appending) is repaired now, unless env.CheckOnly
// is set.
func New(env filters.Env, cfg Config) (*Filter, error) {
	s, err := cfg.check(env.StateDir)
	if err != nil {
		return nil, err
	}
	f := &Filter{name: env.Name, s: s, log: env.Logger, now: time.Now}
	if f.name == "" {
		f.name = "archive"
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.obs, _ = env.Observer.(Observer)
	f.cobs, _ = env.Observer.(CopyObserver)
	f.app = NewAppender(s.lockTimeout, f.log)
	f.app.SetRoots(s.roots()...)
	// Not for "sluice config check" (env.CheckOnly), which must change
	// nothing: the repair is the daemon's to make.
	if s.format == FormatMbox && !env.CheckOnly {
		for _, t := range s.targets {
			if p, ok := t.static(); ok {
				if err := f.app.Repair(context.Background(), p); err != nil {
					f.log.Warn("archive: checking for an incomplete record failed", "path", p, "err", err)
				}
			}
		}
	}
	return f, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter: the whole message at end of message,
// after the other filters.
func (f *Filter) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true, Final: true}
}

// verdictOf returns the targets key for m, or "" when no target takes it.
func (f *Filter) verdictOf(m *filters.Message) string {
	switch a := m.Decided.Action; a {
	case filters.Reject, filters.Tempfail, filters.Discard, filters.Quarantine:
		if _, ok := f.s.targets[a.String()]; ok {
			return a.String()
		}
	}
	// On refused or discarded mail the verdict field may be the
	// sender's own: the filter that writes it (and removes forged ones)
	// may not have run, as a refusal before it ends the message, or its
	// edits were dropped along with its own refusal. A forged "Ham" must
	// not put refused spam in the ham archive, which ham is retrained
	// from; such mail goes to its action's target or to default.
	if v, ok := m.Header(f.s.verdictHeader); ok && filters.Delivers(m.Decided.Action) {
		word := strings.ToLower(strings.TrimRight(firstWord(v), ",;"))
		switch word {
		case "spam", "ham", "unsure":
			if _, ok := f.s.targets[word]; ok {
				return word
			}
		}
	}
	if _, ok := f.s.targets["default"]; ok {
		return "default"
	}
	return ""
}

func firstWord(s string) string {
	fs := strings.Fields(s)
	if len(fs) == 0 {
		return ""
	}
	return fs[0]
}

// copySet is one file to write and the recipients recorded in it.
type copySet struct {
	path  string
	rcpts []string
}

// copies renders the target template for m: one copy, or one per path
// when the template names the recipient.
func (f *Filter) copies(t pathTemplate, verdict string, m *filters.Message, at time.Time) []copySet {
	values := templateValues(verdict, deliveredAction(m.Decided.Action), at)
	all := uniqueRcpts(m.Rcpts)
	if !t.perRcpt {
		return []copySet{{path: t.render(values), rcpts: all}}
	}
	if len(all) == 0 {
		all = []string{""}
	}
	var out []copySet
	index := map[string]int{}
	for _, r := range all {
		// The path is made of the recipient as the copy records it, so
		// that "sluice archive move" finds it again from the record.
		setRcpt(values, headerSafe(r, true))
		p := t.render(values)
		if i, ok := index[p]; ok {
			out[i].rcpts = append(out[i].rcpts, r)
			continue
		}
		index[p] = len(out)
		out = append(out, copySet{path: p, rcpts: []string{r}})
	}
	return out
}

// uniqueRcpts returns the recipients' addresses, each mailbox once, in
// its first spelling. A client may name a recipient twice, by the same
// RCPT TO again or with the domain in another case; the MTA delivers one
// copy, but may show the milter every RCPT TO it accepted (Sendmail 8.17
// does, and answers each with 250). Addresses are split as the path
// splits them (rcptParts), so other spellings of one mailbox (a final
// dot, quotes around the local part, a source route) count once; a
// local part in another case may be another mailbox (RFC 5321 2.4) and
// is kept.
func uniqueRcpts(rcpts []filters.Address) []string {
	all := make([]string, 0, len(rcpts))
	seen := make(map[string]bool, len(rcpts))
	for _, r := range rcpts {
		key := r.Addr
		if local, domain, ok := rcptParts(r.Addr); ok {
			key = local
			if domain != "" {
				key += "@" + strings.ToLower(domain)
			}
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		all = append(all, r.Addr)
	}
	return all
}

// templateValues returns the values of the path placeholders but the
// recipient's.
func templateValues(verdict, action string, at time.Time) map[string]string {
	return map[string]string{
		"verdict": verdict,
		"action":  action,
		"date":    at.Format("2006-01-02"),
		"year":    at.Format("2006"),
		"month":   at.Format("01"),
		"day":     at.Format("02"),
	}
}

func setRcpt(values map[string]string, rcpt string) {
	local, domain, ok := rcptParts(rcpt)
	switch {
	case !ok:
		local, domain = "", ""
	case domain != "":
		rcpt = local + "@" + domain
	default:
		rcpt = local
	}
	values["rcpt"], values["rcpt_local"], values["rcpt_domain"] = rcpt, local, domain
}

// rcptParts splits a recipient into the mailbox's local part and domain,
// as every filter reads an address (filters.SplitAddress), so that each
// spelling of one mailbox gets the same path and one spelling cannot
// borrow another domain's:
//
//   - at the last "@" outside quoted strings: "a@b"@example.com is a
//     mailbox at example.com (RFC 5321 section 4.1.2 allows "@" in a
//     quoted local part), not at b"@example.com;
//   - a local part that is one quoted string unquoted: "bob"@example.com
//     is bob@example.com;
//   - a source route dropped (@relay.example:bob@example.com, ignored as
//     RFC 5321 appendix C asks);
//   - the domain without final dots (bob@example.com. is delivered to
//     bob@example.com), and an internationalised domain as its A-label:
//     bücher.example and xn--bcher-kva.example are one domain, and
//     written in Unicode it would become "b__cher.example", beside the
//     xn--bcher-kva.example of the same domain. A domain that is not a
//     valid IDNA name stays as written.
//
// false for an empty recipient, which has no parts.
func rcptParts(rcpt string) (local, domain string, ok bool) {
	local, domain, null := filters.SplitAddress(rcpt)
	if null {
		return "", "", false
	}
	if a, err := idnaLookup.ToASCII(domain); err == nil && a != "" {
		domain = a
	}
	return local, domain, true
}

// idnaLookup maps a domain as for a DNS lookup (UTS 46: case, width,
// compatibility forms), as the senders and dnsbl filters compare domains,
// but lets through the underscore and other characters real names carry.
var idnaLookup = idna.New(idna.MapForLookup(), idna.StrictDomainName(false), idna.Transitional(false))

// TargetPath returns the mbox into which an archive with this config
// would have written rec had its verdict been verdict: the target's
// template rendered with the record's date (from its "From " line), its
// action and its first recipient (a copy per recipient holds the
// recipients of one path). "sluice archive move" uses it.
func (c Config) TargetPath(stateDir, verdict string, rec Record) (string, error) {
	s, err := c.check(stateDir)
	if err != nil {
		return "", err
	}
	if s.format != FormatMbox {
		return "", fmt.Errorf("the archive's format is %s, not mbox", s.format)
	}
	t, ok := s.targets[verdict]
	if !ok {
		var have []string
		for _, v := range Verdicts {
			if _, ok := s.targets[v]; ok {
				have = append(have, v)
			}
		}
		return "", fmt.Errorf("no archive target for %q (the configuration has %s)", verdict, strings.Join(have, ", "))
	}
	at, ok := rec.Time()
	if !ok {
		at = time.Now()
	}
	action := "accept"
	if v := HeaderValues(rec.Message, FieldVerdict); len(v) > 0 {
		// The first "action=" is the archive's: the reason after it is
		// a filter's text, which may quote the message, "; action=" and
		// all.
		for _, part := range strings.Split(v[0], ";") {
			if a, ok := strings.CutPrefix(strings.TrimSpace(part), "action="); ok {
				action = a
				break
			}
		}
	}
	values := templateValues(verdict, action, at)
	if rcpts := HeaderValues(rec.Message, FieldEnvelopeTo); len(rcpts) > 0 {
		setRcpt(values, rcpts[0])
	}
	return t.render(values), nil
}

// Check implements filters.Filter. It always answers Continue; an error
// means some copy could not be written (nothing partial is left behind).
func (f *Filter) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if stage != filters.StageEOM {
		return filters.Verdict{}, nil
	}
	verdict := f.verdictOf(m)
	if verdict == "" {
		return filters.Verdict{}, nil
	}
	if m.Body != nil && m.Body.Err() != nil {
		// Archiving part of a message would pass off a mangled copy as
		// what was delivered.
		if f.obs != nil {
			f.obs.ArchiveFailed(f.name, verdict)
		}
		return filters.Verdict{}, fmt.Errorf("archive: message body incomplete: %w", m.Body.Err())
	}
	at := f.now()
	var errs []error
	for _, c := range f.copies(f.s.targets[verdict], verdict, m, at) {
		e := envelope{from: m.From.Addr, postfix: behindPostfix(m), to: c.rcpts, queueID: m.QueueID, verdict: verdict, decided: m.Decided, at: at}
		start := time.Now()
		var n int64
		var err error
		written := c.path
		if f.s.format == FormatMaildir {
			written, n, err = f.app.appendMaildir(ctx, c.path, func(w *bufio.Writer) error {
				lw := newLineWriter(w, false)
				if _, err := lw.Write([]byte(returnPathField(e))); err != nil {
					return err
				}
				return writeMessage(ctx, lw, e, m, false)
			})
		} else {
			n, err = f.app.AppendMbox(ctx, c.path, func(w *bufio.Writer) error {
				if _, err := w.WriteString(fromLineFor(e)); err != nil {
					return err
				}
				return writeMessage(ctx, newLineWriter(w, true), e, m, true)
			})
		}
		if err != nil {
			errs = append(errs, err)
			if f.obs != nil {
				f.obs.ArchiveFailed(f.name, verdict)
			}
			continue
		}
		if f.obs != nil {
			f.obs.ArchiveAppended(f.name, verdict, n, time.Since(start))
		}
		if f.cobs != nil {
			f.cobs.ArchiveCopyWritten(f.name, verdict, written)
		}
		f.log.Debug("archive: copy written", "queue_id", m.QueueID, "target", verdict, "path", written, "bytes", n)
	}
	return filters.Verdict{}, errors.Join(errs...)
}

// behindPostfix tells whether the message came through Postfix, which
// sends its name and version in macro v by default (milter_macro_v, in
// milter_connect_macros), as headerfix tells the MTAs apart.
func behindPostfix(m *filters.Message) bool {
	v, _ := m.Macro("v")
	return strings.HasPrefix(v, "Postfix")
}
