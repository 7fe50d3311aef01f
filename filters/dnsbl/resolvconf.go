package dnsbl

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// resolvConfInterval is how often, at most, the resolv.conf the servers
// came from is looked at for a change. The C library (glibc 2.26 on)
// looks at every lookup and Go's own resolver every 5 seconds, so a
// resolver installed while sluice runs (a local cache, as the docs
// advise) is asked without a reload, as every other program asks it.
const resolvConfInterval = 5 * time.Second

// resolvConfWatch reads the resolv.conf that gave a resolver its servers
// again when the file changes, and makes the resolver ask the new ones.
type resolvConfWatch struct {
	path string
	port string // see readResolvConf
	log  *slog.Logger
	now  func() time.Time
	// changed, if set, is told the new servers once the resolver asks
	// them.
	changed func(set *serverSet)

	// next is when the next look at the file is due, in Unix
	// nanoseconds: read without a lock, so that lookups in between
	// cost nothing.
	next atomic.Int64
	// mu is held by the look in progress; seen and failure are its.
	mu sync.Mutex
	// seen is the file as last read (nil before), to tell a change by
	// its identity, time and size without reading it.
	seen os.FileInfo
	// failure is the last reason the file could not be used, logged
	// once rather than at every look.
	failure string
}

func newResolvConfWatch(path, port string, log *slog.Logger, now func() time.Time) *resolvConfWatch {
	if now == nil {
		now = time.Now
	}
	w := &resolvConfWatch{path: path, port: port, log: log, now: now}
	// The servers were read just now; the first look, after one
	// interval, reads the file once more to have its identity.
	w.next.Store(now().Add(resolvConfInterval).UnixNano())
	return w
}

// check makes r ask the servers of the file as it is now, when a look is
// due and the file has changed since last read. A lookup that finds
// another one looking goes on with the servers as they are rather than
// wait for it. A file that cannot be read or names no usable nameserver
// leaves r with its servers: a half-written file, or one a package
// upgrade emptied, must not stop the lookups.
func (w *resolvConfWatch) check(r *resolver) {
	now := w.now()
	if now.UnixNano() < w.next.Load() {
		return
	}
	if !w.mu.TryLock() {
		return
	}
	defer w.mu.Unlock()
	if now.UnixNano() < w.next.Load() {
		return
	}
	w.next.Store(now.Add(resolvConfInterval).UnixNano())

	// Stat before reading: what is read is then at least as new as
	// what is remembered, so a change made in between is not missed.
	fi, err := os.Stat(w.path)
	if err != nil {
		w.fail(err)
		return
	}
	if w.seen != nil && os.SameFile(w.seen, fi) && fi.ModTime().Equal(w.seen.ModTime()) && fi.Size() == w.seen.Size() {
		return
	}
	set, err := readResolvConf(w.path, w.port)
	if err != nil {
		w.fail(err)
		return
	}
	w.seen = fi
	w.failure = ""
	old := r.set.Load()
	if slices.Equal(old.servers, set.servers) && old.inOrder == set.inOrder && old.tcp == set.tcp {
		return
	}
	r.use(set)
	w.log.Info("dnsbl: the nameservers of resolv.conf changed; asking the new ones", "file", w.path,
		"servers", strings.Join(set.servers, " "), "in_order", set.inOrder, "use_vc", set.tcp, "was", strings.Join(old.servers, " "))
	if w.changed != nil {
		w.changed(&set)
	}
}

// fail logs why the file cannot be used, once per reason.
func (w *resolvConfWatch) fail(err error) {
	if msg := err.Error(); msg != w.failure {
		w.failure = msg
		w.log.Warn("dnsbl: resolv.conf changed but cannot be used; asking the nameservers read before", "file", w.path, "err", err)
	}
}

// maxNameservers is how many nameservers of a resolv.conf the C library
// asks: MAXNS, resolv.conf(5).
const maxNameservers = 3

// readResolvConf returns the nameservers of the resolv.conf file at path
// (the first maxNameservers that are IP addresses), and whether they are
// asked in the order listed. They are asked on port 53, or on port if it
// is not "".
func readResolvConf(path, port string) (serverSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return serverSet{}, fmt.Errorf("reading %s: %w", path, err)
	}
	cc, err := dns.ClientConfigFromReader(bytes.NewReader(b))
	if err != nil {
		return serverSet{}, fmt.Errorf("reading %s: %w", path, err)
	}
	// resolv.conf(5) gives each nameserver as an IP address, and the C
	// library passes over one that is not (a host name, an address with
	// a port); taken as is, it would make every lookup fail, or need DNS
	// to find the resolver.
	if port == "" {
		port = cc.Port
	}
	var list, bad []string
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			bad = append(bad, strconv.Quote(s))
			continue
		}
		list = append(list, netJoin(a.String(), port))
		if len(list) == maxNameservers {
			// The C library asks no more (nor does Go's resolver):
			// those after are servers no other program on the host
			// asks, and a file that lists them says they may not be
			// (NetworkManager writes such a note).
			break
		}
	}
	if len(list) == 0 && len(bad) > 0 {
		return serverSet{}, fmt.Errorf("%s names no nameserver by IP address (%s)", path, strings.Join(bad, ", "))
	}
	if len(list) == 0 {
		return serverSet{}, fmt.Errorf("%s names no nameserver", path)
	}
	// resolv.conf(5): the nameservers are asked in the order listed,
	// unless "options rotate"; a later one is often a fallback that the
	// lists answer differently.
	rotate, useVC := resolvOptions(b)
	return serverSet{servers: list, inOrder: !rotate, tcp: useVC}, nil
}

// resolvOptions reads the options of the resolv.conf text b that change
// how the servers are asked. rotate: "options rotate" makes the C library
// spread queries over its nameservers instead of asking them in the order
// listed. useVC: "options use-vc" makes it send every query over TCP, for
// a resolver that only TCP reaches (Go's resolver takes "usevc" and "tcp"
// for it too, and so does sluice).
func resolvOptions(b []byte) (rotate, useVC bool) {
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "options" {
			continue
		}
		for _, o := range f[1:] {
			switch o {
			case "rotate":
				rotate = true
			case "use-vc", "usevc", "tcp":
				useVC = true
			}
		}
	}
	return rotate, useVC
}
