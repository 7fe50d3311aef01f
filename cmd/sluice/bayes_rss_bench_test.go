package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/storetest"
)

// rssWord is the i-th word of the benchmark vocabulary (letters only).
func rssWord(i int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := []byte("tok")
	for n := i; ; n /= 26 {
		b = append(b, letters[n%26])
		if n < 26 {
			break
		}
	}
	return string(b)
}

// writeBigStore creates a store of n tokens at path, as a site's store
// after months of training.
func writeBigStore(tb testing.TB, path string, n int) {
	tb.Helper()
	st, err := classifier.OpenBolt(path, classifier.BoltOptions{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	r := rand.New(rand.NewPCG(1, 2))
	const batch = 100_000
	for i := 0; i < n; i += batch {
		recs := make([]classifier.Record, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, classifier.Record{Token: rssWord(j), Counts: classifier.Counts{
				Spam: uint32(r.IntN(20)), Ham: uint32(r.IntN(20) + 1), LastSeen: 20240101}})
		}
		if err := st.Add(context.Background(), classifier.Batch{Records: recs, Totals: classifier.Totals{Spam: 5000, Ham: 5000}}); err != nil {
			tb.Fatal(err)
		}
	}
	// Learned messages with their n-grams, and the model fitted on them,
	// which the daemon holds in memory too.
	storetest.AddNgramModel(tb, st, 2000)
}

// startChildConfig runs the test binary as a daemon (see TestMain) on the
// config that cfg returns for a milter listen address.
func startChildConfig(tb testing.TB, cfg func(addr string) string) *childDaemon {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path := filepath.Join(tb.TempDir(), "sluice.yml")
	if err := os.WriteFile(path, []byte(cfg(addr)), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), daemonEnv+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp4", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("child daemon not listening: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &childDaemon{cmd: cmd, addr: addr}
}

// BenchmarkPeakRSSBayes reports the memory of a daemon running the bayes
// filter on a store of one million tokens while it classifies 1000
// messages of ~5 KB, four sessions at a time. bbolt maps the store file
// into memory, so pages of the file that classification touches count in
// the resident size (file-MB): they are page cache the kernel can drop,
// unlike the heap (anon-MB). Run:
//
//	go test -run '^$' -bench PeakRSSBayes -benchtime 1x ./cmd/sluice
func BenchmarkPeakRSSBayes(b *testing.B) {
	const tokens = 1_000_000
	dir := b.TempDir()
	db := filepath.Join(dir, "bayes.db")
	writeBigStore(b, db, tokens)
	fi, err := os.Stat(db)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	msgs := make([]string, 1000)
	for i := range msgs {
		var m strings.Builder
		for m.Len() < 5000 {
			m.WriteString(rssWord(r.IntN(tokens)))
			if r.IntN(12) == 0 {
				m.WriteString(".\r\n")
			} else {
				m.WriteByte(' ')
			}
		}
		msgs[i] = m.String()
	}
	for i := 0; i < b.N; i++ {
		d := startChildConfig(b, func(addr string) string {
			return fmt.Sprintf(`listen:
  - address: inet:%s
metrics:
  listen: ""
log:
  level: warn
state_dir: %s
filters:
  - type: bayes
    options:
      spam: {action: tag}
      unsure: {action: tag}
`, addr, dir)
		})
		if err := sendOne(b, d.addr, strings.NewReader(msgs[0]), nil); err != nil {
			b.Fatal(err)
		}
		idle := d.memKB(b, "VmRSS")
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := w; j < len(msgs); j += 4 {
					if err := sendOne(b, d.addr, strings.NewReader(msgs[j]), nil); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		peak := d.memKB(b, "VmHWM")
		b.ReportMetric(float64(fi.Size())/(1<<20), "store-MB")
		b.ReportMetric(float64(idle)/1024, "idle-MB")
		b.ReportMetric(float64(peak)/1024, "peak-MB")
		b.ReportMetric(float64(d.memKB(b, "RssAnon"))/1024, "anon-MB")
		b.ReportMetric(float64(d.memKB(b, "RssFile"))/1024, "file-MB")
	}
}
