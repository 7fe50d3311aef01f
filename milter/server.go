// Package milter is sluice's protocol edge: it speaks the milter protocol to
// Postfix and Sendmail with github.com/emersion/go-milter v0.5.0, builds the
// one message model the filters see (filters.Message), runs the pipeline at
// each stage and turns its verdicts back into milter replies. No other
// package of sluice knows the protocol.
//
// go-milter v0.5.0 has traps, seen with Postfix 3.7 and Sendmail 8.17:
//
//   - It replaces its macro map at every macro packet and hands that map to
//     every callback until the next one, whatever stage it was for; Postfix
//     sends an empty one at HELO. The session keeps each stage's macros
//     itself, and takes a callback's only from a packet for its stage
//     (see conn.macrosFor).
//   - After a reply whose Continue() is false it builds a new handler, losing
//     connection and HELO data for the next message of the same SMTP
//     session. Every reply sluice sends reports Continue() true (the bytes
//     on the wire are the same), and the handler factory returns the same
//     session anyway; the session resets per-message state itself at MAIL
//     FROM, at end of message and on abort.
//   - It speaks protocol version 2 and handles no SMFIC_UNKNOWN; sluice
//     asks the MTA not to send unknown commands or DATA.
//   - It hands handlers the MAIL/RCPT address only; the ESMTP parameters are
//     read off the wire by a thin connection wrapper (see conn).
package milter

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
)

// Config is what a session needs from the daemon's configuration. A
// connection keeps the Config in force when it arrived for its whole life,
// so a reload never changes the rules in the middle of a message.
type Config struct {
	// Pipeline holds the filters; it must not be nil.
	Pipeline *filters.Pipeline
	// BodyMemoryLimit is how much of a body is kept in memory before the
	// rest goes to a temporary file.
	BodyMemoryLimit int64
	// TempDir holds spilled bodies; "" means the system default.
	TempDir string
	// OnFailure applies when sluice itself fails on a message (a panic in
	// the session, not in a filter).
	OnFailure filters.FailurePolicy
	// IOTimeout ends a session when the MTA sends nothing, or takes no
	// reply, for that long; 0 means DefaultIOTimeout.
	IOTimeout time.Duration
	// NegotiationTimeout is how long a new connection has to deliver its
	// first packet (the MTA's option negotiation) whole; 0 means
	// DefaultNegotiationTimeout.
	NegotiationTimeout time.Duration
	// MaxSessions caps the connections open at once; one arriving beyond
	// it is closed at once, and the MTA applies its milter default action
	// to that SMTP session's mail. 0 means no cap.
	MaxSessions int
}

// DefaultIOTimeout is libmilter's default timeout (smfi_settimeout): longer
// than any pause an MTA makes between two packets of a live session
// (Postfix's smtpd_timeout, Sendmail's command timeouts), so only a peer
// that is stuck is cut off.
const DefaultIOTimeout = 7210 * time.Second

// DefaultNegotiationTimeout bounds the wait for a new connection's first
// packet. libmilter allows it the full IOTimeout, so a local process that
// connects and says nothing holds a descriptor, a goroutine and a config
// for two hours. Both MTAs write the option negotiation packet as soon as
// connect(2) returns, which is before sluice accepts the connection, so a
// full accept backlog does not eat into this time; and Postfix gives up
// itself when connecting and negotiating take longer than
// milter_connect_timeout (30s by default), Sendmail when the write takes
// longer than its S= timeout (10s by default). A few seconds would do for
// a healthy MTA; 30s leaves a host stalled by swapping or a load spike
// the margin the MTAs themselves allow, and a shorter wait would not stop
// a deliberate hog anyway, which can negotiate and then idle (MaxSessions
// is the bound for that).
const DefaultNegotiationTimeout = 30 * time.Second

// Observer is told about sessions and messages, e.g. to count them in
// metrics. It must be safe for concurrent use.
type Observer interface {
	SessionOpened()
	SessionClosed()
	MessageDone(Summary)
	// SessionPanic counts a panic recovered at the session boundary.
	SessionPanic()
	// ConnectionDropped counts a connection closed before it could be
	// used: reason is DropMaxSessions or DropNoNegotiation.
	ConnectionDropped(reason string)
}

// Reasons of Observer.ConnectionDropped.
const (
	// DropMaxSessions: MaxSessions connections were open; the connection
	// was closed as it was accepted, and no session began.
	DropMaxSessions = "max_connections"
	// DropNoNegotiation: the first packet did not arrive within
	// NegotiationTimeout.
	DropNoNegotiation = "no_negotiation"
)

type nopObserver struct{}

func (nopObserver) SessionOpened()      {}
func (nopObserver) SessionClosed()      {}
func (nopObserver) MessageDone(Summary) {}
func (nopObserver) SessionPanic()       {}

func (nopObserver) ConnectionDropped(string) {}

// Server accepts milter connections from MTAs.
type Server struct {
	logger   *slog.Logger
	observer Observer
	current  atomic.Pointer[configRef]

	// ctx is cancelled, with ErrStopping, when Shutdown gives up
	// waiting; sessions pass it to filters so that their work stops too.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	draining  bool
	// full is set while connections are refused for MaxSessions, so that
	// a flood of them logs one line rather than one each.
	full bool
	wg   sync.WaitGroup

	// closing holds the pipelines being closed, each with a channel
	// closed when its Close returns (see closePipeline).
	closeMu sync.Mutex
	closing map[*filters.Pipeline]chan struct{}

	// releaseHook, when set by a test before Serve, runs as a session
	// releases a message, just before its body is closed.
	releaseHook func()
}

// NewServer returns a server using cfg for new connections. logger and
// observer may be nil.
func NewServer(cfg Config, logger *slog.Logger, observer Observer) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if observer == nil {
		observer = nopObserver{}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Server{
		logger:    logger,
		observer:  observer,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		closing:   make(map[*filters.Pipeline]chan struct{}),
	}
	s.current.Store(newConfigRef(cfg, s))
	return s
}

// SetConfig makes cfg the config of connections that arrive from now on.
// Connections already open keep theirs; the old pipeline is retired at
// once (see filters.Retirer), so that only cfg's filters do their own
// work from now on, and closed when the last of them ends.
func (s *Server) SetConfig(cfg Config) {
	old := s.current.Swap(newConfigRef(cfg, s))
	old.cfg.Pipeline.Retire()
	old.release()
}

// closePipeline closes p in a goroutine of its own. A filter's Close may
// hang (a store's file on a disk that stopped answering): run where the
// last reference went, it would hold a reload, the end of a session, or
// Shutdown past its deadline and a second stop signal. Shutdown waits
// for the closes still running until its context ends (ShutdownGrace
// until its closing context does).
func (s *Server) closePipeline(p *filters.Pipeline) {
	done := make(chan struct{})
	s.closeMu.Lock()
	s.closing[p] = done
	s.closeMu.Unlock()
	go func() {
		defer close(done)
		if err := p.Close(); err != nil {
			s.logger.Error("closing pipeline", "err", err)
		}
		s.closeMu.Lock()
		delete(s.closing, p)
		s.closeMu.Unlock()
	}()
}

// waitClosed waits until the pipelines being closed are, or ctx ends;
// then it logs the filter each unfinished Close is at and returns
// ErrCloseUnfinished.
func (s *Server) waitClosed(ctx context.Context) error {
	s.closeMu.Lock()
	pending := make(map[*filters.Pipeline]chan struct{}, len(s.closing))
	for p, done := range s.closing {
		pending[p] = done
	}
	s.closeMu.Unlock()
	var stuck []string
	for p, done := range pending {
		select {
		case <-done:
			continue
		case <-ctx.Done():
		}
		select {
		case <-done:
		default:
			stuck = append(stuck, p.Closing())
		}
	}
	for _, name := range stuck {
		s.logger.Error("closing a filter did not finish; stopping without it", "filter", name)
	}
	if len(stuck) > 0 {
		return ErrCloseUnfinished
	}
	return nil
}

// ErrCloseUnfinished is returned by Shutdown when the sessions ended but
// the Close of a filter did not before the context did.
var ErrCloseUnfinished = errors.New("closing the filters did not finish")

// ErrStopping is the cause of the context filters get, once Shutdown
// has cut the sessions still in flight off: a filter call that ends so
// failed because the daemon stops, not because of the filter.
var ErrStopping = errors.New("sluice is stopping: the session was cut off")

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("milter server closed")

// Serve accepts connections on ln until Shutdown. It always closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			draining := s.draining
			s.mu.Unlock()
			if draining {
				return ErrServerClosed
			}
			if TransientAcceptError(err) {
				// Out of descriptors or similar: wait and retry rather than
				// stop serving mail.
				backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
				s.logger.Warn("accept failed, retrying", "listener", ln.Addr().String(), "err", err, "wait", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		switch s.startSession(c) {
		case sessionRefused:
			c.Close()
		case serverDraining:
			c.Close()
			return ErrServerClosed
		}
	}
}

// TransientAcceptError reports whether a failed accept concerns the
// moment or one connection only, not the listener: out of descriptors
// (EMFILE, ENFILE), out of memory or socket buffers (ENOBUFS, ENOMEM, as
// a flood of connections brings about), or a connection that failed
// while it waited to be accepted, whose error Linux passes on from
// accept(2) (its man page lists these, to be retried like EAGAIN). Go
// retries only ECONNABORTED itself. A listener that gets one should wait
// and accept again.
func TransientAcceptError(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ENETDOWN, syscall.EPROTO, syscall.ENOPROTOOPT, syscall.EHOSTDOWN,
		syscall.EHOSTUNREACH, syscall.EOPNOTSUPP, syscall.ENETUNREACH:
		return true
	}
	return transientAcceptErrno(errno)
}

// remoteAddr returns c's peer address for a log line. net.Conn does not
// promise one (Go returns nil for a peer address it cannot convert), and
// a nil one's String would panic in the accept loop.
func remoteAddr(c net.Conn) string {
	if uc, ok := c.(*net.UnixConn); ok {
		if p := unixPeer(uc); p != "" {
			return p
		}
	}
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Outcomes of startSession.
const (
	sessionStarted = iota
	sessionRefused
	serverDraining
)

func (s *Server) startSession(raw net.Conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return serverDraining
	}
	ref := s.acquire()
	if limit := ref.cfg.MaxSessions; limit > 0 && len(s.sessions) >= limit {
		ref.release()
		s.observer.ConnectionDropped(DropMaxSessions)
		if !s.full {
			s.full = true
			s.logger.Warn("too many connections, refusing new ones until some end (the MTA applies its milter default action meanwhile)",
				"max_connections", limit, "remote", remoteAddr(raw))
		}
		return sessionRefused
	}
	if s.full {
		s.full = false
		s.logger.Info("accepting connections again", "connections", len(s.sessions)+1)
	}
	timeout := ref.cfg.IOTimeout
	if timeout <= 0 {
		timeout = DefaultIOTimeout
	}
	first := ref.cfg.NegotiationTimeout
	if first <= 0 {
		first = DefaultNegotiationTimeout
	}
	sess := newSession(s, ref, newConn(raw, timeout, first))
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.observer.SessionOpened()
		sess.serve()
		s.observer.SessionClosed()
		ref.release()
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	return sessionStarted
}

// Shutdown stops accepting connections and waits for sessions to finish
// the message they are in, closing each as soon as it is between messages.
// When ctx ends first, the remaining sessions are cut off (the MTA then
// applies its milter default action to those messages) and Shutdown
// returns ctx's error once they are gone. Then it waits for the filters
// to be closed, until ctx ends too: a Close still running by then is
// logged and left behind, and Shutdown returns ErrCloseUnfinished (or
// ctx's error, when sessions were cut off).
func (s *Server) Shutdown(ctx context.Context) error {
	return s.ShutdownGrace(ctx, ctx)
}

// ShutdownGrace is Shutdown, except that once ctx has ended and the
// sessions still in flight were cut off, it waits for the filters to be
// closed until closing ends, not ctx. Their closes begin only as the last
// of those sessions goes: waited for until ctx, which has ended, each one
// (a store closed, a seen file written back) would be left behind and
// reported as not finished at once, however quick it was.
func (s *Server) ShutdownGrace(ctx, closing context.Context) error {
	s.mu.Lock()
	s.draining = true
	for ln := range s.listeners {
		ln.Close()
	}
	for sess := range s.sessions {
		sess.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel(ErrStopping)
		s.current.Load().release()
		return s.waitClosed(ctx)
	case <-ctx.Done():
	}
	// Cut the sessions off before the filters' context ends: a filter
	// stopped in the middle of a message fails, and its failure policy
	// (accept, by default) would otherwise reach the MTA as the
	// message's verdict, before the cut, for mail no filter judged.
	// Cut off first, that reply cannot be written, and the MTA applies
	// its milter default action to the message, as it does to every
	// message cut off.
	s.mu.Lock()
	for sess := range s.sessions {
		sess.c.interrupt()
	}
	s.mu.Unlock()
	s.cancel(ErrStopping)
	<-done
	s.current.Load().release()
	s.waitClosed(closing)
	return ctx.Err()
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) acquire() *configRef {
	for {
		r := s.current.Load()
		if r.acquire() {
			return r
		}
		// r was replaced and fully released between Load and acquire; the
		// next Load sees its successor.
	}
}

// configRef counts the sessions using a Config so that its pipeline is
// closed only when nobody uses it any more. The server's own reference is
// dropped when the config is replaced or the server shuts down.
type configRef struct {
	cfg  Config
	srv  *Server
	mu   sync.Mutex
	refs int
	once sync.Once
}

func newConfigRef(cfg Config, srv *Server) *configRef {
	return &configRef{cfg: cfg, srv: srv, refs: 1}
}

func (r *configRef) acquire() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refs == 0 {
		return false
	}
	r.refs++
	return true
}

func (r *configRef) release() {
	r.mu.Lock()
	r.refs--
	last := r.refs == 0
	r.mu.Unlock()
	if last {
		r.once.Do(func() { r.srv.closePipeline(r.cfg.Pipeline) })
	}
}

// options returns the milter options to negotiate for cfg: only the steps
// some filter needs. Connect, HELO, MAIL and RCPT are always asked for:
// they are one packet each and feed the per-message log line.
func options(cfg Config) (gomilter.OptAction, gomilter.OptProtocol) {
	need := cfg.Pipeline.Needs()
	// go-milter's own client refuses actions beyond 0x3f; these are all
	// sluice uses.
	actions := gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	// The header values' leading space, so that a field written without
	// one ("Name:value") is known as such (see filters.Header.NoSpace);
	// asked only of an MTA that offers it (see conn.answer).
	proto := gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptHeaderLeadingSpace
	if !headersSent(cfg) {
		proto |= gomilter.OptNoHeaders
	}
	if !need.Stages.Has(filters.StageHeaders) && !need.Headers {
		proto |= gomilter.OptNoEOH
	}
	if !need.Body {
		proto |= gomilter.OptNoBody
	}
	return actions, proto
}

// headersSent reports whether the MTA is asked for the header fields:
// only when a filter reads them, or reads the body (whose filters read
// the header too, e.g. for its MIME structure).
func headersSent(cfg Config) bool {
	need := cfg.Pipeline.Needs()
	return need.Headers || need.Body
}
