package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier/redistest"
)

// A reload that moves a bayes filter from Redis to a bbolt file under the
// same name closes the old filter's connection pool: the pool gauge must
// go with it, as it goes when a reload removes or renames the filter,
// and not report the last idle and in-use connections of a pool that is
// gone until the daemon restarts (docs/metrics.md). A pool under the
// same name after a reload to another Redis store keeps its gauge.
func TestRedisPoolGaugeGoesWhenReloadLeavesRedis(t *testing.T) {
	srv := redistest.Start(t)
	td := startDaemonWith(t, redisDaemonConfig("address: inet:127.0.0.1:0", srv.Addr, "pool", ""))
	pool := regexp.MustCompile(`(?m)^sluice_bayes_redis_pool_connections\{filter="bayes",state="(idle|in_use)"\} .*$`)
	waitFor(t, func() bool { return len(pool.FindAllString(td.metrics(t), -1)) == 2 })

	reload := func(config string) {
		t.Helper()
		if err := os.WriteFile(td.config, []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
		reloads := strings.Count(td.log.String(), "config reloaded")
		td.signal(t, syscall.SIGHUP)
		waitFor(t, func() bool { return strings.Count(td.log.String(), "config reloaded") > reloads })
	}

	// Another Redis store under the same name: the new pool reports.
	reload(redisDaemonConfig("address: inet:127.0.0.1:0", srv.Addr, "pool2", ""))
	time.Sleep(500 * time.Millisecond) // the old filter is closed meanwhile
	if got := pool.FindAllString(td.metrics(t), -1); len(got) != 2 {
		t.Errorf("after a reload to another Redis store: pool gauges %q, want idle and in_use", got)
	}

	reload(fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: bayes
    options:
      stats_interval: 100ms
`, t.TempDir()))
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = pool.FindAllString(td.metrics(t), -1); len(got) == 0 {
			break
		}
	}
	if len(got) != 0 {
		t.Errorf("5s after the reload to a bbolt store the metrics still report the closed Redis pool: %q", got)
	}
	if m := td.metrics(t); !strings.Contains(m, `sluice_bayes_store_tokens{filter="bayes"} 0`) {
		t.Errorf("the bbolt store is not measured after the reload")
	}
}
