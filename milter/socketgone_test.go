package milter_test

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter"
)

// A unix socket file removed or replaced while the daemon serves (an rm,
// a cleaner of old files, a second daemon started on the path once it
// was free) leaves a listener nobody can connect to: the MTA applies its
// milter default action to all mail. Serve used to go on waiting on it
// in silence; now it returns an error that names the file, as for any
// listener that fails, and a file put at the path is left alone.
func TestUnixListenerSocketFileGoneEndsServe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(path string) error
		want  string
	}{
		{"removed", os.Remove, "was removed"},
		{"replaced", func(path string) error {
			// Renamed over the socket in one step: removed and then
			// written, the watch may look in between and find the
			// socket removed, which it also is.
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("precious\n"), 0o600); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}, "was replaced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, path := socketAddress(t)
			ln, err := milter.Listen(a, milter.UnixOptions{CheckInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			srv := milter.NewServer(milter.Config{Pipeline: pipeline()}, nil, nil)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			t.Cleanup(func() { srv.Shutdown(t.Context()) })
			// Served as usual while the file is there.
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			select {
			case err := <-served:
				t.Fatalf("Serve returned with the socket file in place: %v", err)
			case <-time.After(200 * time.Millisecond):
			}

			if err := tc.after(path); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-served:
				if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Serve returned %v, want an error saying %s %s", err, path, tc.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve still waits on a listener whose socket file is gone")
			}
			if tc.name == "replaced" {
				if b, err := os.ReadFile(path); err != nil || string(b) != "precious\n" {
					t.Errorf("the file put at the path: %q, %v", b, err)
				}
			}
		})
	}
}
