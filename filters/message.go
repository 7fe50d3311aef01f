package filters

import (
	"bytes"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Conn describes the SMTP client connection. It lives as long as the
// connection: every message of one SMTP session shares it.
type Conn struct {
	// Hostname is the client's name as the MTA reports it, e.g.
	// "mail.example.com", or "[192.0.2.1]" when it has none.
	Hostname string
	// Family is "tcp4", "tcp6", "unix" or "unknown".
	Family string
	// Addr and Port are the client's address; Addr is invalid for
	// non-IP families.
	Addr netip.Addr
	Port uint16
	// Helo is the HELO/EHLO argument; empty until the client gave one.
	Helo string
	// Macros holds the macros the MTA sent at connect and, over them,
	// those it sent at the latest HELO.
	Macros map[string]string
}

// Address is an envelope address with its ESMTP parameters.
type Address struct {
	// Addr is the address without angle brackets; "" is the null sender.
	Addr string
	// Args are the ESMTP parameters as sent, e.g. "SIZE=1234".
	Args []string
}

// Header is one header field as the MTA delivered it: the name with its
// original case and the raw value (folding kept, nothing decoded), less
// the one space after the colon that both MTAs take off before a milter
// sees it.
type Header struct {
	Name  string
	Value string
	// NoSpace says that the field had no space after its colon
	// ("Name:value", or "Name:" empty), which the MTA tells when the
	// milter asks it to keep the space (SMFIP_HDR_LEADSPC). Without it
	// the field would be written back with a space it never had.
	NoSpace bool
}

// String returns the field as one line of text, without its line end:
// for logs and test failures.
func (h Header) String() string {
	return strings.TrimSuffix(string(AppendField(nil, h)), "\r\n")
}

// Message is what the filters see of one message. The milter edge fills it
// in as the transaction goes on; at each stage only the parts up to that
// stage are present.
type Message struct {
	// Conn is the connection the message arrived on.
	Conn *Conn
	// QueueID is the MTA's queue id (macro "i"); empty until the MTA
	// sent it (Postfix sends it from RCPT TO on).
	QueueID string
	// From is the envelope sender.
	From Address
	// Rcpts are the envelope recipients the MTA accepted so far. At
	// StageRcptTo the last one is the recipient being checked.
	Rcpts []Address
	// Headers are the header fields in arrival order; duplicates kept.
	Headers []Header
	// Body is the message body; nil when no filter asked for it.
	Body *Body
	// Macros holds the macros the MTA sent at MAIL FROM, at the latest
	// RCPT TO, at the end of the header and at the end of the message,
	// merged.
	Macros map[string]string
	// Decided is the outcome so far: the strongest verdict of the filters
	// that have run, at earlier stages and earlier in this one. The milter
	// edge sets it before each stage and the pipeline updates it after
	// each filter, so a filter that must know what the others decided (an
	// archive, see Needs.Final) reads it here. Filters must not change it.
	Decided Decided

	// kept holds what filters keep about the message from one stage to
	// the next (see Keep); the copies snapshot makes share it.
	kept *keptValues
}

// keptValues is the store behind Message.Keep. A call abandoned at its
// timeout may still use it while the next stage's call does, hence the
// lock.
type keptValues struct {
	mu   sync.Mutex
	vals map[any]any
}

// Keep returns the value a filter keeps under key for this message,
// making it with mk at the first call for key: later stages of the same
// message get the same value, whichever copy of the message (see
// snapshot) each call was given. A filter uses a key of its own, such as
// a pointer to itself, so that two filters never share a value. This is
// how a filter judges a message from start to end by one version of
// something that changes in the background (a rules file reloaded when
// it changes): it takes the version once, at the first stage that reads
// it. The value lives as long as the message.
func (m *Message) Keep(key any, mk func() any) any {
	if m.kept == nil {
		m.kept = &keptValues{}
	}
	k := m.kept
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.vals[key]; ok {
		return v
	}
	if k.vals == nil {
		k.vals = make(map[any]any)
	}
	v := mk()
	k.vals[key] = v
	return v
}

// Decided is the outcome of a message so far, as Message.Decided holds it.
type Decided struct {
	// Action is the strongest action so far (Continue if none).
	Action Action
	// Filter names the filter whose verdict set Action; Reason is its
	// reason.
	Filter string
	Reason string
}

// Settled reports whether the action is decided, so that only Final
// filters are still asked (see Outcome.Settled).
func (d Decided) Settled() bool { return d.Action != Continue && d.Action != Quarantine }

// Macro returns the value of an MTA macro, looking at message macros first
// and connection macros second. Names may be given with or without braces,
// one-letter names too: "client_addr" finds "{client_addr}", and "i" finds
// "{i}". Both MTAs send a macro under the name written in their macro
// lists, and take "{i}" there for "i" (observed with Postfix 3.7 and
// Sendmail 8.17), so an administrator may have written either.
func (m *Message) Macro(name string) (string, bool) {
	alt := name
	if len(name) > 2 && strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
		alt = name[1 : len(name)-1]
	} else if name != "" {
		alt = "{" + name + "}"
	}
	for _, macros := range []map[string]string{m.Macros, m.connMacros()} {
		if v, ok := macros[name]; ok {
			return v, true
		}
		if v, ok := macros[alt]; ok {
			return v, true
		}
	}
	return "", false
}

func (m *Message) connMacros() map[string]string {
	if m.Conn == nil {
		return nil
	}
	return m.Conn.Macros
}

// snapshot returns a copy of m that later changes to m do not reach: its
// own header, recipient and macro lists, its own Conn, and a Body that
// shares only the stored bytes, which are never changed once written. A
// filter that overruns its timeout reads the copy while the edge moves
// on; sharing m would be a data race, and a map read racing a map write
// is a fatal error that stops the daemon.
func (m *Message) snapshot() *Message {
	if m.kept == nil {
		// Made here, in the edge's goroutine, so that the copy and m
		// share it: what a filter keeps in its copy reaches its next
		// stage.
		m.kept = &keptValues{}
	}
	c := *m
	c.Rcpts = slices.Clone(m.Rcpts)
	c.Headers = slices.Clone(m.Headers)
	c.Macros = maps.Clone(m.Macros)
	if m.Conn != nil {
		conn := *m.Conn
		conn.Macros = maps.Clone(m.Conn.Macros)
		c.Conn = &conn
	}
	c.Body = m.Body.snapshot()
	return &c
}

// Header returns the value of the first field named name (see SameName).
func (m *Message) Header(name string) (string, bool) {
	for _, h := range m.Headers {
		if SameName(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// MaxFromFields bounds the From: fields filters read. RFC 5322 section
// 3.6 allows one, but a message may come with several, and mail readers
// differ in which they show; every filter that judges the author reads
// the same ones (see FromFields), so that none can be passed by hiding
// the author in a field another filter reads and it does not. The bound
// keeps a message with thousands of From fields as cheap as a normal one.
const MaxFromFields = 8

// FromFields returns the values of the message's first MaxFromFields
// From: fields (the name matched as SameName does), in arrival order.
func (m *Message) FromFields() []string {
	var out []string
	for _, h := range m.Headers {
		if !SameName(h.Name, "From") {
			continue
		}
		out = append(out, h.Value)
		if len(out) == MaxFromFields {
			break
		}
	}
	return out
}

// Raw returns the message as RFC 5322 text: the header fields as
// AppendField writes them, a blank line, and the body as received.
// Reading it does not consume the body.
func (m *Message) Raw() io.Reader {
	var hdr []byte
	for _, h := range m.Headers {
		hdr = AppendField(hdr, h)
	}
	hdr = append(hdr, "\r\n"...)
	if m.Body == nil {
		return bytes.NewReader(hdr)
	}
	return io.MultiReader(bytes.NewReader(hdr), m.Body.Reader())
}

// AppendField appends h to b as a line of RFC 5322 text: "Name: value"
// ("Name:value" for a field with NoSpace) and CRLF. A folded value keeps
// its folding, with CRLF before each continuation line as on the wire
// (the MTAs hand a milter a bare LF there). A line end in the value that is not folding (Sendmail with bare
// LF accepted hands such values over) gets a space after it, as the
// mailbox has it: written as it is, a line end at the end of the value
// would end the header block early, and one before "Name:" text would
// start a field the message does not have (a forged X-Sluice-Bayes above
// the real one), in what the Bayes filter reads and in an archived copy.
func AppendField(b []byte, h Header) []byte {
	b = append(b, h.Name...)
	if h.NoSpace {
		b = append(b, ':')
	} else {
		b = append(b, ": "...)
	}
	v := h.Value
	for {
		i := strings.IndexByte(v, '\n')
		if i < 0 {
			b = append(b, v...)
			return append(b, "\r\n"...)
		}
		b = append(b, strings.TrimSuffix(v[:i], "\r")...)
		b = append(b, "\r\n"...)
		v = v[i+1:]
		if v == "" || v[0] != ' ' && v[0] != '\t' {
			b = append(b, ' ')
		}
	}
}

// ApplyEdits returns headers with edits made, in order, with the meaning
// the milter protocol gives them (see EditKind): the result is the header
// block the MTA delivers after it carries out the same edits. Edits that
// point past the existing fields change nothing, as in the MTAs. The input
// slice may be modified.
func ApplyEdits(headers []Header, edits []HeaderEdit) []Header {
	for k := 0; k < len(edits); k++ {
		e := edits[k]
		if n := DeletionRun(edits[k:]); n > 1 {
			headers = DeleteRun(headers, func(h Header) string { return h.Name }, edits[k:k+n], nil)
			k += n - 1
			continue
		}
		switch e.Kind {
		case AddHeader:
			headers = append(headers, Header{Name: e.Name, Value: e.Value})
		case InsertHeader:
			i := min(max(e.Index, 0), len(headers))
			headers = append(headers, Header{})
			copy(headers[i+1:], headers[i:])
			headers[i] = Header{Name: e.Name, Value: e.Value}
		case ChangeHeader, DeleteHeader:
			i := nthField(headers, e.Name, e.Index)
			if i < 0 {
				// smfi_chgheader: changing a field that does not exist
				// adds it; deleting one does nothing.
				if e.Kind == ChangeHeader && e.Value != "" {
					headers = append(headers, Header{Name: e.Name, Value: e.Value})
				}
				continue
			}
			if e.Kind == DeleteHeader || e.Value == "" {
				headers = append(headers[:i], headers[i+1:]...)
				continue
			}
			// The value a filter gives goes out with a space before
			// it (see Header.NoSpace), whatever the field had.
			headers[i] = Header{Name: headers[i].Name, Value: e.Value}
		}
	}
	return headers
}

// DeletionRun returns how many edits at the start of edits delete fields
// of one name, each at a lower index than the one before: the order in
// which filters delete every field of their name a message came with.
// A sender may send hundreds of thousands of such fields (Postfix limits
// the size of each field, not their number), and deleting them one at a
// time, each found from the top, takes time quadratic in their number.
func DeletionRun(edits []HeaderEdit) int {
	n := 0
	for n < len(edits) {
		e := edits[n]
		if e.Kind != DeleteHeader || e.Index < 1 ||
			n > 0 && (e.Index >= edits[n-1].Index || !SameName(e.Name, edits[0].Name)) {
			break
		}
		n++
	}
	return n
}

// DeleteRun makes the deletions of a run DeletionRun found in one pass
// over fields, whose names nameOf gives, and returns what is left (in
// fields' memory). removed, if not nil, is called with each field
// deleted. A deletion changes the index of the fields of its name below
// it only, so every index in the run counts the fields as they were
// before it.
func DeleteRun[T any](fields []T, nameOf func(T) string, run []HeaderEdit, removed func(T)) []T {
	var pos []int // pos[i] is the place of the field of index i+1
	for i, f := range fields {
		if SameName(nameOf(f), run[0].Name) {
			pos = append(pos, i)
		}
	}
	drop := make([]bool, len(fields))
	for _, e := range run {
		if e.Index <= len(pos) {
			drop[pos[e.Index-1]] = true
		}
	}
	out := fields[:0]
	for i, f := range fields {
		switch {
		case !drop[i]:
			out = append(out, f)
		case removed != nil:
			removed(f)
		}
	}
	return out
}

// nthField returns the position of the n-th (1-based) field named name,
// as SameName matches names, or -1.
func nthField(headers []Header, name string, n int) int {
	for i, h := range headers {
		if SameName(h.Name, name) {
			n--
			if n == 0 {
				return i
			}
		}
	}
	return -1
}
