package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// benchMessage is a message of about 5 KB, as the Postfix benchmarks send.
func benchMessage() *filters.Message {
	body := strings.Repeat("From time to time a line of an ordinary message body.\r\n", 90)
	return testMessage("BENCH", body)
}

// BenchmarkAppend measures appends with fsync of 5 KB messages to one
// mbox (or one maildir), from one goroutine and from 8 per CPU, and
// reports messages per second. The disk decides most of it: fsync is one
// flush of the device's write cache per message.
//
//	go test -run '^$' -bench Append -benchtime 2000x ./filters/archive
func BenchmarkAppend(b *testing.B) {
	for _, format := range []string{FormatMbox, FormatMaildir} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/writers=%d", format, par), func(b *testing.B) {
				target := filepath.Join(b.TempDir(), "bench")
				f, err := New(filters.Env{Name: "bench"}, Config{Format: format, Targets: map[string]string{"default": target}})
				if err != nil {
					b.Fatal(err)
				}
				m := benchMessage()
				b.SetParallelism(par) // par goroutines per CPU
				start := time.Now()
				b.ResetTimer()
				if par == 1 {
					for i := 0; i < b.N; i++ {
						if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}
