package classifier

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FuzzParseRedisCounts checks the reading of a token's value in Redis,
// which another version or a hand may have written: a value taken is
// three numbers of 32 bits, and written back as the scripts write it
// ("SPAM HAM LASTSEEN") reads as the same counts.
func FuzzParseRedisCounts(f *testing.F) {
	for _, s := range []string{"1 2 20240101", "0 0 0", "4294967295 4294967295 4294967295", "4294967296 0 0", "1 2", "1 2 3 4", "1  2 3", " 1 2 3", "-1 2 3", "+1 2 3", "1 2 3\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseRedisCounts(v)
		if err != nil {
			if c != (Counts{}) {
				t.Fatalf("%q: error %v with counts %+v", v, err, c)
			}
			return
		}
		again := fmt.Sprintf("%d %d %d", c.Spam, c.Ham, c.LastSeen)
		if g, err := parseRedisCounts(again); err != nil || g != c {
			t.Fatalf("%q: %+v written as %q reads as %+v, %v", v, c, again, g, err)
		}
	})
}

// FuzzParseRedisTotals checks the reading of the message counts: a value
// taken is a number of 32 bits; one of another type counts as none.
func FuzzParseRedisTotals(f *testing.F) {
	f.Add("10", "20", true)
	f.Add("", "1", true)
	f.Add("4294967296", "0", true)
	f.Add("x", "y", false)
	f.Fuzz(func(t *testing.T, spam, ham string, strs bool) {
		var a, b any = spam, ham
		if !strs {
			a, b = []byte(spam), nil
		}
		tot, err := parseRedisTotals(a, b)
		if err != nil {
			return
		}
		for _, c := range []struct {
			v   any
			got uint32
		}{{a, tot.Spam}, {b, tot.Ham}} {
			s, ok := c.v.(string)
			if !ok {
				if c.got != 0 {
					t.Fatalf("%v counted as %d", c.v, c.got)
				}
				continue
			}
			// Leading zeros aside, the number is the value's digits.
			if digits := strings.TrimLeft(s, "0"); strconv.FormatUint(uint64(c.got), 10) != digits && !(c.got == 0 && digits == "") {
				t.Fatalf("%q counted as %d", s, c.got)
			}
		}
	})
}

// FuzzParseRedisLog checks the reading of the change log the token cache
// follows: entries it takes hold tokens and counts that, packed again as
// the learn script packs them ("LEN:TOKEN SPAM HAM LASTSEEN\n"), give the
// value they were read from; at most logReadChanges of them; and it
// reports the log usable only if it reached gen.
func FuzzParseRedisLog(f *testing.F) {
	f.Add("5-0", "", "3:foo 1 0 20240101\n3:b r 0 1 0\n", "6-0", "4:\nx\n 0 0 0\n", "6")
	f.Add("5-0", "4", "", "6-1", "", "6")
	f.Add("5-0", "4", "3:foo 1 0 0", "", "", "5")
	f.Add("5-0", "4", "9:foo 1 0 0\n", "", "", "5")
	f.Add("5-0", "4", "-1:x 1 0 0\n", "", "", "5")
	f.Add("5-0", "4", "0: 1 0 0\n", "", "", "5")
	f.Add("5-0", "4", "3:foo 1 0 4294967296\n", "", "", "5")
	f.Fuzz(func(t *testing.T, id1, prev, packed1, id2, packed2, gen string) {
		msgs := []redis.XMessage{{ID: id1, Values: map[string]any{"p": prev, "c": packed1}}}
		if id2 != "" {
			msgs = append(msgs, redis.XMessage{ID: id2, Values: map[string]any{"c": packed2}})
		}
		out, ok := parseRedisLog(msgs, gen)
		if ok && (len(out) == 0 || out[len(out)-1].gen != gen) {
			t.Fatalf("usable, but does not reach %q: %+v", gen, out)
		}
		if len(out) > len(msgs) {
			t.Fatalf("%d entries from %d messages", len(out), len(msgs))
		}
		changes := 0
		for i, e := range out {
			if e.gen+"-0" != msgs[i].ID || len(e.toks) != len(e.counts) {
				t.Fatalf("entry %d: %+v from %+v", i, e, msgs[i])
			}
			changes += len(e.toks)
			var b strings.Builder
			for j, tok := range e.toks {
				c := e.counts[j]
				fmt.Fprintf(&b, "%d:%s %d %d %d\n", len(tok), tok, c.Spam, c.Ham, c.LastSeen)
			}
			// The numbers may have been written otherwise ("+1", "01");
			// what they are must not change.
			again, ok := parseRedisLog([]redis.XMessage{{ID: msgs[i].ID, Values: map[string]any{"c": b.String()}}}, e.gen)
			if !ok || len(again) != 1 || fmt.Sprint(again[0].toks, again[0].counts) != fmt.Sprint(e.toks, e.counts) {
				t.Fatalf("entry %d packed again as %q reads otherwise: %+v", i, b.String(), again)
			}
		}
		if changes > logReadChanges {
			t.Fatalf("%d changes taken", changes)
		}
	})
}
