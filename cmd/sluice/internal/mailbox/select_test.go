package mailbox

import (
	"reflect"
	"testing"

	"github.com/sluice-mail/sluice/filters/archive"
)

func TestArchiveHeaderValues(t *testing.T) {
	data := []byte("Subject: one\r\nMessage-ID:\r\n <id-1@example.org>\r\nX-Sluice-Queue-ID: 4QID\n" +
		"x-sluice-queue-id: forged\nsubject: two\n\tfolded\n\nSubject: in the body\n")
	if got := archive.HeaderValues(data, "subject"); !reflect.DeepEqual(got, []string{"one", "two\tfolded"}) {
		t.Errorf("Subject: %q", got)
	}
	if got := archive.HeaderValues(data, "Message-Id"); !reflect.DeepEqual(got, []string{"<id-1@example.org>"}) {
		t.Errorf("Message-ID: %q", got)
	}
	if got := archive.HeaderValues(data, "X-Missing"); got != nil {
		t.Errorf("missing field: %q", got)
	}
}

func TestSelect(t *testing.T) {
	msg := []byte("X-Sluice-Queue-ID: 4QID\nMessage-ID: <a@b>\nX-Sluice-Queue-ID: OTHER\n\nbody\n")
	tests := []struct {
		sel  Select
		want bool
	}{
		{Select{}, true},
		{Select{QueueIDs: []string{"4QID"}}, true},
		{Select{QueueIDs: []string{"nope", " 4QID "}}, true},
		// Only the first field counts: the archive writes it on top, a
		// sender's own further down does not select.
		{Select{QueueIDs: []string{"OTHER"}}, false},
		{Select{QueueIDs: []string{"4qid"}}, false},
		{Select{MessageIDs: []string{"a@b"}}, true},
		{Select{MessageIDs: []string{"<a@b>"}}, true},
		{Select{MessageIDs: []string{"<a@c>"}, QueueIDs: []string{"4QID"}}, true},
		{Select{MessageIDs: []string{"<a@c>"}}, false},
	}
	for _, tc := range tests {
		if got := tc.sel.Match(msg); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.sel, got, tc.want)
		}
	}
	if (Select{MessageIDs: []string{""}}).Match([]byte("Subject: no id\n\n")) {
		t.Error("an empty id matched a message without Message-ID")
	}
}
