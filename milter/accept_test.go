package milter_test

import (
	"net"
	"syscall"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
	"github.com/sluice-mail/sluice/milter"
	"github.com/sluice-mail/sluice/milter/mtatest"
)

// An accept that fails for want of memory or socket buffers (a flood of
// connections), or for a connection that failed before it was taken,
// concerns the moment or that connection only: the server waits and
// accepts again, as it does when out of descriptors, rather than stop
// serving the listener, which stopped the whole daemon.
func TestAcceptErrorsOfTheMomentKeepServing(t *testing.T) {
	tag := &filtertest.Fixed{FilterName: "tag", At: filters.StagesOf(filters.StageEOM), Verdict: filters.Verdict{
		Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: "X-Tag", Value: "yes"}},
	}}
	srv := milter.NewServer(milter.Config{Pipeline: pipeline(tag)}, nil, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &mtatest.FailingListener{Listener: ln, Errs: []syscall.Errno{syscall.ENOBUFS, syscall.ENOMEM, syscall.EPROTO, syscall.ENETUNREACH}}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fl) }()
	t.Cleanup(func() {
		srv.Shutdown(t.Context())
		<-served
	})

	s := dial(t, ln.Addr().String())
	must(t)(s.Conn("client.example", gomilter.FamilyInet, 4321, "192.0.2.7"))
	mods, act := sendMessage(t, s, "a@example.org", "b@example.org", [][2]string{{"Subject", "hi"}}, "body\r\n")
	if act.Code != gomilter.ActAccept || len(mods) != 1 {
		t.Errorf("message after the failed accepts: action %c, modifications %+v", act.Code, mods)
	}
	select {
	case err := <-served:
		t.Errorf("Serve returned %v", err)
	default:
	}
}
