package senders

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The scale target of the filter: 100,000 rules of every kind load in
// under a second, and one core looks up at least a million senders a
// second. Run with
//
//	go test -run '^$' -bench 'Load100k|Lookup100k' -benchmem -cpu 1 ./filters/senders/
//
// and read lookups/s and ms/load. On a busy machine wall-clock figures
// measure the neighbours too; lookups/cpu-s and cpu-ms/load divide by
// the CPU time the process used instead (garbage collection included).

// benchRules writes n rules in the proportions of a large access file
// with campaign patterns on top: 60% domains, 10% sub-domain-only
// domains, 15% addresses, 3% local parts, 10% globs, 2% regular
// expressions, a few of them WATCH. It returns the text and, for the
// lookups, senders that hit each kind of rule and senders that hit none.
func benchRules(n int) ([]byte, []string) {
	rng := rand.New(rand.NewPCG(1, 2))
	label := func(min, max int) string {
		b := make([]byte, min+rng.IntN(max-min+1))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
		}
		b[0] = "abcdefghijklmnopqrstuvwxyz"[rng.IntN(26)]
		return string(b)
	}
	tlds := []string{"com", "net", "org", "biz", "info", "co.uk", "de", "ru", "cn", "xyz"}
	tld := func() string { return tlds[rng.IntN(len(tlds))] }
	actions := []string{"REJECT", "DISCARD", `ERROR:"550 5.7.1 Sender banned"`, "OK", `ERROR:4.7.1:451 Try later`}
	action := func(i int) string {
		if i%50 == 0 {
			return "WATCH"
		}
		return actions[rng.IntN(len(actions))]
	}
	var b bytes.Buffer
	b.WriteString("# generated benchmark rules\n")
	var hits []string
	for i := 0; i < n; i++ {
		switch p := i % 100; {
		case p < 60:
			d := label(5, 12) + "." + tld()
			fmt.Fprintf(&b, "%s\t%s\n", d, action(i))
			if i%97 == 0 {
				hits = append(hits, "user@mail."+d)
			}
		case p < 70:
			d := label(5, 12) + "." + tld()
			fmt.Fprintf(&b, ".%s\t%s\n", d, action(i))
			if i%97 == 0 {
				hits = append(hits, "user@a.b."+d)
			}
		case p < 85:
			a := label(3, 10) + "@" + label(5, 12) + "." + tld()
			fmt.Fprintf(&b, "From:%s\t%s\n", a, action(i))
			if i%97 == 0 {
				hits = append(hits, a)
			}
		case p < 88:
			fmt.Fprintf(&b, "%s@\t%s\n", label(8, 14), action(i))
		case p < 98:
			w := label(4, 9)
			var g, hit string
			switch i % 3 {
			case 0:
				g, hit = w+"srv.*", w+"srv.example.com"
			case 1:
				g, hit = "*."+w+"mail.*", "x."+w+"mail.net"
			default:
				g, hit = w+"-*.com", w+"-secure.com"
			}
			fmt.Fprintf(&b, "%s\t%s\n", g, action(i))
			if i%97 == 0 {
				hits = append(hits, "user@"+hit)
			}
		default:
			w := label(4, 9)
			fmt.Fprintf(&b, "/^(mx|mail|%s)[0-9]*\\.%s\\./\t%s\n", w, label(5, 9), action(i))
			if i%7 == 0 {
				fmt.Fprintf(&b, "/%s[0-9]+\\.(com|net)$/\t%s\n", w, action(i))
			}
		}
	}
	// Senders no rule names: most mail.
	var senders []string
	for i := 0; i < 4*len(hits); i++ {
		senders = append(senders, label(3, 10)+"@"+label(3, 8)+"."+label(5, 12)+"."+tld())
	}
	return b.Bytes(), append(senders, hits...)
}

func BenchmarkLoad100k(b *testing.B) {
	data, _ := benchRules(100000)
	path := filepath.Join(b.TempDir(), "access")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	var rs *Rules
	for b.Loop() {
		var err error
		rs, err = Load([]File{{Path: path, Scope: DefaultScope}})
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/load")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/load")
	b.ReportMetric(float64(rs.Len()), "rules")
}

func BenchmarkLookup100k(b *testing.B) {
	data, senders := benchRules(100000)
	rs, err := Compile(Source{Name: "bench", Data: data, Scope: DefaultScope})
	if err != nil {
		b.Fatal(err)
	}
	matched := 0
	for _, s := range senders {
		if m := rs.Match(MailFrom, s); m.Rule != nil || len(m.Watch) > 0 {
			matched++
		}
	}
	if matched*5 < len(senders) {
		b.Fatalf("only %d of %d senders match a rule: the benchmark would not exercise the rules", matched, len(senders))
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	i := 0
	for b.Loop() {
		rs.Match(MailFrom, senders[i])
		if i++; i == len(senders) {
			i = 0
		}
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "lookups/cpu-s")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
