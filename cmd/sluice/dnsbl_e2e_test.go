package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"
	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// dnsblMetric returns the value of the series of name whose labels
// include all of labels ("zone=\"bl.test\""...), or -1 when there is none.
func dnsblMetric(metrics, name string, labels ...string) float64 {
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(","+set+",", ","+l+",")
		}
		if all {
			v, err := strconv.ParseFloat(value, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// dnsblSession runs one SMTP session from source through the MTA and
// returns the greeting and the reply that ended the mail transaction.
func dnsblSession(t *testing.T, mta *mtatest.MTA, source, rcpt string) (greeting, last mtatest.Reply) {
	t.Helper()
	c := mtatest.DialSMTPFrom(t, mta.Addr(), source)
	defer c.Close()
	if r := c.Cmd("EHLO client.example"); r.Code != 250 {
		return c.Greeting, r
	}
	raw := []byte("From: alice@example.org\r\nTo: " + rcpt + "\r\nSubject: from " + source +
		"\r\nMessage-ID: <" + source + "." + rcpt + ">\r\n\r\nHello.\r\n")
	r := c.Send("alice@example.org", []string{rcpt}, raw)
	c.Quit()
	return c.Greeting, r
}

// End to end through real Postfix: the test's DNS server is the
// filter's resolver and loopback clients are checked. A client from a
// listed address is refused with the reply naming the list, an unlisted
// one delivered, a client in a tag list delivered with the tag; with the
// DNS server stopped mail is delivered within the lookup timeout and the
// failure is counted.
func TestDNSBLEndToEndPostfix(t *testing.T) {
	mtatest.Require(t)
	dnsSrv := dnsbltest.Start(t)
	// 127.0.0.2 is both a listed client and the lists' test entry.
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	dnsSrv.AddA("2.0.0.127.tag.test", 300, "127.0.0.2")
	dnsSrv.AddA("4.0.0.127.tag.test", 300, "127.0.0.3")
	dnsSrv.AddTXT("4.0.0.127.tag.test", 300, "Tagged for testing")

	const timeout, attempts = 500 * time.Millisecond, 2
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
log:
  level: debug
shutdown_timeout: 5s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      timeout: %s
      attempts: %d
      probe_interval: 200ms
      skip_private: false
      zones:
        - zone: bl.test
          codes:
            127.0.0.2: listed for testing
          reply: "554 5.7.1 Client {listed} rejected: listed on {zone} ({reason})"
        - zone: tag.test
          action: tag
          txt: true
          score: 1.5
`, sock, dnsSrv.Addr, timeout, attempts))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	// The listed client: refused. Postfix 3.7 greets a client refused at
	// connect with its own "554 ... not accepting connections", accepts
	// EHLO, and answers MAIL FROM (and every later command) with the
	// milter's reply, which names the zone.
	g, r := dnsblSession(t, mta, "127.0.0.2", "listed@lab.example")
	want := "5.7.1 Client 127.0.0.2 rejected: listed on bl.test (listed for testing)"
	if g.Code != 554 || r.Code != 554 || r.Text != want {
		t.Errorf("listed client: greeting %v, reply %v; want 554 and 554 %s", g, r, want)
	}
	// The unlisted client and the tagged one are delivered.
	for _, c := range []struct{ source, rcpt string }{{"127.0.0.1", "clean@lab.example"}, {"127.0.0.4", "tagged@lab.example"}} {
		if g, r := dnsblSession(t, mta, c.source, c.rcpt); g.Code != 220 || r.Code != 250 {
			t.Errorf("client %s: greeting %v, reply %v; want 220, 250", c.source, g, r)
		}
	}
	mta.WaitDelivered(t, 2, 20*time.Second)
	mta.WaitIdle(t, 20*time.Second)
	for _, d := range mta.Delivered(t) {
		tag := strings.ReplaceAll(d.Get("X-Sluice-DNSBL"), "\n\t", " ")
		score := d.Get("X-Sluice-DNSBL-Score")
		switch d.Recipient() {
		case "clean@lab.example":
			if tag != "" || score != "" {
				t.Errorf("unlisted client's message tagged: %q, %q", tag, score)
			}
		case "tagged@lab.example":
			if want := `tag.test; client=127.0.0.4; code=127.0.0.3; score=1.5; reason="Tagged for testing"`; tag != want || score != "1.5" {
				t.Errorf("tagged message: X-Sluice-DNSBL %q, score %q; want %q, 1.5", tag, score, want)
			}
		default:
			t.Errorf("unexpected delivery to %s", d.Recipient())
		}
	}
	m := td.metrics(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sluice_dnsbl_lookups_total", []string{`zone="bl.test"`, `result="listed"`}, 1},
		{"sluice_dnsbl_lookups_total", []string{`zone="bl.test"`, `result="not_listed"`}, 2},
		{"sluice_dnsbl_listed_total", []string{`zone="tag.test"`, `code="127.0.0.3"`}, 1},
		{"sluice_dnsbl_list_up", []string{`filter="dnsbl"`, `zone="bl.test"`}, 1},
		{"sluice_dnsbl_list_up", []string{`zone="tag.test"`}, 1},
	} {
		if got := dnsblMetric(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// A resolver that swallows the queries for one client (a firewall
	// dropping packets): its mail is delivered once the lookups time out,
	// and the timeouts are counted.
	dnsSrv.SetBehaviour("5.0.0.127.bl.test", dnsbltest.Drop)
	dnsSrv.SetBehaviour("5.0.0.127.tag.test", dnsbltest.Drop)
	start := time.Now()
	if _, r := dnsblSession(t, mta, "127.0.0.5", "slow@lab.example"); r.Code != 250 {
		t.Fatalf("with the resolver not answering: reply %v, want 250 (fail open)", r)
	}
	if took, bound := time.Since(start), attempts*timeout+2*time.Second; took < attempts*timeout || took > bound {
		t.Errorf("with the resolver not answering the session took %s, want between %s (the lookup waited) and %s", took, attempts*timeout, bound)
	}
	if got := dnsblMetric(td.metrics(t), "sluice_dnsbl_errors_total", `zone="bl.test"`, `kind="timeout"`); got != 1 {
		t.Errorf("timeouts counted for bl.test: %v, want 1", got)
	}

	// The DNS server goes away. A new client (nothing cached for it) is
	// delivered, within the lookup's time bound, and the failure counted.
	dnsSrv.Stop()
	start = time.Now()
	if _, r := dnsblSession(t, mta, "127.0.0.3", "late@lab.example"); r.Code != 250 {
		t.Fatalf("with the DNS server stopped: reply %v, want 250 (fail open)", r)
	}
	if took, bound := time.Since(start), attempts*timeout+2*time.Second; took > bound {
		t.Errorf("with the DNS server stopped the session took %s, more than the lookup bound plus slack (%s)", took, bound)
	}
	ds := mta.WaitDelivered(t, 4, 20*time.Second)
	if d := ds[len(ds)-1]; d.Recipient() != "late@lab.example" || d.Get("X-Sluice-DNSBL") != "" {
		t.Errorf("last delivery to %s with tag %q", d.Recipient(), d.Get("X-Sluice-DNSBL"))
	}
	m = td.metrics(t)
	failed := 0.0
	for _, kind := range []string{"network", "timeout"} {
		failed += max(0, dnsblMetric(m, "sluice_dnsbl_errors_total", `zone="bl.test"`, `kind="`+kind+`"`))
	}
	if failed < 1 || dnsblMetric(m, "sluice_dnsbl_lookups_total", `zone="bl.test"`, `result="error"`) < 1 {
		t.Errorf("the failed lookups are not counted:\n%s", grepLines(m, "sluice_dnsbl_"))
	}
	if !strings.Contains(td.log.String(), "dnsbl: lookup failed; treated as not listed") {
		t.Error("the failed lookup is not logged")
	}
	waitFor(t, func() bool { return dnsblMetric(td.metrics(t), "sluice_dnsbl_list_up", `zone="bl.test"`) == 0 })
}

// The daemon keeps a dnsbl entry's cache across a reload: the answer
// looked up before SIGHUP is not asked for again after it, while the new
// configuration (here its reply) applies at once.
func TestDNSBLReloadKeepsCache(t *testing.T) {
	dnsSrv := dnsbltest.Start(t)
	const name = "1.2.0.192.bl.test"
	dnsSrv.AddA(name, 3600, "127.0.0.2")
	cfg := func(word string) string {
		return fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      probe_interval: 0s
      zones:
        - zone: bl.test
          reply: "554 5.7.1 %s {listed}"
`, dnsSrv.Addr, word)
	}
	td := startDaemonWith(t, cfg("before"))
	connect := func() string {
		t.Helper()
		a := td.info.Milter[0]
		c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
		s, err := c.Session()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		act, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d %s", act.SMTPCode, act.SMTPText)
	}
	if got := connect(); got != "554 5.7.1 before 192.0.2.1" {
		t.Fatalf("before the reload: %q", got)
	}
	os.WriteFile(td.config, []byte(cfg("after")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	if got := connect(); got != "554 5.7.1 after 192.0.2.1" {
		t.Errorf("after the reload: %q", got)
	}
	if n := dnsSrv.Count(name, dns.TypeA); n != 1 {
		t.Errorf("%d queries for %s across the reload, want 1 (the cache survives)", n, name)
	}
	if got := dnsblMetric(td.metrics(t), "sluice_dnsbl_cache_hits_total", `zone="bl.test"`); got != 1 {
		t.Errorf("cache hits %v, want 1", got)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Every configuration example of docs/dnsbl.md ("# sluice.yml" blocks)
// builds a working pipeline with the shipped registry.
func TestDNSBLDocExamples(t *testing.T) {
	n := 0
	for _, b := range yamlBlocks("docs/dnsbl.md", readDoc(t, "docs/dnsbl.md")) {
		text := dedent(b.text)
		if !strings.HasPrefix(text, "# sluice.yml") {
			continue
		}
		n++
		cfg, err := config.Parse(fmt.Sprintf("docs/dnsbl.md:%d", b.line), []byte(text), registry())
		if err != nil {
			t.Errorf("docs/dnsbl.md:%d: %v", b.line, err)
			continue
		}
		p, err := config.Build(cfg, registry(), slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Errorf("docs/dnsbl.md:%d: %v", b.line, err)
			continue
		}
		if len(p.Steps()) == 0 || !regexp.MustCompile(`^dnsbl`).MatchString(p.Steps()[0].Filter.Name()) {
			t.Errorf("docs/dnsbl.md:%d: the example has no dnsbl filter", b.line)
		}
		p.Close()
	}
	if n < 2 {
		t.Errorf("found %d configuration examples in docs/dnsbl.md, want at least 2", n)
	}
}

// A list whose zone a reload removes, or renames (a typo put right),
// loses its sluice_dnsbl_list_up series with the reload: the series of
// a zone no longer used would report the list down for ever, and
// SluiceDNSBLListDown fire until a restart. The lists that stay keep
// theirs.
func TestDNSBLReloadDropsHealthOfRemovedZone(t *testing.T) {
	dnsSrv := dnsbltest.Start(t)
	dnsSrv.AddA("2.0.0.127.bl.test", 300, "127.0.0.2")
	cfg := func(zones ...string) string {
		s := fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      probe_interval: 100ms
      zones:
`, dnsSrv.Addr)
		for _, z := range zones {
			s += "        - zone: " + z + "\n"
		}
		return s
	}
	td := startDaemonWith(t, cfg("bl.test", "bl.tset"))
	waitFor(t, func() bool {
		m := td.metrics(t)
		return dnsblMetric(m, "sluice_dnsbl_list_up", `zone="bl.tset"`) == 0 &&
			dnsblMetric(m, "sluice_dnsbl_list_up", `zone="bl.test"`) == 1
	})
	os.WriteFile(td.config, []byte(cfg("bl.test")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	// No session holds the old configuration: it is closed at once.
	time.Sleep(300 * time.Millisecond) // a few probe rounds of the new one
	m := td.metrics(t)
	if v := dnsblMetric(m, "sluice_dnsbl_list_up", `zone="bl.tset"`); v != -1 {
		t.Errorf("the removed zone still has sluice_dnsbl_list_up %v:\n%s", v, grepLines(m, "sluice_dnsbl_list_up"))
	}
	if v := dnsblMetric(m, "sluice_dnsbl_list_up", `zone="bl.test"`); v != 1 {
		t.Errorf("the zone kept has sluice_dnsbl_list_up %v, want 1", v)
	}
}

// A reload hands the health probes of a list over to the new
// configuration at once, even while a milter connection opened before it
// still uses the old one: the old filter, still answering that
// connection's lookups, probes no more, so it cannot overwrite what the
// new one finds in sluice_dnsbl_list_up. Here both configurations name
// the list "bl", the old one at zone old.test, whose test entry is gone,
// the new one at new.test, which answers; the old filter went on
// probing old.test and setting the series to 0 until the connection
// ended.
func TestDNSBLReloadStopsProbesOfTheOldFilter(t *testing.T) {
	dnsSrv := dnsbltest.Start(t)
	const oldProbe, newProbe = "2.0.0.127.old.test", "2.0.0.127.new.test"
	dnsSrv.AddA(newProbe, 300, "127.0.0.2")
	dnsSrv.AddA("1.2.0.192.old.test", 300, "127.0.0.2")
	cfg := func(zone string) string {
		return fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
filters:
  - type: dnsbl
    options:
      servers: ["%s"]
      probe_interval: 100ms
      ip_stage: mail
      zones:
        - zone: %s
          name: bl
          reply: "554 5.7.1 blocked by %s"
`, dnsSrv.Addr, zone, zone)
	}
	td := startDaemonWith(t, cfg("old.test"))
	up := func() float64 { return dnsblMetric(td.metrics(t), "sluice_dnsbl_list_up", `zone="bl"`) }
	// The old filter probes, and finds its list down.
	waitFor(t, func() bool { return up() == 0 })

	a := td.info.Milter[0]
	c := gomilter.NewClientWithOptions(a.Network(), a.String(), gomilter.ClientOptions{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Conn("client.example", gomilter.FamilyInet, 25, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}

	os.WriteFile(td.config, []byte(cfg("new.test")), 0o644)
	td.signal(t, syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(td.log.String(), "config reloaded") })
	// A probe of the old filter that was under way at the reload has
	// reached the server once the new filter has probed again.
	newBase := dnsSrv.Count(newProbe, dns.TypeA)
	waitFor(t, func() bool { return dnsSrv.Count(newProbe, dns.TypeA) > newBase })
	oldBase := dnsSrv.Count(oldProbe, dns.TypeA)
	// Three more rounds of the new filter, in which the old one, had it
	// gone on, would have probed as often; the series says what the new
	// one found all along.
	var seen []float64
	waitFor(t, func() bool {
		if v := up(); len(seen) == 0 || seen[len(seen)-1] != v {
			seen = append(seen, v)
		}
		return dnsSrv.Count(newProbe, dns.TypeA) >= newBase+4
	})
	if n := dnsSrv.Count(oldProbe, dns.TypeA) - oldBase; n != 0 {
		t.Errorf("the replaced filter probed %s %d times after the reload, want 0", oldProbe, n)
	}
	if len(seen) != 1 || seen[0] != 1 {
		t.Errorf("sluice_dnsbl_list_up{zone=\"bl\"} went %v after the reload, want 1 throughout (the new configuration's list answers)", seen)
	}

	// The connection opened before the reload is still served by the
	// old filter: its client is looked up in old.test.
	act, err := s.Mail("alice@example.org", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%d %s", act.SMTPCode, act.SMTPText); got != "554 5.7.1 blocked by old.test" {
		t.Errorf("MAIL FROM on the connection opened before the reload: %q, want the old filter's reply", got)
	}
}
