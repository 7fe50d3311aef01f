package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxProbes bounds the probes in flight at once.
const maxProbes = 8

// entry is a name every list of its kind has, or must not have: an
// address for IP lists, a name for domain lists.
type entry struct {
	v4, v6 netip.Addr
	domain string
}

// name returns the name under which zone z holds the entry.
func (e entry) name(z *zone) string {
	switch {
	case z.kind == domainList:
		return e.domain + "." + z.zone
	case z.v4:
		return reverseIP(e.v4) + "." + z.zone
	}
	return reverseIP(e.v6) + "." + z.zone
}

var (
	// testEntry is the entry every list must answer as listed (RFC 5782
	// section 5): 127.0.0.2 in IPv4 lists, ::FFFF:7F00:2 in IPv6 lists and
	// the name "test" in domain lists.
	testEntry = entry{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::ffff:127.0.0.2"), "test"}
	// notEntry is the entry no list may have (the same section):
	// 127.0.0.1, ::FFFF:7F00:1, "invalid". A list that answers it as
	// listed answers everything so: lists have been shut down that way,
	// on purpose, to make their users stop querying them, and a list
	// broken so rejects all mail.
	notEntry = entry{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::ffff:127.0.0.1"), "invalid"}
)

// probeName returns the name of a zone's test entry.
func probeName(z *zone) string { return testEntry.name(z) }

// notName returns the name of the entry a zone must not have.
func notName(z *zone) string { return notEntry.name(z) }

// probeLoop probes every list now and then every probe interval, until
// ctx ends.
func (f *Filter) probeLoop(ctx context.Context) {
	defer close(f.done)
	up := map[*zone]bool{}
	var mu sync.Mutex
	t := time.NewTicker(f.s.probeInterval)
	defer t.Stop()
	for {
		sem := make(chan struct{}, maxProbes)
		var wg sync.WaitGroup
		for _, z := range f.s.zones {
			if !z.probe {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				ok, err := f.probe(ctx, z)
				all, known := f.probeAll(ctx, z)
				if ctx.Err() != nil {
					return // closing: the failure is ours, not the list's
				}
				if known && all != z.listsAll.Swap(all) {
					if all {
						f.log.Warn("dnsbl: list answers every name as listed; its listings are ignored until it stops", "zone", z.name, "probe", z.hide(notName(z)))
					} else {
						// The answers it gave while broken are
						// no listings either, cached or not.
						f.cache.dropZone(z.zone)
						f.log.Info("dnsbl: list no longer answers every name as listed; its listings count again", "zone", z.name)
					}
				}
				if z.listsAll.Load() {
					ok, err = false, fmt.Errorf("%s: %s is listed: the list answers every name as listed", KindListsAll, notName(z))
				}
				f.obs.DNSBLHealth(f.name, z.name, ok)
				mu.Lock()
				was, seen := up[z]
				up[z] = ok
				mu.Unlock()
				switch {
				case !ok && (was || !seen):
					f.log.Warn("dnsbl: list fails its health probe; its lookups may all fail or miss", "zone", z.name, "probe", z.hide(probeName(z)), "err", z.hideErr(err))
				case ok && seen && !was:
					f.log.Info("dnsbl: list passes its health probe again", "zone", z.name)
				}
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe queries a list's test entry, past the cache, and reports whether
// the list answered it as listed.
func (f *Filter) probe(ctx context.Context, z *zone) (bool, error) {
	name := probeName(z)
	ans := f.res.query(ctx, name, dns.TypeA, f.s.maxTTL, 0)
	if ans.fail != "" {
		return false, fmt.Errorf("%s: %s", ans.fail, ans.err)
	}
	if ans.nx {
		return false, fmt.Errorf("%s is not listed: the list is empty, gone, or the zone name is wrong", name)
	}
	// An answer that is no listing starts with its kind too, as a failure
	// does above: it is the kind the errors metric counts for the list's
	// lookups, and what the log is searched for.
	for _, a := range ans.addrs {
		if isRefusal(a) {
			return false, fmt.Errorf("%s: %s answered %s: the list refuses our queries (public resolver or over quota?)", KindListRefused, name, a)
		}
		if !a.Is4() || !loopback8.Contains(a) {
			return false, fmt.Errorf("%s: %s answered %s, outside 127.0.0.0/8", KindBadAnswer, name, a)
		}
	}
	return true, nil
}

// probeAll queries the entry no list may have (notName), past the cache,
// and reports whether the list answered it as listed; known is false
// when the list gave no usable answer, which says nothing either way.
func (f *Filter) probeAll(ctx context.Context, z *zone) (all, known bool) {
	ans := f.res.query(ctx, notName(z), dns.TypeA, f.s.maxTTL, 0)
	if ans.fail != "" {
		return false, false
	}
	for _, a := range ans.addrs {
		if a.Is4() && loopback8.Contains(a) && !isRefusal(a) {
			return true, true
		}
	}
	return false, true
}
