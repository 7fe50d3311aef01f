package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// notifier tells the service manager (systemd's Type=notify) how the
// daemon is doing: READY=1 once it serves, RELOADING=1 and READY=1 around
// a reload, STOPPING=1 when it stops. Without it, systemd would take the
// daemon for started as soon as it runs, before its milter socket exists,
// and an MTA ordered after it would meet no socket.
//
// The protocol is one datagram of newline-separated KEY=value lines to
// the unix socket named in $NOTIFY_SOCKET; it is written out here rather
// than taken from a library, being a few lines.
type notifier struct {
	addr   *net.UnixAddr // nil when not run under a service manager
	logger *slog.Logger

	mu     sync.Mutex
	failed bool // a send failed already: later failures log at debug only
}

// newNotifier reads $NOTIFY_SOCKET and removes it from the environment:
// the variable is meant for the main process only, and a program the
// daemon might start would otherwise report its own state as the
// daemon's (systemd rejects it by default, but with a warning).
func newNotifier(logger *slog.Logger) *notifier {
	n := &notifier{logger: logger}
	path, ok := os.LookupEnv("NOTIFY_SOCKET")
	if !ok {
		return n
	}
	os.Unsetenv("NOTIFY_SOCKET")
	// A path, or an abstract socket written with a leading '@', which
	// Go's net package turns into the leading NUL the kernel expects.
	if len(path) < 2 || (path[0] != '/' && path[0] != '@') {
		logger.Warn("NOTIFY_SOCKET is not a unix socket path; not notifying the service manager", "notify_socket", path)
		return n
	}
	n.addr = &net.UnixAddr{Name: path, Net: "unixgram"}
	return n
}

// send writes state, lines of KEY=value, as one datagram. A failure is
// logged, at warn the first time, and otherwise ignored: the daemon
// filters mail whether or not the service manager hears of it.
func (n *notifier) send(state string) {
	if n == nil || n.addr == nil {
		return
	}
	err := n.write(state)
	if err == nil {
		return
	}
	n.mu.Lock()
	first := !n.failed
	n.failed = true
	n.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	n.logger.Log(context.Background(), level, "cannot notify the service manager", "notify_socket", n.addr.Name, "err", err)
}

func (n *notifier) write(state string) error {
	// A new socket each time: notifications are a handful in the life of
	// the daemon, and a socket kept open would outlive a service
	// manager that re-executed itself.
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	// A service manager that does not read its socket (stuck, or a
	// supervisor that never drains it) fills its queue, and a write
	// would then block for ever: in the main loop, where signals are
	// handled, it would keep the daemon from reloading and stopping.
	c.SetWriteDeadline(time.Now().Add(notifyTimeout))
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// notifyTimeout bounds a notification's write: systemd reads at once.
const notifyTimeout = time.Second

// reloading tells the service manager that a reload began. MONOTONIC_USEC
// is the time it began on CLOCK_MONOTONIC, by which systemd (Type=
// notify-reload) tells this reload from an earlier one.
func (n *notifier) reloading() {
	state := "RELOADING=1\nSTATUS=reloading the configuration"
	if usec, ok := monotonicUsec(); ok {
		state += fmt.Sprintf("\nMONOTONIC_USEC=%d", usec)
	}
	n.send(state)
}
