// Package asynclog is the log output of `sluice serve`: a writer that
// never blocks its caller.
//
// The daemon logs to standard error, which under systemd is a pipe to
// journald. When journald stalls (a full disk, a hung journald, a pipe
// nobody reads) a plain write(2) to it blocks, and with it every milter
// session that logs: the MTA's milter timeouts fire and mail is
// tempfailed, or passes unfiltered. A mail filter must not stall mail for
// its logs. So the slog handler formats each record as before and hands
// the finished line to a Writer, which queues it in a bounded buffer that
// one goroutine drains to the real standard error. When the buffer is
// full, new lines are dropped and counted, and so are lines the output
// refuses (standard error a file on a full disk); once the output takes
// lines again, a record saying how many were dropped is written where
// they went missing.
package asynclog

import (
	"io"
	"sync"
	"time"
)

// DefaultMaxBytes bounds the bytes queued for, or being written to, the
// output. One MiB holds some 2,000 to 5,000 lines of sluice's log (200 to
// 500 bytes each): at one line per message and a few hundred messages a
// second, several seconds of a stalled journald pass without a line lost,
// and at the usual rates minutes do. It is little next to the rest of the
// daemon (a Bayes store cache alone is tens of MiB), and it is the most a
// log reader that never comes back can cost.
const DefaultMaxBytes = 1 << 20

// entry is one queued log line, or, with line nil, a gap of dropped lines.
type entry struct {
	line    []byte
	dropped int
}

// Writer queues whole lines for one goroutine that writes them to the
// output in order. Each Write must be one whole line (slog's handlers
// write each record with one Write call); it is written with one Write to
// the output, so lines are never split or interleaved.
type Writer struct {
	out        io.Writer
	max        int
	dropRecord func(n int) []byte
	onDrop     func(n int)

	mu sync.Mutex
	// queue holds the lines not yet taken by the writing goroutine, and
	// markers for the lines dropped between them.
	queue []entry
	// bytes counts the line bytes in queue and in the batch being
	// written: the memory the Writer holds.
	bytes  int
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

// New returns a Writer to out holding at most maxBytes of lines (or one
// longer line, see Write). A line that does not fit is dropped, and so
// is one that out refuses (a full disk): onDrop (if not nil) is called
// with 1 for each, under a lock or from the writing goroutine, so it must
// be quick and safe for concurrent use (a Prometheus counter). The
// writing goroutine writes the line dropRecord(n) where n lines went
// missing, before the lines that came after them, as soon as out takes
// it; dropRecord should give a log record in the daemon's format, ending
// in a newline.
func New(out io.Writer, maxBytes int, dropRecord func(n int) []byte, onDrop func(n int)) *Writer {
	w := &Writer{
		out:        out,
		max:        maxBytes,
		dropRecord: dropRecord,
		onDrop:     onDrop,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	go w.drain()
	return w
}

// Write queues a copy of p and returns at once; it never fails. When p
// does not fit in the queue, or the Writer is closed, p is dropped and
// counted. A line longer than the whole queue (a message with thousands
// of recipients) is queued when no other line is: the output is not
// behind then, and a drop would report a stall that did not happen. The
// Writer then holds at most maxBytes plus that one line.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || (w.bytes > 0 && w.bytes+len(p) > w.max) {
		if n := len(w.queue); n > 0 && w.queue[n-1].line == nil {
			w.queue[n-1].dropped++
		} else {
			w.queue = append(w.queue, entry{dropped: 1})
		}
		if w.onDrop != nil {
			w.onDrop(1)
		}
		return len(p), nil
	}
	w.queue = append(w.queue, entry{line: append([]byte(nil), p...)})
	w.bytes += len(p)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// drain writes the queue to the output until the Writer is closed and
// the queue is empty.
func (w *Writer) drain() {
	defer close(w.done)
	// unreported counts the lines lost and not yet told of in a drop
	// record: those dropped for want of room, and those the output
	// refused.
	unreported := 0
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		closed := w.closed
		w.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-w.wake
			continue
		}
		for _, e := range batch {
			if e.line == nil {
				unreported += e.dropped
				unreported = w.report(unreported)
				continue
			}
			unreported = w.report(unreported)
			if _, err := w.out.Write(e.line); err != nil {
				// The output refused the line (standard error a
				// file on a full disk): it is lost as surely as one
				// dropped for want of room, and counted and
				// reported the same way. The error itself cannot be
				// logged anywhere.
				unreported++
				if w.onDrop != nil {
					w.onDrop(1)
				}
			}
			w.mu.Lock()
			w.bytes -= len(e.line)
			w.mu.Unlock()
		}
	}
}

// report writes the record of n lines lost, if n > 0, and returns how
// many are still to be reported: n again when the output refused the
// record too, so that the next attempt, before the next line, counts
// them with any lost meanwhile.
func (w *Writer) report(n int) int {
	if n == 0 || w.dropRecord == nil {
		return 0
	}
	if _, err := w.out.Write(w.dropRecord(n)); err != nil {
		return n
	}
	return 0
}

// Close stops taking lines and waits until those queued are written, or
// until timeout passes: a hung output must not keep the daemon from
// exiting. It reports whether everything was written. Lines written
// after Close are dropped and counted. Close may be called more than
// once.
func (w *Writer) Close(timeout time.Duration) bool {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.done:
		return true
	case <-t.C:
		return false
	}
}
