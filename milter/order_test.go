package milter_test

import (
	"runtime"
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/milter"
)

// Header fields that come outside a message (before MAIL FROM, or after
// the message ended) are not kept: go-milter collects every field in a
// map it clears only on abort, and a peer that sends fields without a
// message must not make the session hold them all.
func TestHeadersOutsideMessageNotHeld(t *testing.T) {
	_, addr := startServer(t, milter.Config{Pipeline: pipeline(&recorder{})})
	s := dial(t, addr)
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const fields, size = 48, 1 << 19
	for i := range fields {
		// Distinct values, so that no two share memory.
		v := strings.Repeat(string(rune('a'+i%26)), size)
		if act := must(t)(s.HeaderField("X-Pad", v)); act.Code != gomilter.ActContinue {
			t.Fatalf("field %d: action %c, want continue", i, act.Code)
		}
	}
	grown := int64(heap()) - int64(before)
	if grown > fields*size/2 {
		t.Errorf("heap grew by %d bytes after %d fields of %d bytes outside a message: the session holds them", grown, fields, size)
	}
	// The session still takes a message.
	if _, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "x"}}, "x\r\n"); act.Code != gomilter.ActAccept {
		t.Errorf("message after the stray fields: action %c, want accept", act.Code)
	}
}
