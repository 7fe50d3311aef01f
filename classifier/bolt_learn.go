package classifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
)

// Bounds of the transaction that learns the queued calls of several
// callers at once (see Learn): the ops of all of them, and the bytes of
// their tokens and features. Every transaction takes at least one call
// whole, whatever its size; more are added only within these, so that one
// transaction, and the time readers and other processes wait for it, does
// not grow with the queue. A daemon's auto-learn is one op of a few
// thousand tokens, so hundreds of calls fit.
const (
	maxLearnBatchOps   = 4096
	maxLearnBatchBytes = 16 << 20
)

// learnReq is one call of Learn waiting for, or in, a write transaction.
type learnReq struct {
	ctx  context.Context
	ops  []LearnOp
	size int // bytes of the ops' tokens and features

	// taken is set, under the store's learnMu, once the request has
	// left the queue: into a transaction, or failed there, or withdrawn
	// by its caller.
	taken bool
	// out and err are set before done is closed.
	out  []Outcome
	err  error
	done chan struct{}
}

// Learn implements Store. All ops of one call go in one write transaction:
// a caller training many messages should pass them in batches of a few
// hundred, so each transaction (and the time other processes wait) stays
// short.
//
// Calls that arrive while another call of this process writes are queued
// and then written together, in one transaction (one open, one commit and
// fsync, one close of the file), in queue order: each gets the outcomes of
// its own ops as if the calls had run one after the other. A daemon
// auto-learns one message per call from every SMTP session, and a commit
// costs tens of milliseconds of fsync however little it writes; one at a
// time, learns would queue without bound on a busy site. A call with
// nothing before it writes at once, alone.
//
// A call whose ctx ends while it is queued behind another write returns
// the context's error, its ops not applied; one that need not wait
// writes whatever its ctx. Once taken into a transaction it waits for it: its
// ops may then be learned, and it returns their outcomes. The transaction
// gives up waiting for the file only when the contexts of all the calls
// in it have ended (see batchContext).
func (s *BoltStore) Learn(ctx context.Context, ops []LearnOp) ([]Outcome, error) {
	// Checked here, not only in the transaction: a bad op must fail only
	// its own call, not every call written with it.
	size := 0
	for _, op := range ops {
		if op.Class != Spam && op.Class != Ham {
			return nil, fmt.Errorf("learn: bad class %v", op.Class)
		}
		size += len(op.Features)
		for _, tok := range op.Tokens {
			size += len(tok)
		}
	}
	r := &learnReq{ctx: ctx, ops: ops, size: size, done: make(chan struct{})}
	s.learnMu.Lock()
	s.learnQueue = append(s.learnQueue, r)
	s.learnMu.Unlock()
	// A call that need not wait writes even if ctx has ended, as a
	// write before group commit did (the file's lock is tried before
	// the context is): a training run stopped by Ctrl-C learns the
	// messages it read. Only waiting is bounded by ctx.
	select {
	case s.learnTurn <- struct{}{}:
		s.learnBatchTurn()
	default:
	}
	for {
		select {
		case <-r.done:
			return r.out, r.err
		case s.learnTurn <- struct{}{}:
			// This call's turn to write for the queue. The queue may
			// have been taken already (this request with it), or hold
			// more than one transaction takes: the loop then waits for
			// its outcome or takes the turn again. The batch is written
			// through even if ctx ends meanwhile: the other callers in
			// it wait for this one.
			s.learnBatchTurn()
		case <-ctx.Done():
			if s.withdrawLearn(r) {
				return nil, fmt.Errorf("learn: %w", ctx.Err())
			}
			// In a transaction already, which may commit it: the
			// caller is told what happened, not that nothing did.
			<-r.done
			return r.out, r.err
		}
	}
}

// withdrawLearn takes r out of the queue and reports whether it was still
// there (not taken into a transaction).
func (s *BoltStore) withdrawLearn(r *learnReq) bool {
	s.learnMu.Lock()
	defer s.learnMu.Unlock()
	if r.taken {
		return false
	}
	if i := slices.Index(s.learnQueue, r); i >= 0 {
		s.learnQueue = slices.Delete(s.learnQueue, i, i+1)
	}
	r.taken = true
	return true
}

// takeLearns takes the requests at the head of the queue that one
// transaction is to write, within the batch bounds. A request whose
// context has ended is taken too: its caller has not withdrawn it (yet),
// and the turn holder's own request may be one (see Learn).
func (s *BoltStore) takeLearns() []*learnReq {
	s.learnMu.Lock()
	defer s.learnMu.Unlock()
	var batch []*learnReq
	nops, size, i := 0, 0, 0
	for ; i < len(s.learnQueue); i++ {
		r := s.learnQueue[i]
		if len(batch) > 0 && (nops+len(r.ops) > maxLearnBatchOps || size+r.size > maxLearnBatchBytes) {
			break
		}
		r.taken = true
		batch = append(batch, r)
		nops += len(r.ops)
		size += r.size
	}
	s.learnQueue = slices.Delete(s.learnQueue, 0, i)
	return batch
}

// learnBatchTurn runs learnBatch for the caller holding the learn turn,
// and gives the turn back even if learnBatch panics: a daemon recovers a
// panic at the session's edge and goes on, and every later Learn would
// otherwise wait for a turn that never comes.
func (s *BoltStore) learnBatchTurn() {
	defer func() { <-s.learnTurn }()
	s.learnBatch()
}

// learnBatch writes the requests at the head of the queue in one
// transaction and hands each its outcomes, or the transaction's error.
// The caller holds the learn turn. If the transaction panics, every
// request in it fails with the panic, which goes on up: their callers
// must not wait for an answer that never comes.
func (s *BoltStore) learnBatch() {
	batch := s.takeLearns()
	if len(batch) == 0 {
		return
	}
	answered := false
	defer func() {
		if answered {
			return
		}
		p := recover()
		for _, r := range batch {
			r.out, r.err = nil, fmt.Errorf("learn: panic: %v", p)
			close(r.done)
		}
		panic(p)
	}()
	ops := batch[0].ops
	if len(batch) > 1 {
		ops = nil
		for _, r := range batch {
			ops = append(ops, r.ops...)
		}
	}
	ctx, stop := batchContext(batch)
	learnTx := s.learnTx
	if s.learnTxHook != nil {
		learnTx = s.learnTxHook
	}
	out, err := learnTx(ctx, ops)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// The transaction's context was cancelled because every
		// caller's had ended: their error (mostly a deadline) is the
		// one to report, not the cancellation that stands for it.
		err = fmt.Errorf("learn: %w", context.Cause(ctx))
	}
	stop()
	answered = true
	off := 0
	for _, r := range batch {
		if err != nil {
			r.err = err
		} else {
			r.out = slices.Clip(out[off : off+len(r.ops)])
		}
		off += len(r.ops)
		close(r.done)
	}
}

// batchContext returns the context for the transaction of batch, and a
// function to call when it is done. It carries the values of the first
// request's context, and ends when the contexts of all the requests have
// ended, with the error of the last to end: the caller that happens to
// write for the others must not fail them because its own time is up
// while they still have theirs. If every request has a deadline, it ends
// by the latest of them.
func batchContext(batch []*learnReq) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel(r.ctx.Err())
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
}
