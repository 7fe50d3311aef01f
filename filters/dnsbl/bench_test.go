package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// Benchmarks against the real DNS server of package dnsbltest on
// loopback. Run with
//
//	go test -run '^$' -bench . -benchtime 5000x ./filters/dnsbl
//
// (docs/dnsbl.md has the figures).

// benchZones is a typical setup: three IP lists that refuse, a domain
// list on the envelope sender that refuses, and one on the From domain
// that tags.
func benchConfig(srv *dnsbltest.Server) Config {
	cfg := baseConfig(srv,
		ZoneConfig{Zone: "zen.test"},
		ZoneConfig{Zone: "bl2.test"},
		ZoneConfig{Zone: "bl3.test", Family: "ipv4"},
		ZoneConfig{Zone: "dbl.test", Type: "domain", Check: []string{"sender"}},
		ZoneConfig{Zone: "dbl2.test", Type: "domain", Check: []string{"header_from"}, Action: "tag"},
	)
	cfg.Timeout = 2 * time.Second
	cfg.CacheSize = ptr(1_000_000)
	return cfg
}

// BenchmarkCheckWarmCache: checks per second of a client against three
// IP lists when every answer is cached, from all CPUs at once.
func BenchmarkCheckWarmCache(b *testing.B) {
	srv := dnsbltest.Start(b)
	srv.AddA("1.2.0.192.bl2.test", 3600, "127.0.0.2") // one listing, two misses
	srv.SetNegativeTTL(3600, 3600)
	f, err := New(filters.Env{Name: "dnsbl"}, benchConfig(srv), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	m := conn("192.0.2.1")
	if v, err := f.Check(ctx, filters.StageConnect, m); err != nil || v.Action != filters.Reject {
		b.Fatalf("warming up: %+v, %v", v, err)
	}
	queries := len(srv.Queries())
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		m := conn("192.0.2.1")
		for pb.Next() {
			if v, err := f.Check(ctx, filters.StageConnect, m); err != nil || v.Action != filters.Reject {
				b.Errorf("check: %+v, %v", v, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	if n := len(srv.Queries()); n != queries {
		b.Errorf("%d queries with a warm cache", n-queries)
	}
}

// BenchmarkMessageColdLookups: the time the filter adds to one message
// when nothing is cached: a new client address, sender and From domain
// per message, each stage's lookups going to the DNS server on loopback.
// It reports the 50th and 99th percentile per message; "parallel-8" runs
// eight messages at a time, as a busy MTA would.
func BenchmarkMessageColdLookups(b *testing.B) {
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel-%d", conc), func(b *testing.B) {
			srv := dnsbltest.Start(b)
			f, err := New(filters.Env{Name: "dnsbl"}, benchConfig(srv), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			ctx := context.Background()
			took := make([]time.Duration, b.N)
			var next sync.Mutex
			i := 0
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						n := i
						i++
						next.Unlock()
						if n >= b.N {
							return
						}
						// 11.0.0.0/8 is public (not skipped); one
						// address and two domains per message.
						ip := netip.AddrFrom4([4]byte{11, byte(n >> 16), byte(n >> 8), byte(n)})
						m := message(ip.String(), "mx.example", fmt.Sprintf("a@s%d.example", n), fmt.Sprintf("<b@f%d.example>", n))
						start := time.Now()
						for _, st := range []filters.Stage{filters.StageConnect, filters.StageMailFrom, filters.StageHeaders} {
							if v, err := f.Check(ctx, st, m); err != nil || v.Action != filters.Continue {
								b.Errorf("message %d at %s: %+v, %v", n, st, v, err)
								return
							}
						}
						took[n] = time.Since(start)
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms/msg")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms/msg")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms/msg")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
