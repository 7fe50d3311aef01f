package dnsbl

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// writeResolvConf writes text to path and moves its modification time on
// by a second, so that the change shows whatever the file system's
// timestamp granularity.
func writeResolvConf(t *testing.T, path, text string) {
	t.Helper()
	var mtime time.Time
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime()
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, time.Time{}, mtime.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

// Without servers configured, the nameservers of resolv.conf are read
// again when the file changes, looked at every resolvConfInterval at
// most: a local resolver installed while sluice runs, as docs/dnsbl.md
// advises, is asked without a reload, as the C library and Go's own
// resolver ask it. They were read only at start and reload, so the old
// servers kept getting every query. The change is logged at info level
// and the cache, which holds the old servers' answers, starts afresh; a
// file that names no nameserver, or is gone, leaves the servers read
// before, with one warning.
func TestResolvConfChangeFollowed(t *testing.T) {
	old, local, port := serverPair(t)
	for _, srv := range []*dnsbltest.Server{old, local} {
		for _, n := range []string{"1", "2", "3", "4", "5", "6", "7"} {
			srv.AddA(n+".2.0.192.bl.test", 300, "127.0.0.2")
		}
	}

	path := filepath.Join(t.TempDir(), "resolv.conf")
	writeResolvConf(t, path, "nameserver 127.0.0.1\n")
	cfg := baseConfig(old, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = nil
	cfg.resolvConf, cfg.resolvPort = path, port
	e := newEnv(t, old, cfg, nil)

	lookup := func(ip string, want *dnsbltest.Server) {
		t.Helper()
		qname := reverseIPv4(ip) + ".bl.test"
		o, l := old.Count(qname, dns.TypeA), local.Count(qname, dns.TypeA)
		if v := e.check(t, filters.StageConnect, conn(ip)); v.Action != filters.Reject {
			t.Errorf("%s: %v, want reject", ip, v.Action)
		}
		o, l = old.Count(qname, dns.TypeA)-o, local.Count(qname, dns.TypeA)-l
		switch {
		case want == old && (o != 1 || l != 0):
			t.Errorf("%s: the old server got %d queries, the new one %d; want the old one asked", ip, o, l)
		case want == local && (o != 0 || l != 1):
			t.Errorf("%s: the old server got %d queries, the new one %d; want the new one asked", ip, o, l)
		}
	}

	lookup("192.0.2.1", old)
	writeResolvConf(t, path, "# a local cache\nnameserver 127.0.0.2\n")
	// Not looked at again before the interval is up.
	e.clock.Advance(resolvConfInterval - time.Second)
	lookup("192.0.2.2", old)
	e.clock.Advance(time.Second)
	lookup("192.0.2.3", local)
	if log := e.logText(); !strings.Contains(log, `level=INFO msg="dnsbl: the nameservers of resolv.conf changed; asking the new ones"`) ||
		!strings.Contains(log, "servers=127.0.0.2:"+port) {
		t.Errorf("the change is not logged at info level with the new servers:\n%s", log)
	}
	// The answer the old server gave is not served any more.
	lookup("192.0.2.1", local)

	// Lookups running while the file changes back, under -race.
	writeResolvConf(t, path, "nameserver 127.0.0.1\n")
	e.clock.Advance(resolvConfInterval)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			e.f.res.query(context.Background(), "4.2.0.192.bl.test", dns.TypeA, time.Hour, time.Minute)
		})
	}
	wg.Wait()
	lookup("192.0.2.5", old)

	// A file without nameserver, then none at all: the servers stay.
	writeResolvConf(t, path, "search example.org\n")
	e.clock.Advance(resolvConfInterval)
	lookup("192.0.2.6", old)
	e.clock.Advance(resolvConfInterval)
	lookup("192.0.2.7", old)
	if n := strings.Count(e.logText(), "level=WARN msg=\"dnsbl: resolv.conf changed but cannot be used"); n != 1 {
		t.Errorf("a file without nameserver warned %d times, want once:\n%s", n, e.logText())
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(resolvConfInterval)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.8")); v.Action != filters.Continue {
		t.Errorf("192.0.2.8 (listed nowhere): %v, want continue", v.Action)
	}
	if n := old.Count("8.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("resolv.conf gone: the old server got %d queries, want 1", n)
	}
}

// reverseIPv4 returns the labels of a dotted IPv4 address in reverse.
func reverseIPv4(ip string) string {
	p := strings.Split(ip, ".")
	return p[3] + "." + p[2] + "." + p[1] + "." + p[0]
}

// A query in flight to the old nameservers when resolv.conf changes ends
// after the cache was emptied for the new ones: its answer is handed to
// the lookups that waited for it, but not cached, or the old servers'
// answer (a listing, a refusal, a timeout of a resolver taken away) would
// be served for its TTL as if the new servers had given it.
func TestResolvConfChangeCachesNoAnswerOfTheOldServers(t *testing.T) {
	old, local, port := serverPair(t)
	// Only the old server lists 192.0.2.9; both list 192.0.2.3.
	old.AddA("9.2.0.192.bl.test", 300, "127.0.0.2")
	old.AddA("3.2.0.192.bl.test", 300, "127.0.0.2")
	local.AddA("3.2.0.192.bl.test", 300, "127.0.0.2")
	gate := make(chan struct{})
	old.Hold("9.2.0.192.bl.test", gate)

	path := filepath.Join(t.TempDir(), "resolv.conf")
	writeResolvConf(t, path, "nameserver 127.0.0.1\n")
	cfg := baseConfig(old, ZoneConfig{Zone: "bl.test"})
	cfg.Servers = nil
	cfg.Timeout = 5 * time.Second // the gate, not a timeout, ends the held query
	cfg.resolvConf, cfg.resolvPort = path, port
	e := newEnv(t, old, cfg, nil)

	held := make(chan filters.Verdict, 1)
	go func() {
		v, _ := e.f.Check(context.Background(), filters.StageConnect, conn("192.0.2.9"))
		held <- v
	}()
	waitFor(t, "the query to the old server", func() bool { return old.Count("9.2.0.192.bl.test", dns.TypeA) == 1 })

	// The file changes; the next lookup switches to the new server and
	// empties the cache, while the old server still holds its answer.
	writeResolvConf(t, path, "nameserver 127.0.0.2\n")
	e.clock.Advance(resolvConfInterval)
	if v := e.check(t, filters.StageConnect, conn("192.0.2.3")); v.Action != filters.Reject {
		t.Fatalf("192.0.2.3: %v, want reject", v.Action)
	}
	if n := local.Count("3.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Fatalf("the new server got %d queries for 192.0.2.3, want 1", n)
	}
	close(gate)
	if v := <-held; v.Action != filters.Reject {
		t.Errorf("the lookup that waited for the old server: %v, want its reject", v.Action)
	}

	// The new server does not list 192.0.2.9, and is asked.
	if v := e.check(t, filters.StageConnect, conn("192.0.2.9")); v.Action != filters.Continue {
		t.Errorf("192.0.2.9 after the change: %v, want continue (the old server's listing was cached)", v.Action)
	}
	if n := local.Count("9.2.0.192.bl.test", dns.TypeA); n != 1 {
		t.Errorf("the new server got %d queries for 192.0.2.9, want 1", n)
	}
}

// serverPair starts two DNS servers on one port, on 127.0.0.1 (the old
// nameserver of the tests) and 127.0.0.2 (the local resolver installed
// meanwhile), and returns them with the port: resolv.conf names no port,
// so the filter asks both on the same one.
func serverPair(t *testing.T) (old, local *dnsbltest.Server, port string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on loopback: %v", err)
	}
	pc.Close()
	old, local = dnsbltest.StartPair(t, "127.0.0.1", "127.0.0.2")
	_, port, err = net.SplitHostPort(old.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return old, local, port
}

// The nameservers of resolv.conf are read as the C library reads them: of
// those that are IP addresses, the first three (MAXNS, resolv.conf(5);
// Go's own resolver takes three too). Every one was taken, so a file that
// lists more, as NetworkManager writes one with a note that "the libc
// resolver may not support more than 3 nameservers", had sluice ask
// servers no other program on the host asks: in turn with "options
// rotate", and first of all once the first three were passed over as
// dead. What follows an address on its line, the options sluice does not
// use (timeout, attempts, ndots) and comment lines change nothing, and an
// address with a zone (fe80::1%eth0) is asked through its interface.
func TestReadResolvConfAsTheCLibrary(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       string
		inOrder    bool
	}{
		{
			"more than three",
			"# NOTE: the libc resolver may not support more than 3 nameservers.\n" +
				"nameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 8.8.8.8\nnameserver 1.1.1.1\n",
			"127.0.0.53:53 192.0.2.1:53 192.0.2.2:53", true,
		},
		{
			"three that are addresses",
			"nameserver dns.example.org\nnameserver 127.0.0.53\nnameserver 127.0.0.1:5353\nnameserver ::1\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n",
			"127.0.0.53:53 [::1]:53 192.0.2.1:53", true,
		},
		{
			"options and comments",
			"; a comment\nnameserver 127.0.0.53 # the local cache\noptions timeout:1 attempts:5 ndots:3 rotate\nsearch example.org\nnameserver 192.0.2.1\t; the next\n",
			"127.0.0.53:53 192.0.2.1:53", false,
		},
		{
			"scoped",
			"nameserver fe80::1%eth0\nnameserver 127.0.0.53\n",
			"[fe80::1%eth0]:53 127.0.0.53:53", true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "resolv.conf")
			writeResolvConf(t, path, tc.conf)
			set, err := readResolvConf(path, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(set.servers, " "); got != tc.want || set.inOrder != tc.inOrder {
				t.Errorf("servers %s, in order %v; want %s, %v", got, set.inOrder, tc.want, tc.inOrder)
			}
		})
	}
}
