package main

import (
	"net"
	"sync"

	"github.com/sluice-mail/sluice/milter"
)

// metricsMaxConns bounds the connections the metrics listener serves at
// once. Prometheus holds one per scraper and a health check one more;
// the time limits of the listener end each stalled one in time, but not
// many at once: a client that opens connections faster than they time
// out would use up the daemon's file descriptors, and with them the
// milter listeners' accepts, which stalls mail. Past the bound, new
// connections wait in the kernel's queue (costing the daemon nothing)
// until one ends.
var metricsMaxConns = 64

// limitListener is a net.Listener that accepts no more connections while
// limit of those it accepted are still open.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	closing chan struct{}
	once    sync.Once
}

func newLimitListener(ln net.Listener, limit int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, limit), closing: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. An error that
// concerns the moment or one connection only (see
// milter.TransientAcceptError) is returned as a temporary one, which
// net/http's Serve waits on and retries, logging it; the others, and
// only those, end Serve. net/http takes only running out of descriptors
// for temporary: an accept that failed for want of socket buffers, or
// for a connection that failed before it was taken, stopped the metrics
// port for good, and /healthz with it, while the daemon went on serving
// mail.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closing:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		if milter.TransientAcceptError(err) {
			return nil, temporaryAcceptError{err}
		}
		return nil, err
	}
	return &limitConn{Conn: c, free: func() { <-l.slots }}, nil
}

// temporaryAcceptError marks a failed accept as one to retry. net/http
// asks the error itself, with a type assertion rather than errors.As,
// whether it is a net.Error whose Temporary is true.
type temporaryAcceptError struct{ err error }

func (e temporaryAcceptError) Error() string   { return e.err.Error() }
func (e temporaryAcceptError) Unwrap() error   { return e.err }
func (e temporaryAcceptError) Timeout() bool   { return false }
func (e temporaryAcceptError) Temporary() bool { return true }

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closing) })
	return l.Listener.Close()
}

// limitConn frees its slot when closed, once however often Close is
// called (net/http may close a connection twice).
type limitConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
