package bayes

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
)

// Config is the filter's options, as written under options: in the
// configuration file. The zero value of every field means its default;
// docs/bayes.md lists them.
type Config struct {
	// DB is the path of the token store; default <state_dir>/bayes.db.
	DB string `yaml:"db"`
	// Store is "bbolt" (default: the file DB) or "redis" (the server of
	// Redis, shared by several sluice instances).
	Store string `yaml:"store"`
	// Redis configures the Redis store.
	Redis RedisConfig `yaml:"redis"`
	// StoreUnavailable is what happens to a message when a Redis store
	// cannot be reached in time: "tag" (default: deliver it tagged
	// "Unsure, store unavailable") or "fail" (on_failure decides).
	StoreUnavailable string `yaml:"store_unavailable"`

	// Scoring parameters; nil means the classifier's default (or
	// bogofilter's, for a store imported from bogofilter).
	RobX       *float64 `yaml:"robx"`
	RobS       *float64 `yaml:"robs"`
	MinDev     *float64 `yaml:"min_dev"`
	SpamCutoff *float64 `yaml:"spam_cutoff"`
	HamCutoff  *float64 `yaml:"ham_cutoff"`
	MinSpam    *int     `yaml:"min_spam"`
	MinHam     *int     `yaml:"min_ham"`
	// Combine is "split" or "fisher" (see classifier.Params.Combine).
	Combine string `yaml:"combine"`
	// Ngram is "on" or "off" (see classifier.Params.Ngram).
	Ngram string `yaml:"ngram"`

	// MaxBytes and MaxTokens bound the tokenizer's work per message.
	MaxBytes  Size `yaml:"max_bytes"`
	MaxTokens int  `yaml:"max_tokens"`

	// MaxSize: larger messages are not classified but tagged as skipped.
	// nil means DefaultMaxSize; 0 means no limit.
	MaxSize *Size `yaml:"max_size"`

	// SkipAuthenticated: messages whose sender authenticated with SMTP
	// AUTH (the MTA's {auth_authen} macro is set) are not classified but
	// tagged as skipped. nil means true.
	SkipAuthenticated *bool `yaml:"skip_authenticated"`

	// Header is the field added to delivered mail.
	Header HeaderConfig `yaml:"header"`

	// What to do with each verdict.
	Spam   VerdictConfig `yaml:"spam"`
	Unsure VerdictConfig `yaml:"unsure"`
	Ham    VerdictConfig `yaml:"ham"`

	// Autolearn learns confidently classified messages; off by default.
	Autolearn AutolearnConfig `yaml:"autolearn"`

	// StatsInterval is how often the store's size is measured for the
	// metrics; default 1m.
	StatsInterval time.Duration `yaml:"stats_interval"`

	// Refit is how often the filter looks whether the learned messages
	// changed since the n-gram model was fitted (auto-learning, "sluice
	// train --no-refit") and fits it again if so. nil means
	// DefaultRefit; 0 turns it off ("sluice db refit" from cron).
	Refit *time.Duration `yaml:"refit"`
}

// HeaderConfig names and formats the verdict header.
type HeaderConfig struct {
	// Name is the field name; default X-Sluice-Bayes.
	Name string `yaml:"name"`
	// Format is the value, with placeholders (see Placeholders); default
	// DefaultHeaderFormat.
	Format string `yaml:"format"`
}

// VerdictConfig is what happens to a message with one verdict.
type VerdictConfig struct {
	// Action is tag, reject, tempfail, quarantine or discard.
	Action string `yaml:"action"`
	// Reply is the SMTP reply for reject and tempfail, e.g. "550 5.7.1
	// Spam (spamicity {spamicity}, queue id {queue_id})".
	Reply string `yaml:"reply"`
}

// AutolearnConfig sets the thresholds of auto-learning. A nil threshold
// turns that side off.
type AutolearnConfig struct {
	// Spam: a message classified spam with at least this spamicity is
	// learned as spam.
	Spam *float64 `yaml:"spam"`
	// Ham: a message classified ham with at most this spamicity is
	// learned as ham.
	Ham *float64 `yaml:"ham"`
}

// Defaults.
const (
	DefaultHeaderName   = "X-Sluice-Bayes"
	DefaultHeaderFormat = "{verdict}, spamicity={spamicity}, queue_id={queue_id}, version={version}"
	DefaultMaxSize      = 10 << 20
	DefaultDBName       = "bayes.db"
	defaultStatsEvery   = time.Minute
	DefaultRefit        = time.Hour
)

// Placeholders are the names a header format or reply text may use, in
// braces: {verdict} is Spam, Ham or Unsure; {spamicity} the score with six
// decimals, as bogofilter writes it, on the verdict's side of the cutoffs
// and of the autolearn threshold (printSpamicity); {queue_id} the MTA's queue id
// ("unknown" if the MTA sent none); {version} sluice's version.
var placeholders = []string{"verdict", "spamicity", "queue_id", "version"}

// Action is what the filter does with a message of one verdict.
type Action uint8

// Actions. Tag adds the header and lets the message go on.
const (
	Tag Action = iota
	Reject
	Tempfail
	Quarantine
	Discard
)

var actionNames = []string{"tag", "reject", "tempfail", "quarantine", "discard"}

func (a Action) String() string { return actionNames[a] }

// ParseAction parses an action name.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if s == n {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want %s)", s, strings.Join(actionNames, ", "))
}

// DBPath returns the store path: Config.DB, or bayes.db in stateDir.
func (c Config) DBPath(stateDir string) string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(stateDir, DefaultDBName)
}

// Params returns the classifier parameters: those of the config over the
// defaults of the store's dialect. A store imported from bogofilter
// scores with bogofilter's parameters unless the config says otherwise,
// so that verdicts stay what they were before the move. The tokenizer
// leaves out the verdict field (header.name), whatever its name.
func (c Config) Params(dialect classifier.Dialect) (classifier.Params, error) {
	p := classifier.DefaultParams()
	if dialect == classifier.DialectBogofilter {
		p = classifier.BogofilterParams()
	}
	// The classifier reads 0 as "default", so explicit zeros are
	// translated to the values it reads as zero (see classifier.Params).
	pos := func(name string, v *float64, dst *float64) error {
		if v == nil {
			return nil
		}
		if !(*v > 0) { // NaN too
			return fmt.Errorf("%s %v: must be above 0", name, *v)
		}
		*dst = *v
		return nil
	}
	if err := pos("robx", c.RobX, &p.RobX); err != nil {
		return p, err
	}
	if err := pos("robs", c.RobS, &p.RobS); err != nil {
		return p, err
	}
	if err := pos("spam_cutoff", c.SpamCutoff, &p.SpamCutoff); err != nil {
		return p, err
	}
	if c.Combine != "" {
		p.Combine = c.Combine // checked by Params.Validate
	}
	if c.Ngram != "" {
		p.Ngram = c.Ngram // checked by Params.Validate
	}
	if c.MinDev != nil {
		p.MinDev = *c.MinDev
		if p.MinDev == 0 {
			p.MinDev = 1e-12 // no token is dropped
		}
	}
	if c.HamCutoff != nil {
		p.HamCutoff = *c.HamCutoff
		if p.HamCutoff == 0 {
			p.HamCutoff = -1
		}
		if *c.HamCutoff < 0 {
			return p, fmt.Errorf("ham_cutoff %v: must not be negative", *c.HamCutoff)
		}
	}
	for _, m := range []struct {
		name string
		v    *int
		dst  *int
	}{{"min_spam", c.MinSpam, &p.MinSpam}, {"min_ham", c.MinHam, &p.MinHam}} {
		if m.v == nil {
			continue
		}
		if *m.v < 0 {
			return p, fmt.Errorf("%s %d: must not be negative", m.name, *m.v)
		}
		*m.dst = *m.v
		if *m.v == 0 {
			*m.dst = -1
		}
	}
	if c.MaxBytes < 0 || c.MaxTokens < 0 {
		return p, errors.New("max_bytes and max_tokens must not be negative")
	}
	p.Limits.MaxBytes = int(c.MaxBytes)
	p.Limits.MaxTokens = c.MaxTokens
	// The verdict field is added on delivery. A delivered message that is
	// retrained from a mailbox must give the tokens and the digest the
	// daemon saw at SMTP time, or its verdict is learned as a token and
	// it is learned a second time instead of moved. The classifier leaves
	// out the default name already, so by default nothing is added and
	// the tokens stay what they were.
	if name := c.headerName(); !p.Limits.Skips(name) {
		p.Limits.SkipFields = append(p.Limits.SkipFields, name)
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// headerName is the name of the verdict field: Header.Name or the default.
func (c Config) headerName() string {
	if c.Header.Name == "" {
		return DefaultHeaderName
	}
	return c.Header.Name
}

// settings is a checked Config, ready for use.
type settings struct {
	db            string
	maxSize       int64 // 0: no limit
	skipAuth      bool  // skip_authenticated
	headerName    string
	headerFormat  template
	actions       [3]verdictAction // by classifier.Verdict
	learnSpam     float64          // 0: off
	learnHam      float64          // -1: off
	statsInterval time.Duration
	refit         time.Duration // 0: off
	failUnavail   bool          // store_unavailable: fail
}

type verdictAction struct {
	action Action
	reply  filters.Reply // code and enhanced status for reject/tempfail
	text   template      // reply text
}

// check validates everything but the scoring parameters (which need the
// store's dialect) and fills in defaults.
func (c Config) check(stateDir string) (settings, error) {
	s := settings{db: c.DBPath(stateDir), maxSize: DefaultMaxSize, headerName: c.headerName(), statsInterval: c.StatsInterval}
	if c.MaxSize != nil {
		s.maxSize = int64(*c.MaxSize) // 0: no limit
	}
	s.skipAuth = c.SkipAuthenticated == nil || *c.SkipAuthenticated
	if s.statsInterval < 0 {
		return s, errors.New("stats_interval: must not be negative")
	}
	if s.statsInterval == 0 {
		s.statsInterval = defaultStatsEvery
	}
	if err := filters.CheckPath(c.DB); err != nil {
		return s, fmt.Errorf("db: %w", err)
	}
	if err := c.checkStore(); err != nil {
		return s, err
	}
	s.failUnavail = c.StoreUnavailable == "fail"
	// The fixed values ("Skipped, ...") have words of up to
	// fixedWordMax; header.format is checked below.
	if err := filters.CheckFieldName(s.headerName, fixedWordMax); err != nil {
		return s, fmt.Errorf("header.name: %w", err)
	}
	format := c.Header.Format
	if format == "" {
		format = DefaultHeaderFormat
	}
	var err error
	if s.headerFormat, err = parseTemplate(format); err != nil {
		if strings.HasSuffix(format, "\n") && printableASCII(strings.TrimRight(format, "\n")) == nil {
			// The one mistake behind most of these: a YAML block
			// scalar keeps its last line break unless told not to.
			return s, fmt.Errorf("header.format: ends with a line break, which a header value cannot carry; a YAML block scalar (| or >) keeps its last one: write |- or >-")
		}
		return s, fmt.Errorf("header.format: %w", err)
	}
	if err := checkLineLimit(s.headerName, s.headerFormat); err != nil {
		return s, err
	}
	for _, v := range []struct {
		key     string
		cfg     VerdictConfig
		verdict classifier.Verdict
		def     Action
	}{
		{"spam", c.Spam, classifier.VerdictSpam, Reject},
		{"unsure", c.Unsure, classifier.VerdictUnsure, Tag},
		{"ham", c.Ham, classifier.VerdictHam, Tag},
	} {
		va, err := v.cfg.check(v.verdict, v.def)
		if err != nil {
			return s, fmt.Errorf("%s.%w", v.key, err)
		}
		s.actions[v.verdict] = va
	}
	// The scoring parameters are checked against the store's dialect
	// when it is open, whose defaults the options change (a store
	// imported from bogofilter has cutoffs 0.99 and 0.45); checking them
	// now keeps a bad value from creating a store file first, so a value
	// that neither dialect takes is refused here.
	if _, err := c.Params(classifier.DialectSluice); err != nil {
		if _, berr := c.Params(classifier.DialectBogofilter); berr != nil {
			return s, err
		}
	}
	s.learnHam = -1
	if a := c.Autolearn.Spam; a != nil {
		// Written as the range allowed, so that NaN (YAML's .nan),
		// which no comparison holds for, is out of it rather than a
		// threshold that silently learns nothing.
		if !(*a > 0 && *a <= 1) {
			return s, fmt.Errorf("autolearn.spam %v: must be in (0,1]", *a)
		}
		s.learnSpam = *a
	}
	if a := c.Autolearn.Ham; a != nil {
		if !(*a >= 0 && *a < 1) {
			return s, fmt.Errorf("autolearn.ham %v: must be in [0,1)", *a)
		}
		s.learnHam = *a
	}
	s.refit = DefaultRefit
	if r := c.Refit; r != nil {
		if *r < 0 {
			return s, errors.New("refit: must not be negative (0s turns it off)")
		}
		s.refit = *r
	}
	return s, nil
}

// checkStore validates the choice of store and its options.
func (c Config) checkStore() error {
	switch c.StoreUnavailable {
	case "", "tag", "fail":
	default:
		return fmt.Errorf("store_unavailable %q: want tag or fail", c.StoreUnavailable)
	}
	switch c.Store {
	case "", StoreBolt:
		if c.Redis.set() {
			return errors.New("redis: options of the Redis store need store: redis")
		}
		return nil
	case StoreRedis:
		if c.DB != "" {
			return errors.New("db: a file name, but store is redis")
		}
		return c.Redis.check()
	}
	return fmt.Errorf("store %q: want %s or %s", c.Store, StoreBolt, StoreRedis)
}

func (vc VerdictConfig) check(v classifier.Verdict, def Action) (verdictAction, error) {
	va := verdictAction{action: def}
	if vc.Action != "" {
		a, err := ParseAction(vc.Action)
		if err != nil {
			return va, fmt.Errorf("action: %w", err)
		}
		va.action = a
	}
	reply := vc.Reply
	switch va.action {
	case Reject:
		if reply == "" {
			reply = "550 5.7.1 Message classified as " + v.String()
		}
	case Tempfail:
		if reply == "" {
			reply = "451 4.7.1 Message classified as " + v.String() + ", try again later"
		}
	default:
		if reply != "" {
			return va, fmt.Errorf("reply: only reject and tempfail send a reply, the action is %s", va.action)
		}
		return va, nil
	}
	// Its text's length is checked below, on what it renders to: the
	// text as written counts "{spamicity}" as 11 characters, where 8
	// are sent.
	r, err := filters.ParseReplyTemplate(reply)
	if err != nil {
		return va, fmt.Errorf("reply: %w", err)
	}
	if (va.action == Reject) != (r.Code >= 500) {
		return va, fmt.Errorf("reply: %q does not fit action %s (reject needs 5xx, tempfail 4xx)", reply, va.action)
	}
	if va.text, err = parseTemplate(r.Text); err != nil {
		return va, fmt.Errorf("reply: %w", err)
	}
	// Checked with the placeholders filled in, as the reply is sent:
	// a text that may come out longer than a reply may be would lose
	// its end at run time.
	if n, fields := va.text.longest(); n > maxReplyText && len(fields) == 0 {
		return va, fmt.Errorf("reply: %q: its text is %d characters long, at most %d allowed", reply, n, maxReplyText)
	} else if n > maxReplyText {
		return va, fmt.Errorf("reply: %q: its text comes to %d characters with its placeholders at their longest (%s), at most %d allowed", reply, n, strings.Join(fields, ", "), maxReplyText)
	}
	va.reply = r
	return va, nil
}

// Size is a byte count written as a number or with a unit, as elsewhere in
// the configuration: 1048576, "512KiB", "1MiB", "10MB".
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: bad size %q: want e.g. 1048576, \"512KiB\" or \"1MiB\"", n.Line, n.Value)
	}
	*s = v
	return nil
}

// ParseSize parses a size such as "1MiB".
func ParseSize(s string) (Size, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return Size(n * mult), nil
}
