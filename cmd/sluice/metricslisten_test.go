package main

import (
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-mail/sluice/milter/mtatest"
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

// An accept of the metrics listener that fails for want of memory or
// socket buffers, or for one connection that failed while it waited, is
// retried as the milter listeners retry it: net/http retries only what
// it takes for temporary (out of descriptors), and stopped serving the
// port for good on the others, so that /healthz and the scrapes failed,
// and an alert said sluice was down, while it went on filtering mail.
func TestMetricsListenerSurvivesTransientAcceptErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &mtatest.FailingListener{Listener: ln, Errs: []syscall.Errno{syscall.ENOBUFS, syscall.ENOMEM, syscall.EPROTO, syscall.ENETUNREACH}}
	d := &daemon{promReg: prometheus.NewRegistry(), logger: slog.New(slog.DiscardHandler)}
	srv := &http.Server{Handler: d.httpHandler(), ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(newLimitListener(fl, 4)) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("healthz after the failed accepts: %v", err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Errorf("healthz after the failed accepts: %d %q", resp.StatusCode, b)
	}
	select {
	case err := <-served:
		t.Errorf("the metrics server stopped: %v", err)
	default:
	}
}
