package senders

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The seen file remembers which domains have matched which WATCH pattern,
// so that each new domain is reported once, across reloads and restarts.
// It is text, one entry per line, oldest first:
//
//	2026-03-01T10:02:03Z<TAB>emalsrv.ups.com<TAB>emalsrv.*
//
// (first seen, domain, pattern as written in the rules file). It is
// rewritten whole (temporary file, fsync, rename, fsync of the directory)
// a moment after new entries arrive, never in the mail path.

const seenHeader = "# sluice senders: domains seen matching WATCH patterns (first seen, domain, pattern)\n"

// seenFlushDelay is the least time between two writes of the seen file:
// a campaign of a thousand new domains costs a few writes, not a
// thousand.
const seenFlushDelay = time.Second

type seenKey struct{ pattern, domain string }

// SeenList is the content of a seen file.
type SeenList struct {
	first map[seenKey]time.Time
	order []seenKey // oldest first; entries before head are gone
	head  int
	// bad counts unreadable lines, the first at badLine.
	bad, badLine int
}

func newSeenList() *SeenList { return &SeenList{first: map[seenKey]time.Time{}} }

// ReadSeen reads a seen file. A missing file is an empty list.
func ReadSeen(path string) (*SeenList, error) {
	l := newSeenList()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("seen file: %w", err)
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		n++
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		ts, rest, ok1 := strings.Cut(line, "\t")
		domain, pattern, ok2 := strings.Cut(rest, "\t")
		t, err := time.Parse(time.RFC3339, ts)
		if !ok1 || !ok2 || err != nil || domain == "" || pattern == "" {
			// A damaged line costs at most one repeated report; it
			// must not stop the filter.
			if l.bad == 0 {
				l.badLine = n
			}
			l.bad++
			continue
		}
		l.add(seenKey{pattern, domain}, t, 0)
	}
	return l, nil
}

// FirstSeen returns when domain first matched pattern, if it did.
func (l *SeenList) FirstSeen(pattern, domain string) (time.Time, bool) {
	t, ok := l.first[seenKey{pattern, domain}]
	return t, ok
}

// Len returns the number of entries.
func (l *SeenList) Len() int { return len(l.first) }

// add records k unless known, dropping the oldest entries beyond limit
// (0: no limit). It reports whether k was new.
func (l *SeenList) add(k seenKey, t time.Time, limit int) bool {
	if _, ok := l.first[k]; ok {
		return false
	}
	for limit > 0 && len(l.first) >= limit {
		delete(l.first, l.order[l.head])
		l.order[l.head] = seenKey{}
		l.head++
	}
	if l.head > 1024 && l.head*2 > len(l.order) {
		l.order = append([]seenKey(nil), l.order[l.head:]...)
		l.head = 0
	}
	l.first[k] = t
	l.order = append(l.order, k)
	return true
}

func (l *SeenList) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(seenHeader)
	for _, k := range l.order[l.head:] {
		b.WriteString(l.first[k].UTC().Format(time.RFC3339))
		b.WriteByte('\t')
		b.WriteString(k.domain)
		b.WriteByte('\t')
		b.WriteString(k.pattern)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Shared is the state that filters built by one factory share across
// reloads: the open seen files, and the rules in force for each list of
// rules files. A reload builds a new filter while the old one finishes
// its sessions; both must agree on which domains are new, or a domain
// would be reported twice, and the new one keeps the rules in force
// while a rules file is still being written (see New).
type Shared struct {
	mu    sync.Mutex
	seen  map[string]*seenStore
	rules map[string]*rulesInForce
}

// NewShared returns an empty Shared.
func NewShared() *Shared {
	return &Shared{seen: map[string]*seenStore{}, rules: map[string]*rulesInForce{}}
}

// seenStore is an open seen file, shared by the filters that use it.
type seenStore struct {
	sh   *Shared
	path string
	log  *slog.Logger

	mu      sync.Mutex
	list    *SeenList
	limit   int // the seen_limit of the filter that opened the file, for add
	dirty   bool
	refs    int
	lastErr string

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// openSeen returns the store of the seen file at path, reading it if no
// filter has it open.
func (sh *Shared) openSeen(path string, limit int, log *slog.Logger) (*seenStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("seen file: %w", err)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s, ok := sh.seen[abs]; ok {
		// limit stays the first filter's: each filter adds within its
		// own (see addWithin), and a reload that fails after building
		// a filter on the file must not change the running one's.
		s.mu.Lock()
		s.refs++
		s.mu.Unlock()
		return s, nil
	}
	list, err := ReadSeen(abs)
	if err != nil {
		return nil, err
	}
	if list.bad > 0 {
		log.Warn("senders: seen file has unreadable lines, skipped", "file", abs, "lines", list.bad, "first", list.badLine)
	}
	s := &seenStore{sh: sh, path: abs, log: log, list: list, limit: limit, refs: 1,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	sh.seen[abs] = s
	go s.flusher()
	return s, nil
}

// add records that domain matched pattern and reports whether that is
// new.
func (s *seenStore) add(pattern, domain string, now time.Time) bool {
	return s.addWithin(pattern, domain, now, s.limit)
}

// addWithin is add for a filter whose seen_limit is limit. The filters of
// the running configuration and of a reload share the file, each with
// its own limit.
func (s *seenStore) addWithin(pattern, domain string, now time.Time, limit int) bool {
	s.mu.Lock()
	isNew := s.list.add(seenKey{pattern, domain}, now, limit)
	if isNew {
		s.dirty = true
	}
	s.mu.Unlock()
	if isNew {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return isNew
}

// release drops a filter's reference; the last one writes what is left
// and closes the store.
func (s *seenStore) release() {
	s.sh.mu.Lock()
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		delete(s.sh.seen, s.path)
	}
	s.sh.mu.Unlock()
	if last {
		close(s.stop)
		<-s.done
	}
}

// flusher writes the file after changes, at most once per
// seenFlushDelay, and a last time when the store closes.
func (s *seenStore) flusher() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			s.flush()
			return
		case <-s.kick:
		}
		s.flush()
		select {
		case <-s.stop:
			s.flush()
			return
		case <-time.After(seenFlushDelay):
		}
	}
}

func (s *seenStore) flush() {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return
	}
	data := s.list.marshal()
	s.dirty = false
	s.mu.Unlock()
	err := writeFileAtomic(s.path, data, 0o640)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Kept in memory and written with the next change or at close.
		s.dirty = true
		// The same failure, whatever temporary file it hit.
		key := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			key = pe.Op + ": " + pe.Err.Error()
		}
		if key != s.lastErr {
			s.log.Error("senders: writing the seen file failed; new domains are remembered in memory only until it works", "err", err)
		}
		s.lastErr = key
		return
	}
	s.lastErr = ""
}

// writeFileAtomic replaces path with data so that a crash at any moment
// leaves either the old file or the new one, complete: a temporary file
// in the same directory, synced, renamed over path, and the directory
// synced so that the rename itself is durable.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open directory: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
