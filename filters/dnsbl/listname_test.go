package dnsbl

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// dqsKey stands for the access key of a Spamhaus Data Query Service
// account, the first label of its zones.
const dqsKey = "ab12cd34ef56gh78ij90kl12mn"

// noKey fails the test if s shows the access key.
func noKey(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, dqsKey) {
		t.Errorf("%s shows the access key: %s", what, s)
	}
}

// TestDQSKeyNotShown checks that a Spamhaus DQS zone is queried with its
// access key but shown without it: in the reply a refused client gets,
// the header field and the score reply, the log and the metrics. With
// the zone shown as written, every client the default reply refused got
// the key of a paid account, and so did every recipient of a tagged
// message.
func TestDQSKeyNotShown(t *testing.T) {
	srv := dnsbltest.Start(t)
	zen := dqsKey + ".zen.dq.spamhaus.net"
	dbl := dqsKey + ".dbl.dq.spamhaus.net"
	zrd := dqsKey + ".zrd.dq.spamhaus.com"
	srv.AddA("1.2.0.192."+zen, 300, "127.0.0.2")
	// A text that names the query, as some lists' do.
	srv.AddTXT("1.2.0.192."+zen, 300, "1.2.0.192."+zen+" is in the SBL")
	srv.AddA("spammer.example."+dbl, 300, "127.0.1.2")
	// A list that fails, so that the log has a lookup failure, whose
	// error names the query.
	srv.SetBehaviour("spammer.example."+zrd, dnsbltest.ServFail)
	// No test entries: every probe fails and is logged with its query.
	cfg := baseConfig(srv,
		ZoneConfig{Zone: zen, Codes: map[string]string{"127.0.0.2": "SBL"}, TXT: true},
		ZoneConfig{Zone: dbl, Type: "domain", Check: []string{"sender"}, Action: "tag", Score: ptr(2.0)},
		ZoneConfig{Zone: zrd + ".", Type: "domain", Check: []string{"sender"}, Action: "tag"},
	)
	cfg.ProbeInterval = dur(time.Hour)
	cfg.Score = ScoreConfig{Threshold: 2, Reply: "554 5.7.1 Listed in {zones} (score {score})"}
	e := newEnv(t, srv, cfg, nil)
	waitFor(t, "the probes of the three lists", func() bool {
		e.obs.mu.Lock()
		defer e.obs.mu.Unlock()
		return len(e.obs.health) == 3
	})
	// A probe reports the list's health before it logs the failure:
	// the log is read below only once it holds all three lines, which
	// must show no key either.
	waitFor(t, "the log lines of the three failed probes", func() bool {
		return strings.Count(e.logText(), "fails its health probe") == 3
	})

	v := e.check(t, filters.StageConnect, conn("192.0.2.1"))
	if v.Action != filters.Reject || v.Reply == nil {
		t.Fatalf("verdict %+v, want reject with a reply", v)
	}
	if want := "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.dq.spamhaus.net (1.2.0.192.zen.dq.spamhaus.net is in the SBL)"; v.Reply.String() != want {
		t.Errorf("reply %q, want %q", v.Reply, want)
	}
	noKey(t, "the verdict's reason", v.Reason)

	m := message("192.0.2.9", "mx.spammer.example", "bob@spammer.example", "")
	e.check(t, filters.StageConnect, m)
	e.check(t, filters.StageMailFrom, m)
	v = e.check(t, filters.StageHeaders, m)
	if v.Action != filters.Reject || v.Reply == nil {
		t.Fatalf("verdict at the headers %+v, want reject by score", v)
	}
	if want := "554 5.7.1 Listed in dbl.dq.spamhaus.net (score 2)"; v.Reply.String() != want {
		t.Errorf("score reply %q, want %q", v.Reply, want)
	}
	noKey(t, "the verdict's reason", v.Reason)
	var tags []string
	for _, ed := range v.Edits {
		if ed.Kind == filters.AddHeader && ed.Name == DefaultHeader {
			tags = append(tags, ed.Value)
		}
	}
	if len(tags) != 1 || !strings.HasPrefix(tags[0], "dbl.dq.spamhaus.net; sender=spammer.example;") {
		t.Errorf("tag fields %q, want one of dbl.dq.spamhaus.net", tags)
	}
	for _, tag := range tags {
		noKey(t, "the tag field", tag)
	}

	// The queries did go to the zones with the key.
	for _, q := range []string{"1.2.0.192." + zen, "spammer.example." + dbl, "spammer.example." + zrd, "2.0.0.127." + zen, "test." + dbl} {
		if srv.Count(q, dns.TypeA) == 0 {
			t.Errorf("%s was not asked", q)
		}
	}

	log := e.logText()
	for _, want := range []string{
		`zone=zen.dq.spamhaus.net probe=2.0.0.127.zen.dq.spamhaus.net err="2.0.0.127.zen.dq.spamhaus.net is not listed`,
		`zone=zrd.dq.spamhaus.com sender=spammer.example kind=servfail err="query spammer.example.zrd.dq.spamhaus.com at `,
		"sender spammer.example in dbl.dq.spamhaus.net (127.0.1.2)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
	noKey(t, "the log", log)

	for _, k := range []string{"lookup zen.dq.spamhaus.net listed", "listed dbl.dq.spamhaus.net 127.0.1.2", "error zrd.dq.spamhaus.com servfail", "health zen.dq.spamhaus.net down", "probing dbl.dq.spamhaus.net on"} {
		if e.obs.get(k) == 0 {
			t.Errorf("observer: no %s (%s)", k, e.obs)
		}
	}
	noKey(t, "the metrics", e.obs.String())
}

// TestListName checks that a list's name, where one is set, is what
// replies, header fields, the log and the metrics show, and that the
// zone is still what is queried.
func TestListName(t *testing.T) {
	srv := dnsbltest.Start(t)
	zen := dqsKey + ".zen.dq.spamhaus.net"
	srv.AddA("1.2.0.192."+zen, 300, "127.0.0.2")
	srv.AddA("1.2.0.192.bl.example", 300, "127.0.0.3")
	e := newEnv(t, srv, baseConfig(srv,
		ZoneConfig{Zone: zen, Name: "Spamhaus-ZEN."},
		ZoneConfig{Zone: "bl.example", Name: "our_list", Action: "tag"},
	), nil)

	m := message("192.0.2.1", "mx.example.org", "alice@example.org", "")
	v := e.check(t, filters.StageConnect, m)
	if want := "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using spamhaus-zen (127.0.0.2)"; v.Reply == nil || v.Reply.String() != want {
		t.Errorf("reply %v, want %q", v.Reply, want)
	}
	v = e.check(t, filters.StageHeaders, m)
	var tag string
	for _, ed := range v.Edits {
		if ed.Kind == filters.AddHeader && ed.Name == DefaultHeader {
			tag = ed.Value
		}
	}
	if !strings.HasPrefix(tag, "our_list; client=192.0.2.1;") {
		t.Errorf("tag field %q, want one of our_list", tag)
	}
	if !strings.Contains(e.logText(), "client 192.0.2.1 in our_list (127.0.0.3)") {
		t.Errorf("the log does not name our_list:\n%s", e.logText())
	}
	for _, k := range []string{"lookup spamhaus-zen listed", "lookup our_list listed"} {
		if e.obs.get(k) != 1 {
			t.Errorf("observer: %s = %d, want 1 (%s)", k, e.obs.get(k), e.obs)
		}
	}
	if strings.Contains(e.obs.String(), "bl.example") {
		t.Errorf("the metrics show the zone of a list with a name: %s", e.obs)
	}
}

func TestDisplayName(t *testing.T) {
	for zone, want := range map[string]string{
		"zen.spamhaus.org":                "zen.spamhaus.org",
		"k3y.zen.dq.spamhaus.net":         "zen.dq.spamhaus.net",
		"k3y.dbl.dq.spamhaus.com":         "dbl.dq.spamhaus.com",
		"k3y.zrd.dq.spamhaus.net":         "zrd.dq.spamhaus.net",
		"k3y.hbl.dq.spamhaus.net":         "hbl.dq.spamhaus.net",
		"zen.dq.spamhaus.net":             "zen.dq.spamhaus.net", // no key to leave out
		"k3y.zen.dq.spamhaus.net.example": "k3y.zen.dq.spamhaus.net.example",
		"k3y.zen.notdq.spamhaus.net":      "k3y.zen.notdq.spamhaus.net",
		"k3y.zen.dq.spamhaus.org":         "k3y.zen.dq.spamhaus.org",
	} {
		if got := displayName(zone); got != want {
			t.Errorf("displayName(%q) = %q, want %q", zone, got, want)
		}
	}
}

func TestListNameErrors(t *testing.T) {
	srv := dnsbltest.Start(t)
	for _, tc := range []struct {
		name  string
		zones []ZoneConfig
		want  string
	}{
		{"blank", []ZoneConfig{{Zone: "bl.example", Name: "spam list"}}, `zones[0].name "spam list": not a name`},
		{"colon", []ZoneConfig{{Zone: "bl.example", Name: "bl:example"}}, `zones[0].name "bl:example"`},
		{"empty label", []ZoneConfig{{Zone: "bl.example", Name: "bl..example"}}, `zones[0].name "bl..example"`},
		{"leading hyphen", []ZoneConfig{{Zone: "bl.example", Name: "-bl"}}, `zones[0].name "-bl"`},
		{"non-ASCII", []ZoneConfig{{Zone: "bl.example", Name: "bücher"}}, `zones[0].name "bücher"`},
		{"too long", []ZoneConfig{{Zone: "bl.example", Name: strings.Repeat("a.", 100) + "a"}}, "zones[0].name"},
		// Two accounts' keys on one list: both would be shown as
		// zen.dq.spamhaus.net, and counted as one list.
		{"two keys", []ZoneConfig{
			{Zone: "k1.zen.dq.spamhaus.net"}, {Zone: "k2.zen.dq.spamhaus.net"},
		}, "zones[1].name: zen.dq.spamhaus.net is the name of zones[0] too"},
		{"a name that is another list's", []ZoneConfig{
			{Zone: "bl.example"}, {Zone: "other.example", Name: "BL.example"},
		}, "zones[1].name: bl.example is the name of zones[0] too"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(filters.Env{}, baseConfig(srv, tc.zones...), nil)
			if err == nil {
				f.Close()
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
	// One name for an ip and a domain list, as one zone may be both.
	f, err := New(filters.Env{}, baseConfig(srv,
		ZoneConfig{Zone: "k1.zen.dq.spamhaus.net"},
		ZoneConfig{Zone: "k2.zen.dq.spamhaus.net", Type: "domain"},
	), nil)
	if err != nil {
		t.Fatalf("an ip and a domain list of one name: %v", err)
	}
	f.Close()
}
