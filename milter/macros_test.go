package milter_test

import (
	"fmt"
	"maps"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// The connection's macros are those of connect and those of the latest
// HELO: the MTA sends a new set at each HELO (EHLO again after STARTTLS),
// and that set replaces the one before, as in libmilter. A client saying
// HELO many times, or a peer sending different macros each time, does not
// make the connection hold more.
func TestHeloMacrosReplaceTheEarlierHelos(t *testing.T) {
	rec := &recorder{}
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(rec)})
	s := dial(t, addr)
	s.Macros(gomilter.CodeConn, "j", "mx.lab.example", "{client_addr}", "192.0.2.7")
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	const n = 50
	for i := range n {
		s.Macros(gomilter.CodeHelo, fmt.Sprintf("{x%d}", i), "v", "{tls_version}", fmt.Sprintf("TLSv1.%d", i))
		must(t)(s.Helo("client.example"))
	}
	if _, act := sendMessage(t, s, "a@example.org", "b@lab.example", nil, "x\r\n"); act.Code != gomilter.ActAccept {
		t.Fatalf("action %c, want accept", act.Code)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 1 {
		t.Fatalf("%d messages seen, want 1", len(rec.msgs))
	}
	want := map[string]string{
		"j": "mx.lab.example", "{client_addr}": "192.0.2.7",
		fmt.Sprintf("{x%d}", n-1): "v", "{tls_version}": fmt.Sprintf("TLSv1.%d", n-1),
	}
	if got := rec.msgs[0].Conn.Macros; !maps.Equal(got, want) {
		t.Errorf("connection macros %v, want %v", got, want)
	}
}
