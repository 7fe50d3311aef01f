//go:build unix && !aix

package milter

import "syscall"

// peerClosed reports whether the peer of a TCP connection has closed its
// end: a FIN arrived and nothing it sent before is left to read. It looks
// with a non-blocking MSG_PEEK recv, which neither takes bytes from the
// stream go-milter reads nor waits: 0 bytes is the end of the stream, a
// byte means the peer is still talking, EAGAIN that it is quiet. On any
// other error it reports false and lets the write find out, as a write
// after a reset fails by itself.
//
// A peer that shut down only its sending side (shutdown(SHUT_WR)) reads
// as closed too. The MTAs do not do that while a reply is due: when their
// milter timeout runs out, Postfix and Sendmail close the connection
// outright, with no QUIT before it (observed with Postfix 3.7 and
// Sendmail 8.17).
func peerClosed(c syscall.RawConn) bool {
	var n int
	var rerr error
	var b [1]byte
	err := c.Control(func(fd uintptr) {
		n, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	})
	return err == nil && rerr == nil && n == 0
}
