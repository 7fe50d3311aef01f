package bayes_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters/bayes"
)

// FuzzParseRedisURL checks the command line's form of a Redis store: a
// URL with a password in it is refused without showing the password, and
// a URL taken passes the redis: section's own checks and is named by
// StoreName as a URL that reads back to the same store.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379",
		"redis://10.0.0.5:6379/2?prefix=site&timeout=250ms",
		"rediss://sluice@a:26379,b:26379?sentinel=mymaster&password_file=/etc/pw&tls_ca_file=/ca.pem",
		"redis://a:7000,b:7000,c:7000/?cluster=true&password_env=RP",
		"redis://user:secret@a:1",
		"redis://user:secret@a:1/x?prefix={",
		"redis://[::1]:6379/0?pool_size=4&cache_tokens=-1&write_timeout=1s",
		"redis://a:1?prefix=a%26b&prefix=c",
		"redis://a:1?prefix=a%26b%23c%25d+e&sentinel=m%3Dn",
		"redis://a:1?timeout=-1s",
		"redis://a:1/-1",
		"redis://a:1?cluster=true&sentinel=m",
		"redis://a:26379,b:26379?sentinel=m&wait_replicas=1",
		"redis://a:1?wait_replicas=-1",
		"redis://a:1,b:1?cluster=true&wait_replicas=2",
		"redis://a:1?%zz",
		"redis://",
		"http://a:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := bayes.ParseRedisURL(s)
		scheme, rest, _ := strings.Cut(s, "://")
		rest, _, _ = strings.Cut(rest, "?")
		authority, _, _ := strings.Cut(rest, "/")
		// The userinfo ends at the last @ (RFC 3986 has none in it; net/url
		// and users with an @ in a password do).
		user, hasUser := "", false
		if i := strings.LastIndex(authority, "@"); i >= 0 {
			user, hasUser = authority[:i], true
		}
		if _, pw, ok := strings.Cut(user, ":"); ok && hasUser && (scheme == "redis" || scheme == "rediss") {
			if err == nil {
				t.Fatalf("%q: a password in the URL was taken", s)
			}
			// Only where the password is not also elsewhere in s.
			if len(pw) >= 4 && !strings.Contains(strings.Replace(s, user, "", 1), pw) && strings.Contains(err.Error(), pw) {
				t.Fatalf("%q: the error shows the password: %v", s, err)
			}
		}
		if err != nil {
			return
		}
		if r.TLS.Enabled != (scheme == "rediss") || strings.Contains(r.Username, ":") {
			t.Fatalf("%q: %+v", s, r)
		}
		if _, err := r.Options(); err != nil && r.PasswordFile == "" && r.PasswordEnv == "" && r.TLS.CAFile == "" {
			t.Fatalf("%q taken, but its options are refused: %v", s, err)
		}
		// The name of the store in messages reads back as the same store.
		name := bayes.Config{Store: bayes.StoreRedis, Redis: r}.StoreName("")
		g, err := bayes.ParseRedisURL(name)
		if err != nil {
			t.Fatalf("%q: its name %q does not parse: %v", s, name, err)
		}
		want := r.KeyPrefix
		if want == "" {
			want = "sluice"
		}
		if !slices.Equal(g.Addrs, r.Addrs) || g.DB != r.DB || g.KeyPrefix != want || g.Cluster != r.Cluster ||
			g.SentinelMaster != r.SentinelMaster || g.TLS.Enabled != (r.TLS != bayes.RedisTLSConfig{}) {
			t.Fatalf("%q: named %q, which reads as %+v", s, name, g)
		}
	})
}

// FuzzParseSize checks sizes of the configuration: a size taken is not
// negative, and its number of bytes reads back as the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1048576", "512KiB", "1MiB", " 10 MB ", "3GiB", "7B", "-1", "1.5MiB", "MiB", "", "4611686018427387904", "4503599627370496KiB", "1e3", "+5", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := bayes.ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%q: size %d", s, n)
		}
		if g, err := bayes.ParseSize(strconv.FormatInt(int64(n), 10)); err != nil || g != n {
			t.Fatalf("%q: %d bytes read back as %d, %v", s, n, g, err)
		}
	})
}

// FuzzParseAction checks that only an action's own name is taken, and
// that it is the name the action prints.
func FuzzParseAction(f *testing.F) {
	for _, s := range []string{"tag", "reject", "tempfail", "quarantine", "discard", "Reject", " tag", "", "quarantine\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := bayes.ParseAction(s)
		if err != nil {
			return
		}
		if a.String() != s {
			t.Fatalf("%q taken as %s", s, a)
		}
	})
}
