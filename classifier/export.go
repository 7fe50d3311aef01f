package classifier

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// The export format is line-oriented text, one record per line, fields
// separated by one space:
//
//	sluice-classifier-export 3
//	dialect sluice
//	totals SPAM HAM
//	t TOKEN SPAM HAM LASTSEEN
//	d DIGEST spam|ham [FEATURES]
//	f FINGERPRINT IMPORTED
//	end TOKENS DIGESTS FINGERPRINTS
//
// TOKEN is written as is unless it contains a space, a control character,
// invalid UTF-8, or starts with a double quote; then it is a Go-quoted
// string (strconv.Quote). LASTSEEN is YYYYMMDD, 0 if unknown. FEATURES is
// the learned message's encoded n-grams (DigestClass.Features) in standard
// base64 with padding (RFC 4648, section 4), present only if the store has
// features for the digest; exports written before the n-gram model have
// none, and import as they are. (A sluice of that time refuses a digest
// line with features, as an unknown class, rather than drop them.) An f
// line is the store's record of an input imported into it (its
// fingerprint, see MetaImportedPrefix, and when, RFC 3339), which an
// import of the export records in its store too (see ImportInput.Into).
// The end line, with the numbers of t, d and f lines, tells a complete
// export from one cut short at a line boundary. Import wants the dialect
// line before the records and one totals line, as export writes them.
// Importing an export into an empty store reproduces the store exactly
// (its export is the same text); importing into a non-empty one adds the
// counts and sets the digests, with their features, unless the store has
// learned one of the export's messages already (see refuseLearned), or
// records the same export as imported (see refuseImported): that import
// is refused.
//
// Format 3 added the f lines, and the third number of the end line. A
// sluice that reads formats 1 and 2 only refuses a format 3 export as of
// a newer format, whether it has f lines or not, and says to import it
// with a newer sluice. It must not take the counts without the records:
// the store it made would take the word lists the exported store
// imported once more, and count them twice. (Such a sluice refuses an f
// line in a format 2 export too, as an unknown record; but the header
// says why.)
const exportHeader = "sluice-classifier-export 3"

// exportHeaderV2 and exportHeaderV1 start exports of earlier versions,
// which are still read: format 2 has no f lines, format 1 no end line
// either, and is read without the check for completeness.
const (
	exportHeaderV2 = "sluice-classifier-export 2"
	exportHeaderV1 = "sluice-classifier-export 1"
)

// importBatch is how many records one import transaction writes.
const importBatch = 20000

// importBatchBytes bounds the features of one import transaction: at about
// 6 KB a message, 20000 digests would hold 120 MB in memory at once.
const importBatchBytes = 16 << 20

// MetaImporting is the Meta key set in a store while an import writes to
// it (its value when the import began and which process runs it, see
// ImportMark), and removed once the import is whole. An import is written
// in batches, one transaction each, so that its memory stays bounded; a
// run stopped between two (Ctrl-C, a kill, a reboot) leaves part of the
// import in the store, and importing the same export again would count
// that part twice: a 97,200-message export stopped after 6 s and imported
// again gave a store of 75,840 spam and 99,600 ham instead of 37,920 and
// 49,800. A store so marked takes no further import.
const MetaImporting = "import-incomplete"

// IncompleteImport returns the mark (MetaImporting) of an import that
// has not finished writing to s, with Began "" if s holds no part of one.
// Such an import is still running or was stopped (see ImportMark.State);
// either way the store's counts are part of a word list, and verdicts on
// them are off.
func IncompleteImport(ctx context.Context, s Store) (ImportMark, error) {
	v, err := s.Meta(ctx, MetaImporting)
	if err != nil {
		return ImportMark{}, fmt.Errorf("read %s: %w", MetaImporting, err)
	}
	return parseImportMark(v), nil
}

// refuseInterrupted returns an error if s holds part of an import that
// has not finished.
func refuseInterrupted(ctx context.Context, s Store) error {
	m, err := IncompleteImport(ctx, s)
	if err != nil {
		return err
	}
	if m.Began == "" {
		return nil
	}
	return errImportUnfinished{m}
}

// errImportUnfinished refuses an import into a store that holds part of
// another import, which has not finished.
type errImportUnfinished struct{ m ImportMark }

func (e errImportUnfinished) Error() string {
	way := "import into a new store"
	if e.m.State() == ImportRunning {
		// Once it is whole, another import adds to it as to any store.
		way = "wait for it to finish, or import into a new store"
	}
	return fmt.Sprintf("the store holds part of an import begun %s that has not finished (%s); importing again would count that part twice: %s", e.m.Began, e.m.Progress(), way)
}

// errLearnDuringImport refuses a learn (any LearnOp: learning,
// unlearning, moving) into a store that holds part of an import that has
// not finished. The import checked the store for its messages once,
// under its mark, before its first write: a message learned after that
// check would be counted again by the import, under the same digest.
// Each store checks the mark where it would learn, atomically with the
// learning (bbolt: its write transaction; Redis: its learn script), so
// that no import marks the store in between.
type errLearnDuringImport struct{ m ImportMark }

func (e errLearnDuringImport) Error() string {
	return fmt.Sprintf("the store holds part of an import begun %s that has not finished (%s): learning now could count a message of the import twice", e.m.Began, e.m.Progress())
}

// metaClaimer is a store that can set a Meta value only where it is
// unset, in one atomic step (bbolt: one write transaction; Redis: one
// script).
type metaClaimer interface {
	// claimMeta sets key to value if it is unset, and returns "";
	// otherwise it changes nothing and returns the value the key has.
	claimMeta(ctx context.Context, key, value string) (held string, err error)
}

// markImporting sets MetaImporting, before an import's first write,
// unless another import has set it meanwhile: then it refuses
// (errImportUnfinished). Every import checks for a mark when it begins,
// but two that begin at the same instant both find none; were the check
// and the set apart, both would write, and the store would count the
// word list twice. So the mark is set only where it is unset, in one
// atomic step, and of two imports at once exactly one goes on.
func markImporting(ctx context.Context, s Store) error {
	mine := thisImporter()
	c, ok := s.(metaClaimer)
	if !ok {
		// A store of another kind: check and set apart, the best it
		// allows.
		if err := refuseInterrupted(ctx, s); err != nil {
			return err
		}
		if err := s.SetMeta(ctx, MetaImporting, mine); err != nil {
			dropLostMark(ctx, s, mine)
			return err
		}
		return nil
	}
	held, err := c.claimMeta(ctx, MetaImporting, mine)
	if err != nil {
		dropLostMark(ctx, s, mine)
		return err
	}
	if held != "" {
		return errImportUnfinished{parseImportMark(held)}
	}
	return nil
}

// dropLostMark takes away the mark mine if a write of it that failed
// set it all the same: a Redis reply lost after the script ran (a
// connection cut, a read timeout, a server killed after it wrote). The
// import then fails before it has written anything, and its mark must
// not stay: the store would refuse train, prune, export and imports, and
// the daemons sharing it would learn nothing, for an import of which
// nothing is in it. A mark of another value is another import's, and
// stays. If the store cannot be read now either, the mark stays too:
// the store says so (sluice db stats), and nothing was imported. Not cut
// short by ctx: a context that ended while the mark's reply was awaited
// is one way to lose the reply.
func dropLostMark(ctx context.Context, s Store, mine string) {
	ctx = context.WithoutCancel(ctx)
	if held, err := s.Meta(ctx, MetaImporting); err == nil && held == mine {
		s.SetMeta(ctx, MetaImporting, "")
	}
}

// atomicAdder is a store whose Add writes all of a batch or none of it
// (bbolt: one transaction). A Redis Add runs several scripts, and one that
// fails may follow others that wrote.
type atomicAdder interface{ addIsAtomic() }

// markFirstAdd marks s before an import's first write (MetaImporting),
// checks again that the store takes the import's dialect (want), and sets
// it if the store has none yet (see checkDialect): only now, so that an
// import that writes nothing leaves no empty store marked as another
// dialect's. The check made when the import began is not enough: another
// import, of the other dialect, may have written and finished since; once
// the mark is set, none can begin. It returns the dialect it set, "" if
// none.
func markFirstAdd(ctx context.Context, s Store, want string) (string, error) {
	if err := markImporting(ctx, s); err != nil {
		return "", err
	}
	set, err := checkDialect(ctx, s, want)
	if err == nil && set != "" {
		err = s.SetMeta(ctx, MetaDialect, set)
	}
	if err != nil {
		// Nothing of the import is in the store: the mark goes.
		s.SetMeta(ctx, MetaImporting, "")
		return "", err
	}
	return set, nil
}

// unmarkAfterFirstAdd takes the import mark back after the store refused
// an import's first batch, if the store then holds nothing of the import:
// a full disk must not leave a trained store marked, refusing train,
// prune, export and imports, with an import into a new store, which would
// lose the store's own training, as the only way out. The dialect the
// import set (markFirstAdd) goes first: an empty store left as
// bogofilter's would tokenise what it learns next as bogofilter does and
// refuse a sluice export. It reports whether the mark went.
func unmarkAfterFirstAdd(ctx context.Context, s Store, dialect string) bool {
	if _, ok := s.(atomicAdder); !ok {
		return false
	}
	return unmark(ctx, s, dialect)
}

// unmark takes away the mark of an import that wrote nothing, and the
// dialect it set (markFirstAdd), if any. It reports whether the mark
// went.
func unmark(ctx context.Context, s Store, dialect string) bool {
	if dialect != "" && s.SetMeta(ctx, MetaDialect, "") != nil {
		return false
	}
	return s.SetMeta(ctx, MetaImporting, "") == nil
}

// importWriter adds an import's batches to a store: it marks the store
// (markFirstAdd) before the first, runs check, and takes the mark back if
// check or the store refuses that first batch (unmarkAfterFirstAdd).
type importWriter struct {
	s    Store
	want string // the import's dialect
	// check, if not nil, looks at the store once it is marked, before
	// the first batch is written, and refuses the import with an error.
	// Under the mark, no other import writes meanwhile: of two imports
	// of one export at once, the second finds the first's digests.
	check func(ctx context.Context) error
	// dialect is the dialect to record with the first batch, if any, as
	// checkDialect found when the import began; once the store is
	// marked, the one markFirstAdd set.
	dialect string
	// fingerprint is the input's (importFingerprint), recorded in the
	// store as the mark goes, once the whole import is in it.
	fingerprint string
	// carried are the records of imports an export holds (its f
	// lines), recorded with fingerprint where the store has none of
	// the same key (see ImportInput.Into).
	carried []metaEntry
	marked  bool // MetaImporting is set
	added   bool // a batch is in the store
}

func (w *importWriter) add(ctx context.Context, b Batch) error {
	if !w.marked {
		set, err := markFirstAdd(ctx, w.s, w.want)
		if err != nil {
			return err
		}
		w.dialect, w.marked = set, true
		if w.check != nil {
			if err := w.check(ctx); err != nil {
				// Nothing of the import is in the store.
				if unmark(ctx, w.s, w.dialect) {
					w.marked = false
				}
				return errBeforeWrite{err}
			}
		}
	}
	if err := w.s.Add(ctx, b); err != nil {
		if w.added {
			return fmt.Errorf("%w (the store holds part of the import now)", err)
		}
		unmarkAfterFirstAdd(ctx, w.s, w.dialect)
		return err
	}
	w.added = true
	return nil
}

// done takes the import's mark away once all of it is in the store, and
// records the input's fingerprint in the same step, with those an export
// carries, so that the same input is refused next time (see
// refuseImported): a store holds either the mark, which refuses any
// import, or the whole import and its fingerprints. An import that wrote nothing set no mark, and takes none:
// a mark there is another import's, begun meanwhile and maybe still
// writing; nor does it record its fingerprint, having added nothing.
func (w *importWriter) done(ctx context.Context) error {
	if w.s == nil || !w.marked {
		return nil
	}
	if w.fingerprint == "" {
		return w.s.SetMeta(ctx, MetaImporting, "")
	}
	own := metaEntry{MetaImportedPrefix + w.fingerprint, time.Now().UTC().Format(time.RFC3339)}
	return finishImport(ctx, w.s, own, w.carried)
}

// exportSource is what Export reads of a store.
type exportSource interface {
	Stats(ctx context.Context) (Stats, error)
	Meta(ctx context.Context, key string) (string, error)
	WalkMeta(ctx context.Context, prefix string, fn func(key, value string) error) error
	Walk(ctx context.Context, fn func(Record) error) error
	WalkDigests(ctx context.Context, fn func(DigestClass) error) error
}

// snapshotter is a store that can show a reader one version of itself:
// an export taken while messages are learned then has totals, tokens and
// digests that agree (a digest exported without its message's tokens
// would make that message "already learned" after an import, and
// unlearning it would take counts from others).
type snapshotter interface {
	snapshot(ctx context.Context, fn func(exportSource) error) error
}

// Export writes the whole store in the export format: for bbolt, one
// version of it (see snapshotter); a Redis walk is no snapshot (see
// RedisStore.Walk), and an exact export of one needs training stopped.
func Export(ctx context.Context, s Store, w io.Writer) error {
	if sn, ok := s.(snapshotter); ok {
		return sn.snapshot(ctx, func(src exportSource) error { return export(ctx, src, w) })
	}
	return export(ctx, s, w)
}

func export(ctx context.Context, s exportSource, w io.Writer) error {
	// Read in the version exported: an import that sets its mark after a
	// caller's own check must not have its first batches exported as a
	// whole store, without the mark.
	mark, err := s.Meta(ctx, MetaImporting)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if m := parseImportMark(mark); m.Began != "" {
		return fmt.Errorf("export: the store holds part of an import begun %s that has not finished (%s); an export of it would pass for a whole store", m.Began, m.Progress())
	}
	bw := bufio.NewWriter(w)
	st, err := s.Stats(ctx)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	d, err := s.Meta(ctx, MetaDialect)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	dialect, err := ParseDialect(d)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(bw, "%s\ndialect %s\ntotals %d %d\n", exportHeader, dialect, st.Spam, st.Ham)
	var tokens, digests int
	// The fingerprint an import of this export will have: of the
	// records as written.
	var fp importFingerprint
	err = s.Walk(ctx, func(r Record) error {
		tokens++
		day := r.LastSeen
		if !day.Valid() {
			// Import refuses a day that is none; a store may hold one
			// from an import of a version that did not check. Not known
			// is what it means.
			day = 0
		}
		fp.token(Record{Token: r.Token, Counts: Counts{Spam: r.Spam, Ham: r.Ham, LastSeen: day}})
		_, err := fmt.Fprintf(bw, "t %s %d %d %d\n", quoteToken(r.Token), r.Spam, r.Ham, day)
		return err
	})
	if err != nil {
		return fmt.Errorf("export tokens: %w", err)
	}
	var line []byte
	err = s.WalkDigests(ctx, func(d DigestClass) error {
		digests++
		// Import refuses what it could not learn or read: a digest of
		// no class (a damaged store) fails the export rather than make
		// one that does not import; features that do not decode (Add
		// takes them as they are), which no refit can read, are
		// exported as none, the message still learned.
		if d.Class != Spam && d.Class != Ham {
			return fmt.Errorf("corrupt digest entry %s: class %d", d.Digest, d.Class)
		}
		if len(d.Features) > 0 {
			if _, err := DecodeFeatures(d.Features); err != nil {
				d.Features = nil
			}
		}
		fp.digest(d)
		line = fmt.Appendf(line[:0], "d %s %s", d.Digest, d.Class)
		if len(d.Features) > 0 {
			line = append(line, ' ')
			line = base64.StdEncoding.AppendEncode(line, d.Features)
		}
		line = append(line, '\n')
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return fmt.Errorf("export digests: %w", err)
	}
	own := fp.sum(dialect, Totals{Spam: st.Spam, Ham: st.Ham})
	fingerprints := 0
	err = s.WalkMeta(ctx, MetaImportedPrefix, func(key, when string) error {
		f := strings.TrimPrefix(key, MetaImportedPrefix)
		if err := checkFingerprint(f, when); err != nil {
			return fmt.Errorf("the store's record of an import, %q: %w", key, err)
		}
		if f == own {
			// The export's own fingerprint, which an import of it
			// records anyway: a store made from an export of a store
			// made from it exports the same bytes.
			return nil
		}
		fingerprints++
		_, err := fmt.Fprintf(bw, "f %s %s\n", f, when)
		return err
	})
	if err != nil {
		return fmt.Errorf("export import fingerprints: %w", err)
	}
	fmt.Fprintf(bw, "end %d %d %d\n", tokens, digests, fingerprints)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

func quoteToken(t string) string {
	if t == "" || t[0] == '"' || !utf8.ValidString(t) {
		return strconv.Quote(t)
	}
	for _, r := range t {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return strconv.Quote(t)
		}
	}
	return t
}

// ImportStats say what an import read.
type ImportStats struct {
	Tokens  int
	Digests int
	Totals  Totals
	// Fingerprints is the number of an export's records of inputs the
	// exported store imported (f lines), which the import records too.
	Fingerprints int
}

// Import reads the export format and adds it to the store. The store's
// dialect must be unset (empty store) or equal to the export's, and the
// store must not have learned any of the export's messages (the digests
// of both): it would count them twice (see refuseLearned); nor may it
// record the export as imported (its fingerprint, see refuseImported),
// which tells an export without digests imported before.
//
// Import reads and checks all of r before it writes anything, so that a
// damaged or truncated export changes nothing and can be imported again
// once fixed without counting anything twice. r is kept meanwhile in an
// unlinked temporary file (in $TMPDIR), as large as the export. Only a
// failing store, or a run stopped while it writes, can leave an import
// half done; the error says so, and the store is marked (MetaImporting)
// so that another import into it is refused. A bbolt store that refuses
// the first batch (a full disk) holds nothing of the import and is left
// unmarked.
func Import(ctx context.Context, s Store, r io.Reader) (ImportStats, error) {
	if err := refuseInterrupted(ctx, s); err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	in, err := CheckImport(r)
	if err != nil {
		return ImportStats{}, err
	}
	defer in.Close()
	return in.Into(ctx, s)
}

// ImportInput is the input of an import, read whole and checked (by
// CheckImport or CheckBogoutil) and kept in an unlinked temporary file
// until Close. Checking it before the store is opened lets a caller
// refuse a damaged input without creating a store that did not exist.
type ImportInput struct {
	// Again imports the input into a store that records it as imported
	// already (its fingerprint, see MetaImportedPrefix), counting it a
	// second time, rather than refusing it (ErrAlreadyImported). It does
	// not let an export whose learned messages the store has in.
	Again bool

	spool       *os.File
	bogoutil    bool
	fingerprint string
}

// CheckImport reads all of r, an export (see Import), and checks it
// without writing to any store.
func CheckImport(r io.Reader) (*ImportInput, error) {
	r, head := peekInput(r)
	if why := wrongInput(head, false); why != "" {
		return nil, fmt.Errorf("import: %s", why)
	}
	var fp string
	spool, err := spoolChecked(r, "import", func(r io.Reader) error {
		var err error
		fp, err = importFingerprintOf(r, func(r io.Reader, f *importFingerprint) (Dialect, Totals, error) {
			d := DialectSluice
			st, err := importLines(context.Background(), importWriter{}, r, f, &d)
			return d, st.Totals, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ImportInput{spool: spool, fingerprint: fp}, nil
}

// CheckBogoutil reads all of r, a bogofilter word list (see
// ImportBogoutil), and checks it without writing to any store.
func CheckBogoutil(r io.Reader) (*ImportInput, error) {
	r, head := peekInput(r)
	if why := wrongInput(head, true); why != "" {
		return nil, fmt.Errorf("import bogoutil: %s", why)
	}
	var fp string
	spool, err := spoolChecked(r, "import bogoutil", func(r io.Reader) error {
		var err error
		fp, err = importFingerprintOf(r, func(r io.Reader, f *importFingerprint) (Dialect, Totals, error) {
			st, err := bogoutilLines(context.Background(), importWriter{}, r, f)
			return DialectBogofilter, st.Totals, err
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ImportInput{spool: spool, bogoutil: true, fingerprint: fp}, nil
}

// importFingerprintOf runs check, an import's check of all of r, which
// adds each record it reads to a fingerprint and returns the input's
// dialect and totals, and returns the fingerprint.
func importFingerprintOf(r io.Reader, check func(io.Reader, *importFingerprint) (Dialect, Totals, error)) (string, error) {
	var f importFingerprint
	d, t, err := check(r, &f)
	if err != nil {
		return "", err
	}
	return f.sum(d, t), nil
}

// refuseImported refuses the import if the store records the input as
// imported already, unless in.Again.
func (in *ImportInput) refuseImported(ctx context.Context, s Store) error {
	if in.Again {
		return nil
	}
	what := "export"
	if in.bogoutil {
		what = "word list"
	}
	return refuseImported(ctx, s, in.fingerprint, what)
}

// Close removes the checked input.
func (in *ImportInput) Close() error { return in.spool.Close() }

// Into adds the checked input to s, as Import or ImportBogoutil does once
// it has checked its input. It is to be called once.
func (in *ImportInput) Into(ctx context.Context, s Store) (ImportStats, error) {
	if in.bogoutil {
		return in.bogoutilInto(ctx, s)
	}
	// Again: another import may have begun while this one checked its
	// input, which takes seconds for a large export. Both writing would
	// count the export twice, and the first to finish would take the
	// other's mark.
	if err := refuseInterrupted(ctx, s); err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	info, err := in.spool.Stat()
	if err != nil {
		return ImportStats{}, fmt.Errorf("import: %w", err)
	}
	// The check reads the spool at offsets of its own (ReadAt), while
	// importLines reads it in turn.
	digests := io.NewSectionReader(in.spool, 0, info.Size())
	// The records of imports an export carries (its f lines: the
	// imports into the exported store, see Export) are recorded in s
	// with the export's own fingerprint, as the import finishes
	// (importWriter.carried), keeping the time s records where it has
	// one of them already: the store made from an export then refuses
	// the word lists the exported store imported, as that store does,
	// and passes the records on in its own exports. Without them, a word
	// list imported into store A, exported to a new store B, and
	// imported into B again, counted twice in B.
	//
	// A carried record that s has too refuses the import, unless Again,
	// as the export's own fingerprint does: the export's counts hold
	// that input, and s holds it already, so adding them counts it a
	// second time. So it is with a store that imported a list and then
	// an export of a store that holds the list and more, and with two
	// stores seeded from one bogofilter list and trained apart, merged:
	// whichever way that is done, the shared list counts twice, which
	// whoever merges them must choose (--again), not find out later.
	carried := io.NewSectionReader(in.spool, 0, info.Size())
	w := importWriter{s: s, fingerprint: in.fingerprint, check: func(ctx context.Context) error {
		// The digests first: an export of messages the store has is
		// refused, --again or not, and says which.
		if err := refuseLearned(ctx, s, digests); err != nil {
			return err
		}
		if err := in.refuseImported(ctx, s); err != nil {
			return err
		}
		if in.Again {
			return nil
		}
		return refuseCarried(ctx, s, carried)
	}}
	return importLines(ctx, w, in.spool, nil, nil)
}

// spoolChecked copies r into an unlinked temporary file (in $TMPDIR)
// while check reads it, and returns the file positioned at its start once
// check accepted all of it, so that an import can check its whole input
// before it writes anything and then read it again. what prefixes the
// errors of the file itself; check's errors are returned as they are.
func spoolChecked(r io.Reader, what string, check func(io.Reader) error) (*os.File, error) {
	spool, err := os.CreateTemp("", "sluice-import-*")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	// Unlinked at once: nothing is left behind, whatever happens.
	if err := os.Remove(spool.Name()); err != nil {
		spool.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := check(io.TeeReader(r, spool)); err != nil {
		spool.Close()
		return nil, err
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		spool.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return spool, nil
}

// maxExportLine bounds a line of an export. The longest a store can
// write is a digest with every feature: 2^20 distinct features below
// 2^20 packed as varint gaps take at most about 1 MiB, 1.4 MiB in
// base64.
const maxExportLine = 4 << 20

// maxBogoutilLine bounds a line of a bogoutil word list, far above a token
// and its counts.
const maxBogoutilLine = 1 << 20

// tooLong says what a line longer than max bytes means: the input is no
// file of the kind expected (a message, a compressed file, a device
// named by mistake), where the scanner said only "token too long".
func tooLong(err error, max int, kind string) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("longer than %d bytes, which no line of %s is: not %s", max, kind, kind)
	}
	return err
}

// scanLinesNotingCut is bufio.ScanLines that sets *cut when the input
// ends in a line without its newline.
func scanLinesNotingCut(cut *bool) bufio.SplitFunc {
	return func(data []byte, atEOF bool) (int, []byte, error) {
		adv, tok, err := bufio.ScanLines(data, atEOF)
		if atEOF && tok != nil && adv == len(data) && data[len(data)-1] != '\n' {
			*cut = true
		}
		return adv, tok, err
	}
}

// importLines reads an export from r and adds it to w.s (with its check,
// fingerprint and the rest of w set, see importWriter); with w.s nil it
// only checks r, adds each record to fp (if not nil) and sets *dialect
// (if not nil) to the export's dialect.
func importLines(ctx context.Context, w importWriter, r io.Reader, fp *importFingerprint, dialect *Dialect) (ImportStats, error) {
	s := w.s
	var st ImportStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxExportLine)
	// Export ends every line with a newline. An export of format 2 or 3
	// cut within a line lacks its end line; one of format 1 has none, and
	// a last line without its newline is all that tells it was cut short.
	cut := false
	sc.Split(scanLinesNotingCut(&cut))
	line := 0
	format := 0
	needEnd, sawEnd := false, false
	fingerprintLines := map[string]int{} // the line of each f line's fingerprint
	totalsLine := 0                      // the line of the totals
	dialectLine := 0                     // the line of the dialect
	var b Batch
	featureBytes := 0 // of the digests in b
	flush := func() error {
		// An export with nothing to add but import records still marks
		// the store, which takes the records as the mark goes.
		if s == nil || (len(b.Records) == 0 && len(b.Digests) == 0 && b.Totals == (Totals{}) && (w.marked || (w.dialect == "" && len(w.carried) == 0))) {
			b, featureBytes = Batch{}, 0
			return nil
		}
		if err := w.add(ctx, b); err != nil {
			return err
		}
		b, featureBytes = Batch{}, 0
		return nil
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			switch text {
			case exportHeader:
				format, needEnd = 3, true
			case exportHeaderV2:
				format, needEnd = 2, true
			case exportHeaderV1:
				format = 1
			default:
				if v, ok := strings.CutPrefix(text, "sluice-classifier-export "); ok {
					// A newer sluice's export (a store moved to a
					// machine that runs an older one): its records
					// may mean what this version cannot know.
					return st, fmt.Errorf("import: line 1: an export of format %.20q, which this sluice does not read (it reads formats 1 to 3): import it with the version of sluice that exported it, or a newer one", v)
				}
				return st, fmt.Errorf("import: line 1: not a sluice classifier export (want %q)", exportHeader)
			}
			continue
		}
		if text == "" {
			continue
		}
		if sawEnd {
			return st, fmt.Errorf("import: line %d: a record after the end line", line)
		}
		kind, rest, _ := strings.Cut(text, " ")
		var err error
		switch {
		case kind == "dialect" && dialectLine != 0:
			err = fmt.Errorf("a second dialect line (the first is line %d)", dialectLine)
		case kind == "dialect":
			dialectLine = line
		case dialectLine == 0 && (kind == "totals" || kind == "t" || kind == "d"):
			// Export writes the dialect first. Without it, the store
			// would take the records for its own dialect's, and a
			// batch of them could be in the store before a late
			// dialect line showed they are not.
			err = fmt.Errorf("a %s line before the dialect line", kind)
		}
		if err != nil {
			return st, fmt.Errorf("import: line %d: %w", line, err)
		}
		switch kind {
		case "dialect":
			if s == nil {
				var d Dialect
				d, err = ParseDialect(rest)
				if dialect != nil {
					*dialect = d
				}
			} else {
				w.want = rest
				w.dialect, err = checkDialect(ctx, s, rest)
			}
		case "totals":
			// Export writes one. A second (two exports run together, an
			// edit) is refused rather than added: what the store would
			// count is then a guess.
			if totalsLine != 0 {
				err = fmt.Errorf("a second totals line (the first is line %d)", totalsLine)
				break
			}
			totalsLine = line
			var t Totals
			t, err = parseTotals(rest)
			b.Totals.Spam += t.Spam
			b.Totals.Ham += t.Ham
			st.Totals = t
		case "t":
			var rec Record
			rec, err = parseTokenLine(rest)
			fp.token(rec)
			b.Records = append(b.Records, rec)
			st.Tokens++
		case "d":
			var dc DigestClass
			dc, err = parseDigestLine(rest)
			fp.digest(dc)
			if s == nil {
				// Checking only: the features need not be kept.
				dc.Features = nil
			}
			b.Digests = append(b.Digests, dc)
			featureBytes += len(dc.Features)
			st.Digests++
		case "f":
			if format < 3 {
				err = fmt.Errorf("an import fingerprint line in an export of format %d, which has none", format)
				break
			}
			var f, when string
			f, when, err = parseFingerprintLine(rest)
			if err != nil {
				break
			}
			if first, ok := fingerprintLines[f]; ok {
				err = fmt.Errorf("a second line for fingerprint %s (the first is line %d)", f, first)
				break
			}
			fingerprintLines[f] = line
			st.Fingerprints++
			if s != nil {
				w.carried = append(w.carried, metaEntry{MetaImportedPrefix + f, when})
			}
		case "end":
			sawEnd = true
			err = checkEnd(rest, st, format)
		default:
			err = fmt.Errorf("unknown record %q", kind)
		}
		if err != nil {
			return st, fmt.Errorf("import: line %d: %w", line, err)
		}
		if len(b.Records)+len(b.Digests) >= importBatch || featureBytes >= importBatchBytes {
			if err := flush(); err != nil {
				return st, flushError("import", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		// The line that failed was not counted.
		return st, fmt.Errorf("import: line %d: %w", line+1, tooLong(err, maxExportLine, "an export"))
	}
	if line == 0 {
		return st, errors.New("import: empty input")
	}
	if needEnd && !sawEnd {
		return st, fmt.Errorf("import: the export is truncated: it ends at line %d without its end line", line)
	}
	if !needEnd && cut {
		return st, fmt.Errorf("import: line %d: the export is truncated: its last line has no newline", line)
	}
	if totalsLine == 0 {
		// Every token's probability is its share of the learned spam
		// and of the learned ham: without the numbers of messages its
		// counts have nothing to be a share of.
		return st, errors.New("import: the export has no totals line (the numbers of learned spam and ham messages, which sluice db export always writes): it was cut or edited")
	}
	if err := flush(); err != nil {
		return st, fmt.Errorf("import: %w", err)
	}
	if err := w.done(ctx); err != nil {
		return st, fmt.Errorf("import: %w", err)
	}
	return st, nil
}

// flushError says at which line of the input a batch failed to be
// written; not when another import's mark, the dialect another import
// gave the store, or the check before the first write kept it from the
// store, which no line caused.
func flushError(what string, line int, err error) error {
	if errors.As(err, new(errImportUnfinished)) || errors.Is(err, ErrDialect) || errors.As(err, new(errBeforeWrite)) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: line %d: %w", what, line, err)
}

// checkEnd checks the end line, "TOKENS DIGESTS" (format 2) or "TOKENS
// DIGESTS FINGERPRINTS" (format 3), against what was read.
func checkEnd(s string, st ImportStats, format int) error {
	read := []int{st.Tokens, st.Digests}
	if format >= 3 {
		read = append(read, st.Fingerprints)
	}
	f := strings.Split(s, " ")
	if len(f) != len(read) {
		return fmt.Errorf("end line %q: want %d numbers", s, len(read))
	}
	says := make([]int, len(f))
	for i, v := range f {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return fmt.Errorf("end line %q: want %d numbers", s, len(read))
		}
		says[i] = int(n)
	}
	switch {
	case slices.Equal(says, read):
		return nil
	case format >= 3:
		return fmt.Errorf("end line says %d tokens, %d digests and %d import fingerprints, the export has %d, %d and %d", says[0], says[1], says[2], read[0], read[1], read[2])
	}
	return fmt.Errorf("end line says %d tokens and %d digests, the export has %d and %d", says[0], says[1], read[0], read[1])
}

// checkDialect makes sure counts of one dialect are not mixed into a store
// of another. It returns the dialect to record in a store that has none
// yet, "" if there is none to record; the import records it with its
// first write (markFirstAdd), not before, so that an import that writes
// nothing leaves the store as it was.
func checkDialect(ctx context.Context, s Store, want string) (string, error) {
	wd, err := ParseDialect(want)
	if err != nil {
		return "", err
	}
	cur, err := s.Meta(ctx, MetaDialect)
	if err != nil {
		return "", err
	}
	if cur == "" {
		st, err := s.Stats(ctx)
		if err != nil {
			return "", err
		}
		// Learned messages count as much as tokens: a store whose
		// tokens were all pruned (prune --older-than on a store left
		// untrained) still holds its message counts, which the
		// import's would be added to, and the digests (with n-gram
		// features) of messages its tokenizer read.
		if (st.Tokens > 0 || st.Spam > 0 || st.Ham > 0 || st.Digests > 0) && wd != DialectSluice {
			return "", fmt.Errorf("store has %d tokens and %d spam and %d ham messages learned in dialect sluice, import is %s: %w", st.Tokens, st.Spam, st.Ham, wd, ErrDialect)
		}
		if wd == DialectSluice {
			return "", nil
		}
		return string(wd), nil
	}
	cd, err := ParseDialect(cur)
	if err != nil {
		return "", err
	}
	if cd != wd {
		return "", fmt.Errorf("store dialect is %s, import is %s: %w", cd, wd, ErrDialect)
	}
	return "", nil
}

func parseTotals(s string) (Totals, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Totals{}, fmt.Errorf("totals: want 2 fields, got %d", len(f))
	}
	sp, err1 := strconv.ParseUint(f[0], 10, 32)
	hm, err2 := strconv.ParseUint(f[1], 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return Totals{}, fmt.Errorf("totals: %w", err)
	}
	return Totals{Spam: uint32(sp), Ham: uint32(hm)}, nil
}

func parseTokenLine(s string) (Record, error) {
	var tok string
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return Record{}, fmt.Errorf("token: %w", err)
		}
		tok, _ = strconv.Unquote(q)
		s = s[len(q):]
	} else {
		var ok bool
		tok, s, ok = strings.Cut(s, " ")
		if !ok {
			return Record{}, errors.New("token line: missing counts")
		}
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return Record{}, fmt.Errorf("token %q: want 3 numbers, got %d", tok, len(f))
	}
	rec, err := parseCounts(tok, f)
	if err != nil {
		return Record{}, err
	}
	return rec, checkDate(rec)
}

// checkDate refuses a last-seen day that is neither 0 nor a day of the
// calendar (20241399): it would never compare right with the days prune
// and stats work with.
func checkDate(rec Record) error {
	if !rec.LastSeen.Valid() {
		return fmt.Errorf("token %q: last seen %d: not a day (YYYYMMDD) nor 0", rec.Token, rec.LastSeen)
	}
	return nil
}

// maxImportToken bounds a token's length: bbolt's key limit (sluice's
// own tokens are a few dozen bytes at most). It is checked with the rest
// of the input, so that a longer token is refused before anything is
// written rather than by the store when its batch is, which would leave
// the store marked as holding part of an unfinished import.
const maxImportToken = bolt.MaxKeySize

// parseCounts parses "SPAM HAM DATE" fields.
func parseCounts(tok string, f []string) (Record, error) {
	sp, err1 := strconv.ParseUint(f[0], 10, 32)
	hm, err2 := strconv.ParseUint(f[1], 10, 32)
	dt, err3 := strconv.ParseUint(f[2], 10, 32)
	if err := errors.Join(err1, err2, err3); err != nil {
		return Record{}, fmt.Errorf("token %q: %w", tok, err)
	}
	if tok == "" {
		return Record{}, errors.New("empty token")
	}
	if len(tok) > maxImportToken {
		return Record{}, fmt.Errorf("token %.40q... of %d bytes: longer than the %d a store can keep", tok, len(tok), maxImportToken)
	}
	return Record{Token: tok, Counts: Counts{Spam: uint32(sp), Ham: uint32(hm), LastSeen: Date(dt)}}, nil
}

// parseDigestLine parses "DIGEST CLASS [FEATURES]".
func parseDigestLine(s string) (DigestClass, error) {
	f := strings.Split(s, " ")
	switch {
	case len(f) < 2:
		return DigestClass{}, errors.New("digest line: missing class")
	case len(f) > 3:
		return DigestClass{}, fmt.Errorf("digest line: want 2 or 3 fields, got %d", len(f))
	}
	d, err := ParseDigest(f[0])
	if err != nil {
		return DigestClass{}, err
	}
	c, err := ParseClass(f[1])
	if err != nil {
		return DigestClass{}, err
	}
	dc := DigestClass{Digest: d, Class: c}
	if len(f) == 3 {
		// Strict: only the encoding Export writes, so that export,
		// import and export again give the same bytes.
		dc.Features, err = base64.StdEncoding.Strict().DecodeString(f[2])
		if err != nil {
			return DigestClass{}, fmt.Errorf("digest %s: features: %w", d, err)
		}
		if len(dc.Features) == 0 {
			return DigestClass{}, fmt.Errorf("digest %s: empty features field", d)
		}
		// Checked here as a refit reads them: a blob that does not
		// decode would make every later refit, and so every "sluice
		// train", fail on this store.
		if _, err := DecodeFeatures(dc.Features); err != nil {
			return DigestClass{}, fmt.Errorf("digest %s: %w", d, err)
		}
	}
	return dc, nil
}

// ImportBogoutil reads a bogofilter word list as written by "bogoutil -d"
// (lines "TOKEN SPAMCOUNT HAMCOUNT YYYYMMDD", the message counts on the
// ".MSG_COUNT" line, which a list with tokens must have) and adds it to
// the store, which must be empty or already of the bogofilter dialect:
// bogofilter's tokens differ from this package's own, so the store is
// marked DialectBogofilter and NewForStore then tokenises as bogofilter
// does. A list the store records as imported (its fingerprint, see
// refuseImported) is refused. Other "."-prefixed lines (.WORDLIST_VERSION, .ENCODING, .ROBX)
// are bogofilter's bookkeeping and are skipped: .ROBX too, the robx
// "bogoutil -R" stored, which bogofilter scores with when its
// configuration sets none; the store scores with the robx its
// configuration gives (BogofilterParams by default).
//
// Like Import, it reads and checks all of r (kept meanwhile in an unlinked
// temporary file) before it writes anything, the dialect mark included:
// a malformed line anywhere changes nothing, and the list can be imported
// again once fixed without counting anything twice.
func ImportBogoutil(ctx context.Context, s Store, r io.Reader) (ImportStats, error) {
	in, err := CheckBogoutil(r)
	if err != nil {
		return ImportStats{}, err
	}
	defer in.Close()
	return in.Into(ctx, s)
}

func (in *ImportInput) bogoutilInto(ctx context.Context, s Store) (ImportStats, error) {
	if err := refuseInterrupted(ctx, s); err != nil {
		return ImportStats{}, fmt.Errorf("import bogoutil: %w", err)
	}
	setDialect, err := checkDialect(ctx, s, string(DialectBogofilter))
	if err != nil {
		return ImportStats{}, fmt.Errorf("import bogoutil: %w", err)
	}
	w := importWriter{s: s, want: string(DialectBogofilter), dialect: setDialect, fingerprint: in.fingerprint, check: func(ctx context.Context) error {
		return in.refuseImported(ctx, s)
	}}
	return bogoutilLines(ctx, w, in.spool, nil)
}

// bogoEncodingRaw is the value of a bogoutil word list's .ENCODING line
// (its spam count) when its tokens are raw bytes, not UTF-8 (2).
const bogoEncodingRaw = 1

// bogoutilLines reads a bogoutil word list from r and adds it to w.s
// (w.dialect is the dialect to record with the first batch, see
// checkDialect); with w.s nil it only checks r, and adds each record to
// fp, if not nil.
func bogoutilLines(ctx context.Context, w importWriter, r io.Reader, fp *importFingerprint) (ImportStats, error) {
	s := w.s
	var st ImportStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxBogoutilLine)
	// bogoutil -d ends every line with a newline: a last line without
	// one was cut short, and so may be its counts ("bar 1 23" of
	// "bar 1 234 20240101" would read as 23 ham and no date).
	cut := false
	sc.Split(scanLinesNotingCut(&cut))
	line := 0
	lastRecord := 0 // the line of the last non-blank line
	// A list of bogofilter --unicode=no keeps non-ASCII words as the
	// message's raw bytes, which the bogofilter dialect, making UTF-8,
	// would never match.
	rawEncoding := false
	firstNonASCII := 0 // the line of the first token with a byte above 0x7f
	countLine := 0     // the line of .MSG_COUNT
	// The first token counted in spam, and in ham: a class with no
	// learned message has none.
	spamLine, hamLine := 0, 0
	var b Batch
	flush := func() error {
		if s == nil {
			b = Batch{}
			return nil
		}
		if err := w.add(ctx, b); err != nil {
			return err
		}
		b = Batch{}
		return nil
	}
	for sc.Scan() {
		line++
		// Blanks and tabs only: bogofilter's tokens are bytes, and may
		// hold a no-break space (U+00A0) or an ideographic space (U+3000),
		// which strings.Fields would split at.
		f := strings.FieldsFunc(sc.Text(), func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 {
			continue
		}
		lastRecord = line
		if len(f) == 3 {
			// Word lists without timestamps (bogoutil -d of a list
			// built with timestamps off) have no date column.
			f = append(f, "0")
		}
		if len(f) != 4 {
			return st, fmt.Errorf("import bogoutil: line %d: want TOKEN SPAM HAM DATE, got %d fields", line, len(f))
		}
		rec, err := parseCounts(f[0], f[1:])
		if err != nil {
			return st, fmt.Errorf("import bogoutil: line %d: %w", line, err)
		}
		if firstNonASCII == 0 && !isASCII([]byte(rec.Token)) {
			firstNonASCII = line
		}
		switch {
		case rec.Token == ".ENCODING":
			rawEncoding = rec.Spam == bogoEncodingRaw
			continue
		case rec.Token == ".MSG_COUNT":
			// bogoutil -d writes one. A second (two lists run together)
			// is refused rather than added: importing each list in turn
			// adds them up, and says what each counted.
			if countLine != 0 {
				return st, fmt.Errorf("import bogoutil: line %d: a second .MSG_COUNT line (the first is line %d)", line, countLine)
			}
			countLine = line
			b.Totals.Spam += rec.Spam
			b.Totals.Ham += rec.Ham
			st.Totals = Totals{Spam: rec.Spam, Ham: rec.Ham}
			continue
		case strings.HasPrefix(rec.Token, "."):
			continue
		}
		// Only the days of tokens, which the store keeps; bogofilter's
		// bookkeeping lines are skipped whatever they hold.
		if err := checkDate(rec); err != nil {
			return st, fmt.Errorf("import bogoutil: line %d: %w", line, err)
		}
		if spamLine == 0 && rec.Spam > 0 {
			spamLine = line
		}
		if hamLine == 0 && rec.Ham > 0 {
			hamLine = line
		}
		fp.token(rec)
		b.Records = append(b.Records, rec)
		st.Tokens++
		if len(b.Records) >= importBatch {
			if err := flush(); err != nil {
				return st, flushError("import bogoutil", line, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("import bogoutil: line %d: %w", line+1, tooLong(err, maxBogoutilLine, "a bogoutil word list"))
	}
	if lastRecord == 0 {
		// bogoutil -d writes nothing for a word list it cannot open: an
		// empty list must not mark the store as bogofilter's.
		return st, errors.New("import bogoutil: empty word list")
	}
	if cut && lastRecord == line {
		return st, fmt.Errorf("import bogoutil: line %d: the word list is truncated: its last line has no newline", line)
	}
	if countLine == 0 && st.Tokens > 0 {
		// As for an export's totals: the counts of the tokens would have
		// nothing to be a share of, and each message trained afterwards
		// would weigh as much as all that bogofilter learned. bogoutil
		// -d writes the line for any list bogofilter trained; one loaded
		// with bogoutil -l from a list without it has none.
		return st, errors.New("import bogoutil: the word list has no .MSG_COUNT line (the numbers of spam and ham messages bogofilter learned, which the tokens' counts are shares of); add one, \".MSG_COUNT SPAM HAM 0\", with those numbers")
	}
	for _, c := range []struct {
		class string
		line  int
		n     uint32
	}{{"spam", spamLine, st.Totals.Spam}, {"ham", hamLine, st.Totals.Ham}} {
		// bogofilter counts a token once per message it learns, so
		// never writes this; counts of a class with no message have
		// nothing to be a share of.
		if c.line != 0 && c.n == 0 {
			return st, fmt.Errorf("import bogoutil: line %d: a token counted in %s, but .MSG_COUNT (line %d) says 0 %s messages were learned", c.line, c.class, countLine, c.class)
		}
	}
	if rawEncoding && firstNonASCII != 0 {
		return st, fmt.Errorf("import bogoutil: line %d: the word list is not Unicode (.ENCODING %d, bogofilter --unicode=no): its non-ASCII tokens are raw bytes that sluice's UTF-8 tokens would never match; convert a copy with \"bogoutil --unicode=yes -m wordlist.db\" and dump that", firstNonASCII, bogoEncodingRaw)
	}
	if err := flush(); err != nil {
		return st, fmt.Errorf("import bogoutil: %w", err)
	}
	if err := w.done(ctx); err != nil {
		return st, fmt.Errorf("import bogoutil: %w", err)
	}
	return st, nil
}
