// Package metrics holds sluice's Prometheus metrics. It is the only place
// that knows Prometheus: the milter edge and the pipeline report through
// their small Observer interfaces, which Metrics implements.
//
// Every metric here is documented in docs/metrics.md; a test keeps the two
// in step.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/dnsbl"
	"github.com/sluice-mail/sluice/filters/headerfix"
	"github.com/sluice-mail/sluice/filters/senders"
	"github.com/sluice-mail/sluice/milter"
)

// Metrics implements milter.Observer, filters.Observer and the observers
// of filter types (bayes.Observer). Filters get it through filters.Env;
// it is created once, so its series survive reloads that rebuild filters.
type Metrics struct {
	sessions         prometheus.Counter
	sessionsInFlight prometheus.Gauge
	sessionPanics    prometheus.Counter
	logDropped       prometheus.Counter
	dropped          *prometheus.CounterVec
	messages         *prometheus.CounterVec
	messageDuration  prometheus.Histogram
	decisions        *prometheus.CounterVec
	failures         *prometheus.CounterVec
	filterDuration   *prometheus.HistogramVec
	reloads          *prometheus.CounterVec
	reloadOK         prometheus.Gauge

	bayesMessages      *prometheus.CounterVec
	bayesSpamicity     *prometheus.HistogramVec
	bayesDuration      *prometheus.HistogramVec
	bayesAutolearned   *prometheus.CounterVec
	bayesLearnFailures *prometheus.CounterVec
	bayesStoreBytes    *prometheus.GaugeVec
	bayesStoreTokens   *prometheus.GaugeVec
	bayesStoreMessages *prometheus.GaugeVec
	bayesNgram         *prometheus.GaugeVec
	bayesImport        *prometheus.GaugeVec

	bayesUnavailable *prometheus.CounterVec
	redisRoundTrip   *prometheus.HistogramVec
	redisErrors      *prometheus.CounterVec
	redisPoolConns   *prometheus.GaugeVec
	redisPoolGets    *prometheus.CounterVec

	dnsblLookups   *prometheus.CounterVec
	dnsblListed    *prometheus.CounterVec
	dnsblErrors    *prometheus.CounterVec
	dnsblCacheHits *prometheus.CounterVec
	dnsblDuration  *prometheus.HistogramVec
	dnsblUp        *prometheus.GaugeVec
	// dnsblProbers counts the filters probing each list, by filter and
	// zone: a reload runs the old and the new filter side by side for a
	// while, and a list's health series goes only when neither probes it.
	dnsblMu      sync.Mutex
	dnsblProbers map[[2]string]int

	archiveMessages *prometheus.CounterVec
	archiveBytes    *prometheus.CounterVec
	archiveErrors   *prometheus.CounterVec
	archiveDuration *prometheus.HistogramVec

	headerfixRepairs  *prometheus.CounterVec
	headerfixMessages *prometheus.CounterVec

	senderNewDomains *prometheus.CounterVec
	senderRules      *prometheus.GaugeVec
	senderReloads    *prometheus.CounterVec
	senderReloadOK   *prometheus.GaugeVec
	// senderFilters counts the senders filters of each name, for the
	// same reason as dnsblProbers.
	senderMu      sync.Mutex
	senderFilters map[string]int
	// bayesFilters counts the bayes filters of each name, for the same
	// reason.
	bayesMu      sync.Mutex
	bayesFilters map[string]int
	// bayesPools counts the open Redis connection pools of the bayes
	// filters of each name: a reload may keep the name and leave Redis.
	bayesPools map[string]int

	// byFilter are the vectors with a filter label, for Staged.Discard.
	byFilter []interface {
		DeletePartialMatch(prometheus.Labels) int
	}
	// inForce holds the filter names of every configuration that was in
	// force since start: their series stay (a removed filter's counters
	// tell what it did). The filters of a failed reload never served,
	// and the series of a name only they had are deleted.
	forceMu sync.Mutex
	inForce map[string]bool
}

var (
	_ milter.Observer     = (*Metrics)(nil)
	_ filters.Observer    = (*Metrics)(nil)
	_ bayes.Observer      = (*Metrics)(nil)
	_ bayes.StoreObserver = (*Metrics)(nil)
	_ dnsbl.Observer      = (*Metrics)(nil)
	_ archive.Observer    = (*Metrics)(nil)
	_ headerfix.Observer  = (*Metrics)(nil)
	_ senders.Observer    = (*Metrics)(nil)

	_ filters.Observer    = (*Staged)(nil)
	_ bayes.Observer      = (*Staged)(nil)
	_ bayes.StoreObserver = (*Staged)(nil)
	_ dnsbl.Observer      = (*Staged)(nil)
	_ archive.Observer    = (*Staged)(nil)
	_ headerfix.Observer  = (*Staged)(nil)
	_ senders.Observer    = (*Staged)(nil)
)

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on reg.
func New(reg prometheus.Registerer, version, goVersion string) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_sessions_total",
			Help: "Milter sessions (MTA connections) accepted.",
		}),
		sessionsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_sessions_in_flight",
			Help: "Milter sessions open now.",
		}),
		sessionPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_session_panics_total",
			Help: "Panics recovered in milter sessions outside filters.",
		}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_log_lines_dropped_total",
			Help: "Log lines dropped because standard error did not take them as fast as they came.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_connections_dropped_total",
			Help: "Milter connections closed before they could be used, by reason (max_connections, no_negotiation).",
		}, []string{"reason"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_messages_total",
			Help: "Messages by final verdict (accept, reject, tempfail, discard, quarantine, aborted).",
		}, []string{"verdict"}),
		messageDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_message_duration_seconds",
			Help:    "Time from MAIL FROM to the final reply of a message.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_filter_decisions_total",
			Help: "Filter verdicts by filter, stage and verdict.",
		}, []string{"filter", "stage", "verdict"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_filter_failures_total",
			Help: "Filter calls that failed, by filter and kind (error, panic, timeout).",
		}, []string{"filter", "kind"}),
		filterDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_filter_duration_seconds",
			Help:    "Time a filter took per call, by filter and stage.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"filter", "stage"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_config_reloads_total",
			Help: "Configuration reloads by result (ok, failed).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_config_last_reload_successful",
			Help: "1 if the last configuration reload worked, 0 if it failed and the previous configuration is still in force.",
		}),
		bayesMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bayes_messages_total",
			Help: "Messages seen by a bayes filter, by filter and verdict (spam, ham, unsure; skipped: larger than max_size; authenticated: sender authenticated, not classified).",
		}, []string{"filter", "verdict"}),
		bayesSpamicity: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_bayes_spamicity",
			Help:    "Spamicity of the messages a bayes filter classified, by filter.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 0.999},
		}, []string{"filter"}),
		bayesDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_bayes_classify_duration_seconds",
			Help:    "Time a bayes filter took to tokenise and score a message, by filter.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"filter"}),
		bayesAutolearned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bayes_autolearned_total",
			Help: "Messages a bayes filter learned by itself, by filter and class (spam, ham).",
		}, []string{"filter", "class"}),
		bayesLearnFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_bayes_autolearn_failures_total",
			Help: "Messages a bayes filter should have learned by itself but could not (the store failed), by filter and class (spam, ham).",
		}, []string{"filter", "class"}),
		bayesStoreBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_bayes_store_bytes",
			Help: "Size of a bayes filter's token store, by filter: the file on disk, or the memory Redis estimates for a Redis store.",
		}, []string{"filter"}),
		bayesStoreTokens: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_bayes_store_tokens",
			Help: "Distinct tokens in a bayes filter's token store, by filter.",
		}, []string{"filter"}),
		bayesStoreMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_bayes_store_messages",
			Help: "Messages learned in a bayes filter's token store, by filter and class (spam, ham).",
		}, []string{"filter", "class"}),
		bayesNgram: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_bayes_ngram_messages",
			Help: "Messages the n-gram model a bayes filter averages in was fitted on, by filter and class (spam, ham); 0 when it averages in none.",
		}, []string{"filter", "class"}),
		bayesImport: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_bayes_store_import_incomplete",
			Help: "1 while a bayes filter's token store holds part of an import that has not finished (its counts are wrong), else 0, by filter.",
		}, []string{"filter"}),
	}
	m.dnsblLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dnsbl_lookups_total",
		Help: "Checks of an address or domain against a DNS list, by filter, zone and result (listed, not_listed, error).",
	}, []string{"filter", "zone", "result"})
	m.dnsblListed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dnsbl_listed_total",
		Help: "Listings found in a DNS list, by filter, zone and return code.",
	}, []string{"filter", "zone", "code"})
	m.dnsblErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dnsbl_errors_total",
		Help: "DNS list lookups that failed and counted as not listed, by filter, zone and kind.",
	}, []string{"filter", "zone", "kind"})
	m.dnsblCacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_dnsbl_cache_hits_total",
		Help: "DNS list lookups answered from the cache, by filter and zone.",
	}, []string{"filter", "zone"})
	m.dnsblDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_dnsbl_query_duration_seconds",
		Help:    "Time a DNS list query took at the resolvers, retries included, by filter and zone.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
	}, []string{"filter", "zone"})
	m.dnsblProbers = map[[2]string]int{}
	m.senderFilters = map[string]int{}
	m.bayesFilters = map[string]int{}
	m.bayesPools = map[string]int{}
	m.dnsblUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_dnsbl_list_up",
		Help: "1 if the DNS list answered its last health probe (test entry 127.0.0.2 or \"test\") as listed, 0 if not.",
	}, []string{"filter", "zone"})
	m.bayesUnavailable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_bayes_store_unavailable_total",
		Help: "Messages a bayes filter passed unclassified because its store could not be reached in time, by filter.",
	}, []string{"filter"})
	m.redisRoundTrip = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_bayes_redis_round_trip_seconds",
		Help:    "Round trips of a bayes filter to its Redis store, by filter and operation, failed ones included.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 12),
	}, []string{"filter", "op"})
	m.redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_bayes_redis_errors_total",
		Help: "Failed round trips of a bayes filter to its Redis store, by filter and operation.",
	}, []string{"filter", "op"})
	m.redisPoolConns = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_bayes_redis_pool_connections",
		Help: "Connections of a bayes filter's Redis pool, by filter and state (idle, in_use).",
	}, []string{"filter", "state"})
	m.redisPoolGets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_bayes_redis_pool_gets_total",
		Help: "Connections taken from a bayes filter's Redis pool, by filter and result (hit, miss, timeout).",
	}, []string{"filter", "result"})
	m.archiveMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_messages_total",
		Help: "Message copies an archive filter wrote, by filter and target (the verdict key: spam, ham, reject, default ...).",
	}, []string{"filter", "target"})
	m.archiveBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_bytes_total",
		Help: "Bytes an archive filter wrote, by filter and target.",
	}, []string{"filter", "target"})
	m.archiveErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_archive_errors_total",
		Help: "Message copies an archive filter could not write (nothing partial kept), by filter and target.",
	}, []string{"filter", "target"})
	m.archiveDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_archive_append_duration_seconds",
		Help:    "Time an archive filter took to write one copy, locks and fsync included, by filter.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
	}, []string{"filter"})
	m.headerfixRepairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_headerfix_repairs_total",
		Help: "Stray line ends a headerfix filter found in headers, by filter and kind (split_cr, split_lf, split_merged, space_cr, space_lf, space_nul).",
	}, []string{"filter", "kind"})
	m.headerfixMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_headerfix_messages_total",
		Help: "Messages whose header a headerfix filter found stray line ends in, by filter and action (fix, tag, reject, too_many).",
	}, []string{"filter", "action"})
	m.senderNewDomains = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_sender_watch_new_domains_total",
		Help: "Sender domains seen for the first time matching a WATCH pattern of a senders filter, by filter and pattern (the rule's key as written).",
	}, []string{"filter", "pattern"})
	m.senderRules = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_sender_rules",
		Help: "Rules in force in a senders filter, by filter.",
	}, []string{"filter"})
	m.senderReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_sender_rules_reloads_total",
		Help: "Reloads of changed rules files of a senders filter, by filter and result (ok, failed).",
	}, []string{"filter", "result"})
	m.senderReloadOK = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_sender_rules_last_reload_successful",
		Help: "1 if the rules files of a senders filter last loaded fine, 0 if a changed file could not be used and the previous rules are still in force.",
	}, []string{"filter"})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sluice_build_info",
		Help:        "Always 1; labels carry the sluice and Go versions.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion},
	})
	buildInfo.Set(1)
	m.reloadOK.Set(1)
	for _, r := range []string{"ok", "failed"} {
		m.reloads.WithLabelValues(r)
	}
	for _, a := range filters.Actions() {
		if a != filters.Continue {
			m.messages.WithLabelValues(a.String())
		}
	}
	m.messages.WithLabelValues("aborted")
	// Both reasons from the start, at 0: an alert on increase() sees the
	// first drop, which a series born at 1 would hide.
	for _, r := range []string{milter.DropMaxSessions, milter.DropNoNegotiation} {
		m.dropped.WithLabelValues(r)
	}
	m.inForce = map[string]bool{}
	m.byFilter = append(m.byFilter, m.decisions, m.failures, m.filterDuration,
		m.bayesMessages, m.bayesSpamicity, m.bayesDuration, m.bayesAutolearned, m.bayesLearnFailures,
		m.bayesStoreBytes, m.bayesStoreTokens, m.bayesStoreMessages, m.bayesNgram, m.bayesImport,
		m.bayesUnavailable, m.redisRoundTrip, m.redisErrors, m.redisPoolConns, m.redisPoolGets,
		m.dnsblLookups, m.dnsblListed, m.dnsblErrors, m.dnsblCacheHits, m.dnsblDuration, m.dnsblUp,
		m.archiveMessages, m.archiveBytes, m.archiveErrors, m.archiveDuration,
		m.headerfixRepairs, m.headerfixMessages,
		m.senderNewDomains, m.senderRules, m.senderReloads, m.senderReloadOK)
	reg.MustRegister(m.sessions, m.sessionsInFlight, m.sessionPanics, m.logDropped, m.dropped, m.messages, m.messageDuration,
		m.decisions, m.failures, m.filterDuration, m.reloads, m.reloadOK, buildInfo,
		m.bayesMessages, m.bayesSpamicity, m.bayesDuration, m.bayesAutolearned, m.bayesLearnFailures,
		m.bayesStoreBytes, m.bayesStoreTokens, m.bayesStoreMessages, m.bayesNgram, m.bayesImport,
		m.bayesUnavailable, m.redisRoundTrip, m.redisErrors, m.redisPoolConns, m.redisPoolGets,
		m.dnsblLookups, m.dnsblListed, m.dnsblErrors, m.dnsblCacheHits, m.dnsblDuration, m.dnsblUp,
		m.archiveMessages, m.archiveBytes, m.archiveErrors, m.archiveDuration,
		m.headerfixRepairs, m.headerfixMessages,
		m.senderNewDomains, m.senderRules, m.senderReloads, m.senderReloadOK,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// InForce records the filter names of a configuration put in force: at
// start (a reload's go through Staged.Commit).
func (m *Metrics) InForce(names []string) {
	m.forceMu.Lock()
	defer m.forceMu.Unlock()
	for _, n := range names {
		m.inForce[n] = true
	}
}

// forget deletes every series of the filter names that no configuration
// in force had.
func (m *Metrics) forget(names []string) {
	m.forceMu.Lock()
	defer m.forceMu.Unlock()
	for _, n := range names {
		if m.inForce[n] {
			continue
		}
		l := prometheus.Labels{"filter": n}
		for _, v := range m.byFilter {
			v.DeletePartialMatch(l)
		}
	}
}

// SessionOpened implements milter.Observer.
func (m *Metrics) SessionOpened() {
	m.sessions.Inc()
	m.sessionsInFlight.Inc()
}

// SessionClosed implements milter.Observer.
func (m *Metrics) SessionClosed() { m.sessionsInFlight.Dec() }

// SessionPanic implements milter.Observer.
func (m *Metrics) SessionPanic() { m.sessionPanics.Inc() }

// LogLinesDropped counts n log lines that sluice serve dropped because its
// standard error was not read (see package asynclog).
func (m *Metrics) LogLinesDropped(n int) { m.logDropped.Add(float64(n)) }

// ConnectionDropped implements milter.Observer.
func (m *Metrics) ConnectionDropped(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// MessageDone implements milter.Observer.
func (m *Metrics) MessageDone(s milter.Summary) {
	verdict := s.Action.String()
	switch {
	case s.Aborted:
		verdict = "aborted"
	case s.Action == filters.Continue:
		verdict = filters.Accept.String()
	}
	m.messages.WithLabelValues(verdict).Inc()
	m.messageDuration.Observe(s.Duration.Seconds())
}

// FilterDecided implements filters.Observer.
func (m *Metrics) FilterDecided(d filters.Decision) {
	stage := d.Stage.String()
	m.decisions.WithLabelValues(d.Filter, stage, d.Verdict.Action.String()).Inc()
	m.filterDuration.WithLabelValues(d.Filter, stage).Observe(d.Duration.Seconds())
	if d.Failure != "" {
		m.failures.WithLabelValues(d.Filter, d.Failure).Inc()
	}
}

// Reloaded counts a configuration reload.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
		m.reloadOK.Set(1)
		return
	}
	m.reloads.WithLabelValues("failed").Inc()
	m.reloadOK.Set(0)
}

// BayesClassified implements bayes.Observer.
func (m *Metrics) BayesClassified(filter, verdict string, spamicity float64, took time.Duration) {
	m.bayesMessages.WithLabelValues(filter, verdict).Inc()
	m.bayesSpamicity.WithLabelValues(filter).Observe(spamicity)
	m.bayesDuration.WithLabelValues(filter).Observe(took.Seconds())
}

// BayesSkipped implements bayes.Observer. A message over max_size is
// counted as verdict "skipped", as it always was; one whose sender
// authenticated as "authenticated".
func (m *Metrics) BayesSkipped(filter, reason string) {
	verdict := "skipped"
	if reason == bayes.SkipAuthenticated {
		verdict = "authenticated"
	}
	m.bayesMessages.WithLabelValues(filter, verdict).Inc()
}

// BayesAutolearned implements bayes.Observer.
func (m *Metrics) BayesAutolearned(filter, class string) {
	m.bayesAutolearned.WithLabelValues(filter, class).Inc()
}

// BayesAutolearnFailed implements bayes.Observer.
func (m *Metrics) BayesAutolearnFailed(filter, class string) {
	m.bayesLearnFailures.WithLabelValues(filter, class).Inc()
}

// BayesStore implements bayes.Observer.
func (m *Metrics) BayesStore(filter string, st classifier.Stats) {
	m.bayesStoreBytes.WithLabelValues(filter).Set(float64(st.Bytes))
	m.bayesStoreTokens.WithLabelValues(filter).Set(float64(st.Tokens))
	m.bayesStoreMessages.WithLabelValues(filter, "spam").Set(float64(st.Spam))
	m.bayesStoreMessages.WithLabelValues(filter, "ham").Set(float64(st.Ham))
}

// BayesNgram implements bayes.Observer.
func (m *Metrics) BayesNgram(filter string, spam, ham int) {
	m.bayesNgram.WithLabelValues(filter, "spam").Set(float64(spam))
	m.bayesNgram.WithLabelValues(filter, "ham").Set(float64(ham))
}

// BayesImportIncomplete implements bayes.Observer.
func (m *Metrics) BayesImportIncomplete(filter string, incomplete bool) {
	v := 0.0
	if incomplete {
		v = 1
	}
	m.bayesImport.WithLabelValues(filter).Set(v)
}

// BayesFilter implements bayes.Observer. The gauges of a filter name that
// no bayes filter has any more (removed or renamed by a reload) are
// deleted: left behind, they would report the size of a store nothing
// uses, for ever, and an alert on a store that stopped growing would
// never see the end of it.
func (m *Metrics) BayesFilter(filter string, on bool) {
	m.bayesMu.Lock()
	defer m.bayesMu.Unlock()
	if on {
		m.bayesFilters[filter]++
		// Both classes at 0 from the filter's start: an alert on
		// increase() sees the first failed auto-learn, which a series
		// born at 1 would hide. Counters stay when the filter goes.
		for _, c := range []string{"spam", "ham"} {
			m.bayesLearnFailures.WithLabelValues(filter, c)
		}
		return
	}
	if m.bayesFilters[filter]--; m.bayesFilters[filter] > 0 {
		return
	}
	delete(m.bayesFilters, filter)
	l := prometheus.Labels{"filter": filter}
	m.bayesStoreBytes.DeletePartialMatch(l)
	m.bayesStoreTokens.DeletePartialMatch(l)
	m.bayesStoreMessages.DeletePartialMatch(l)
	m.bayesNgram.DeletePartialMatch(l)
	m.bayesImport.DeletePartialMatch(l)
	m.redisPoolConns.DeletePartialMatch(l)
}

// BayesRedisPoolOpen implements bayes.PoolObserver. The pool gauges of a
// filter name go when its last pool closes: a reload that moves the
// filter from Redis to a bbolt file under the same name keeps the name
// (BayesFilter) but leaves no pool, and the gauges would otherwise report
// the closed pool's last connections until a restart.
func (m *Metrics) BayesRedisPoolOpen(filter string, open bool) {
	m.bayesMu.Lock()
	defer m.bayesMu.Unlock()
	if open {
		m.bayesPools[filter]++
		return
	}
	if m.bayesPools[filter]--; m.bayesPools[filter] > 0 {
		return
	}
	delete(m.bayesPools, filter)
	m.redisPoolConns.DeletePartialMatch(prometheus.Labels{"filter": filter})
}

// BayesStoreUnavailable implements bayes.StoreObserver.
func (m *Metrics) BayesStoreUnavailable(filter string) {
	m.bayesUnavailable.WithLabelValues(filter).Inc()
}

// BayesRedisRoundTrip implements bayes.StoreObserver.
func (m *Metrics) BayesRedisRoundTrip(filter, op string, took time.Duration, err error) {
	m.redisRoundTrip.WithLabelValues(filter, op).Observe(took.Seconds())
	if err != nil {
		m.redisErrors.WithLabelValues(filter, op).Inc()
	}
}

// BayesRedisPool implements bayes.StoreObserver.
func (m *Metrics) BayesRedisPool(filter string, st classifier.RedisPoolStats) {
	m.redisPoolConns.WithLabelValues(filter, "idle").Set(float64(st.Idle))
	m.redisPoolConns.WithLabelValues(filter, "in_use").Set(float64(max(st.Total-st.Idle, 0)))
	m.redisPoolGets.WithLabelValues(filter, "hit").Add(float64(st.Hits))
	m.redisPoolGets.WithLabelValues(filter, "miss").Add(float64(st.Misses))
	m.redisPoolGets.WithLabelValues(filter, "timeout").Add(float64(st.Timeouts))
}

// DNSBLLookup implements dnsbl.Observer.
func (m *Metrics) DNSBLLookup(filter, zone, result string) {
	m.dnsblLookups.WithLabelValues(filter, zone, result).Inc()
}

// DNSBLListed implements dnsbl.Observer.
func (m *Metrics) DNSBLListed(filter, zone, code string) {
	m.dnsblListed.WithLabelValues(filter, zone, code).Inc()
}

// DNSBLError implements dnsbl.Observer.
func (m *Metrics) DNSBLError(filter, zone, kind string) {
	m.dnsblErrors.WithLabelValues(filter, zone, kind).Inc()
}

// DNSBLCacheHit implements dnsbl.Observer.
func (m *Metrics) DNSBLCacheHit(filter, zone string) {
	m.dnsblCacheHits.WithLabelValues(filter, zone).Inc()
}

// DNSBLQuery implements dnsbl.Observer.
func (m *Metrics) DNSBLQuery(filter, zone string, took time.Duration) {
	m.dnsblDuration.WithLabelValues(filter, zone).Observe(took.Seconds())
}

// DNSBLHealth implements dnsbl.Observer.
func (m *Metrics) DNSBLHealth(filter, zone string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.dnsblUp.WithLabelValues(filter, zone).Set(v)
}

// DNSBLProbing implements dnsbl.Observer. The health series of a list
// that no filter probes any more (its zone removed or renamed by a
// reload) is deleted: left behind, it would report the list down, or up,
// for ever.
func (m *Metrics) DNSBLProbing(filter, zone string, on bool) {
	m.dnsblMu.Lock()
	defer m.dnsblMu.Unlock()
	k := [2]string{filter, zone}
	if on {
		m.dnsblProbers[k]++
		return
	}
	if m.dnsblProbers[k]--; m.dnsblProbers[k] <= 0 {
		delete(m.dnsblProbers, k)
		m.dnsblUp.DeleteLabelValues(filter, zone)
	}
}

// ArchiveAppended implements archive.Observer.
func (m *Metrics) ArchiveAppended(filter, target string, bytes int64, took time.Duration) {
	m.archiveMessages.WithLabelValues(filter, target).Inc()
	m.archiveBytes.WithLabelValues(filter, target).Add(float64(bytes))
	m.archiveDuration.WithLabelValues(filter).Observe(took.Seconds())
}

// ArchiveFailed implements archive.Observer.
func (m *Metrics) ArchiveFailed(filter, target string) {
	m.archiveErrors.WithLabelValues(filter, target).Inc()
}

// HeaderfixFound implements headerfix.Observer.
func (m *Metrics) HeaderfixFound(filter, kind string, n int) {
	m.headerfixRepairs.WithLabelValues(filter, kind).Add(float64(n))
}

// HeaderfixMessage implements headerfix.Observer.
func (m *Metrics) HeaderfixMessage(filter, action string) {
	m.headerfixMessages.WithLabelValues(filter, action).Inc()
}

// SenderRulesLoaded implements senders.Observer. The series of every
// WATCH pattern and both reload results are created at 0, so that
// increase() in an alert sees their first event.
func (m *Metrics) SenderRulesLoaded(filter string, rules int, watch []string) {
	m.senderRules.WithLabelValues(filter).Set(float64(rules))
	m.senderReloadOK.WithLabelValues(filter).Set(1)
	for _, r := range []string{"ok", "failed"} {
		m.senderReloads.WithLabelValues(filter, r)
	}
	for _, p := range watch {
		m.senderNewDomains.WithLabelValues(filter, p)
	}
}

// SenderFilter implements senders.Observer. The series of a filter name
// that no filter has any more (removed or renamed by a reload) are
// deleted: left behind, a broken rules file's
// sluice_sender_rules_last_reload_successful 0 would keep its alert
// firing until a restart.
func (m *Metrics) SenderFilter(filter string, on bool) {
	m.senderMu.Lock()
	defer m.senderMu.Unlock()
	if on {
		m.senderFilters[filter]++
		return
	}
	if m.senderFilters[filter]--; m.senderFilters[filter] > 0 {
		return
	}
	delete(m.senderFilters, filter)
	l := prometheus.Labels{"filter": filter}
	m.senderRules.DeletePartialMatch(l)
	m.senderReloadOK.DeletePartialMatch(l)
	m.senderReloads.DeletePartialMatch(l)
	m.senderNewDomains.DeletePartialMatch(l)
}

// SenderRulesReloaded implements senders.Observer.
func (m *Metrics) SenderRulesReloaded(filter string, ok bool) {
	if ok {
		m.senderReloads.WithLabelValues(filter, "ok").Inc()
		return
	}
	m.senderReloads.WithLabelValues(filter, "failed").Inc()
	m.senderReloadOK.WithLabelValues(filter).Set(0)
}

// SenderWatchNewDomain implements senders.Observer.
func (m *Metrics) SenderWatchNewDomain(filter, pattern string) {
	m.senderNewDomains.WithLabelValues(filter, pattern).Inc()
}
