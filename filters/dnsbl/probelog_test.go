package dnsbl

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters/dnsbl/dnsbltest"
)

// The warning of a failed health probe starts its err with the kind of
// the failure, as docs/dnsbl.md shows it (err="list_refused: ..."), and
// as the errors metric counts the lookups of such a list: whoever looks
// for why sluice_dnsbl_list_up is 0, or greps the log for the kind that
// the metric shows, must find the probe's line. A list that refuses the
// resolver (a public one) is the failure the docs show; an answer
// outside 127.0.0.0/8 (a resolver rewriting answers) is a bad_answer, a
// list that answers every name as listed is lists_all.
func TestProbeLogNamesTheKind(t *testing.T) {
	srv := dnsbltest.Start(t)
	srv.AddA("2.0.0.127.refusing.test", 300, "127.255.255.254")
	srv.AddA("2.0.0.127.rewritten.test", 300, "192.0.2.80")
	srv.AddA("2.0.0.127.all.test", 300, "127.0.0.2")
	srv.AddA("1.0.0.127.all.test", 300, "127.0.0.2")
	cfg := baseConfig(srv, ZoneConfig{Zone: "refusing.test"}, ZoneConfig{Zone: "rewritten.test"}, ZoneConfig{Zone: "all.test"})
	cfg.ProbeInterval = dur(time.Hour)
	e := newEnv(t, srv, cfg, nil)
	waitFor(t, "the three probe warnings", func() bool {
		return strings.Count(e.logText(), "fails its health probe") == 3
	})
	for zone, kind := range map[string]string{"refusing.test": KindListRefused, "rewritten.test": KindBadAnswer, "all.test": KindListsAll} {
		var line string
		for l := range strings.Lines(e.logText()) {
			if strings.Contains(l, "fails its health probe") && strings.Contains(l, "zone="+zone) {
				line = l
			}
		}
		if want := `err="` + kind + `: `; !strings.Contains(line, want) {
			t.Errorf("probe warning of %s does not carry %s:\n%s", zone, want, line)
		}
	}
}
