package mailbox

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A maildir message that is a named pipe by the time the walk opens it,
// put in the place of the file its listing found (by the owner of a
// maildir that root trains from cron, or renamed to by a "client"), is
// opened without waiting for a writer, as a file met in any other
// directory is: the open waited for ever, and the run with it.
func TestMaildirFIFOInPlaceOfMessage(t *testing.T) {
	for _, tc := range []struct{ name, listed, fifo string }{
		{"same name", "2.M2.host:2,S", "2.M2.host:2,S"},
		{"renamed", "2.M2.host:2,S", "2.M2.host:2,RS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := filepath.Join(t.TempDir(), "Maildir")
			write(t, filepath.Join(md, "new", ".keep"), "")
			cur := filepath.Join(md, "cur")
			write(t, filepath.Join(cur, "1.M1.host:2,S"), "Subject: one\n\nx\n")
			write(t, filepath.Join(cur, tc.listed), "Subject: two\n\nx\n")
			fifo := filepath.Join(cur, tc.fifo)
			var got []string
			done := make(chan error, 1)
			go func() {
				done <- Walk(md, nil, func(m Message) error {
					got = append(got, strings.TrimPrefix(m.Name, md+"/"))
					if strings.HasSuffix(m.Name, "1.M1.host:2,S") {
						// cur/ is listed: the second message becomes a FIFO.
						if err := os.Remove(filepath.Join(cur, tc.listed)); err != nil {
							return err
						}
						if err := syscall.Mkfifo(fifo, 0o600); err != nil {
							return err
						}
					}
					return nil
				})
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				// Let the walk go: a writer opens the FIFO, and leaves.
				if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				<-done
				t.Fatalf("the walk waited for a writer on the FIFO %s (read %q)", fifo, got)
			}
			if len(got) != 2 || got[0] != "cur/1.M1.host:2,S" {
				t.Errorf("read %q", got)
			}
		})
	}
}
