package main

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// BenchmarkPostfixEndToEnd drives a real Postfix with smtp-source (8
// sessions, 2000 messages of ~5 KB, to the discard transport) three ways,
// interleaved round by round so that machine noise hits all alike: with no
// milter, with a bare go-milter NoOpMilter server, and with sluice running
// one header-adding filter. It reports the median rate of each and the
// ratio sluice/bare (target >= 0.9).
//
//	go test -run '^$' -bench PostfixEndToEnd -benchtime 5x ./cmd/sluice
func BenchmarkPostfixEndToEnd(b *testing.B) {
	mtatest.Require(b)
	source, err := exec.LookPath("smtp-source")
	if err != nil {
		source = "/usr/sbin/smtp-source"
	}

	bareLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bare := &gomilter.Server{NewMilter: func() gomilter.Milter { return gomilter.NoOpMilter{} }}
	go bare.Serve(bareLn)
	defer bare.Close()

	td := startDaemon(b, `listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: ""
log:
  level: warn
filters:
  - type: script
`)
	setups := []struct {
		name   string
		milter string
	}{
		{"none", ""},
		{"bare", "inet:" + bareLn.Addr().String()},
		{"sluice", "inet:" + td.info.Milter[0].String()},
	}
	mtas := make([]*mtatest.MTA, len(setups))
	for i, s := range setups {
		mtas[i] = mtatest.StartPostfix(b, mtatest.PostfixOptions{Milter: s.milter, DefaultAction: "tempfail",
			ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0"}})
	}
	const sessions, messages, size = 8, 2000, 5000
	rates := make([][]float64, len(setups))
	// One round per b.N: run with -benchtime 5x for five rounds.
	for n := 0; n < b.N; n++ {
		{
			for i, s := range setups {
				rates[i] = append(rates[i], smtpSourceRound(b, source, mtas[i], s.name, sessions, messages, size, 5*time.Minute))
			}
		}
	}
	med := make([]float64, len(setups))
	for i, s := range setups {
		med[i] = median(rates[i])
		b.ReportMetric(med[i], s.name+"-msgs/s")
	}
	b.ReportMetric(med[2]/med[1], "sluice/bare")
	b.ReportMetric(med[1]/med[0], "bare/none")
	b.Logf("rates per round (msgs/s): none %v, bare %v, sluice %v", fmtRates(rates[0]), fmtRates(rates[1]), fmtRates(rates[2]))
}

// BenchmarkPostfixAutolearn drives a real Postfix with smtp-source (8
// sessions, 1000 messages of ~5 KB, to the discard transport) through two
// sluice daemons running the bayes filter, each on its own store trained
// on the fixtures (14 spam, 14 ham): one with auto-learning off, one that
// auto-learns every message. smtp-source mail scores about 0.51 against
// those fixtures, so the cutoffs make it ham (ham_cutoff 0.9) and
// autolearn.ham 0.9 learns it. Each message carries a Message-Id made of
// smtp-source's process id, the connection and a message count (such as
// <4f48.0005.0002@host>), so that every one is a new message to the
// store. The rounds are interleaved as in BenchmarkPostfixEndToEnd; it
// reports the median rate of each and the ratio autolearn/no-autolearn,
// and fails unless every message of every round was classified ham and,
// with auto-learning, learned (the daemon's counters per round, the
// store's own message counts at the end).
//
//	go test -run '^$' -bench PostfixAutolearn -benchtime 3x ./cmd/sluice
func BenchmarkPostfixAutolearn(b *testing.B) {
	mtatest.Require(b)
	source, err := exec.LookPath("smtp-source")
	if err != nil {
		source = "/usr/sbin/smtp-source"
	}

	setups := []struct {
		name      string
		autolearn string
	}{
		{"no-autolearn", ""},
		{"autolearn", "\n      autolearn:\n        ham: 0.9"},
	}
	daemons := make([]*testDaemon, len(setups))
	mtas := make([]*mtatest.MTA, len(setups))
	dbs := make([]string, len(setups))
	for i, s := range setups {
		state := b.TempDir()
		dbs[i] = filepath.Join(state, "bayes.db")
		trainFixtures(b, dbs[i])
		daemons[i] = startDaemonReg(b, fmt.Sprintf(`listen:
  - address: inet:127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
log:
  level: warn
state_dir: %s
filters:
  - type: bayes
    on_failure: tempfail
    options:
      spam_cutoff: 0.99
      ham_cutoff: 0.9
      spam:
        action: tag%s
`, state, s.autolearn), testRegistry())
		mtas[i] = mtatest.StartPostfix(b, mtatest.PostfixOptions{Milter: "inet:" + daemons[i].info.Milter[0].String(), DefaultAction: "tempfail",
			ExtraConfig: []string{"smtpd_client_connection_count_limit = 0", "smtpd_client_message_rate_limit = 0"}})
	}
	const sessions, messages, size = 8, 1000, 5000
	rates := make([][]float64, len(setups))
	// One round per b.N: run with -benchtime 3x for three rounds.
	for n := 0; n < b.N; n++ {
		for i, s := range setups {
			hamBefore := bayesCounter(b, daemons[i], `sluice_bayes_messages_total{filter="bayes",verdict="ham"}`)
			learnedBefore := bayesCounter(b, daemons[i], `sluice_bayes_autolearned_total{class="ham",filter="bayes"}`)
			rates[i] = append(rates[i], smtpSourceRound(b, source, mtas[i], s.name, sessions, messages, size, 10*time.Minute))

			ham := bayesCounter(b, daemons[i], `sluice_bayes_messages_total{filter="bayes",verdict="ham"}`) - hamBefore
			learned := bayesCounter(b, daemons[i], `sluice_bayes_autolearned_total{class="ham",filter="bayes"}`) - learnedBefore
			wantLearned := 0
			if s.autolearn != "" {
				wantLearned = messages
			}
			if ham != messages || learned != wantLearned {
				b.Fatalf("%s, round %d: %d of %d messages classified ham, %d auto-learned, want %d\n%s",
					s.name, n+1, ham, messages, learned, wantLearned, daemons[i].log)
			}
		}
	}
	// The stores themselves: the fixtures' 14 ham plus every message
	// auto-learned.
	for i, s := range setups {
		want := 14
		if s.autolearn != "" {
			want += b.N * messages
		}
		r := runCLI(b, "", "db", "stats", "--db", dbs[i])
		m := regexp.MustCompile(`messages: +(\d+) spam, (\d+) ham`).FindStringSubmatch(r.stdout)
		if r.code != 0 || m == nil || m[1] != "14" || m[2] != strconv.Itoa(want) {
			b.Fatalf("%s: store stats %+v, want 14 spam, %d ham", s.name, r, want)
		}
	}
	med := make([]float64, len(setups))
	for i, s := range setups {
		med[i] = median(rates[i])
		b.ReportMetric(med[i], s.name+"-msgs/s")
	}
	b.ReportMetric(med[1]/med[0], "autolearn/no-autolearn")
	b.Logf("rates per round (msgs/s): no-autolearn %v, autolearn %v", fmtRates(rates[0]), fmtRates(rates[1]))
}

// bayesCounter returns the value of the metric line that starts with name
// (a counter of whole messages) in the daemon's metrics, 0 if there is
// none yet.
func bayesCounter(b *testing.B, td *testDaemon, name string) int {
	b.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(td.metrics(b))
	if m == nil {
		return 0
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return int(n)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRates(xs []float64) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.0f", x)
	}
	return out
}

// smtpSourceRound sends messages messages of size bytes over sessions
// parallel SMTP sessions to mta with smtp-source, waits (up to wait) for
// its queue to empty, and returns the rate in messages per second, the
// wait included: what the MTA with its milters took to take the mail in.
func smtpSourceRound(b *testing.B, source string, mta *mtatest.MTA, name string, sessions, messages, size int, wait time.Duration) float64 {
	b.Helper()
	start := time.Now()
	cmd := exec.Command(source, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(messages), "-l", strconv.Itoa(size),
		"-f", "bench@example.org", "-t", "sink@discard.example", mta.Addr())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("smtp-source against %s: %v\n%s", name, err, out)
	}
	mta.WaitIdle(b, wait)
	return float64(messages) / time.Since(start).Seconds()
}
