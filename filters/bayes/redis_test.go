package bayes_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// storeObs records what a Redis store reports through bayes.StoreObserver.
type storeObs struct {
	mu sync.Mutex
	obsCounts
}

type obsCounts struct {
	unavailable int
	trips       map[string]int
	failed      map[string]int
	pool        []classifier.RedisPoolStats
	stores      []classifier.Stats
}

func (o *storeObs) BayesStoreUnavailable(filter string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unavailable++
}

func (o *storeObs) BayesRedisRoundTrip(filter, op string, took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.trips == nil {
		o.trips, o.failed = map[string]int{}, map[string]int{}
	}
	o.trips[op]++
	if err != nil {
		o.failed[op]++
	}
}

func (o *storeObs) BayesRedisPool(filter string, st classifier.RedisPoolStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pool = append(o.pool, st)
}

// The bayes.Observer side, so that the filter measures the store.
func (o *storeObs) BayesClassified(string, string, float64, time.Duration) {}
func (o *storeObs) BayesSkipped(string, string)                            {}
func (o *storeObs) BayesAutolearned(string, string)                        {}
func (o *storeObs) BayesAutolearnFailed(string, string)                    {}
func (o *storeObs) BayesNgram(string, int, int)                            {}
func (o *storeObs) BayesFilter(string, bool)                               {}
func (o *storeObs) BayesImportIncomplete(string, bool)                     {}
func (o *storeObs) BayesStore(filter string, st classifier.Stats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stores = append(o.stores, st)
}

func (o *storeObs) snapshot() obsCounts {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := obsCounts{unavailable: o.unavailable, trips: map[string]int{}, failed: map[string]int{}}
	for k, v := range o.trips {
		c.trips[k] = v
	}
	for k, v := range o.failed {
		c.failed[k] = v
	}
	c.pool = append(c.pool, o.pool...)
	c.stores = append(c.stores, o.stores...)
	return c
}

// redisTrained copies the trained bbolt store of the fixtures into Redis
// under prefix, through export and import.
func redisTrained(t *testing.T, addr, prefix string) {
	t.Helper()
	redisTrainedOn(t, classifier.RedisOptions{Addrs: []string{addr}, KeyPrefix: prefix})
}

// redisTrainedOn is redisTrained on the store opts name.
func redisTrainedOn(t *testing.T, opts classifier.RedisOptions) {
	t.Helper()
	ctx := context.Background()
	bolt := trainedStore(t)
	defer bolt.Close()
	var buf bytes.Buffer
	if err := classifier.Export(ctx, bolt, &buf); err != nil {
		t.Fatal(err)
	}
	rs, err := classifier.OpenRedis(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if _, err := classifier.Import(ctx, rs, &buf); err != nil {
		t.Fatal(err)
	}
}

func redisOptions(addr, prefix, extra string) string {
	return "store: redis\nredis:\n  addrs: [" + addr + "]\n  key_prefix: " + prefix + "\n  timeout: 300ms\n" + extra
}

// With Redis down or hung the filter answers within its store timeout,
// tags the message "Unsure, store unavailable" whatever the unsure action,
// and counts it; with Redis back it classifies again, same filter.
func TestRedisStoreUnavailableTags(t *testing.T) {
	srv := redistest.Start(t)
	redisTrained(t, srv.Addr, "fo")
	obs := &storeObs{}
	env := filters.Env{Name: "bayes", StateDir: t.TempDir(), Observer: obs}
	f, err := bayes.Open(env, options(t, redisOptions(srv.Addr, "fo", "")+"unsure: {action: reject}\n"), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v := check(t, f, spamMessage()); v.Action != filters.Reject {
		t.Fatalf("spam with Redis up: %+v", v)
	}
	for _, outage := range []struct {
		name        string
		start, stop func(testing.TB)
	}{
		{"hung", srv.Pause, srv.Resume},
		{"killed", srv.Kill, srv.Restart},
	} {
		outage.start(t)
		before := obs.snapshot().unavailable
		for range 3 {
			start := time.Now()
			v := check(t, f, hamMessage())
			if took := time.Since(start); took > 800*time.Millisecond {
				t.Errorf("%s: the filter took %v with a 300ms store timeout", outage.name, took)
			}
			want := "Unsure, store unavailable, queue_id=4Q2HAM, version=1.2.3"
			if v.Action != filters.Continue || added(v, "X-Sluice-Bayes") != want || v.Reason != "bayes: store unavailable" {
				t.Errorf("%s: verdict %+v, want Continue with %q", outage.name, v, want)
			}
		}
		if n := obs.snapshot().unavailable - before; n != 3 {
			t.Errorf("%s: %d messages counted unavailable, want 3", outage.name, n)
		}
		outage.stop(t)
	}
	// The restarted Redis is empty: retrain it, and the filter, never
	// reopened, scores with what it finds.
	redisTrained(t, srv.Addr, "fo")
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := check(t, f, spamMessage())
		if v.Action == filters.Reject {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no spam verdict 10 s after Redis came back: %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := obs.snapshot(); s.trips["lookup"] < 8 || s.failed["lookup"] < 6 {
		t.Errorf("round trips seen: %v, failed %v", s.trips, s.failed)
	}
}

// Cluster failover (docs/scaling.md): while the master holding the
// store's slot is down, messages pass tagged "store unavailable" (and
// are counted); once its replica has taken over, the same filter
// classifies them again with the store as it was.
func TestRedisClusterFailoverFilter(t *testing.T) {
	cl := redistest.StartClusterReplicas(t, 3)
	redisTrainedOn(t, classifier.RedisOptions{Addrs: cl.Addrs, Cluster: true, KeyPrefix: "cf"})
	obs := &storeObs{}
	env := filters.Env{Name: "bayes", StateDir: t.TempDir(), Observer: obs}
	conf := "store: redis\nredis:\n  addrs: [" + strings.Join(cl.Addrs, ", ") + "]\n  cluster: true\n  key_prefix: cf\n  timeout: 300ms\n" +
		"unsure: {action: reject}\n"
	f, err := bayes.Open(env, options(t, conf), "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v := check(t, f, spamMessage()); v.Action != filters.Reject {
		t.Fatalf("spam before the failover: %+v", v)
	}
	if v := check(t, f, hamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Ham,") {
		t.Fatalf("ham before the failover: %+v", v)
	}
	const key = "{cf}:meta"
	master, err := cl.MasterOf(t, key)
	if err != nil {
		t.Fatal(err)
	}
	cl.WaitReplicated(t, master)
	master.Kill(t)
	killed := time.Now()
	before := obs.snapshot().unavailable
	for range 3 {
		start := time.Now()
		v := check(t, f, hamMessage())
		if took := time.Since(start); took > 800*time.Millisecond {
			t.Errorf("the filter took %v with a 300ms store timeout", took)
		}
		want := "Unsure, store unavailable, queue_id=4Q2HAM, version=1.2.3"
		if v.Action != filters.Continue || added(v, "X-Sluice-Bayes") != want || v.Reason != "bayes: store unavailable" {
			t.Errorf("in the outage (%v after the kill): verdict %+v, want Continue with %q", time.Since(killed), v, want)
		}
	}
	if n := obs.snapshot().unavailable - before; n != 3 {
		t.Errorf("%d messages counted unavailable, want 3", n)
	}
	cl.WaitFailover(t, key, master, 30*time.Second)
	promoted := time.Now()
	for {
		v := check(t, f, spamMessage())
		if v.Action == filters.Reject {
			break
		}
		if !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Unsure, store unavailable") {
			t.Fatalf("spam after the failover: %+v, want store unavailable until rejected", v)
		}
		if time.Since(promoted) > 5*time.Second {
			t.Fatalf("no spam verdict 5 s after the promotion: %+v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("promoted %v after the kill; spam rejected again %v after the promotion",
		promoted.Sub(killed).Round(10*time.Millisecond), time.Since(promoted).Round(10*time.Millisecond))
	if v := check(t, f, hamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Ham,") {
		t.Errorf("ham after the failover: %+v", v)
	}
}

// store_unavailable: fail hands the failure to the pipeline's policy.
func TestRedisStoreUnavailableFail(t *testing.T) {
	srv := redistest.Start(t)
	f, err := bayes.Open(filters.Env{StateDir: t.TempDir()}, options(t, redisOptions(srv.Addr, "ff", "store_unavailable: fail\n")), "v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv.Kill(t)
	p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: 5 * time.Second, OnFailure: filters.FailTempfail}}, nil)
	res := p.Run(context.Background(), filters.StageEOM, hamMessage())
	if res.Verdict.Action != filters.Tempfail || res.Decisions[0].Failure != filters.FailureError {
		t.Errorf("result %+v, want tempfail by policy", res)
	}
}

// A filter built while Redis is down (daemon start, reload) works: it
// tags until Redis answers, then reads the store's dialect and classifies.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	redisTrained(t, srv.Addr, "ds")
	srv.Kill(t)
	f, err := bayes.Open(filters.Env{StateDir: t.TempDir()}, options(t, redisOptions(srv.Addr, "ds", "")), "v")
	if err != nil {
		t.Fatalf("open while Redis is down: %v", err)
	}
	defer f.Close()
	if f.Classifier() != nil {
		t.Error("a classifier without having read the store")
	}
	if v := check(t, f, spamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Unsure, store unavailable") {
		t.Errorf("verdict %+v", v)
	}
	srv.Restart(t)
	redisTrained(t, srv.Addr, "ds")
	deadline := time.Now().Add(10 * time.Second)
	for check(t, f, spamMessage()).Action != filters.Reject {
		if time.Now().After(deadline) {
			t.Fatal("no spam verdict 10 s after Redis came up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The pipeline's timeout shorter than the store's: the filter still
// answers itself, before the pipeline gives up on it.
func TestRedisHungWithinFilterTimeout(t *testing.T) {
	srv := redistest.Start(t)
	redisTrained(t, srv.Addr, "ht")
	f, err := bayes.Open(filters.Env{StateDir: t.TempDir()}, options(t, "store: redis\nredis: {addrs: ["+srv.Addr+"], key_prefix: ht, timeout: 5s}\n"), "v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if v := check(t, f, hamMessage()); !strings.HasPrefix(added(v, "X-Sluice-Bayes"), "Ham,") {
		t.Fatalf("with Redis up: %+v", v)
	}
	srv.Pause(t)
	defer srv.Resume(t)
	p := filters.NewPipeline([]filters.Step{{Filter: f, Timeout: time.Second, OnFailure: filters.FailTempfail}}, nil)
	res := p.Run(context.Background(), filters.StageEOM, hamMessage())
	if res.Decisions[0].Failure != "" || res.Verdict.Action != filters.Continue ||
		!strings.HasPrefix(added(res.Verdict, "X-Sluice-Bayes"), "Unsure, store unavailable") {
		t.Errorf("result %+v, want the filter's own unavailable tag within the step timeout", res)
	}
}

// The filter measures a Redis store without scanning it, and reports its
// connection pool.
func TestRedisStoreMetrics(t *testing.T) {
	srv := redistest.Start(t)
	redisTrained(t, srv.Addr, "me")
	obs := &storeObs{}
	f, err := bayes.Open(filters.Env{StateDir: t.TempDir(), Observer: obs}, options(t, redisOptions(srv.Addr, "me", "stats_interval: 50ms\n")), "v")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		check(t, f, hamMessage())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(obs.snapshot().stores) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	f.Close()
	s := obs.snapshot()
	if len(s.stores) < 2 || s.stores[len(s.stores)-1].Spam != 14 || s.stores[len(s.stores)-1].Tokens < 100 {
		t.Fatalf("store measurements %+v", s.stores)
	}
	if s.trips["scan"] != 0 || s.trips["stats"] < 2 {
		t.Errorf("measuring took round trips %v: want stats, no scans", s.trips)
	}
	if s.trips["lookup"] != 5 {
		t.Errorf("%d lookups for 5 messages", s.trips["lookup"])
	}
	if len(s.pool) == 0 {
		t.Fatal("no pool report")
	}
}

func TestRedisConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	t.Setenv("SLUICE_TEST_REDIS_PW", "fromenv")
	good := []struct {
		opts string
		want func(o classifier.RedisOptions) bool
	}{
		{"store: redis\nredis: {addrs: [10.0.0.1:6379], password_file: " + pw + "}", func(o classifier.RedisOptions) bool {
			return o.Password == "s3cret" && len(o.Addrs) == 1
		}},
		{"store: redis\nredis: {addrs: [10.0.0.1:6379], password_env: SLUICE_TEST_REDIS_PW, db: 3, key_prefix: site}", func(o classifier.RedisOptions) bool {
			return o.Password == "fromenv" && o.DB == 3 && o.KeyPrefix == "site"
		}},
		{"store: redis\nredis: {addrs: [a:26379, b:26379], sentinel_master: mymaster}", func(o classifier.RedisOptions) bool {
			return o.MasterName == "mymaster" && len(o.Addrs) == 2
		}},
		{"store: redis\nredis: {addrs: [a:7000, b:7000, c:7000], cluster: true, tls: {enabled: true}}", func(o classifier.RedisOptions) bool {
			return o.Cluster && o.TLS != nil
		}},
		{"store: redis\nredis: {addrs: [a:26379], sentinel_master: m, wait_replicas: 1}", func(o classifier.RedisOptions) bool {
			return o.WaitReplicas == 1 && o.MasterName == "m"
		}},
		{"store: redis\nredis: {addrs: [a:6379], wait_replicas: 2}", func(o classifier.RedisOptions) bool {
			return o.WaitReplicas == 2
		}},
	}
	for _, tc := range good {
		cfg := options(t, tc.opts)
		o, err := cfg.Redis.Options()
		if err != nil || !tc.want(o) {
			t.Errorf("%s: %+v %v", tc.opts, o, err)
		}
	}
	bad := []struct{ opts, want string }{
		{"store: redis", "redis.addrs"},
		{"store: redis\nredis: {addrs: [nohost]}", "not host:port"},
		{"store: redis\nredis: {addrs: ['127.0.0.1:6379x']}", "not host:port"},
		{"store: redis\nredis: {addrs: ['127.0.0.1:99999']}", "not host:port"},
		{"store: redis\nredis: {addrs: ['127.0.0.1:0']}", "not host:port"},
		{"store: redis\nredis: {addrs: [a:1, b:2]}", "several addresses"},
		{"store: redis\nredis: {addrs: [a:1], cluster: true, db: 2}", "only database 0"},
		{"store: redis\nredis: {addrs: [a:1], password_file: x, password_env: Y}", "exclude each other"},
		{"store: redis\nredis: {addrs: [a:1], key_prefix: 'a{b}'}", "key_prefix"},
		{"store: redis\nredis: {addrs: [a:1], wait_replicas: -1}", "wait_replicas -1: must not be negative"},
		{"store: redis\nredis: {addrs: [a:7000], cluster: true, wait_replicas: 1}", "wait_replicas is not supported with cluster"},
		// Set without store: redis, as every other redis key.
		{"redis: {wait_replicas: 1}", "need store: redis"},
		{"store: redis\ndb: /x.db\nredis: {addrs: [a:1]}", "store is redis"},
		{"redis: {addrs: [a:1]}", "need store: redis"},
		{"store: mysql", `store "mysql"`},
		{"store_unavailable: ignore", "store_unavailable"},
	}
	for _, tc := range bad {
		_, err := bayes.Open(filters.Env{StateDir: dir}, options(t, tc.opts), "v")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := (bayes.RedisConfig{Addrs: []string{"a:1"}, PasswordFile: filepath.Join(dir, "missing")}).Options(); err == nil {
		t.Error("missing password file: no error")
	}
	// A password file with nothing in it is not "no password", and one
	// of 64 KiB and more (a log or a spool named by mistake) is no
	// password either.
	for name, content := range map[string]string{"empty": "", "newline": "\n", "crlf": "\r\n", "huge": strings.Repeat("x", 64<<10+1)} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := (bayes.RedisConfig{Addrs: []string{"a:1"}, PasswordFile: p}).Options()
		if err == nil || !strings.Contains(err.Error(), "password_file") {
			t.Errorf("password file %s: %v, password of %d bytes; want a password_file error", name, err, len(o.Password))
		}
		_, err = (bayes.RedisConfig{Addrs: []string{"a:1"}, SentinelMaster: "m", SentinelPasswordFile: p}).Options()
		if err == nil || !strings.Contains(err.Error(), "sentinel_password_file") {
			t.Errorf("sentinel password file %s: %v", name, err)
		}
	}
	// A password every local user can read is no secret: refused, for
	// the Sentinels' too. Owner and group may read it.
	for mode, ok := range map[os.FileMode]bool{0o644: false, 0o604: false, 0o606: false, 0o640: true, 0o600: true, 0o440: true} {
		p := filepath.Join(dir, fmt.Sprintf("pw-%04o", mode))
		if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		o, err := (bayes.RedisConfig{Addrs: []string{"a:1"}, PasswordFile: p}).Options()
		if ok && (err != nil || o.Password != "s3cret") {
			t.Errorf("password file of mode %04o: %v", mode, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "other users")) {
			t.Errorf("password file of mode %04o: error %v, want it refused", mode, err)
		}
		_, err = (bayes.RedisConfig{Addrs: []string{"a:1"}, SentinelMaster: "m", SentinelPasswordFile: p}).Options()
		if ok != (err == nil) {
			t.Errorf("sentinel password file of mode %04o: %v", mode, err)
		}
	}
	t.Setenv("SLUICE_EMPTY_PW", "")
	if _, err := (bayes.RedisConfig{Addrs: []string{"a:1"}, PasswordEnv: "SLUICE_EMPTY_PW"}).Options(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty password variable: %v", err)
	}
}

// The Sentinels' user reaches the store options; it needs Sentinels.
func TestRedisSentinelUsername(t *testing.T) {
	o, err := (bayes.RedisConfig{Addrs: []string{"a:26379"}, SentinelMaster: "m", SentinelUsername: "watch"}).Options()
	if err != nil || o.SentinelUsername != "watch" || o.Username != "" {
		t.Errorf("options %+v, %v; want SentinelUsername watch", o, err)
	}
	if _, err := (bayes.RedisConfig{Addrs: []string{"a:1"}, SentinelUsername: "watch"}).Options(); err == nil || !strings.Contains(err.Error(), "sentinel_master") {
		t.Errorf("sentinel_username without sentinel_master: %v", err)
	}
}

func TestParseRedisURL(t *testing.T) {
	good := []struct {
		url  string
		want bayes.RedisConfig
	}{
		{"redis://127.0.0.1:6379", bayes.RedisConfig{Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://10.0.0.5:6379/2?prefix=site&timeout=250ms", bayes.RedisConfig{Addrs: []string{"10.0.0.5:6379"}, DB: 2, KeyPrefix: "site", Timeout: 250 * time.Millisecond}},
		{"rediss://sluice@a:26379,b:26379?sentinel=mymaster&password_file=/etc/pw&tls_ca_file=/ca.pem",
			bayes.RedisConfig{Addrs: []string{"a:26379", "b:26379"}, Username: "sluice", SentinelMaster: "mymaster", PasswordFile: "/etc/pw",
				TLS: bayes.RedisTLSConfig{Enabled: true, CAFile: "/ca.pem"}}},
		{"redis://a:7000,b:7000,c:7000/?cluster=true&password_env=RP", bayes.RedisConfig{Addrs: []string{"a:7000", "b:7000", "c:7000"}, Cluster: true, PasswordEnv: "RP"}},
		// The user ends at the last @, as in net/url.
		{"redis://ops@example@a:1", bayes.RedisConfig{Addrs: []string{"a:1"}, Username: "ops@example"}},
		// Sentinels with a password of their own, and a server that asks
		// for a client certificate: every redis.* option has its key.
		{"rediss://a:26379,b:26379?sentinel=m&sentinel_username=watch&sentinel_password_file=/etc/spw&tls_cert_file=/c.pem&tls_key_file=/k.pem&tls_server_name=r.example",
			bayes.RedisConfig{Addrs: []string{"a:26379", "b:26379"}, SentinelMaster: "m", SentinelUsername: "watch", SentinelPasswordFile: "/etc/spw",
				TLS: bayes.RedisTLSConfig{Enabled: true, CertFile: "/c.pem", KeyFile: "/k.pem", ServerName: "r.example"}}},
		{"redis://a:26379?sentinel=m&wait_replicas=1", bayes.RedisConfig{Addrs: []string{"a:26379"}, SentinelMaster: "m", WaitReplicas: 1}},
		{"redis://a:6379?wait_replicas=0", bayes.RedisConfig{Addrs: []string{"a:6379"}}},
	}
	for _, tc := range good {
		got, err := bayes.ParseRedisURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if strings.Join(got.Addrs, ",") != strings.Join(tc.want.Addrs, ",") {
			t.Errorf("%s: addrs %q", tc.url, got.Addrs)
		}
		got.Addrs, tc.want.Addrs = nil, nil
		if got.Username != tc.want.Username || got.DB != tc.want.DB || got.KeyPrefix != tc.want.KeyPrefix ||
			got.SentinelMaster != tc.want.SentinelMaster || got.Cluster != tc.want.Cluster || got.PasswordFile != tc.want.PasswordFile ||
			got.PasswordEnv != tc.want.PasswordEnv || got.Timeout != tc.want.Timeout || got.TLS != tc.want.TLS ||
			got.SentinelPasswordFile != tc.want.SentinelPasswordFile || got.SentinelUsername != tc.want.SentinelUsername ||
			got.WaitReplicas != tc.want.WaitReplicas {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.url, got, tc.want)
		}
	}
	for _, bad := range []string{
		"http://a:1", "redis://", "redis://a:1/x", "redis://a:1?color=red", "redis://user:secret@a:1",
		"redis://a:1,b:2", "redis://a:1?cluster=maybe", "redis://127.0.0.1:6379x", "redis://127.0.0.1:99999",
		// A password with an @ in it: all of it hidden, not "ecret@a:1".
		"redis://user:s@secret@a:1", "redis://user:pa@secret@a:1/0?prefix=x",
		// The Sentinels' user or password without Sentinels.
		"redis://a:1?sentinel_username=watch", "redis://a:1?sentinel_password_file=/etc/spw",
		// wait_replicas: a number of replicas, not with Cluster.
		"redis://a:1?wait_replicas=-1", "redis://a:1?wait_replicas=x", "redis://a:1?wait_replicas=1.5",
		"redis://a:1,b:2?cluster=true&wait_replicas=1",
	} {
		_, err := bayes.ParseRedisURL(bad)
		if err == nil {
			t.Errorf("%s: no error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", bad, err)
		}
	}
	cfg := bayes.Config{Store: bayes.StoreRedis, Redis: bayes.RedisConfig{Addrs: []string{"a:1"}, Cluster: true}}
	if got := cfg.StoreName(""); got != "redis://a:1/0?prefix=sluice&cluster=true" {
		t.Errorf("StoreName %q", got)
	}
}

// A password holds a "/" or "?" as often as not (base64 makes them), and a
// person writes it into the URL as it is, not percent-encoded. Read by
// the letter of RFC 3986 such a URL has no password: its host is
// "user:pa", and the rest a database or a parameter. It is refused all
// the same, but as a password in the URL, and without showing it. A URL
// whose query holds an "@" still reads as before.
func TestParseRedisURLPasswordWithDelimiters(t *testing.T) {
	for _, s := range []string{
		"redis://user:pa/secret@a:1",
		"redis://user:pa?secret@a:1",
		"redis://user:12/secret@a:1",
		"redis://user:pa/secret@a:1/0?prefix=x",
		"rediss://sluice:k9/secret+Q=@a:1,b:2?cluster=true",
		"redis://user:pa?secret@[::1]:6379/2",
		// The port forgotten as well: refused for that too, but
		// the password is no less in the URL.
		"redis://user:pa/secret@a",
		"redis://user:pa/secret@a/0",
		"redis://user:pa?secret@a,b:2",
	} {
		_, err := bayes.ParseRedisURL(s)
		if err == nil {
			t.Errorf("%s: no error", s)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", s, err)
		}
		if !strings.Contains(err.Error(), "no password in the URL") {
			t.Errorf("%s: error %q, want it to say that a password is in the URL", s, err)
		}
	}
	r, err := bayes.ParseRedisURL("redis://a:1/0?prefix=x@y:2")
	if err != nil || r.KeyPrefix != "x@y:2" || r.Addrs[0] != "a:1" {
		t.Errorf("a prefix with an @: %+v, %v", r, err)
	}
	if _, err := bayes.ParseRedisURL("redis://a:1/0?prefix=x@y&timeout=bad"); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a bad timeout beside a prefix with an @: %v, want the timeout named", err)
	}
	if _, err := bayes.ParseRedisURL("redis://[::1]:6379/x?prefix=a@b:1"); err == nil || !strings.Contains(err.Error(), "database") {
		t.Errorf("a bad database beside a prefix with an @: %v, want the database named", err)
	}
}

// A session that ends while Redis hangs is not counted as an outage: the
// filter returns the error and tags nothing.
func TestRedisAbortedSessionNotUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	redisTrained(t, srv.Addr, "ab")
	obs := &storeObs{}
	f, err := bayes.Open(filters.Env{StateDir: t.TempDir(), Observer: obs}, options(t, redisOptions(srv.Addr, "ab", "")), "v")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv.Pause(t)
	defer srv.Resume(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	v, err := f.Check(ctx, filters.StageEOM, hamMessage())
	if err == nil || len(v.Edits) != 0 {
		t.Errorf("check in an aborted session: %+v, %v; want an error", v, err)
	}
	if n := obs.snapshot().unavailable; n != 0 {
		t.Errorf("%d messages counted unavailable", n)
	}
}
