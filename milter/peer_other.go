//go:build !linux

package milter

import "net"

// unixPeer names the process at the other end of a unix socket where the
// system tells it; here it does not.
func unixPeer(*net.UnixConn) string { return "" }
