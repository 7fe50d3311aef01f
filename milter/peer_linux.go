package milter

import (
	"net"
	"strconv"
	"syscall"
)

// unixPeer names the process at the other end of a unix socket by its
// credentials (SO_PEERCRED): a unix socket's peer has no address, and a
// log line about a connection sluice refused must say whose it was, so
// that an administrator can find the process that holds connections.
func unixPeer(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ""
	}
	return "pid=" + strconv.Itoa(int(cred.Pid)) + " uid=" + strconv.Itoa(int(cred.Uid))
}
