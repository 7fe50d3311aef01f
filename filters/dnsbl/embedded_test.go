package dnsbl

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// A client whose IPv6 address carries an IPv4 one is looked up by that
// IPv4 address in the lists that hold IPv4 addresses (family ipv4 and
// any), and by its IPv6 address in those that hold IPv6 ones (ipv6 and
// any): a listed IPv4 host was missed when it came over 6to4 or through
// a translator. Addresses next to those prefixes, and other IPv6
// clients, are looked up as before, by their IPv6 address only.
func TestEmbeddedIPv4Client(t *testing.T) {
	const v4name = "1.2.0.192" // 192.0.2.1, listed in v4.test
	for _, tc := range []struct {
		name, ip string
		embeds   bool // carries 192.0.2.1
	}{
		{"6to4", "2002:c000:201::1", true},
		{"6to4 of a host behind the router", "2002:c000:201:7::25", true},
		{"well-known translation prefix", "64:ff9b::c000:201", true},
		{"well-known translation prefix, dotted", "64:ff9b::192.0.2.1", true},
		{"next to 6to4", "2003:c000:201::1", false},
		{"local-use translation prefix (RFC 8215)", "64:ff9b:1::c000:201", false},
		{"plain IPv6", "2001:db8::c000:201", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnsbltest.Start(t)
			srv.AddA(v4name+".v4.test", 300, "127.0.0.2")
			e := newEnv(t, srv, baseConfig(srv,
				ZoneConfig{Zone: "v4.test", Family: "ipv4"},
				ZoneConfig{Zone: "any.test"},
				ZoneConfig{Zone: "v6.test", Family: "ipv6"},
			), nil)
			v := e.check(t, filters.StageConnect, conn(tc.ip))

			v6name := reverseIP(netip.MustParseAddr(tc.ip))
			want := []string{v6name + ".any.test", v6name + ".v6.test"}
			if tc.embeds {
				want = append(want, v4name+".v4.test", v4name+".any.test")
			}
			var got []string
			for _, q := range srv.Queries() {
				got = append(got, q.Name)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("queries %v, want %v", got, want)
			}

			if !tc.embeds {
				if v.Action != filters.Continue {
					t.Errorf("verdict %+v, want continue", v)
				}
				return
			}
			if v.Action != filters.Reject {
				t.Fatalf("verdict %+v, want reject", v)
			}
			if want := "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using v4.test (127.0.0.2)"; v.Reply == nil || v.Reply.String() != want {
				t.Errorf("reply %v, want %q", v.Reply, want)
			}
			if !strings.Contains(v.Reason, "client 192.0.2.1 (of "+netip.MustParseAddr(tc.ip).String()+") in v4.test") {
				t.Errorf("reason %q does not name the client's own address", v.Reason)
			}
		})
	}
}

// A tag list that holds both forms of such a client and lists both
// counts the client once: one field, its score once. The IPv4 address
// stands for the client.
func TestEmbeddedIPv4ClientTaggedOnce(t *testing.T) {
	srv := dnsbltest.Start(t)
	client := netip.MustParseAddr("2002:c000:201::1")
	srv.AddA("1.2.0.192.any.test", 300, "127.0.0.2")
	srv.AddA(reverseIP(client)+".any.test", 300, "127.0.0.3")
	e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: "any.test", Action: "tag", Score: ptr(2.0)}), nil)
	m := message(client.String(), "mx.example", "bob@fine.example", "")
	e.check(t, filters.StageConnect, m)
	v := e.check(t, filters.StageHeaders, m)
	var tags []string
	score := ""
	for _, ed := range v.Edits {
		switch {
		case ed.Kind == filters.AddHeader && ed.Name == DefaultHeader:
			tags = append(tags, ed.Value)
		case ed.Kind == filters.AddHeader && ed.Name == DefaultScoreHeader:
			score = ed.Value
		}
	}
	if len(tags) != 1 || !strings.Contains(tags[0], "client=192.0.2.1;") {
		t.Errorf("tags %q, want one, for client 192.0.2.1", tags)
	}
	if score != "2" {
		t.Errorf("score %q, want 2", score)
	}
	if n := len(srv.Queries()); n != 2 {
		t.Errorf("%d queries, want 2 (each form once): %v", n, srv.Queries())
	}
}

// Skipped clients are judged by the IPv4 address their IPv6 one carries
// too: a trusted IPv4 network trusts its 6to4 site and its clients
// through a translator, and a private address there is no client a
// public list can know. An IPv6 client whose bits only look like a
// trusted address is still checked.
func TestEmbeddedIPv4ClientSkipped(t *testing.T) {
	for _, tc := range []struct {
		ip          string
		skipPrivate bool
		checked     bool
	}{
		{"2002:c000:201::1", true, false},   // 192.0.2.1, trusted
		{"64:ff9b::c000:201", true, false},  // 192.0.2.1, trusted
		{"2002:a01:203::1", true, false},    // 10.1.2.3, private
		{"64:ff9b::a01:203", true, false},   // 10.1.2.3, private
		{"2002:a01:203::1", false, true},    // private, but not skipped
		{"2002:c633:6401::1", true, true},   // 198.51.100.1, not trusted
		{"2001:db8::c000:201", true, true},  // plain IPv6
		{"64:ff9b:1::c000:201", true, true}, // not the well-known prefix
	} {
		srv := dnsbltest.Start(t)
		cfg := baseConfig(srv, ZoneConfig{Zone: "bl.test"})
		cfg.TrustedNetworks = []string{"192.0.2.0/24"}
		cfg.SkipPrivate = ptr(tc.skipPrivate)
		e := newEnv(t, srv, cfg, nil)
		if v := e.check(t, filters.StageConnect, conn(tc.ip)); v.Action != filters.Continue {
			t.Errorf("%s: verdict %+v, want continue", tc.ip, v)
		}
		if checked := len(srv.Queries()) > 0; checked != tc.checked {
			t.Errorf("%s (skip_private %v): checked %v, want %v; queries %v", tc.ip, tc.skipPrivate, checked, tc.checked, srv.Queries())
		}
	}
}

func TestEmbeddedIPv4(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"2002:c000:201::1", "192.0.2.1"},
		{"2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "255.255.255.255"},
		{"2002::", "0.0.0.0"},
		{"64:ff9b::c000:201", "192.0.2.1"},
		{"64:ff9b::", "0.0.0.0"},
		{"64:ff9b::1:c000:201", ""}, // outside the /96
		{"2001:db8::1", ""},
		{"::ffff:192.0.2.1", ""}, // mapped: unmapped elsewhere
		{"192.0.2.1", ""},
		{"fe80::2002:c000:201%eth0", ""},
	} {
		got, ok := embeddedIPv4(netip.MustParseAddr(tc.in))
		if ok != (tc.want != "") || ok && got.String() != tc.want {
			t.Errorf("embeddedIPv4(%s) = %v, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}
