package milter

import "syscall"

// quickAck has the kernel acknowledge what was read at once, rather than
// hold the ACK back for a reply to carry it (delayed ACK, up to 40 ms).
// Sendmail writes a macro packet, which gets no reply, and then the
// command in a second write that Nagle's algorithm holds until the first
// is acknowledged: over TCP every HELO, MAIL FROM and RCPT TO waited for
// the delayed ACK, about 45 ms each (measured with Sendmail 8.17 on
// loopback). Set after a read that ended such a packet, it sends the
// ACK the kernel was holding back at once. An error only loses the
// speed-up.
func quickAck(c syscall.RawConn) {
	c.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
