package filters

import (
	"fmt"
	"strconv"
	"strings"
)

// Action is what a filter wants done with the message. The values are
// ordered by precedence: when filters disagree the greater value wins.
type Action uint8

// The actions, weakest first.
const (
	// Continue: no objection; later stages and filters decide.
	Continue Action = iota
	// Accept: deliver the message without asking any filter at later
	// stages. Edits gathered so far are applied.
	Accept
	// Discard: tell the client the message was accepted, then drop it.
	Discard
	// Quarantine: accept the message but have the MTA hold it (Postfix's
	// hold queue, Sendmail's quarantine). Applied at end of message.
	Quarantine
	// Tempfail: refuse with a 4xx reply; the client retries later.
	Tempfail
	// Reject: refuse with a 5xx reply.
	Reject
	numActions
)

var actionNames = [numActions]string{"continue", "accept", "discard", "quarantine", "tempfail", "reject"}

// String returns the action's name as used in logs, metrics and config.
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction returns the action with the given name.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want one of %s)", s, strings.Join(actionNames[:], ", "))
}

// Actions returns every action, weakest first.
func Actions() []Action {
	out := make([]Action, numActions)
	for i := range out {
		out[i] = Action(i)
	}
	return out
}

// Verdict is a filter's answer at one stage.
type Verdict struct {
	// Action is what the filter wants done.
	Action Action
	// Reply is the SMTP reply for Reject and Tempfail; nil means the
	// default reply for the action. It is ignored for other actions.
	Reply *Reply
	// Reason says why, for the log and, with Quarantine, the MTA's
	// quarantine reason.
	Reason string
	// Edits are header changes to make at end of message. They are kept
	// when the message is delivered (Continue, Accept, Quarantine) and
	// dropped when it is refused or discarded.
	Edits []HeaderEdit
}

// Reply is an SMTP reply sent to the client through the MTA.
type Reply struct {
	// Code is the three-digit SMTP reply code, 4xx or 5xx (RFC 5321 4.2).
	Code int
	// Enhanced is the enhanced status code (RFC 3463), e.g. "5.7.1". Its
	// class must match the first digit of Code. Empty means none.
	Enhanced string
	// Text is the human-readable part: one line, printable ASCII.
	Text string
}

// DefaultReply returns the reply sent for a Reject or Tempfail verdict that
// carries none of its own.
func DefaultReply(a Action) Reply {
	if a == Tempfail {
		return Reply{Code: 451, Enhanced: "4.7.1", Text: "Service unavailable, try again later"}
	}
	return Reply{Code: 550, Enhanced: "5.7.1", Text: "Message rejected"}
}

// maxReplyText bounds the reply text so that code, enhanced status and text
// stay well inside SMTP's 512-octet reply line (RFC 5321 4.5.3.1.5).
const maxReplyText = 400

// Validate checks that r can be sent to an SMTP client as it is.
func (r Reply) Validate() error {
	if err := r.validate(); err != nil {
		return err
	}
	if len(r.Text) > maxReplyText {
		return fmt.Errorf("reply text is %d bytes long, at most %d allowed", len(r.Text), maxReplyText)
	}
	return nil
}

// validate is Validate without the bound on the text's length.
func (r Reply) validate() error {
	if r.Code < 400 || r.Code > 599 {
		return fmt.Errorf("reply code %d: must be 4xx or 5xx", r.Code)
	}
	if r.Enhanced != "" {
		if err := validateEnhanced(r.Enhanced, r.Code/100); err != nil {
			return err
		}
	}
	if r.Text == "" {
		return fmt.Errorf("reply text is empty")
	}
	for i := 0; i < len(r.Text); i++ {
		c := r.Text[i]
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("reply text has a control or non-ASCII byte 0x%02x at offset %d: it must be one line of printable ASCII", c, i)
		}
	}
	return nil
}

// validateEnhanced checks an RFC 3463 status code: class "." subject "."
// detail, where class is 2, 4 or 5, subject 1-3 digits and detail 1-3 digits.
func validateEnhanced(s string, class int) error {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return fmt.Errorf("enhanced status %q: want class.subject.detail", s)
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return fmt.Errorf("enhanced status %q: part %d must be 1 to 3 digits", s, i+1)
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return fmt.Errorf("enhanced status %q: part %d must be digits", s, i+1)
			}
		}
	}
	if parts[0] != strconv.Itoa(class) {
		return fmt.Errorf("enhanced status %q: class %s does not match reply code class %d", s, parts[0], class)
	}
	return nil
}

// Sent returns the reply as sluice sends it to the MTA, and so as the
// client gets it: a text that starts with a digit and has no enhanced
// status code gets the code of its class that says nothing more (X.0.0,
// RFC 3463) in front. Postfix reads a digit right after the reply code as
// the start of an enhanced status code, and refuses a reply whose digit
// there differs from the code's first as malformed and applies
// milter_default_action instead, so that with accept the message of "554
// 192.0.2.1 is blocked" (a DNSBL reply with the listed address first, a
// spamicity, "550 3 strikes") would be delivered. Sendmail gives every
// reply without one that code. The log and "sluice test" show this reply,
// the one the MTA's log and the sender's bounce quote.
func (r Reply) Sent() Reply {
	if r.Enhanced == "" && r.Text != "" && r.Text[0] >= '0' && r.Text[0] <= '9' {
		r.Enhanced = strconv.Itoa(r.Code/100) + ".0.0"
	}
	return r
}

// String formats the reply as written, e.g. "550 5.7.1 Sender banned";
// r.Sent().String() is what the client gets.
func (r Reply) String() string {
	if r.Enhanced == "" {
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
}

// ParseReply parses a reply written as in the config file:
// "550 5.7.1 Some text" or "451 Some text".
func ParseReply(s string) (Reply, error) {
	r, err := ParseReplyTemplate(s)
	if err != nil {
		return Reply{}, err
	}
	if err := r.Validate(); err != nil {
		return Reply{}, fmt.Errorf("reply %q: %w", s, err)
	}
	return r, nil
}

// ParseReplyTemplate is ParseReply for a reply whose text has
// placeholders that the filter fills in when it sends the reply: the
// text's length is not checked, as the text as written is not what is
// sent. The caller checks the text it can render against the 400 bytes
// that Validate allows.
func ParseReplyTemplate(s string) (Reply, error) {
	code, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 {
		return Reply{}, fmt.Errorf("reply %q: must start with a three-digit code", s)
	}
	r := Reply{Code: n}
	rest = strings.TrimSpace(rest)
	if first, after, _ := strings.Cut(rest, " "); (strings.Count(first, ".") == 2 && first[0] >= '0' && first[0] <= '9') || attemptedEnhanced(first) {
		// A mistyped code ("5.7") is kept as the code, so that Validate
		// refuses it by name rather than the client getting it as text
		// after the default code ("550 5.0.0 5.7 text").
		r.Enhanced = first
		rest = strings.TrimSpace(after)
	}
	r.Text = rest
	if err := r.validate(); err != nil {
		return Reply{}, fmt.Errorf("reply %q: %w", s, err)
	}
	return r, nil
}

// attemptedEnhanced reports whether the first word of a reply's text is
// meant as an enhanced status code: digits and dots, with a dot right
// after a first single digit, as a code's class is. A number ("3",
// "10.5") or an address ("192.0.2.1") starting the text is not.
func attemptedEnhanced(w string) bool {
	if len(w) < 2 || w[0] < '0' || w[0] > '9' || w[1] != '.' {
		return false
	}
	for i := 2; i < len(w); i++ {
		if w[i] != '.' && (w[i] < '0' || w[i] > '9') {
			return false
		}
	}
	return true
}

// EditKind says what a HeaderEdit does.
type EditKind uint8

// The kinds of header edit, matching what the milter protocol can do.
const (
	// AddHeader appends a field at the end of the header block.
	AddHeader EditKind = iota
	// InsertHeader inserts a field at position Index among the fields the
	// MTA showed sluice (0 is the top; the MTA's own Received: field,
	// which milters do not see, stays above it). With Sendmail the exact
	// place may differ where Sendmail adds default fields of its own.
	InsertHeader
	// ChangeHeader replaces the Index-th field named Name (1-based,
	// counting only fields of that name, compared as SameName does).
	ChangeHeader
	// DeleteHeader removes the Index-th field named Name (1-based).
	DeleteHeader
)

var editNames = [...]string{"add", "insert", "change", "delete"}

// String returns the kind's name.
func (k EditKind) String() string {
	if int(k) < len(editNames) {
		return editNames[k]
	}
	return fmt.Sprintf("edit(%d)", uint8(k))
}

// HeaderEdit is one change to the message's header block.
type HeaderEdit struct {
	Kind  EditKind
	Name  string
	Value string
	// Index: see the EditKind constants.
	Index int
}

// Validate checks that the edit is well formed: a field name of printable
// ASCII without colon (RFC 5322 2.2) and a value with no NUL whose only
// line breaks are folding (LF or CRLF followed by a space or tab).
func (e HeaderEdit) Validate() error {
	if e.Name == "" {
		return fmt.Errorf("header edit: empty field name")
	}
	for i := 0; i < len(e.Name); i++ {
		c := e.Name[i]
		if c <= 0x20 || c >= 0x7f || c == ':' {
			return fmt.Errorf("header edit: field name %q has invalid byte 0x%02x", e.Name, c)
		}
	}
	if strings.IndexByte(e.Value, 0) >= 0 {
		return fmt.Errorf("header edit %s: value has a NUL byte", e.Name)
	}
	if i := unfoldedBreak(e.Value); i >= 0 {
		return fmt.Errorf("header edit %s: value has a line break at offset %d that is not folding (a break must be LF or CRLF followed by a space or tab)", e.Name, i)
	}
	if e.Kind > DeleteHeader {
		return fmt.Errorf("header edit %s: unknown kind %d", e.Name, e.Kind)
	}
	if (e.Kind == ChangeHeader || e.Kind == DeleteHeader) && e.Index < 1 {
		return fmt.Errorf("header edit %s %s: index %d, must be 1 or more", e.Kind, e.Name, e.Index)
	}
	if e.Kind == InsertHeader && e.Index < 0 {
		return fmt.Errorf("header edit insert %s: negative index %d", e.Name, e.Index)
	}
	if e.Index > maxEditIndex {
		return fmt.Errorf("header edit %s %s: index %d, at most %d", e.Kind, e.Name, e.Index, maxEditIndex)
	}
	return nil
}

// MaxLineLength is the longest line a message may have, CRLF not counted
// (RFC 5322 2.1.1: "MUST be no more than 998 characters").
const MaxLineLength = 998

// CheckFieldName checks a header field name given in the configuration:
// a valid name (see HeaderEdit.Validate) that leaves room, on a first
// line of MaxLineLength after "Name: ", for a first word of the value of
// up to first characters. Filters fold their values between words only,
// so the first word always shares its line with the name; a name that
// leaves no room for it makes a line longer than RFC 5322 allows, which
// the MTA or a mail reader may cut or refuse.
func CheckFieldName(name string, first int) error {
	if err := (HeaderEdit{Name: name}).Validate(); err != nil {
		return err
	}
	if room := MaxLineLength - len(name) - len(": "); first > room {
		return fmt.Errorf("%d characters leave no room on a line of %d (RFC 5322 2.1.1) for the value's first word of up to %d", len(name), MaxLineLength, first)
	}
	return nil
}

// maxEditIndex keeps an edit's index, and an insert's index plus one (see
// the milter edge), inside the protocol's 32-bit field and below its sign
// bit, so that it never wraps around to another position.
const maxEditIndex = 1<<31 - 2

// unfoldedBreak returns the offset of the first line break in v that is not
// folding, or -1. Anything else would end the field early, and what follows
// would read as a field of its own.
func unfoldedBreak(v string) int {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\r':
			if i+1 >= len(v) || v[i+1] != '\n' {
				return i
			}
		case '\n':
			if i+1 >= len(v) || (v[i+1] != ' ' && v[i+1] != '\t') {
				return i
			}
		}
	}
	return -1
}
