package classifier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is wrapped by the errors of a network store that cannot
// be reached or does not answer in time (refused or lost connections,
// timeouts, a server still loading its data or without a master). The
// Bayes filter lets such messages pass tagged "store unavailable" instead
// of failing; other errors (a corrupt store) are failures.
var ErrUnavailable = errors.New("store unavailable")

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Addrs are host:port addresses: of the server, of the Sentinels
	// (MasterName set), or of some Cluster nodes (Cluster set).
	// Default 127.0.0.1:6379.
	Addrs []string
	// MasterName selects Redis Sentinel: the Sentinels at Addrs are
	// asked for the current master of this name.
	MasterName string
	// Cluster selects Redis Cluster.
	Cluster bool
	// Username and Password authenticate to Redis (AUTH); empty for
	// none. SentinelUsername and SentinelPassword to the Sentinels.
	Username, Password                 string
	SentinelUsername, SentinelPassword string
	// DB is the database number; Cluster has only 0.
	DB int
	// KeyPrefix names the store: its keys are {PREFIX}:meta,
	// {PREFIX}:tokens, {PREFIX}:digests, {PREFIX}:features and
	// {PREFIX}:log. Default "sluice".
	KeyPrefix string
	// TLS, when not nil, connects with TLS.
	TLS *tls.Config
	// Timeout bounds connecting and each read round trip (classifying a
	// message is one). Default 1 s.
	Timeout time.Duration
	// WriteTimeout bounds each write round trip (a training batch, an
	// import batch). Default 30 s. A write that times out may still
	// have been applied: learning the same messages again is a no-op.
	WriteTimeout time.Duration
	// PoolSize is the most connections kept per server; callers beyond
	// it wait for a free one, at most Timeout. Default 10 per CPU.
	PoolSize int
	// CacheTokens is how many token counts the process keeps between
	// lookups (a 20-byte slot each, about 27 bytes a token), valid until
	// the store is next written (see redisCache). A store is read into
	// the cache whole if it has at most this many tokens seen in enough
	// messages for the classifiers on it to count them (with the
	// default parameters four; a tenth of the tokens of a typical
	// store). Default DefaultRedisCacheTokens; negative turns the cache
	// off.
	CacheTokens int
	// WaitReplicas, if at least 1, makes Learn and Add wait, after their
	// scripts and on the same connection, until that many replicas have
	// acknowledged the writes (Redis WAIT), at most half the
	// WriteTimeout; if fewer did, the call fails with ErrUnavailable.
	// Redis replicates asynchronously: without it, a learn the master
	// acknowledged just before a failover can be lost without a word.
	// The writes may still have been applied on the master, which is
	// harmless: learning the same messages again is a no-op for those
	// that were. Not with Cluster (WAIT would have to go to the node of
	// the store's slot on the scripts' connection). Default 0: no wait.
	WaitReplicas int
	// Observer, if not nil, is told about every round trip.
	Observer RedisObserver
}

// RedisObserver is told about the Redis store's round trips, for metrics.
// It must be safe for concurrent use.
type RedisObserver interface {
	// RedisRoundTrip reports one request/reply exchange: op names the
	// store operation ("lookup", "learn", "add", "digests": an import
	// looking for messages the store learned already, "scan", "meta",
	// "stats", "prune", "drop": DropFeatures, "script_load", "load":
	// the cache reading the whole store), err is nil if it worked.
	RedisRoundTrip(op string, took time.Duration, err error)
}

// RedisPoolStats describe the connection pool (summed over the nodes of a
// Cluster). The counters count since the store was opened.
type RedisPoolStats struct {
	Hits     uint64 // a free connection was in the pool
	Misses   uint64 // a new connection had to be made
	Timeouts uint64 // waited for a free connection in vain
	Total    int    // connections open now
	Idle     int    // of which idle
}

// RedisStore is a Store on Redis, shared by every sluice of a site: one
// sluice per MTA, all reading and training the same counts.
//
// Layout: four hashes and a stream under the hash tag of the prefix, so
// that in a Cluster they live in one slot and every operation, a
// transaction or a script, can touch all of them (see docs/scaling.md for
// why one slot is enough):
//
//	{sluice}:meta      version, spam, ham (the totals), gen, lgen and
//	                   mgen (the learn generation and the model's, see
//	                   luaSetModel), m:KEY (Meta)
//	{sluice}:tokens    TOKEN -> "SPAM HAM LASTSEEN"
//	{sluice}:digests   DIGEST (32 bytes) -> "1" (spam) or "2" (ham)
//	{sluice}:features  DIGEST -> the learned message's encoded n-grams
//	{sluice}:log       the change log (see luaLearn)
//
// The features have a hash of their own rather than sharing the digest's
// value: a store written before they existed keeps its layout (and format
// version), and counting or sizing the digests does not read them.
//
// Classifying a message is one round trip (a MULTI/EXEC of two HMGETs),
// for the tokens the process has not cached (see redisCache); the first
// lookup after a write to the store may take two.
// Learning runs one Lua script per message, so each message is learned
// atomically; a batch of messages is one pipelined round trip. The client
// connects lazily and reconnects by itself: while Redis is down, calls
// fail quickly with ErrUnavailable and a background probe redials about
// once a second.
type RedisStore struct {
	rdb        redis.UniversalClient
	opts       RedisOptions
	meta       string
	tokens     string
	digests    string
	log        string
	features   string
	keys       []string // meta, tokens, digests, log, features: KEYS of the scripts
	addrString string
	cache      *redisCache // nil if off
	loader     redisLoader
	// floor is the lowest countFloor of the classifiers made on the
	// store, 0 before the first (see useFloor).
	floor atomic.Uint64
	// noLog is set once Redis refused to let this user read the change
	// log (an ACL without xrange): lookups then stop asking for it and
	// the cache starts over whenever another host writes, as it would
	// without a log, instead of every lookup failing.
	noLog atomic.Bool
	// modelSeen is the n-gram model id read with the latest lookup.
	modelSeen modelSeen
}

// OpenRedis returns a store on the Redis that opts name. It does not
// connect: the first operation does, so a daemon starts even while Redis
// is down. Use Ping to check the connection.
func OpenRedis(opts RedisOptions) (*RedisStore, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "sluice"
	}
	if opts.CacheTokens == 0 {
		opts.CacheTokens = DefaultRedisCacheTokens
	}
	if len(opts.Addrs) == 0 {
		opts.Addrs = []string{"127.0.0.1:6379"}
	}
	if strings.ContainsAny(opts.KeyPrefix, "{}") {
		return nil, fmt.Errorf("redis key prefix %q: must not contain { or }", opts.KeyPrefix)
	}
	if opts.Cluster && opts.MasterName != "" {
		return nil, errors.New("redis: cluster and sentinel master name exclude each other")
	}
	if opts.Cluster && opts.DB != 0 {
		return nil, fmt.Errorf("redis: db %d: Redis Cluster has only database 0", opts.DB)
	}
	if opts.DB < 0 {
		return nil, fmt.Errorf("redis: db %d: must not be negative", opts.DB)
	}
	if opts.WaitReplicas < 0 {
		return nil, fmt.Errorf("redis: wait_replicas %d: must not be negative", opts.WaitReplicas)
	}
	if opts.Cluster && opts.WaitReplicas > 0 {
		return nil, errors.New("redis: wait_replicas is not supported with Redis Cluster")
	}
	if opts.Cluster || opts.MasterName != "" {
		// Several addresses only make sense for these two.
	} else if len(opts.Addrs) != 1 {
		return nil, fmt.Errorf("redis: %d addresses for a single server (set cluster or a sentinel master name for several)", len(opts.Addrs))
	}
	u := &redis.UniversalOptions{
		Addrs:            opts.Addrs,
		MasterName:       opts.MasterName,
		Username:         opts.Username,
		Password:         opts.Password,
		SentinelUsername: opts.SentinelUsername,
		SentinelPassword: opts.SentinelPassword,
		DB:               opts.DB,
		TLSConfig:        opts.TLS,
		ClientName:       "sluice",
		DialTimeout:      opts.Timeout,
		Dialer:           opts.dial,
		// One dial attempt per call: while Redis is down a call fails
		// at once, and the pool's own probe redials in the background.
		DialerRetries: 1,
		ReadTimeout:   opts.WriteTimeout,
		WriteTimeout:  opts.WriteTimeout,
		// The context of each call carries its deadline (Timeout or
		// WriteTimeout), so the socket deadlines follow it.
		ContextTimeoutEnabled: true,
		// No retries: a write script retried after a lost reply could be
		// applied twice (imports add counts), and a classification that
		// fails passes the message tagged; the next one reconnects.
		MaxRetries:  -1,
		PoolSize:    opts.PoolSize,
		PoolTimeout: opts.Timeout,
		// RESP2: RESP3's client-side-caching push messages are not used.
		Protocol:        2,
		DisableIdentity: true,
	}
	// go-redis logs through one logger per process; send its lines
	// (dial failures, Sentinel switching masters) to the daemon's log.
	redis.SetLogger(redisLog{})
	var rdb redis.UniversalClient
	switch {
	case opts.Cluster:
		rdb = redis.NewClusterClient(u.Cluster())
	case opts.MasterName != "":
		rdb = redis.NewFailoverClient(u.Failover())
	default:
		rdb = redis.NewClient(u.Simple())
	}
	tag := "{" + opts.KeyPrefix + "}"
	s := &RedisStore{
		rdb:      rdb,
		opts:     opts,
		meta:     tag + ":meta",
		tokens:   tag + ":tokens",
		digests:  tag + ":digests",
		log:      tag + ":log",
		features: tag + ":features",
		cache:    newRedisCache(opts.CacheTokens),
	}
	s.keys = []string{s.meta, s.tokens, s.digests, s.log, s.features}
	s.loader.init()
	s.addrString = s.describe()
	return s, nil
}

// dial connects to a Redis server or Sentinel, with TLS if configured. It
// makes the TLS handshake as go-redis's own dialer does, the server's name
// taken from the address unless set, but says so when the handshake
// fails: TLS to a port without it waits out the timeout, and "context
// deadline exceeded" alone reads like a slow network, not a wrong
// setting.
func (o RedisOptions) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{
		Timeout: o.Timeout,
		// As go-redis's dialer: a peer gone silent is noticed within a
		// minute even on an idle connection.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil || o.TLS == nil {
		return conn, err
	}
	cfg := o.TLS
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	// Half the timeout: a TLS server answers in one round trip, and the
	// handshake must fail before the call that waits for the connection
	// does, or only the call's deadline is reported.
	hctx, cancel := context.WithTimeout(ctx, o.Timeout/2)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s (does that port speak TLS?): %w", addr, err)
	}
	return tc, nil
}

// redisLog passes go-redis's log lines to the default slog logger, which
// the daemon sets to its own: a change of master at Info, the rest (one
// line per failed dial while Redis is down) at Debug.
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelDebug
	if strings.Contains(msg, "new master") {
		level = slog.LevelInfo
	}
	slog.Default().Log(ctx, level, "redis client: "+msg)
}

// describe names the store for messages, without credentials.
func (s *RedisStore) describe() string {
	scheme := "redis"
	if s.opts.TLS != nil {
		scheme = "rediss"
	}
	q := "prefix=" + s.opts.KeyPrefix
	switch {
	case s.opts.Cluster:
		q += "&cluster=true"
	case s.opts.MasterName != "":
		q += "&sentinel=" + s.opts.MasterName
	}
	return fmt.Sprintf("%s://%s/%d?%s", scheme, strings.Join(s.opts.Addrs, ","), s.opts.DB, q)
}

// String returns the store's address as a redis:// URL, without
// credentials.
func (s *RedisStore) String() string { return s.addrString }

// Close implements Store. It waits for a load of the cache to stop.
func (s *RedisStore) Close() error {
	s.loader.stop()
	if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("close %s: %w", s, err)
	}
	return nil
}

// PoolStats returns the state of the connection pool.
func (s *RedisStore) PoolStats() RedisPoolStats {
	p := s.rdb.PoolStats()
	return RedisPoolStats{
		Hits: uint64(p.Hits), Misses: uint64(p.Misses), Timeouts: uint64(p.Timeouts),
		Total: int(p.TotalConns), Idle: int(p.IdleConns),
	}
}

// call runs one round trip with the read or write deadline, reports it to
// the observer and wraps its error.
func (s *RedisStore) call(ctx context.Context, op string, write bool, fn func(ctx context.Context) error) error {
	timeout := s.opts.Timeout
	if write {
		timeout = s.opts.WriteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	if s.opts.Observer != nil {
		s.opts.Observer.RedisRoundTrip(op, time.Since(start), err)
	}
	if err != nil {
		if cc, ok := s.rdb.(*redis.ClusterClient); ok && unavailable(err) {
			// go-redis reloads a Cluster's slot map when a node answers
			// MOVED or READONLY, and otherwise only once it is a minute
			// old (ClusterStateReloadInterval): when the master of the
			// store's slot dies, nothing answers, and the client would
			// go on dialing the dead node for up to a minute after its
			// replica took over. So every failure asks for a reload, in
			// the background (go-redis runs one at a time, at most one
			// each 200 ms), and the calls after the replica's promotion
			// go to it.
			cc.ReloadState(ctx)
		}
		return s.wrap(op, err)
	}
	return nil
}

// wrap adds the operation and store to err, and ErrUnavailable when the
// error means Redis cannot serve right now rather than that something is
// wrong with the request or the data.
func (s *RedisStore) wrap(op string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("redis %s on %s: %w: %w", op, s, ErrUnavailable, err)
	}
	return fmt.Errorf("redis %s on %s: %w", op, s, err)
}

// unavailable reports whether err means Redis is unreachable, slow or not
// ready to serve.
func unavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted),
		errors.As(err, &ne), errors.As(err, new(notReplicatedError)):
		return true
	}
	// Server states that pass: loading the dataset after a restart, a
	// long script running, no master or a resharding cluster, a replica
	// that was the master before a failover (or a master made a replica
	// while a write waited for its replicas: UNBLOCKED, or before it
	// asked to: WAIT refused), too many clients. redis.HasErrorPrefix
	// compares after Redis's "ERR ", so the prefixes leave it out.
	for _, p := range []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "UNBLOCKED", waitOnReplica, "NOREPLICAS", "max number of clients"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// waitOnReplica begins Redis's refusal of a WAIT sent to a replica (after
// the "ERR " that redis.HasErrorPrefix leaves out).
const waitOnReplica = "WAIT cannot be used with replica"

// errLogRefused marks a lookup that failed because Redis refuses this user
// the change log's XRANGE by its ACL (see RedisStore.noLog).
var errLogRefused = errors.New("change log refused (no +xrange)")

// logRefused reports whether err, the error of a lookup that asked for the
// change log, is Redis refusing the user its XRANGE. In a MULTI, Redis
// refuses the command as it is queued and then the whole transaction,
// and go-redis reports only the EXECABORT: so the log alone is asked for
// again, to see whether it was the command refused.
func (s *RedisStore) logRefused(ctx context.Context, err error) bool {
	if redis.HasErrorPrefix(err, "EXECABORT") {
		err = s.call(ctx, "lookup", false, func(ctx context.Context) error {
			return s.rdb.XRangeN(ctx, s.log, "+", "+", 1).Err()
		})
	}
	return redis.HasErrorPrefix(err, "NOPERM") && strings.Contains(strings.ToLower(err.Error()), "xrange")
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	return s.call(ctx, "ping", false, func(ctx context.Context) error {
		return s.rdb.Ping(ctx).Err()
	})
}

// checkVersion checks the format version read from the meta hash.
func checkVersion(v any) error {
	if v == nil {
		return nil
	}
	if str, _ := v.(string); str != redisFormatVersion {
		return fmt.Errorf("store format version %v, want %s", v, redisFormatVersion)
	}
	return nil
}

// Lookup implements Store: one round trip (a MULTI/EXEC when it reads
// tokens, see fetch) that reads the totals, the store's generation, the
// change log since the generation of the process's cache, and the counts
// of the tokens the cache cannot answer (none once the cache holds every
// token of the store, but those a complete cache leaves out as too rare
// to count: see redisCache), so the counts are one consistent read even while another
// sluice trains. Only when the log does not cover the writes since the
// cache's generation, and the lookup took counts from the cache, does it
// take a second round trip (see redisCache).
func (s *RedisStore) Lookup(ctx context.Context, tokens []string) (Totals, []Counts, error) {
	return s.lookup(ctx, tokens, 1)
}

// lookup implements floorStore: Lookup, but a token seen in fewer than
// floor messages may read as unseen. A complete cache that leaves out
// only such tokens then answers every token, and Redis is asked for the
// totals, the generation and the change log alone.
func (s *RedisStore) lookup(ctx context.Context, tokens []string, floor uint64) (Totals, []Counts, error) {
	return s.lookupHashed(ctx, tokens, nil, nil, floor)
}

// lookupHashed implements floorStore: lookup, with the tokens' hashes
// (tokenHash) if hashes is not nil, and the counts in buf if it is as
// long as tokens.
func (s *RedisStore) lookupHashed(ctx context.Context, tokens []string, hashes []uint64, buf []Counts, floor uint64) (Totals, []Counts, error) {
	counts := countsBuf(buf, len(tokens))
	if s.cache == nil {
		r, err := s.fetch(ctx, tokens, allIndexes(len(tokens)), counts, "")
		if err != nil {
			return Totals{}, nil, err
		}
		return r.tot, counts, nil
	}
	s.startLoad()
	v := s.cache.get(tokens, hashes, counts, floor)
	r, err := s.fetch(ctx, tokens, v.ask, counts, v.gen)
	if errors.Is(err, errLogRefused) {
		// Every lookup that asked for the log before noLog was set is
		// refused the same way, and asks again without it; only the
		// first one warns.
		if !s.noLog.Swap(true) {
			slog.Warn("bayes store: Redis refuses this user XRANGE; the cache starts over whenever another host learns (grant +xrange, see the ACL in docs/scaling.md)",
				"store", s.String(), "err", err)
		}
		r, err = s.fetch(ctx, tokens, v.ask, counts, v.gen)
	}
	if err != nil {
		return Totals{}, nil, err
	}
	if r.gen == v.gen {
		s.cache.update(v, r.gen, nil, counts, v.ask)
		return r.tot, counts, nil
	}
	if v.gen != "" && r.logCovers(v.gen) {
		// Counts taken from the cache get what the log says since.
		if len(v.ask) < len(tokens) {
			applyLog(s.cache, r.log, tokens, v, counts)
		}
		s.cache.update(v, r.gen, r.log, counts, v.ask)
		return r.tot, counts, nil
	}
	v2, ok := s.cache.reset(v, r.gen)
	s.loader.pending.Store(true)
	if len(v.ask) < len(tokens) {
		// Cached counts of an older generation: ask for everything.
		all := allIndexes(len(tokens))
		if r, err = s.fetch(ctx, tokens, all, counts, ""); err != nil {
			return Totals{}, nil, err
		}
		v.ask = all
	}
	if ok && r.gen == v2.gen {
		v2.hashes = v.hashes
		s.cache.update(v2, r.gen, nil, counts, v.ask)
	}
	return r.tot, counts, nil
}

// allIndexes returns 0, 1, ..., n-1: every token of a lookup.
func allIndexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// applyLog sets counts[i] of every token that the lookup took from the
// cache (not in v.ask) and that the log changed, to its last value there.
func applyLog(c *redisCache, log []logEntry, tokens []string, v cacheView, counts []Counts) {
	changed := map[uint64]Counts{}
	for _, e := range log {
		for k, tok := range e.toks {
			changed[c.hash(tok)] = e.counts[k]
		}
	}
	asked := make([]bool, len(tokens))
	for _, i := range v.ask {
		asked[i] = true
	}
	for i, h := range v.hashes {
		if cnt, ok := changed[h]; ok && !asked[i] {
			counts[i] = cnt
		}
	}
}

// lookupReply is what one lookup round trip read.
type lookupReply struct {
	tot Totals
	gen string // "" if the store was never written
	// log is the change log after the generation asked for, complete
	// if logOK.
	log   []logEntry
	logOK bool
}

// logCovers reports whether the log read leads from generation from to the
// store's, without a gap.
func (r *lookupReply) logCovers(from string) bool {
	if !r.logOK || len(r.log) == 0 {
		return false
	}
	prev := from
	for _, e := range r.log {
		if e.prev != prev {
			return false
		}
		prev = e.gen
	}
	return prev == r.gen
}

// logRead is the most change log entries a lookup reads; a cache further
// behind starts over.
const logRead = 64

// logReadChanges is the most token changes a lookup takes from the log
// entries it read; with more, the cache starts over as well. An entry has
// every token of its message, up to the tokenizer's 20,000, so 64 entries
// could hold over a million: over a second of CPU (measured) for every
// lookup in flight until the cache caught up. Ordinary mail, a few
// hundred tokens a message, stays well below.
const logReadChanges = 100_000

// fetch reads, in one MULTI/EXEC, the totals, the store's generation, the
// change log after generation since (unless since is ""), and the counts
// of tokens[i] for each i in idx (into counts[i]).
func (s *RedisStore) fetch(ctx context.Context, tokens []string, idx []int, counts []Counts, since string) (lookupReply, error) {
	var meta *redis.SliceCmd
	var toks *redis.StringSliceCmd
	var logCmd *redis.XMessageSliceCmd
	// Without tokens to read, no MULTI/EXEC is needed: the log entries
	// up to the generation read exist when it is read (one script
	// writes both), and later ones are ignored.
	pipelined := s.rdb.TxPipelined
	if len(idx) == 0 {
		pipelined = s.rdb.Pipelined
	}
	read := func(pipelined func(context.Context, func(redis.Pipeliner) error) ([]redis.Cmder, error)) error {
		return s.call(ctx, "lookup", false, func(ctx context.Context) error {
			_, err := pipelined(ctx, func(p redis.Pipeliner) error {
				meta = p.HMGet(ctx, s.meta, "version", "spam", "ham", "gen", "m:"+MetaModelID)
				if since != "" && !s.noLog.Load() {
					// Entry IDs are generations: "GEN-1" is just
					// after entry "GEN-0".
					logCmd = p.XRangeN(ctx, s.log, since+"-1", "+", logRead+1)
				}
				if len(idx) > 0 {
					// Read as strings, a missing field as "" (no
					// stored value is empty): cheaper than HMGet's
					// []any.
					args := make([]any, 2, 2+len(idx))
					args[0], args[1] = "hmget", s.tokens
					for _, i := range idx {
						args = append(args, tokens[i])
					}
					toks = redis.NewStringSliceCmd(ctx, args...)
					p.Process(ctx, toks)
				}
				return nil
			})
			return err
		})
	}
	err := read(pipelined)
	if err != nil && logCmd != nil && s.logRefused(ctx, err) {
		return lookupReply{}, fmt.Errorf("lookup: %w: %w", errLogRefused, err)
	}
	if redis.HasErrorPrefix(err, "EXECABORT") {
		// Redis refused a command as it was queued, and go-redis reports
		// only the abort. At maxmemory (noeviction) Redis refuses every
		// command queued in a MULTI, reads too, yet classification must
		// go on then (docs/scaling.md); other refusals (an ACL) name
		// themselves when sent alone. So the same reads go again in a
		// plain pipeline. Not one snapshot, but close enough: the totals
		// and generation are read first, so a token's counts are those
		// of that generation or a later one, which the change log leads
		// the cache to anyway (its values are counts, not increments);
		// and the lookup reads at most one message's training apart.
		err = read(s.rdb.Pipelined)
	}
	if err != nil {
		return lookupReply{}, fmt.Errorf("lookup: %w", err)
	}
	var r lookupReply
	mv := meta.Val()
	if err := checkVersion(mv[0]); err != nil {
		return lookupReply{}, fmt.Errorf("lookup on %s: %w", s, err)
	}
	if r.tot, err = parseRedisTotals(mv[1], mv[2]); err != nil {
		return lookupReply{}, fmt.Errorf("lookup on %s: %w", s, err)
	}
	r.gen, _ = mv[3].(string)
	id, _ := mv[4].(string)
	s.modelSeen.see(id)
	if logCmd != nil && r.gen != since {
		r.log, r.logOK = parseRedisLog(logCmd.Val(), r.gen)
	}
	if toks == nil {
		return r, nil
	}
	vals := toks.Val()
	if len(vals) != len(idx) {
		return lookupReply{}, fmt.Errorf("lookup on %s: %d values for %d tokens", s, len(vals), len(idx))
	}
	for j, v := range vals {
		i := idx[j]
		if v == "" {
			counts[i] = Counts{}
			continue
		}
		c, err := parseRedisCounts(v)
		if err != nil {
			return lookupReply{}, fmt.Errorf("lookup on %s: token %q: %w", s, tokens[i], err)
		}
		counts[i] = c
	}
	return r, nil
}

// parseRedisLog parses the change log entries up to generation gen (later
// ones, written after the other reads of the transaction cannot be, are
// ignored). It reports false if it cannot use them: too many, with too
// many changes, or one it cannot parse (the cache then starts over, which
// is always safe).
func parseRedisLog(msgs []redis.XMessage, gen string) ([]logEntry, bool) {
	if len(msgs) > logRead {
		return nil, false
	}
	var out []logEntry
	changes := 0
	for _, m := range msgs {
		g, ok := strings.CutSuffix(m.ID, "-0")
		if !ok {
			return nil, false
		}
		prev, _ := m.Values["p"].(string)
		packed, _ := m.Values["c"].(string)
		e := logEntry{prev: prev, gen: g}
		for packed != "" {
			n, rest, ok := strings.Cut(packed, ":")
			if !ok {
				return nil, false
			}
			l, err := strconv.Atoi(n)
			if err != nil || l < 0 || l+1 > len(rest) || rest[l] != ' ' {
				return nil, false
			}
			tok := rest[:l]
			val, after, ok := strings.Cut(rest[l+1:], "\n")
			if !ok {
				return nil, false
			}
			c, err := parseRedisCounts(val)
			if err != nil {
				return nil, false
			}
			if changes++; changes > logReadChanges {
				return nil, false
			}
			e.toks = append(e.toks, tok)
			e.counts = append(e.counts, c)
			packed = after
		}
		out = append(out, e)
		if g == gen {
			return out, true
		}
	}
	return out, false
}

// parseRedisCounts parses "SPAM HAM LASTSEEN".
func parseRedisCounts(v string) (Counts, error) {
	var n [3]uint64
	rest := v
	for i := range n {
		var field string
		if i < 2 {
			var ok bool
			field, rest, ok = strings.Cut(rest, " ")
			if !ok {
				return Counts{}, fmt.Errorf("corrupt token counts %q", v)
			}
		} else {
			field = rest
		}
		x, err := strconv.ParseUint(field, 10, 32)
		if err != nil {
			return Counts{}, fmt.Errorf("corrupt token counts %q", v)
		}
		n[i] = x
	}
	return Counts{Spam: uint32(n[0]), Ham: uint32(n[1]), LastSeen: Date(n[2])}, nil
}

func parseRedisTotals(spam, ham any) (Totals, error) {
	var t Totals
	for i, v := range []any{spam, ham} {
		str, ok := v.(string)
		if !ok {
			continue
		}
		x, err := strconv.ParseUint(str, 10, 32)
		if err != nil {
			return Totals{}, fmt.Errorf("corrupt message count %q", str)
		}
		if i == 0 {
			t.Spam = uint32(x)
		} else {
			t.Ham = uint32(x)
		}
	}
	return t, nil
}

// Learn implements Store. Each op is one run of a Lua script, atomic on
// its own; the ops of a call go out as one pipeline, and Redis runs them
// in order, so later ops of the batch see the digests of earlier ones.
// A client that dies half way through a batch leaves the messages before
// the cut learned and the others not: never a message half counted.
func (s *RedisStore) Learn(ctx context.Context, ops []LearnOp) ([]Outcome, error) {
	args := make([][]any, len(ops))
	for i, op := range ops {
		if op.Class != Spam && op.Class != Ham {
			return nil, fmt.Errorf("learn: bad class %v", op.Class)
		}
		a := make([]any, 0, 16+len(op.Tokens))
		a = append(a, string(op.Digest[:]), uint32(op.Date))
		for _, prev := range []Class{None, Spam, Ham} {
			p := planLearn(prev, op)
			a = append(a, int(p.outcome), int(p.remove), int(p.add), int(p.record))
		}
		// Sent as bytes, nil as the empty string the script takes for
		// "no features".
		a = append(a, op.Features, string(op.Dialect))
		for _, tok := range op.Tokens {
			// As the bbolt store: the empty token is never counted.
			if tok != "" {
				a = append(a, tok)
			}
		}
		args[i] = a
	}
	res, err := s.runScripts(ctx, "learn", scriptLearn, args, true)
	if m, ok := importUnfinished(err); ok {
		// The same error as the bbolt store's, which does not name
		// Redis: nothing is wrong with the server.
		return nil, fmt.Errorf("learn: %w", errLearnDuringImport{m})
	}
	if d, ok := learnDialectRefused(err); ok {
		return nil, fmt.Errorf("learn: %w", errLearnDialect{store: d, op: opsDialect(ops)})
	}
	if err != nil {
		return nil, fmt.Errorf("learn: %w", err)
	}
	out := make([]Outcome, len(ops))
	for i, r := range res {
		n, ok := r.(int64)
		if !ok || n < int64(Learned) || n > int64(NotMoved) {
			return nil, fmt.Errorf("learn on %s: unexpected script result %v", s, r)
		}
		out[i] = Outcome(n)
	}
	return out, nil
}

// importUnfinished reports whether err is the learn script's refusal of
// a store marked by an import that has not finished, and returns the mark
// it found (see luaLearn). The script refuses every op of a pipeline, and
// runScripts returns the first.
func importUnfinished(err error) (ImportMark, bool) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return ImportMark{}, false
	}
	// Redis may put "ERR " before an error reply without a code of its
	// own (KVRocks does for every one).
	msg := strings.TrimPrefix(rerr.Error(), "ERR ")
	mark, ok := strings.CutPrefix(msg, redisImportUnfinished+" ")
	if !ok {
		return ImportMark{}, false
	}
	return parseImportMark(mark), true
}

// learnDialectRefused reports whether err is the learn script's refusal
// of an op of another dialect than the store's, and returns the store's
// dialect (see luaLearn).
func learnDialectRefused(err error) (Dialect, bool) {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return "", false
	}
	msg := strings.TrimPrefix(rerr.Error(), "ERR ")
	d, ok := strings.CutPrefix(msg, redisLearnDialect+" ")
	return Dialect(d), ok
}

// opsDialect is the dialect of the first op that names one.
func opsDialect(ops []LearnOp) Dialect {
	for _, op := range ops {
		if op.Dialect != "" {
			return op.Dialect
		}
	}
	return ""
}

// runScripts runs script once per argument list, all in one pipeline,
// and returns the results in order. Scripts go by SHA-1 (EVALSHA); if
// Redis does not have the script (after a restart or a failover, or
// SCRIPT FLUSH), it is loaded and the runs that were refused are sent
// again, in their order.
//
// With replicate and WaitReplicas set, each pipeline ends with a WAIT
// (see RedisOptions.WaitReplicas and waitTimeout), and the call fails with ErrUnavailable if fewer
// replicas than asked acknowledged the writes.
func (s *RedisStore) runScripts(ctx context.Context, op string, sc *redis.Script, args [][]any, replicate bool) ([]any, error) {
	res := make([]any, len(args))
	todo := make([]int, len(args))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 0 {
			err := s.call(ctx, "script_load", false, func(ctx context.Context) error {
				return sc.Load(ctx, s.rdb).Err()
			})
			if err != nil {
				return nil, err
			}
		}
		cmds := make([]*redis.Cmd, len(todo))
		var wait *redis.IntCmd
		err := s.call(ctx, op, true, func(ctx context.Context) error {
			_, perr := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, i := range todo {
					a := make([]any, 0, 3+len(s.keys)+len(args[i]))
					a = append(a, "evalsha", sc.Hash(), len(s.keys))
					for _, k := range s.keys {
						a = append(a, k)
					}
					cmds[j] = redis.NewCmd(ctx, append(a, args[i]...)...)
					p.Process(ctx, noRetryCmd{cmds[j]})
				}
				if replicate && s.opts.WaitReplicas > 0 {
					// On the scripts' connection: WAIT waits for this
					// client's writes.
					wait = redis.NewIntCmd(ctx, "wait", s.opts.WaitReplicas, s.waitTimeout().Milliseconds())
					p.Process(ctx, wait)
				}
				return nil
			})
			// The first error of a run, unless it only lacks the script.
			for _, c := range cmds {
				if e := c.Err(); e != nil && !redis.HasErrorPrefix(e, "NOSCRIPT") {
					return e
				}
			}
			// A connection that failed before any command went out (its
			// AUTH or SELECT refused) leaves the commands without error
			// and without result: only the pipeline's error tells.
			if perr != nil && !redis.HasErrorPrefix(perr, "NOSCRIPT") {
				return perr
			}
			if wait != nil {
				n, err := wait.Result()
				if redis.HasErrorPrefix(err, waitOnReplica) {
					// The master was made a replica (a failover) after
					// the scripts ran and before the WAIT: the writes
					// are not confirmed, and the new master may never
					// have received them. Redis's own text suggests a
					// writable replica, which is not the case here.
					return fmt.Errorf("the server was made a replica before its replicas acknowledged the write (wait_replicas); the write may be lost: %w", err)
				}
				if err != nil {
					return err
				}
				if n < int64(s.opts.WaitReplicas) {
					return notReplicatedError{got: n, want: s.opts.WaitReplicas, timeout: s.waitTimeout()}
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		var again []int
		for j, i := range todo {
			if cmds[j].Err() != nil {
				again = append(again, i)
				continue
			}
			res[i] = cmds[j].Val()
		}
		if len(again) > 0 && attempt > 0 {
			return nil, fmt.Errorf("redis %s on %s: script still missing after loading it", op, s)
		}
		todo = again
	}
	return res, nil
}

// waitTimeout is how long WAIT waits for the replicas: half the write
// timeout, which bounds the whole round trip that carries it, so that
// the scripts have the other half and a replica that does not answer is
// reported as such, with the connection kept, rather than as the round
// trip's deadline passing.
func (s *RedisStore) waitTimeout() time.Duration {
	return max(s.opts.WriteTimeout/2, time.Millisecond)
}

// notReplicatedError is a write that fewer replicas than
// RedisOptions.WaitReplicas acknowledged in time. It counts as Redis
// unavailable (see unavailable): the caller learns again later.
type notReplicatedError struct {
	got     int64
	want    int
	timeout time.Duration
}

func (e notReplicatedError) Error() string {
	return fmt.Sprintf("only %d of %d replicas acknowledged the write within %v (wait_replicas); the master may have applied it", e.got, e.want, e.timeout)
}

// noRetryCmd keeps go-redis from sending a script again after an error
// such as a lost reply: MaxRetries covers the single-server and Sentinel
// clients, but the Cluster client sends a failed pipeline again on its
// own, and a write script applied twice (an import) counts twice.
// MOVED and ASK redirects are still followed.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// addChunk bounds the records, or the digests, of one Add script: Redis
// serves nobody else while a script runs, and 2000 records take a few
// milliseconds.
const addChunk = 2000

// addFeatureBytes bounds the features of the digests of one Add script
// (unless one digest alone has more): a learned message's features are
// about 6 KB, so 2000 digests would make one script copy 12 MB.
const addFeatureBytes = 1 << 20

// Add implements Store. Each chunk of 2000 records, and then each chunk of
// digests (2000, or fewer with 1 MB of features), is added atomically; the
// totals go with the first chunk.
func (s *RedisStore) Add(ctx context.Context, b Batch) error {
	for _, r := range b.Records {
		if r.Token == "" {
			return fmt.Errorf("add: bad token %q", r.Token)
		}
	}
	for _, d := range b.Digests {
		if d.Class != Spam && d.Class != Ham {
			return fmt.Errorf("add: digest %s: bad class %v", d.Digest, d.Class)
		}
	}
	var args [][]any
	tot := b.Totals
	// chunk starts the arguments of one script: the totals go with the
	// first, zeros with the others.
	chunk := func(records, digests int) []any {
		a := make([]any, 0, 3+4*records+3*digests)
		a = append(a, tot.Spam, tot.Ham, records)
		tot = Totals{}
		return a
	}
	for recs := b.Records; len(recs) > 0; {
		n := min(len(recs), addChunk)
		a := chunk(n, 0)
		for _, r := range recs[:n] {
			a = append(a, r.Token, r.Spam, r.Ham, uint32(r.LastSeen))
		}
		args = append(args, a)
		recs = recs[n:]
	}
	for digs := b.Digests; len(digs) > 0; {
		n, size := 0, 0
		for n < len(digs) && n < addChunk && (n == 0 || size+len(digs[n].Features) <= addFeatureBytes) {
			size += len(digs[n].Features)
			n++
		}
		a := chunk(0, n)
		for _, d := range digs[:n] {
			a = append(a, string(d.Digest[:]), int(d.Class), d.Features)
		}
		args = append(args, a)
		digs = digs[n:]
	}
	if len(args) == 0 {
		args = append(args, chunk(0, 0)) // totals alone
	}
	if _, err := s.runScripts(ctx, "add", scriptAdd, args, true); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return nil
}

// scanCount is the COUNT hint of HSCAN: fields per round trip. Features
// are about 6 KB each, so fewer of them go in one round trip, to keep it
// well within the read timeout.
const (
	scanCount         = 2000
	scanCountFeatures = 200
)

// scanHash calls fn for every field and value of a hash. Like every SCAN
// it is not a snapshot: a field that exists throughout is seen at least
// once, possibly twice when Redis resizes the hash meanwhile; fields added
// or removed during the scan may or may not be seen.
func (s *RedisStore) scanHash(ctx context.Context, op, key string, count int64, fn func(field, value string) error) error {
	return s.scanHashMatch(ctx, op, key, "", count, fn)
}

// scanHashMatch is scanHash of the fields that match the glob pattern
// match (all of them if "").
func (s *RedisStore) scanHashMatch(ctx context.Context, op, key, match string, count int64, fn func(field, value string) error) error {
	var cursor uint64
	for {
		var kv []string
		err := s.call(ctx, op, false, func(ctx context.Context) error {
			var err error
			kv, cursor, err = s.rdb.HScan(ctx, key, cursor, match, count).Result()
			return err
		})
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if err := fn(kv[i], kv[i+1]); err != nil {
				return err
			}
		}
		if cursor == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// records reads every token, sorted and without the duplicates a scan can
// return.
func (s *RedisStore) records(ctx context.Context) ([]Record, error) {
	var recs []Record
	err := s.scanHash(ctx, "scan", s.tokens, scanCount, func(tok, val string) error {
		c, err := parseRedisCounts(val)
		if err != nil {
			return fmt.Errorf("token %q: %w", tok, err)
		}
		recs = append(recs, Record{Token: tok, Counts: c})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(recs, func(a, b Record) int { return strings.Compare(a.Token, b.Token) })
	// Of a token seen twice, the later value is the newer.
	out := recs[:0]
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].Token == r.Token {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Walk implements Store. Redis keeps no order, so the tokens are read
// into memory (about 60 bytes each) and sorted before fn sees the first.
// The walk is not a snapshot: stop training for an exact export.
func (s *RedisStore) Walk(ctx context.Context, fn func(Record) error) error {
	recs, err := s.records(ctx)
	if err != nil {
		return fmt.Errorf("walk: %w", err)
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// WalkDigests implements Store, in byte order of the digests. The digests
// and then their features are read into memory first. Like Walk it is not
// a snapshot: a message learned or unlearned meanwhile may be seen without
// its features, and features of a digest not seen are left out.
func (s *RedisStore) WalkDigests(ctx context.Context, fn func(DigestClass) error) error {
	var ds []DigestClass
	err := s.scanHash(ctx, "scan", s.digests, scanCount, func(k, v string) error {
		if len(k) != len(Digest{}) || (v != "1" && v != "2") {
			return fmt.Errorf("corrupt digest entry %x", k)
		}
		var d DigestClass
		copy(d.Digest[:], k)
		d.Class = Class(v[0] - '0')
		ds = append(ds, d)
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk digests: %w", err)
	}
	slices.SortFunc(ds, func(a, b DigestClass) int { return strings.Compare(string(a.Digest[:]), string(b.Digest[:])) })
	ds = slices.CompactFunc(ds, func(a, b DigestClass) bool { return a.Digest == b.Digest })
	feats := map[Digest][]byte{}
	err = s.scanHash(ctx, "scan", s.features, scanCountFeatures, func(k, v string) error {
		if len(k) != len(Digest{}) {
			return fmt.Errorf("corrupt features entry %x", k)
		}
		// The scripts never store "": a digest without features has
		// no field.
		if v != "" {
			feats[Digest([]byte(k))] = []byte(v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk digests: %w", err)
	}
	for i := range ds {
		ds[i].Features = feats[ds[i].Digest]
	}
	for _, d := range ds {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// WalkLearned implements Store. The generation is read before the walk,
// which is no snapshot (see WalkDigests): the walk has every change up to
// it, and maybe some later ones, partly.
func (s *RedisStore) WalkLearned(ctx context.Context, fn func(DigestClass) error) (uint64, error) {
	var v []any
	err := s.call(ctx, "meta", false, func(ctx context.Context) error {
		var err error
		v, err = s.rdb.HMGet(ctx, s.meta, "version", "lgen").Result()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("walk learned: %w", err)
	}
	if err := checkVersion(v[0]); err != nil {
		return 0, fmt.Errorf("walk learned on %s: %w", s, err)
	}
	var gen uint64
	if g, ok := v[1].(string); ok {
		if gen, err = strconv.ParseUint(g, 10, 64); err != nil {
			return 0, fmt.Errorf("walk learned on %s: learn generation %q", s, g)
		}
	}
	return gen, s.WalkDigests(ctx, fn)
}

// DropFeatures implements Store: a script per dropChunk digests, each
// checking that the digest is still learned and has features, deleting
// them, and raising the learn generation if it deleted any.
func (s *RedisStore) DropFeatures(ctx context.Context, digests []Digest) (int, error) {
	n := 0
	for len(digests) > 0 {
		chunk := digests[:min(len(digests), dropChunk)]
		digests = digests[len(chunk):]
		a := make([]any, len(chunk))
		for i, d := range chunk {
			a[i] = string(d[:])
		}
		res, err := s.runScripts(ctx, "drop", scriptDrop, [][]any{a}, false)
		if err != nil {
			return n, fmt.Errorf("drop features: %w", err)
		}
		d, ok := res[0].(int64)
		if !ok || d < 0 || d > int64(len(chunk)) {
			return n, fmt.Errorf("drop features on %s: unexpected script result %v", s, res[0])
		}
		n += int(d)
	}
	return n, nil
}

// Size returns what Stats does without reading every token, in one round
// trip: totals, the number of tokens, digests and features, and Bytes,
// the memory Redis estimates for the store's keys (MEMORY USAGE,
// sampled). The Bayes filter measures the store with it every
// stats_interval.
//
// The reads are a plain pipeline, not a MULTI: the numbers need not be of
// one instant, and at maxmemory (noeviction) Redis refuses every command
// queued in a MULTI, when an administrator needs the numbers most.
func (s *RedisStore) Size(ctx context.Context) (Stats, error) {
	var meta *redis.SliceCmd
	var ntok, ndig, nfeat *redis.IntCmd
	mem := make([]*redis.IntCmd, len(s.keys))
	err := s.call(ctx, "stats", false, func(ctx context.Context) error {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			meta = p.HMGet(ctx, s.meta, "version", "spam", "ham")
			ntok = p.HLen(ctx, s.tokens)
			ndig = p.HLen(ctx, s.digests)
			nfeat = p.HLen(ctx, s.features)
			for i, k := range s.keys {
				mem[i] = p.MemoryUsage(ctx, k)
			}
			return nil
		})
		// MEMORY USAGE of a missing key is a nil reply, which must not
		// hide the error of another command.
		for _, c := range cmds {
			if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
				return e
			}
		}
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		return err
	})
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	mv := meta.Val()
	if err := checkVersion(mv[0]); err != nil {
		return Stats{}, fmt.Errorf("stats on %s: %w", s, err)
	}
	var st Stats
	if st.Totals, err = parseRedisTotals(mv[1], mv[2]); err != nil {
		return Stats{}, fmt.Errorf("stats on %s: %w", s, err)
	}
	st.Tokens = int(ntok.Val())
	st.Digests = int(ndig.Val())
	// The features hash has a field per learned message with features,
	// and no other: the scripts delete a message's features with its
	// digest. (Only a sluice older than the features hash, unlearning a
	// message a newer one learned, leaves its features behind.)
	st.Features = int(nfeat.Val())
	for _, m := range mem {
		st.Bytes += m.Val()
	}
	return st, nil
}

// Stats implements Store: Size, plus the ages and singular tokens, which
// take a scan of every token.
func (s *RedisStore) Stats(ctx context.Context) (Stats, error) {
	st, err := s.Size(ctx)
	if err != nil {
		return Stats{}, err
	}
	recs, err := s.records(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	st.Tokens = len(recs)
	for _, r := range recs {
		if uint64(r.Spam)+uint64(r.Ham) == 1 {
			st.Singular++
		}
		if r.LastSeen != 0 && (st.Oldest == 0 || r.LastSeen < st.Oldest) {
			st.Oldest = r.LastSeen
		}
		st.Newest = max(st.Newest, r.LastSeen)
	}
	return st, nil
}

// pruneChunk is how many candidates one prune script checks and deletes.
const pruneChunk = 1000

// Prune implements Store. A scan finds the candidates; a script per chunk
// checks each again and deletes it, so a token that training counted in
// the meantime is not lost.
func (s *RedisStore) Prune(ctx context.Context, opts PruneOptions) (int, error) {
	if opts.Before == 0 && opts.MaxCount == 0 {
		return 0, nil
	}
	var cands []string
	err := s.scanHash(ctx, "scan", s.tokens, scanCount, func(tok, val string) error {
		c, err := parseRedisCounts(val)
		if err != nil {
			return fmt.Errorf("token %q: %w", tok, err)
		}
		if pruneMatch(c, opts) {
			cands = append(cands, tok)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	n := 0
	for len(cands) > 0 {
		k := min(len(cands), pruneChunk)
		a := make([]any, 0, 2+k)
		a = append(a, uint32(opts.Before), opts.MaxCount)
		for _, c := range cands[:k] {
			a = append(a, c)
		}
		cands = cands[k:]
		res, err := s.runScripts(ctx, "prune", scriptPrune, [][]any{a}, false)
		if err != nil {
			return n, fmt.Errorf("prune: %w", err)
		}
		d, _ := res[0].(int64)
		n += int(d)
	}
	return n, nil
}

// Meta implements Store.
func (s *RedisStore) Meta(ctx context.Context, key string) (string, error) {
	var v []any
	err := s.call(ctx, "meta", false, func(ctx context.Context) error {
		var err error
		v, err = s.rdb.HMGet(ctx, s.meta, "version", "m:"+key).Result()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("meta %s: %w", key, err)
	}
	if err := checkVersion(v[0]); err != nil {
		return "", fmt.Errorf("meta %s on %s: %w", key, s, err)
	}
	str, _ := v[1].(string)
	return str, nil
}

// Generations implements generationsReader: the learn generation
// ('lgen') and the one the stored model was fitted at ('mgen'), in one
// round trip.
func (s *RedisStore) Generations(ctx context.Context) (learn, model uint64, err error) {
	var v []any
	err = s.call(ctx, "meta", false, func(ctx context.Context) error {
		var err error
		v, err = s.rdb.HMGet(ctx, s.meta, "version", "lgen", "mgen").Result()
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("generations: %w", err)
	}
	if err := checkVersion(v[0]); err != nil {
		return 0, 0, fmt.Errorf("generations on %s: %w", s, err)
	}
	var gens [2]uint64
	for i, x := range v[1:] {
		str, _ := x.(string)
		if str == "" {
			continue // never learned, or no model: 0
		}
		if gens[i], err = strconv.ParseUint(str, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("generations on %s: corrupt generation %q", s, str)
		}
	}
	return gens[0], gens[1], nil
}

// WalkMeta implements Store. The matching fields are read into memory
// and sorted first; the meta hash's other fields (the n-gram model, which
// may be megabytes) stay on the server, left out by the scan's pattern.
func (s *RedisStore) WalkMeta(ctx context.Context, prefix string, fn func(key, value string) error) error {
	type kv struct{ key, value string }
	var found []kv
	err := s.scanHashMatch(ctx, "meta", s.meta, globQuote("m:"+prefix)+"*", scanCount, func(k, v string) error {
		found = append(found, kv{strings.TrimPrefix(k, "m:"), v})
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk meta %s: %w", prefix, err)
	}
	slices.SortFunc(found, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	// A scan may return a field twice (see scanHash).
	found = slices.CompactFunc(found, func(a, b kv) bool { return a.key == b.key })
	for _, e := range found {
		if err := fn(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// globQuote escapes the characters special to a Redis glob pattern, so
// that s matches itself only.
func globQuote(s string) string {
	var b strings.Builder
	for i := range len(s) {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// SetMeta implements Store.
func (s *RedisStore) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.runScripts(ctx, "meta", scriptSetMeta, [][]any{{"m:" + key, value}}, false)
	if err != nil {
		return fmt.Errorf("set meta %s: %w", key, err)
	}
	return nil
}

// SetModel implements Store: the check and both values are one script.
func (s *RedisStore) SetModel(ctx context.Context, gen uint64, model, id string) (bool, error) {
	res, err := s.runScripts(ctx, "meta", scriptSetModel, [][]any{{strconv.FormatUint(gen, 10), model, id}}, false)
	if err != nil {
		return false, fmt.Errorf("set model: %w", err)
	}
	n, ok := res[0].(int64)
	if !ok || n < 0 || n > 1 {
		return false, fmt.Errorf("set model on %s: unexpected script result %v", s, res[0])
	}
	return n == 1, nil
}

// Exists reports whether the store has ever been written: the CLI's
// read-only commands refuse an empty store at a mistyped address. The
// tokens and digests count as well as the meta hash, which an evicting
// maxmemory-policy may have dropped alone: the administrator must then
// see what is left, not "no store".
func (s *RedisStore) Exists(ctx context.Context) (bool, error) {
	var n int64
	err := s.call(ctx, "meta", false, func(ctx context.Context) error {
		var err error
		n, err = s.rdb.Exists(ctx, s.meta, s.tokens, s.digests).Result()
		return err
	})
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// seenModelID implements modelIDSeer.
func (s *RedisStore) seenModelID() (string, bool) { return s.modelSeen.get() }
