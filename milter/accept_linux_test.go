package milter_test

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/sluice-mail/sluice/milter"
)

// accept(2) on Linux lists ENONET with the network errors of a
// connection that failed while it waited, to be retried like EAGAIN;
// taken for the listener's own, it stopped the daemon.
func TestAcceptENONETIsOfTheMoment(t *testing.T) {
	err := &os.SyscallError{Syscall: "accept4", Err: syscall.ENONET}
	if !milter.TransientAcceptError(err) {
		t.Errorf("TransientAcceptError(%v) = false; want true", err)
	}
	if milter.TransientAcceptError(errors.New("use of closed network connection")) {
		t.Error("a closed listener's error counted as of the moment")
	}
}
