package classifier

import (
	"testing"
	"time"
)

// waitLearnState waits until queued Learn calls wait in the store's queue
// and a call holds the write turn (writing) or not.
func waitLearnState(t *testing.T, s *BoltStore, queued int, writing bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.learnMu.Lock()
		n := len(s.learnQueue)
		s.learnMu.Unlock()
		if n == queued && (len(s.learnTurn) == 1) == writing {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("learn queue: %d queued, writing %v; want %d, %v", n, len(s.learnTurn) == 1, queued, writing)
		}
		time.Sleep(time.Millisecond)
	}
}
