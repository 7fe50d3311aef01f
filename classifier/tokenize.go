package classifier

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// TokenizerOptions bound the work done on one message and name the header
// fields it leaves out. The zero value of a field means its default.
type TokenizerOptions struct {
	// MaxBytes is how much of a message is read; the rest is ignored.
	// Spam signals sit in the headers and the first parts, so a cap costs
	// little accuracy and keeps a 50 MB attachment from costing 50 MB of work.
	// Default 1 MiB.
	MaxBytes int
	// MaxTokens caps the number of distinct tokens taken from a message,
	// but for up to a tenth as many more tokens of link hosts and of the
	// MIME structure taken past it (see walker.add). Default 20000.
	MaxTokens int
	// MaxDepth caps MIME nesting (multipart inside message/rfc822 inside
	// multipart ...). Default 8.
	MaxDepth int
	// MaxParts caps the number of MIME parts walked. Default 256.
	MaxParts int
	// Dialect selects the tokenizer; default DialectSluice.
	Dialect Dialect
	// SkipFields names header fields (in any case) to leave out besides
	// the built-in list of spam verdicts and mailbox bookkeeping (see
	// Skips): fields added after the message was classified, such as a
	// verdict field of a configured name. Left out of the tokens, the
	// header order token and the digest of a learned message, such a
	// field cannot teach the classifier its own verdicts when a
	// delivered message is retrained, nor make the delivered copy
	// another message than the one learned at SMTP time. The bogofilter
	// dialect's tokens read every field, as they always did; its digests
	// leave these out too.
	SkipFields []string
}

// Defaults for TokenizerOptions.
const (
	DefaultMaxBytes  = 1 << 20
	DefaultMaxTokens = 20000
	DefaultMaxDepth  = 8
	DefaultMaxParts  = 256
)

func (o TokenizerOptions) withDefaults() TokenizerOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxParts <= 0 {
		o.MaxParts = DefaultMaxParts
	}
	if o.Dialect == "" {
		o.Dialect = DialectSluice
	}
	o.SkipFields = extraSkips(o.SkipFields)
	return o
}

// Skips reports whether a header field of that name (in any case) is left
// out of the tokens and the digest: one of the built-in list, or of
// SkipFields.
func (o TokenizerOptions) Skips(name string) bool {
	return skipHeader(strings.ToLower(name)) ||
		slices.ContainsFunc(o.SkipFields, func(s string) bool { return strings.EqualFold(s, name) })
}

// extraSkips returns the names of skip, lower-cased, in a new slice (the
// caller's stays its own), without those the built-in list leaves out
// already and without repeats: the check per field (isExtraSkip) then
// costs nothing in the default configuration. nil if none is left.
func extraSkips(skip []string) []string {
	var out []string
	for _, s := range skip {
		s = strings.ToLower(s)
		if s == "" || skipHeader(s) || slices.Contains(out, s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Tokenizer turns a message into the set of tokens the classifier scores.
// It is safe for concurrent use.
type Tokenizer struct {
	opts TokenizerOptions
	// walkers keeps the scratch memory of finished messages (token arena,
	// hash table, buffers) for the next one: a daemon tokenises message
	// after message, and reusing it saves most of the allocation.
	walkers sync.Pool
}

// NewTokenizer returns a Tokenizer with the given bounds.
func NewTokenizer(opts TokenizerOptions) *Tokenizer {
	return &Tokenizer{opts: opts.withDefaults()}
}

// maxPooledArena is the largest token arena kept for reuse: one huge
// message must not pin its memory for the life of the process.
const maxPooledArena = 256 << 10

// Message is a tokenised message.
type Message struct {
	// Tokens are the distinct tokens of the message, sorted (in the
	// order they occur in a Message the classifier made for itself to
	// score). Each counts
	// once however often it occurs (bogofilter does the same; repeating a
	// word must not push the score).
	Tokens []string
	// Truncated is set when a bound (bytes, tokens, parts, depth) was hit.
	Truncated bool
	// Features are the message's distinct features for the n-gram
	// model (NgramFeatures and the WordFeatures of Tokens), in no
	// particular order, for the sluice dialect only; nil for the
	// bogofilter dialect.
	Features []uint32
	// hashes are the tokenHash of each of Tokens, for a lookup in a
	// store's in-memory table, when the classifier tokenised the message
	// for itself (Tokenizer.withMessage); nil otherwise.
	hashes []uint64
	// counts is scratch of len(Tokens) for the counts of a lookup,
	// when the classifier tokenised the message for itself; nil
	// otherwise. Its contents mean nothing.
	counts []Counts
}

// MaxBytes returns how much of a message the tokenizer looks at, so that a
// caller reading many messages need hold no more of each.
func (t *Tokenizer) MaxBytes() int { return t.opts.MaxBytes }

// Tokenize reads at most MaxBytes of a message from r and returns its tokens.
// Broken MIME never fails: whatever can be read is tokenised. The only
// errors are read errors from r.
func (t *Tokenizer) Tokenize(r io.Reader) (Message, error) {
	return t.tokenizeReader(r, true)
}

// tokenizeReader is Tokenize, with the tokens sorted only if sorted is set.
func (t *Tokenizer) tokenizeReader(r io.Reader, sorted bool) (Message, error) {
	raw, truncated, err := t.read(r)
	if err != nil {
		return Message{}, err
	}
	msg := t.tokenize(raw, sorted)
	msg.Truncated = msg.Truncated || truncated
	return msg, nil
}

// read reads at most MaxBytes of a message, and of an mbox From_ line
// before it (see walker.tokenize, which makes the exact cut).
func (t *Tokenizer) read(r io.Reader) ([]byte, bool, error) {
	raw, truncated, err := readCapped(r, t.opts.MaxBytes+maxMboxFromLine)
	if err != nil {
		return nil, false, fmt.Errorf("read message: %w", err)
	}
	return raw, truncated, nil
}

// TokenizeBytes tokenises a message held in memory. Only the first MaxBytes
// are looked at.
func (t *Tokenizer) TokenizeBytes(raw []byte) Message {
	return t.tokenize(raw, true)
}

// tokenize is TokenizeBytes, with the tokens sorted only if sorted is set.
// Scoring needs no order (see Classifier.Classify), and sorting is about a
// sixth of the time it takes to classify a message; learning, exports and
// callers of the exported methods get sorted tokens.
func (t *Tokenizer) tokenize(raw []byte, sorted bool) Message {
	w := t.acquire()
	defer t.release(w)
	return w.tokenize(raw, sorted, false)
}

// withMessage tokenises raw, tokens unsorted, and calls fn with the
// result. The Tokens and Features slices are the walker's scratch, valid
// only until fn returns (the token strings themselves stay valid): a
// message that is only scored needs them no longer, and reusing them
// saves allocating and zeroing about 20 kB per message, a few per cent of
// the time it takes to classify one.
func (t *Tokenizer) withMessage(raw []byte, fn func(Message)) {
	w := t.acquire()
	defer t.release(w)
	fn(w.tokenize(raw, false, true))
}

// acquire takes a walker from the pool, or makes one.
func (t *Tokenizer) acquire() *walker {
	if w, _ := t.walkers.Get().(*walker); w != nil {
		return w
	}
	return newWalker(t.opts)
}

// tokenize is Tokenizer.tokenize on w. With scratch set, the returned
// Tokens and Features slices are w's own (see Tokenizer.withMessage).
func (w *walker) tokenize(raw []byte, sorted, scratch bool) Message {
	truncated := false
	// The cap counts the message, not an mbox From_ line before it: the
	// command classifies a message file with that line in a store
	// imported from bogofilter (see classifierInput in cmd/sluice), the
	// daemon the same message without it, and both must read as much of
	// the message.
	if limit := w.opts.MaxBytes + mboxFromLineLen(raw); len(raw) > limit {
		raw = cutAtCharacter(raw, limit)
		truncated = true
	}
	if body := skipMboxFromLine(raw); len(body) != len(raw) {
		if w.bogo {
			// bogofilter reads the From_ line as a header line.
			w.bogoWords(raw[:len(raw)-len(body)], "head:")
		}
		raw = body
	}
	w.message(raw, 0, true)
	var toks []string
	switch {
	case sorted:
		toks = w.set.sorted()
	case scratch:
		w.toks = w.set.appendUnsorted(w.toks[:0])
		toks = w.toks
		w.hashes = w.set.appendHashes(w.hashes[:0])
	default:
		toks = w.set.appendUnsorted(make([]string, 0, w.set.len()))
	}
	var feats []uint32
	if !w.bogo {
		view := ngramView(w.viewBuf[:0], raw, w.opts.SkipFields)
		if len(view) > 0 && len(raw) > 0 && &view[0] != &raw[0] {
			w.viewBuf = view
		}
		if scratch {
			w.feats = w.seen.appendFeatures(w.feats[:0], view, toks)
			feats = w.feats
		} else {
			feats = w.seen.features(view, toks)
		}
		if feats == nil {
			feats = []uint32{}
		}
	}
	msg := Message{Tokens: toks, Truncated: truncated || w.truncated, Features: feats}
	if scratch {
		msg.hashes = w.hashes
		w.counts = slices.Grow(w.counts[:0], len(toks))[:len(toks)]
		msg.counts = w.counts
	}
	return msg
}

// cutAtCharacter returns raw cut to at most n bytes, at the start of the
// UTF-8 sequence that the n-th byte is in if the cut would split one. Cut
// inside a character, the text of the part the cut fell in was no valid
// UTF-8 and was read as windows-1252 as a whole: every word of a long
// 8-bit UTF-8 part came out as mojibake. Bytes that are no UTF-8 are cut
// where they fall. (Text in quoted-printable or base64 is cut in its
// encoding: toUTF8 drops the incomplete character its decoding ends in.)
func cutAtCharacter(raw []byte, n int) []byte {
	head := raw[:n]
	return head[:n-incompleteTail(head)]
}

// incompleteTail returns how many bytes at the end of b begin a UTF-8
// sequence that b ends before it is complete, 0 if none do.
func incompleteTail(b []byte) int {
	// Back over the continuation bytes at the end to the first byte of
	// their sequence. An incomplete sequence is at most UTFMax-1 long.
	for k := 1; k < utf8.UTFMax && k <= len(b); k++ {
		c := b[len(b)-k]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			// FullRune is false only for the valid start of a
			// sequence that b cuts short.
			if !utf8.FullRune(b[len(b)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

// release returns a walker to the pool, unless it grew too large to keep.
func (t *Tokenizer) release(w *walker) {
	if cap(w.set.arena) > maxPooledArena {
		return
	}
	w.reset()
	t.walkers.Put(w)
}

// readCapped reads up to max+1 bytes from r and reports whether more than
// max were there. The byte past max is kept: tokenize and Digest look at
// the first max themselves, and the tokenizer then cuts a longer message
// as it cuts one held in memory (see cutAtCharacter), so that a message
// read from a file gets the tokens the daemon gives it.
// The rest of r is not read: the caller owns r and decides whether to drain it.
func readCapped(r io.Reader, max int) ([]byte, bool, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, false, err
	}
	return b.Bytes(), n > int64(max), nil
}

// maxMboxFromLine bounds the mbox From_ line mboxFromLineLen looks for,
// so that finding it costs little on a message of one long line; a real
// one holds an address and a date.
const maxMboxFromLine = 1024

// mboxFromLineLen returns the length of the mbox From_ line (with its
// line end) raw starts with, 0 if none or if it is longer than
// maxMboxFromLine.
func mboxFromLineLen(raw []byte) int {
	head := raw[:min(len(raw), maxMboxFromLine)]
	if len(head) < len(raw) && bytes.IndexByte(head, '\n') < 0 {
		return 0
	}
	return len(head) - len(skipMboxFromLine(head))
}

// skipMboxFromLine drops a leading mbox "From " separator line: message files
// cut out of an mbox (and the SpamAssassin corpus) start with one, and it is
// not a header field.
func skipMboxFromLine(raw []byte) []byte {
	if !bytes.HasPrefix(raw, []byte("From ")) {
		return raw
	}
	i := bytes.IndexByte(raw, '\n')
	if i < 0 {
		i = len(raw)
	}
	// "From : alice@example.org" is a From field (a blank may precede
	// the colon); a separator line never is, as the text before its
	// first colon holds blanks.
	if IsFieldLine(bytes.TrimSuffix(raw[:i], []byte("\r"))) {
		return raw
	}
	if i == len(raw) {
		return nil
	}
	return raw[i+1:]
}
