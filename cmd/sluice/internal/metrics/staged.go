package metrics

import (
	"sync"

	"github.com/sluice-mail/sluice/classifier"
)

// Staged is the observer of the filters a reload builds. Filters report
// the state of what they hold (the rules a senders filter loaded, the
// size of a bayes store, the health of a DNS list) as they are built,
// under their names, into the same series as the filters of the running
// configuration. When the reload then fails (a later entry cannot be
// built) those filters are closed again without ever serving mail, and
// what they reported must not stay behind as if it were in force: a
// senders filter reports its rules only when it loads them, so the count
// of rules files the running configuration does not use would stay on
// sluice_sender_rules until a rules file changed.
//
// So Staged holds back the reports of state until the reload's outcome
// is known: Commit, once the new configuration is in force, writes them
// in the order they came and lets later ones through; Discard, when the
// reload failed, drops them and any that still come, and deletes the
// series of filter names only the failed configuration had. Events
// (messages, lookups, round trips) and the counts of filters of each name
// (SenderFilter, BayesFilter, DNSBLProbing) go through at once.
type Staged struct {
	*Metrics

	mu   sync.Mutex
	done bool // Commit or Discard ran
	keep bool // it was Commit
	// held are the reports waiting for Commit. Only a reload's build
	// adds to them, and it ends (each filter bounds the time it takes
	// to open what it holds), so they stay few.
	held []func()
}

// Stage returns the observer for the filters of a reload.
func (m *Metrics) Stage() *Staged { return &Staged{Metrics: m} }

// Commit writes the reports held back and lets later ones through. names
// are the filter names of the configuration now in force (see InForce).
func (s *Staged) Commit(names []string) {
	s.Metrics.InForce(names)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.held {
		f()
	}
	s.held, s.done, s.keep = nil, true, true
}

// Discard drops the reports held back and any that come later. names
// are the filter names of the configuration that failed, whose filters
// must be closed by now. The series of a name that only it had are
// deleted: its filters came and went without serving, and what they
// counted as they were built (the auto-learn failure series a bayes
// filter creates at 0, the round trips of opening a Redis store, the
// health probes of a DNS list) would otherwise stay for a filter that
// never ran, until a restart.
func (s *Staged) Discard(names []string) {
	s.mu.Lock()
	s.held, s.done, s.keep = nil, true, false
	s.mu.Unlock()
	s.Metrics.forget(names)
}

// report writes f's report, holds it until Commit, or drops it after
// Discard. Reports are written under s.mu, so that one held back is
// never written after a later one.
func (s *Staged) report(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.done:
		s.held = append(s.held, f)
	case s.keep:
		f()
	}
}

// BayesStore implements bayes.Observer.
func (s *Staged) BayesStore(filter string, st classifier.Stats) {
	s.report(func() { s.Metrics.BayesStore(filter, st) })
}

// BayesNgram implements bayes.Observer.
func (s *Staged) BayesNgram(filter string, spam, ham int) {
	s.report(func() { s.Metrics.BayesNgram(filter, spam, ham) })
}

// BayesImportIncomplete implements bayes.Observer.
func (s *Staged) BayesImportIncomplete(filter string, incomplete bool) {
	s.report(func() { s.Metrics.BayesImportIncomplete(filter, incomplete) })
}

// BayesRedisPool implements bayes.StoreObserver.
func (s *Staged) BayesRedisPool(filter string, st classifier.RedisPoolStats) {
	s.report(func() { s.Metrics.BayesRedisPool(filter, st) })
}

// DNSBLHealth implements dnsbl.Observer.
func (s *Staged) DNSBLHealth(filter, zone string, up bool) {
	s.report(func() { s.Metrics.DNSBLHealth(filter, zone, up) })
}

// SenderRulesLoaded implements senders.Observer.
func (s *Staged) SenderRulesLoaded(filter string, rules int, watch []string) {
	s.report(func() { s.Metrics.SenderRulesLoaded(filter, rules, watch) })
}

// SenderRulesReloaded implements senders.Observer.
func (s *Staged) SenderRulesReloaded(filter string, ok bool) {
	s.report(func() { s.Metrics.SenderRulesReloaded(filter, ok) })
}
