package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// endless is input that never ends, as a pipe that keeps sending does. It
// calls stop at its first read, and reports reads long after that: a
// reader that looks at its context reads a buffer or two more at most.
type endless struct {
	t     *testing.T
	stop  func()
	after int
}

func (e *endless) Read(p []byte) (int, error) {
	if e.stop != nil {
		e.stop()
		e.stop = nil
	} else {
		e.after += len(p)
	}
	if e.after > 16<<20 {
		e.t.Errorf("read on for %d bytes after the context ended", e.after)
		return 0, io.EOF
	}
	for i := range p {
		p[i] = "spam spam spam\n"[i%15]
	}
	return len(p), nil
}

// A walk whose context ends stops reading within the message it is in,
// not only between messages: the rest of a message past MaxBytes is read
// on to find the next, and input that never ends was read for ever after
// Ctrl-C or a SIGTERM.
func TestWalkStopsAtContextEnd(t *testing.T) {
	t.Run("stdin", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		in := &endless{t: t, stop: cancel}
		var got []Message
		err := Reader{Stdin: in, MaxBytes: 1000}.Walk(ctx, Stdin, func(m Message) error {
			got = append(got, m)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !errors.Is(got[0].Err, context.Canceled) {
			t.Errorf("%s, want one message that failed with the context's end", describe(got))
		}
	})
	t.Run("device", func(t *testing.T) {
		// A path named on the command line is read as it is, a device
		// too.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan []Message, 1)
		go func() {
			var got []Message
			err := Reader{MaxBytes: 1000}.Walk(ctx, "/dev/zero", func(m Message) error {
				got = append(got, m)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- got
		}()
		select {
		case got := <-done:
			if len(got) != 1 || !errors.Is(got[0].Err, context.Canceled) {
				t.Errorf("%s, want one message that failed with the context's end", describe(got))
			}
		case <-time.After(time.Minute):
			t.Fatal("reading /dev/zero went on after the context ended")
		}
	})
}

// describe names the messages of a walk and their errors, not their data.
func describe(ms []Message) string {
	s := fmt.Sprintf("%d messages", len(ms))
	for _, m := range ms {
		s += fmt.Sprintf("; %s: %d bytes read, error %v", m.Name, m.Size, m.Err)
	}
	return s
}
