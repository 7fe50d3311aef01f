package main

import (
	"fmt"
	"net"
	"os/exec"
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
				start := time.Now()
				cmd := exec.Command(source, "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(messages), "-l", strconv.Itoa(size),
					"-f", "bench@example.org", "-t", "sink@discard.example", mtas[i].Addr())
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("smtp-source against %s: %v\n%s", s.name, err, out)
				}
				mtas[i].WaitIdle(b, 5*time.Minute)
				rates[i] = append(rates[i], messages/time.Since(start).Seconds())
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
