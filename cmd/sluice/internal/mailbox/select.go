package mailbox

import (
	"strings"

	"github.com/sluice-mail/sluice/filters/archive"
)

// Select picks messages out of a mailbox by Message-ID or by the queue id
// the archive recorded (the first X-Sluice-Queue-ID field, which the
// archive writes at the top of each copy). The zero value picks every
// message.
type Select struct {
	MessageIDs []string
	QueueIDs   []string
}

// All reports whether s picks every message.
func (s Select) All() bool { return len(s.MessageIDs) == 0 && len(s.QueueIDs) == 0 }

// Match reports whether the message data is picked: it has one of the
// Message-IDs (compared without angle brackets and white space) or one of
// the queue ids.
func (s Select) Match(data []byte) bool {
	if s.All() {
		return true
	}
	if len(s.MessageIDs) > 0 {
		if v := archive.HeaderValues(data, "Message-ID"); len(v) > 0 {
			id := normalizeMessageID(v[0])
			for _, want := range s.MessageIDs {
				if id != "" && id == normalizeMessageID(want) {
					return true
				}
			}
		}
	}
	return s.QueueID(data) != ""
}

// QueueID returns the queue id by which s picks the message data: its
// first X-Sluice-Queue-ID field, if that is one of s.QueueIDs; else "".
func (s Select) QueueID(data []byte) string {
	if len(s.QueueIDs) == 0 {
		return ""
	}
	v := archive.HeaderValues(data, archive.FieldQueueID)
	if len(v) == 0 {
		return ""
	}
	qid := strings.TrimSpace(v[0])
	for _, want := range s.QueueIDs {
		if qid != "" && qid == strings.TrimSpace(want) {
			return qid
		}
	}
	return ""
}

// normalizeMessageID drops white space (a folded field) and the angle
// brackets, so that "<a@b>", "a@b" and " <a@b> " are the same id.
func normalizeMessageID(s string) string {
	s = strings.Join(strings.Fields(s), "")
	s = strings.TrimPrefix(s, "<")
	return strings.TrimSuffix(s, ">")
}
