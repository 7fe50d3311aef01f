package classifier

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mail/sluice/filters/process"
)

// ImportMark is what MetaImporting records of an import that has not
// finished: when it began and, since sluice records it, the process that
// runs it, so that a store can tell an import still running from one
// that was stopped. The value is
//
//	BEGAN pid=PID start=START host=HOST
//
// BEGAN in RFC 3339 (UTC), START the process's start time in clock ticks
// after boot (field 22 of /proc/PID/stat, proc(5); 0 where there is no
// /proc), so that a process that was given the pid of a dead importer is
// not taken for it. Earlier versions wrote BEGAN alone; their marks, and
// any value this cannot read, have PID 0.
type ImportMark struct {
	// Began is when the import began; "" when the store holds no part of
	// an unfinished import.
	Began string
	// PID, Start and Host identify the importing process; PID is 0 when
	// the mark does not say.
	PID   int
	Start uint64
	Host  string
}

// ImportState is what can be told from here of an import that has not
// finished.
type ImportState int

const (
	// ImportStateUnknown: the mark does not name its process (an earlier
	// version wrote it), or names one on another host (a shared Redis
	// store), whose processes cannot be seen from here.
	ImportStateUnknown ImportState = iota
	// ImportRunning: the importing process still runs on this host.
	ImportRunning
	// ImportInterrupted: the importing process is gone; the import will
	// never finish.
	ImportInterrupted
)

func (s ImportState) String() string {
	switch s {
	case ImportRunning:
		return "running"
	case ImportInterrupted:
		return "interrupted"
	}
	return "unknown"
}

// thisImporter returns the mark of an import this process begins now.
func thisImporter() string {
	pid := os.Getpid()
	start, _ := process.Start(pid)
	return fmt.Sprintf("%s pid=%d start=%d host=%s", time.Now().UTC().Format(time.RFC3339), pid, start, process.Host())
}

// parseImportMark reads a MetaImporting value.
func parseImportMark(v string) ImportMark {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return ImportMark{}
	}
	m := ImportMark{Began: fields[0]}
	if len(fields) != 4 {
		return m
	}
	var who ImportMark
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pid":
			who.PID, err = strconv.Atoi(v)
		case "start":
			who.Start, err = strconv.ParseUint(v, 10, 64)
		case "host":
			who.Host = v
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return m
		}
	}
	if who.PID <= 0 || who.Host == "" {
		return m
	}
	m.PID, m.Start, m.Host = who.PID, who.Start, who.Host
	return m
}

// State tells whether the import's process still runs. Only a process
// on this host can be looked at.
func (m ImportMark) State() ImportState {
	if m.PID == 0 || m.Host != process.Host() {
		return ImportStateUnknown
	}
	if process.Alive(m.PID, m.Start) {
		return ImportRunning
	}
	return ImportInterrupted
}

// Progress says, for messages, what became of the import: "it is still
// running, as pid 1234", "it was interrupted: pid 1234 is gone", ...
func (m ImportMark) Progress() string {
	switch m.State() {
	case ImportRunning:
		return fmt.Sprintf("it is still running, as pid %d", m.PID)
	case ImportInterrupted:
		return fmt.Sprintf("it was interrupted: pid %d is gone", m.PID)
	}
	if m.PID != 0 {
		return fmt.Sprintf("it is still running on %s, as pid %d, or was stopped", m.Host, m.PID)
	}
	return "it is still running, or was stopped"
}

// digestFinder is a store that can tell, in one read, which of several
// digests it has learned, and in which class.
type digestFinder interface {
	// learnedDigests returns, for each of ds, the class the store has
	// learned it in, None for a digest it has not learned.
	learnedDigests(ctx context.Context, ds []Digest) ([]Class, error)
}

// walkedDigests answers learnedDigests for a store of another kind, from
// all its digests, walked once.
type walkedDigests struct {
	s   Store
	set map[Digest]Class
}

func (w *walkedDigests) learnedDigests(ctx context.Context, ds []Digest) ([]Class, error) {
	if w.set == nil {
		set := map[Digest]Class{}
		err := w.s.WalkDigests(ctx, func(d DigestClass) error {
			set[d.Digest] = d.Class
			return nil
		})
		if err != nil {
			return nil, err
		}
		w.set = set
	}
	found := make([]Class, len(ds))
	for i, d := range ds {
		found[i] = w.set[d]
	}
	return found, nil
}

// digestCheckBatch is how many of an export's digests one read of the
// store looks up: one bbolt read transaction, one Redis round trip.
const digestCheckBatch = 2000

// refuseLearned refuses an import (errAlreadyLearned) whose export, r,
// has a digest line of a message the store has learned already. Import
// adds the export's token counts and totals and sets its digests: such a
// message would be counted twice, once in the store and once in the
// export, while the store keeps one digest for it, and unlearning it
// later would take away one count of two. That is what importing the
// same export twice does, or an export of a store that shares learned
// messages with this one. r has been checked whole (importLines).
func refuseLearned(ctx context.Context, s Store, r io.Reader) error {
	find, ok := s.(digestFinder)
	if !ok {
		find = &walkedDigests{s: s}
	}
	var e errAlreadyLearned
	batch := make([]Digest, 0, digestCheckBatch)
	lookup := func() error {
		found, err := find.learnedDigests(ctx, batch)
		if err != nil {
			return fmt.Errorf("look up the export's digests in the store: %w", err)
		}
		for i, class := range found {
			if class == None {
				continue
			}
			if e.learned == 0 {
				e.first = batch[i]
			}
			e.learned++
		}
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxExportLine)
	for sc.Scan() {
		// "d DIGEST CLASS [FEATURES]": only the digest is read; the
		// features may be a megabyte, and are not copied.
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("d "))
		if !ok {
			continue
		}
		hex, _, _ := bytes.Cut(rest, []byte(" "))
		d, err := ParseDigest(string(hex))
		if err != nil {
			return fmt.Errorf("digest line: %w", err)
		}
		e.digests++
		batch = append(batch, d)
		if len(batch) == digestCheckBatch {
			if err := lookup(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the export again: %w", err)
	}
	if len(batch) > 0 {
		if err := lookup(); err != nil {
			return err
		}
	}
	if e.learned > 0 {
		return e
	}
	return nil
}

// errAlreadyLearned refuses an import of an export of which the store has
// learned some messages already (see refuseLearned).
type errAlreadyLearned struct {
	learned, digests int
	first            Digest // the first of them in the export
}

func (e errAlreadyLearned) Error() string {
	return fmt.Sprintf("the store has already learned %d of the %d messages whose digests the export holds (the first is %s): "+
		"importing would count their tokens and the message totals a second time, and unlearning one of them later would take the wrong counts; "+
		"nothing was imported: if this export was imported into this store before, it is in the store already, else import it into a new store",
		e.learned, e.digests, e.first)
}

// errBeforeWrite is an error of an import's check of the store before its
// first write (importWriter.check), which no line of the input caused.
type errBeforeWrite struct{ err error }

func (e errBeforeWrite) Error() string { return e.err.Error() }
func (e errBeforeWrite) Unwrap() error { return e.err }

// MetaImportedPrefix starts the Meta keys that record the inputs
// imported into a store: MetaImportedPrefix + the input's fingerprint
// (see importFingerprint), with the time of the import, RFC 3339 (UTC),
// as value. A bogofilter word list, or an export of a store that holds
// only such lists, has no digests of learned messages, which would let
// refuseLearned see that the store has it already: importing it a second
// time (a migration script run again, a cron job) counted every token
// and message twice, and nothing said so. Its fingerprint does.
const MetaImportedPrefix = "imported:"

// ErrAlreadyImported is the error of an import of an input whose
// fingerprint the store records: the same input imported before.
var ErrAlreadyImported = errors.New("importing it again would count every token and message of it a second time; nothing was imported")

// importFingerprint sums up what an import adds to a store: its dialect,
// its message totals, and its token and digest records, each token with
// its counts and last-seen day, each digest with its class and features.
// It is a sum of what the records are, not of the input's bytes: blank
// lines, a CR before each newline, the export's header and end line, and
// bogofilter's bookkeeping lines (.ROBX, .WORDLIST_VERSION, .ENCODING),
// none of which the store keeps, do not count, nor does the order of the
// records, which differs between two exports of one Redis store (a Redis
// walk follows no order). So a bogofilter word list and the export of a
// store that holds nothing but that list have one fingerprint.
type importFingerprint struct {
	tokens, digests sum256
	buf             []byte
}

// sum256 is a 256-bit number, kept as four 64-bit words, least
// significant first. Adding the hash of each record to it gives the same
// sum in any order; a record twice adds twice, where an XOR would cancel.
type sum256 [4]uint64

func (s *sum256) add(h [sha256.Size]byte) {
	var carry uint64
	for i := range s {
		s[i], carry = bits.Add64(s[i], binary.BigEndian.Uint64(h[8*i:]), carry)
	}
}

func (s *sum256) appendTo(b []byte) []byte {
	for _, w := range s {
		b = binary.BigEndian.AppendUint64(b, w)
	}
	return b
}

// token adds a token record. One with no count adds nothing to a store
// (Add keeps no token without counts), and nothing to the fingerprint.
func (f *importFingerprint) token(r Record) {
	if f == nil || (r.Spam == 0 && r.Ham == 0) {
		return
	}
	b := binary.AppendUvarint(f.buf[:0], uint64(len(r.Token)))
	b = append(b, r.Token...)
	b = binary.BigEndian.AppendUint32(b, r.Spam)
	b = binary.BigEndian.AppendUint32(b, r.Ham)
	b = binary.BigEndian.AppendUint32(b, uint32(r.LastSeen))
	f.tokens.add(sha256.Sum256(b))
	f.buf = b
}

// digest adds a digest record.
func (f *importFingerprint) digest(d DigestClass) {
	if f == nil {
		return
	}
	b := append(f.buf[:0], d.Digest[:]...)
	b = append(b, byte(d.Class))
	b = append(b, d.Features...)
	f.digests.add(sha256.Sum256(b))
	f.buf = b
}

// sum returns the fingerprint, in hex, of the records added and of the
// input's dialect and totals.
func (f *importFingerprint) sum(dialect Dialect, t Totals) string {
	b := fmt.Appendf(nil, "sluice-import-fingerprint 1\ndialect %s\ntotals %d %d\n", dialect, t.Spam, t.Ham)
	b = f.tokens.appendTo(b)
	b = f.digests.appendTo(b)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// refuseImported refuses (ErrAlreadyImported) an import of an input of
// fingerprint fp that the store records as imported. Digest-less input
// gives refuseLearned nothing to compare: this is what tells it.
func refuseImported(ctx context.Context, s Store, fp string, what string) error {
	when, err := s.Meta(ctx, MetaImportedPrefix+fp)
	if err != nil {
		return fmt.Errorf("look up the %s's fingerprint in the store: %w", what, err)
	}
	if when == "" {
		return nil
	}
	return fmt.Errorf("this %s (fingerprint %.16s...) was imported into the store already, at %s: %w", what, fp, when, ErrAlreadyImported)
}

// refuseCarried refuses an export (read from r) that carries a record of
// an import (an f line, see Export) that s records too: the export's
// counts hold an input that s has taken already. The first such record
// is named.
func refuseCarried(ctx context.Context, s Store, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxExportLine)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("f "))
		if !ok {
			continue
		}
		fp, _, err := parseFingerprintLine(string(rest))
		if err != nil {
			return fmt.Errorf("import fingerprint line: %w", err)
		}
		when, err := s.Meta(ctx, MetaImportedPrefix+fp)
		if err != nil {
			return fmt.Errorf("look up the export's records of imports in the store: %w", err)
		}
		if when != "" {
			return fmt.Errorf("this export holds the counts of an input (fingerprint %.16s...) that was imported into the store already, at %s: %w", fp, when, ErrAlreadyImported)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the export's records of imports: %w", err)
	}
	return nil
}

// metaEntry is a store-wide setting, key and value.
type metaEntry struct{ key, value string }

// checkFingerprint checks a record of an import, as an export writes
// it: a fingerprint (64 hex digits, lower case, as importFingerprint.sum
// writes them) and when it was imported (RFC 3339).
func checkFingerprint(f, when string) error {
	if len(f) != 2*sha256.Size || strings.Trim(f, "0123456789abcdef") != "" {
		return fmt.Errorf("fingerprint %.80q: want %d hex digits, lower case", f, 2*sha256.Size)
	}
	if _, err := time.Parse(time.RFC3339, when); err != nil || strings.ContainsAny(when, " \t") {
		return fmt.Errorf("fingerprint %.16s...: import time %.80q: want an RFC 3339 time", f, when)
	}
	return nil
}

// parseFingerprintLine parses "FINGERPRINT IMPORTED".
func parseFingerprintLine(s string) (fingerprint, when string, err error) {
	f := strings.Split(s, " ")
	if len(f) != 2 {
		return "", "", fmt.Errorf("import fingerprint line: want a fingerprint and the time it was imported, got %d fields", len(f))
	}
	if err := checkFingerprint(f[0], f[1]); err != nil {
		return "", "", err
	}
	return f[0], f[1], nil
}

// importFinisher is a store that can take an import's mark away
// (MetaImporting) and set other Meta values, the import's fingerprint and
// those the import carries, in one atomic step (bbolt: one write
// transaction; Redis: one script).
type importFinisher interface {
	// finishImport sets own, sets each of carried whose key is unset,
	// and deletes MetaImporting.
	finishImport(ctx context.Context, own metaEntry, carried []metaEntry) error
}

// finishImport records own (the fingerprint of an import now whole in s)
// and carried (the records of imports an export carries, where s has
// none of the same fingerprint; see ImportInput.Into), and takes the
// import's mark away, at once where the store can. Where it cannot, the
// fingerprints go first: an import stopped between the steps leaves the
// mark, which refuses everything a fingerprint would.
func finishImport(ctx context.Context, s Store, own metaEntry, carried []metaEntry) error {
	if f, ok := s.(importFinisher); ok {
		return f.finishImport(ctx, own, carried)
	}
	for _, c := range carried {
		v, err := s.Meta(ctx, c.key)
		if err != nil {
			return err
		}
		if v != "" {
			continue
		}
		if err := s.SetMeta(ctx, c.key, c.value); err != nil {
			return err
		}
	}
	if err := s.SetMeta(ctx, own.key, own.value); err != nil {
		return err
	}
	return s.SetMeta(ctx, MetaImporting, "")
}
