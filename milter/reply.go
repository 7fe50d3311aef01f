package milter

import (
	"strings"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
)

// response is a milter reply whose Continue() is always true. go-milter
// v0.5.0 throws its handler away after any reply whose Continue() is false,
// and with it the connection data the next message of the SMTP session
// needs; the MTA sees the same bytes either way.
type response struct {
	code byte
	data []byte
}

func (r response) Response() *gomilter.Message { return &gomilter.Message{Code: r.code, Data: r.data} }
func (r response) Continue() bool              { return true }

var continueReply = response{code: byte(gomilter.ActContinue)}

// reply turns an action and optional SMTP reply into a milter response.
func reply(a filters.Action, r *filters.Reply) gomilter.Response {
	switch a {
	case filters.Accept, filters.Quarantine:
		return response{code: byte(gomilter.ActAccept)}
	case filters.Discard:
		return response{code: byte(gomilter.ActDiscard)}
	case filters.Reject, filters.Tempfail:
		if r == nil {
			d := filters.DefaultReply(a)
			r = &d
		}
		return response{code: byte(gomilter.ActReplyCode), data: replyCodeData(*r)}
	}
	return continueReply
}

// replyCodeData encodes an SMFIR_REPLYCODE payload: "550 5.7.1 text" and a
// NUL, the reply as filters.Reply.Sent gives it (a text that starts with a
// digit gets an enhanced status code, which Postfix needs there). Both
// MTAs pass the text through a printf-like expansion (libmilter's
// smfi_setreply documents it; Postfix mirrors it), so a literal % is
// written as %%.
func replyCodeData(r filters.Reply) []byte {
	r = r.Sent()
	text := strings.ReplaceAll(sanitizeLine(r.Text), "%", "%%")
	s := r.String()
	s = s[:len(s)-len(r.Text)] + text
	return append([]byte(s), 0)
}
