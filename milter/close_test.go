package milter_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
)

// hungCloser is a filter whose Close blocks until release, as a store's
// does when a read of its file is stuck on a disk that stopped answering.
type hungCloser struct {
	filtertest.Script
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newHungCloser(name string) *hungCloser {
	return &hungCloser{Script: filtertest.Script{FilterName: name}, entered: make(chan struct{}), release: make(chan struct{})}
}

func (h *hungCloser) Close() error {
	h.once.Do(func() { close(h.entered) })
	<-h.release
	return nil
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A filter whose Close never returns does not hold Shutdown past its
// context: the daemon's deadline or second stop signal ends the process
// whatever the filter does, and the log names the filter that did not
// finish. A reload replacing that pipeline does not wait for it either.
func TestShutdownCloseHangs(t *testing.T) {
	for _, how := range []string{"shutdown", "reload"} {
		t.Run(how, func(t *testing.T) {
			hung := newHungCloser("stuck-store")
			defer close(hung.release)
			log := &syncLog{}
			logger := slog.New(slog.NewTextHandler(log, nil))
			srv := milter.NewServer(milter.Config{Pipeline: pipeline(hung)}, logger, nil)
			if how == "reload" {
				swapped := make(chan struct{})
				go func() {
					srv.SetConfig(milter.Config{Pipeline: pipeline(&filtertest.Script{})})
					close(swapped)
				}()
				select {
				case <-swapped:
				case <-time.After(10 * time.Second):
					t.Fatal("a reload waits for the Close of the pipeline it replaced")
				}
				<-hung.entered
			}
			ctx, cancel := context.WithCancel(context.Background())
			ended := make(chan error, 1)
			go func() { ended <- srv.Shutdown(ctx) }()
			if how == "shutdown" {
				<-hung.entered
			}
			// The second stop signal.
			cancel()
			select {
			case err := <-ended:
				// ErrCloseUnfinished, or the context's error when it
				// ended before the (no) sessions were seen to end.
				if !errors.Is(err, milter.ErrCloseUnfinished) && !errors.Is(err, context.Canceled) {
					t.Errorf("Shutdown returned %v, want ErrCloseUnfinished", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown still waits for a hung Close 10s after its context ended")
			}
			if !strings.Contains(log.String(), "closing a filter did not finish") || !strings.Contains(log.String(), "filter=stuck-store") {
				t.Errorf("the log does not name the filter whose Close hangs:\n%s", log)
			}
		})
	}
}

// A Close that ends in time is waited for: after Shutdown returns nil
// every filter is closed (a store written back, a seen file saved).
func TestShutdownWaitsForClose(t *testing.T) {
	slow := newHungCloser("slow-store")
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(slow)}, nil, nil)
	go func() {
		<-slow.entered
		time.Sleep(100 * time.Millisecond)
		close(slow.release)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-slow.release:
	default:
		t.Fatal("Shutdown returned before the filter's Close did")
	}
}

var _ filters.Closer = (*hungCloser)(nil)
