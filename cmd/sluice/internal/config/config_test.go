package config_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

func TestDefaultsWithoutFile(t *testing.T) {
	c, err := config.Load("", filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen[0].Address != "inet:127.0.0.1:7357" || c.ShutdownTimeout != 30*time.Second || c.Body.MemoryLimit != 1<<20 {
		t.Errorf("defaults: %+v", c)
	}
	// An empty file means the defaults too.
	c2, err := config.Parse("empty.yml", nil, filtertest.Registry())
	if err != nil || c2.Listen[0].Address != c.Listen[0].Address {
		t.Errorf("empty file: %+v %v", c2, err)
	}
	// So do comments alone and an empty mapping, and each is marked
	// empty, for a reload to refuse.
	for _, src := range []string{"", "# x\n", "{}\n", "# x\n{ }\n"} {
		c3, err := config.Parse("empty.yml", []byte(src), filtertest.Registry())
		if err != nil || !c3.Empty() || c3.Listen[0].Address != c.Listen[0].Address {
			t.Errorf("%q: empty %v, %v", src, c3 != nil && c3.Empty(), err)
		}
	}
	if c4, err := config.Parse("x.yml", []byte("log:\n  level: debug\n"), filtertest.Registry()); err != nil || c4.Empty() {
		t.Errorf("a file with a setting: empty %v, %v", c4 != nil && c4.Empty(), err)
	}
}

func TestParseGood(t *testing.T) {
	src := `# sample
listen:
  - address: unix:/run/sluice/sluice.sock
    mode: "0660"
    group: "0"
  - address: inet6:[::1]:7357
log:
  format: json
  level: debug
metrics:
  listen: 127.0.0.1:9999
shutdown_timeout: 5s
max_connections: 2000
body:
  memory_limit: 512KiB
filter_defaults:
  timeout: 3s
  on_failure: tempfail
filters:
  - type: script
    name: tagger
    timeout: 1s
    options:
      header: X-Tag
  - type: sleep
`
	c, err := config.Parse("s.yml", []byte(src), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen[0].Mode != 0o660 || c.Listen[1].Address != "inet6:[::1]:7357" || c.Body.MemoryLimit != 512<<10 || c.Log.Format != "json" || c.MaxConnections != 2000 {
		t.Errorf("parsed: %+v", c)
	}
	p, err := config.Build(c, filtertest.Registry(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := p.Steps()
	if len(steps) != 2 || steps[0].Filter.Name() != "tagger" || steps[0].Timeout != time.Second || steps[1].Timeout != 3*time.Second {
		t.Errorf("steps: %+v", steps)
	}
	out, err := c.Marshal()
	if err != nil || !strings.Contains(string(out), "header: X-Tag") || !strings.Contains(string(out), `mode: "0660"`) {
		t.Errorf("marshal: %s %v", out, err)
	}
	// The printed config reads back to the same thing.
	c2, err := config.Parse("again.yml", out, filtertest.Registry())
	if err != nil {
		t.Fatalf("re-reading printed config: %v\n%s", err, out)
	}
	if c2.Body.MemoryLimit != c.Body.MemoryLimit || len(c2.Filters) != 2 {
		t.Errorf("round trip: %+v", c2)
	}
}

// Every bad input is an error naming the file, the line and the key.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown top key", "listen:\n  - address: inet:127.0.0.1:1\nlisen: x\n", "bad.yml:3: lisen: unknown key"},
		// A key with nothing after it would keep its default: metrics on
		// where "" turns them off.
		{"string without value", "metrics:\n  listen:\n", "bad.yml:2: metrics.listen: no value"},
		{"duration without value", "shutdown_timeout:\n", "bad.yml:1: shutdown_timeout: no value"},
		{"filter timeout without value", "filters:\n  - type: script\n    timeout: ~\n", "bad.yml:3: filters[0].timeout: no value"},
		{"unknown nested key", "log:\n  format: text\n  colour: yes\n", "bad.yml:3: log.colour: unknown key"},
		{"wrong type", "shutdown_timeout: soon\n", "bad.yml:1: shutdown_timeout: \"soon\": want a duration with a unit"},
		{"duration without unit", "filter_defaults:\n  timeout: 30\n", "bad.yml:2: filter_defaults.timeout: \"30\": want a duration with a unit"},
		// "d" looks like a unit to an administrator; the error says
		// which ones there are.
		{"duration in days", "shutdown_timeout: 1d\n", "bad.yml:1: shutdown_timeout: \"1d\": want a duration with a unit, such as 30s or 1m30s (units: ms, s, m, h)"},
		{"duration overflow", "shutdown_timeout: 99999999h\n", "bad.yml:1: shutdown_timeout: \"99999999h\": want a duration"},
		{"duration list", "shutdown_timeout: [1s]\n", "bad.yml:1: shutdown_timeout: want a duration"},
		{"filter timeout", "filters:\n  - type: script\n    timeout: 5\n", "bad.yml:3: filters[0].timeout: \"5\": want a duration"},
		// time.ParseDuration takes a bare 0, yaml.v3 does not: the key
		// must be named all the same.
		{"duration bare zero", "filters:\n  - type: script\n    timeout: 0\n", "bad.yml:3: filters[0].timeout: \"0\": want a duration"},
		{"duration bare signed zero", "shutdown_timeout: -0\n", "bad.yml:1: shutdown_timeout: \"-0\": want a duration"},
		{"string for list", "filters: script\n", "bad.yml:1: filters: want a list"},
		{"bad duration value", "shutdown_timeout: -1s\n", "bad.yml:1: shutdown_timeout: must be positive"},
		{"negative connection limit", "max_connections: -1\n", "bad.yml:1: max_connections: must not be negative"},
		{"connection limit not a number", "max_connections: many\n", "bad.yml:1: max_connections:"},
		{"bad format", "log:\n  format: xml\n", "bad.yml:2: log.format:"},
		{"bad level", "log:\n  level: loud\n", "bad.yml:2: log.level:"},
		{"metrics without port", "metrics:\n  listen: localhost\n", "bad.yml:2: metrics.listen:"},
		{"metrics IPv6 without brackets", "metrics:\n  listen: \"::1\"\n", "bad.yml:2: metrics.listen:"},
		{"metrics IPv6 without port", "metrics:\n  listen: \"[::1]\"\n", "bad.yml:2: metrics.listen:"},
		{"metrics two ports", "metrics:\n  listen: \"127.0.0.1:80:80\"\n", "bad.yml:2: metrics.listen:"},
		{"metrics bad port", "metrics:\n  listen: \"127.0.0.1:http\"\n", "bad.yml:2: metrics.listen:"},
		{"bad listener", "listen:\n  - address: inet:127.0.0.1:1\n  - address: tcp:1.2.3.4:5\n", "bad.yml:3: listen[1]:"},
		{"duplicate listener", "listen:\n  - address: inet:127.0.0.1:1\n  - address: inet:127.0.0.1:1\n", "bad.yml:3: listen[1]: inet:127.0.0.1:1 is listed twice"},
		{"mode on inet", "listen:\n  - address: inet:127.0.0.1:1\n    mode: \"0600\"\n", "bad.yml:2: listen[0]: mode and group"},
		{"bad mode", "listen:\n  - address: unix:/tmp/x.sock\n    mode: rwx\n", "bad.yml:3: listen[0].mode: mode \"rwx\": want octal"},
		{"mode too large", "listen:\n  - address: unix:/tmp/x.sock\n    mode: \"01777\"\n", "bad.yml:3: listen[0].mode: mode \"01777\""},
		{"mode zero", "listen:\n  - address: unix:/tmp/x.sock\n    mode: \"0000\"\n", "bad.yml:3: listen[0].mode: mode \"0000\" would let no one connect"},
		{"no listeners", "listen: []\n", "bad.yml:1: listen: at least one"},
		{"empty state_dir", "state_dir: \"\"\n", "bad.yml:1: state_dir: must not be empty"},
		{"bad size", "body:\n  memory_limit: lots\n", "bad.yml:2: body.memory_limit: bad size \"lots\""},
		{"negative size", "body:\n  memory_limit: -1\n", "bad.yml:2: body.memory_limit: bad size \"-1\""},
		{"size list", "body:\n  memory_limit: [1]\n", "bad.yml:2: body.memory_limit: want a size"},
		{"bad policy", "filter_defaults:\n  on_failure: pray\n", "bad.yml:2: filter_defaults.on_failure:"},
		{"unknown filter", "filters:\n  - type: nope\n", "bad.yml:2: filters[0].type: unknown filter type"},
		{"missing type", "filters:\n  - name: x\n", "bad.yml:2: filters[0].type: missing"},
		{"duplicate name", "filters:\n  - type: script\n  - type: script\n", "bad.yml:3: filters[1].name:"},
		// An error of an entry's key is at the key's line, not the
		// entry's first one.
		{"duplicate name given", "filters:\n  - type: script\n    name: a\n  - type: sleep\n    name: a\n", "bad.yml:5: filters[1].name:"},
		// The name goes into the archive's field and the quarantine
		// reason, which would show a blank or control character as
		// "_" or a blank.
		{"blank in filter name", "filters:\n  - type: script\n    name: spam check\n", "bad.yml:3: filters[0].name: \"spam check\": a blank"},
		{"control character in filter name", "filters:\n  - type: script\n    name: \"spam\\x01\"\n", "bad.yml:3: filters[0].name: \"spam\\x01\": a control character"},
		{"line break in filter name", "filters:\n  - type: script\n    name: \"spam\\ncheck\"\n", "bad.yml:3: filters[0].name: \"spam\\ncheck\": a control character"},
		// A name long enough would make those lines longer than the 998
		// octets a header line may have (RFC 5322 2.1.1).
		{"filter name too long", "filters:\n  - type: script\n    name: " + strings.Repeat("n", 65) + "\n", "bad.yml:3: filters[0].name: a name of 65 characters; at most 64"},
		{"filter name far too long", "filters:\n  - type: script\n    name: " + strings.Repeat("n", 800) + "\n", "bad.yml:3: filters[0].name: a name of 800 characters; at most 64"},
		{"negative filter timeout", "filters:\n  - type: script\n    name: a\n    timeout: -1s\n", "bad.yml:4: filters[0].timeout: must not be negative"},
		{"bad filter policy", "filters:\n  - type: script\n    name: a\n    on_failure: pray\n", "bad.yml:4: filters[0].on_failure:"},
		{"unknown filter type after name", "filters:\n  - name: a\n    type: nope\n", "bad.yml:3: filters[0].type: unknown filter type"},
		{"unknown filter key", "filters:\n  - type: script\n    colour: red\n", "bad.yml:3: filters[0].colour: unknown key"},
		{"syntax", "listen: [\n", "bad.yml:"},
		{"second document", "log:\n  level: info\n---\nlog:\n  level: debug\n", "bad.yml:4: a second YAML document"},
		{"second document after empty first", "---\n---\nlog:\n  level: debug\n", "bad.yml:3: a second YAML document"},
		{"third document", "log:\n  level: info\n---\n---\nlog:\n  level: debug\n", "bad.yml:5: a second YAML document"},
		{"broken second document", "log:\n  level: info\n---\nlog: [\n", "bad.yml:"},
		{"empty filter entry", "filters:\n  - type: script\n  -\n", "bad.yml:3: filters[1]: empty entry"},
		{"empty listener entry", "listen:\n  - \n", "bad.yml:2: listen[0]: empty entry"},
		{"list for scalar", "log:\n  format: [a, b]\n", "bad.yml:2: log.format: want a single value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("bad.yml", []byte(tc.src), filtertest.Registry())
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.src)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error %q, want prefix %q", err, tc.want)
			}
		})
	}
}

// A name of 64 characters, the most there may be, is taken, also when
// they are not ASCII.
func TestFilterNameAtLimit(t *testing.T) {
	for _, name := range []string{strings.Repeat("n", 64), strings.Repeat("é", 63) + "n"} {
		c, err := config.Parse("ok.yml", []byte("filters:\n  - type: script\n    name: "+name+"\n"), filtertest.Registry())
		if err != nil {
			t.Fatalf("name of %d characters: %v", len([]rune(name)), err)
		}
		if got := c.Filters[0].EntryName(); got != name {
			t.Errorf("name %q, want %q", got, name)
		}
	}
}

// Filter options are checked strictly by Build, with file and line.
func TestBuildOptionErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"filters:\n  - type: script\n    options:\n      header: X-A\n      hedaer: X-B\n", "bad.yml:5: filters[0].options.hedaer: unknown key"},
		{"filters:\n  - type: sleep\n    options:\n      delay: forever\n", "bad.yml:4: filters[0].options.delay: \"forever\": want a duration"},
		{"filters:\n  - type: script\n    options:\n      header:\n", "bad.yml:4: filters[0].options.header: no value"},
		{"filters:\n  - type: sleep\n    options:\n      delay: 0\n", "bad.yml:4: filters[0].options.delay: \"0\": want a duration"},
	}
	for _, tc := range tests {
		c, err := config.Parse("bad.yml", []byte(tc.src), filtertest.Registry())
		if err != nil {
			t.Fatal(err)
		}
		_, err = config.Build(c, filtertest.Registry(), slog.New(slog.DiscardHandler), nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("error %v, want prefix %q", err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]config.Size{"0": 0, "1024": 1024, "1KiB": 1024, "2 MiB": 2 << 20, "10MB": 10e6, "1GiB": 1 << 30, "5B": 5}
	for in, want := range good {
		if got, err := config.ParseSize(in); err != nil || got != want {
			t.Errorf("%q: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "1TB", "99999999999GiB"} {
		if _, err := config.ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Document markers around the one document are fine: only a second
// document with content is refused.
func TestParseDocumentMarkers(t *testing.T) {
	c, err := config.Parse("s.yml", []byte("---\nlog:\n  level: debug\n...\n---\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" {
		t.Errorf("log.level %q, want debug", c.Log.Level)
	}
}

// The forms of metrics.listen that net.Listen takes are accepted (the
// ones it refuses are in TestParseErrors).
func TestMetricsListenForms(t *testing.T) {
	for _, v := range []string{"[::1]:7358", ":7358", "127.0.0.1:0", "localhost:9"} {
		if _, err := config.Parse("x.yml", []byte("metrics:\n  listen: \""+v+"\"\n"), filtertest.Registry()); err != nil {
			t.Errorf("%s: %v", v, err)
		}
	}
}

// A host with a blank or a control character in metrics.listen is
// refused by config check, as it is in a milter listener: it passed, and
// the start failed on looking the host up ("lookup 127.0.0.1 : no such
// host"); after a reload, which leaves the metrics listener as it is, at
// the next restart, with the milter down with it.
func TestMetricsListenBlankRefused(t *testing.T) {
	for _, v := range []string{"127.0.0.1 :7358", " 127.0.0.1:7358", "127.0.0.1\t:7358", "[ ::1]:7358", "local\u0000host:7358"} {
		src := "log:\n  level: info\nmetrics:\n  listen: " + strconv.Quote(v) + "\n"
		_, err := config.Parse("x.yml", []byte(src), filtertest.Registry())
		if err == nil || !strings.HasPrefix(err.Error(), "x.yml:4: metrics.listen: ") || !strings.Contains(err.Error(), "blank or control character") {
			t.Errorf("metrics.listen %q: %v, want an error at x.yml:4 metrics.listen about the blank", v, err)
		}
	}
}

// A node that aliases repeat is checked once, not once per alias: nested
// aliases ("billion laughs") in a few hundred bytes would otherwise keep
// the strict key walk going for hours, ahead of yaml.v3's own limit on
// aliasing, and hang config check, the start and a reload.
func TestAliasBomb(t *testing.T) {
	const levels = 9
	var src strings.Builder
	src.WriteString("filters:\n  - type: script\n    options:\n")
	fields := make([]reflect.StructField, levels)
	typ := reflect.TypeOf("")
	for i := range levels {
		item := "x"
		if i > 0 {
			item = fmt.Sprintf("*l%d", i-1)
		}
		fmt.Fprintf(&src, "      l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(item+", ", 10), ", "))
		typ = reflect.SliceOf(typ)
		fields[i] = reflect.StructField{Name: fmt.Sprintf("L%d", i), Type: typ, Tag: reflect.StructTag(fmt.Sprintf(`yaml:"l%d"`, i))}
	}
	c, err := config.Parse("bomb.yml", []byte(src.String()), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.DecodeOptions(0, reflect.New(reflect.StructOf(fields)).Interface()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "excessive aliasing") {
			t.Errorf("error %v, want yaml.v3's excessive aliasing", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still checking the options after 10s:\n%s", src.String())
	}
}

// metrics.listen on the port of a milter listener cannot be bound at
// start; it is an error with the file and line, not a pass in config
// check followed by a failed start. Port 0 (any free port) and other
// ports do not clash.
func TestMetricsListenClashesWithMilter(t *testing.T) {
	for _, tc := range []struct {
		milter, metrics string
		clash           bool
	}{
		{"inet:127.0.0.1:7357", "127.0.0.1:7357", true},
		{"inet:0.0.0.0:7357", "127.0.0.1:7357", true},
		{"inet:127.0.0.1:7357", ":7357", true},
		{"inet6:[::1]:7357", "[::1]:7357", true},
		{"inet:127.0.0.1:7357", "127.0.0.1:7358", false},
		{"inet:127.0.0.1:7357", "127.0.0.2:7357", false},
		{"inet:127.0.0.1:0", "127.0.0.1:0", false},
		{"unix:/run/sluice/s.sock", "127.0.0.1:7357", false},
		{"inet6:[::1]:7357", "0.0.0.0:7357", true},
		{"inet6:[::]:7357", "127.0.0.1:7357", false},
		{"inet6:[::]:7357", "[::1]:7357", true},
		{"inet:0.0.0.0:7357", "[::1]:7357", false},
		// A host name, either way round: the metrics listener binds
		// its IPv4 address, which an IPv4 wildcard covers.
		{"inet:mx.example:7357", "0.0.0.0:7357", true},
		{"inet:0.0.0.0:7357", "mx.example:7357", true},
		{"inet:[::ffff:127.0.0.1]:7357", "127.0.0.1:7357", true},
	} {
		src := "listen:\n  - address: " + tc.milter + "\nmetrics:\n  listen: \"" + tc.metrics + "\"\n"
		_, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry())
		if tc.clash && (err == nil || !strings.HasPrefix(err.Error(), "sluice.yml:4: metrics.listen: ")) {
			t.Errorf("%s and metrics %s: error %v, want one at sluice.yml:4 metrics.listen", tc.milter, tc.metrics, err)
		}
		if !tc.clash && err != nil {
			t.Errorf("%s and metrics %s: %v", tc.milter, tc.metrics, err)
		}
	}
}

// Two milter listeners that cannot both be bound (the same port on a
// wildcard and on an address it covers) are refused as a duplicate is,
// rather than passing config check and stopping serve at start.
func TestListenersOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		clash bool
	}{
		{"inet:0.0.0.0:7357", "inet:127.0.0.1:7357", true},
		{"inet:127.0.0.1:7357", "inet:0.0.0.0:7357", true},
		{"inet6:[::]:7357", "inet6:[::1]:7357", true},
		{"inet6:[::]:7357", "inet:0.0.0.0:7357", false},
		{"inet:0.0.0.0:7357", "inet:127.0.0.1:7359", false},
		{"inet:0.0.0.0:0", "inet:127.0.0.1:0", false},
		// A host name is bound on an address of its family, which that
		// family's wildcard covers, whichever comes first.
		{"inet:mx.example:7357", "inet:0.0.0.0:7357", true},
		{"inet:0.0.0.0:7357", "inet:mx.example:7357", true},
		{"inet6:[::]:7357", "inet6:mx.example:7357", true},
		{"inet6:[::]:7357", "inet:mx.example:7357", false},
		{"inet:127.0.0.1:7357", "inet:[::ffff:127.0.0.1]:7357", true},
	} {
		src := "listen:\n  - address: " + tc.a + "\n  - address: " + tc.b + "\n"
		_, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry())
		if tc.clash && (err == nil || !strings.HasPrefix(err.Error(), "sluice.yml:3: listen[1]: ")) {
			t.Errorf("%s and %s: error %v, want one at sluice.yml:3 listen[1]", tc.a, tc.b, err)
		}
		if !tc.clash && err != nil {
			t.Errorf("%s and %s: %v", tc.a, tc.b, err)
		}
	}
}

// An IPv6 listener is written as Postfix writes it in smtpd_milters,
// inet:[::1]:7357 (Postfix has no inet6: kind), and is the same socket
// as sluice's inet6:[::1]:7357, and the IPv6 wildcard's port.
func TestListenIPv6PostfixForm(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		clash bool
	}{
		{"inet:[::1]:7357", "inet6:[::1]:7357", true},
		{"inet6:[::1]:7357", "inet:[::1]:7357", true},
		{"inet:[::]:7357", "inet:[::1]:7357", true},
		{"inet:[::]:7357", "inet:0.0.0.0:7357", false},
		{"inet:[::1]:7357", "inet:127.0.0.1:7357", false},
		{"inet:[::1]:7357", "inet:[::1]:7358", false},
	} {
		src := "listen:\n  - address: " + tc.a + "\n  - address: " + tc.b + "\nmetrics:\n  listen: \"\"\n"
		_, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry())
		if tc.clash && (err == nil || !strings.HasPrefix(err.Error(), "sluice.yml:3: listen[1]: ")) {
			t.Errorf("%s and %s: error %v, want one at sluice.yml:3 listen[1]", tc.a, tc.b, err)
		}
		if !tc.clash && err != nil {
			t.Errorf("%s and %s: %v", tc.a, tc.b, err)
		}
	}
	// The metrics listener on the same address and port clashes with it.
	src := "listen:\n  - address: inet:[::1]:7357\nmetrics:\n  listen: \"[::1]:7357\"\n"
	if _, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry()); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Errorf("metrics.listen on the port of inet:[::1]:7357: %v, want an error naming metrics.listen", err)
	}
}

// A unix listener without a mode gets 0660, and config check prints it:
// the printed config says what the socket will be.
func TestDefaultSocketModePrinted(t *testing.T) {
	c, err := config.Parse("sluice.yml", []byte("listen:\n  - address: unix:/run/sluice/sluice.sock\n  - address: inet:127.0.0.1:7357\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen[0].Mode != 0o660 || c.Listen[1].Mode != 0 {
		t.Errorf("modes %04o and %04o, want 0660 for the unix socket and none for inet", c.Listen[0].Mode, c.Listen[1].Mode)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), `mode: "0660"`) != 1 {
		t.Errorf("printed config does not give the unix socket's mode once:\n%s", out)
	}
	if _, err := config.Parse("again.yml", out, filtertest.Registry()); err != nil {
		t.Errorf("re-reading printed config: %v\n%s", err, out)
	}
}

// config check prints each filter's timeout and on_failure as they
// apply, those of filter_defaults where the entry sets none, so that an
// administrator sees what every filter gets; the printed config reads
// back to the same pipeline.
func TestFilterEffectiveSettingsPrinted(t *testing.T) {
	src := `filter_defaults:
  timeout: 3s
  on_failure: tempfail
filters:
  - type: script
    name: own
    timeout: 1s
    on_failure: accept
  - type: script
    name: inherits
  - type: sleep
    timeout: 0s
`
	c, err := config.Parse("s.yml", []byte(src), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  - type: script\n    name: own\n    timeout: 1s\n    on_failure: accept\n",
		"  - type: script\n    name: inherits\n    timeout: 3s\n    on_failure: tempfail\n",
		"  - type: sleep\n    timeout: 3s\n    on_failure: tempfail\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("printed config lacks\n%s\nin\n%s", want, out)
		}
	}
	// Printing changes nothing in the config itself.
	if c.Filters[1].Timeout != 0 || c.Filters[1].OnFailure != "" {
		t.Errorf("Marshal changed filter %+v", c.Filters[1])
	}
	c2, err := config.Parse("again.yml", out, filtertest.Registry())
	if err != nil {
		t.Fatalf("re-reading printed config: %v\n%s", err, out)
	}
	for _, cfg := range []*config.Config{c, c2} {
		p, err := config.Build(cfg, filtertest.Registry(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		steps := p.Steps()
		if steps[0].Timeout != time.Second || steps[1].Timeout != 3*time.Second || steps[2].Timeout != 3*time.Second ||
			steps[0].OnFailure == steps[1].OnFailure || steps[1].OnFailure != steps[2].OnFailure {
			t.Errorf("steps: %+v", steps)
		}
		p.Close()
	}
}

// Values are taken as written: no environment variable is expanded, and
// a relative path is left for the daemon to resolve against its working
// directory, as docs/configuration.md says.
func TestValuesTakenAsWritten(t *testing.T) {
	t.Setenv("SLUICE_TEST_DIR", "/expanded")
	c, err := config.Parse("/etc/sluice/sluice.yml", []byte("state_dir: $SLUICE_TEST_DIR/state\nbody:\n  temp_dir: var/tmp\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "$SLUICE_TEST_DIR/state" || c.Body.TempDir != "var/tmp" {
		t.Errorf("state_dir %q, temp_dir %q: want them as written", c.StateDir, c.Body.TempDir)
	}
}

// A file far larger than any configuration (a mailbox or a log named by
// mistake) is refused before it is read whole and decoded, which would
// take memory many times its size; a directory is an error naming it.
func TestLoadRefusesHugeFileAndDirectory(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yml")
	// Sparse: the test writes no data.
	if err := os.WriteFile(huge, []byte("log:\n  level: info\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, config.MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(huge, filtertest.Registry())
	if err == nil || !strings.Contains(err.Error(), huge) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: error %v, want one naming the file and its size", err)
	}
	_, err = config.Load(dir, filtertest.Registry())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: error %v, want one naming it", err)
	}
}

// owner is a filter that owns the field its options name.
type owner struct{ field string }

func (o owner) Name() string          { return "owner" }
func (o owner) Needs() filters.Needs  { return filters.Needs{} }
func (o owner) OwnedFields() []string { return []string{o.field} }
func (o owner) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	return filters.Verdict{}, nil
}

// A filter deletes a message's fields of the names it owns as forged, so
// one set to own Subject (header.name: Subject in the Bayes filter) would
// strip every message's subject: such a configuration is refused, at the
// filter's line.
func TestOwnedMessageFieldRefused(t *testing.T) {
	reg := filtertest.Registry()
	reg["owner"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
		var opts struct {
			Field string `yaml:"field"`
		}
		if err := decode(&opts); err != nil {
			return nil, err
		}
		return owner{opts.Field}, nil
	}
	for field, want := range map[string]string{
		"Subject":        "x.yml:2: filters[0] (owner): adds header field Subject, a field of the message itself",
		"content-type":   "x.yml:2: filters[0] (owner): adds header field content-type, a field of the message itself",
		"X-Sluice-Bayes": "",
	} {
		c, err := config.Parse("x.yml", []byte("filters:\n  - type: owner\n    options:\n      field: "+field+"\n"), reg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = config.Build(c, reg, slog.New(slog.DiscardHandler), nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", field, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("%s: error %v, want prefix %q", field, err, want)
		}
	}
}

// A number with a fraction where a whole number belongs is an error with
// the key and line: yaml.v3 would cut it to its whole part without a
// word, so that max_connections: 0.5 meant no limit at all and a filter's
// count of 0.9 its default.
func TestWholeNumberRefusesFraction(t *testing.T) {
	for _, src := range []string{"max_connections: 0.5\n", "max_connections: 1e3\n", "max_connections: 2.0\n"} {
		_, err := config.Parse("f.yml", []byte(src), filtertest.Registry())
		if err == nil || !strings.Contains(err.Error(), "f.yml:1: max_connections:") || !strings.Contains(err.Error(), "whole number") {
			t.Errorf("%q: error %v, want a whole number asked for at f.yml:1 max_connections", src, err)
		}
	}
	c, err := config.Parse("f.yml", []byte("max_connections: 0x10\nfilters:\n  - type: script\n    options:\n      count: 7\n      limit: 0.9\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnections != 16 {
		t.Errorf("max_connections 0x10 read as %d", c.MaxConnections)
	}
	var opts struct {
		Count int    `yaml:"count"`
		Limit *uint8 `yaml:"limit"`
	}
	err = c.DecodeOptions(0, &opts)
	if err == nil || !strings.Contains(err.Error(), "f.yml:6: filters[0].options.limit:") || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("options: error %v (limit %v), want a whole number asked for at f.yml:6 filters[0].options.limit", err, opts.Limit)
	}
}

// The effective configuration that config check prints is YAML that
// reads back as the same configuration, also when the file shares
// values through anchors and aliases: the options are printed with the
// values they refer to, not with an alias whose anchor, on a setting
// printed as a plain value, is gone from the output.
func TestMarshalExpandsAliases(t *testing.T) {
	src := `filters:
  - type: sleep
    timeout: &t 5s
    options: &o
      delay: *t
  - type: sleep
    name: second
    options: *o
  - type: script
    options:
      header: &h X-Shared
      reject_text: *h
`
	c, err := config.Parse("a.yml", []byte(src), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Check(c, filtertest.Registry(), nil); err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Parse("printed.yml", out, filtertest.Registry())
	if err != nil {
		t.Fatalf("printed config does not read back: %v\n%s", err, out)
	}
	var delay struct {
		Delay time.Duration `yaml:"delay"`
	}
	for i := range 2 {
		if err := again.DecodeOptions(i, &delay); err != nil || delay.Delay != 5*time.Second {
			t.Errorf("filters[%d].options read back: delay %v, err %v; want 5s\n%s", i, delay.Delay, err, out)
		}
	}
	for _, want := range []string{"      delay: 5s\n", "      header: X-Shared\n      reject_text: X-Shared\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("printed config lacks\n%s\nin\n%s", want, out)
		}
	}

	// Nested aliases that expand to a billion values are refused, not
	// expanded.
	var bomb strings.Builder
	bomb.WriteString("filters:\n  - type: script\n    options:\n")
	for i := range 9 {
		item := "x"
		if i > 0 {
			item = fmt.Sprintf("*l%d", i-1)
		}
		fmt.Fprintf(&bomb, "      l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(item+", ", 10), ", "))
	}
	c, err = config.Parse("bomb.yml", []byte(bomb.String()), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), "filters[0].options:") {
		t.Errorf("alias bomb printed: error %v, want one naming filters[0].options", err)
	}
}

// An empty key ("": x, or a "?" with no key, as a template whose
// variable came out empty writes) is an unknown key like any other. It
// matched the fields that have no key of their own (Config.File, the
// unexported ones), so the strict check let it through, and yaml.v3
// dropped it without a word.
func TestEmptyKeyRefused(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"\"\": /var/lib/other\n", `k.yml:1: "": unknown key`},
		{"state_dir: /x\n? \n: 7\n", `k.yml:2: "": unknown key`},
		{"filters:\n  - type: script\n    '': 5s\n", `k.yml:3: filters[0]."": unknown key`},
	} {
		_, err := config.Parse("k.yml", []byte(tc.src), filtertest.Registry())
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want prefix %q", tc.src, err, tc.want)
		}
	}
	c, err := config.Parse("k.yml", []byte("filters:\n  - type: script\n    options:\n      \"\": X-Other\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		Header string `yaml:"header"`
		seen   bool
	}
	err = c.DecodeOptions(0, &opts)
	if want := `k.yml:4: filters[0].options."": unknown key`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("options: error %v, want prefix %q (seen %v)", err, want, opts.seen)
	}
}

// An unknown key far longer than any known one costs no more than its
// reading: the search for the known key it might be a typo of filled a
// table of its length times each known key's, 4 GB allocated and eight
// seconds for a key of 4 MiB (an explicit "? " key has no length limit),
// which is no typo of anything.
func TestLongUnknownKeyCheap(t *testing.T) {
	src := "? " + strings.Repeat("a", 1<<20) + "\n: 1\n"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := config.Parse("k.yml", []byte(src), filtertest.Registry())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("error %.200v, want an unknown key", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("reading a file of 1 MiB with one unknown key allocated %d MiB", alloc>>20)
	}
}

// A whole number written with a leading 0 is an error: yaml.v3 reads
// 0100 as octal, 64, as YAML 1.1 had it, so that max_connections: 0100
// let in 64 connections, and 09, no octal, as the float 9.
func TestWholeNumberLeadingZero(t *testing.T) {
	for _, src := range []string{"max_connections: 0100\n", "max_connections: -0100\n", "max_connections: 09\n", "max_connections: 00\n"} {
		_, err := config.Parse("z.yml", []byte(src), filtertest.Registry())
		if err == nil || !strings.HasPrefix(err.Error(), "z.yml:1: max_connections:") || !strings.Contains(err.Error(), "leading 0") {
			t.Errorf("%q: error %v, want one about the leading 0 at z.yml:1 max_connections", src, err)
		}
	}
	for src, want := range map[string]int{"max_connections: 0\n": 0, "max_connections: 0o100\n": 64, "max_connections: 100\n": 100} {
		c, err := config.Parse("z.yml", []byte(src), filtertest.Registry())
		if err != nil || c.MaxConnections != want {
			t.Errorf("%q: %v, max_connections %v; want %d", src, err, c, want)
		}
	}
	c, err := config.Parse("z.yml", []byte("filters:\n  - type: script\n    options:\n      count: 010\n"), filtertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	var opts struct {
		Count int `yaml:"count"`
	}
	if err := c.DecodeOptions(0, &opts); err == nil || !strings.HasPrefix(err.Error(), "z.yml:4: filters[0].options.count:") {
		t.Errorf("options: error %v (count %d), want one at z.yml:4 filters[0].options.count", err, opts.Count)
	}
}

// An error quotes the key and often the value; one of megabytes (a blob
// pasted, a file named by mistake) made an error line of megabytes in the
// terminal and in the log of a failed reload. The line keeps its place,
// the key's and the value's start, and the end of its message.
func TestErrorOfHugeKeyOrValueBounded(t *testing.T) {
	for name, src := range map[string]string{
		"key":   "? " + strings.Repeat("é", 1<<19) + "\n: 1\n",
		"value": "shutdown_timeout: \"" + strings.Repeat("x", 1<<20) + "\"\n",
	} {
		_, err := config.Parse("h.yml", []byte(src), filtertest.Registry())
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := err.Error()
		if len(msg) > 2048 || !strings.HasPrefix(msg, "h.yml:1: ") || !strings.Contains(msg, "bytes left out") || !utf8.ValidString(msg) {
			t.Errorf("%s: error of %d bytes: %.300s", name, len(msg), msg)
		}
	}
	// A short one is whole.
	_, err := config.Parse("h.yml", []byte("max_connections: 0.5\n"), filtertest.Registry())
	if err == nil || strings.Contains(err.Error(), "left out") {
		t.Errorf("short error: %v", err)
	}
}

// "localhost" in a milter listener or metrics.listen is the loopback
// address the listener binds (IPv4 for inet and metrics.listen, IPv6 for
// inet6): on the port of the other, config check refuses it as it
// refuses 127.0.0.1, naming both keys. Compared as written, inet:localhost:7357
// with metrics.listen 127.0.0.1:7357 passed config check and serve then
// failed to bind.
func TestListenLocalhostClashes(t *testing.T) {
	for _, tc := range []struct {
		milter, metrics string
		clash           bool
	}{
		{"inet:localhost:7357", "127.0.0.1:7357", true},
		{"inet:LocalHost:7357", "localhost:7357", true},
		{"inet:127.0.0.1:7357", "localhost:7357", true},
		{"inet:0.0.0.0:7357", "localhost:7357", true},
		{"inet:localhost:7357", "0.0.0.0:7357", true},
		{"inet:localhost:7357", "[::]:7357", true},
		{"inet6:localhost:7357", "[::1]:7357", true},
		{"inet6:[::]:7357", "localhost:7357", false},
		{"inet:localhost:7357", "[::1]:7357", false},
		{"inet:localhost:7357", "127.0.0.2:7357", false},
		{"inet:localhost:7357", "localhost:7358", false},
	} {
		src := "listen:\n  - address: " + tc.milter + "\nmetrics:\n  listen: \"" + tc.metrics + "\"\n"
		_, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry())
		if tc.clash && (err == nil || !strings.HasPrefix(err.Error(), "sluice.yml:4: metrics.listen: ") || !strings.Contains(err.Error(), "listen[0] ("+tc.milter+")")) {
			t.Errorf("%s and metrics %s: error %v, want one at sluice.yml:4 metrics.listen naming listen[0]", tc.milter, tc.metrics, err)
		}
		if !tc.clash && err != nil {
			t.Errorf("%s and metrics %s: %v", tc.milter, tc.metrics, err)
		}
	}
	for _, tc := range []struct {
		a, b  string
		clash bool
	}{
		{"inet:127.0.0.1:7357", "inet:localhost:7357", true},
		{"inet:localhost:7357", "inet:0.0.0.0:7357", true},
		{"inet6:localhost:7357", "inet6:[::1]:7357", true},
		{"inet6:[::]:7357", "inet6:localhost:7357", true},
		{"inet:localhost:7357", "inet6:localhost:7357", false},
		{"inet:localhost:7357", "inet:127.0.0.2:7357", false},
	} {
		src := "listen:\n  - address: " + tc.a + "\n  - address: " + tc.b + "\n"
		_, err := config.Parse("sluice.yml", []byte(src), filtertest.Registry())
		if tc.clash && (err == nil || !strings.HasPrefix(err.Error(), "sluice.yml:3: listen[1]: ") || !strings.Contains(err.Error(), "listen[0]")) {
			t.Errorf("%s and %s: error %v, want one at sluice.yml:3 listen[1] naming listen[0]", tc.a, tc.b, err)
		}
		if !tc.clash && err != nil {
			t.Errorf("%s and %s: %v", tc.a, tc.b, err)
		}
	}
}

// A filter checks its options after decoding them and its error names the
// option by its key path, without a line. The error points at that
// option's line, not at the entry's, which in a long options block was
// lines away from the value at fault. An error that names no option the
// file gives keeps the entry's line.
func TestFilterOptionErrorLine(t *testing.T) {
	reg := filtertest.Registry()
	reg["picky"] = func(env filters.Env, decode func(any) error) (filters.Filter, error) {
		var opts struct {
			Header  string            `yaml:"header"`
			Timeout string            `yaml:"timeout"`
			Targets map[string]string `yaml:"targets"`
			Zones   []struct {
				Zone  string   `yaml:"zone"`
				Codes []string `yaml:"codes"`
			} `yaml:"zones"`
			Fail string `yaml:"fail"`
		}
		if err := decode(&opts); err != nil {
			return nil, err
		}
		return nil, errors.New(opts.Fail)
	}
	const src = `filters:
  - type: script
  - type: picky
    name: checker
    options:
      header: X-Checked
      timeout: 5s
      targets:
        spam: /var/mail/spam
        ham: /var/mail/ham
      zones:
        - zone: a.example
        - zone: b.example
          codes:
            - 127.0.0.2
            - 127.0.0.3
`
	for _, tc := range []struct{ fail, want string }{
		{"timeout 5s: must be below 1s", "p.yml:7: filters[1] (checker): timeout 5s: must be below 1s"},
		{"header: not a field name", "p.yml:6: filters[1] (checker): header: not a field name"},
		{"targets.ham: not writable", "p.yml:10: filters[1] (checker): targets.ham: not writable"},
		{`zones[1].zone "b.example": listed twice`, `p.yml:13: filters[1] (checker): zones[1].zone "b.example": listed twice`},
		{"zones[1].codes[1]: bad code", "p.yml:16: filters[1] (checker): zones[1].codes[1]: bad code"},
		// The key path as far as the file gives it.
		{"zones[1].action: set a threshold", "p.yml:13: filters[1] (checker): zones[1].action: set a threshold"},
		{"zones[5].zone: missing", "p.yml:11: filters[1] (checker): zones[5].zone: missing"},
		// No option of the file: the entry's line.
		{"reply: missing", "p.yml:3: filters[1] (checker): reply: missing"},
		{"header and timeout must not be equal", "p.yml:3: filters[1] (checker): header and timeout must not be equal"},
		{"/etc/rules:7: bad rule", "p.yml:3: filters[1] (checker): /etc/rules:7: bad rule"},
	} {
		c, err := config.Parse("p.yml", []byte(src+"      fail: "+strconv.Quote(tc.fail)+"\n"), reg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = config.Build(c, reg, slog.New(slog.DiscardHandler), nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.fail, err, tc.want)
		}
	}
}
