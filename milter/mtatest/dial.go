package mtatest

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// DialSMTPFrom is DialSMTP from a chosen loopback source address, e.g.
// "127.0.0.2", so that tests can play clients with different addresses:
// Linux routes all of 127.0.0.0/8 to the loopback interface, so any
// address in it can be bound without configuration. The MTA (and the
// milter) see the connection as coming from source.
func DialSMTPFrom(t testing.TB, addr, source string) *Client {
	t.Helper()
	ip, err := netip.ParseAddr(source)
	if err != nil || !ip.IsLoopback() {
		t.Fatalf("DialSMTPFrom: source %q must be a loopback address", source)
	}
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip.AsSlice()}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("smtp dial %s from %s: %v", addr, source, err)
	}
	c := &Client{t: t, conn: conn, r: newLineReader(conn), Timeout: DefaultSMTPTimeout}
	t.Cleanup(c.Close)
	g, err := c.ReadReply()
	if err != nil {
		t.Fatalf("smtp %s from %s: greeting: %v", addr, source, err)
	}
	c.Greeting = g
	return c
}
