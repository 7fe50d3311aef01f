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
// classifier), so training works while the daemon runs. With store: redis
// it is a classifier.RedisStore that every sluice of a site shares; when
// Redis cannot be reached in time, messages pass tagged "Unsure, store
// unavailable" (see Check).
//
// Metrics go through Observer, which the daemon's metrics implement; this
// package does not know Prometheus.
package bayes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/trustedlink"
)

// Observer is told what the filter does, for metrics. It must be safe for
// concurrent use. filter is the filter's name in the pipeline.
type Observer interface {
	// BayesClassified reports one classified message: its verdict
	// ("spam", "ham" or "unsure"), spamicity, and the time the
	// classification took.
	BayesClassified(filter, verdict string, spamicity float64, took time.Duration)
	// BayesSkipped reports a message not classified, and why: SkipSize
	// (larger than max_size) or SkipAuthenticated (the sender
	// authenticated, and skip_authenticated is on).
	BayesSkipped(filter, reason string)
	// BayesAutolearned reports a message auto-learned as class ("spam"
	// or "ham").
	BayesAutolearned(filter, class string)
	// BayesAutolearnFailed reports a message that should have been
	// auto-learned as class but could not be: the store failed (a full
	// disk, Redis down, a write slower than the filter's time). The
	// failure is only logged otherwise, since the message still gets its
	// verdict, so this is what an alert can see.
	BayesAutolearnFailed(filter, class string)
	// BayesStore reports the size of the store, measured every
	// stats_interval.
	BayesStore(filter string, st classifier.Stats)
	// BayesNgram reports, with the store's size, how many spam and ham
	// messages the n-gram model in use was fitted on (0 and 0 when none
	// is averaged in).
	BayesNgram(filter string, spam, ham int)
	// BayesImportIncomplete reports, with the store's size, whether the
	// store holds part of an import that has not finished (see
	// classifier.MetaImporting).
	BayesImportIncomplete(filter string, incomplete bool)
	// BayesFilter reports a filter of that name built (on) and closed
	// (off), so that the gauges of a name no filter has any more can go.
	// A reload builds the new filter before it closes the old one.
	BayesFilter(filter string, on bool)
}

// Reasons for BayesSkipped.
const (
	SkipSize          = "size"
	SkipAuthenticated = "authenticated"
)

// StoreObserver is told about a network (Redis) store, for metrics. The
// daemon's metrics implement it beside Observer. It must be safe for
// concurrent use.
type StoreObserver interface {
	// BayesStoreUnavailable reports a message passed unclassified
	// because the store could not be reached in time.
	BayesStoreUnavailable(filter string)
	// BayesRedisRoundTrip reports one round trip to Redis: the store
	// operation ("lookup", "learn", ...), its time, and its error.
	BayesRedisRoundTrip(filter, op string, took time.Duration, err error)
	// BayesRedisPool reports the connection pool: Total and Idle as they
	// are now, Hits, Misses and Timeouts as increments since the last
	// report.
	BayesRedisPool(filter string, st classifier.RedisPoolStats)
}

// PoolObserver is told, beside StoreObserver, when a filter's connection
// pool (a Redis store's) opens and closes, so that the pool's gauges can
// go once no filter of that name has a pool: a reload may keep the
// filter's name and move it from Redis to a bbolt file. It must be safe
// for concurrent use.
type PoolObserver interface {
	// BayesRedisPoolOpen reports the pool of a filter of that name
	// opened (open) or closed. A closed pool reports nothing more.
	BayesRedisPoolOpen(filter string, open bool)
}

// roundTrips passes a store's round trips to a StoreObserver under the
// filter's name.
type roundTrips struct {
	obs    StoreObserver
	filter string
}

func (r roundTrips) RedisRoundTrip(op string, took time.Duration, err error) {
	r.obs.BayesRedisRoundTrip(r.filter, op, took, err)
}

// poolStatser is a store with a connection pool (Redis).
type poolStatser interface {
	PoolStats() classifier.RedisPoolStats
}

// sizer is a store that can tell its size without reading every token
// (Redis); Stats is used otherwise.
type sizer interface {
	Size(ctx context.Context) (classifier.Stats, error)
}

// poolStatsEvery is how often the pool of a Redis store is reported.
const poolStatsEvery = 10 * time.Second

// unavailableLogEvery spaces the warnings about an unreachable store: at
// a few hundred messages a second one line per message would bury the
// log; the metric counts them all.
const unavailableLogEvery = 10 * time.Second

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
	if env.CheckOnly {
		return checkOnly(env, cfg, s)
	}
	var rt classifier.RedisObserver
	if so, ok := env.Observer.(StoreObserver); ok {
		rt = roundTrips{obs: so, filter: filterName(env)}
	}
	st, err := cfg.OpenStore(env.StateDir, env.Logger, rt)
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

// OpenReadOnly is Open for a filter that writes nothing, for "sluice
// test": the store is opened read-only (see Config.OpenStoreReadOnly; a
// bbolt store must exist), the n-gram model is never fitted again, and no
// message is auto-learned. A message that auto-learning would try to
// learn is told to env.Observer, if it is a WouldLearnObserver, with the
// class the store holds it in already, and its header lacks the
// autolearn= note; the autolearn thresholds still place the
// printed spamicity as the daemon prints it (see printSpamicity). A user
// who may only read the store, a store on a read-only file system, and a
// daemon writing the store meanwhile are all fine with it: nothing is
// created, not even the lock file, and the writers' lock is never taken.
func OpenReadOnly(env filters.Env, cfg Config, version string) (*Filter, error) {
	if _, err := cfg.check(env.StateDir); err != nil {
		return nil, err
	}
	st, err := cfg.OpenStoreReadOnly(env.StateDir)
	if err != nil {
		return nil, fmt.Errorf("db: %w", err)
	}
	f, err := newFilter(env, cfg, version, st, true)
	if err != nil {
		st.Close()
		return nil, err
	}
	return f, nil
}

// WouldLearnObserver is told, by a filter built with OpenReadOnly, of each
// message that auto-learning would try to learn, and as which class
// ("spam" or "ham"). learnedAs is the class the store has learned the
// message in already ("spam" or "ham"), "" if it has not: only then would
// the daemon learn it, and note that in the header. A message learned in
// the same class is not learned again, and one learned in the other
// class stays there (auto-learning never moves a message; see
// classifier.Classifier.Autolearn). learnedAs is "" too when the store
// could not be asked, which is logged as a warning.
type WouldLearnObserver interface {
	BayesWouldAutolearn(filter, class, learnedAs string)
}

// checkOnly checks that the store cfg names could be opened, creating
// nothing, and returns a stand-in filter that is never run (see
// filters.Env.CheckOnly). A Redis store is connected to and let go.
//
// The scoring parameters are checked against the store's dialect, as the
// daemon checks them (see NewClassifier), where it can be read: a store
// imported from bogofilter scores with bogofilter's cutoffs.
func checkOnly(env filters.Env, cfg Config, s settings) (*Filter, error) {
	dialect, known := classifier.DialectSluice, false
	if cfg.Store == StoreRedis {
		st, err := cfg.OpenStore(env.StateDir, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("db: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, err := st.Meta(ctx, classifier.MetaDialect)
		cancel()
		st.Close()
		if err != nil {
			return nil, fmt.Errorf("db: read store dialect: %w", err)
		}
		if dialect, err = classifier.ParseDialect(d); err != nil {
			return nil, fmt.Errorf("db: store dialect: %w", err)
		}
		known = true
	} else {
		var err error
		if dialect, known, err = checkBoltAccess(s.db); err != nil {
			return nil, fmt.Errorf("db: %w", err)
		}
	}
	if known {
		if _, err := cfg.Params(dialect); err != nil {
			return nil, err
		}
	}
	return &Filter{name: filterName(env), cfg: cfg, s: s}, nil
}

// checkBoltAccess checks, leaving nothing behind, that this user may
// open the bbolt store at path as the daemon does: the store and its lock
// file read-write where they exist, the store a bbolt file (see
// classifier.CheckBolt), and a file created in their directory where one
// is still to be made (a probe, removed at once).
// Run as the daemon's user, this finds a store the daemon could not open.
// It returns the store's dialect, if known (see
// classifier.CheckBoltDialect).
func checkBoltAccess(path string) (classifier.Dialect, bool, error) {
	for _, p := range []string{path, path + ".lock"} {
		// The daemon follows a symbolic link there only if root or
		// its user owns it (see classifier.OpenBolt).
		if link, err := os.Lstat(p); err == nil && link.Mode()&fs.ModeSymlink != 0 {
			if err := trustedlink.Check(p, link); err != nil {
				return "", false, err
			}
		}
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			dir := filepath.Dir(p)
			probe, err := os.CreateTemp(dir, ".sluice-check-*")
			if err != nil {
				// The probe's random name is nothing the reader
				// knows of: name the directory.
				if fi, serr := os.Stat(dir); serr != nil || !fi.IsDir() {
					return "", false, fmt.Errorf("%s cannot be created: directory %s does not exist (sluice does not create it)", p, dir)
				}
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				return "", false, fmt.Errorf("%s cannot be created: directory %s: %w", p, dir, err)
			}
			probe.Close()
			os.Remove(probe.Name())
			continue
		}
		if err != nil {
			return "", false, err
		}
		if !fi.Mode().IsRegular() {
			return "", false, fmt.Errorf("%s is not a regular file", p)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return "", false, err
		}
		f.Close()
	}
	// Writable is not enough: the daemon refuses a file that is no
	// store (bogofilter's own wordlist.db given as db, say), and so
	// must the check, or the next start or reload fails after it passed.
	return classifier.CheckBoltDialect(path, time.Second)
}

// Filter is the Bayes filter. It implements filters.Filter and
// filters.Closer.
type Filter struct {
	name    string
	version string
	cfg     Config
	s       settings
	// c is nil until the store could be read: a Redis store down when
	// the filter is built is read again for each message (classifier).
	c     atomic.Pointer[classifier.Classifier]
	store classifier.Store
	// storeName names the store in logs: its file, or its Redis URL
	// without credentials.
	storeName string
	obs       Observer
	sobs      StoreObserver
	// pobs hears of the store's pool opened and closed; nil when the
	// store has none.
	pobs PoolObserver
	log  *slog.Logger
	// lastWarn is when an unreachable store was last logged (UnixNano).
	lastWarn atomic.Int64
	lastPool classifier.RedisPoolStats // used by measureStore only
	// importSeen is the store's import mark (classifier.MetaImporting)
	// as last read, and what became of the import then, nil before it
	// could be read, so that an import stopped while the filter runs is
	// logged once, not at every measurement of the store.
	importMu   sync.Mutex
	importSeen *importSeen

	// retireMu orders Retire against the reports of the store's state
	// (size, tokens, import mark, n-gram model): once Retire returned,
	// none comes from this filter.
	retireMu sync.Mutex
	retired  bool

	closeOnce sync.Once
	closeErr  error
	stop      chan struct{}
	done      chan struct{} // measureStore ended
	refitDone chan struct{} // refitLoop ended
	// bg is the context of the filter's own work, the refit; Close
	// cancels it.
	bg       context.Context
	cancelBg context.CancelFunc
	// readOnly: built by OpenReadOnly, the filter writes nothing; would
	// hears what it would have auto-learned (nil: nobody listens).
	readOnly bool
	would    WouldLearnObserver
}

var (
	_ filters.Filter = (*Filter)(nil)
	_ filters.Closer = (*Filter)(nil)
)

// New returns a filter on an open store, which it takes over: Close closes
// it. cfg.DB is not used.
func New(env filters.Env, cfg Config, version string, st classifier.Store) (*Filter, error) {
	return newFilter(env, cfg, version, st, false)
}

// newFilter is New; with readOnly the filter never writes the store (see
// OpenReadOnly).
func newFilter(env filters.Env, cfg Config, version string, st classifier.Store, readOnly bool) (*Filter, error) {
	s, err := cfg.check(env.StateDir)
	if err != nil {
		return nil, err
	}
	f := &Filter{
		name:      filterName(env),
		version:   version,
		cfg:       cfg,
		s:         s,
		store:     st,
		storeName: cfg.StoreName(env.StateDir),
		log:       env.Logger,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		refitDone: make(chan struct{}),
		readOnly:  readOnly,
	}
	f.bg, f.cancelBg = context.WithCancel(context.Background())
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := NewClassifier(ctx, st, cfg)
	switch {
	case errors.Is(err, classifier.ErrUnavailable):
		// Starting (or reloading) while Redis is down must not stop
		// the daemon: messages pass tagged until Redis answers.
		f.log.Warn("bayes: store unavailable, messages pass unclassified until it answers", "err", err)
	case err != nil:
		return nil, err
	default:
		// Read the n-gram model now, so that the first message after a
		// start or reload does not wait for it. A model that cannot be
		// read is tried again later; meanwhile messages are scored on
		// the token counts alone.
		if err := c.LoadModel(ctx); err != nil {
			f.log.Warn("bayes: n-gram model not read, scoring on token counts until it is", "err", err)
		}
		f.warnIncompleteImport(ctx)
		f.c.Store(c)
	}
	f.obs, _ = env.Observer.(Observer)
	f.sobs, _ = env.Observer.(StoreObserver)
	f.would, _ = env.Observer.(WouldLearnObserver)
	if _, ok := st.(poolStatser); ok {
		if f.pobs, _ = env.Observer.(PoolObserver); f.pobs != nil {
			f.pobs.BayesRedisPoolOpen(f.name, true)
		}
	}
	// A fit writes the model into the store: a filter that writes
	// nothing leaves it to the daemon or "sluice db refit".
	if f.s.refit > 0 && st != nil && !readOnly {
		go f.refitLoop()
	} else {
		close(f.refitDone)
	}
	if f.obs == nil {
		close(f.done)
		return f, nil
	}
	f.obs.BayesFilter(f.name, true)
	go f.measureStore()
	return f, nil
}

// filterName is the filter's name in the pipeline, "bayes" if unnamed.
func filterName(env filters.Env) string {
	if env.Name == "" {
		return "bayes"
	}
	return env.Name
}

// classifier returns the classifier, building it first if the store could
// not be read before. Concurrent messages may each try; the first to
// succeed wins, and none waits for another's attempt.
func (f *Filter) classifier(ctx context.Context) (*classifier.Classifier, error) {
	if c := f.c.Load(); c != nil {
		return c, nil
	}
	c, err := NewClassifier(ctx, f.store, f.cfg)
	if err != nil {
		return nil, err
	}
	if f.c.CompareAndSwap(nil, c) {
		f.warnIncompleteImport(ctx)
	}
	return f.c.Load(), nil
}

// warnIncompleteImport is checkImport for a filter being built (start and
// reload) or whose store has just answered for the first time.
func (f *Filter) warnIncompleteImport(ctx context.Context) {
	if _, err := f.checkImport(ctx); err != nil {
		f.log.Warn("bayes: could not check the store for an import that did not finish", "db", f.storeName, "err", err)
	}
}

// importSeen is what checkImport last read.
type importSeen struct {
	mark  classifier.ImportMark
	state classifier.ImportState
}

// checkImport reads the store's import mark and reports whether the store
// holds part of an import that has not finished (see
// classifier.MetaImporting): its counts are part of a word list, so
// verdicts are off until the import finishes or, if it was stopped, the
// store is replaced. A mark that appears, or changes (another import),
// is logged as a warning, and so is an import whose process is found gone
// (classifier.ImportMark.State): it will never finish now. A mark that
// goes (only a whole import removes it) is logged as news. The first read
// of a filter logs a mark that is there, so that each start and reload
// says it again. The filter goes on all the same, as it does while the
// store is unavailable: refusing to start would stop the mail, and the
// store is marked so while an import into it runs as well.
func (f *Filter) checkImport(ctx context.Context) (bool, error) {
	m, err := classifier.IncompleteImport(ctx, f.store)
	if err != nil {
		return false, err
	}
	now := importSeen{mark: m}
	if m.Began != "" {
		now.state = m.State()
	}
	f.importMu.Lock()
	defer f.importMu.Unlock()
	prev := f.importSeen
	f.importSeen = &now
	switch {
	case prev != nil && *prev == now:
	case m.Began != "":
		attrs := []any{"db", f.storeName, "import_began", m.Began, "import_state", now.state.String()}
		if m.PID != 0 {
			attrs = append(attrs, "import_pid", m.PID, "import_host", m.Host)
		}
		way := "its counts are wrong and verdicts may be off until it is replaced by a whole import (sluice db import --db NEWFILE, then point db at NEWFILE)"
		if now.state == classifier.ImportRunning {
			way = "verdicts may be off until it finishes"
		}
		f.log.Warn("bayes: the store holds part of an import that has not finished ("+m.Progress()+"); "+way, attrs...)
	case prev != nil:
		f.log.Info("bayes: the import into the store finished", "db", f.storeName, "import_began", prev.mark.Began)
	}
	return m.Began != "", nil
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

// Classifier returns the classifier the filter uses, nil while the store
// has not answered yet.
func (f *Filter) Classifier() *classifier.Classifier { return f.c.Load() }

// Name implements filters.Filter.
func (f *Filter) Name() string { return f.name }

// Needs implements filters.Filter: the header at the end of the header
// block, to delete forged verdict fields (see Check), and the whole
// message at end of message, to classify it.
// OwnedFields implements filters.FieldOwner: the verdict field.
func (f *Filter) OwnedFields() []string { return []string{f.s.headerName} }

func (f *Filter) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageHeaders, filters.StageEOM), Headers: true, Body: true}
}

// Close stops the store measurements and closes the store.
func (f *Filter) Close() error {
	if f.store == nil {
		return nil // built only to check the options
	}
	f.closeOnce.Do(func() {
		close(f.stop)
		f.cancelBg() // a refit under way stops
		<-f.done
		<-f.refitDone
		// After measureStore, the last to report.
		if f.pobs != nil {
			f.pobs.BayesRedisPoolOpen(f.name, false)
		}
		if f.obs != nil {
			f.obs.BayesFilter(f.name, false)
		}
		if err := f.store.Close(); err != nil {
			f.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return f.closeErr
}

// measureStore reports the store's size now and every stats interval.
// Stats walks every token, so it runs on its own schedule rather than
// per message or per scrape.
// A Redis store is measured by Size, which does not read every token, and
// its connection pool every poolStatsEvery.
func (f *Filter) measureStore() {
	defer close(f.done)
	t := time.NewTicker(f.s.statsInterval)
	defer t.Stop()
	var poolTick <-chan time.Time
	ps, _ := f.store.(poolStatser)
	if ps != nil && f.sobs != nil {
		pt := time.NewTicker(poolStatsEvery)
		defer pt.Stop()
		poolTick = pt.C
		f.reportPool(ps)
	}
	measure := f.store.Stats
	if sz, ok := f.store.(sizer); ok {
		measure = sz.Size
	}
	for {
		// A retired filter's store is no longer the one its name stands
		// for (see Retire): it measures nothing more, and only its
		// pool's counters, which add up, are still reported.
		if !f.isRetired() && !f.measureOnce(measure) {
			return // Close
		}
		for wait := true; wait; {
			select {
			case <-f.stop:
				return
			case <-poolTick:
				f.reportPool(ps)
			case <-t.C:
				wait = false
			}
		}
		// A tick that came during a slow measurement is as ready as
		// the stop: Close comes first.
		select {
		case <-f.stop:
			return
		default:
		}
	}
}

// measureOnce measures the store and reports its state: size, import
// mark and n-gram model. It returns false when Close stopped it.
func (f *Filter) measureOnce(measure func(context.Context) (classifier.Stats, error)) bool {
	// Under bg, which Close cancels: a measurement of a store that
	// does not answer must not hold Close until the interval ends.
	ctx, cancel := context.WithTimeout(f.bg, f.s.statsInterval)
	st, err := measure(ctx)
	switch {
	case f.bg.Err() != nil:
		cancel()
		return false // Close
	case err != nil:
		f.log.Warn("bayes: measuring the store failed", "err", err)
	default:
		f.reportState(func() { f.obs.BayesStore(f.name, st) })
		// An import into the store may be stopped, or begun, while
		// the filter runs; start and reload are not the only times
		// to look. A store that cannot be measured was logged above.
		if incomplete, err := f.checkImport(ctx); err != nil {
			f.log.Warn("bayes: could not check the store for an import that did not finish", "db", f.storeName, "err", err)
		} else {
			f.reportState(func() { f.obs.BayesImportIncomplete(f.name, incomplete) })
		}
	}
	cancel()
	if c := f.c.Load(); c != nil {
		if err := c.ModelErr(); err != nil {
			f.log.Warn("bayes: reading the n-gram model failed; the one read before stays in use", "err", err)
		}
		spam, ham := 0, 0
		if m := c.Model(); m != nil {
			spam, ham = m.Spam, m.Ham
		}
		f.reportState(func() { f.obs.BayesNgram(f.name, spam, ham) })
	}
	return true
}

// Retire implements filters.Retirer. A reload built the filter of the
// new configuration under the same name, and that filter now reports the
// state of its store (which a reload may have changed: another file, or
// Redis instead of a file) into the same series; this one, serving the
// connections opened before the reload until Close, would overwrite it
// with its own store's at each measurement. So it stops measuring.
func (f *Filter) Retire() {
	f.retireMu.Lock()
	defer f.retireMu.Unlock()
	f.retired = true
}

func (f *Filter) isRetired() bool {
	f.retireMu.Lock()
	defer f.retireMu.Unlock()
	return f.retired
}

// reportState runs report, a report of the store's state, unless the
// filter is retired: under retireMu, so that none comes after Retire.
func (f *Filter) reportState(report func()) {
	f.retireMu.Lock()
	defer f.retireMu.Unlock()
	if !f.retired {
		report()
	}
}

// refitLoop looks every refit interval whether the learned messages
// changed since the n-gram model was fitted, and fits it again if they
// did: what the daemon auto-learns, and what "sluice train --no-refit"
// learned, reaches the model and not only the token counts, without a
// cron job ("sluice train" without --no-refit fits the model itself; see
// classifier.Refit). The look is one read of two numbers. The fit runs
// here, beside the mail: it holds every learned message's features while
// it fits (about 3.5 kB each, of at most 100,000 messages) and keeps the
// cores busy for about 2 s per 12,000 learned messages. Classifiers take
// the new model with their next lookup. Daemons sharing a Redis store
// each look; the first to fit makes the model current for the others,
// and two fitting at once are safe (the store keeps the model of the
// latest read, see classifier.Store.SetModel).
func (f *Filter) refitLoop() {
	defer close(f.refitDone)
	t := time.NewTicker(f.s.refit)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		c := f.c.Load()
		if c == nil || !c.NgramOn() || f.importIncomplete() {
			// Not yet readable; no model to fit (ngram: off, a store
			// imported from bogofilter); or an import half done, which
			// "sluice db refit" refuses too.
			continue
		}
		stale, err := classifier.ModelStale(f.bg, f.store)
		if f.bg.Err() != nil {
			return // Close
		}
		if err != nil {
			f.log.Warn("bayes: could not tell whether the n-gram model is current; looking again in one refit interval",
				"db", f.storeName, "err", err)
			continue
		}
		if !stale {
			continue
		}
		start := time.Now()
		m, err := c.Refit(f.bg)
		// The fit's memory (the learned messages' features, up to
		// 350 MB) is garbage now; hand it back to the system at once
		// rather than over the minutes the runtime would take, so that
		// the daemon's size returns to what serving mail needs.
		debug.FreeOSMemory()
		switch {
		case f.bg.Err() != nil:
			return // Close
		case err != nil:
			f.log.Warn("bayes: fitting the n-gram model again failed; the model in use stays, and the next refit interval tries again",
				"db", f.storeName, "err", err)
		default:
			spam, ham := 0, 0
			if m != nil {
				spam, ham = m.Spam, m.Ham
			}
			f.log.Info("bayes: n-gram model fitted again, the learned messages having changed",
				"db", f.storeName, "model_spam", spam, "model_ham", ham, "took", time.Since(start).Round(time.Millisecond))
		}
	}
}

// reportPool reports the pool's counters as increments since the last
// report, so they add up across reloads (each builds a new pool).
func (f *Filter) reportPool(ps poolStatser) {
	cur := ps.PoolStats()
	d := cur
	d.Hits = since(cur.Hits, f.lastPool.Hits)
	d.Misses = since(cur.Misses, f.lastPool.Misses)
	d.Timeouts = since(cur.Timeouts, f.lastPool.Timeouts)
	f.lastPool = cur
	f.sobs.BayesRedisPool(f.name, d)
}

// since is how much a pool counter grew from last to cur. go-redis keeps
// its counters in 32 bits, and a cluster's summed counters drop when a
// node leaves: a counter below its last value started again, and what it
// counts now is all new (a wrap is under-counted by what was left below
// 2^32, rather than read as 2^64 gets at once).
func since(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}

// Check implements filters.Filter.
func (f *Filter) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	switch stage {
	case filters.StageHeaders:
		// Fields of our name the message came with go now, apart from
		// the classification: if that fails, the message may still be
		// delivered (on_failure accept), and a sender's own verdict must
		// not reach Sieve rules or the archive's verdict_header then.
		return filters.Verdict{Edits: f.deletes(f.forged(m))}, nil
	case filters.StageEOM:
	default:
		return filters.Verdict{}, nil
	}
	if f.authenticated(m) {
		return f.skipAuthenticated(m), nil
	}
	// The message as the MTA will deliver it, without any verdict field
	// of our name it came with: a sender must not be able to pass off
	// its own verdict, and it is replaced below.
	own := *m
	own.Headers = nil
	var forged []int // 1-based indexes among fields of our name
	n := 0
	for _, h := range m.Headers {
		if filters.SameName(h.Name, f.s.headerName) {
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
			f.obs.BayesSkipped(f.name, SkipSize)
		}
		value := fmt.Sprintf("Skipped, size=%d, max_size=%d, queue_id=%s, version=%s", size, f.s.maxSize, placeholderValue("queue_id", values["queue_id"]), placeholderValue("version", f.version))
		f.log.Debug("bayes: message too large, not classified", "queue_id", m.QueueID, "size", size, "max_size", f.s.maxSize)
		return filters.Verdict{Reason: "bayes: skipped, message larger than max_size", Edits: f.header(forged, value)}, nil
	}
	// Checked after the size: a message too large is not read, and a
	// body that could not be stored completely (the spill directory's
	// disk full, which hits large messages first) does not matter to it;
	// its size counts the bytes lost.
	if m.Body != nil && m.Body.Err() != nil {
		// Scoring part of a message could pass spam whose payload sits
		// in the missing part; let the failure policy decide.
		return filters.Verdict{}, fmt.Errorf("message body incomplete: %w", m.Body.Err())
	}

	start := time.Now()
	res, err := f.classify(ctx, own.Raw())
	took := time.Since(start)
	if err != nil {
		// A session that ended (or a pipeline that gave up) is no store
		// outage: only the store's own deadline or failure counts.
		if f.s.failUnavail || !errors.Is(err, classifier.ErrUnavailable) || ctx.Err() != nil {
			return filters.Verdict{}, err
		}
		return f.unavailable(m.QueueID, forged, err), nil
	}
	if f.obs != nil {
		f.obs.BayesClassified(f.name, res.Verdict.String(), res.Spamicity, took)
	}
	values["verdict"] = verdictWord(res.Verdict)
	// Printed on the verdict's side of the cutoffs, for rules that
	// compare the number with them (see classifier.FormatSpamicity),
	// and of the autolearn threshold, beside autolearn= or its absence.
	values["spamicity"] = printSpamicity(res, f.c.Load().Params(), f.s.learnSpam, f.s.learnHam)
	reason := "bayes: " + res.Verdict.String() + ", spamicity=" + values["spamicity"]
	if res.Reason != "" {
		reason += ": " + res.Reason
	}
	value := f.s.headerFormat.render(values)
	va := f.s.actions[res.Verdict]
	if res.Reason != "" {
		// Unsure for want of training, not for its score: a new store,
		// or a db path with a typo, which opens a new empty one. The
		// unsure action would refuse or drop all mail then; as when
		// the store is unavailable, the message is only tagged.
		va = verdictAction{action: Tag}
	}
	// A message we tempfail, or an earlier filter of the stage already
	// tempfailed, is not taken: it comes back, and is learned then.
	// Learning it now would learn it once per attempt whenever the
	// attempts differ, as they do where the MTA adds fields of its own
	// (Postfix gives mail from local clients without Message-Id and Date
	// new ones, with the queue id and time, at each attempt).
	// Nor is one classified after the filter's deadline: the pipeline
	// has stopped waiting and given it on_failure (a tempfail, perhaps),
	// and the store would write the learn whatever its context.
	refused := va.action == Tempfail || m.Decided.Action == filters.Tempfail || ctx.Err() != nil
	if class := f.autolearnClass(res); class != classifier.None && !refused && !f.importIncomplete() {
		switch {
		case f.readOnly:
			if f.would != nil {
				f.would.BayesWouldAutolearn(f.name, class.String(), f.learnedAs(ctx, &own))
			}
		case f.autolearn(ctx, &own, class):
			value += ", autolearn=" + class.String()
		}
	}
	f.log.Debug("bayes: classified", "queue_id", m.QueueID, "verdict", res.Verdict.String(), "spamicity", res.Spamicity,
		"tokens", res.Tokens, "used", res.Used, "truncated", res.Truncated, "reason", res.Reason, "took", took)

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
		// The header goes with a discard too: the edits of a discarded
		// message are dropped, but a filter that quarantines it wins
		// over the discard (docs/filters.md), and the held message,
		// once released, is delivered with the verdict the filing rules
		// and the archive read.
		return filters.Verdict{Action: filters.Discard, Reason: reason, Edits: f.header(forged, value)}, nil
	case Quarantine:
		return filters.Verdict{Action: filters.Quarantine, Reason: reason, Edits: f.header(forged, value)}, nil
	}
	return filters.Verdict{Reason: reason, Edits: f.header(forged, value)}, nil
}

// authenticated reports whether the sender authenticated with SMTP AUTH
// and such senders are not classified. The MTA sets {auth_authen} from
// MAIL FROM on, so it is known at end of message.
func (f *Filter) authenticated(m *filters.Message) bool {
	if !f.s.skipAuth {
		return false
	}
	v, _ := m.Macro("auth_authen")
	return v != ""
}

// skipAuthenticated is the verdict for a message whose sender
// authenticated: a user's own outgoing mail, which a store trained on
// inbound mail has no business judging. It is not looked up, acted on or
// learned; it gets the skip header, as a message over max_size does, in
// place of any field of our name it came with. Its body is not read, so
// a body that could not be stored completely does not matter.
func (f *Filter) skipAuthenticated(m *filters.Message) filters.Verdict {
	forged := f.forged(m)
	if f.obs != nil {
		f.obs.BayesSkipped(f.name, SkipAuthenticated)
	}
	queueID := m.QueueID
	if queueID == "" {
		queueID = "unknown"
	}
	value := fmt.Sprintf("Skipped, authenticated, queue_id=%s, version=%s", placeholderValue("queue_id", queueID), placeholderValue("version", f.version))
	f.log.Debug("bayes: sender authenticated, not classified", "queue_id", m.QueueID)
	return filters.Verdict{Reason: "bayes: skipped, sender authenticated", Edits: f.header(forged, value)}
}

// classify scores the message. The store must answer before the pipeline's
// deadline for the filter, so that a store that hangs still leaves time to
// tag the message: the store gets the time left minus a tenth (at most
// 100 ms) and its own timeout, whichever ends first.
func (f *Filter) classify(ctx context.Context, raw io.Reader) (classifier.Result, error) {
	ctx, cancel := beforeDeadline(ctx)
	defer cancel()
	c, err := f.classifier(ctx)
	if err != nil {
		return classifier.Result{}, err
	}
	return c.Classify(ctx, raw)
}

// unavailable is the verdict for a message the store could not be asked
// about: delivered, with the header saying why it was not classified, and
// none of the actions (a site whose Redis is down must not reject mail as
// unsure).
func (f *Filter) unavailable(queueID string, forged []int, err error) filters.Verdict {
	if f.sobs != nil {
		f.sobs.BayesStoreUnavailable(f.name)
	}
	now := time.Now().UnixNano()
	if last := f.lastWarn.Load(); now-last >= int64(unavailableLogEvery) && f.lastWarn.CompareAndSwap(last, now) {
		f.log.Warn("bayes: store unavailable, messages pass unclassified", "queue_id", queueID, "err", err)
	} else {
		f.log.Debug("bayes: store unavailable, message passed unclassified", "queue_id", queueID, "err", err)
	}
	if queueID == "" {
		queueID = "unknown"
	}
	value := fmt.Sprintf("Unsure, store unavailable, queue_id=%s, version=%s", placeholderValue("queue_id", queueID), placeholderValue("version", f.version))
	return filters.Verdict{Reason: "bayes: store unavailable", Edits: f.header(forged, value)}
}

// maxReplyText keeps a rendered reply inside what filters.Reply allows.
const maxReplyText = 400

// forged returns the 1-based indexes of the fields of our name the
// message came with, among those fields: a sender's own verdict, deleted
// by every result.
func (f *Filter) forged(m *filters.Message) []int {
	var forged []int
	n := 0
	for _, h := range m.Headers {
		if filters.SameName(h.Name, f.s.headerName) {
			n++
			forged = append(forged, n)
		}
	}
	return forged
}

// header returns the edits that delete the fields of our name the message
// came with (see deletes) and add ours.
func (f *Filter) header(forged []int, value string) []filters.HeaderEdit {
	return append(f.deletes(forged), filters.HeaderEdit{Kind: filters.AddHeader, Name: f.s.headerName, Value: fold(f.s.headerName, value)})
}

// deletes returns the edits that delete the fields of our name at the
// 1-based indexes forged, the last first so that the indexes of the ones
// still to delete stay valid.
func (f *Filter) deletes(forged []int) []filters.HeaderEdit {
	var edits []filters.HeaderEdit
	for i := len(forged) - 1; i >= 0; i-- {
		edits = append(edits, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: f.s.headerName, Index: forged[i]})
	}
	return edits
}

// importIncomplete reports whether the store held part of an import that
// has not finished when last checked (checkImport). Nothing is
// auto-learned into such a store, as "sluice train" refuses it: what is
// learned would follow the fragment's counts, and be lost when the store
// is replaced by a whole import.
func (f *Filter) importIncomplete() bool {
	f.importMu.Lock()
	defer f.importMu.Unlock()
	return f.importSeen != nil && f.importSeen.mark.Began != ""
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

// printSpamicity formats res's spamicity for the header and replies: on
// the verdict's side of the cutoffs, and on its side of the autolearn
// threshold that autolearnClass compares it with (learnSpam, 0 for off;
// learnHam, -1 for off), so that the printed value read back agrees with
// the decision to learn: "autolearn=spam" never sits beside a value below
// autolearn.spam, and 0.9989996, not learned with autolearn.spam 0.999,
// prints 0.998999 rather than 0.999000.
func printSpamicity(res classifier.Result, p classifier.Params, learnSpam, learnHam float64) string {
	var atLeast, atMost []float64
	switch {
	case learnSpam > 0 && res.Verdict == classifier.VerdictSpam:
		atLeast = []float64{learnSpam}
	case learnHam >= 0 && res.Verdict == classifier.VerdictHam:
		atMost = []float64{learnHam}
	}
	return classifier.FormatSpamicityBeside(res, p, atLeast, atMost)
}

// beforeDeadline returns ctx ending a tenth of the time left (at most
// 100 ms) before its deadline, so that a store that is slow to answer
// still leaves the filter time to return its verdict.
func beforeDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin := min(time.Until(dl)/10, 100*time.Millisecond)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// autolearn learns the message and reports whether the store changed. A
// message already learned in the other class is left there: a user
// trained it so by hand, and the daemon's verdict must not undo that. A
// failure is logged, not returned: the message was classified, and
// learning is a bonus. A store slow to write gives up before the
// filter's deadline (see beforeDeadline): the verdict already reached
// must not be lost to the pipeline's timeout and its on_failure.
func (f *Filter) autolearn(ctx context.Context, m *filters.Message, class classifier.Class) bool {
	ctx, cancel := beforeDeadline(ctx)
	defer cancel()
	out, err := f.c.Load().Autolearn(ctx, m.Raw(), class)
	if err != nil {
		f.log.Warn("bayes: auto-learning failed", "queue_id", m.QueueID, "class", class.String(), "err", err)
		if f.obs != nil {
			f.obs.BayesAutolearnFailed(f.name, class.String())
		}
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

// learnedAs returns the class the store has learned the message in
// ("spam" or "ham"), "" if none, for a filter that does not learn it (see
// WouldLearnObserver): the daemon's Autolearn of it would change nothing
// then. The message is the one autolearn would learn, and its digest is
// looked up as Autolearn computes it. A store that cannot be asked is
// logged and taken for one without the message.
func (f *Filter) learnedAs(ctx context.Context, m *filters.Message) string {
	ctx, cancel := beforeDeadline(ctx)
	defer cancel()
	class, err := f.c.Load().LearnedAs(ctx, m.Raw())
	if err != nil {
		f.log.Warn("bayes: could not tell whether the message was learned before", "queue_id", m.QueueID, "err", err)
		return ""
	}
	if class == classifier.None {
		return ""
	}
	return class.String()
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

// headerSize is the size of the header block as Message.Raw writes it,
// the blank line included. It is measured with filters.AppendField
// itself, so that whatever that adds (CRLF for a bare LF, a space after
// a line end that is not folding) is counted: the limit is on what the
// classifier would read.
func headerSize(hs []filters.Header) int64 {
	n := int64(2)
	var field []byte
	for _, h := range hs {
		field = filters.AppendField(field[:0], h)
		n += int64(len(field))
	}
	return n
}
