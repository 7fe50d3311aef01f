package bayes_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
)

// stuckStatsStore is a store whose measurement does not answer until its
// context ends: a bbolt store whose lock a writer holds (the measurement
// waits for it up to the store's lock timeout) or a Redis server that does
// not answer (up to redis.timeout). started hears of each measurement.
type stuckStatsStore struct {
	classifier.Store
	started chan struct{}
}

func (s stuckStatsStore) Stats(ctx context.Context) (classifier.Stats, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	return classifier.Stats{}, ctx.Err()
}

// Close stops the store measurements: one under way when it is called is
// given up, as the refit is, rather than waited for until its
// stats_interval runs out, and no other begins after it. Close waited for
// the measurement to time out and then, half the time, for one more whole
// measurement: the interval's tick had come meanwhile, and the loop took
// it rather than the stop.
func TestCloseStopsMeasurementUnderWay(t *testing.T) {
	st := trainedStore(t)
	t.Cleanup(func() { st.Close() })
	started := make(chan struct{}, 16)
	f := newFilter(t, stuckStatsStore{nopCloser{st}, started}, "stats_interval: 3s", &recorder{})
	<-started
	closed := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		f.Close()
		closed <- time.Since(start)
	}()
	select {
	case took := <-closed:
		if n := len(started); n > 0 {
			t.Errorf("%d measurements begun after Close was called (Close took %s)", n, took)
		}
	case <-time.After(time.Second):
		took := <-closed
		t.Errorf("Close took %s, waiting for a measurement of a store that did not answer (stats_interval 3s)", took.Round(100*time.Millisecond))
	}
}
