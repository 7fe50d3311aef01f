package classifier

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// The n-gram model is a second opinion next to the token counts: a
// linear model over which 4-byte sequences occur in the first
// ngramBytes bytes of the raw message (header first, so mostly the
// header and the start of the body, before any decoding), and over which
// of the message's tokens occur. Byte sequences see what words do not
// (header layout, encodings, HTML and punctuation habits), and a linear
// model fitted on all of them weighs them against each other where
// counting each on its own cannot: counted naively, the same byte sequences rank worse than
// the token counts by a factor of ten. Averaging the two opinions halves
// the misordered ham-spam pairs of cross-validation on the training part
// of the SpamAssassin corpus split (see DefaultParams).
//
// The fit depends on the order it sees messages in, and "sluice
// train --ham DIR; sluice train --spam DIR" would teach it one class after
// the other. So the store keeps each learned message's set of features
// (about 3.5 kB) with its digest (up to keepFeatureMessages of them, see
// there), and the model is fitted afresh from them (Refit) after each
// training run: the same learned messages give the same model whatever
// order they came in, and unlearning a message removes it exactly. Even
// in a fixed order, which order it is still shows in the weights; the
// model is the mean of ngramBags fits in different orders, which is one
// set of weights again, so scoring costs the same.
//
// The constants were tried on cross-validation over the training part:
// rates 0.005 and 0.05, 2 and 10 passes, 1,500 and 6,000 bytes, 3- and
// 5-byte sequences, 4 M weights, the body's first bytes added to the
// header's, features scaled by the message's feature count, and the mean
// of the weights over the last passes all did as well or worse; the
// tokens as features and the mean of 3 fits each helped on every dealing
// of the folds, and 5 or 8 fits no more than 3. With the tokens in, rate
// 0.01, 8 passes, 2,000 or 4,500 bytes, 4 M weights, and weighing the
// model 0.4 or 0.6 in the mean with the token score (blendNgram) did no
// better on every dealing either. Fits with a rate per weight, AdaGrad and
// FTRL-Proximal (rates 0.02 to 0.2, with and without a bias weight or a
// small L2 penalty), ranked better on four of the five dealings at best
// ((1-AUC)% 0.0074 to 0.0081 against 0.0082), but where they keep every
// ham out of spam they leave more spam unsure or called ham (cost 540 to
// 666 against 537): a different trade-off, not a better model.
//
// The fit was a logistic regression (rate 0.02, scale 2.0) until the
// modified Huber loss replaced it (rate 0.001, scale 3.0; see huberStep).
// On the five dealings, each at the parameters cross-validation chose:
// fp 0, fn 7, unsure 448, cost 483, (1-AUC)% 0.0052 0.0062 0.0072 0.0059
// 0.0053, against fp 0, fn 6, unsure 507, cost 537 and 0.0069 0.0073
// 0.0104 0.0083 0.0077 with the logistic loss, lower on every dealing. The
// logistic fit lets confident messages' log-odds run to 20 or 40, so the
// model's opinion alone can carry a ham past the cutoff; bounded, it leaves
// more to the token counts: most of the gain is that, as the logistic
// fit with a smaller scale shows, but not all of it. At scale 1.0 it gave
// cost 475, (1-AUC)% 0.0058 0.0072 0.0088 0.0068 0.0057; at 0.5, cost
// 500, 0.0051 0.0066 0.0078 0.0062 0.0053, higher than the Huber fit's on
// three dealings and lower on one. The Huber loss at rate 0.0005 (scale
// 2: cost 584, 0.0068; scale 3: cost 525, 0.0067), 0.002 (scale 3: cost
// 566, 0.0070) or at scale 4 (cost 479, 0.0063, higher on every dealing)
// did less well; rates 0.002 to 0.005 at scales 5 to 20, and the
// passive-aggressive (hinge) update, ranked worse on the split's own
// folds. Also tried with the logistic loss: the bytes after the header's
// blank line hashed apart from the header's (a salt on their feature),
// which ranked better on four dealings (0.0059 0.0093 0.0095 0.0063
// 0.0057) but raised one hard ham so far that no false positive needed a
// spam cutoff of 0.95 (cost 652); with the body's bytes both apart and
// shared, cost 499 but (1-AUC)% higher on three dealings (0.0069 0.0088
// 0.0099 0.0085 0.0067). Robinson's effective size factor in the Fisher
// tests (score.go), 0.5 and 0.7 (the latter on the split's own folds
// alone), did nothing for the ranking (0.5: cost
// 566, 0.0070 0.0077 0.0105 0.0088 0.0076).
//
// With the Huber fit, two more were tried and not taken. Features scaled
// by their naive-Bayes log ratio of spam to ham frequency (NBSVM; with
// stochastic gradient descent the same as a rate per weight in proportion
// to its squared ratio), rates 0.0002 to 0.004, ranked worse on the
// split's own folds ((1-AUC)% 0.0063 to 0.0073 at the chosen cutoffs,
// against 0.0059). Eight fits instead of three ranked better by a little
// on four fit orders of the split's own folds (0.0051 to 0.0055 against
// 0.0053 to 0.0059 at the defaults) but not over the five dealings
// (0.0057 0.0060 0.0076 0.0058 0.0051 against 0.0057 0.0058 0.0076
// 0.0059 0.0052), for a refit that takes 8/3 as long. Nor did 4-byte
// sequences of the decoded body text (after MIME and HTML decoding, as
// the words are read; hashed apart from the raw bytes'), the first 500,
// 1,000 (also lower-cased) or 3,000 bytes of it: (1-AUC)% 0.0051 to 0.0060
// at the chosen cutoffs and 0.0056 to 0.0067 at the defaults on the
// split's own folds, against 0.0059 and 0.0057, within the noise of the
// fit's order.
//
// Nor, on the split's own folds at fit orders 0 to 4 (the order seeds of
// the accuracy tool), against 0.0050 to 0.0058 at the chosen cutoffs and
// 0.0053 to 0.0059 at the defaults: the last 1,000 or 2,000 bytes of the
// message (signatures and list footers) hashed apart from the first
// 3,000 (0.0049 to 0.0057 and 0.0053 to 0.0059 on orders 1 to 4; the
// last 1,000 bytes gave 0.0043 and 0.0052 on order 0, which the other
// orders did not bear out), or a step twice (0.0052 to 0.0056; 0.0052
// to 0.0060) or half (0.0054 to 0.0056; 0.0056 to 0.0060) as large for
// ham as for spam; twice as large for spam ranked worse (0.0053 to
// 0.0062; 0.0058 to 0.0067).
const (
	ngramBytes = 3000    // bytes of the message looked at
	ngramBits  = 20      // features hash into 1<<ngramBits weights
	ngramRate  = 0.001   // learning rate of the fit
	ngramEpoch = 5       // passes over the learned messages per fit
	ngramScale = 3.0     // model log-odds = ngramScale * weights·features
	ngramBags  = 3       // fits in different orders averaged into the model
	ngramMagic = "ngr2 " // start of an encoded model
)

// A model that an earlier version fitted on the logistic loss starts
// "ngr1 " and is scored at its own scale, as it was fitted, until the
// next refit replaces it: its weights are not the Huber fit's.
const (
	logisticMagic = "ngr1 "
	logisticScale = 2.0
)

// MetaModel and MetaModelID are the Meta keys of the fitted n-gram model
// and of an identifier that changes with it, which every lookup reads
// (see modelIDSeer) so that a classifier sees that its model is stale.
const (
	MetaModel   = "ngram-model"
	MetaModelID = "ngram-model-id"
)

// NgramFeatures returns the distinct byte-sequence features of a raw
// message, sorted: the hashes of every 4-byte sequence in its first
// ngramBytes bytes, with an mbox "From " line and the header fields added
// after the daemon scores a message skipped (see ngramView) and carriage
// returns dropped, so that a file with LF line ends and the CRLF message an MTA
// passes give the same features. A tokenised message's Features are these
// and the WordFeatures of its tokens.
func NgramFeatures(raw []byte) []uint32 {
	var seen ngramSeen
	f := seen.features(ngramView(nil, skipMboxFromLine(raw), nil), nil)
	sortFeatures(f)
	return f
}

// WordFeatures returns the distinct features of tokens, sorted: their
// hashes, in the same range as the byte sequences' (a token and a byte
// sequence may share a weight, as two byte sequences may).
func WordFeatures(tokens []string) []uint32 {
	var seen ngramSeen
	f := seen.features(nil, tokens)
	sortFeatures(f)
	return f
}

// ngramView returns the bytes the n-gram features are taken from: raw
// (an mbox From_ line already skipped) without the header fields that are
// added after the daemon scored the message (see scoredWithout),
// continuation lines included. With those bytes in the window, the
// archive's copy of a message (its X-Sluice-* fields on top) and the
// delivered one (the verdict field) had other features than the message
// the daemon saw, and the fields shifted the rest of the window out of
// place: with the whole SpamAssassin corpus sent through Postfix and the
// archive, 5,324 of 6,046 archived copies scored otherwise than the
// daemon had, by up to a few parts in a thousand of spamicity, and would
// have been learned as other messages than the ones scored.
//
// Fields a delivery adds (Delivered-To, X-Original-To, the mail store's
// Status) stay: the corpus messages carry them, and leaving them out of
// the window ranked worse in cross-validation on its training part (at
// the default parameters 1 false negative and 646 unsure in 24,145
// scorings, against 0 and 632).
//
// raw itself is returned when no such field starts within the first
// 2*ngramBytes bytes (room for a CR before every LF, which the features
// drop); otherwise the view is built in buf, cut after 2*ngramBytes
// bytes.
func ngramView(buf, raw []byte, extra []string) []byte {
	const window = 2 * ngramBytes
	out := buf[:0]
	copied := false
	pos := 0
	for pos < len(raw) {
		if !copied && pos >= window || copied && len(out) >= window {
			break
		}
		end := len(raw)
		if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := bytes.TrimRight(raw[pos:end], "\r\n")
		if len(line) == 0 {
			break // the blank line that ends the header
		}
		if name, _, ok := bytes.Cut(line, []byte(":")); ok && line[0] != ' ' && line[0] != '\t' && scoredWithout(bytes.TrimRight(name, " \t"), extra) {
			if !copied {
				out = append(out, raw[:pos]...)
				copied = true
			}
			// The field and its continuation lines.
			for pos = end; pos < len(raw) && (raw[pos] == ' ' || raw[pos] == '\t'); {
				end = len(raw)
				if i := bytes.IndexByte(raw[pos:], '\n'); i >= 0 {
					end = pos + i + 1
				}
				pos = end
			}
			continue
		}
		if copied {
			// No more of a long line than the window still takes.
			out = append(out, raw[pos:min(end, pos+window-len(out))]...)
		}
		pos = end
	}
	if !copied {
		return raw
	}
	if len(out) >= window {
		return out[:window]
	}
	return append(out, raw[pos:min(len(raw), pos+window-len(out))]...)
}

// scoredWithout reports whether a header field of this name is one the
// daemon scores a message without, as it is added later: sluice's own
// (X-Sluice-Bayes, the archive's X-Sluice-*), bogofilter's X-Bogosity, and
// extra (lower-cased TokenizerOptions.SkipFields: the verdict field's
// configured name). Only the first 64 bytes of a longer name are looked
// at, which is enough for the prefix.
func scoredWithout(name []byte, extra []string) bool {
	var b [64]byte
	lower := b[:0]
	for _, c := range name[:min(len(name), len(b))] {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	return bytes.HasPrefix(lower, []byte("x-sluice")) || string(lower) == "x-bogosity" || isExtraSkip(lower, extra)
}

// wordFeature hashes a token: FNV-1a, then the multiplicative step of the
// byte sequences, whose top bits mix all of the input.
func wordFeature(tok string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(tok); i++ {
		h ^= uint32(tok[i])
		h *= 16777619
	}
	return (h * 0x9E3779B1) >> (32 - ngramBits)
}

// ngramSeen is a bit per possible feature, for finding a message's
// distinct features without sorting them (scoring needs no order, and a
// sort costs more than the rest of the work). All bits are clear between
// uses.
type ngramSeen []uint64

// features returns the distinct features of raw (see NgramFeatures; an
// mbox From_ line already skipped) and of tokens (WordFeatures), the byte
// sequences' first, each in the order it first occurs; nil if there are
// none.
func (s *ngramSeen) features(raw []byte, tokens []string) []uint32 {
	f := s.appendFeatures(make([]uint32, 0, min(len(raw), ngramBytes)+len(tokens)), raw, tokens)
	if len(f) == 0 {
		return nil
	}
	return f
}

// appendFeatures appends the features that features returns to f, and
// returns the extended slice.
//
// About half the candidates of a message are new, and a CPU cannot
// predict which: a branch on it would be mispredicted every other byte,
// the largest cost of the loop. So every candidate is written at f[k]
// and k advances by the bit that says whether it was new, with no
// branch; f has room for every candidate beforehand.
func (s *ngramSeen) appendFeatures(f []uint32, raw []byte, tokens []string) []uint32 {
	if *s == nil {
		*s = make(ngramSeen, 1<<ngramBits/64)
	}
	bits := *s
	start := len(f)
	f = slices.Grow(f, min(len(raw), ngramBytes)+len(tokens))
	out := f[:cap(f)]
	k := start
	// win holds the last four bytes, the newest in the top byte: the
	// little-endian number of the four bytes in message order.
	var win uint32
	if head := raw[:min(len(raw), ngramBytes)]; bytes.IndexByte(head, '\r') < 0 {
		// No carriage return to drop (a message with LF line ends,
		// as most are stored): the first ngramBytes bytes are the
		// bytes looked at, and the loop needs no test per byte.
		for i, b := range head {
			win = win>>8 | uint32(b)<<24
			if i >= 3 {
				k = addFeature(bits, out, k, ngramHash(win))
			}
		}
	} else {
		n := 0
		for _, b := range raw {
			if b == '\r' {
				continue
			}
			if n == ngramBytes {
				break
			}
			win = win>>8 | uint32(b)<<24
			n++
			if n < 4 {
				continue
			}
			k = addFeature(bits, out, k, ngramHash(win))
		}
	}
	for _, tok := range tokens {
		k = addFeature(bits, out, k, wordFeature(tok))
	}
	f = out[:k]
	for _, v := range f[start:] {
		bits[v/64] = 0
	}
	return f
}

// ngramHash is the feature of the four bytes of win: multiplicative
// hashing, whose top bits mix all four bytes.
func ngramHash(win uint32) uint32 { return (win * 0x9E3779B1) >> (32 - ngramBits) }

// addFeature writes feature v at out[k] and returns k+1 if its bit in
// bits was clear (a feature not seen before in the message), k if it was
// set; either way the bit is set. out must have room at k.
func addFeature(bits ngramSeen, out []uint32, k int, v uint32) int {
	w := &bits[v/64]
	old := *w
	*w = old | 1<<(v%64)
	out[k] = v
	return k + int(^old>>(v%64)&1)
}

// sortFeatures sorts features in place, as slices.Sort does. Every
// learned message's features are sorted to be encoded (EncodeFeatures), a
// few thousand of them, and a comparison sort of that many took half the
// time of preparing a message for learning. A feature is below
// 1<<ngramBits, so a radix sort does it in two passes of ngramBits/2 bits
// each, into a buffer and back; a short list, or one with a value out of
// that range (which no tokenizer makes), is left to slices.Sort.
func sortFeatures(f []uint32) {
	const (
		half = ngramBits / 2
		mask = 1<<half - 1
	)
	if len(f) < 256 || len(f) > math.MaxInt32 {
		slices.Sort(f)
		return
	}
	// lo and hi count the values of each low and high digit, and then
	// hold where the next value of that digit goes.
	var lo, hi [1 << half]int32
	var all uint32
	for _, v := range f {
		all |= v
		lo[v&mask]++
		hi[v>>half&mask]++
	}
	if all >= 1<<ngramBits {
		slices.Sort(f)
		return
	}
	var nlo, nhi int32
	for d := range lo {
		lo[d], nlo = nlo, nlo+lo[d]
		hi[d], nhi = nhi, nhi+hi[d]
	}
	// By the low digit into tmp, then, keeping that order among equal
	// high digits, by the high digit back into f.
	tmp := make([]uint32, len(f))
	for _, v := range f {
		tmp[lo[v&mask]] = v
		lo[v&mask]++
	}
	for _, v := range tmp {
		f[hi[v>>half]] = v
		hi[v>>half]++
	}
}

// EncodeFeatures packs sorted distinct features as varint gaps.
func EncodeFeatures(f []uint32) []byte {
	b := make([]byte, 0, 2*len(f))
	prev := uint32(0)
	for _, v := range f {
		b = binary.AppendUvarint(b, uint64(v-prev))
		prev = v
	}
	return b
}

// DecodeFeatures unpacks EncodeFeatures.
func DecodeFeatures(b []byte) ([]uint32, error) {
	return appendDecoded(make([]uint32, 0, len(b)/2), b)
}

// appendDecoded unpacks EncodeFeatures onto f.
func appendDecoded(f []uint32, b []byte) ([]uint32, error) {
	n0 := len(f)
	prev := uint64(0)
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("features: bad varint")
		}
		// A last byte of 0 after others is a gap written in more bytes
		// than it needs, which EncodeFeatures never does: refusing it
		// keeps one encoding for a list of features, so that bytes
		// that decode are the bytes EncodeFeatures writes for them.
		if n > 1 && b[n-1] == 0 {
			return nil, errors.New("features: overlong varint")
		}
		b = b[n:]
		// The gap is checked before it is added: a gap near 2^64 would
		// wrap prev round to a smaller feature.
		if d >= 1<<ngramBits || (len(f) > n0 && d == 0) {
			return nil, errors.New("features: out of range")
		}
		prev += d
		if prev >= 1<<ngramBits {
			return nil, errors.New("features: out of range")
		}
		f = append(f, uint32(prev))
	}
	return f, nil
}

// appendValidFeatures unpacks EncodeFeatures onto f, as appendDecoded
// does, from bytes that appendDecoded accepts; it checks nothing. A fit
// unpacks every message's features on each of its passes, and the checks,
// with a branch on the length of each gap that the CPU cannot predict
// (about as many gaps take one byte as two), took half the time of the
// fit. Here every byte takes the same steps: it adds its seven bits to the
// gap read so far, and, if it is the gap's last (no continuation bit),
// the gap is added to the feature before, written out, and the next gap
// starts. Every byte's feature is written, but the count advances only at
// the last byte of a gap, so that the next one writes over the rest.
func appendValidFeatures(f []uint32, b []byte) []uint32 {
	n0 := len(f)
	f = slices.Grow(f, len(b)) // a feature takes one byte at least
	out := f[:n0+len(b)]
	k := n0
	var gap, shift, prev uint32
	for _, c := range b {
		x := uint32(c)
		last := 1 - x>>7 // 1 on a gap's last byte, else 0
		keep := last - 1 // all ones within a gap, 0 after its last byte
		gap |= (x & 0x7f) << shift
		prev += gap &^ keep
		out[k] = prev
		k += int(last)
		gap &= keep
		shift = (shift + 7) & keep
	}
	return out[:k]
}

// NgramModel is a fitted n-gram model.
type NgramModel struct {
	w         []float32
	Spam, Ham int // learned messages it was fitted on
	// logistic is set for a model an earlier version fitted on the
	// logistic loss (see logisticMagic).
	logistic bool
}

// Example is one learned message for Fit.
type Example struct {
	Digest   Digest
	Spam     bool
	Features []uint32
	// Encoded are the features as EncodeFeatures packs them, used when
	// Features is nil: a fit over a large store holds each message's
	// features in this form, about a third of the memory, and unpacks
	// them as it goes.
	Encoded []byte
}

// FitNgram fits the model to learned messages by stochastic gradient
// descent on the modified Huber loss (see huberStep): ngramBags fits of ngramEpoch passes each,
// in orders that only depend on the messages' digests, averaged, so the
// same messages always give the same model. The fits run in parallel.
func FitNgram(ex []Example) *NgramModel {
	m, _ := fitNgram(context.Background(), ex)
	return m
}

// fitNgram is FitNgram that stops, with ctx's error and no model, once
// ctx ends: a fit over a large store takes tens of seconds, and neither a
// signal to "sluice train" nor a daemon shutting down should wait for it.
func fitNgram(ctx context.Context, ex []Example) (*NgramModel, error) {
	ex = slices.Clone(ex)
	slices.SortFunc(ex, func(a, b Example) int { return bytes.Compare(a.Digest[:], b.Digest[:]) })
	m := &NgramModel{w: make([]float32, 1<<ngramBits)}
	for _, e := range ex {
		if e.Spam {
			m.Spam++
		} else {
			m.Ham++
		}
	}
	fits := make([]*NgramModel, ngramBags)
	var wg sync.WaitGroup
	for i := range fits {
		wg.Go(func() { fits[i] = fitOrder(ctx, slices.Clone(ex), uint64(i+1)) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Summed in a fixed order: float addition is not associative.
	for _, fit := range fits {
		for j, v := range fit.w {
			m.w[j] += v
		}
	}
	for j := range m.w {
		m.w[j] /= ngramBags
	}
	return m, nil
}

// fitOrder is one fit of ngramEpoch passes over ex, shuffled before each
// pass by a generator seeded with seed. Once ctx ends it returns early,
// with a model that is no fit: the caller checks ctx.
func fitOrder(ctx context.Context, ex []Example, seed uint64) *NgramModel {
	m := &NgramModel{w: make([]float32, 1<<ngramBits)}
	rng := rand.New(rand.NewPCG(seed, 2))
	var scratch []uint32
	for pass := range ngramEpoch {
		rng.Shuffle(len(ex), func(i, j int) { ex[i], ex[j] = ex[j], ex[i] })
		for i, e := range ex {
			// A message takes about a microsecond: a look every 1,024
			// costs nothing and stops a fit within a millisecond.
			if i%1024 == 0 && ctx.Err() != nil {
				return m
			}
			f := e.Features
			switch {
			case f != nil:
			case pass == 0:
				// The first pass checks the encoded features (Refit
				// has, but FitNgram's caller may not have), so that
				// the others can unpack them without checks (see
				// appendValidFeatures). Bytes that do not decode
				// stand for no features, in every pass, as they did
				// when every pass checked them; ex is this fit's own.
				var err error
				if scratch, err = appendDecoded(scratch[:0], e.Encoded); err != nil {
					ex[i].Encoded = nil
				}
				f = scratch
			default:
				scratch = appendValidFeatures(scratch[:0], e.Encoded)
				f = scratch
			}
			d := float32(ngramRate * huberStep(e.Spam, m.dot(f)))
			for _, j := range f {
				m.w[j] += d
			}
		}
	}
	return m
}

// huberStep is the negative gradient of the modified Huber loss at a
// message of the class spam with weights·features s: with y = +1 for
// spam, -1 for ham, and z = y*s, the loss is 0 where z >= 1, (1-z)^2
// where -1 <= z < 1, and -4z below. Messages already on their side by a
// margin teach the fit nothing, and one far on the wrong side no more than
// one just across, where the logistic loss keeps pushing every message
// further and lets the weights grow without bound.
func huberStep(spam bool, s float64) float64 {
	y := -1.0
	if spam {
		y = 1
	}
	switch z := y * s; {
	case z >= 1:
		return 0
	case z >= -1:
		return 2 * y * (1 - z)
	}
	return 4 * y
}

func (m *NgramModel) dot(f []uint32) float64 {
	s := 0.0
	for _, j := range f {
		s += float64(m.w[j&(1<<ngramBits-1)])
	}
	return s
}

// LogOdds is the model's log-odds that a message with features f is spam.
func (m *NgramModel) LogOdds(f []uint32) float64 {
	if m.logistic {
		return logisticScale * m.dot(f)
	}
	return ngramScale * m.dot(f)
}

// MarshalBinary encodes the model.
func (m *NgramModel) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(ngramMagic)+16+4*len(m.w))
	if m.logistic {
		b = append(b, logisticMagic...)
	} else {
		b = append(b, ngramMagic...)
	}
	b = binary.LittleEndian.AppendUint32(b, ngramBits)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Spam))
	b = binary.LittleEndian.AppendUint32(b, uint32(m.Ham))
	for _, v := range m.w {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary.
func (m *NgramModel) UnmarshalBinary(b []byte) error {
	return unmarshalModel(m, b)
}

// unmarshalModel decodes a model from the bytes of MarshalBinary, held as
// a byte slice (read in place from a bbolt file) or as the string a
// store's Meta returns, without a 4 MB copy of either.
func unmarshalModel[T string | []byte](m *NgramModel, b T) error {
	h, err := parseModel(b)
	if err != nil {
		return err
	}
	m.Spam, m.Ham, m.logistic = h.spam, h.ham, h.logistic
	w := make([]float32, 1<<ngramBits)
	b = b[modelHeader:]
	for i := range w {
		// With b re-sliced to exactly 4 bytes, the compiler checks
		// bounds once per weight rather than once per byte.
		q := b[4*i : 4*i+4]
		v := uint32(q[0]) | uint32(q[1])<<8 | uint32(q[2])<<16 | uint32(q[3])<<24
		if !finiteWeight(v) {
			return errNotNumber
		}
		w[i] = math.Float32frombits(v)
	}
	m.w = w
	return nil
}

// modelHeader is the length of an encoded model's header: its magic, the
// bits of its hash, and the spam and ham it was fitted on. The weights
// follow, 4 bytes each, little-endian.
const modelHeader = len(ngramMagic) + 12

var errNotNumber = errors.New("ngram model: weight not a number")

// modelInfo is what an encoded model's header says.
type modelInfo struct {
	spam, ham int
	logistic  bool
}

// parseModel reads the header of an encoded model and checks that the
// weights it announces follow, no more and no fewer.
func parseModel[T string | []byte](b T) (modelInfo, error) {
	if len(b) < modelHeader {
		return modelInfo{}, errors.New("ngram model: not a model")
	}
	var h modelInfo
	switch string(b[:len(ngramMagic)]) {
	case ngramMagic:
	case logisticMagic:
		h.logistic = true
	default:
		return modelInfo{}, errors.New("ngram model: not a model")
	}
	u32 := func(i int) uint32 {
		return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
	}
	if bits := u32(len(ngramMagic)); bits != ngramBits || len(b) != modelHeader+4<<ngramBits {
		return modelInfo{}, fmt.Errorf("ngram model: %d bytes for %d bits, want %d bits", len(b), bits, ngramBits)
	}
	h.spam = int(u32(len(ngramMagic) + 4))
	h.ham = int(u32(len(ngramMagic) + 8))
	return h, nil
}

// finiteWeight reports whether the bits of a float32 are a number: an
// exponent of all ones is an infinity or NaN, which a fit never makes.
func finiteWeight(v uint32) bool { return v>>23&0xff != 0xff }

// checkWeights checks every weight of an encoded model, header included
// in b, as unmarshalModel does.
func checkWeights(b []byte) error {
	b = b[modelHeader:]
	for i := 0; i+4 <= len(b); i += 4 {
		if !finiteWeight(binary.LittleEndian.Uint32(b[i:])) {
			return errNotNumber
		}
	}
	return nil
}

// encodedLogOdds is LogOdds of the model encoded in b, read where it lies:
// the same sum in the same order, so the same float64.
func encodedLogOdds(h modelInfo, b []byte, f []uint32) float64 {
	b = b[modelHeader:]
	s := 0.0
	for _, j := range f {
		i := 4 * int(j&(1<<ngramBits-1))
		s += float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i : i+4])))
	}
	if h.logistic {
		return logisticScale * s
	}
	return ngramScale * s
}

// NgramUsable reports whether a model fitted on spam and ham messages
// has seen enough of both to be averaged in: as many as the token counts
// need (MinSpam, MinHam), and at least one of each.
func NgramUsable(p Params, spam, ham int) bool {
	p = p.withDefaults()
	return spam >= max(p.MinSpam, 1) && ham >= max(p.MinHam, 1)
}

// modelID names a model blob: it changes whenever the model does.
func modelID(blob []byte) string {
	h := sha256.Sum256(blob)
	return fmt.Sprintf("%x", h[:12])
}

// blendNgram averages the token score (log-odds a) with the n-gram
// model's (log-odds b) as probabilities, and returns the log-odds of the
// mean, computed from logarithms so that it keeps its precision where the
// mean rounds to 0 or 1. Averaging probabilities rather than adding
// log-odds means a message is only as sure as the less sure of two
// agreeing opinions allows: one model's extreme score cannot carry a ham
// far past the spam cutoff on its own.
//
// A combination learned from the data ranked no better: a logistic
// regression over the four opinions (the Fisher log-odds of all tokens,
// of the header tokens and of the body tokens, and the model's), fitted on
// four folds' out-of-fold scores and judged on the fifth, over the five
// dealings of the training part, gave (1-AUC)% 0.0062 on their
// probabilities (better on three dealings, worse on one), 0.0087 on their
// log-odds and 0.0067 on the two opinions this function averages, against
// 0.0064 for this mean.
func blendNgram(a, b float64) float64 {
	// ln p = -ln(1+e^-x); ln(1-p) = -ln(1+e^x).
	lnP := logAdd(-softplus(-a), -softplus(-b))
	lnQ := logAdd(-softplus(a), -softplus(b))
	return lnP - lnQ
}

// softplus is ln(1+e^x) without overflow.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// modelCheckEvery is how often a classifier asks a store whose lookups do
// not bring the model's id (see modelIDSeer) whether the model changed,
// and how long it waits to try again after a model could not be read.
const modelCheckEvery = time.Second

// modelIDSeer is a store that reads the n-gram model's id in the same read
// as the counts of every Lookup (one more field of the same transaction),
// so that a classifier learns of a new model together with the counts of
// the training that made it: a message scored after "sluice train"
// returns scores as "sluice classify" does, on any host.
type modelIDSeer interface {
	seenModelID() (id string, ok bool)
}

// modelSeen keeps the id a store read with its latest lookup.
type modelSeen struct {
	mu sync.Mutex
	id string
	ok bool
}

func (m *modelSeen) see(id string) {
	m.mu.Lock()
	m.id, m.ok = id, true
	m.mu.Unlock()
}

// seeBytes is see without a string allocation when the id is unchanged.
func (m *modelSeen) seeBytes(id []byte) {
	m.mu.Lock()
	if !m.ok || m.id != string(id) {
		m.id = string(id)
	}
	m.ok = true
	m.mu.Unlock()
}

func (m *modelSeen) get() (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id, m.ok
}

// modelViewer is a store that can show its n-gram model where it keeps
// it (a BoltStore: in its file's mapping), for a classifier that reads
// the model in place (UseModelInPlace).
type modelViewer interface {
	// viewModel calls fn with the model's id and encoded model as one
	// read has them, nil if unset, valid only while fn runs.
	viewModel(ctx context.Context, fn func(id, model []byte) error) error
}

// inPlace returns the log-odds of the store's current model for features
// f, read where the store keeps it, and whether a usable model gave them.
// The first time a model's id is seen, the model is checked whole, as
// unmarshalModel checks it when decoding: in place or decoded, a damaged
// model is refused, whichever weights a message reaches. A failed read
// is kept for err and the message goes without the model, as one does
// that get finds none for.
func (c *modelCache) inPlace(ctx context.Context, s modelViewer, p Params, f []uint32) (float64, bool) {
	// c.mu is not taken inside the store's read: get holds it while it
	// reads the store, and the other order could deadlock with it.
	c.mu.Lock()
	sound := c.soundID
	c.mu.Unlock()
	var lo float64
	usable := false
	var bad error    // the model's own fault, not the store's
	var whole string // the id of a model checked whole by this read
	err := s.viewModel(ctx, func(id, b []byte) error {
		if len(id) == 0 {
			return nil // no model, whatever bytes there may be (see loadModel)
		}
		h, err := parseModel(b)
		if err != nil {
			bad = err
			return nil
		}
		if string(id) != sound {
			if bad = checkWeights(b); bad != nil {
				return nil
			}
			whole = string(id)
		}
		if NgramUsable(p, h.spam, h.ham) {
			lo, usable = encodedLogOdds(h, b, f), true
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("ngram model: %w", err)
	} else {
		err = bad
	}
	c.mu.Lock()
	if whole != "" {
		c.soundID = whole
	}
	c.lastErr = err
	c.mu.Unlock()
	if err != nil {
		return 0, false
	}
	return lo, usable
}

// modelCache holds a classifier's copy of the store's n-gram model.
type modelCache struct {
	mu      sync.Mutex
	every   time.Duration // 0: modelCheckEvery; negative: every call (tests)
	checked time.Time
	busy    bool // a goroutine is reading the store
	loaded  bool // id and m hold what the store had at a check
	id      string
	m       *NgramModel
	lastErr error
	// soundID is the id of the latest model that inPlace found whole.
	soundID string
}

// get returns the store's current model, nil if it has none. When the
// store cannot be read, the model held so far stays in use (the token
// score alone if none) until the next check: a store slow to hand over a
// model must not fail or delay every message. The error is kept for err.
func (c *modelCache) get(ctx context.Context, s Store) *NgramModel {
	c.mu.Lock()
	now := time.Now()
	every := c.every
	if every == 0 {
		every = modelCheckEvery
	}
	fresh := !c.checked.IsZero() && now.Sub(c.checked) < every && !now.Before(c.checked)
	if seer, ok := s.(modelIDSeer); ok && c.loaded {
		// The lookup just before read the id: no need to ask, and no
		// need to wait a second to see a change.
		if id, ok := seer.seenModelID(); ok && c.lastErr == nil {
			fresh = id == c.id
		}
		// After a failed read, the next try waits for the interval.
	}
	if !c.loaded && !fresh {
		// Until a model has been read once, messages wait for it (as
		// they wait for the token counts) rather than go without it.
		defer c.mu.Unlock()
		m, id, err := loadModel(ctx, s, "", false, nil)
		c.checked, c.lastErr = now, err
		if err == nil {
			c.m, c.id, c.loaded = m, id, true
		}
		return c.m
	}
	if fresh || c.busy {
		// Another message is reading the store meanwhile: go on with
		// the model held, rather than wait for a 4 MB read.
		m := c.m
		c.mu.Unlock()
		return m
	}
	c.busy = true
	id, loaded, m0 := c.id, c.loaded, c.m
	c.mu.Unlock()

	m, newID, err := loadModel(ctx, s, id, loaded, m0)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = false
	c.checked = now
	c.lastErr = err
	if err == nil {
		c.m, c.id, c.loaded = m, newID, true
	}
	return c.m
}

// loadModel reads the store's model unless its id is still id (and a
// model was loaded before), in which case it returns m as it is.
//
// The id and the model are two reads, the id first. A store writes both
// at once (SetModel), so the model read is the id's or a newer one: at
// worst a refit in between leaves the new model under the old id, which
// the next check sees as a change and reads again. The other order could
// keep an old model under the new id until the next refit.
func loadModel(ctx context.Context, s Store, id string, loaded bool, m *NgramModel) (*NgramModel, string, error) {
	newID, err := s.Meta(ctx, MetaModelID)
	if err != nil {
		return nil, "", fmt.Errorf("ngram model: %w", err)
	}
	if loaded && newID == id {
		return m, id, nil
	}
	if newID == "" {
		return nil, "", nil
	}
	m = new(NgramModel)
	var bad error // the model's own fault, not the store's
	if v, ok := s.(metaViewer); ok {
		// Decoded where it lies in the file: a copy would cost a
		// command-line run that classifies one message a 4 MB
		// allocation, and the collection it sets off.
		err = v.viewMeta(ctx, MetaModel, func(b []byte) error {
			bad = unmarshalModel(m, b)
			return nil
		})
	} else {
		var blob string
		if blob, err = s.Meta(ctx, MetaModel); err == nil {
			bad = unmarshalModel(m, blob)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("ngram model: %w", err)
	}
	if bad != nil {
		return nil, "", bad
	}
	return m, newID, nil
}

// err returns the error of the last check, nil if it succeeded.
func (c *modelCache) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// StoredModel returns the store's n-gram model and its id, nil and "" if
// it has none.
func StoredModel(ctx context.Context, s Store) (*NgramModel, string, error) {
	return loadModel(ctx, s, "", false, nil)
}

// Refit fits the n-gram model on the features of every message the store
// has learned and stores it, or removes the model if no learned message
// has features. It reads the features in one pass and writes once, so a
// daemon classifying meanwhile keeps the old model until the new one is
// in. It returns the model (nil if none).
//
// Refits may run at once (two "sluice train" runs, or one beside the
// daemon's refit after auto-learning), and one that read the learned
// messages before another may finish fitting after it. The store keeps
// the model of the later read (Store.SetModel, by the learn generation
// of Store.WalkLearned), and Refit then returns that model: the store's
// model never goes back to one that misses messages another refit had.
//
// Once its model is stored, Refit drops the features of the learned
// messages beyond the keepFeatureMessages of lowest digest (see there):
// no fit would use them.
func Refit(ctx context.Context, s Store) (*NgramModel, error) {
	return refitBounded(ctx, s, maxFitMessages, keepFeatureMessages)
}

// refitBounded is Refit with the bounds as parameters, so that a test can
// make them small: it fits on the most learned messages of lowest digest
// and keeps the features of the keep of lowest digest (at least most).
func refitBounded(ctx context.Context, s Store, most, keep int) (*NgramModel, error) {
	r, err := readRefit(ctx, s, most, keep)
	if err != nil {
		return nil, err
	}
	return r.fitAndStore(ctx)
}

// generationsReader is a store that reports its learn generation (see
// Store.WalkLearned) and the one its model was fitted at (see
// Store.SetModel) in one cheap read. Both stores are.
type generationsReader interface {
	Generations(ctx context.Context) (learn, model uint64, err error)
}

// ModelStale reports whether the store's learned messages changed since
// its model was fitted (by a read at an earlier learn generation): a
// refit now would fit other messages. A store that never learned is not
// stale; one that learned without a fit (sluice train --no-refit, the
// daemon's auto-learning) is. A refit that dropped features (see
// keepFeatureMessages) leaves its store stale by that drop, and the next
// refit, fitting the same model, makes it current. A store that cannot
// tell is always stale.
func ModelStale(ctx context.Context, s Store) (bool, error) {
	g, ok := s.(generationsReader)
	if !ok {
		return true, nil
	}
	learn, model, err := g.Generations(ctx)
	if err != nil {
		return false, err
	}
	return learn > model, nil
}

// maxFitMessages bounds the learned messages a fit holds and passes
// over: on a store that learned more, the model is fitted on the
// maxFitMessages of them with the lowest digests. A digest is a SHA-256
// of the message, so they are a uniform sample, in both classes' share,
// that depends only on which messages are learned, never on the order
// they were learned in, and the model stays a function of the learned
// messages. The fit's memory (about 3.5 kB a message, 350 MB at the
// bound) and time (25 to 28 s on two busy cores at the bound) stop
// growing there, where a store that auto-learns would otherwise make every
// hourly refit larger than the last; a fit over 100,000 messages
// gains next to nothing from more.
const maxFitMessages = 100_000

// dropSurplusFeatures drops the features of the learned messages beyond
// the keep of lowest digest, as a refit does once its model is stored,
// without fitting: for a store that keeps features but is scored without
// the n-gram model (ngram: off), which would otherwise grow by about 3.5
// kB a learned message without bound. It returns how many messages lost
// their features. Only digests are held, 32 bytes for each kept message
// and for each dropped one.
//
// Unlike a refit's drop it is not fenced by a stored model: a message
// unlearned between the walk and the drop may leave one dropped message
// within the bound. That costs the sample of a later fit (should the
// model be turned on) one message, nothing else.
func dropSurplusFeatures(ctx context.Context, s Store, keep int) (int, error) {
	kept := &lowestDigests[Digest]{n: keep, digest: func(d *Digest) *Digest { return d }}
	var drop []Digest
	_, err := s.WalkLearned(ctx, func(d DigestClass) error {
		if d.Features == nil {
			return nil
		}
		if out, ok := kept.add(d.Digest); ok {
			drop = append(drop, out)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dropping features beyond %d learned messages: %w", keep, err)
	}
	if len(drop) == 0 {
		return 0, nil
	}
	// In key order: the stores write them faster so.
	slices.SortFunc(drop, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
	n, err := s.DropFeatures(ctx, drop)
	if err != nil {
		return n, fmt.Errorf("dropping the features of %d learned messages beyond %d: %w", len(drop), keep, err)
	}
	return n, nil
}

// keepFeatureMessages bounds the learned messages whose features the store
// keeps: a refit drops the features of those above the keepFeatureMessages
// of lowest digest (their digests stay, so the message is still known as
// learned, can be moved and unlearned). A fit only ever reads the
// maxFitMessages of lowest digest, so without the bound a store that
// auto-learns would grow by about 3.5 kB a message for nothing. The margin
// over maxFitMessages keeps the sample full when messages of it are
// unlearned between refits: the messages next in digest order still have
// their features then, unless more than the margin were unlearned.
const keepFeatureMessages = maxFitMessages + maxFitMessages/4

// lowestDigests keeps the items of lowest digest offered to it, at most
// n: a heap with the item of highest digest on top, replaced by any lower
// one. The fit's sample holds whole messages, the bound on kept features
// digests alone; digest says where an item's digest is.
type lowestDigests[T any] struct {
	n      int
	items  []T
	digest func(*T) *Digest
}

func (h *lowestDigests[T]) Len() int { return len(h.items) }
func (h *lowestDigests[T]) Less(i, j int) bool {
	return bytes.Compare(h.digest(&h.items[i])[:], h.digest(&h.items[j])[:]) > 0
}
func (h *lowestDigests[T]) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *lowestDigests[T]) Push(x any)    { h.items = append(h.items, x.(T)) }
func (h *lowestDigests[T]) Pop() any {
	v := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return v
}

// add offers v, and returns the item it does not keep, v itself or the
// one v pushed out, and true; or false if it kept every item.
func (h *lowestDigests[T]) add(v T) (T, bool) {
	switch {
	case len(h.items) < h.n:
		heap.Push(h, v)
	case h.n > 0 && bytes.Compare(h.digest(&v)[:], h.digest(&h.items[0])[:]) < 0:
		out := h.items[0]
		h.items[0] = v
		heap.Fix(h, 0)
		return out, true
	default:
		return v, true
	}
	var none T
	return none, false
}

// refit is a refit between its read of the learned messages and its fit
// and write: Refit's two steps, apart so that a test can learn in between.
type refit struct {
	s   Store
	gen uint64 // the store's learn generation when read
	ex  []Example
	// drop are the learned messages with features above the keep of
	// lowest digest, whose features the refit drops once its model is
	// stored.
	drop []Digest
}

// readRefit reads the features of the learned messages, of the most
// (at most) of lowest digest (see maxFitMessages), and notes the messages
// with features beyond the keep of lowest digest (see keepFeatureMessages;
// keep is at least most, or the drop would take features of the sample).
// Every message's features are checked, kept or not. It holds the sample's
// features, keep digests, and the digests to drop.
func readRefit(ctx context.Context, s Store, most, keep int) (*refit, error) {
	if keep < most {
		return nil, fmt.Errorf("refit: keeping the features of %d messages, fewer than the %d of the sample", keep, most)
	}
	r := &refit{s: s}
	sample := &lowestDigests[Example]{n: most, digest: func(e *Example) *Digest { return &e.Digest }}
	kept := &lowestDigests[Digest]{n: keep, digest: func(d *Digest) *Digest { return d }}
	var scratch []uint32
	gen, err := s.WalkLearned(ctx, func(d DigestClass) error {
		if d.Features == nil {
			return nil
		}
		var err error
		if scratch, err = appendDecoded(scratch[:0], d.Features); err != nil {
			return fmt.Errorf("digest %s: %w", d.Digest, err)
		}
		sample.add(Example{Digest: d.Digest, Spam: d.Class == Spam, Encoded: d.Features})
		if out, ok := kept.add(d.Digest); ok {
			r.drop = append(r.drop, out)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("refit: %w", err)
	}
	r.ex = sample.items
	r.gen = gen
	// In key order: the stores write them faster so.
	slices.SortFunc(r.drop, func(a, b Digest) int { return bytes.Compare(a[:], b[:]) })
	return r, nil
}

// fitAndStore fits the model on what readRefit read and stores it, unless
// the store has a model of a later read; it returns the store's model.
// Once its model is stored, it drops the features readRefit found beyond
// the bound. A refit whose model was not stored drops nothing: what it
// read is older than the stored model's read, and messages unlearned in
// between may have brought some of its drops within the bound.
//
// The drop raises the learn generation, past the one the model was
// stored with; that is harmless: a refit that reads after it fits the
// same messages (the drop takes none of the sample), so the same model
// with the same id, which no classifier reads again.
func (r *refit) fitAndStore(ctx context.Context) (*NgramModel, error) {
	var m *NgramModel
	var blob []byte
	id := ""
	if len(r.ex) > 0 {
		var err error
		if m, err = fitNgram(ctx, r.ex); err != nil {
			return nil, fmt.Errorf("refit: %w", err)
		}
		blob, _ = m.MarshalBinary()
		id = modelID(blob)
	}
	stored, err := r.s.SetModel(ctx, r.gen, string(blob), id)
	if err != nil {
		return nil, fmt.Errorf("refit: %w", err)
	}
	if !stored {
		// A refit that read later wrote its model first: it stays.
		m, _, err = StoredModel(ctx, r.s)
		if err != nil {
			return nil, fmt.Errorf("refit: %w", err)
		}
		return m, nil
	}
	if len(r.drop) > 0 {
		_, err := r.s.DropFeatures(ctx, r.drop)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			// Stopped (a signal to "sluice train"): the model is in,
			// and the next refit drops what is left.
		default:
			return nil, fmt.Errorf("refit: model stored, but dropping the features of %d learned messages that no fit reads failed: %w", len(r.drop), err)
		}
	}
	return m, nil
}
