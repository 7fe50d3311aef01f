package dnsbl

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// A TXT text that names the query shows the list's name in place of the
// zone, so that a refused client does not get the access key of a
// Spamhaus DQS zone (see TestDQSKeyNotShown). The zone was replaced only
// as the text wrote it in lower case and whole: a text that wrote it in
// capitals (DNS names are case-insensitive, RFC 4343), or was cut to a
// reason's length inside the zone, gave the client the key, or most of
// it.
func TestDQSKeyNotShownInTXTReasons(t *testing.T) {
	zen := dqsKey + ".zen.dq.spamhaus.net"
	pad := "Listed, see https://bl.example/q?" // before the query's name
	pad += strings.Repeat("x", maxReason-len(pad)-len("1.2.0.192.")-10)
	for _, tc := range []struct {
		what, text, want string
	}{
		{"in capitals", "1.2.0.192." + strings.ToUpper(zen) + " is in the SBL", "1.2.0.192.zen.dq.spamhaus.net is in the SBL"},
		// The zone starts 10 bytes before the cut, within the key.
		{"cut inside the zone", pad + "1.2.0.192." + zen + " is in the SBL", pad + "1.2.0.192."},
	} {
		t.Run(tc.what, func(t *testing.T) {
			srv := dnsbltest.Start(t)
			srv.AddA("1.2.0.192."+zen, 300, "127.0.0.2")
			srv.AddTXT("1.2.0.192."+zen, 300, tc.text)
			e := newEnv(t, srv, baseConfig(srv, ZoneConfig{Zone: zen, TXT: true}), nil)
			v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
			if v.Action != filters.Reject || v.Reply == nil {
				t.Fatalf("verdict %+v, want reject with a reply", v)
			}
			if reply := strings.ToLower(v.Reply.String()); strings.Contains(reply, dqsKey[:6]) {
				t.Errorf("the reply shows the access key: %s", v.Reply)
			}
			want := "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.dq.spamhaus.net (" + tc.want + ")"
			if v.Reply.String() != want {
				t.Errorf("reply %q, want %q", v.Reply, want)
			}
		})
	}
}
