package dnsbl

import (
	"errors"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// maxIdleConns bounds the idle TCP connections kept per server. A
// connection is in use by one query at a time, so the connections in
// use are bounded by max_in_flight (and the probes); those kept idle
// beyond it are few, as a resolver serves a limited number of TCP
// clients at once (Unbound's incoming-num-tcp is 10 per thread), and a
// connection held idle takes one of them.
const maxIdleConns = 4

// tcpIdleFor is how long an idle TCP connection is kept. RFC 7766
// section 6.2.3 has servers close idle connections after some seconds
// (BIND and Unbound after 30 s by default); a connection the server
// closed first costs the query that meets it one failed write or read,
// after which the query goes over a new connection (see
// resolver.exchangeTCP).
const tcpIdleFor = 5 * time.Second

// tcpConns keeps TCP connections to servers for reuse (RFC 7766 section
// 6). Without it every query over TCP opened a connection and closed it
// once answered, and each closed connection holds a port in TIME_WAIT
// for a minute: a busy site asking one resolver over TCP ran out of
// ephemeral ports at a few hundred queries a second, after which every
// lookup failed. A connection carries one query at a time, and is
// kept only after a clean answer, so what it reads next is the answer
// to its next query. It is safe for concurrent use.
type tcpConns struct {
	idleFor time.Duration
	mu      sync.Mutex
	// idle holds the idle connections by server address, the most
	// recently used last.
	idle   map[string][]*idleConn
	closed bool
}

// idleConn is a connection kept idle, and the timer that closes it once
// it has been idle for idleFor.
type idleConn struct {
	co    *dns.Conn
	timer *time.Timer
}

func newTCPConns(idleFor time.Duration) *tcpConns {
	return &tcpConns{idleFor: idleFor, idle: map[string][]*idleConn{}}
}

// get returns the connection to server used last, or nil when none is
// idle. The most recent is taken so that, when queries become fewer, the
// others stay idle long enough to be closed.
func (p *tcpConns) get(server string) *dns.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[server]
	if len(conns) == 0 {
		return nil
	}
	c := conns[len(conns)-1]
	conns[len(conns)-1] = nil
	p.setIdle(server, conns[:len(conns)-1])
	c.timer.Stop()
	return c.co
}

// put keeps co, a connection to server that has just carried a query
// and its answer, for the next query to server; it closes it when
// maxIdleConns are kept already or p is closed.
func (p *tcpConns) put(server string, co *dns.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[server]) >= maxIdleConns {
		co.Close()
		return
	}
	c := &idleConn{co: co}
	// The timer holds no goroutine until it fires; expire does nothing
	// to a connection taken meanwhile (see get).
	c.timer = time.AfterFunc(p.idleFor, func() { p.expire(server, c) })
	p.idle[server] = append(p.idle[server], c)
}

// expire closes c, idle for idleFor, unless it was taken or closed
// meanwhile.
func (p *tcpConns) expire(server string, c *idleConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	conns := p.idle[server]
	for i, x := range conns {
		if x == c {
			c.co.Close()
			p.setIdle(server, append(conns[:i], conns[i+1:]...))
			return
		}
	}
}

// drop closes the idle connections to server: one of them was found
// closed by the server, which most likely closed those idle as long or
// longer too.
func (p *tcpConns) drop(server string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle[server] {
		c.timer.Stop()
		c.co.Close()
	}
	delete(p.idle, server)
}

// close closes every idle connection, and those put after.
func (p *tcpConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for server, conns := range p.idle {
		for _, c := range conns {
			c.timer.Stop()
			c.co.Close()
		}
		delete(p.idle, server)
	}
}

// setIdle stores conns as server's idle connections; the map keeps no
// entry for a server with none, so that servers no longer asked (a
// changed resolv.conf) leave nothing behind.
func (p *tcpConns) setIdle(server string, conns []*idleConn) {
	if len(conns) == 0 {
		delete(p.idle, server)
		return
	}
	p.idle[server] = conns
}

// closedByServer reports whether err, from a query on a connection kept
// idle, says the server had closed the connection: the end of the stream
// where the answer's length should be, a reset, or a write to a closed
// connection. The query did not reach it, or was not answered, and may
// be sent again on a new connection.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}
