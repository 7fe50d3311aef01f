package classifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"

	"github.com/sluice-mail/sluice/filters/process"
)

// RemoveIfEmpty deletes the store's file if it holds nothing: no token,
// no digest, no learned message, no setting but the dialect and the mark
// of an import run by this process. An import into a store that did not
// exist calls it when it fails before any of its input is in the store
// (a full disk), so that it leaves no empty store behind, which classify
// and the daemon would use, unsure for want of training, instead of
// reporting that there is none. The check and the removal are made
// holding the writers' lock, so that no other process's write comes
// between them: a store another import has begun to write holds its mark
// or its counts, and stays. It reports whether the file went; the store
// is to be closed afterwards either way.
func (s *BoltStore) RemoveIfEmpty(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, errors.New("store closed")
	}
	if s.opts.ReadOnly {
		return false, fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	s.closeReaderLocked()
	if err := flockWait(ctx, s.lock, syscall.LOCK_EX, s.opts.LockTimeout); err != nil {
		return false, err
	}
	defer funlock(s.lock)
	db, err := s.openBolt(&bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
	if err != nil {
		return false, fmt.Errorf("open %s read-only: %w", s.path, err)
	}
	empty := false
	err = s.noPanic(func() error {
		return db.View(func(tx *bolt.Tx) error {
			empty = emptyTx(tx)
			return nil
		})
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil || !empty {
		return false, err
	}
	if err := os.Remove(s.path); err != nil {
		return false, err
	}
	return true, nil
}

// emptyTx reports whether the store holds nothing but what opening it
// and a failed first write of this process's import leave (see
// RemoveIfEmpty).
func emptyTx(tx *bolt.Tx) bool {
	toks, digs, meta := tx.Bucket(bucketTokens), tx.Bucket(bucketDigests), tx.Bucket(bucketMeta)
	if toks == nil || digs == nil || meta == nil {
		return false
	}
	if k, _ := toks.Cursor().First(); k != nil {
		return false
	}
	if k, _ := digs.Cursor().First(); k != nil {
		return false
	}
	if b := tx.Bucket(bucketModel); b != nil {
		if k, _ := b.Cursor().First(); k != nil {
			return false
		}
	}
	c := meta.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		switch {
		case bytes.Equal(k, keyVersion), bytes.Equal(k, metaKey(MetaDialect)):
		case bytes.Equal(k, keyTotals):
			if tot, err := decodeTotals(v); err != nil || tot != (Totals{}) {
				return false
			}
		case bytes.Equal(k, metaKey(MetaImporting)):
			m := parseImportMark(string(v))
			start, _ := process.Start(os.Getpid())
			if m.PID != os.Getpid() || m.Start != start || m.Host != process.Host() {
				return false
			}
		default:
			return false
		}
	}
	return true
}
