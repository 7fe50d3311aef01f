package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Connections to the metrics listener past metricsMaxConns are not
// served (nor given a file descriptor) until one of those open ends: a
// client opening connections faster than the time limits end them must
// not use up the descriptors the milter listeners need.
func TestMetricsListenerBoundsConnections(t *testing.T) {
	setMetricsTimeouts(t, 30*time.Second, 30*time.Second)
	old, oldRead := metricsMaxConns, metricsReadTimeout
	metricsMaxConns, metricsReadTimeout = 2, 30*time.Second
	t.Cleanup(func() { metricsMaxConns, metricsReadTimeout = old, oldRead })
	td := startDaemon(t, strings.Replace(daemonConfig, "%s", "X-Tag", 1))
	addr := td.info.Metrics.String()

	// Two connections that send nothing hold both slots.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	type answer struct {
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		client := &http.Client{Timeout: 60 * time.Second}
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{string(b), err}
	}()
	select {
	case a := <-got:
		t.Fatalf("a third connection was served while two held both slots: %q %v", a.body, a.err)
	case <-time.After(time.Second):
	}
	// One ends: the waiting connection is served.
	held[0].Close()
	select {
	case a := <-got:
		if a.err != nil || a.body != "ok\n" {
			t.Fatalf("healthz once a slot was free: %q %v", a.body, a.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("healthz not answered 60s after a slot was freed")
	}
}
