package milter

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// The values' leading space (SMFIP_HDR_LEADSPC) is asked for only of an
// MTA that offers it: an MTA that does not know it (Sendmail before 8.14)
// refuses a milter that asks. The answer is changed in a copy, never in
// the caller's buffer, and only the packet written right after a
// negotiation arrived, the answer to it, is looked at.
func TestAnswerAsksLeadingSpaceOnlyIfOffered(t *testing.T) {
	packet := func(code byte, version, actions, proto uint32) []byte {
		p := binary.BigEndian.AppendUint32(nil, 13)
		p = append(p, code)
		p = binary.BigEndian.AppendUint32(p, version)
		p = binary.BigEndian.AppendUint32(p, actions)
		return binary.BigEndian.AppendUint32(p, proto)
	}
	const ours = optLeadSpace | 0x300 // and SMFIP_NOUNKNOWN, SMFIP_NODATA
	for _, tc := range []struct {
		name      string
		offered   uint32
		wantProto uint32
		wantLead  bool
	}{
		{"offered", 0x1fffff, ours, true},
		{"not offered", 0x1fffff &^ optLeadSpace, ours &^ optLeadSpace, false},
		{"nothing offered", 0, ours &^ optLeadSpace, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			c := newConn(a, time.Second, time.Second)
			c.feed(packet('O', 6, 0x1ff, tc.offered))
			if c.offered != tc.offered {
				t.Fatalf("offer read as %#x, want %#x", c.offered, tc.offered)
			}
			p := packet('O', 2, 0x31, ours)
			orig := string(p)
			got := c.answer(p)
			if proto := binary.BigEndian.Uint32(got[13:17]); proto != tc.wantProto || c.leadSpace != tc.wantLead {
				t.Errorf("answer asks %#x, leadSpace %v; want %#x, %v", proto, c.leadSpace, tc.wantProto, tc.wantLead)
			}
			if string(p) != orig {
				t.Error("the caller's packet was changed")
			}
			if string(got[:13]) != orig[:13] {
				t.Error("the answer's length, code, version or actions changed")
			}
			// A later packet is left alone, even one that looks alike.
			later := packet('O', 2, 0x31, ours)
			if again := c.answer(later); &again[0] != &later[0] {
				t.Error("a packet after the answer was changed")
			}
		})
	}

	// Without a negotiation nothing written is an answer, though a piece
	// of a long header value may look like one; a second negotiation is
	// answered by its own offer.
	a, b := net.Pipe()
	defer b.Close()
	c := newConn(a, time.Second, time.Second)
	looksAlike := packet('O', 2, 0x31, ours)
	if got := c.answer(looksAlike); &got[0] != &looksAlike[0] {
		t.Error("a packet written before any negotiation was changed")
	}
	for _, offer := range []uint32{0x1fffff, 0, 0x1fffff} {
		c.feed(packet('O', 6, 0x1ff, offer))
		got := c.answer(packet('O', 2, 0x31, ours))
		want := offer&optLeadSpace != 0
		if proto := binary.BigEndian.Uint32(got[13:17]); (proto&optLeadSpace != 0) != want || c.leadSpace != want {
			t.Errorf("offer %#x answered %#x, leadSpace %v", offer, proto, c.leadSpace)
		}
	}
}
