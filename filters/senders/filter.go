package senders

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/filters"
)

// Observer is told what the filter does, for metrics. It must be safe for
// concurrent use. filter is the filter's name in the pipeline.
type Observer interface {
	// SenderRulesLoaded reports rules put in force: when the filter is
	// built (start, SIGHUP) and when a changed file was reloaded. watch
	// lists the keys of the WATCH rules, so that their counters exist
	// (at 0) before the first new domain: an alert on their increase
	// then sees the first one too.
	SenderRulesLoaded(filter string, rules int, watch []string)
	// SenderRulesReloaded reports the result of reloading a changed
	// rules file; after a failure the previous rules stay in force.
	SenderRulesReloaded(filter string, ok bool)
	// SenderWatchNewDomain reports a domain seen for the first time
	// matching a WATCH pattern (the pattern as written in the file).
	SenderWatchNewDomain(filter, pattern string)
	// SenderFilter reports that a filter was built (on) or closed: a
	// reload runs the old and the new filter of a name side by side for
	// a while, and only when no filter of a name is left are its series
	// stale.
	SenderFilter(filter string, on bool)
}

// Config is the filter's options, as written under options: in the
// configuration file; docs/senders.md lists them.
type Config struct {
	// Files are the rules files, read in order.
	Files []FileConfig `yaml:"files"`
	// WatchAll makes every rule act as a WATCH rule too.
	WatchAll bool `yaml:"watch_all"`
	// ReloadInterval is how often the files are checked for changes;
	// nil means DefaultReloadInterval, 0 turns the check off.
	ReloadInterval *time.Duration `yaml:"reload_interval"`
	// SeenFile remembers the domains WATCH rules have seen; default
	// <state_dir>/<filter name>.seen.
	SeenFile string `yaml:"seen_file"`
	// SeenLimit bounds the entries of the seen file; the oldest go
	// first. 0 means DefaultSeenLimit.
	SeenLimit int `yaml:"seen_limit"`
	// RejectReply is the reply of REJECT rules; default DefaultReject.
	RejectReply string `yaml:"reject_reply"`
}

// FileConfig is one rules file: a path, or a mapping with the path and
// the subjects its untagged rules apply to.
type FileConfig struct {
	Path string `yaml:"path"`
	// Match lists subjects: mail_from, header_from, helo, client_name.
	// Empty means mail_from and header_from.
	Match []string `yaml:"match"`
}

// UnmarshalYAML accepts "PATH" or "{path: PATH, match: [...]}", strictly.
func (f *FileConfig) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		f.Path = n.Value
		return nil
	case yaml.MappingNode:
		// yaml.v3 leaves duplicate keys to the decoder of the mapping,
		// which this is: a second path would replace the first.
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if line, ok := seen[k.Value]; ok {
				return fmt.Errorf("line %d: files: key %q already defined at line %d", k.Line, k.Value, line)
			}
			seen[k.Value] = k.Line
			switch k.Value {
			case "path":
				if v.Kind != yaml.ScalarNode {
					return fmt.Errorf("line %d: path: want a file name", v.Line)
				}
				f.Path = v.Value
			case "match":
				if v.Kind != yaml.SequenceNode {
					return fmt.Errorf("line %d: match: want a list such as [mail_from, header_from]", v.Line)
				}
				for _, item := range v.Content {
					if item.Kind != yaml.ScalarNode {
						return fmt.Errorf("line %d: match: want subject names", item.Line)
					}
					f.Match = append(f.Match, item.Value)
				}
			default:
				return fmt.Errorf("line %d: files: unknown key %q (known: path, match)", k.Line, k.Value)
			}
		}
		return nil
	}
	return fmt.Errorf("line %d: files: want a file name or a mapping with path and match", n.Line)
}

// Defaults.
const (
	DefaultReloadInterval = 2 * time.Second
	DefaultSeenLimit      = 100000
	DefaultReject         = "550 5.7.1 Access denied"
	minReloadInterval     = 100 * time.Millisecond
)

// RulesFiles returns the files with their scopes.
func (c Config) RulesFiles() ([]File, error) {
	if len(c.Files) == 0 {
		return nil, errors.New("files: give at least one rules file")
	}
	out := make([]File, 0, len(c.Files))
	for i, fc := range c.Files {
		if fc.Path == "" {
			return nil, fmt.Errorf("files[%d]: path is empty", i)
		}
		if err := filters.CheckPath(fc.Path); err != nil {
			return nil, fmt.Errorf("files[%d]: %w", i, err)
		}
		sc := DefaultScope
		if len(fc.Match) > 0 {
			sc = 0
			for _, name := range fc.Match {
				s, err := ParseSubject(name)
				if err != nil {
					return nil, fmt.Errorf("files[%d].match: %w", i, err)
				}
				sc |= ScopeOf(s)
			}
		}
		out = append(out, File{Path: fc.Path, Scope: sc})
	}
	return out, nil
}

// SeenPath returns the seen file of a filter: SeenFile, or <name>.seen
// in stateDir.
func (c Config) SeenPath(stateDir, name string) string {
	if c.SeenFile != "" {
		return c.SeenFile
	}
	if name == "" {
		name = "senders"
	}
	return filepath.Join(stateDir, name+".seen")
}

// settings is a checked Config.
type settings struct {
	files    []File
	watchAll bool
	interval time.Duration
	seenPath string
	limit    int
	reject   filters.Reply
}

func (c Config) check(stateDir, name string) (settings, error) {
	s := settings{watchAll: c.WatchAll, interval: DefaultReloadInterval, limit: DefaultSeenLimit}
	var err error
	if s.files, err = c.RulesFiles(); err != nil {
		return s, err
	}
	if c.ReloadInterval != nil {
		s.interval = *c.ReloadInterval
		if s.interval != 0 && s.interval < minReloadInterval {
			return s, fmt.Errorf("reload_interval: %s: want 0 (off) or at least %s", s.interval, minReloadInterval)
		}
	}
	if c.SeenFile == "" && strings.ContainsAny(name, `/\`) {
		return s, fmt.Errorf("seen_file: the filter name %q cannot be a file name; set seen_file", name)
	}
	if err := filters.CheckPath(c.SeenFile); err != nil {
		return s, fmt.Errorf("seen_file: %w", err)
	}
	s.seenPath = c.SeenPath(stateDir, name)
	if c.SeenLimit < 0 {
		return s, errors.New("seen_limit: must not be negative")
	}
	if c.SeenLimit > 0 {
		s.limit = c.SeenLimit
	}
	if s.reject, err = c.Reject(); err != nil {
		return s, err
	}
	return s, nil
}

// Reject returns the reply of REJECT rules: RejectReply, or DefaultReject.
func (c Config) Reject() (filters.Reply, error) {
	reply := c.RejectReply
	if reply == "" {
		reply = DefaultReject
	}
	r, err := filters.ParseReply(reply)
	if err != nil {
		return r, fmt.Errorf("reject_reply: %w", err)
	}
	if r.Code/100 != 5 {
		return r, fmt.Errorf("reject_reply: %q: want a 5xx reply (ERROR:\"4xx ...\" rules tempfail)", reply)
	}
	return r, nil
}

// Factory returns the filters.Factory for type "senders". The filters it
// builds share their seen files, so that the filter a reload builds and
// the one still finishing its sessions agree on which domains are new.
func Factory() filters.Factory {
	shared := NewShared()
	return func(env filters.Env, decode func(v any) error) (filters.Filter, error) {
		var cfg Config
		if err := decode(&cfg); err != nil {
			return nil, err
		}
		return New(env, cfg, shared)
	}
}

// Filter is the senders filter. It implements filters.Filter,
// filters.Retirer and filters.Closer.
type Filter struct {
	name  string
	s     settings
	log   *slog.Logger
	obs   Observer
	seen  *seenStore
	rules atomic.Pointer[Rules]
	// shared holds the rules in force under key, the files' filesKey,
	// for the filter a reload builds next.
	shared *Shared
	key    string

	// reportMu orders the file watcher's reports with Retire: once
	// Retire returned, the watcher reports nothing more.
	reportMu sync.Mutex
	// retired is set by Retire: a reload replaced the filter (see
	// Retire).
	retired bool

	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
}

var (
	_ filters.Filter  = (*Filter)(nil)
	_ filters.Closer  = (*Filter)(nil)
	_ filters.Retirer = (*Filter)(nil)
)

// New loads the rules files of cfg and returns the filter. shared may be
// nil when no other filter shares the seen file.
func New(env filters.Env, cfg Config, shared *Shared) (*Filter, error) {
	name := env.Name
	if name == "" {
		name = "senders"
	}
	s, err := cfg.check(env.StateDir, name)
	if err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if shared == nil {
		shared = NewShared()
	}
	key := filesKey(s.files)
	rs, err := Load(s.files)
	if prev := shared.inForce(key); prev != nil && s.interval > 0 {
		// A reload (SIGHUP) while a file is written in place: as when
		// the change check sees it, the rules in force stay until the
		// file stops changing, and the file watcher then reads it. Half
		// a line may not parse, which must not fail the reload either.
		if writing := unfinished(prev.current(), prev.stamps); len(writing) > 0 {
			log.Warn("senders: a rules file is empty or ends in the middle of a line, as while it is being written; the rules in force stay until it stays the same",
				"files", strings.Join(writing, ","), "wait", time.Duration(unfinishedChecks)*s.interval)
			rs, err = prev, nil
		}
	}
	if err != nil {
		return nil, err
	}
	if rs.HasWatch() || s.watchAll {
		// Without its directory the seen file cannot be written and every
		// restart would report every watched domain again: say so now.
		dir := filepath.Dir(s.seenPath)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("directory %s does not exist", dir)
			}
			return nil, fmt.Errorf("seen_file %s (where WATCH rules remember the domains they saw): %w", s.seenPath, err)
		}
	}
	seen, err := shared.openSeen(s.seenPath, s.limit, log)
	if err != nil {
		return nil, err
	}
	shared.holdRules(key, rs)
	f := &Filter{name: name, s: s, log: log, seen: seen, shared: shared, key: key, stop: make(chan struct{}), done: make(chan struct{})}
	f.obs, _ = env.Observer.(Observer)
	f.rules.Store(rs)
	f.logLoaded(rs, "senders: rules loaded")
	if f.obs != nil {
		f.obs.SenderFilter(f.name, true)
		f.obs.SenderRulesLoaded(f.name, rs.Len(), rs.WatchKeys())
	}
	if s.interval > 0 {
		go f.watchFiles()
	} else {
		close(f.done)
	}
	return f, nil
}

// maxLoggedNotes bounds the rules without effect, and apart from them
// the skipped lines, logged one by one.
const maxLoggedNotes = 10

// logLoaded logs rules put in force, with the rules that have no effect
// (warnings) and the lines skipped. Each has its own bound: a Sendmail
// access file may hold hundreds of IP address and To: lines, which must
// not crowd out the warnings.
func (f *Filter) logLoaded(rs *Rules, msg string) {
	notes := rs.Notes()
	f.log.Info(msg, "rules", rs.Len(), "files", strings.Join(rs.Files(), ","), "skipped_lines", len(notes))
	warned, skipped := 0, 0
	for _, n := range notes {
		if n.NoEffect {
			if warned++; warned <= maxLoggedNotes {
				f.log.Warn("senders: rule has no effect", "line", n.String())
			}
			continue
		}
		if skipped++; skipped <= maxLoggedNotes {
			f.log.Debug("senders: line skipped", "line", n.String())
		}
	}
	if warned > maxLoggedNotes {
		f.log.Warn("senders: more rules without effect not shown", "count", warned-maxLoggedNotes)
	}
	if skipped > maxLoggedNotes {
		f.log.Debug("senders: more skipped lines not shown", "count", skipped-maxLoggedNotes)
	}
}

// Rules returns the rules in force.
func (f *Filter) Rules() *Rules { return f.rules.Load() }

// watchFiles reloads the rules when a file changes. A changed file is
// read once it stayed the same for one interval, so that a file being
// written in place is not read half-way; one that looks unfinished
// (empty, or its last line without end) once it stayed the same for
// unfinishedChecks intervals, as its writer may pause for longer than
// one. A file that cannot be used is reported once per change; the rules
// in force stay.
func (f *Filter) watchFiles() {
	defer close(f.done)
	t := time.NewTicker(f.s.interval)
	defer t.Stop()
	var failed, pending []stamp
	stable := 0 // checks that found the files as pending
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		cur := f.rules.Load()
		now := cur.current()
		if sameStamps(now, cur.stamps) || failed != nil && sameStamps(now, failed) {
			pending = nil
			continue
		}
		if !sameStamps(now, pending) {
			pending, stable = now, 0
			continue
		}
		if stable++; stable < unfinishedChecks {
			if writing := unfinished(now, cur.stamps); len(writing) > 0 {
				if stable == 1 && !f.isRetired() {
					f.log.Info("senders: a rules file changed and is empty or ends in the middle of a line, as while it is being written; it is read once it stays the same",
						"files", strings.Join(writing, ","), "wait", time.Duration(unfinishedChecks)*f.s.interval)
				}
				continue
			}
		}
		pending, stable = nil, 0
		rs, err := Load(f.s.files)
		if err != nil {
			failed = now
			f.reloaded(nil, err)
			continue
		}
		failed = nil
		f.rules.Store(rs)
		f.shared.setRules(f.key, rs)
		f.reloaded(rs, nil)
	}
}

// reloaded reports the reload of a changed file: rs put in force, or err
// why the rules in force stay. A filter a reload replaced (see Retire)
// reloads for the connections opened before it, but its filter name is
// the new configuration's now, whose filter reports its own files: this
// one says what it did at debug level, in words of its own, and tells
// the observer nothing.
func (f *Filter) reloaded(rs *Rules, err error) {
	f.reportMu.Lock()
	defer f.reportMu.Unlock()
	if f.retired {
		if err != nil {
			f.log.Debug("senders: replaced by a reload: a changed rules file cannot be used; the connections opened before the reload keep the rules they had", "err", err)
			return
		}
		f.log.Debug("senders: replaced by a reload: rules reloaded for the connections opened before the reload",
			"rules", rs.Len(), "files", strings.Join(rs.Files(), ","))
		return
	}
	if err != nil {
		f.log.Error("senders: a rules file changed but cannot be used; the rules in force stay", "err", err)
		if f.obs != nil {
			f.obs.SenderRulesReloaded(f.name, false)
		}
		return
	}
	f.logLoaded(rs, "senders: rules reloaded")
	if f.obs != nil {
		f.obs.SenderRulesReloaded(f.name, true)
		f.obs.SenderRulesLoaded(f.name, rs.Len(), rs.WatchKeys())
	}
}

// Retire implements filters.Retirer. The filter goes on reloading its
// files, as the connections opened before the reload take the new rules
// for their next message (docs/senders.md), but stops reporting the
// reloads: the filter of the same name in the new configuration reports
// into the same series, from its own files, and a failure of a file it
// may no longer read would set sluice_sender_rules_last_reload_successful
// to 0 (or a success back to 1) for a configuration that is not the one
// in force.
func (f *Filter) Retire() {
	f.reportMu.Lock()
	f.retired = true
	f.reportMu.Unlock()
}

func (f *Filter) isRetired() bool {
	f.reportMu.Lock()
	defer f.reportMu.Unlock()
	return f.retired
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter: the envelope sender (with HELO and
// client name) at MAIL FROM, the From: field at the end of the header.
func (f *Filter) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageMailFrom, filters.StageHeaders), Headers: true}
}

// Close stops watching the files and releases the seen file, writing it
// if this was its last user.
func (f *Filter) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.done
		f.shared.releaseRules(f.key)
		f.seen.release()
		if f.obs != nil {
			// After the file watcher, the last to report.
			f.obs.SenderFilter(f.name, false)
		}
	})
	return nil
}

// Check implements filters.Filter. HELO and client-name rules are
// checked with the envelope sender, at MAIL FROM: the reply then refuses
// the message, not the connection, and the log line names the sender.
func (f *Filter) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	rs := f.rulesFor(m)
	var buf [4]Match
	ms := buf[:0]
	crowded := "" // why not every From address was read
	switch stage {
	case filters.StageMailFrom:
		if rs.Uses(MailFrom) {
			ms = append(ms, rs.Match(MailFrom, m.From.Addr))
		}
		if m.Conn != nil {
			if rs.Uses(Helo) && m.Conn.Helo != "" {
				ms = append(ms, rs.Match(Helo, m.Conn.Helo))
			}
			// Postfix reports a client without (verified) reverse name
			// as "unknown": that is no name.
			if rs.Uses(ClientName) && m.Conn.Hostname != "" && m.Conn.Hostname != "unknown" {
				ms = append(ms, rs.Match(ClientName, m.Conn.Hostname))
			}
		}
	case filters.StageHeaders:
		if !rs.Uses(HeaderFrom) {
			return filters.Verdict{}, nil
		}
		fields := m.FromFields()
		for _, v := range fields {
			names, more := FromFieldNames(v)
			for _, n := range names {
				ms = append(ms, rs.MatchName(HeaderFrom, n))
			}
			if more && crowded == "" {
				crowded = fmt.Sprintf("a From field holds more than %d different addresses", maxFromAddresses)
			}
		}
		if crowded == "" && unreadFromField(m, fields) {
			crowded = fmt.Sprintf("the message has more than %d different From fields", filters.MaxFromFields)
		}
	default:
		return filters.Verdict{}, nil
	}
	f.noteWatches(ms, m)
	v := f.verdict(ms, m)
	if crowded != "" {
		// A match among the addresses read, at equal strength, says
		// more than the guess about those not read.
		if c := f.crowdedVerdict(rs, m, crowded); c.Action > v.Action {
			v = c
		}
	}
	return v, nil
}

// rulesFor returns the rules m is judged by: those in force at the
// first stage the filter saw it. The files are reloaded in the
// background; without this a message could be checked at MAIL FROM by
// one version and at the end of its header by the next, a mix of rules
// that was never in force, as the daemon's own config never changes for
// a connection already open.
func (f *Filter) rulesFor(m *filters.Message) *Rules {
	return m.Keep(f, func() any { return f.rules.Load() }).(*Rules)
}

// unreadFromField reports whether the message has a From: field beyond
// those read (fields, the first filters.MaxFromFields) whose value is
// not one of theirs. Mail readers differ in which of several From
// fields they show, some the last, so decoy fields before the real one
// must not hide it. A field repeated adds nothing, and comparing the
// values keeps a message of thousands of From fields cheap.
func unreadFromField(m *filters.Message, fields []string) bool {
	if len(fields) < filters.MaxFromFields {
		return false
	}
	n := 0
	for _, h := range m.Headers {
		if !filters.SameName(h.Name, "From") {
			continue
		}
		if n++; n > filters.MaxFromFields && !slices.Contains(fields, h.Value) {
			return true
		}
	}
	return false
}

// crowdedVerdict judges a message with more From: addresses than the
// filter reads (why says where they are). Any address left unread may
// be the author a mail reader shows, so the message gets the action of
// the header_from rule that blocks most, as if one of them matched it;
// with no such rule the unread addresses could not change the verdict.
// The reply is the filter's REJECT reply (or the default 4xx one), not
// the rule's: an ERROR rule's text speaks of its own domain, which this
// message need not come from.
func (f *Filter) crowdedVerdict(rs *Rules, m *filters.Message, why string) filters.Verdict {
	r := rs.strongest(HeaderFrom)
	if r == nil {
		return filters.Verdict{}
	}
	v := filters.Verdict{
		Action: r.Action.effect(),
		Reason: fmt.Sprintf("%s: %s; one not read might match %s (%s): %s",
			HeaderFrom, why, r.Key, r.Where(), r.Value),
	}
	switch v.Action {
	case filters.Reject:
		rep := f.s.reject
		v.Reply = &rep
	case filters.Tempfail:
		rep := filters.DefaultReply(filters.Tempfail)
		v.Reply = &rep
	}
	f.log.Debug("senders: From not read to the end", "queue_id", m.QueueID, "rule", r.String())
	return v
}

// noteWatches reports the domains matching WATCH rules for the first
// time.
func (f *Filter) noteWatches(ms []Match, m *filters.Message) {
	for i := range ms {
		mt := &ms[i]
		if mt.Name.Domain == "" {
			continue
		}
		for _, r := range mt.Watch {
			f.noteNew(r, mt, m)
		}
		if f.s.watchAll && mt.Rule != nil {
			f.noteNew(mt.Rule, mt, m)
		}
	}
}

func (f *Filter) noteNew(r *Rule, mt *Match, m *filters.Message) {
	if !f.seen.addWithin(r.Key, mt.Name.Domain, time.Now(), f.s.limit) {
		return
	}
	f.log.Info(fmt.Sprintf("new sender domain matching %s: %s", r.Key, mt.Name.Domain),
		"rule", r.Where(), "subject", mt.Subject.String(), "queue_id", m.QueueID)
	if f.obs != nil {
		f.obs.SenderWatchNewDomain(f.name, r.Key)
	}
}

// verdict combines the matches of a stage: the strongest action wins,
// as between filters; at equal strength the first match.
func (f *Filter) verdict(ms []Match, m *filters.Message) filters.Verdict {
	var out filters.Verdict
	for i := range ms {
		mt := &ms[i]
		if mt.Rule == nil {
			continue
		}
		v := Verdict(mt, f.s.reject)
		f.log.Debug("senders: rule matched", "queue_id", m.QueueID, "subject", mt.Subject.String(),
			"name", Describe(mt.Name), "rule", mt.Rule.String())
		if out.Reason == "" || v.Action > out.Action {
			out = v
		}
	}
	return out
}

// Verdict returns the filter's answer to a match: the action and reply of
// its deciding rule, with reject as the reply of REJECT rules. A match
// without deciding rule, an OK and a SKIP rule give Continue.
func Verdict(mt *Match, reject filters.Reply) filters.Verdict {
	r := mt.Rule
	if r == nil {
		return filters.Verdict{}
	}
	reason := fmt.Sprintf("%s %s matches %s (%s): %s", mt.Subject, Describe(mt.Name), r.Key, r.Where(), r.Value)
	v := filters.Verdict{Action: r.Action.effect(), Reason: reason}
	if v.Action == filters.Reject || v.Action == filters.Tempfail {
		rep := reject
		if r.Reply != nil {
			rep = *r.Reply
		}
		v.Reply = &rep
	}
	return v
}

// Describe returns a name in compared form as a person reads it: the
// address, "<>" for the null sender, or the host name.
func Describe(n Name) string {
	switch {
	case n.Null:
		return "<>"
	case n.Local != "" && n.Domain != "":
		return n.Local + "@" + n.Domain
	case n.Local != "":
		return n.Local
	}
	return n.Domain
}
