// Package bayes is the Bayesian spam filter of the pipeline: at end of
// message it scores the message with package classifier against a token
// store, adds a verdict header (by default "X-Sluice-Bayes: Spam,
// spamicity=0.999871, queue_id=..., version=...") and applies the action
// configured for the verdict: tag, reject, tempfail, quarantine or
// discard.
//
// The store is a classifier.BoltStore, opened once when the filter is
// built. The daemon only reads it between messages; "sluice train" and
// auto-learning write through the store's turnstile (see package
// classifier), so training works while the daemon runs.
//
// Metrics go through Observer, which the daemon's metrics implement; this
// package does not know Prometheus.
package bayes

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
)

// Observer is told what the filter does, for metrics. It must be safe for
// concurrent use. filter is the filter's name in the pipeline.
type Observer interface {
	// BayesClassified reports one classified message: its verdict
	// ("spam", "ham" or "unsure"), spamicity, and the time the
	// classification took.
	BayesClassified(filter, verdict string, spamicity float64, took time.Duration)
	// BayesSkipped reports a message not classified because of its size.
	BayesSkipped(filter string)
	// BayesAutolearned reports a message auto-learned as class ("spam"
	// or "ham").
	BayesAutolearned(filter, class string)
	// BayesStore reports the size of the store, measured every
	// stats_interval.
	BayesStore(filter string, st classifier.Stats)
}

// Factory returns the filters.Factory for type "bayes". version is
// sluice's version, written into the header.
func Factory(version string) filters.Factory {
	return func(env filters.Env, decode func(v any) error) (filters.Filter, error) {
		var cfg Config
		if err := decode(&cfg); err != nil {
			return nil, err
		}
		return Open(env, cfg, version)
	}
}

// Open checks cfg, opens the store it names, and returns the filter.
func Open(env filters.Env, cfg Config, version string) (*Filter, error) {
	s, err := cfg.check(env.StateDir)
	if err != nil {
		return nil, err
	}
	opts := classifier.BoltOptions{}
	if env.Logger != nil {
		opts.Logger = env.Logger
	}
	st, err := classifier.OpenBolt(s.db, opts)
	if err != nil {
		return nil, fmt.Errorf("db: %w", err)
	}
	f, err := New(env, cfg, version, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return f, nil
}

// Filter is the Bayes filter. It implements filters.Filter and
// filters.Closer.
type Filter struct {
	name    string
	version string
	s       settings
	c       *classifier.Classifier
	store   classifier.Store
	obs     Observer
	log     *slog.Logger

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	done      chan struct{}
}

var (
	_ filters.Filter = (*Filter)(nil)
	_ filters.Closer = (*Filter)(nil)
)

// New returns a filter on an open store, which it takes over: Close closes
// it. cfg.DB is not used.
func New(env filters.Env, cfg Config, version string, st classifier.Store) (*Filter, error) {
	s, err := cfg.check(env.StateDir)
	if err != nil {
		return nil, err
	}
	c, err := NewClassifier(context.Background(), st, cfg)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		name:    env.Name,
		version: version,
		s:       s,
		c:       c,
		store:   st,
		log:     env.Logger,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if f.name == "" {
		f.name = "bayes"
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.obs, _ = env.Observer.(Observer)
	if f.obs == nil {
		close(f.done)
		return f, nil
	}
	go f.measureStore()
	return f, nil
}

// NewClassifier returns a classifier on st with the parameters of cfg
// over the defaults of the store's dialect (see Config.Params). The CLI
// uses it too, so that "sluice classify" agrees with the daemon.
func NewClassifier(ctx context.Context, st classifier.Store, cfg Config) (*classifier.Classifier, error) {
	d, err := st.Meta(ctx, classifier.MetaDialect)
	if err != nil {
		return nil, fmt.Errorf("read store dialect: %w", err)
	}
	dialect, err := classifier.ParseDialect(d)
	if err != nil {
		return nil, fmt.Errorf("store dialect: %w", err)
	}
	p, err := cfg.Params(dialect)
	if err != nil {
		return nil, err
	}
	c, err := classifier.NewForStore(ctx, st, p)
	if err != nil {
		return nil, fmt.Errorf("classifier: %w", err)
	}
	return c, nil
}

// Classifier returns the classifier the filter uses.
func (f *Filter) Classifier() *classifier.Classifier { return f.c }

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter: the whole message, at end of message.
func (f *Filter) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM), Headers: true, Body: true}
}

// Close stops the store measurements and closes the store.
func (f *Filter) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.done
		if err := f.store.Close(); err != nil {
			f.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return f.closeErr
}

// measureStore reports the store's size now and every stats interval.
// Stats walks every token, so it runs on its own schedule rather than
// per message or per scrape.
func (f *Filter) measureStore() {
	defer close(f.done)
	t := time.NewTicker(f.s.statsInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), f.s.statsInterval)
		st, err := f.store.Stats(ctx)
		cancel()
		if err != nil {
			f.log.Warn("bayes: measuring the store failed", "err", err)
		} else {
			f.obs.BayesStore(f.name, st)
		}
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
	}
}

// Check implements filters.Filter.
func (f *Filter) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	if stage != filters.StageEOM {
		return filters.Verdict{}, nil
	}
	if m.Body != nil && m.Body.Err() != nil {
		// Scoring part of a message could pass spam whose payload sits
		// in the missing part; let the failure policy decide.
		return filters.Verdict{}, fmt.Errorf("message body incomplete: %w", m.Body.Err())
	}
	// The message as the MTA will deliver it, without any verdict field
	// of our name it came with: a sender must not be able to pass off
	// its own verdict, and it is replaced below.
	own := *m
	own.Headers = nil
	var forged []int // 1-based indexes among fields of our name
	n := 0
	for _, h := range m.Headers {
		if strings.EqualFold(h.Name, f.s.headerName) {
			n++
			forged = append(forged, n)
			continue
		}
		own.Headers = append(own.Headers, h)
	}
	size := headerSize(own.Headers)
	if m.Body != nil {
		size += m.Body.Size()
	}

	values := map[string]string{"queue_id": m.QueueID, "version": f.version}
	if values["queue_id"] == "" {
		values["queue_id"] = "unknown"
	}
	if f.s.maxSize > 0 && size > f.s.maxSize {
		if f.obs != nil {
			f.obs.BayesSkipped(f.name)
		}
		value := fmt.Sprintf("Skipped, size=%d, max_size=%d, queue_id=%s, version=%s", size, f.s.maxSize, asciiOnly(values["queue_id"]), asciiOnly(f.version))
		f.log.Debug("bayes: message too large, not classified", "queue_id", m.QueueID, "size", size, "max_size", f.s.maxSize)
		return filters.Verdict{Reason: "bayes: skipped, message larger than max_size", Edits: f.header(forged, value)}, nil
	}

	start := time.Now()
	res, err := f.c.Classify(ctx, own.Raw())
	took := time.Since(start)
	if err != nil {
		return filters.Verdict{}, err
	}
	if f.obs != nil {
		f.obs.BayesClassified(f.name, res.Verdict.String(), res.Spamicity, took)
	}
	values["verdict"] = verdictWord(res.Verdict)
	values["spamicity"] = strconv.FormatFloat(res.Spamicity, 'f', 6, 64)
	reason := "bayes: " + res.Verdict.String() + ", spamicity=" + values["spamicity"]
	if res.Reason != "" {
		reason += ": " + res.Reason
	}
	value := f.s.headerFormat.render(values)
	if class := f.autolearnClass(res); class != classifier.None {
		if f.autolearn(ctx, &own, class) {
			value += ", autolearn=" + class.String()
		}
	}
	f.log.Debug("bayes: classified", "queue_id", m.QueueID, "verdict", res.Verdict.String(), "spamicity", res.Spamicity,
		"tokens", res.Tokens, "used", res.Used, "truncated", res.Truncated, "reason", res.Reason, "took", took)

	va := f.s.actions[res.Verdict]
	switch va.action {
	case Reject, Tempfail:
		r := va.reply
		r.Text = va.text.render(values)
		if len(r.Text) > maxReplyText {
			r.Text = r.Text[:maxReplyText]
		}
		a := filters.Reject
		if va.action == Tempfail {
			a = filters.Tempfail
		}
		return filters.Verdict{Action: a, Reply: &r, Reason: reason}, nil
	case Discard:
		return filters.Verdict{Action: filters.Discard, Reason: reason}, nil
	case Quarantine:
		return filters.Verdict{Action: filters.Quarantine, Reason: reason, Edits: f.header(forged, value)}, nil
	}
	return filters.Verdict{Reason: reason, Edits: f.header(forged, value)}, nil
}

// maxReplyText keeps a rendered reply inside what filters.Reply allows.
const maxReplyText = 400

// header returns the edits that delete the fields of our name the message
// came with and add ours. Deleting from the last to the first keeps the
// indexes of the ones still to delete valid.
func (f *Filter) header(forged []int, value string) []filters.HeaderEdit {
	var edits []filters.HeaderEdit
	for i := len(forged) - 1; i >= 0; i-- {
		edits = append(edits, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: f.s.headerName, Index: forged[i]})
	}
	return append(edits, filters.HeaderEdit{Kind: filters.AddHeader, Name: f.s.headerName, Value: fold(f.s.headerName, value)})
}

// autolearnClass says whether res is confident enough to learn from.
// Only a spam verdict is learned as spam and only a ham verdict as ham, so
// an unsure verdict (including "not enough training") is never learned.
func (f *Filter) autolearnClass(res classifier.Result) classifier.Class {
	switch {
	case f.s.learnSpam > 0 && res.Verdict == classifier.VerdictSpam && res.Spamicity >= f.s.learnSpam:
		return classifier.Spam
	case f.s.learnHam >= 0 && res.Verdict == classifier.VerdictHam && res.Spamicity <= f.s.learnHam:
		return classifier.Ham
	}
	return classifier.None
}

// autolearn learns the message and reports whether the store changed. A
// failure is logged, not returned: the message was classified, and
// learning is a bonus.
func (f *Filter) autolearn(ctx context.Context, m *filters.Message, class classifier.Class) bool {
	out, err := f.c.Train(ctx, m.Raw(), class)
	if err != nil {
		f.log.Warn("bayes: auto-learning failed", "queue_id", m.QueueID, "class", class.String(), "err", err)
		return false
	}
	if out != classifier.Learned && out != classifier.Moved {
		return false
	}
	if f.obs != nil {
		f.obs.BayesAutolearned(f.name, class.String())
	}
	return true
}

// verdictWord is the verdict as the header writes it, capitalised as
// bogofilter's X-Bogosity does.
func verdictWord(v classifier.Verdict) string {
	switch v {
	case classifier.VerdictSpam:
		return "Spam"
	case classifier.VerdictHam:
		return "Ham"
	}
	return "Unsure"
}

// headerSize is the size of the header block as Message.Raw writes it.
func headerSize(hs []filters.Header) int64 {
	n := int64(2)
	for _, h := range hs {
		n += int64(len(h.Name) + 2 + len(h.Value) + 2)
	}
	return n
}
