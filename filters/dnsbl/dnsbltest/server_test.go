package dnsbltest

import (
	"net"
	"testing"
)

// A port free on the first address may be taken on the second, by any
// program binding it there. StartPair then tries another port rather
// than failing the test that needs the two servers.
func TestStartPairPortTakenOnSecondAddress(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on loopback: %v", err)
	}
	defer taken.Close()
	_, port, err := net.SplitHostPort(taken.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	probe, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Skipf("port %s is not free on 127.0.0.1 either: %v", port, err)
	}
	probe.Close()
	picks := []string{port}
	pick := func() string {
		if len(picks) > 0 {
			p := picks[0]
			picks = picks[1:]
			return p
		}
		return "0"
	}
	a, b := startPair(t, "127.0.0.1", "127.0.0.2", pick)
	_, pa, _ := net.SplitHostPort(a.Addr)
	_, pb, _ := net.SplitHostPort(b.Addr)
	if pa != pb || pa == port {
		t.Fatalf("servers on %s and %s, want one port other than the taken %s", a.Addr, b.Addr, port)
	}
	if a.Addr != net.JoinHostPort("127.0.0.1", pa) || b.Addr != net.JoinHostPort("127.0.0.2", pa) {
		t.Fatalf("servers on %s and %s, want 127.0.0.1 and 127.0.0.2", a.Addr, b.Addr)
	}
}
