package classifier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// flockPollMax is the longest interval between two of flockWait's tries.
// A writer leaves the lock free at least this long between two writes
// (writerYield), so that every waiting process gets a try meanwhile.
const flockPollMax = 5 * time.Millisecond

// flockWait takes a flock(2) lock on f, polling with LOCK_NB until ctx is
// done or timeout passes, so that a stuck process costs a bounded wait and
// an error rather than a hung daemon. The poll interval grows from 1 ms to
// flockPollMax: locks here are held for milliseconds, so short polls keep
// the added latency small, and a try every 5 ms costs nothing worth
// counting.
func flockWait(ctx context.Context, f *os.File, how int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("flock %s: %w", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("flock %s: %w", f.Name(), ErrBusy)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, flockPollMax)
	}
}

// flockTry takes a lock on f without waiting and reports whether it got it.
func flockTry(f *os.File, how int) (bool, error) {
	err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return false, fmt.Errorf("flock %s: %w", f.Name(), err)
}

// funlock releases a lock taken by flockWait or flockTry.
func funlock(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		return fmt.Errorf("unlock %s: %w", f.Name(), err)
	}
	return nil
}
