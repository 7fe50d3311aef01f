package classifier_test

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// replyDropper is a TCP proxy that, once armed, closes the client's
// connection instead of passing on the next reply: a reply lost after the
// command ran (a network cut, a master dying after it executed).
type replyDropper struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	drops  atomic.Int32
}

func (p *replyDropper) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		// Only the reply to a script is dropped: a reply lost on a
		// connection that just sent EVALSHA, not a slot refresh's.
		var sentScript atomic.Bool
		go func() {
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) {
						sentScript.Store(true)
					}
					if _, err := s.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 {
					if sentScript.Swap(false) && p.armed.CompareAndSwap(true, false) {
						p.drops.Add(1)
						s.Close()
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// An import whose reply is lost is not sent again by the Cluster client
// (which retries a failed pipeline on its own, whatever MaxRetries): it
// fails, and is applied once at most.
func TestRedisClusterLostReplyNotReapplied(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	proxyPort := ln.Addr().(*net.TCPAddr).Port
	// One cluster node with every slot, announcing the proxy's port.
	srv := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-announce-ip", "127.0.0.1", "--cluster-announce-port", strconv.Itoa(proxyPort))
	p := &replyDropper{ln: ln, target: srv.Addr}
	go p.serve()
	ctx := context.Background()
	rc := srv.Client(t)
	if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		info, _ := rc.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ok: %s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := openRedisStore(t, classifier.RedisOptions{Addrs: []string{ln.Addr().String()}, Cluster: true, KeyPrefix: "lost"})
	defer st.Close()
	add := func() error {
		return st.Add(ctx, classifier.Batch{Totals: classifier.Totals{Spam: 1},
			Records: []classifier.Record{{Token: "x", Counts: classifier.Counts{Spam: 1, LastSeen: 20240101}}}})
	}
	if err := add(); err != nil { // loads the script, fills the pool
		t.Fatal(err)
	}
	p.armed.Store(true)
	err = add()
	if p.drops.Load() != 1 {
		t.Fatalf("%d replies dropped, want 1", p.drops.Load())
	}
	if err == nil {
		t.Error("an import whose reply was lost reported success")
	}
	tot, c, err := st.Lookup(ctx, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Spam > 2 || c[0].Spam > 2 {
		t.Errorf("after two imports of one spam message: totals %+v, x %+v", tot, c[0])
	}
}
