package mailbox

import (
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters/archive"
)

// FuzzSelect checks the picking of archived copies by --queue-id and
// --message-id ("sluice archive move", "sluice train"): a copy is picked
// by the queue id in its first X-Sluice-Queue-ID field, and by the
// Message-ID of its first Message-ID field, and by nothing a field of the
// same name later in the header, or in the body, says.
func FuzzSelect(f *testing.F) {
	f.Add("4QID", "<a@example.org>", "4QID", "a@example.org", "OTHER")
	f.Add(" 4QID ", "  <a@\r\n b.example>", "4QID", "<a@b.example>", "4QID")
	f.Add("", "", "", "", "")
	f.Add("q", "<>", "q ", "<>", "x")
	f.Fuzz(func(t *testing.T, qid, mid, wantQID, wantMID, decoy string) {
		for _, s := range []string{qid, mid, decoy} {
			// The archive writes no line end but a fold's.
			if strings.Count(s, "\n") != strings.Count(s, "\n ")+strings.Count(s, "\n\t") {
				return
			}
		}
		msg := "X-Sluice-Queue-ID: " + qid + "\r\n" +
			"Message-ID: " + mid + "\r\n" +
			"X-Sluice-Queue-ID: " + decoy + "\r\n" +
			"Message-ID: <" + decoy + ">\r\n" +
			"\r\n" +
			"X-Sluice-Queue-ID: " + decoy + "\r\n"
		// What the copy's fields say, read as the archive reads them.
		gotQID := archive.HeaderValues([]byte(msg), archive.FieldQueueID)[0]
		gotMID := archive.HeaderValues([]byte(msg), "Message-ID")[0]

		byQID := Select{QueueIDs: []string{wantQID}}.Match([]byte(msg))
		if want := gotQID != "" && gotQID == strings.TrimSpace(wantQID); byQID != want {
			t.Fatalf("queue id %q picked by %q: %v, want %v\n%q", qid, wantQID, byQID, want, msg)
		}
		byMID := Select{MessageIDs: []string{wantMID}}.Match([]byte(msg))
		id := normalizeMessageID(gotMID)
		if want := id != "" && id == normalizeMessageID(wantMID); byMID != want {
			t.Fatalf("Message-ID %q picked by %q: %v, want %v", mid, wantMID, byMID, want)
		}
		// The decoys pick nothing the first fields do not.
		if strings.TrimSpace(decoy) != gotQID && (Select{QueueIDs: []string{decoy}}).Match([]byte(msg)) && strings.TrimSpace(decoy) != "" {
			t.Fatalf("picked by the queue id %q of a later field or the body", decoy)
		}
		if !(Select{}).Match([]byte(msg)) {
			t.Fatal("the empty selection does not pick every copy")
		}
	})
}
