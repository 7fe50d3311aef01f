// Package config reads sluice's YAML configuration file.
//
// The file is strict: an unknown key, a value of the wrong type or a bad
// value is an error that names the file, the line and the key, because a
// typo in a mail filter's config silently changes what happens to mail.
// Every key has a default, so sluice runs with no file at all; the defaults
// are those of Default and are listed in docs/configuration.md.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// Config is the whole configuration.
type Config struct {
	// Listen lists the milter sockets, in Postfix syntax.
	Listen []Listener `yaml:"listen"`
	// Log sets the log format and level.
	Log Log `yaml:"log"`
	// Metrics configures the Prometheus HTTP listener.
	Metrics Metrics `yaml:"metrics"`
	// ShutdownTimeout is how long SIGTERM waits for messages in flight.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxConnections caps the milter connections open at once; 0 means
	// no cap.
	MaxConnections int `yaml:"max_connections"`
	// StateDir holds state files of filters (stores, seen lists).
	StateDir string `yaml:"state_dir"`
	// Body sets how message bodies are held.
	Body Body `yaml:"body"`
	// FilterDefaults apply to every filter that does not set its own.
	FilterDefaults FilterDefaults `yaml:"filter_defaults"`
	// Filters is the pipeline, in order.
	Filters []Filter `yaml:"filters"`

	// File is the path the config was read from; "" for the defaults.
	File string `yaml:"-"`

	// empty is set when File holds no settings at all.
	empty bool
}

// Empty reports whether the file the config was read from holds no
// settings (it is empty, comments only, or an empty mapping "{}"), so
// that the config is the defaults'. A reload refuses such a file, as it does a missing one.
func (c *Config) Empty() bool { return c.empty }

// At returns err as an Error at key (a dotted path such as
// "body.temp_dir") with the file and the line of the key, for a value
// checked outside this package against the file system. The line is
// looked up in the file again, only on this error path, so that a Config
// holds the settings and where they came from (File, Empty), not the
// file's node tree; 0 (no line) when the file has changed out of
// recognition.
func (c *Config) At(key string, err error) error {
	line := 0
	if c.File != "" {
		var doc yaml.Node
		if data, rerr := os.ReadFile(c.File); rerr == nil && yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
			line = keyLine(doc.Content[0], key)
		}
	}
	return &Error{File: c.File, Line: line, Key: key, Err: err}
}

// CheckGroups looks up the group of each unix listener that names one,
// as the start does before it binds the socket. A group unknown to this
// host stops the start; a reload or "sluice config check" that took it
// would leave the daemon unable to start again at its next restart.
func (c *Config) CheckGroups() error {
	for i, l := range c.Listen {
		if l.Group == "" {
			continue
		}
		if _, err := milter.LookupGroup(l.Group); err != nil {
			line := 0
			if c.File != "" {
				var doc yaml.Node
				if data, rerr := os.ReadFile(c.File); rerr == nil && yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
					line = entryKeyLine(doc.Content[0], "listen", i, "group")
				}
			}
			return &Error{File: c.File, Line: line, Key: fmt.Sprintf("listen[%d].group", i), Err: fmt.Errorf("%w (sluice serve would not start)", err)}
		}
	}
	return nil
}

// Listener is one milter socket.
type Listener struct {
	// Address is "unix:/path", "inet:host:port" or "inet:[host]:port"
	// for IPv6 ("inet6:[host]:port" too, which Postfix does not take).
	Address string `yaml:"address"`
	// Mode is the unix socket's permission bits, octal (default "0660").
	Mode FileMode `yaml:"mode,omitempty"`
	// Group is the unix socket's group, e.g. "postfix".
	Group string `yaml:"group,omitempty"`
}

// Log configures logging.
type Log struct {
	// Format is "text" or "json".
	Format string `yaml:"format"`
	// Level is "debug", "info", "warn" or "error".
	Level string `yaml:"level"`
}

// Metrics configures the HTTP listener serving /metrics and /healthz.
type Metrics struct {
	// Listen is host:port; "" turns the listener off.
	Listen string `yaml:"listen"`
}

// Body configures message body storage.
type Body struct {
	// MemoryLimit is how much of a body is kept in memory; the rest goes
	// to a temporary file.
	MemoryLimit Size `yaml:"memory_limit"`
	// TempDir holds the temporary files; "" means $TMPDIR or /tmp.
	TempDir string `yaml:"temp_dir"`
}

// FilterDefaults are the timeout and failure policy of filters.
type FilterDefaults struct {
	// Timeout bounds each filter call.
	Timeout time.Duration `yaml:"timeout"`
	// OnFailure is "accept" or "tempfail".
	OnFailure string `yaml:"on_failure"`
}

// Filter is one pipeline entry.
type Filter struct {
	// Type selects the filter implementation.
	Type string `yaml:"type"`
	// Name identifies this entry in logs and metrics; default: Type.
	Name string `yaml:"name,omitempty"`
	// Timeout and OnFailure override FilterDefaults.
	Timeout   time.Duration `yaml:"timeout,omitempty"`
	OnFailure string        `yaml:"on_failure,omitempty"`
	// Options are the filter's own settings, checked by the filter.
	Options yaml.Node `yaml:"options,omitempty"`

	line int
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		Listen:          []Listener{{Address: "inet:127.0.0.1:7357"}},
		Log:             Log{Format: "text", Level: "info"},
		Metrics:         Metrics{Listen: "127.0.0.1:7358"},
		ShutdownTimeout: 30 * time.Second,
		StateDir:        "/var/lib/sluice",
		Body:            Body{MemoryLimit: 1 << 20},
		FilterDefaults:  FilterDefaults{Timeout: 10 * time.Second, OnFailure: "accept"},
	}
}

// Error is a config error at a place in the file.
type Error struct {
	File string
	Line int
	// Column, counted in characters from 1, is set for YAML syntax
	// errors only, where the line alone may not show the mistake.
	Column int
	Key    string
	Err    error
}

// maxErrorKey and maxErrorText bound the key and the message of an
// Error. Both may quote the file: a key or value of megabytes (a file
// named by mistake, a pasted blob) made an error line of megabytes in
// the terminal and in the log of a failed reload. Real keys and messages
// are far shorter.
const (
	maxErrorKey  = 256
	maxErrorText = 1024
)

// shorten returns s, or, when it is longer than limit bytes, its start and
// its end with what lies between them replaced by a note of how much was
// left out. The end stays: a message that quotes a value first ends in
// what is wrong with it.
func shorten(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	// Cut where a UTF-8 character starts (within the 3 bytes a
	// character may continue), not inside one.
	end, start := limit/2, len(s)-limit/2
	for i := 0; i < 3 && !utf8.RuneStart(s[end]); i++ {
		end--
	}
	for i := 0; i < 3 && !utf8.RuneStart(s[start]); i++ {
		start++
	}
	return fmt.Sprintf("%s … (%d bytes left out) … %s", s[:end], start-end, s[start:])
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(shorten(e.Key, maxErrorKey))
		b.WriteString(": ")
	}
	b.WriteString(shorten(e.Err.Error(), maxErrorText))
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// MaxFileSize bounds the configuration file. A real one is a few KiB;
// a mailbox or a log named by mistake would be read whole and decoded
// into a tree many times its size before the first error.
const MaxFileSize = 16 << 20

// Load reads and checks the file at path. An empty path returns the
// defaults. Filter options are checked by building each filter with reg
// (and closing it again); see Build.
func Load(path string, reg filters.Registry) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("config: %s is larger than %d MiB; is it the configuration file?", path, MaxFileSize>>20)
	}
	return Parse(path, data, reg)
}

// Parse reads a config from data; file names it in errors.
func Parse(file string, data []byte, reg filters.Registry) (*Config, error) {
	cfg := Default()
	cfg.File = file
	if err := misplacedBOM(file, data); err != nil {
		return nil, err
	}
	var doc yaml.Node
	second, err := decodeDocuments(data, &doc)
	if err != nil {
		return nil, syntaxError(file, data, err)
	}
	if second != nil {
		return nil, &Error{File: file, Line: second.Line, Err: errors.New(`a second YAML document ("---"); sluice reads one`)}
	}
	if doc.Kind == 0 || doc.Content[0].Tag == "!!null" { // empty file: defaults
		cfg.empty = true
		return cfg, cfg.check(reg, nil)
	}
	root := doc.Content[0]
	if root.Kind == yaml.MappingNode && len(root.Content) == 0 {
		// "{}", as a template writes an empty dict: no settings either.
		cfg.empty = true
		return cfg, cfg.check(reg, nil)
	}
	if err := checkKeys(file, root, reflect.TypeOf(*cfg), ""); err != nil {
		return nil, err
	}
	// A present but empty filters list or listen list replaces the default.
	if err := root.Decode(cfg); err != nil {
		return nil, yamlError(file, err)
	}
	for i := range cfg.Filters {
		cfg.Filters[i].line = itemLine(root, "filters", i)
	}
	return cfg, cfg.check(reg, root)
}

// check validates values, building the filters to let them check theirs.
func (c *Config) check(reg filters.Registry, root *yaml.Node) error {
	at := func(key string, err error) error {
		return &Error{File: c.File, Line: keyLine(root, key), Key: key, Err: err}
	}
	if len(c.Listen) == 0 {
		return at("listen", errors.New("at least one listener is needed"))
	}
	seen := map[string]bool{}
	for i, l := range c.Listen {
		key := fmt.Sprintf("listen[%d]", i)
		a, err := milter.ParseAddress(l.Address)
		if err != nil {
			return &Error{File: c.File, Line: itemLine(root, "listen", i), Key: key, Err: err}
		}
		if seen[a.String()] {
			return &Error{File: c.File, Line: itemLine(root, "listen", i), Key: key, Err: fmt.Errorf("%s is listed twice", a)}
		}
		seen[a.String()] = true
		for j, prev := range c.Listen[:i] {
			p, _ := milter.ParseAddress(prev.Address)
			if host, port, err := splitHostPort(a.Addr); err == nil && a.Network == p.Network && sharesPort(p, a.Network, host, port) {
				return &Error{File: c.File, Line: itemLine(root, "listen", i), Key: key, Err: fmt.Errorf("%s takes the port of listen[%d] (%s) on the same address, or one a wildcard covers", a, j, p)}
			}
		}
		if a.Network != "unix" && (l.Mode != 0 || l.Group != "") {
			return &Error{File: c.File, Line: itemLine(root, "listen", i), Key: key, Err: errors.New("mode and group apply to unix sockets only")}
		}
		if a.Network == "unix" && l.Mode == 0 {
			// Filled in here, so that config check prints the mode the
			// socket gets.
			c.Listen[i].Mode = defaultSocketMode
		}
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return at("log.format", fmt.Errorf("%q: want text or json", c.Log.Format))
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		return at("log.level", err)
	}
	if c.Metrics.Listen != "" {
		host, port, err := splitHostPort(c.Metrics.Listen)
		if err != nil {
			return at("metrics.listen", err)
		}
		for i, l := range c.Listen {
			if a, _ := milter.ParseAddress(l.Address); sharesPort(a, "tcp", host, port) {
				return at("metrics.listen", fmt.Errorf("%q takes the port of the milter listener listen[%d] (%s)", c.Metrics.Listen, i, l.Address))
			}
		}
	}
	if c.ShutdownTimeout <= 0 {
		return at("shutdown_timeout", errors.New("must be positive"))
	}
	if c.MaxConnections < 0 {
		return at("max_connections", errors.New("must not be negative (0 means no limit)"))
	}
	if c.StateDir == "" {
		// Filters join their file names to it: "" would put the token
		// store and seen files in the working directory (/ under
		// systemd), a new empty store there scoring every message unsure.
		return at("state_dir", errors.New("must not be empty"))
	}
	for _, p := range []struct{ key, path string }{{"state_dir", c.StateDir}, {"body.temp_dir", c.Body.TempDir}} {
		// "~/spool" made a directory named "~" in the directory sluice
		// was started in, for spilled bodies or, through an archive
		// filter, the state.
		if err := filters.CheckPath(p.path); err != nil {
			return at(p.key, err)
		}
	}
	if c.Body.MemoryLimit < 0 {
		return at("body.memory_limit", errors.New("must not be negative"))
	}
	if c.FilterDefaults.Timeout <= 0 {
		return at("filter_defaults.timeout", errors.New("must be positive"))
	}
	if _, err := filters.ParseFailurePolicy(c.FilterDefaults.OnFailure); err != nil {
		return at("filter_defaults.on_failure", err)
	}
	names := map[string]bool{}
	for i, f := range c.Filters {
		fail := func(key string, err error) error {
			// At the line of the key when the entry has it, so that the
			// error points at the value to edit.
			line := f.line
			if l := entryKeyLine(root, "filters", i, strings.TrimPrefix(key, ".")); l > 0 {
				line = l
			}
			return &Error{File: c.File, Line: line, Key: fmt.Sprintf("filters[%d]%s", i, key), Err: err}
		}
		if f.Type == "" {
			return fail(".type", errors.New("missing"))
		}
		if err := checkEntryName(f.Name); err != nil {
			return fail(".name", err)
		}
		name := f.EntryName()
		if names[name] {
			return fail(".name", fmt.Errorf("%q is used twice; give each entry its own name", name))
		}
		names[name] = true
		if f.Timeout < 0 {
			return fail(".timeout", errors.New("must not be negative"))
		}
		if f.OnFailure != "" {
			if _, err := filters.ParseFailurePolicy(f.OnFailure); err != nil {
				return fail(".on_failure", err)
			}
		}
		if _, ok := reg[f.Type]; !ok {
			return fail(".type", fmt.Errorf("unknown filter type %q (known: %s)", f.Type, strings.Join(reg.Types(), ", ")))
		}
	}
	return nil
}

// checkEntryName checks a filter entry's name. Besides logs and metrics,
// it goes into the quarantine reason the MTA records and the archive's
// verdict field (filter=NAME), which carry it on one line and as one
// word: a control character came out there as a blank, a blank as "_",
// and the name no longer matched the one in the log. Its length is
// bounded too: on the archive's verdict field, after the verdict and
// action and before a reason of up to 400 octets (200, each may be
// escaped), a name of maxEntryName characters, 4 octets each at most,
// keeps the line well within the 998 octets RFC 5322 2.1.1 allows.
func checkEntryName(name string) error {
	if n := utf8.RuneCountInString(name); n > maxEntryName {
		return fmt.Errorf("a name of %d characters; at most %d, as the name goes into header fields, metric labels and log lines", n, maxEntryName)
	}
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return fmt.Errorf("%q: a control character; the name must be printable, as in logs and quarantine reasons", name)
		case unicode.IsSpace(r):
			return fmt.Errorf("%q: a blank; the name is one word, as in filter=NAME of the archive's verdict field", name)
		case !unicode.IsPrint(r):
			return fmt.Errorf("%q: a character %U that does not print; the name must be printable, as in logs and quarantine reasons", name, r)
		}
	}
	return nil
}

// maxEntryName bounds a filter entry's name, in characters.
const maxEntryName = 64

// EntryName is the filter's name in this pipeline.
func (f *Filter) EntryName() string {
	if f.Name != "" {
		return f.Name
	}
	return f.Type
}

// ParseLevel parses a log level name.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "debug":
		return LevelDebug, nil
	case "info":
		return LevelInfo, nil
	case "warn":
		return LevelWarn, nil
	case "error":
		return LevelError, nil
	}
	return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
}

// Level mirrors slog's levels without importing slog here.
type Level int

// The log levels, as slog numbers them.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

func splitHostPort(s string) (string, int, error) {
	// net.SplitHostPort, as the listener that will use the address does:
	// "::1", "[::1]" or "host:80:80" must fail here, not at the next start.
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q: want host:port ([::1]:port for IPv6)", s)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		// net.Listen would look the host up blank and all, and fail
		// only at start ("lookup 127.0.0.1 : no such host"), as
		// milter.ParseAddress says of a milter listener.
		return "", 0, fmt.Errorf("%q: host %q has a blank or control character", s, host)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", s)
	}
	return host, port, nil
}

// sharesPort reports whether a TCP listener of network on host:port (the
// metrics listener, "tcp", or another milter listener of a's family)
// could not be bound next to the milter listener a: the same port, and
// the same address or a wildcard that covers the other's. Port 0 takes
// any free port and never clashes. "localhost" is taken for the loopback
// address it is bound to (see loopbackFor); other host names are
// compared with each other as written, as looking them up would need
// DNS, and a wildcard of the family they are bound in covers them.
func sharesPort(a milter.Address, network, host string, port int) bool {
	if a.Network != "tcp4" && a.Network != "tcp6" || port == 0 {
		return false
	}
	mhost, mport, err := splitHostPort(a.Addr)
	if err != nil || mport != port {
		return false
	}
	if mhost == host {
		return true
	}
	// An IPv4 address written as IPv6 (::ffff:127.0.0.1) is bound as
	// the IPv4 one.
	m, merr := netip.ParseAddr(loopbackFor(mhost, a.Network))
	m = m.Unmap()
	h, herr := netip.ParseAddr(loopbackFor(host, network))
	h = h.Unmap()
	switch {
	case host == "" || herr == nil && h.IsUnspecified():
		// The metrics listener ("tcp") on a wildcard takes the port on
		// every address of both families, even written 0.0.0.0; a
		// milter listener's wildcard takes it on every address of its
		// family, the only one it is compared with.
		return true
	case merr == nil && m.IsUnspecified() && herr != nil:
		// A host name: another milter listener, of a's family, binds
		// one of its addresses of that family, which the wildcard
		// covers; the metrics listener binds its IPv4 address if it
		// has one, as net.Listen does, so an IPv4 wildcard covers it.
		// (The other way round, the first case above says the same.)
		return network == a.Network || network == "tcp" && m.Is4()
	case merr == nil && m.IsUnspecified():
		// A milter listener is tcp4 or tcp6: one family only.
		return h.Is4() == m.Is4()
	}
	return merr == nil && herr == nil && m == h
}

// loopbackFor returns the address a listener of network ("tcp4", "tcp6"
// or "tcp") binds for host when host is "localhost": the loopback address
// of its family, IPv4 for "tcp", as net.Listen picks the IPv4 address of
// a name with both. /etc/hosts gives localhost those addresses (RFC 6761
// section 6.3 has resolvers answer so), so config check need not look
// it up. Any other host is returned as is.
func loopbackFor(host, network string) string {
	if !strings.EqualFold(host, "localhost") {
		return host
	}
	if network == "tcp6" {
		return "::1"
	}
	return "127.0.0.1"
}

// Marshal returns the effective config as YAML, defaults filled in.
// Each filter is printed with the timeout and on_failure that apply to
// it, those of filter_defaults where the entry sets none: an
// administrator reading the output should not have to work them out.
// Options are printed with the values their aliases refer to (see
// expandAliases). c itself is left as written.
func (c *Config) Marshal() ([]byte, error) {
	out := *c
	out.Filters = make([]Filter, len(c.Filters))
	budget := maxPrintedNodes
	for i, f := range c.Filters {
		if f.Timeout == 0 {
			f.Timeout = c.FilterDefaults.Timeout
		}
		if f.OnFailure == "" {
			f.OnFailure = c.FilterDefaults.OnFailure
		}
		if f.Options.Kind != 0 {
			opts, err := expandAliases(&f.Options, &budget)
			if err != nil {
				return nil, fmt.Errorf("filters[%d].options: %w", i, err)
			}
			f.Options = *opts
		}
		out.Filters[i] = f
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&out); err != nil {
		return nil, err
	}
	enc.Close()
	return b.Bytes(), nil
}

// maxPrintedNodes bounds the nodes of the options Marshal prints once
// their aliases are expanded: nested aliases ("billion laughs") would
// make a few hundred bytes a tree of a billion nodes. A real
// configuration has a few hundred.
const maxPrintedNodes = 1 << 16

// expandAliases returns a copy of n in which each alias is replaced by a
// copy of the node it refers to, and no node has an anchor. Printed as
// written, an alias would refer to an anchor that is no longer in the
// output when it was set on a value Marshal prints from the decoded
// config (timeout: &t 5s, then delay: *t in options): the printed
// configuration would not read back ("unknown anchor"), nor show the
// value the filter gets. budget counts down the nodes made.
func expandAliases(n *yaml.Node, budget *int) (*yaml.Node, error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("more than %d values once aliases are expanded", maxPrintedNodes)
	}
	cp := *n
	cp.Anchor = ""
	if n.Content != nil {
		cp.Content = make([]*yaml.Node, len(n.Content))
		for i, item := range n.Content {
			c, err := expandAliases(item, budget)
			if err != nil {
				return nil, err
			}
			cp.Content[i] = c
		}
	}
	return &cp, nil
}

// Size is a byte count written as a number or with a unit: "512KiB",
// "1MiB", "10MB", "1GiB".
type Size int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size such as 1048576 or \"1MiB\"", n.Line)
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Size) MarshalYAML() (any, error) { return int64(s), nil }

// ParseSize parses a size such as "1MiB".
func ParseSize(s string) (Size, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
	}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want e.g. 1048576, \"512KiB\" or \"1MiB\"", s)
	}
	return Size(n * mult), nil
}

// FileMode is a permission mode written in octal, e.g. "0660".
type FileMode os.FileMode

// defaultSocketMode is the mode of a unix socket whose listener gives none.
const defaultSocketMode = 0o660

// UnmarshalYAML implements yaml.Unmarshaler. A mode of 0 is refused: it
// would let no MTA connect, and it used to mean the default silently.
func (m *FileMode) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseUint(strings.TrimPrefix(n.Value, "0o"), 8, 32)
	if n.Kind != yaml.ScalarNode || err != nil || v > 0o777 {
		return fmt.Errorf("line %d: mode %q: want octal permissions such as \"0660\"", n.Line, n.Value)
	}
	if v == 0 {
		return fmt.Errorf("line %d: mode %q would let no one connect; leave mode out for the default \"0660\"", n.Line, n.Value)
	}
	*m = FileMode(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (m FileMode) MarshalYAML() (any, error) { return fmt.Sprintf("%04o", uint32(m)), nil }
