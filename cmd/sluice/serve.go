package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/asynclog"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/cmd/sluice/internal/metrics"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

func (c *cli) newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the milter daemon",
		Long: `Serve runs the milter daemon in the foreground (no forking: run it under
systemd or another supervisor). It logs to standard error.

Signals:
  SIGHUP           reload the configuration; a broken file is logged and
                   the running configuration stays
  SIGTERM, SIGINT  stop accepting connections, let messages in flight
                   finish (up to shutdown_timeout), then exit 0; a second
                   one cuts the messages still in flight off at once

Under systemd (Type=notify) it reports through $NOTIFY_SOCKET when it is
ready, reloading and stopping.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sigs := make(chan os.Signal)
			defer signalNotify(sigs)()
			d := &daemon{cli: c, stderr: cmd.ErrOrStderr(), asyncLog: true}
			err := d.run(cmd.Context(), sigs, nil)
			if err != nil && d.logQueue != nil {
				if d.started.Log.Format == "json" {
					// The configuration was read and asks for JSON: the
					// error that ends the daemon is a log record like
					// the others, which a log shipper parses, not a
					// line of plain text among them. An error before
					// the configuration is read has no format to go by
					// and stays plain.
					d.logger.Error("sluice serve failed", "err", err)
				} else {
					// The plain "sluice: ..." line main would write, but
					// through the queue: after the lines before it, and
					// without hanging on a stalled standard error.
					reportError(d.logQueue, err)
				}
				err = &exitError{code: 1}
			}
			if d.logQueue != nil {
				d.logQueue.Close(logFlushTimeout)
			}
			return err
		},
	}
}

// signalNotify delivers the signals the daemon acts on to c, stop signals
// first (one replaces a SIGHUP still waiting to be taken), and returns a
// func that ends the delivery. SIGHUP and the stop signals are caught on
// channels of their own: signal.Notify drops a signal whose channel is
// full, and a burst of SIGHUPs during a slow reload must not crowd out
// the SIGTERM after it. SIGHUPs that arrive while one waits merge into
// it; a reload reads the file as it is then.
func signalNotify(c chan<- os.Signal) (stop func()) {
	hup := make(chan os.Signal, 1)
	term := make(chan os.Signal, 2)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		for {
			var sig os.Signal
			select {
			case sig = <-term:
			default:
				select {
				case sig = <-term:
				case sig = <-hup:
				case <-done:
					return
				}
			}
		deliver:
			for {
				// A stop replaces a reload not yet taken; a second
				// stop waits behind the first (it cuts the messages in
				// flight off), in term.
				var more <-chan os.Signal
				if sig == syscall.SIGHUP {
					more = term
				}
				select {
				case c <- sig:
					break deliver
				case t := <-more:
					sig = t
				case <-done:
					return
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		signal.Stop(term)
		close(done)
	}
}

// Time limits of the metrics listener. Prometheus reads each answer at
// once and scrapes again within a minute or so; a client that stops
// reading, or keeps a connection open without asking, must not hold a
// file descriptor and a goroutine for ever. ReadHeaderTimeout does not
// cover either: it starts only with the first byte of a request.
// metricsReadTimeout bounds the whole request, body included: no scrape
// sends a body, but net/http reads what a client announced before it
// answers, and without the limit a body announced and never sent holds
// the connection as long as the client likes.
var (
	metricsReadTimeout  = 10 * time.Second
	metricsWriteTimeout = 30 * time.Second
	metricsIdleTimeout  = 2 * time.Minute
)

// socketCheckInterval is how often a unix listener checks that its
// socket file is still there (see milter.UnixOptions); 0 means
// milter.DefaultSocketCheckInterval. Tests shorten it.
var socketCheckInterval time.Duration

// daemon is a running `sluice serve`.
type daemon struct {
	cli    *cli
	stderr io.Writer
	// asyncLog puts a queue between the logger and stderr, logQueue,
	// which never blocks the daemon (see package asynclog). `sluice
	// serve` sets it; the tests that run the daemon in-process read
	// its log as it is written, and do without.
	asyncLog bool
	logQueue *asynclog.Writer

	cfg *config.Config
	// started is the config the daemon started with: its listeners,
	// metrics listener and log format stay in force until a restart,
	// whatever later reloads read.
	started *config.Config
	logger  *slog.Logger
	level   *slog.LevelVar
	notify  *notifier
	metrics *metrics.Metrics
	promReg *prometheus.Registry
	srv     *milter.Server
	// lns are the milter listeners, closed again at shutdown: Serve
	// closes only those it has begun to serve, and a stop signal can
	// come before its goroutine has run, leaving a socket file behind.
	lns      []net.Listener
	httpSrv  *http.Server
	serveErr chan error
	// stopping is set once shutdown begins: the milter listeners are
	// closed from then on, so /healthz must no longer say ok.
	stopping atomic.Bool
}

// ready tells tests where the daemon listens once it does.
type ready struct {
	Milter  []net.Addr
	Metrics net.Addr
}

// run starts the daemon and serves until a stop signal or ctx ends. Signals
// arrive on sigs so that tests can drive reloads and shutdowns directly.
func (d *daemon) run(ctx context.Context, sigs <-chan os.Signal, onReady func(ready)) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// A write to standard error after its reader went away (a logger
	// at the end of a pipe that was stopped, a stream journald closed)
	// would end the process with SIGPIPE, as Go does for a program that
	// leaves the signal alone: in the middle of its sessions, without a
	// line to say why, and, SIGPIPE being a clean exit to systemd, not
	// restarted under Restart=on-failure. Ignored, the write fails with
	// EPIPE instead, its lines are lost (and counted, see asynclog), and
	// mail goes on being filtered.
	signal.Ignore(syscall.SIGPIPE)
	cfg, err := d.cli.loadConfig("")
	if err != nil {
		return err
	}
	d.cfg = cfg
	d.started = cfg
	d.level = new(slog.LevelVar)
	d.level.Set(slog.Level(mustLevel(cfg.Log.Level)))
	// The metrics come before the logger: the log queue counts the lines
	// it drops in them.
	d.promReg = prometheus.NewRegistry()
	d.metrics = metrics.New(d.promReg, version, runtime.Version())
	logOut := d.stderr
	if d.asyncLog {
		d.logQueue = asynclog.New(d.stderr, asynclog.DefaultMaxBytes, droppedRecord(cfg.Log.Format), d.metrics.LogLinesDropped)
		logOut = d.logQueue
	}
	d.logger = newLogger(logOut, cfg.Log.Format, d.level)
	slog.SetDefault(d.logger)
	// go-milter logs through the standard log package; route it to slog.
	// This replaces the writer slog.SetDefault gave the log package.
	log.SetOutput(libraryLog{logger: d.logger, panicked: d.metrics.SessionPanic})
	log.SetFlags(0)
	d.notify = newNotifier(d.logger)

	if cfg.Body.TempDir != "" {
		// Spilled bodies must have somewhere to go before the first big
		// message arrives, not fail then.
		if err := os.MkdirAll(cfg.Body.TempDir, 0o700); err != nil {
			return cfg.At("body.temp_dir", err)
		}
		// Before anything is written in it: one that was there already
		// may be another user's (made in /tmp before sluice started).
		if err := filters.CheckBodyDir(cfg.Body.TempDir); err != nil {
			return cfg.At("body.temp_dir", err)
		}
		if err := tempDirWritable(cfg.Body.TempDir); err != nil {
			return cfg.At("body.temp_dir", err)
		}
	} else if err := checkSystemTempDir(); err != nil {
		return cfg.At("body.temp_dir", err)
	}
	pipeline, err := config.Build(cfg, d.cli.reg, d.logger, d.metrics)
	if err != nil {
		return err
	}
	d.metrics.InForce(filterNames(cfg))
	d.srv = milter.NewServer(d.milterConfig(cfg, pipeline), d.logger, d.metrics)

	var info ready
	// The metrics listener is opened first: when its port is taken the
	// start fails before a milter socket has appeared that nobody would
	// serve.
	var metricsLn net.Listener
	if cfg.Metrics.Listen != "" {
		metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			pipeline.Close()
			return cfg.At("metrics.listen", fmt.Errorf("metrics listener: %w", err))
		}
		info.Metrics = metricsLn.Addr()
		metricsLn = newLimitListener(metricsLn, metricsMaxConns)
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
		if metricsLn != nil {
			metricsLn.Close()
		}
		pipeline.Close()
	}
	for _, l := range cfg.Listen {
		a, _ := milter.ParseAddress(l.Address) // checked by config
		ln, err := milter.Listen(a, milter.UnixOptions{Mode: os.FileMode(l.Mode), Group: l.Group, CheckInterval: socketCheckInterval})
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, ln)
		info.Milter = append(info.Milter, ln.Addr())
	}
	if metricsLn != nil {
		d.httpSrv = &http.Server{
			Handler:           d.httpHandler(),
			ReadHeaderTimeout: metricsReadTimeout,
			ReadTimeout:       metricsReadTimeout,
			WriteTimeout:      metricsWriteTimeout,
			IdleTimeout:       metricsIdleTimeout,
		}
		go func() {
			if err := d.httpSrv.Serve(metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.logger.Error("metrics listener failed", "err", err)
			}
		}()
	}
	d.lns = lns
	d.serveErr = make(chan error, len(lns))
	for _, ln := range lns {
		go func(ln net.Listener) { d.serveErr <- d.srv.Serve(ln) }(ln)
	}
	started := []any{"version", version, "config", cfg.File, "listen", addrStrings(info.Milter), "filters", len(cfg.Filters)}
	if info.Metrics != nil {
		// The bound address: with port 0 in metrics.listen, the only
		// place it shows.
		started = append(started, "metrics", info.Metrics.String())
	}
	d.logger.Info("sluice started", started...)
	// Every listener is bound and served: an MTA ordered after the unit
	// finds the socket.
	serving := "READY=1\nSTATUS=serving " + strings.Join(addrStrings(info.Milter), " ")
	d.notify.send(serving)
	if onReady != nil {
		onReady(info)
	}

	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.notify.reloading()
				d.reload()
				// READY=1 ends the reload for systemd whatever its
				// outcome: a failed one leaves the daemon serving on
				// the configuration it had.
				d.notify.send(serving)
				continue
			}
			d.logger.Info("stopping", "signal", sig.String(), "deadline", d.cfg.ShutdownTimeout.String())
			return d.shutdown(sigs)
		case <-ctx.Done():
			d.logger.Info("stopping", "reason", ctx.Err().Error())
			return d.shutdown(sigs)
		case err := <-d.serveErr:
			if errors.Is(err, milter.ErrServerClosed) {
				continue
			}
			// A listener died: without it mail is not filtered. Stop and
			// let the supervisor restart us rather than limp on.
			d.logger.Error("milter listener failed", "err", err)
			d.shutdown(sigs)
			return fmt.Errorf("milter listener: %w", err)
		}
	}
}

func (d *daemon) milterConfig(cfg *config.Config, p *filters.Pipeline) milter.Config {
	policy, _ := filters.ParseFailurePolicy(cfg.FilterDefaults.OnFailure)
	return milter.Config{
		Pipeline:        p,
		BodyMemoryLimit: int64(cfg.Body.MemoryLimit),
		TempDir:         cfg.Body.TempDir,
		OnFailure:       policy,
		MaxSessions:     cfg.MaxConnections,
	}
}

// reload reads the config again and swaps it in for new connections. On
// any error the running config stays, and the failure is logged and
// counted, so a typo in an edit never takes the mail flow down.
func (d *daemon) reload() {
	var cfg *config.Config
	var err error
	if d.cfg.File != "" {
		// The daemon runs on a file: that file gone (moved away while
		// edited, an upgrade half done) is an error like a broken one,
		// never the built-in defaults, which have no filters.
		cfg, err = config.Load(d.cfg.File, d.cli.reg)
	} else {
		cfg, err = d.cli.loadConfig("")
	}
	if err == nil && cfg.Empty() {
		// The built-in defaults have no filters: a file emptied, or
		// caught half-written, would pass mail unfiltered, as a file
		// gone would.
		err = fmt.Errorf("%s has no settings (empty, comments only, or {}); a reload never falls back to the built-in defaults", cfg.File)
	}
	if err == nil {
		err = checkTempDir(cfg, d.cfg)
	}
	if err == nil {
		// The listeners are bound at start only, but a file the next
		// start would refuse must not pass for good.
		err = cfg.CheckGroups()
	}
	var pipeline *filters.Pipeline
	// The new filters' reports of what they hold wait until their
	// configuration is in force: a failed reload must not leave them on
	// the running filters' series (see metrics.Staged).
	staged := d.metrics.Stage()
	if err == nil {
		pipeline, err = config.Build(cfg, d.cli.reg, d.logger, staged)
	}
	if err != nil {
		var built []string
		if cfg != nil {
			built = filterNames(cfg)
		}
		staged.Discard(built)
		d.metrics.Reloaded(false)
		d.logger.Error("config reload failed; keeping the running configuration", "err", err)
		return
	}
	d.srv.SetConfig(d.milterConfig(cfg, pipeline))
	staged.Commit(filterNames(cfg))
	d.level.Set(slog.Level(mustLevel(cfg.Log.Level)))
	// Against the start, not the last reload: a change still waiting
	// for a restart is reported at every reload, and one undone is not.
	for _, change := range restartOnly(d.started, cfg) {
		d.logger.Warn("config change needs a restart to take effect", "key", change)
	}
	d.cfg = cfg
	d.metrics.Reloaded(true)
	d.logger.Info("config reloaded", "config", cfg.File, "filters", len(cfg.Filters))
}

// filterNames returns the names of cfg's filters.
func filterNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Filters))
	for i := range cfg.Filters {
		names[i] = cfg.Filters[i].EntryName()
	}
	return names
}

// checkTempDir makes sure that body.temp_dir names a directory that no
// other user controls (see filters.CheckBodyDir) and sluice may write. A
// reload does not create a new one (start does): a path mistyped in an
// edit must fail the reload, not make a directory. The one running names
// is another matter: removed meanwhile (a cleaner of old files), the next
// body spilled makes it again, and so does the reload, mode 0700 as at
// start, or it would be refused for a setting nobody changed.
func checkTempDir(cfg, running *config.Config) error {
	dir := cfg.Body.TempDir
	if dir == "" {
		if err := checkSystemTempDir(); err != nil {
			return cfg.At("body.temp_dir", err)
		}
		return nil
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) && dir == running.Body.TempDir {
		// Only the directory itself, as a spill makes it: a parent gone
		// too is more than a cleaner's work.
		if err = os.Mkdir(dir, 0o700); err == nil || errors.Is(err, fs.ErrExist) {
			fi, err = os.Stat(dir)
		}
	}
	if err == nil && !fi.IsDir() {
		err = fmt.Errorf("%s is not a directory", dir)
	}
	if err != nil {
		return cfg.At("body.temp_dir", fmt.Errorf("%w (a reload does not create it)", err))
	}
	if err := filters.CheckBodyDir(dir); err != nil {
		return cfg.At("body.temp_dir", err)
	}
	if err := tempDirWritable(dir); err != nil {
		return cfg.At("body.temp_dir", err)
	}
	return nil
}

// checkSystemTempDir checks the directory bodies go to when
// body.temp_dir is empty, $TMPDIR or /tmp, as filters.CheckBodyDir
// checks a named one (sluice does not make it).
func checkSystemTempDir() error {
	if err := filters.CheckBodyDir(os.TempDir()); err != nil {
		return fmt.Errorf("empty, so bodies go to $TMPDIR or /tmp: %w", err)
	}
	return nil
}

// tempDirWritable makes sure that sluice may create files in dir, by
// creating one and removing it again. A directory that exists but is
// not sluice's to write (made by root, left read-only by the unit's
// ProtectSystem) would break the body of every message larger than
// body.memory_limit, as a directory sluice cannot create would, and
// that stops the start. Only a refusal counts: a full disk or a lack of
// descriptors is a matter of the moment, which the spill of each body
// meets as it comes.
func tempDirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".sluice-check-")
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("%s is not writable, so no message body could be spilled there: %w", dir, err)
		}
		return nil
	}
	f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("%s: removing the file made to check it is writable: %w", dir, err)
	}
	return nil
}

// restartOnly lists changed keys that a reload cannot apply: sockets are
// bound once at start.
func restartOnly(old, cur *config.Config) []string {
	var keys []string
	if fmt.Sprint(old.Listen) != fmt.Sprint(cur.Listen) {
		keys = append(keys, "listen")
	}
	if old.Metrics != cur.Metrics {
		keys = append(keys, "metrics.listen")
	}
	if old.Log.Format != cur.Log.Format {
		keys = append(keys, "log.format")
	}
	return keys
}

// shutdown stops the daemon, letting messages in flight finish until
// shutdown_timeout. A second stop signal meanwhile ends the wait at once:
// whoever sends it wants the daemon gone now. A SIGHUP then is ignored.
func (d *daemon) shutdown(sigs <-chan os.Signal) error {
	d.stopping.Store(true)
	d.notify.send("STOPPING=1\nSTATUS=stopping: letting messages in flight finish")
	// now ends with a second stop signal; ctx with it or at the
	// deadline.
	now, stopNow := context.WithCancel(context.Background())
	defer stopNow()
	ctx, cancel := context.WithTimeout(now, d.cfg.ShutdownTimeout)
	defer cancel()
	drained := make(chan struct{})
	defer close(drained)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					d.logger.Warn("reload ignored: stopping", "signal", sig.String())
					continue
				}
				d.logger.Warn("second stop signal; cutting off sessions still in flight", "signal", sig.String())
				stopNow()
				return
			case <-drained:
				return
			}
		}
	}()
	// Sessions cut off at the deadline leave the filters' closes (a
	// store closed, a seen file written back) no time of their own:
	// they get closeGrace past it, which a second stop signal ends at
	// once.
	closing, closingCancel := context.WithTimeout(now, d.cfg.ShutdownTimeout+closeGrace)
	defer closingCancel()
	err := d.srv.ShutdownGrace(ctx, closing)
	if errors.Is(err, context.DeadlineExceeded) {
		d.logger.Warn("shutdown deadline passed; sessions still in flight were cut off", "err", err)
	}
	for _, ln := range d.lns {
		// Closed already if Serve got to it; a second Close only
		// returns an error.
		ln.Close()
	}
	if d.httpSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer hcancel()
		d.httpSrv.Shutdown(hctx)
	}
	d.logger.Info("sluice stopped")
	// Running out of time is not a failure of the daemon: exit 0.
	return nil
}

func (d *daemon) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.promReg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelError)}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if d.stopping.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "stopping\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// closeGrace is how long the filters' closes may take once the sessions
// still in flight at the shutdown deadline are cut off. Within the
// packaged unit's TimeoutStopSec (45s) with the default shutdown_timeout
// (30s), after which systemd kills the daemon.
const closeGrace = 5 * time.Second

// logFlushTimeout bounds the wait for the log queue at exit: the lines
// of the shutdown ("sluice stopped") reach a working standard error, and
// a stalled one does not keep the daemon from exiting.
const logFlushTimeout = 2 * time.Second

// droppedRecord formats the line the log queue writes where it dropped n
// lines: a WARN record in the configured format, which a log shipper
// parses like the others, whatever log.level says.
func droppedRecord(format string) func(n int) []byte {
	return func(n int) []byte {
		var b bytes.Buffer
		newLogger(&b, format, new(slog.LevelVar)).Warn("log lines dropped: standard error did not take them in time", "dropped", n)
		return b.Bytes()
	}
}

func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: boundLogValue}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maxLogValue bounds each value of a log line. A sender controls some of
// them (a reason that quotes a 50 KB From field, the rcpts of a message
// to hundreds of recipients), and journald cuts a line longer than its
// LineMax (48 KiB by default) into entries of their own, the next
// starting with whatever follows the cut: text of the sender's choosing
// could so stand in the log as a line of sluice's. The values of a line
// that a sender can make long (rcpts, reason, from, helo; the MTA bounds
// the last two by its SMTP line length) still fit one entry together at
// this size; real values are far shorter.
const maxLogValue = 8192

// boundLogValue cuts a string or error value that would be written
// longer than maxLogValue, at the start of a character, and says how
// many bytes it left out. What counts is the length as written, escapes
// included (see escapedLen): a value of quotes or control characters is
// written two to six times as long as it is.
func boundLogValue(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch v := a.Value; {
	case v.Kind() == slog.KindString:
		s = v.String()
	case v.Kind() == slog.KindAny:
		err, ok := v.Any().(error)
		if !ok {
			return a
		}
		s = err.Error()
	default:
		return a
	}
	if len(s) <= maxLogValue/maxEscape {
		// Within the bound however it is escaped.
		return a
	}
	written, cut := 0, 0
	for cut < len(s) {
		r, size := utf8.DecodeRuneInString(s[cut:])
		if written += escapedLen(r, size); written > maxLogValue {
			break
		}
		cut += size
	}
	if cut == len(s) {
		return a
	}
	return slog.String(a.Key, fmt.Sprintf("%s...(%d bytes more)", s[:cut], len(s)-cut))
}

// maxEscape is the most bytes escapedLen gives a byte of a value.
const maxEscape = 10

// escapedLen bounds the bytes the text or the JSON handler writes for r,
// a character of size bytes of a value (utf8.RuneError of size 1 for a
// byte that is no UTF-8).
func escapedLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // \ufffd in JSON, \x80 in text
	case r == '"' || r == '\\':
		return 2
	case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029':
		return 6 // \u0001 in JSON, \x01 in text
	case !unicode.IsPrint(r):
		return maxEscape // \U000e0001 in text
	}
	return size
}

func mustLevel(s string) config.Level {
	l, err := config.ParseLevel(s)
	if err != nil {
		return config.LevelInfo
	}
	return l
}

// addrStrings writes listener addresses as the config and Postfix's
// smtpd_milters do (inet:, unix:), not with Go's network names, so that
// the start-up line can be pasted into main.cf. An IPv6 address is
// written in brackets after inet: (inet:[::1]:7357): Postfix knows no
// inet6: kind, and refuses the milter so written.
func addrStrings(as []net.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		switch a := a.(type) {
		case *net.TCPAddr:
			out[i] = "inet:" + a.String()
		case *net.UnixAddr:
			out[i] = "unix:" + a.Name
		default:
			out[i] = a.Network() + ":" + a.String()
		}
	}
	return out
}

// libraryLog takes what libraries write through the standard log package:
// go-milter's lines, net/http's if a server without its own ErrorLog has
// any. Everything that comes that way is trouble (a connection go-milter
// ends: "Error reading milter command", a failed write, a callback's
// error, a command it does not know), so it comes at WARN: at slog's
// default of INFO it was among the per-message lines, and hidden at
// log.level warn.
//
// A panic go-milter recovered itself, outside the session's callbacks
// (which recover and count their own), ended the MTA's connection as a
// session panic does, and the MTA applied its default action to the
// message: it is counted with them and comes at ERROR.
type libraryLog struct {
	logger   *slog.Logger
	panicked func()
}

// goMilterPanic starts go-milter 0.5's line for a panic it recovered.
const goMilterPanic = "panic handling command: "

func (w libraryLog) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if strings.HasPrefix(msg, goMilterPanic) {
		w.panicked()
		w.logger.Error("panic in the milter library, connection ended; the MTA applies its milter default action",
			"panic", strings.TrimPrefix(msg, goMilterPanic))
		return len(p), nil
	}
	w.logger.Warn(msg)
	return len(p), nil
}
