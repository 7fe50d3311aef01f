package milter_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/milter"
)

// longTagger adds one long header field at the end of the message.
type longTagger struct{ value string }

func (longTagger) Name() string { return "long-tagger" }
func (longTagger) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM)}
}
func (l longTagger) Check(context.Context, filters.Stage, *filters.Message) (filters.Verdict, error) {
	return filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Long", Value: l.value}}}, nil
}

// rawPacket is a milter packet: length, code, payload.
func rawPacket(code byte, payload []byte) []byte {
	w := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
	return append(append(w, code), payload...)
}

// A header edit reaches the peer byte for byte, even when the peer never
// negotiated options (go-milter takes such a session) and a piece of the
// edit looks like an answer to a negotiation. go-milter writes a packet
// over 4 kB in several pieces, the later ones starting inside the value;
// the connection wrapper once took the first written piece with "O" at
// offset 4 for its answer and could clear a bit of the value.
func TestLongEditKeptWithoutNegotiation(t *testing.T) {
	// The 'h' packet's data is "X-Long\x00" + value + "\x00". go-milter's
	// 4096-byte writer sends the length, the code and data[:4091] first,
	// then data[4091:]: that piece has data[4095] at its offset 4 and
	// what would be the protocol word at data[4104:4108].
	v := []byte(strings.Repeat("a", 5000))
	off := func(data int) int { return data - len("X-Long\x00") }
	v[off(4095)] = 'O'
	v[off(4091+14)] = 'p' // 0x70 holds SMFIP_HDR_LEADSPC's bit in that byte
	value := string(v)

	_, addr := startServer(t, milter.Config{Pipeline: pipeline(longTagger{value: value})})
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))

	var wire []byte
	wire = append(wire, rawPacket('C', []byte("client.example\x004\x10\xe1192.0.2.7\x00"))...)
	wire = append(wire, rawPacket('M', []byte("<a@example.org>\x00"))...)
	wire = append(wire, rawPacket('R', []byte("<b@example.net>\x00"))...)
	wire = append(wire, rawPacket('E', nil)...)
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	// Connect, MAIL and RCPT are answered "continue" first.
	stages := 0
	var added []string
	for range 20 {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatalf("reading replies: %v", err)
		}
		p := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, p); err != nil {
			t.Fatal(err)
		}
		switch p[0] {
		case 'h':
			name, got, _ := strings.Cut(strings.TrimSuffix(string(p[1:]), "\x00"), "\x00")
			added = append(added, name)
			if name == "X-Long" && got != value {
				for i := range min(len(got), len(value)) {
					if got[i] != value[i] {
						t.Fatalf("X-Long reached the MTA with byte %d %q, the filter wrote %q", i, got[i], value[i])
					}
				}
				t.Fatalf("X-Long reached the MTA with %d bytes, the filter wrote %d", len(got), len(value))
			}
		case 'c':
			if stages < 3 {
				stages++
				continue
			}
			fallthrough
		case 'a':
			if len(added) != 1 || added[0] != "X-Long" {
				t.Fatalf("fields added: %q, want X-Long", added)
			}
			return
		}
	}
	t.Fatal("no final reply")
}
