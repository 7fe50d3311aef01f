package classifier

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Class is what a message is learned as.
type Class uint8

// Classes. The zero value is no class, used for "not learned".
const (
	None Class = iota
	Spam
	Ham
)

// String returns "spam", "ham" or "none".
func (c Class) String() string {
	switch c {
	case Spam:
		return "spam"
	case Ham:
		return "ham"
	}
	return "none"
}

// ParseClass parses "spam" or "ham".
func ParseClass(s string) (Class, error) {
	switch s {
	case "spam":
		return Spam, nil
	case "ham":
		return Ham, nil
	}
	return None, fmt.Errorf("unknown class %q (want spam or ham)", s)
}

// Date is a calendar day as the number YYYYMMDD, the form bogofilter keeps
// and dumps; it orders correctly as a number.
type Date uint32

// DateOf returns the UTC day of t.
func DateOf(t time.Time) Date {
	y, m, d := t.UTC().Date()
	return Date(y*10000 + int(m)*100 + d)
}

// Valid reports whether d is 0 (no day known) or a day of the calendar,
// YYYYMMDD from year 1 on, as DateOf makes them.
func (d Date) Valid() bool {
	if d == 0 {
		return true
	}
	y, m, day := int(d/10000), time.Month(d/100%100), int(d%100)
	if y < 1 || m < time.January || m > time.December || day < 1 {
		return false
	}
	// time.Date normalises a day past the month's end into the next.
	_, m2, day2 := time.Date(y, m, day, 0, 0, 0, 0, time.UTC).Date()
	return m2 == m && day2 == day
}

// Time returns midnight UTC of the day, or the zero Time for an invalid Date.
func (d Date) Time() time.Time {
	if d == 0 {
		return time.Time{}
	}
	return time.Date(int(d/10000), time.Month(d/100%100), int(d%100), 0, 0, 0, 0, time.UTC)
}

// Counts are what a store knows of one token: in how many learned spam and
// ham messages it occurred, and the last day it was learned or unlearned.
type Counts struct {
	Spam, Ham uint32
	LastSeen  Date
}

// countsBuf returns buf zeroed if it holds n counts (scratch a caller
// keeps from message to message, see Message.counts), else a new slice of
// n zero counts.
func countsBuf(buf []Counts, n int) []Counts {
	if len(buf) != n {
		return make([]Counts, n)
	}
	clear(buf)
	return buf
}

// Totals are the numbers of learned spam and ham messages.
type Totals struct {
	Spam, Ham uint32
}

// Record is one token and its counts, as walked, exported and imported.
type Record struct {
	Token string
	Counts
}

// LearnOp asks a store to learn or unlearn one message.
type LearnOp struct {
	Digest  Digest
	Class   Class // Spam or Ham
	Unlearn bool
	// NoMove leaves a message learned in the other class where it is
	// (outcome NotMoved) instead of moving it. Auto-learning sets it: a
	// copy of a message a user has trained by hand, arriving again,
	// must not undo that training by the daemon's own verdict.
	NoMove bool
	Tokens []string // distinct tokens of the message
	Date   Date     // recorded as the tokens' last-seen day
	// Features are the message's encoded n-grams (EncodeFeatures), kept
	// with its digest while it is learned, for FitNgram; nil if none.
	Features []byte
	// Dialect is the tokenizer dialect that made Tokens. The store
	// refuses the op (ErrDialect) when it holds the other dialect's
	// counts: a store imported from bogofilter, or moved into place,
	// after the learner read its dialect would otherwise take tokens
	// that mean nothing to it. Empty: not checked.
	Dialect Dialect
}

// Outcome says what a LearnOp did.
type Outcome uint8

// Outcomes of learning.
const (
	// Learned: the message was new and is now learned in the class.
	Learned Outcome = iota + 1
	// AlreadyLearned: the message was already learned in this class;
	// nothing changed.
	AlreadyLearned
	// Moved: the message was learned in the other class; it was
	// unlearned there and learned in this one (bogofilter's -Sn / -Ns).
	Moved
	// Unlearned: the message was learned in this class and is removed.
	Unlearned
	// NotLearned: unlearn of a message not learned in this class;
	// nothing changed.
	NotLearned
	// NotMoved: the message was learned in the other class and the op
	// had NoMove; nothing changed.
	NotMoved
)

// String returns the outcome in words.
func (o Outcome) String() string {
	switch o {
	case Learned:
		return "learned"
	case AlreadyLearned:
		return "already learned"
	case Moved:
		return "moved"
	case Unlearned:
		return "unlearned"
	case NotLearned:
		return "not learned"
	case NotMoved:
		return "learned in the other class, not moved"
	}
	return "unknown"
}

// Stats describe a store.
type Stats struct {
	Totals
	Tokens   int   // distinct tokens
	Digests  int   // learned messages remembered
	Features int   // of them, with n-gram features kept (see DropFeatures)
	Bytes    int64 // size on disk, 0 if not applicable
	Oldest   Date  // earliest last-seen day of a token, 0 if none
	Newest   Date  // latest last-seen day of a token, 0 if none
	Singular int   // tokens seen in only one message (spam+ham == 1)
}

// PruneOptions select tokens to delete. With one criterion set, tokens
// matching it are deleted; with both, only tokens matching both.
type PruneOptions struct {
	// Before deletes tokens last seen before this day (0: no age limit).
	Before Date
	// MaxCount deletes tokens whose spam+ham count is at most this
	// (0: no count limit). Combined with Before, only old tokens with
	// low counts go, which is the usual way to shrink a store.
	MaxCount uint32
}

// Batch is a raw write used by import: counts are added to what the store
// has, digests are set. Import into an empty store therefore reproduces
// the exported one exactly.
type Batch struct {
	Totals  Totals
	Records []Record
	Digests []DigestClass
}

// DigestClass is a learned-message digest and its class.
type DigestClass struct {
	Digest Digest
	Class  Class
	// Features are the message's encoded n-grams, nil if the store
	// has none for it (learned before the n-gram model existed, or
	// imported from bogofilter).
	Features []byte
}

// MetaDialect is the Meta key holding the tokenizer dialect of the counts
// in a store: "" or "sluice" for this package's tokenizer, "bogofilter" for
// a word list imported from bogofilter, whose tokens only a
// bogofilter-compatible tokenizer reproduces.
const MetaDialect = "dialect"

// ErrBusy is returned when the store stays locked by another process for
// longer than the store's lock timeout.
var ErrBusy = errors.New("store busy: locked by another process")

// ErrReadOnly is returned by a write to a store opened for reading only
// (BoltOptions.ReadOnly).
var ErrReadOnly = errors.New("store opened read-only")

// ErrDamaged is returned when the store's file is not a valid store: its
// pages hold garbage. Restore a backup, or import an export into a new
// store.
var ErrDamaged = errors.New("store file is damaged")

// ErrDialect is returned by an import or a learn whose tokens are of
// another tokenizer dialect than the store's: the two do not mix.
var ErrDialect = errors.New("the tokens of two dialects do not mix")

// errLearnDialect refuses a learn whose tokens were made in another
// dialect than the one of the store's counts: the learner read the
// store's dialect when it opened it, and an import of a bogofilter word
// list into the (then empty) store, or another store moved into its
// place, changed it since.
type errLearnDialect struct{ store, op Dialect }

func (e errLearnDialect) Error() string {
	return fmt.Sprintf("the store holds %s tokens, but these messages were read as the %s tokenizer reads them "+
		"(the store was imported into or replaced after it was opened); nothing of them was learned: "+
		"open the store again (run the command again, or reload the daemon)", e.store, e.op)
}

func (e errLearnDialect) Unwrap() error { return ErrDialect }

// checkLearnDialect returns errLearnDialect for the first op whose
// dialect is not the store's, stored as the MetaDialect value has it.
func checkLearnDialect(stored string, ops []LearnOp) error {
	d, err := ParseDialect(stored)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	for _, op := range ops {
		if op.Dialect != "" && op.Dialect != d {
			return errLearnDialect{store: d, op: op.Dialect}
		}
	}
	return nil
}

// Store keeps token counts. Implementations must be safe for concurrent use
// by several goroutines. The bbolt store (Open) is the default; a network
// store (Redis) can implement the same interface and pass the same contract
// tests (package classifier/storetest).
type Store interface {
	// Lookup returns the totals and, for each token, its counts (zero for
	// unknown tokens), in one consistent read.
	Lookup(ctx context.Context, tokens []string) (Totals, []Counts, error)
	// Learn applies learn and unlearn operations, each atomically and
	// with the semantics of Outcome, and returns one outcome per op.
	Learn(ctx context.Context, ops []LearnOp) ([]Outcome, error)
	// Add applies a raw batch (import).
	Add(ctx context.Context, b Batch) error
	// Walk calls fn for each token in byte order of the token, and
	// stops at the first error fn returns.
	Walk(ctx context.Context, fn func(Record) error) error
	// WalkDigests calls fn for each learned-message digest.
	WalkDigests(ctx context.Context, fn func(DigestClass) error) error
	// WalkLearned is WalkDigests, and returns the store's learn
	// generation as of the start of the walk. The generation is a
	// number that every change of the learned digests or their
	// features (by Learn or Add) raises, in the same atomic write as
	// the change; it starts at 0. A model fitted on the walk has every
	// change up to that generation (and may have later ones).
	WalkLearned(ctx context.Context, fn func(DigestClass) error) (gen uint64, err error)
	// DropFeatures clears the features of those of digests that are
	// learned and have features, and returns how many; the digests stay
	// learned, in their class. It raises the learn generation (see
	// WalkLearned) in the same atomic write as a change, and only if
	// something changed. A store may write in several atomic batches:
	// each is whole, and an error may leave the batches before it
	// written. Refit drops the features no fit reads with it.
	DropFeatures(ctx context.Context, digests []Digest) (int, error)
	// Stats returns the size of the store.
	Stats(ctx context.Context) (Stats, error)
	// Prune deletes tokens and returns how many. A store may delete in
	// several atomic batches, letting readers in between: each is whole,
	// and an error may leave the batches before it done.
	Prune(ctx context.Context, opts PruneOptions) (int, error)
	// Meta returns a store-wide setting ("" if unset); SetMeta sets it.
	// The classifier keeps the tokenizer dialect there (MetaDialect).
	// The n-gram model is read with Meta but written with SetModel.
	Meta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
	// WalkMeta calls fn for each store-wide setting whose key starts
	// with prefix, in byte order of the key, and stops at the first
	// error fn returns. An export reads the fingerprints of the inputs
	// imported into the store with it (MetaImportedPrefix).
	WalkMeta(ctx context.Context, prefix string, fn func(key, value string) error) error
	// SetModel writes the n-gram model and its id (the Meta values of
	// MetaModel and MetaModelID; both "" to remove the model) in one
	// atomic write, as fitted on a WalkLearned of generation gen, and
	// returns true; unless the store holds a model written with a later
	// generation, and then it changes nothing and returns false. So of
	// two refits at once, the model of the later read stays, whichever
	// writes last; and no reader sees a model with another model's id.
	SetModel(ctx context.Context, gen uint64, model, id string) (stored bool, err error)
	// Close releases the store.
	Close() error
}
