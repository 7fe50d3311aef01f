package milter_test

import (
	"net/netip"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// Sendmail writes the address of an IPv6 client in SMFIC_CONNECT with
// its "IPv6:" label (anynet_ntop; libmilter strips it again), which
// go-milter cannot parse. The filters must still see the address: a
// DNSBL lookup or an access rule of the client would be skipped without
// it.
func TestConnectAddressWithIPv6Label(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family gomilter.ProtoFamily
		addr   string
		want   string
	}{
		{"sendmail ipv6", gomilter.FamilyInet6, "IPv6:2001:db8::1", "2001:db8::1"},
		{"lower case label", gomilter.FamilyInet6, "ipv6:2001:db8::2", "2001:db8::2"},
		{"postfix ipv6", gomilter.FamilyInet6, "2001:db8::3", "2001:db8::3"},
		{"ipv4", gomilter.FamilyInet, "192.0.2.4", "192.0.2.4"},
		{"label on ipv4", gomilter.FamilyInet, "IPv6:192.0.2.5", ""},
		{"garbage", gomilter.FamilyInet6, "IPv6:not an address", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec)})
			s := dial(t, addr)
			must(t)(s.Conn("[IPv6:2001:db8::1]", tc.family, 25, tc.addr))
			sendMessage(t, s, "a@example.org", "b@example.org", nil, "x\r\n")
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.msgs) != 1 {
				t.Fatalf("filter ran %d times, want once", len(rec.msgs))
			}
			got := rec.msgs[0].Conn.Addr
			var want netip.Addr
			if tc.want != "" {
				want = netip.MustParseAddr(tc.want)
			}
			if got != want {
				t.Errorf("client address %v, want %v", got, want)
			}
		})
	}
}
