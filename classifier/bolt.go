package classifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluice-mail/sluice/filters/trustedlink"
)

// Bucket and key names of the bbolt file. The format version is checked on
// every open so an incompatible future layout fails loudly.
var (
	bucketTokens  = []byte("tokens")
	bucketDigests = []byte("digests")
	bucketMeta    = []byte("meta")
	keyVersion    = []byte("version")
	keyTotals     = []byte("totals")
	// The learn generation (see Store.WalkLearned), and the one the
	// stored n-gram model was fitted at (Store.SetModel): uvarints,
	// absent for 0.
	keyLearnGen = []byte("learngen")
	keyModelGen = []byte("modelgen")
	// The n-gram model (MetaModel, about 4 MB) has a bucket of its own.
	// In the meta bucket it would share a node with the totals, which
	// every learn commit changes, and bbolt writes a changed node whole:
	// 4 MB written per learned message, and no learning at all on a disk
	// without 4 MB free. Stores written before keep it in the meta
	// bucket (see modelBlob).
	bucketModel = []byte("ngram")
	keyModel    = []byte("model")
)

const formatVersion = "1"

// BoltOptions configure a bbolt store. The zero value gives the defaults.
type BoltOptions struct {
	// LockTimeout bounds how long an operation waits for another process
	// holding the file (a CLI training batch, or a daemon slow to let go).
	// After it, the operation fails with ErrBusy. Default 10 s.
	LockTimeout time.Duration
	// PollInterval is how often a process holding the file open for
	// reading checks whether another process waits to write, and if so
	// lets go. It bounds the extra wait of a writer. Default 50 ms.
	PollInterval time.Duration
	// NoSync skips fsync on commit. Only for tests and benchmarks: a
	// crash can then lose or corrupt the store.
	NoSync bool
	// IndexTokens is the most tokens the in-memory index of a process
	// that classifies many messages may hold (see tokenIndex): about 27
	// bytes per token, built by reading the whole store once, and again
	// after another process writes (this process's own writes update it).
	// The index holds only the tokens seen in enough messages for the
	// classifiers on the store to count them (with the default
	// parameters five; less than a tenth of the tokens of a typical
	// store). A store
	// with more such tokens is read token by token from the file.
	// Default DefaultIndexTokens (about 55 MB at most); negative turns
	// the index off.
	IndexTokens int
	// IndexAfter is how many tokens a process looks up through the file
	// before it builds the index: a CLI classifying one message reads a
	// few hundred tokens and would waste the scan, a daemon passes the
	// default, DefaultIndexAfter, within a few dozen messages.
	IndexAfter int
	// Logger receives the rare events worth logging (a failed poll).
	// Default: discarded.
	Logger interface {
		Warn(msg string, args ...any)
	}
	// ReadOnly opens an existing store for reading only, for a process
	// that may read the store but not write it or its directory ("sluice
	// classify" run by a mail user, a store on a read-only mount). Nothing
	// is created or written, and every write fails with ErrReadOnly. The
	// lock file is opened for reading, which flock needs no more than, so
	// that writers still get their turn as with a read-write open. Where
	// there is none, or this process may not read it, the store is read
	// without it: the file is then opened for each read and closed after
	// it, so that a writer waits at most one read (bbolt's own lock on the
	// file keeps the read and a write apart either way).
	ReadOnly bool
}

// BoltStore is the embedded Store on a bbolt file. See the package comment
// for how several processes share the file.
type BoltStore struct {
	path string
	opts BoltOptions
	lock *os.File // PATH.lock, the writers' turnstile

	// mu guards db and every use of the turnstile lock. Readers hold it
	// shared while they read through db; writers hold it exclusively for
	// the whole write, so within a process writes are serialised and
	// never overlap a read.
	mu     sync.RWMutex
	db     *bolt.DB // read-only handle, nil while closed
	dbFile fileID   // the file behind db
	closed bool
	// born is when the store was made, and wrote how long after it
	// this process last let go of the turnstile after a write (see
	// writerYield): a monotonic time that writers read before they take
	// mu.
	born  time.Time
	wrote atomic.Int64
	// opened is set once OpenBolt has made or found the store: a store
	// file a write creates after that was removed while the store was
	// open, which is worth a warning.
	opened bool

	// The in-memory index of the token counts. Readers load it under mu
	// (shared) and use it if it matches their transaction; it is built
	// by one reader at a time (idxMu) and patched by writers, who hold mu
	// exclusively.
	idx      atomic.Pointer[tokenIndex]
	idxMu    sync.Mutex
	idxSkip  int          // transaction ID whose store was too large to index; under idxMu
	lookedUp atomic.Int64 // tokens looked up by this process
	// idxFloor is the floor of the index to build (see tokenIndex): the
	// lowest countFloor of the classifiers made on this store, 0 (all
	// tokens) before the first.
	idxFloor atomic.Uint64

	// Group commit of Learn (see learnBatch): learnQueue holds the
	// requests not yet taken into a transaction, under learnMu;
	// learnTurn, a channel of one slot, is held by the one Learn caller
	// that writes for the queue.
	learnMu    sync.Mutex
	learnQueue []*learnReq
	learnTurn  chan struct{}
	// learnTxHook, if set, writes a batch instead of learnTx: a test's
	// way to make the write fail in ways a file cannot.
	learnTxHook func(context.Context, []LearnOp) ([]Outcome, error)

	stop chan struct{}
	done chan struct{}
	// modelSeen is the n-gram model id read with the latest lookup.
	modelSeen modelSeen
	renewErr  string // the last failure of renewLockFile, logged once
}

// Open opens (creating if needed) the bbolt store at path with default
// options.
func Open(path string) (*BoltStore, error) {
	return OpenBolt(path, BoltOptions{})
}

// OpenBolt opens (creating if needed) the bbolt store at path.
func OpenBolt(path string, opts BoltOptions) (*BoltStore, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 10 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.IndexTokens == 0 {
		opts.IndexTokens = DefaultIndexTokens
	}
	if opts.IndexAfter <= 0 {
		opts.IndexAfter = DefaultIndexAfter
	}
	// Checked before the lock file is made: a mistaken --db (a config
	// file, /dev/null, a directory, bogofilter's wordlist.db) must not
	// leave a PATH.lock beside it.
	if err := checkStoreFile(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if opts.ReadOnly {
		return openBoltReadOnly(path, opts)
	}
	// Root's "sluice train" writes the store in state_dir, which the
	// daemon's user may write: a symbolic link that user put in the
	// store's place must not have root create or write the file it
	// points to. Checked here, before the lock file is made; the open
	// itself (openBolt) follows only such a link too.
	if link, err := os.Lstat(path); err == nil && link.Mode()&fs.ModeSymlink != 0 {
		if err := trustedlink.Check(path, link); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	// Another program's bbolt file is only told from a store by reading
	// it, under the lock: the lock file this open makes for it goes again.
	_, lerr := os.Lstat(path + ".lock")
	lockMade := errors.Is(lerr, fs.ErrNotExist)
	lock, err := openLockFile(path)
	if err != nil {
		if dir := filepath.Dir(path); errors.Is(err, fs.ErrNotExist) && !isDir(dir) {
			// Not a matter of access: the advice of lockFileError
			// would send the reader after permissions.
			return nil, fmt.Errorf("open store %s: directory %s does not exist (the store's directory is not created): %w", path, dir, err)
		}
		return nil, lockFileError(path, err)
	}
	s := newBoltStore(path, opts, lock)
	// A store made before needs no write: a read transaction checks its
	// format. Writing at every open would rewrite and sync the pages of
	// the meta bucket, the n-gram model's 4 MB among them, for every
	// "sluice classify" a procmail recipe runs, and make each such run a
	// writer that the daemon's readers must make way for. Whatever the
	// read cannot confirm (no file yet, a bucket missing, an error) is
	// left to the write transaction, which creates the file and buckets
	// or reports what is wrong.
	ready, err := s.ready()
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if ready {
		s.opened = true
		go s.poll()
		return s, nil
	}
	err = s.update(context.Background(), initTx)
	if err != nil {
		lock.Close()
		if lockMade && errors.Is(err, errForeignBbolt) {
			os.Remove(path + ".lock")
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s.opened = true
	go s.poll()
	return s, nil
}

// newBoltStore is a BoltStore of the file at path, its lock file open
// as lock (nil for none), before the file is opened.
func newBoltStore(path string, opts BoltOptions, lock *os.File) *BoltStore {
	return &BoltStore{
		path:      path,
		opts:      opts,
		lock:      lock,
		born:      time.Now(),
		learnTurn: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
}

// lockFileError explains a lock file that a read-write open cannot open
// or create: the message names the file and the way out, as "permission
// denied" alone does not say that the store itself may be readable.
func lockFileError(path string, err error) error {
	if _, ok := errors.AsType[*trustedlink.UntrustedError](err); ok {
		// Not a matter of access either: the advice would mislead.
		return fmt.Errorf("open store %s: lock file: %w", path, err)
	}
	return fmt.Errorf("open store %s: lock file: %w: a process that writes the store must be able to write %s.lock "+
		"(and create it in the store's directory); run it as the store's owner, or only read the store "+
		"(sluice classify, test, db stats, db dump and db export need no write access)", path, err, path)
}

// isDir reports whether path is a directory (following symbolic links).
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// openBoltReadOnly is OpenBolt for BoltOptions.ReadOnly.
func openBoltReadOnly(path string, opts BoltOptions) (*BoltStore, error) {
	if err := checkStoreFile(path); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if _, err := os.Stat(path); err != nil {
		if dir := filepath.Dir(path); errors.Is(err, fs.ErrNotExist) && !isDir(dir) {
			// Said as OpenBolt says it: a state_dir not made yet,
			// or a mistyped path, not a store missing from it.
			return nil, fmt.Errorf("open store %s: directory %s does not exist (the store's directory is not created): %w", path, dir, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	lock, err := openLockFileReadOnly(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: lock file: %w", path, err)
	}
	s := newBoltStore(path, opts, lock)
	// Nothing may be written to finish the store: one that ready does
	// not accept is refused, with the reason a read can give.
	ready, err := s.ready()
	if err == nil && !ready {
		err = s.view(context.Background(), func(tx *bolt.Tx) error {
			if err := checkFormat(tx); err != nil {
				return err
			}
			return errors.New("it holds no token store yet, and reading it creates none")
		})
	}
	if err != nil {
		s.closeReaderLocked()
		if lock != nil {
			lock.Close()
		}
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	go s.poll()
	return s, nil
}

// openLockFileReadOnly opens the lock file of the store at path for
// reading, creating nothing. It returns nil, and no error, where there is
// no lock file this process can use (none, one it may not read, or
// something else than a file at its path): the store is then read
// without it (see BoltOptions.ReadOnly).
func openLockFileReadOnly(path string) (*os.File, error) {
	// Without O_NONBLOCK, opening a FIFO at the path for reading would
	// wait for a writer to open it, for ever; with it, the open returns
	// and the FIFO is passed over below as no regular file.
	f, err := os.OpenFile(path+".lock", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// checkStoreFile refuses a path that names something a store cannot be:
// not a regular file, or one that does not start as a bbolt file does.
// A missing or empty file is what OpenBolt makes a store of; a store cut
// short or of another version is left to bbolt and the format check.
func checkStoreFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if fi.Size() == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The first page is a meta page: a 16-byte page header, then the
	// magic number, in the byte order of the machine that wrote it.
	var head [20]byte
	if _, err := io.ReadFull(f, head[:]); err != nil || binary.NativeEndian.Uint32(head[16:]) != boltMagic {
		return errors.New("not a sluice token store (not a bbolt file; a bogofilter word list is imported with sluice db import)")
	}
	return nil
}

// boltMagic is the magic number of a bbolt file's meta pages.
const boltMagic = 0xED0CDAED

// CheckBolt reports whether OpenBolt could open the file at path as a
// store, only reading it: it creates nothing, not even the lock file
// ("sluice config check" runs it, often as root). A missing or empty file
// passes (OpenBolt makes the store), and so does a file a writer holds
// for longer than timeout: bbolt locked it, so it is a store in use. A
// file that is no bbolt store (bogofilter's wordlist.db, a word list
// dump), or a store of another format version, fails, naming the file,
// as OpenBolt would.
func CheckBolt(path string, timeout time.Duration) error {
	_, _, err := CheckBoltDialect(path, timeout)
	return err
}

// CheckBoltDialect is CheckBolt, and also returns the tokenizer dialect of
// the store (MetaDialect), by which its scoring parameters' defaults go:
// DialectSluice for a store still to be made. known is false when a
// writer held the file past timeout and nothing was read.
func CheckBoltDialect(path string, timeout time.Duration) (d Dialect, known bool, err error) {
	if err := checkStoreFile(path); err != nil {
		return "", false, fmt.Errorf("open store %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && fi.Size() == 0 {
		return DialectSluice, true, nil
	}
	if err != nil {
		return "", false, err
	}
	s := &BoltStore{path: path}
	db, err := s.openBolt(&bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return "", false, nil
	}
	if err == nil {
		err = s.noPanic(func() error {
			return db.View(func(tx *bolt.Tx) error {
				if err := checkFormat(tx); err != nil {
					return err
				}
				d = DialectSluice
				if tx.Bucket(bucketMeta) == nil {
					return nil // a bare bbolt file, made a store by OpenBolt
				}
				var derr error
				d, derr = ParseDialect(string(metaValue(tx, MetaDialect)))
				return derr
			})
		})
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return "", false, fmt.Errorf("open store %s: %w", path, err)
	}
	return d, true, nil
}

// checkFormat refuses a store of another format version than this
// sluice's, and a bbolt file that another program wrote. A file with no
// bucket at all is a store not made yet (bbolt made the file, and the
// transaction that makes the buckets did not commit).
func checkFormat(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		// Every sluice makes the meta bucket, with the format version
		// in it, in the transaction that makes the file's first bucket:
		// buckets without it are another program's (mox keeps its
		// junk filter and mail index in bbolt files), which a store
		// opened on the file would write its own buckets into.
		var other []byte
		tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			other = name
			return errStopWalk
		})
		if other != nil {
			return fmt.Errorf("%w (a bbolt file of another program, with a bucket %q and no sluice format version)", errForeignBbolt, other)
		}
		return nil
	}
	v := meta.Get(keyVersion)
	if v == nil {
		return fmt.Errorf("%w (a bbolt file of another program: its meta bucket holds no sluice format version)", errForeignBbolt)
	}
	if string(v) != formatVersion {
		return fmt.Errorf("store format version %q, want %q", v, formatVersion)
	}
	return nil
}

// errForeignBbolt is checkFormat's error for a bbolt file that another
// program wrote.
var errForeignBbolt = errors.New("not a sluice token store")

// errStopWalk ends a bbolt ForEach early.
var errStopWalk = errors.New("stop")

// initTx makes the buckets of a store and records its format version,
// leaving what a store made before holds.
func initTx(tx *bolt.Tx) error {
	if err := checkFormat(tx); err != nil {
		return err
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyVersion, []byte(formatVersion)); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketTokens); err != nil {
		return err
	}
	_, err = tx.CreateBucketIfNotExists(bucketDigests)
	return err
}

// ready reports whether the store file exists with its buckets, in this
// format version. Its only error is a store busy past the lock timeout,
// which the write transaction would wait out a second time.
func (s *BoltStore) ready() (bool, error) {
	if _, err := os.Stat(s.path); err != nil {
		return false, nil
	}
	ok := false
	err := s.view(context.Background(), func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		ok = meta != nil && string(meta.Get(keyVersion)) == formatVersion &&
			tx.Bucket(bucketTokens) != nil && tx.Bucket(bucketDigests) != nil
		return nil
	})
	if errors.Is(err, ErrBusy) {
		return false, err
	}
	return err == nil && ok, nil
}

// Path returns the file name of the store.
func (s *BoltStore) Path() string { return s.path }

// poll closes the read-only handle when another process waits to write. A
// writer holds the turnstile exclusively while it waits for the file, so a
// failed non-blocking shared lock on the turnstile means "someone waits".
func (s *BoltStore) poll() {
	defer close(s.done)
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.lockless() {
			// Each read opens and closes the file itself: there is
			// no handle kept that a writer would wait for.
			continue
		}
		if !s.lockFileHeld() {
			s.renewLockFile()
		}
		if s.movedOver() {
			s.mu.Lock()
			s.closeReaderLocked()
			s.mu.Unlock()
			continue
		}
		s.mu.RLock()
		if s.db == nil || s.closed {
			s.mu.RUnlock()
			continue
		}
		// Only holders of mu's write lock take the turnstile, so a shared
		// try-lock here cannot clash with this process's own lock.
		got, err := flockTry(s.lock, syscall.LOCK_SH)
		if got {
			err = funlock(s.lock)
		}
		s.mu.RUnlock()
		if err != nil && s.opts.Logger != nil {
			s.opts.Logger.Warn("classifier store: lock poll failed", "path", s.path, "err", err)
		}
		if got || err != nil {
			continue
		}
		s.mu.Lock()
		s.closeReaderLocked()
		s.mu.Unlock()
	}
}

// openLockFile opens (creating) the lock file of the store at path. A
// symbolic link there is followed only if root or this process's user
// owns it, as the store's own (see OpenBolt).
func openLockFile(path string) (*os.File, error) {
	return trustedlink.Open(path+".lock", os.O_RDWR|os.O_CREATE, 0o660)
}

// openLock opens the lock file again as the store was opened: for
// reading only with ReadOnly, and then nil where there is none this
// process can use (see openLockFileReadOnly).
func (s *BoltStore) openLock() (*os.File, error) {
	if !s.opts.ReadOnly {
		return openLockFile(s.path)
	}
	return openLockFileReadOnly(s.path)
}

// lockless reports whether the store is read without a lock file (see
// BoltOptions.ReadOnly).
func (s *BoltStore) lockless() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lock == nil
}

// lockFileHeld reports whether the lock file at the store's path is still
// the one this process locks. Deleted (a cleanup of the state directory,
// an rm) or replaced, it is one other processes lock and this one would
// never see: their writes would wait on this process's read handle
// forever, as it never closed for them.
func (s *BoltStore) lockFileHeld() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return true
	}
	held, err1 := s.lock.Stat()
	named, err2 := os.Stat(s.path + ".lock")
	return err1 != nil || err2 == nil && os.SameFile(held, named)
}

// movedOver reports whether the read handle is open on a file that is no
// longer at the store's path, another having been moved there (mv
// new.db bayes.db after an import into a new file): the next read must
// open that one. A path that names no file leaves the handle be: with
// the store removed, what was open is read on for as long as the handle
// stays (a writer closes it; see view for what the next read does).
func (s *BoltStore) movedOver() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil || s.closed {
		return false
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && (fileID{dev: uint64(st.Dev), ino: st.Ino}) != s.dbFile
}

// renewLockFile opens the lock file at the path again (creating it) in
// place of the one that is gone, and closes the read handle so that a
// writer already waiting on the new file gets in.
func (s *BoltStore) renewLockFile() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	lock, err := s.openLock()
	if err != nil {
		// Tried again at every poll; said once until it changes.
		if s.opts.Logger != nil && err.Error() != s.renewErr {
			s.opts.Logger.Warn("classifier store: reopening the lock file failed", "path", s.path+".lock", "err", err)
		}
		s.renewErr = err.Error()
		return
	}
	s.renewErr = ""
	s.closeReaderLocked()
	s.lock.Close()
	// nil for a read-only opener left with no lock file it can read:
	// it reads without one from now on, as if it had found none.
	s.lock = lock
	if s.opts.Logger != nil && lock != nil {
		s.opts.Logger.Warn("classifier store: the lock file was removed or replaced; using the one at its path now", "path", s.path+".lock")
	}
}

// closeReaderLocked closes the read-only handle, if open. The caller holds
// mu exclusively. The index stays: it is checked against the transaction ID
// of every read.
func (s *BoltStore) closeReaderLocked() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
		s.db = nil
	}
	return err
}

// identify returns the identity of the file behind a handle.
func identify(db *bolt.DB) (fileID, error) {
	fi, err := os.Stat(db.Path())
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no file identity")
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// view runs fn in a read transaction on the shared read-only handle,
// opening it first if needed.
//
// A read that finds the file damaged lets go of the handle, so that the
// next read opens and maps the file anew. The file may have been written
// over in place since the handle was opened (cp of a backup onto it),
// larger than the handle's mapping, which then faults at every read; the
// handle would otherwise be kept until a writer comes, failing the
// filter for every message meanwhile. The failed read is not tried
// again here: fn may have handed on part of what it read.
func (s *BoltStore) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errors.New("store closed")
	}
	if db := s.db; db != nil {
		err := s.noPanic(func() error { return db.View(fn) })
		s.mu.RUnlock()
		if errors.Is(err, ErrDamaged) {
			s.mu.Lock()
			if s.db == db {
				s.closeReaderLocked()
			}
			s.mu.Unlock()
		}
		return err
	}
	s.mu.RUnlock()
	// No handle: open one and read through it under the exclusive lock,
	// so a writer of this process cannot close it in between.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("store closed")
	}
	if s.db == nil {
		err := s.reopenLocked(ctx)
		if errors.Is(err, fs.ErrNotExist) && !s.opts.ReadOnly {
			// The file was removed since the store was opened (an rm
			// to start over, a cleanup of the state directory): made
			// again, empty, as at open. Every read would fail until a
			// writer came otherwise, and a daemon learns only what it
			// could read.
			if err = s.updateLocked(ctx, initTx, nil); err == nil {
				err = s.reopenLocked(ctx)
			}
		}
		if err != nil {
			return err
		}
	}
	err := s.noPanic(func() error { return s.db.View(fn) })
	if errors.Is(err, ErrDamaged) || s.lock == nil {
		// Without a lock file no writer can be seen waiting (see
		// poll): the handle goes with the read.
		s.closeReaderLocked()
	}
	return err
}

// reopenLocked opens the read-only handle, passing through the turnstile
// so a waiting writer goes first. The caller holds mu exclusively.
func (s *BoltStore) reopenLocked(ctx context.Context) error {
	if s.lock != nil {
		if err := flockWait(ctx, s.lock, syscall.LOCK_SH, s.opts.LockTimeout); err != nil {
			return err
		}
		defer funlock(s.lock)
	}
	db, err := s.openBolt(&bolt.Options{ReadOnly: true, Timeout: s.opts.LockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("open %s read-only: %w", s.path, ErrBusy)
		}
		return fmt.Errorf("open %s read-only: %w", s.path, err)
	}
	id, err := identify(db)
	if err != nil {
		db.Close()
		return fmt.Errorf("open %s read-only: %w", s.path, err)
	}
	s.db, s.dbFile = db, id
	return nil
}

// update runs fn in a write transaction: it takes the turnstile, opens the
// file read-write, commits, and closes again, so the file is held
// exclusively only for the length of one transaction.
func (s *BoltStore) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return s.updateThen(ctx, fn, nil)
}

// updateThen is update, and after a successful commit calls committed with
// the file's identity and the transaction ID, still holding mu
// exclusively (no reader runs).
func (s *BoltStore) updateThen(ctx context.Context, fn func(tx *bolt.Tx) error, committed func(fileID, int)) error {
	// Before mu, so that this process's own readers are not held up
	// meanwhile. Not cut short by ctx: a write with its context ended
	// still goes ahead when the lock is free (a training run stopped with
	// Ctrl-C learns the batch it has read), and the pause is a few
	// milliseconds.
	if wrote := s.wrote.Load(); wrote != 0 {
		since := time.Since(s.born) - time.Duration(wrote)
		if wait := writerYield - since; wait > 0 && since >= 0 {
			time.Sleep(wait)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("store closed")
	}
	return s.updateLocked(ctx, fn, committed)
}

// updateLocked is updateThen for a caller that holds mu exclusively.
func (s *BoltStore) updateLocked(ctx context.Context, fn func(tx *bolt.Tx) error, committed func(fileID, int)) error {
	if s.opts.ReadOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	s.closeReaderLocked()
	if err := flockWait(ctx, s.lock, syscall.LOCK_EX, s.opts.LockTimeout); err != nil {
		return err
	}
	defer func() {
		funlock(s.lock)
		s.wrote.Store(int64(time.Since(s.born)))
	}()
	_, serr := os.Stat(s.path)
	created := errors.Is(serr, fs.ErrNotExist)
	db, err := s.openBolt(&bolt.Options{Timeout: s.opts.LockTimeout, NoSync: s.opts.NoSync})
	if err != nil {
		if created {
			// A store whose creation failed (a full disk) must not stay
			// half written, to fail every later open; the lock file,
			// held exclusively, keeps anyone else from it meanwhile.
			os.Remove(s.path)
		}
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("open %s: %w", s.path, ErrBusy)
		}
		return fmt.Errorf("open %s: %w", s.path, err)
	}
	var txid int
	// A panic must not skip db.Close below: the handle holds the file's
	// lock, and every later write of this process would wait for it.
	err = s.noPanic(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			txid = tx.ID()
			if created {
				// The file was removed since the store was opened (an
				// rm to start over, a cleanup of the state directory),
				// and bbolt has just made a bare one at the path: it
				// gets its buckets first, as at open, or fn and every
				// later read would find no store in it.
				if err := initTx(tx); err != nil {
					return err
				}
			}
			return fn(tx)
		})
	})
	if err == nil && created && s.opened && s.opts.Logger != nil {
		// Every message is unsure for want of training from now on;
		// without this line only the verdicts would say so.
		s.opts.Logger.Warn("classifier store: the store file was removed while open; made a new empty store in its place", "path", s.path)
	}
	if err == nil && committed != nil {
		if id, ierr := identify(db); ierr == nil {
			committed(id, txid)
		} else {
			s.idx.Store(nil)
		}
	}
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", s.path, cerr)
	}
	return err
}

// openBolt opens the store file with bbolt under noPanic. bbolt locks the
// file before it reads a page; if reading one panics (a file cut short),
// Open returns no handle to close, and the lock would stay held until the
// process exits, keeping every other process's writers out, and this
// process from the file even once it is restored. So the file is caught
// as bbolt opens it, and unlocked and closed then.
func (s *BoltStore) openBolt(o *bolt.Options) (*bolt.DB, error) {
	var f *os.File
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		if s.opts.ReadOnly {
			// Writes nothing: a link is followed as before.
			f, err = os.OpenFile(name, flag, perm)
		} else {
			f, err = trustedlink.Open(name, flag, perm)
		}
		return f, err
	}
	var db *bolt.DB
	err := s.noPanic(func() (err error) {
		db, err = bolt.Open(s.path, 0o660, o)
		return err
	})
	if err != nil && db == nil && f != nil {
		// After an ordinary error bbolt has closed it already, and these
		// fail harmlessly. After a panic its mapping of the file is left
		// (bbolt's to remove, and unreachable), and a mapping keeps the
		// open file, and so its flock, alive past Close: the lock is
		// released explicitly.
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
	return db, err
}

// noPanic runs fn, which reads or writes the file through bbolt, and
// turns a panic into an error wrapping ErrDamaged. bbolt trusts the pages
// it reads and panics on garbage (a bad disk, a stray write, a file that
// is no store) instead of returning an error; a command must then fail
// with a message, and the daemon must keep its locks consistent. bbolt
// rolls its transaction back when fn panics, so the handle stays usable.
//
// A file shorter than its pages say (cut short by a full disk or an
// interrupted copy) makes bbolt read past the end of its mapping: a
// SIGBUS or SIGSEGV that would kill the process with no word of which
// file. SetPanicOnFault turns that into a panic here too, for this
// goroutine while fn runs.
func (s *BoltStore) noPanic(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w: %v", s.path, ErrDamaged, r)
		}
	}()
	return fn()
}

// Close releases the store. It waits for running operations.
func (s *BoltStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.closeReaderLocked()
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	if s.lock == nil {
		return err
	}
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// encodeCounts packs counts as three uvarints: most tokens have tiny counts,
// so this is 3 to 6 bytes against 12 for fixed width.
func encodeCounts(c Counts) []byte {
	return appendCounts(make([]byte, 0, 12), c)
}

func appendCounts(b []byte, c Counts) []byte {
	b = binary.AppendUvarint(b, uint64(c.Spam))
	b = binary.AppendUvarint(b, uint64(c.Ham))
	return binary.AppendUvarint(b, uint64(c.LastSeen))
}

func decodeCounts(b []byte) (Counts, error) {
	var v [3]uint32
	if !decodeUint32s(b, v[:]) {
		return Counts{}, errors.New("corrupt token counts")
	}
	return Counts{Spam: v[0], Ham: v[1], LastSeen: Date(v[2])}, nil
}

// decodeUint32s reads len(v) varints from the start of b into v, and
// reports whether each was there and fits 32 bits. Bytes after them are
// not looked at: a later version may append fields.
func decodeUint32s(b []byte, v []uint32) bool {
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 || x > 1<<32-1 {
			return false
		}
		v[i] = uint32(x)
		b = b[n:]
	}
	return true
}

func encodeTotals(t Totals) []byte {
	b := binary.AppendUvarint(nil, uint64(t.Spam))
	return binary.AppendUvarint(b, uint64(t.Ham))
}

// decodeTotals reads the message counts; none at all (a new store) is
// zero. A value that does not decode is an error: read as zero, it would
// make every message unsure with nothing to show why, and the next
// training would write its own few messages over the real counts.
func decodeTotals(b []byte) (Totals, error) {
	if b == nil {
		return Totals{}, nil
	}
	var v [2]uint32
	if !decodeUint32s(b, v[:]) {
		return Totals{}, errors.New("corrupt message counts")
	}
	return Totals{Spam: v[0], Ham: v[1]}, nil
}

// Lookup implements Store. A process that has looked up IndexAfter
// tokens reads counts from its in-memory index (see tokenIndex);
// otherwise, or when the store is too large to index, every token is read
// from the file in one transaction, in byte order, which walks the B+tree
// from left to right.
func (s *BoltStore) Lookup(ctx context.Context, tokens []string) (Totals, []Counts, error) {
	return s.lookup(ctx, tokens, 1)
}

// useFloor tells the store that a classifier on it counts only tokens seen
// in at least floor messages (see countFloor), so that its index may leave
// out the others. The index keeps the lowest floor it has been told: a
// configuration reload whose parameters count rarer tokens rebuilds it.
func (s *BoltStore) useFloor(floor uint64) { lowerFloor(&s.idxFloor, floor) }

// lowerFloor sets v, a floor kept by a store (0 before any classifier
// told one), to floor if that is lower, and reports whether it did.
func lowerFloor(v *atomic.Uint64, floor uint64) bool {
	for {
		old := v.Load()
		if old != 0 && old <= floor {
			return false
		}
		if v.CompareAndSwap(old, floor) {
			return true
		}
	}
}

// lookup is Lookup for a caller that needs exact counts only of the tokens
// seen in at least floor messages: the others may read as unseen.
func (s *BoltStore) lookup(ctx context.Context, tokens []string, floor uint64) (Totals, []Counts, error) {
	return s.lookupHashed(ctx, tokens, nil, nil, floor)
}

// lookupHashed implements floorStore: lookup, with the tokens' hashes
// (tokenHash) if hashes is not nil, and the counts in buf if it is as
// long as tokens.
func (s *BoltStore) lookupHashed(ctx context.Context, tokens []string, hashes []uint64, buf []Counts, floor uint64) (Totals, []Counts, error) {
	var tot Totals
	counts := countsBuf(buf, len(tokens))
	s.lookedUp.Add(int64(len(tokens)))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		// One cursor and one key buffer for all tokens: Bucket.Get would
		// allocate a cursor, and []byte(tok) a key, per token.
		var cur *bolt.Cursor
		var key []byte
		read := func(i int) error {
			if cur == nil {
				cur = tx.Bucket(bucketTokens).Cursor()
			}
			key = append(key[:0], tokens[i]...)
			k, v := cur.Seek(key)
			if v == nil || !bytes.Equal(k, key) {
				return nil
			}
			c, err := decodeCounts(v)
			if err != nil {
				return fmt.Errorf("token %q: %w", tokens[i], err)
			}
			counts[i] = c
			return nil
		}
		s.modelSeen.seeBytes(tx.Bucket(bucketMeta).Get(keyModelID))
		idx, err := s.index(tx, false)
		if err != nil {
			return err
		}
		if idx == nil {
			if tot, err = decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals)); err != nil {
				return err
			}
			for _, i := range byteOrder(tokens) {
				if err := read(i); err != nil {
					return err
				}
			}
			return nil
		}
		tot = idx.totals
		for _, i := range idx.getAllHashed(tokens, hashes, counts, idx.floor > floor) {
			if err := read(i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return Totals{}, nil, fmt.Errorf("lookup: %w", err)
	}
	return tot, counts, nil
}

// byteOrder returns the indexes of tokens in the byte order of the tokens.
// The classifier scores tokens in the order they occur in the message;
// read in that order, every token would be a descent to a leaf far from
// the last one.
func byteOrder(tokens []string) []int {
	order := make([]int, len(tokens))
	for i := range order {
		order[i] = i
	}
	if !slices.IsSorted(tokens) {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(tokens[a], tokens[b]) })
	}
	return order
}

// index returns the in-memory index if it matches the transaction, building
// it if this process has looked up enough tokens to make that worth it, or
// nil to read from the file. While one reader builds, the others read from
// the file, unless wait is set. The caller holds mu (shared or exclusive),
// so the handle and the file's identity cannot change meanwhile.
func (s *BoltStore) index(tx *bolt.Tx, wait bool) (*tokenIndex, error) {
	floor := max(s.idxFloor.Load(), 1)
	valid := func(x *tokenIndex) bool {
		return x != nil && x.txid == tx.ID() && x.file == s.dbFile && x.floor == floor
	}
	if x := s.idx.Load(); valid(x) {
		return x, nil
	}
	if s.opts.IndexTokens < 0 || s.lookedUp.Load() < int64(s.opts.IndexAfter) {
		return nil, nil
	}
	if wait {
		s.idxMu.Lock()
	} else if !s.idxMu.TryLock() {
		return nil, nil
	}
	defer s.idxMu.Unlock()
	if x := s.idx.Load(); valid(x) {
		return x, nil
	}
	if s.idxSkip == tx.ID() {
		return nil, nil
	}
	x, err := buildIndex(tx, s.dbFile, s.opts.IndexTokens, floor)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if x == nil {
		s.idxSkip = tx.ID()
		return nil, nil
	}
	s.idx.Store(x)
	return x, nil
}

// BuildIndex builds the in-memory index of the token counts now, rather
// than after IndexAfter token lookups: a daemon calls it at start so that
// its first messages are as fast as the rest. It does nothing if the index
// is off or the store has more than IndexTokens tokens.
func (s *BoltStore) BuildIndex(ctx context.Context) error {
	if s.opts.IndexTokens < 0 {
		return nil
	}
	s.lookedUp.Add(int64(s.opts.IndexAfter))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		_, err := s.index(tx, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("build index: %w", err)
	}
	return nil
}

// patchIndex brings the index up to date with a write of this process:
// the tokens it changed, and the totals. If the index was not of the
// version just before the write (another process wrote in between), it is
// dropped, to be rebuilt. The caller holds mu exclusively.
func (s *BoltStore) patchIndex(file fileID, txid int, changed []Record, tot Totals) {
	x := s.idx.Load()
	if x == nil {
		return
	}
	if x.file != file || x.txid != txid-1 {
		s.idx.Store(nil)
		return
	}
	for _, r := range changed {
		if !x.set(r.Token, r.Counts) {
			s.idx.Store(nil) // grew past IndexTokens
			return
		}
	}
	x.totals = tot
	x.txid = txid
}

// learnTx applies ops in one write transaction, in order, each seeing the
// writes of those before it, and returns their outcomes. Learn runs it
// over the ops of one or several callers (see learnBatch).
//
// Token changes of the whole batch are summed first and written in key
// order: bbolt splits nodes only at commit, so inserting thousands of keys
// in random order into one transaction costs a memmove per insert across
// an ever larger node.
func (s *BoltStore) learnTx(ctx context.Context, ops []LearnOp) ([]Outcome, error) {
	out := make([]Outcome, len(ops))
	var changed []Record
	var newTot Totals
	err := s.updateThen(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		toks := tx.Bucket(bucketTokens)
		digs := tx.Bucket(bucketDigests)
		// An import checked the store for its messages before its
		// first write, under its mark: a message learned after that
		// check would be counted again by the import. Checked in this
		// transaction, so that no import marks the store in between.
		if v := meta.Get(metaKey(MetaImporting)); v != nil {
			return errLearnDuringImport{parseImportMark(string(v))}
		}
		// Checked in this transaction too, so that no import sets the
		// dialect between the check and the writes.
		if err := checkLearnDialect(string(meta.Get(metaKey(MetaDialect))), ops); err != nil {
			return err
		}
		if err := moveOldModel(tx); err != nil {
			return err
		}
		tot, err := decodeTotals(meta.Get(keyTotals))
		if err != nil {
			return err
		}
		// Sized for the batch's tokens (the distinct ones are fewer),
		// up to a bound, so that the map is not rehashed again and
		// again as it grows.
		n := 0
		for _, op := range ops {
			n += len(op.Tokens)
		}
		deltas := newTokenDeltas(min(n, 1<<18))
		learned := false // a digest or its features changed
		for i, op := range ops {
			if op.Class != Spam && op.Class != Ham {
				return fmt.Errorf("learn: bad class %v", op.Class)
			}
			prev := None
			var prevFeatures []byte
			if v := digs.Get(op.Digest[:]); len(v) >= 1 {
				prev = Class(v[0])
				prevFeatures = v[1:]
			}
			plan := planLearn(prev, op)
			out[i] = plan.outcome
			if plan.remove != None {
				deltas.add(op.Tokens, plan.remove, -1, op.Date)
				tot = addTotal(tot, plan.remove, -1)
			}
			if plan.add != None {
				deltas.add(op.Tokens, plan.add, +1, op.Date)
				tot = addTotal(tot, plan.add, +1)
			}
			var err error
			switch {
			case plan.record == None && prev != None:
				err = digs.Delete(op.Digest[:])
				learned = true
			case plan.record != None && (plan.record != prev ||
				plan.outcome == AlreadyLearned && len(op.Features) > 0 && !bytes.Equal(prevFeatures, op.Features)):
				// A message learned again in its class takes the
				// features this version finds in it: one learned before
				// the store kept features, or by a version that found
				// others, is brought up to date by training it again.
				// An unlearn in the other class (NotLearned) changes
				// nothing, features included.
				f := op.Features
				if len(f) == 0 {
					f = prevFeatures
				}
				err = digs.Put(append([]byte(nil), op.Digest[:]...), digestValue(plan.record, f))
				learned = true
			}
			if err != nil {
				return err
			}
		}
		if learned {
			if err := bumpLearnGen(meta); err != nil {
				return err
			}
		}
		if changed, err = deltas.apply(toks); err != nil {
			return err
		}
		newTot = tot
		return meta.Put(keyTotals, encodeTotals(tot))
	}, func(file fileID, txid int) {
		s.patchIndex(file, txid, changed, newTot)
	})
	if err != nil {
		return nil, fmt.Errorf("learn: %w", err)
	}
	return out, nil
}

// digestValue is what the digests bucket keeps for a learned message: its
// class in one byte, then its encoded n-gram features, if any.
func digestValue(c Class, features []byte) []byte {
	return append([]byte{byte(c)}, features...)
}

// tokenDelta is the change of one token over a learn batch: each op's
// change is clamped to what a count holds (0 to 2^32-1) in turn, as Learn
// promises and the Redis script does. The sum alone cannot tell "-1 then
// +1" on a count of 0 (which ends at 1) from "+1 then -1" (which ends at
// 0), nor "+1 then -1" on the largest count (one below it) from "-1 then
// +1" (the largest).
type tokenDelta struct {
	spam, ham inTurn
	date      Date
}

// inTurn is a run of changes of a count, each clamped in turn. A change
// clamped, then another, is one change clamped to a narrower range: the
// run takes v to min(max(v+sum, lo), hi).
type inTurn struct {
	sum    int64
	lo, hi uint32
}

// noChange is the run of no change.
var noChange = inTurn{lo: 0, hi: 1<<32 - 1}

// add appends a change of delta to the run.
func (c *inTurn) add(delta int) {
	c.sum += int64(delta)
	c.lo = addClamp(c.lo, delta)
	c.hi = addClamp(c.hi, delta)
}

// of returns v after the run.
func (c inTurn) of(v uint32) uint32 {
	return uint32(min(max(int64(v)+c.sum, int64(c.lo)), int64(c.hi)))
}

// tokenDeltas sums the changes of a learn batch by token. The deltas are
// held in one slice, in the order their tokens first came, and the map
// gives each token's place in it, rather than one allocation for each of
// the tens of thousands of tokens of a batch, which the collector would
// then have to scan.
type tokenDeltas struct {
	at   map[string]int
	list []tokenDelta
	toks []string // list[i] is the delta of toks[i]
}

// newTokenDeltas returns tokenDeltas for about n tokens.
func newTokenDeltas(n int) *tokenDeltas {
	return &tokenDeltas{at: make(map[string]int, n), list: make([]tokenDelta, 0, n), toks: make([]string, 0, n)}
}

func (d *tokenDeltas) add(tokens []string, c Class, delta int, day Date) {
	for _, tok := range tokens {
		if tok == "" || len(tok) > bolt.MaxKeySize {
			continue
		}
		i, ok := d.at[tok]
		if !ok {
			i = len(d.list)
			d.at[tok] = i
			d.list = append(d.list, tokenDelta{spam: noChange, ham: noChange})
			d.toks = append(d.toks, tok)
		}
		td := &d.list[i]
		if c == Spam {
			td.spam.add(delta)
		} else {
			td.ham.add(delta)
		}
		td.date = max(td.date, day)
	}
}

// apply writes the deltas in key order and returns the new counts of the
// tokens it changed. A token whose counts both drop to zero is deleted
// (and returned with zero counts); a decrement of an unknown token is
// ignored.
func (d *tokenDeltas) apply(b *bolt.Bucket) ([]Record, error) {
	type entry struct {
		tok string
		td  *tokenDelta
	}
	keys := make([]entry, len(d.list))
	size := 0
	for i, tok := range d.toks {
		keys[i] = entry{tok, &d.list[i]}
		size += len(tok)
	}
	slices.SortFunc(keys, func(a, b entry) int { return strings.Compare(a.tok, b.tok) })
	changed := make([]Record, 0, len(keys))
	// bbolt keeps the key and value slices of a Put until the commit, so
	// each needs its own memory; one arena for all of them costs one
	// allocation instead of two per token. One cursor reads the current
	// counts, where Bucket.Get would allocate one per token.
	arena := make([]byte, 0, size+len(keys)*binary.MaxVarintLen32*3)
	c := b.Cursor()
	for _, e := range keys {
		tok, td := e.tok, e.td
		n0 := len(arena)
		arena = append(arena, tok...)
		key := arena[n0:len(arena):len(arena)]
		var cur Counts
		if k, v := c.Seek(key); v != nil && bytes.Equal(k, key) {
			var err error
			if cur, err = decodeCounts(v); err != nil {
				return nil, fmt.Errorf("token %q: %w", tok, err)
			}
		} else if td.spam.of(0) == 0 && td.ham.of(0) == 0 {
			arena = arena[:n0]
			continue
		}
		cur.Spam = td.spam.of(cur.Spam)
		cur.Ham = td.ham.of(cur.Ham)
		cur.LastSeen = max(cur.LastSeen, td.date)
		var err error
		if cur.Spam == 0 && cur.Ham == 0 {
			err = b.Delete(key)
			cur = Counts{}
		} else {
			n1 := len(arena)
			arena = appendCounts(arena, cur)
			err = b.Put(key, arena[n1:len(arena):len(arena)])
		}
		if err != nil {
			return nil, fmt.Errorf("token %q: %w", tok, err)
		}
		changed = append(changed, Record{Token: tok, Counts: cur})
	}
	return changed, nil
}

// learnPlan is what one learn op does: remove the message's tokens from one
// class, add them to one, and what the digest records afterwards.
type learnPlan struct {
	outcome     Outcome
	remove, add Class
	record      Class
}

// planLearn decides a learn op from the class the message was learned in
// before (None if never). Shared by every Store so they agree exactly.
func planLearn(prev Class, op LearnOp) learnPlan {
	class, unlearn := op.Class, op.Unlearn
	switch {
	case !unlearn && op.NoMove && prev != None && prev != class:
		return learnPlan{outcome: NotMoved, record: prev}
	case unlearn && prev == class:
		return learnPlan{outcome: Unlearned, remove: class, record: None}
	case unlearn:
		return learnPlan{outcome: NotLearned, record: prev}
	case prev == class:
		return learnPlan{outcome: AlreadyLearned, record: prev}
	case prev == None:
		return learnPlan{outcome: Learned, add: class, record: class}
	default:
		return learnPlan{outcome: Moved, remove: prev, add: class, record: class}
	}
}

// addTotal adds delta to the count of class c, never going below zero.
func addTotal(t Totals, c Class, delta int) Totals {
	switch c {
	case Spam:
		t.Spam = addClamp(t.Spam, delta)
	case Ham:
		t.Ham = addClamp(t.Ham, delta)
	}
	return t
}

func addClamp(v uint32, delta int) uint32 {
	n := int64(v) + int64(delta)
	if n < 0 {
		return 0
	}
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}

// addIsAtomic implements atomicAdder: Add writes a batch in one
// transaction.
func (*BoltStore) addIsAtomic() {}

// Add implements Store.
func (s *BoltStore) Add(ctx context.Context, batch Batch) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		toks := tx.Bucket(bucketTokens)
		digs := tx.Bucket(bucketDigests)
		if err := moveOldModel(tx); err != nil {
			return err
		}
		tot, err := decodeTotals(meta.Get(keyTotals))
		if err != nil {
			return err
		}
		tot.Spam = addClamp(tot.Spam, int(batch.Totals.Spam))
		tot.Ham = addClamp(tot.Ham, int(batch.Totals.Ham))
		if err := meta.Put(keyTotals, encodeTotals(tot)); err != nil {
			return err
		}
		// Key order, for the reason given at Learn.
		recs := slices.Clone(batch.Records)
		slices.SortStableFunc(recs, func(a, b Record) int { return strings.Compare(a.Token, b.Token) })
		for _, r := range recs {
			if r.Token == "" || len(r.Token) > bolt.MaxKeySize {
				return fmt.Errorf("bad token %q", r.Token)
			}
			key := []byte(r.Token)
			var cur Counts
			if v := toks.Get(key); v != nil {
				var err error
				if cur, err = decodeCounts(v); err != nil {
					return fmt.Errorf("token %q: %w", r.Token, err)
				}
			}
			cur.Spam = addClamp(cur.Spam, int(r.Spam))
			cur.Ham = addClamp(cur.Ham, int(r.Ham))
			cur.LastSeen = max(cur.LastSeen, r.LastSeen)
			if cur.Spam == 0 && cur.Ham == 0 {
				continue
			}
			if err := toks.Put(key, encodeCounts(cur)); err != nil {
				return fmt.Errorf("token %q: %w", r.Token, err)
			}
		}
		for _, d := range batch.Digests {
			if d.Class != Spam && d.Class != Ham {
				return fmt.Errorf("digest %s: bad class %v", d.Digest, d.Class)
			}
			if err := digs.Put(append([]byte(nil), d.Digest[:]...), digestValue(d.Class, d.Features)); err != nil {
				return err
			}
		}
		if len(batch.Digests) > 0 {
			return bumpLearnGen(meta)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return nil
}

// Walk implements Store. fn runs inside a read transaction: a long walk
// delays writers, which is acceptable for dump and export.
func (s *BoltStore) Walk(ctx context.Context, fn func(Record) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error { return walkTx(ctx, tx, fn) })
}

func walkTx(ctx context.Context, tx *bolt.Tx, fn func(Record) error) error {
	c := tx.Bucket(bucketTokens).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		cnt, err := decodeCounts(v)
		if err != nil {
			return fmt.Errorf("token %q: %w", k, err)
		}
		if err := fn(Record{Token: string(k), Counts: cnt}); err != nil {
			return err
		}
	}
	return nil
}

// walkBatch is how many tokens WalkBatched reads in one read transaction.
const walkBatch = 10_000

// WalkBatched calls fn for each token in byte order, as Walk does, but
// reads the store walkBatch tokens at a time, each batch in a read
// transaction of its own, and calls fn for them after that transaction
// ended. Walk holds its transaction while fn runs, and a writer (a
// training, the daemon's auto-learning) cannot get the file until it
// ends: fn writing to a pipe that is read slowly ("sluice db dump |
// less") kept every writer out, and failed it after its lock timeout.
// The tokens are not of one version of the store: a token written
// between two batches is walked or not as its key falls.
func (s *BoltStore) WalkBatched(ctx context.Context, fn func(Record) error) error {
	var after []byte // the last key walked; nil before the first batch
	for {
		var recs []Record
		end := false
		err := s.view(ctx, func(tx *bolt.Tx) error {
			recs, end = recs[:0], false
			c := tx.Bucket(bucketTokens).Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(recs) < walkBatch; k, v = c.Next() {
				cnt, err := decodeCounts(v)
				if err != nil {
					return fmt.Errorf("token %q: %w", k, err)
				}
				recs = append(recs, Record{Token: string(k), Counts: cnt})
			}
			end = k == nil
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if end || len(recs) == 0 {
			return nil
		}
		after = []byte(recs[len(recs)-1].Token)
	}
}

// WalkDigests implements Store.
func (s *BoltStore) WalkDigests(ctx context.Context, fn func(DigestClass) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error { return walkDigestsTx(tx, fn) })
}

// learnedDigests implements digestFinder, in one read transaction. A
// digest's value starts with its class (see digestValue).
func (s *BoltStore) learnedDigests(ctx context.Context, ds []Digest) ([]Class, error) {
	found := make([]Class, len(ds))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		digs := tx.Bucket(bucketDigests)
		for i, d := range ds {
			v := digs.Get(d[:])
			if v == nil {
				continue
			}
			if len(v) < 1 || (Class(v[0]) != Spam && Class(v[0]) != Ham) {
				return fmt.Errorf("corrupt digest entry %x", d[:])
			}
			found[i] = Class(v[0])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up digests: %w", err)
	}
	return found, nil
}

// WalkLearned implements Store: the generation and the digests are of one
// read transaction.
func (s *BoltStore) WalkLearned(ctx context.Context, fn func(DigestClass) error) (uint64, error) {
	var gen uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		if gen, err = decodeGen(tx.Bucket(bucketMeta).Get(keyLearnGen)); err != nil {
			return err
		}
		return walkDigestsTx(tx, fn)
	})
	return gen, err
}

// Generations implements generationsReader: the learn generation and the
// one the stored model was fitted at, in one read.
func (s *BoltStore) Generations(ctx context.Context) (learn, model uint64, err error) {
	err = s.view(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if learn, err = decodeGen(meta.Get(keyLearnGen)); err != nil {
			return fmt.Errorf("learn generation: %w", err)
		}
		if model, err = decodeGen(meta.Get(keyModelGen)); err != nil {
			return fmt.Errorf("model generation: %w", err)
		}
		return nil
	})
	return learn, model, err
}

// dropChunk bounds the digests of one DropFeatures transaction (bbolt) or
// script (Redis): a write holds the store for others meanwhile, and a
// store's first refit after an upgrade may drop millions.
const dropChunk = 1000

// DropFeatures implements Store, dropChunk digests a transaction, each
// raising the learn generation if it changed a digest.
func (s *BoltStore) DropFeatures(ctx context.Context, digests []Digest) (int, error) {
	n := 0
	for len(digests) > 0 {
		chunk := digests[:min(len(digests), dropChunk)]
		digests = digests[len(chunk):]
		dropped := 0
		err := s.update(ctx, func(tx *bolt.Tx) error {
			digs := tx.Bucket(bucketDigests)
			dropped = 0
			for _, d := range chunk {
				v := digs.Get(d[:])
				if len(v) <= 1 {
					continue // not learned, or no features
				}
				if err := digs.Put(append([]byte(nil), d[:]...), digestValue(Class(v[0]), nil)); err != nil {
					return fmt.Errorf("digest %s: %w", d, err)
				}
				dropped++
			}
			if dropped == 0 {
				return nil
			}
			return bumpLearnGen(tx.Bucket(bucketMeta))
		})
		if err != nil {
			return n, fmt.Errorf("drop features: %w", err)
		}
		n += dropped
	}
	return n, nil
}

// bumpLearnGen raises the learn generation by one, in the caller's write
// transaction.
func bumpLearnGen(meta *bolt.Bucket) error {
	gen, err := decodeGen(meta.Get(keyLearnGen))
	if err != nil {
		return err
	}
	return meta.Put(keyLearnGen, binary.AppendUvarint(nil, gen+1))
}

// decodeGen decodes a generation, 0 if absent.
func decodeGen(b []byte) (uint64, error) {
	if b == nil {
		return 0, nil
	}
	g, n := binary.Uvarint(b)
	if n != len(b) {
		return 0, errors.New("corrupt generation")
	}
	return g, nil
}

func walkDigestsTx(tx *bolt.Tx, fn func(DigestClass) error) error {
	c := tx.Bucket(bucketDigests).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != len(Digest{}) || len(v) < 1 {
			return fmt.Errorf("corrupt digest entry %x", k)
		}
		var d DigestClass
		copy(d.Digest[:], k)
		d.Class = Class(v[0])
		if len(v) > 1 {
			d.Features = slices.Clone(v[1:])
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// Stats implements Store.
func (s *BoltStore) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		st, err = statsTx(tx)
		return err
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

func statsTx(tx *bolt.Tx) (Stats, error) {
	var st Stats
	var err error
	if st.Totals, err = decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals)); err != nil {
		return st, err
	}
	// The cursor reads each entry's header, not its value: the same
	// pages a count of the bucket's keys would read.
	dc := tx.Bucket(bucketDigests).Cursor()
	for k, v := dc.First(); k != nil; k, v = dc.Next() {
		st.Digests++
		if len(v) > 1 {
			st.Features++
		}
	}
	st.Bytes = tx.Size()
	c := tx.Bucket(bucketTokens).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		cnt, err := decodeCounts(v)
		if err != nil {
			return Stats{}, fmt.Errorf("token %q: %w", k, err)
		}
		st.Tokens++
		if uint64(cnt.Spam)+uint64(cnt.Ham) == 1 {
			st.Singular++
		}
		if cnt.LastSeen != 0 && (st.Oldest == 0 || cnt.LastSeen < st.Oldest) {
			st.Oldest = cnt.LastSeen
		}
		st.Newest = max(st.Newest, cnt.LastSeen)
	}
	return st, nil
}

// snapshot implements snapshotter: fn reads one version of the store, in
// one read transaction, however much is learned meanwhile.
func (s *BoltStore) snapshot(ctx context.Context, fn func(exportSource) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error { return fn(boltSnapshot{tx}) })
}

// boltSnapshot reads a store through one read transaction.
type boltSnapshot struct{ tx *bolt.Tx }

func (b boltSnapshot) Stats(context.Context) (Stats, error) { return statsTx(b.tx) }

func (b boltSnapshot) Meta(_ context.Context, key string) (string, error) {
	return string(metaValue(b.tx, key)), nil
}

func (b boltSnapshot) WalkMeta(_ context.Context, prefix string, fn func(key, value string) error) error {
	return walkMetaTx(b.tx, prefix, fn)
}

func (b boltSnapshot) Walk(ctx context.Context, fn func(Record) error) error {
	return walkTx(ctx, b.tx, fn)
}

func (b boltSnapshot) WalkDigests(_ context.Context, fn func(DigestClass) error) error {
	return walkDigestsTx(b.tx, fn)
}

// pruneBatch is the most tokens one prune transaction deletes, and
// pruneScan the most it examines: the lock is held for a fraction of a
// second at a time, where a whole prune of a store of millions of tokens
// takes longer than readers wait for it (BoltOptions.LockTimeout).
const (
	pruneBatch = 50_000
	pruneScan  = 500_000
)

// writerYield is the least time between two writes of a process: the
// time from letting go of the turnstile to asking for it again. flock(2)
// keeps no queue, and readers of other processes (the daemon's messages)
// ask for it every flockPollMax at most; a writer of batch after batch
// (sluice train, db import, db prune) that asked again at once would take
// it again each time, and a reader would wait its whole lock timeout and
// fail, for as long as the writer ran. So that it gets in between two
// batches, writerYield is longer than flockPollMax. It costs a run of
// train some 10 ms a batch of a few hundred messages.
const writerYield = 2 * flockPollMax

// Prune implements Store. It deletes in batches of transactions, each
// whole, resuming after the last key the one before examined; each batch
// judges the counts it finds, so a token learned again between two
// batches is judged by its new counts. An error may leave the batches
// before it done.
func (s *BoltStore) Prune(ctx context.Context, opts PruneOptions) (int, error) {
	if opts.Before == 0 && opts.MaxCount == 0 {
		return 0, nil
	}
	n := 0
	var after []byte // the last key examined; nil before the first batch
	for {
		var deleted int
		var last []byte
		err := s.update(ctx, func(tx *bolt.Tx) error {
			deleted, last = 0, nil
			b := tx.Bucket(bucketTokens)
			// Collect first: deleting under a bbolt cursor can skip keys.
			var doomed [][]byte
			c := b.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for scanned := 0; k != nil && scanned < pruneScan && len(doomed) < pruneBatch; k, v = c.Next() {
				scanned++
				cnt, err := decodeCounts(v)
				if err != nil {
					return fmt.Errorf("token %q: %w", k, err)
				}
				if pruneMatch(cnt, opts) {
					doomed = append(doomed, append([]byte(nil), k...))
				}
				last = append(last[:0], k...)
			}
			if k == nil {
				// The end of the bucket: this is the last batch.
				last = nil
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			deleted = len(doomed)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("prune: %w", err)
		}
		n += deleted
		if last == nil {
			return n, nil
		}
		// The next batch's write waits writerYield first, so that
		// waiting readers go before it.
		after = last
	}
}

// metaKey maps a Meta key into the meta bucket, apart from the keys the
// store itself keeps there.
func metaKey(key string) []byte { return []byte("m:" + key) }

// keyModelID is the n-gram model id's key, read by every Lookup.
var keyModelID = metaKey(MetaModelID)

// metaValue is the Meta value of key in tx, nil if unset: the n-gram
// model from where it lies (modelBlob), the rest from the meta bucket.
func metaValue(tx *bolt.Tx, key string) []byte {
	if key == MetaModel {
		return modelBlob(tx)
	}
	return tx.Bucket(bucketMeta).Get(metaKey(key))
}

// modelBlob is the stored n-gram model, nil if none. A model in the meta
// bucket comes first: SetModel, Learn and Add move it from there, so one
// found there was written since by a sluice from before the model bucket
// (run after a downgrade), and is the newer one, the one its id names.
func modelBlob(tx *bolt.Tx) []byte {
	if v := tx.Bucket(bucketMeta).Get(metaKey(MetaModel)); v != nil {
		return v
	}
	if b := tx.Bucket(bucketModel); b != nil {
		return b.Get(keyModel)
	}
	return nil
}

// Meta implements Store.
func (s *BoltStore) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v = string(metaValue(tx, key))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("meta %s: %w", key, err)
	}
	return v, nil
}

// WalkMeta implements Store, in one read transaction. The n-gram model,
// which Meta reads from a bucket of its own, is not walked.
func (s *BoltStore) WalkMeta(ctx context.Context, prefix string, fn func(key, value string) error) error {
	err := s.view(ctx, func(tx *bolt.Tx) error { return walkMetaTx(tx, prefix, fn) })
	if err != nil {
		return fmt.Errorf("walk meta %s: %w", prefix, err)
	}
	return nil
}

// walkMetaTx calls fn for each Meta key in tx that starts with prefix.
func walkMetaTx(tx *bolt.Tx, prefix string, fn func(key, value string) error) error {
	from := metaKey(prefix)
	c := tx.Bucket(bucketMeta).Cursor()
	for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, from); k, v = c.Next() {
		if err := fn(string(k[len("m:"):]), string(v)); err != nil {
			return err
		}
	}
	return nil
}

// metaViewer is a store that can show a Meta value in place, for the
// duration of fn, rather than return a copy.
type metaViewer interface {
	viewMeta(ctx context.Context, key string, fn func([]byte) error) error
}

// viewModel implements modelViewer: the model and its id from one read
// transaction, in the file's mapping.
func (s *BoltStore) viewModel(ctx context.Context, fn func(id, model []byte) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		return fn(tx.Bucket(bucketMeta).Get(keyModelID), modelBlob(tx))
	})
}

// viewMeta calls fn with the value of the Meta key in the file (nil if
// unset), valid only while fn runs.
func (s *BoltStore) viewMeta(ctx context.Context, key string, fn func([]byte) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		return fn(metaValue(tx, key))
	})
}

// SetMeta implements Store.
func (s *BoltStore) SetMeta(ctx context.Context, key, value string) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if key == MetaModel {
			return putModel(tx, value) // where Meta reads it
		}
		if value == "" {
			return tx.Bucket(bucketMeta).Delete(metaKey(key))
		}
		return tx.Bucket(bucketMeta).Put(metaKey(key), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("set meta %s: %w", key, err)
	}
	return nil
}

// claimMeta implements metaClaimer: the check and the set are one write
// transaction, which no other process's write overlaps.
func (s *BoltStore) claimMeta(ctx context.Context, key, value string) (string, error) {
	var held string
	err := s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaKey(key)); v != nil {
			held = string(v)
			return nil
		}
		return meta.Put(metaKey(key), []byte(value))
	})
	if err != nil {
		return "", fmt.Errorf("set meta %s: %w", key, err)
	}
	return held, nil
}

// finishImport implements importFinisher: one write transaction.
func (s *BoltStore) finishImport(ctx context.Context, own metaEntry, carried []metaEntry) error {
	err := s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		for _, c := range carried {
			if meta.Get(metaKey(c.key)) != nil {
				continue
			}
			if err := meta.Put(metaKey(c.key), []byte(c.value)); err != nil {
				return err
			}
		}
		if err := meta.Put(metaKey(own.key), []byte(own.value)); err != nil {
			return err
		}
		return meta.Delete(metaKey(MetaImporting))
	})
	if err != nil {
		return fmt.Errorf("finish import: %w", err)
	}
	return nil
}

// SetModel implements Store: the check and both values are one write
// transaction.
func (s *BoltStore) SetModel(ctx context.Context, gen uint64, model, id string) (bool, error) {
	stored := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		cur, err := decodeGen(meta.Get(keyModelGen))
		if err != nil {
			return err
		}
		if cur > gen {
			return nil
		}
		if err := putModel(tx, model); err != nil {
			return err
		}
		if id == "" {
			err = meta.Delete(keyModelID)
		} else {
			err = meta.Put(keyModelID, []byte(id))
		}
		if err != nil {
			return err
		}
		stored = true
		return meta.Put(keyModelGen, binary.AppendUvarint(nil, gen))
	})
	if err != nil {
		return false, fmt.Errorf("set model: %w", err)
	}
	return stored, nil
}

// putModel stores the n-gram model in its bucket, or removes it for "",
// and removes the copy a store written before keeps in the meta bucket.
func putModel(tx *bolt.Tx, model string) error {
	if err := tx.Bucket(bucketMeta).Delete(metaKey(MetaModel)); err != nil {
		return err
	}
	if model == "" {
		if b := tx.Bucket(bucketModel); b != nil {
			return b.Delete(keyModel)
		}
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketModel)
	if err != nil {
		return err
	}
	return b.Put(keyModel, []byte(model))
}

// moveOldModel moves the n-gram model of a store written before the model
// bucket out of the meta bucket, where every commit that changes the
// totals would write it again (see bucketModel). It is called by the
// writes that change them, which pay for the move once.
func moveOldModel(tx *bolt.Tx) error {
	v := tx.Bucket(bucketMeta).Get(metaKey(MetaModel))
	if v == nil {
		return nil
	}
	// string(v) copies: v lies in the file's mapping, which a write
	// transaction may move.
	return putModel(tx, string(v))
}

// pruneMatch reports whether a token matches prune criteria: with both
// criteria set it must match both (old and rare), with one it must match
// that one. A token whose last-seen day is unknown (0: imported from a
// word list without dates) is not old: pruning by age must not empty a
// store just imported from such a list.
func pruneMatch(c Counts, o PruneOptions) bool {
	old := o.Before != 0 && c.LastSeen != 0 && c.LastSeen < o.Before
	rare := o.MaxCount != 0 && uint64(c.Spam)+uint64(c.Ham) <= uint64(o.MaxCount)
	switch {
	case o.Before != 0 && o.MaxCount != 0:
		return old && rare
	case o.Before != 0:
		return old
	default:
		return rare
	}
}

// seenModelID implements modelIDSeer.
func (s *BoltStore) seenModelID() (string, bool) { return s.modelSeen.get() }
