package bayes

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/filters"
)

// Store kinds, the values of the store option.
const (
	StoreBolt  = "bbolt"
	StoreRedis = "redis"
)

// RedisConfig is the redis: section of the options, used with store:
// redis. docs/bayes.md lists the keys, docs/scaling.md how to deploy.
type RedisConfig struct {
	// Addrs are host:port addresses: one server, the Sentinels (with
	// SentinelMaster), or seed nodes of a Cluster (with Cluster).
	Addrs []string `yaml:"addrs"`
	// Username for Redis ACLs; empty for the default user.
	Username string `yaml:"username"`
	// PasswordFile or PasswordEnv hold the password (AUTH); at most one.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`
	// DB is the database number (0 in a Cluster).
	DB int `yaml:"db"`
	// KeyPrefix names the store's keys; default "sluice".
	KeyPrefix string `yaml:"key_prefix"`
	// SentinelMaster is the master's name at the Sentinels.
	SentinelMaster string `yaml:"sentinel_master"`
	// SentinelUsername is the Sentinels' ACL user, if not the default
	// one; SentinelPasswordFile holds their password, if they have one.
	SentinelUsername     string `yaml:"sentinel_username"`
	SentinelPasswordFile string `yaml:"sentinel_password_file"`
	// Cluster selects Redis Cluster.
	Cluster bool `yaml:"cluster"`
	// TLS connects with TLS.
	TLS RedisTLSConfig `yaml:"tls"`
	// Timeout bounds connecting and each lookup; default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// WriteTimeout bounds each training round trip; default 30s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is the most connections per Redis server; default 10 per
	// CPU.
	PoolSize int `yaml:"pool_size"`
	// CacheTokens is how many token counts each sluice keeps between
	// lookups; default classifier.DefaultRedisCacheTokens, -1 for none.
	CacheTokens int `yaml:"cache_tokens"`
	// WaitReplicas, if at least 1, makes each learn and import batch
	// fail (store unavailable) unless that many replicas acknowledged
	// it (Redis WAIT); default 0, not with Cluster.
	WaitReplicas int `yaml:"wait_replicas"`
}

// RedisTLSConfig configures TLS to Redis.
type RedisTLSConfig struct {
	// Enabled turns TLS on with the system's CAs; setting any other key
	// turns it on as well.
	Enabled bool `yaml:"enabled"`
	// CAFile holds the CA certificates that sign the server's
	// certificate; default the system's.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name checked in the server's certificate;
	// default the host of the address.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a client certificate, for servers that
	// ask for one (tls-auth-clients).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// set reports whether any key of the section is set.
func (r RedisConfig) set() bool {
	return len(r.Addrs) > 0 || r.Username != "" || r.PasswordFile != "" || r.PasswordEnv != "" || r.DB != 0 ||
		r.KeyPrefix != "" || r.SentinelMaster != "" || r.SentinelUsername != "" || r.SentinelPasswordFile != "" || r.Cluster ||
		r.TLS != (RedisTLSConfig{}) || r.Timeout != 0 || r.WriteTimeout != 0 || r.PoolSize != 0 || r.CacheTokens != 0 ||
		r.WaitReplicas != 0
}

// check validates the section without reading files.
func (r RedisConfig) check() error {
	if len(r.Addrs) == 0 {
		return errors.New("redis.addrs: at least one host:port needed with store: redis")
	}
	for _, f := range []struct{ key, path string }{
		{"redis.password_file", r.PasswordFile},
		{"redis.sentinel_password_file", r.SentinelPasswordFile},
		{"redis.tls.ca_file", r.TLS.CAFile},
		{"redis.tls.cert_file", r.TLS.CertFile},
		{"redis.tls.key_file", r.TLS.KeyFile},
	} {
		if err := filters.CheckPath(f.path); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	for _, a := range r.Addrs {
		_, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n < 1 || n > 65535 {
			// A bad port would only show as an outage at every dial.
			return fmt.Errorf("redis.addrs: %q is not host:port", a)
		}
	}
	switch {
	case r.PasswordFile != "" && r.PasswordEnv != "":
		return errors.New("redis: password_file and password_env exclude each other")
	case r.Cluster && r.SentinelMaster != "":
		return errors.New("redis: cluster and sentinel_master exclude each other")
	case r.SentinelMaster == "" && (r.SentinelUsername != "" || r.SentinelPasswordFile != ""):
		// Set without Sentinels, they would be ignored, and a server
		// that wants them would refuse sluice for no reason it names.
		return errors.New("redis: sentinel_username and sentinel_password_file need sentinel_master")
	case r.Cluster && r.DB != 0:
		return fmt.Errorf("redis.db %d: Redis Cluster has only database 0", r.DB)
	case r.DB < 0:
		return fmt.Errorf("redis.db %d: must not be negative", r.DB)
	case !r.Cluster && r.SentinelMaster == "" && len(r.Addrs) > 1:
		return errors.New("redis.addrs: several addresses need cluster: true or sentinel_master")
	case strings.ContainsAny(r.KeyPrefix, "{}"):
		return fmt.Errorf("redis.key_prefix %q: must not contain { or }", r.KeyPrefix)
	case r.Timeout < 0 || r.WriteTimeout < 0:
		return errors.New("redis.timeout and redis.write_timeout must not be negative")
	case r.PoolSize < 0:
		return errors.New("redis.pool_size must not be negative")
	case r.CacheTokens < -1:
		return errors.New("redis.cache_tokens: a number of tokens, or -1 for no cache")
	case r.WaitReplicas < 0:
		return fmt.Errorf("redis.wait_replicas %d: must not be negative", r.WaitReplicas)
	case r.Cluster && r.WaitReplicas > 0:
		// WAIT counts the replicas of the writes of its own connection,
		// which with Cluster would have to be the one to the node of
		// the store's slot that the scripts went on.
		return errors.New("redis.wait_replicas is not supported with cluster: true")
	case (r.TLS.CertFile == "") != (r.TLS.KeyFile == ""):
		return errors.New("redis.tls: cert_file and key_file go together")
	}
	return nil
}

// Options turns the section into store options, reading the password and
// certificate files.
func (r RedisConfig) Options() (classifier.RedisOptions, error) {
	if err := r.check(); err != nil {
		return classifier.RedisOptions{}, err
	}
	o := classifier.RedisOptions{
		Addrs:      r.Addrs,
		MasterName: r.SentinelMaster,
		Cluster:    r.Cluster,
		Username:   r.Username,
		DB:         r.DB,
		// Only the Sentinels are asked with it (see check).
		SentinelUsername: r.SentinelUsername,
		KeyPrefix:        r.KeyPrefix,
		Timeout:          r.Timeout,
		WriteTimeout:     r.WriteTimeout,
		PoolSize:         r.PoolSize,
		CacheTokens:      r.CacheTokens,
		WaitReplicas:     r.WaitReplicas,
	}
	var err error
	switch {
	case r.PasswordFile != "":
		if o.Password, err = readSecret(r.PasswordFile); err != nil {
			return o, fmt.Errorf("redis.password_file: %w", err)
		}
	case r.PasswordEnv != "":
		v, ok := os.LookupEnv(r.PasswordEnv)
		if !ok {
			return o, fmt.Errorf("redis.password_env: %s is not set", r.PasswordEnv)
		}
		if v == "" {
			return o, fmt.Errorf("redis.password_env: %s is empty", r.PasswordEnv)
		}
		o.Password = v
	}
	if r.SentinelPasswordFile != "" {
		if o.SentinelPassword, err = readSecret(r.SentinelPasswordFile); err != nil {
			return o, fmt.Errorf("redis.sentinel_password_file: %w", err)
		}
	}
	if r.TLS.on() {
		if o.TLS, err = r.TLS.config(); err != nil {
			return o, fmt.Errorf("redis.tls: %w", err)
		}
	}
	return o, nil
}

// readSecret reads a password file; a trailing line end is not part of
// the password. An empty one is an error: a secret not provisioned yet
// would otherwise mean no password, and the server's NOAUTH refusal would
// not name the file. So is one every user may read (a file made with
// "echo ... >" under the usual umask is 0644): with the password, any
// local user could rewrite the store, and so decide what is spam.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return "", fmt.Errorf("%s: other users have access to it (mode %04o); make it readable by the daemon's user or group only, e.g. chmod 0640", path, perm)
	}
	// Bounded: a file named by mistake (a log, a mail spool) is no
	// password, and must not be read whole.
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s: longer than %d bytes: not a password", path, maxSecret)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return s, nil
}

// maxSecret bounds a password file, far above any Redis password.
const maxSecret = 64 << 10

// on reports whether TLS is used: enabled, or any other key set.
func (c RedisTLSConfig) on() bool { return c != (RedisTLSConfig{}) }

func (c RedisTLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// IsRedisURL reports whether s is a redis:// or rediss:// URL rather than
// a file name.
func IsRedisURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://")
}

// ParseRedisURL reads the command line's form of a Redis store:
//
//	redis://[USER@]HOST:PORT[,HOST:PORT...][/DB][?KEY=VALUE&...]
//
// rediss:// turns TLS on. The keys are those of the redis: section:
// key_prefix (or prefix), sentinel_master (or sentinel),
// sentinel_password_file, cluster, password_file, password_env, timeout,
// write_timeout, pool_size, cache_tokens, wait_replicas, tls_ca_file, tls_server_name,
// tls_cert_file, tls_key_file. A password written in the URL
// (USER:PASSWORD@) is refused: command lines are visible to every user of
// the machine.
func ParseRedisURL(s string) (RedisConfig, error) {
	r, err := parseRedisURL(s)
	if err != nil {
		if hosts, ok := looseUserinfo(s); ok {
			// The refusal the URL earned, not what its password's
			// "/" or "?" made of the rest, which quoted the password.
			return RedisConfig{}, fmt.Errorf("%s://***@%s: no password in the URL, please (anyone can read command lines); use password_file or password_env", s[:strings.Index(s, "://")], hosts)
		}
	}
	return r, err
}

// looseUserinfo finds a password in a URL that parseRedisURL refused,
// written as a person writes one rather than as RFC 3986 has it: with a
// "/" or "?" in it not percent-encoded, "redis://user:pa/ss@host:6379"
// (base64 passwords hold "/" often), which by the letter is the host
// "user:pa" and the database "ss@host:6379". It reports the text after
// the userinfo when some "@" is followed by a list of HOST[:PORT] and
// preceded by a ":" after the scheme, and is either before the query
// (no database holds an "@") or after a text before the query that is no
// list of HOST[:PORT] ("user:pa?ss@host:6379"). Only refused URLs are
// looked at, so a query value with an "@" in it ("prefix=x@y:2") costs
// nothing, and a refused one is not taken for a password after a valid
// host.
func looseUserinfo(s string) (string, bool) {
	_, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", false
	}
	query := strings.IndexByte(rest, '?')
	head := rest
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		head = rest[:i]
	}
	for i := strings.LastIndex(rest, "@"); i >= 0; i = strings.LastIndex(rest[:i], "@") {
		after := rest[i+1:]
		hosts, _, _ := strings.Cut(after, "?")
		hosts, _, _ = strings.Cut(hosts, "/")
		beforeQuery := query < 0 || i < query
		if strings.Contains(rest[:i], ":") && hostList(hosts) && (beforeQuery || !hostList(head)) {
			return after, true
		}
	}
	return "", false
}

// hostList reports whether s is a comma-separated list of HOST:PORT, or
// of HOST with the port left out: a URL whose port was forgotten is
// refused for that too, and the password in it must be hidden all the
// same ("redis://user:pa/ss@host" would otherwise quote the database
// "ss@host").
func hostList(s string) bool {
	for _, a := range strings.Split(s, ",") {
		if a == "" {
			return false
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			// No port: a name or address, with no ":" outside the
			// brackets of an IPv6 address.
			bare := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
			if strings.Contains(a, ":") && (bare == a || net.ParseIP(bare) == nil) {
				return false
			}
			continue
		}
		n, perr := strconv.Atoi(port)
		if perr != nil || host == "" || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// parseRedisURL is ParseRedisURL without the search for a password
// written with delimiters in it.
func parseRedisURL(s string) (RedisConfig, error) {
	var r RedisConfig
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return r, fmt.Errorf("%q: not a redis:// or rediss:// URL", s)
	}
	r.TLS.Enabled = scheme == "rediss"
	// The host list may hold commas, which net/url does not take in a
	// host, so the authority is split off by hand.
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if user, hosts, ok := cutUserinfo(authority); ok {
		if strings.Contains(user, ":") {
			return r, fmt.Errorf("%s: no password in the URL, please (anyone can read command lines); use password_file or password_env", redact(s))
		}
		r.Username, authority = user, hosts
	}
	if authority == "" {
		return r, fmt.Errorf("%q: no host", s)
	}
	r.Addrs = strings.Split(authority, ",")
	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil {
			return r, fmt.Errorf("%q: database %q is not a number", s, path)
		}
		r.DB = db
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return r, fmt.Errorf("%q: %w", s, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		var err error
		switch k {
		case "prefix", "key_prefix":
			r.KeyPrefix = v
		case "sentinel", "sentinel_master":
			r.SentinelMaster = v
		case "sentinel_username":
			r.SentinelUsername = v
		case "sentinel_password_file":
			r.SentinelPasswordFile = v
		case "cluster":
			r.Cluster, err = strconv.ParseBool(v)
		case "password_file":
			r.PasswordFile = v
		case "password_env":
			r.PasswordEnv = v
		case "timeout":
			r.Timeout, err = time.ParseDuration(v)
		case "write_timeout":
			r.WriteTimeout, err = time.ParseDuration(v)
		case "pool_size":
			r.PoolSize, err = strconv.Atoi(v)
		case "cache_tokens":
			r.CacheTokens, err = strconv.Atoi(v)
		case "wait_replicas":
			r.WaitReplicas, err = strconv.Atoi(v)
		case "tls_ca_file":
			r.TLS.CAFile = v
		case "tls_server_name":
			r.TLS.ServerName = v
		case "tls_cert_file":
			r.TLS.CertFile = v
		case "tls_key_file":
			r.TLS.KeyFile = v
		default:
			err = errors.New("unknown parameter")
		}
		if err != nil {
			return r, fmt.Errorf("%q: %s=%q: %w", s, k, v, err)
		}
	}
	if err := r.check(); err != nil {
		return r, fmt.Errorf("%q: %w", s, err)
	}
	return r, nil
}

// cutUserinfo splits a URL's authority at its last @, as net/url does: a
// password written with an @ in it ("user:p@ss@host") is then all on the
// user's side, refused and hidden, rather than half taken for a host.
func cutUserinfo(authority string) (user, hosts string, ok bool) {
	i := strings.LastIndex(authority, "@")
	if i < 0 {
		return "", authority, false
	}
	return authority[:i], authority[i+1:], true
}

// redact hides what follows the scheme up to the last @ of a URL's
// authority (see cutUserinfo).
func redact(s string) string {
	scheme, rest, _ := strings.Cut(s, "://")
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	if _, hosts, ok := cutUserinfo(rest[:end]); ok {
		return scheme + "://***@" + hosts + rest[end:]
	}
	return s
}

// StoreName is how messages name the store: the bbolt file or the Redis
// URL (without credentials), which reads back as the same store.
func (c Config) StoreName(stateDir string) string {
	if c.Store != StoreRedis {
		return c.DBPath(stateDir)
	}
	scheme := "redis"
	if c.Redis.TLS.on() {
		scheme = "rediss"
	}
	prefix := c.Redis.KeyPrefix
	if prefix == "" {
		prefix = "sluice"
	}
	// Escaped, so that the name given back as --db names the same keys
	// whatever the prefix holds ("&", "%", "#", spaces ...).
	q := "prefix=" + url.QueryEscape(prefix)
	if c.Redis.Cluster {
		q += "&cluster=true"
	}
	if c.Redis.SentinelMaster != "" {
		q += "&sentinel=" + url.QueryEscape(c.Redis.SentinelMaster)
	}
	return fmt.Sprintf("%s://%s/%d?%s", scheme, strings.Join(c.Redis.Addrs, ","), c.Redis.DB, q)
}

// OpenStoreReadOnly opens the store the options name for a command that
// only reads it: an existing bbolt file, opened so that nothing is
// created or written (see classifier.BoltOptions.ReadOnly), or Redis,
// as OpenStore does.
func (c Config) OpenStoreReadOnly(stateDir string) (classifier.Store, error) {
	if c.Store == StoreRedis {
		return c.OpenStore(stateDir, nil, nil)
	}
	if c.Store != "" && c.Store != StoreBolt {
		return nil, fmt.Errorf("store %q: want %s or %s", c.Store, StoreBolt, StoreRedis)
	}
	st, err := classifier.OpenBolt(c.DBPath(stateDir), classifier.BoltOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenStore opens the store the options name: the bbolt file, created if
// missing, or Redis (which is not contacted yet: see classifier.OpenRedis).
// obs, if not nil, sees the Redis round trips.
func (c Config) OpenStore(stateDir string, log *slog.Logger, obs classifier.RedisObserver) (classifier.Store, error) {
	switch c.Store {
	case "", StoreBolt:
		opts := classifier.BoltOptions{}
		if log != nil {
			opts.Logger = log
		}
		st, err := classifier.OpenBolt(c.DBPath(stateDir), opts)
		if err != nil {
			return nil, err
		}
		return st, nil
	case StoreRedis:
		o, err := c.Redis.Options()
		if err != nil {
			return nil, err
		}
		o.Observer = obs
		return classifier.OpenRedis(o)
	}
	return nil, fmt.Errorf("store %q: want %s or %s", c.Store, StoreBolt, StoreRedis)
}
