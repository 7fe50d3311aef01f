package milter_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// Postfix cuts a header field longer than 60000 bytes before its milters
// see it (and delivers it so cut), whatever header_size_limit says above
// that: ParseMessage must cut it alike, or sluice test refuses a message
// with one field over 1 MiB that the daemon accepts, and scores others
// on bytes the daemon never sees. The cases are one long line, short
// continuation lines, a continuation line that does not fit, one that
// fits and one after it that does not, a long continuation line, and a
// field under the bound.
func TestParseMessageCutsLongFieldsAsPostfix(t *testing.T) {
	h := func(n int) string { return strings.Repeat("h", n) }
	values := []string{
		h(1200000),
		strings.Repeat(h(999)+"\r\n ", 200) + h(10),
		h(59000) + "\r\n " + h(2000),
		h(59000) + "\r\n " + h(500) + "\r\n " + h(800),
		h(59000) + "\r\n " + h(1200) + "\r\n " + h(100),
		h(59000) + "\r\n " + h(5000) + "\r\n " + h(100),
		h(1000) + "\r\n " + h(70000),
		h(59990) + "\r\n " + h(3),
		h(59991),
		h(59992),
		h(59993),
	}
	k := &bodyKeeper{hdrs: map[string][]filters.Header{}, body: map[string][]byte{}}
	spec := serveUnix(t, filters.NewPipeline([]filters.Step{{Filter: k}}, nil))
	mta := startMTA(t, "postfix", spec)
	raws := make([]string, len(values))
	ids := make([]string, len(values))
	for i, v := range values {
		raws[i] = fmt.Sprintf("From: a@lab.example\r\nSubject: long %d\r\nMessage-ID: <%d@lab.example>\r\nX-Long: %s\r\nX-After: yes\r\n\r\nbody\r\n", i, i, v)
		c := mtatest.DialSMTP(t, mta.Addr())
		c.Cmd("EHLO client.example")
		r := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raws[i]))
		if ids[i] = r.QueueID(); ids[i] == "" {
			t.Fatalf("case %d: %v", i, r)
		}
		c.Quit()
	}
	mta.WaitDelivered(t, len(raws), 30*time.Second)
	for i, raw := range raws {
		want, _ := milter.ParseMessage([]byte(raw), milter.Postfix)
		k.mu.Lock()
		got, ok := k.hdrs[ids[i]]
		k.mu.Unlock()
		if !ok {
			t.Errorf("case %d: the filter saw no message with queue id %s", i, ids[i])
			continue
		}
		got = withoutPostfixMadeUp(got, want)
		if !slices.Equal(got, want) {
			t.Errorf("case %d: Postfix showed %s\n ParseMessage %s", i, fieldSizes(got), fieldSizes(want))
		}
	}
}

// fieldSizes names each field with the length of its value and its last
// bytes: the values are too long to print.
func fieldSizes(hs []filters.Header) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s(%d, ...%q) ", h.Name, len(h.Value), h.Value[max(0, len(h.Value)-8):])
	}
	return b.String()
}
