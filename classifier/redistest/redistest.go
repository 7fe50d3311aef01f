// Package redistest runs real Redis servers for tests: a single server, a
// Sentinel watching one, or a Cluster, each on loopback ports with its data
// in a temporary directory, stopped when the test ends. It is a test
// helper; import it only from _test.go files.
//
//	srv := redistest.Start(t)          // redis-server on 127.0.0.1:PORT
//	st, _ := classifier.OpenRedis(classifier.RedisOptions{Addrs: []string{srv.Addr}})
//	srv.Kill(t)                         // Redis gone (SIGKILL)
//	srv.Restart(t)                      // back on the same port, empty
//	srv.Pause(t); srv.Resume(t)         // hung, then answering again
//
// The servers keep nothing on disk (no RDB snapshots, no AOF). redis-server
// and redis-cli come from the Debian packages redis-server and redis-tools,
// installed through testdata/install-deps.sh when missing. Where that is
// impossible (not root, no network) the test is skipped, or fails under
// CI=true.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Require makes sure redis-server and redis-cli can be run, installing
// them if needed; otherwise the test is skipped (failed under CI=true).
func Require(t testing.TB) {
	t.Helper()
	_, e1 := exec.LookPath("redis-server")
	_, e2 := exec.LookPath("redis-cli")
	if e1 == nil && e2 == nil {
		return
	}
	script, err := installScript()
	if err != nil {
		Unavailable(t, "%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", script, "redis-server", "redis-tools").CombinedOutput()
	if err != nil {
		Unavailable(t, "cannot install redis-server and redis-tools: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server not found after installing it: %v", err)
	}
}

// Unavailable reports that Redis cannot be had: a failure under CI=true,
// where a test must never pass by skipping, a skip elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("required under CI=true: %s", reason)
	}
	t.Skipf("skipped: %s", reason)
}

// installScript locates testdata/install-deps.sh from this source file, so
// tests of any package find it.
func installScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate testdata/install-deps.sh: no caller information")
	}
	// This file is classifier/redistest/redistest.go.
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "install-deps.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("locate testdata/install-deps.sh: %w", err)
	}
	return p, nil
}

// Server is one redis-server process.
type Server struct {
	// Addr is host:port.
	Addr string
	Port int
	Dir  string
	args []string
	// logPath is the server's log file, where it says whether it could
	// bind its port.
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	// paused is set between Pause and Resume.
	paused bool
}

// freePort returns a loopback port that is free, and whose Cluster bus
// port (port+10000) is free as well.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := 20000 + rand.IntN(30000)
		l1, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("no free loopback port pair found in 100 tries")
	return 0
}

// Start runs a redis-server on a free loopback port. extra are more
// command-line options ("--maxmemory", "10mb").
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return start(t, freePort, extra...)
}

// start is Start with the port picked by pick.
func start(t testing.TB, pick func(testing.TB) int, extra ...string) *Server {
	t.Helper()
	Require(t)
	dir, err := os.MkdirTemp("", "sluice-redis-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// freePort's port may be taken before redis-server binds it: by a
	// server another test package starts meanwhile (go test runs packages
	// in parallel), or as the local port of any connection, the ports
	// lying partly in the kernel's ephemeral range. Then another is tried.
	var s *Server
	for try := 1; ; try++ {
		port := pick(t)
		s = &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir, logPath: filepath.Join(dir, "redis.log")}
		s.args = append([]string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--logfile", s.logPath,
		}, extra...)
		if !s.startOnce(t) {
			break
		}
		if try == startTries {
			t.Fatalf("redis-server: %d ports in a row were taken between being found free and bound", try)
		}
		t.Logf("redis-server: port %d was taken after being found free; trying another", port)
	}
	t.Cleanup(func() {
		s.stop(syscall.SIGKILL)
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "redis.log")); err == nil {
				t.Logf("redis-server %s log:\n%s", s.Addr, tail(b, 4000))
			}
		}
	})
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// startTries bounds the ports Start tries.
const startTries = 10

// start starts the server on its port, which must be free.
func (s *Server) start(t testing.TB) {
	t.Helper()
	if s.startOnce(t) {
		t.Fatalf("redis-server: port %d is taken", s.Port)
	}
}

// startOnce starts the process and waits until it answers. It reports
// whether the process could not bind its port; any other failure ends
// the test. A server that answers PING on the port is not enough: it may
// be another process's, holding the port this one could not bind.
func (s *Server) startOnce(t testing.TB) (portTaken bool) {
	t.Helper()
	// A restart appends to the log of the run before.
	var logFrom int64
	if fi, err := os.Stat(s.logPath); err == nil {
		logFrom = fi.Size()
	}
	log := func() []byte {
		b, _ := os.ReadFile(s.logPath)
		if int64(len(b)) < logFrom {
			return nil
		}
		return b[logFrom:]
	}
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.Dir = s.Dir
	// A test binary that dies (a timeout panic skips the cleanups) takes
	// its redis-server with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		Unavailable(t, "start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	// Bounded generously: start-up takes milliseconds, but a loaded
	// machine may take seconds.
	deadline := time.Now().Add(60 * time.Second)
	// Redis logs its running mode (standalone, cluster, sentinel) once it
	// has bound its port, and exits if it cannot.
	for !bytes.Contains(log(), []byte("Running mode=")) {
		select {
		case <-s.done:
			l := log()
			if bytes.Contains(l, []byte("Address already in use")) {
				return true
			}
			t.Fatalf("redis-server on %s exited during start-up; log:\n%s", s.Addr, tail(l, 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not ready after 60 s; log:\n%s", s.Addr, tail(log(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitPing(t, s.Addr, s.done)
	return false
}

// waitPing waits until the server at addr answers PING, at most 10 s.
func waitPing(t testing.TB, addr string, exited <-chan struct{}) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		// A server with a password answers too, with a refusal.
		if err == nil || redis.HasErrorPrefix(err, "NOAUTH") {
			return
		}
		select {
		case <-exited:
			t.Fatalf("redis-server on %s exited during start-up: %v", addr, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s does not answer: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	// A stopped (paused) process does not die of SIGTERM until resumed.
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// Kill ends the server abruptly (SIGKILL), as a crash or a pulled cable
// would: connections are reset, new ones refused.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	s.stop(syscall.SIGKILL)
}

// Restart starts the server again on the same port and directory. It
// comes back empty (nothing is persisted) and without loaded scripts.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop(syscall.SIGKILL)
	s.start(t)
}

// Pause stops the process (SIGSTOP): connections stay open and requests
// get no answer, as from a server stuck in a long command or swapping.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.paused = true
}

// Resume continues a paused server.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	s.paused = false
}

// Client returns a go-redis client for the server, closed at the end of
// the test.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// quick returns a client for one poll: the caller closes it. (Client's
// clients live until the test ends, too many for a loop.)
func (s *Server) quick() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
}

// Info returns the fields of one INFO section ("memory", "stats").
func (s *Server) Info(t testing.TB, section string) map[string]string {
	t.Helper()
	text, err := s.Client(t).Info(context.Background(), section).Result()
	if err != nil {
		t.Fatalf("INFO %s: %v", section, err)
	}
	return ParseInfo(text)
}

// ParseInfo parses the "key:value" lines of an INFO reply.
func ParseInfo(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// Cluster is a Redis Cluster: masters only (StartCluster), or masters
// with one replica each (StartClusterReplicas).
type Cluster struct {
	Nodes []*Server
	// Addrs are the nodes' addresses, the seeds a client needs.
	Addrs []string
}

// StartCluster starts n (at least 3) cluster-enabled servers and joins
// them into one cluster with redis-cli, the slots spread evenly.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := startClusterNodes(t, n, 0)
	c.waitOK(t)
	return c
}

// StartClusterReplicas starts 2*masters cluster-enabled servers (masters
// at least 3) and joins them into a cluster of that many masters, the
// slots spread evenly, each master with one replica. With the node
// timeout of 2 s, a replica takes over a few seconds after its master
// dies (see Kill, MasterOf, WaitFailover). It returns once every node
// reports cluster_state:ok and every master has its replica online.
func StartClusterReplicas(t testing.TB, masters int) *Cluster {
	t.Helper()
	c := startClusterNodes(t, 2*masters, 1)
	c.waitOK(t)
	c.waitReplicas(t, masters)
	return c
}

func startClusterNodes(t testing.TB, n, replicas int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range n {
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	return c
}

// waitOK waits, at most 30 s, until every live node agrees that the
// cluster is up.
func (c *Cluster) waitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.live() {
		cl := s.Client(t)
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ready within 30 s: %v %s", s.Addr, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// waitReplicas waits, at most 30 s, until there are the given number of
// masters, each with a replica whose link to it is up and which every
// node knows as its replica (a failover needs the other masters to know
// the replica that asks for their votes).
func (c *Cluster) waitReplicas(t testing.TB, masters int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.replicasReady(t, masters)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster replicas not ready within 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) replicasReady(t testing.TB, masters int) error {
	ctx := context.Background()
	var nm int
	for _, s := range c.Nodes {
		cl := s.quick()
		defer cl.Close()
		info, err := cl.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", s.Addr, err)
		}
		r := ParseInfo(info)
		switch r["role"] {
		case "master":
			nm++
			if !strings.Contains(r["slave0"], "state=online") {
				return fmt.Errorf("master %s: no replica online (connected_slaves:%s slave0:%s)", s.Addr, r["connected_slaves"], r["slave0"])
			}
		case "slave":
			if r["master_link_status"] != "up" {
				return fmt.Errorf("replica %s: link to its master %s", s.Addr, r["master_link_status"])
			}
		default:
			return fmt.Errorf("%s: role %q", s.Addr, r["role"])
		}
		nodes, err := cl.ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", s.Addr, err)
		}
		n := 0
		for _, line := range strings.Split(nodes, "\n") {
			// ID ADDR FLAGS MASTER ...; FLAGS like "myself,slave".
			if f := strings.Fields(line); len(f) > 3 && slices.Contains(strings.Split(f[2], ","), "slave") {
				n++
			}
		}
		if n != len(c.Nodes)-masters {
			return fmt.Errorf("%s knows %d replicas, want %d:\n%s", s.Addr, n, len(c.Nodes)-masters, nodes)
		}
	}
	if nm != masters {
		return fmt.Errorf("%d masters, want %d", nm, masters)
	}
	return nil
}

// live returns the nodes whose process still runs, not paused.
func (c *Cluster) live() []*Server {
	var l []*Server
	for _, s := range c.Nodes {
		select {
		case <-s.done:
		default:
			if !s.paused {
				l = append(l, s)
			}
		}
	}
	return l
}

// Slot returns the hash slot of key (CLUSTER KEYSLOT on a live node).
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	var err error
	for _, s := range c.live() {
		var n int64
		cl := s.quick()
		defer cl.Close()
		n, err = cl.ClusterKeySlot(context.Background(), key).Result()
		if err == nil {
			return int(n)
		}
	}
	t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	return 0
}

// MasterOf returns the node that serves key's slot as master, as the
// live node asked first sees it (CLUSTER SLOTS), and the error if none
// of them knows one. A node that took over a slot may be seen as its
// master by itself before the others agree.
func (c *Cluster) MasterOf(t testing.TB, key string) (*Server, error) {
	t.Helper()
	slot := c.Slot(t, key)
	var err error
	for _, s := range c.live() {
		var ranges []redis.ClusterSlot
		cl := s.quick()
		defer cl.Close()
		ranges, err = cl.ClusterSlots(context.Background()).Result()
		if err != nil {
			continue
		}
		for _, r := range ranges {
			if slot < r.Start || slot > r.End || len(r.Nodes) == 0 {
				continue
			}
			for _, n := range c.Nodes {
				if n.Addr == r.Nodes[0].Addr {
					return n, nil
				}
			}
			return nil, fmt.Errorf("slot %d served by %s, not a node of the cluster", slot, r.Nodes[0].Addr)
		}
		err = fmt.Errorf("%s: slot %d not served (CLUSTER SLOTS %v)", s.Addr, slot, ranges)
	}
	return nil, fmt.Errorf("master of slot %d: %w", slot, err)
}

// WaitReplicated waits until the replica of master has everything master
// has (WAIT 1, at most 10 s).
func (c *Cluster) WaitReplicated(t testing.TB, master *Server) {
	t.Helper()
	n, err := master.Client(t).Wait(context.Background(), 1, 10*time.Second).Result()
	if err != nil || n < 1 {
		t.Fatalf("WAIT for the replica of %s: %d %v", master.Addr, n, err)
	}
}

// WaitFailover waits, polling, until a node other than old serves key's
// slot as master, says it is a master (INFO replication), and every live
// node reports cluster_state:ok; it fails the test after timeout. It
// returns the new master.
func (c *Cluster) WaitFailover(t testing.TB, key string, old *Server, timeout time.Duration) *Server {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.failedOver(t, key, old)
		if err == nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover from %s within %v: %v", old.Addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failedOver returns the master of key's slot if it is not old, says it
// is a master, and the cluster is up; or what is still missing.
func (c *Cluster) failedOver(t testing.TB, key string, old *Server) (*Server, error) {
	t.Helper()
	ctx := context.Background()
	m, err := c.MasterOf(t, key)
	if err != nil {
		return nil, err
	}
	if m == old {
		return nil, fmt.Errorf("slot still served by %s", old.Addr)
	}
	mc := m.quick()
	defer mc.Close()
	info, err := mc.Info(ctx, "replication").Result()
	if err != nil {
		return nil, fmt.Errorf("%s: INFO replication: %w", m.Addr, err)
	}
	if ParseInfo(info)["role"] != "master" {
		return nil, fmt.Errorf("%s serves the slot but is not yet a master", m.Addr)
	}
	for _, s := range c.live() {
		cl := s.quick()
		defer cl.Close()
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return nil, fmt.Errorf("%s: cluster not ok: %v %s", s.Addr, err, info)
		}
	}
	return m, nil
}

// Sentinel is a Redis master with one replica, watched by one Sentinel
// that promotes the replica when the master has been down for a second.
// Its failover timeout is 30 s. With 10 s, on a machine loaded by other
// jobs, the Sentinel once made the promoted replica a replica again of
// the old master 13 s after the promotion, once that was back: a
// failover given up, as a Sentinel does when the failover timeout passes
// before it sees the promoted replica report itself master.
type Sentinel struct {
	Master  *Server
	Replica *Server
	// Addr is the Sentinel's address.
	Addr       string
	MasterName string
	sentinel   *Server
}

// StartSentinel starts a master, its replica, and a Sentinel that
// monitors them under the name "sluice-master".
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	master := Start(t)
	replica := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port))
	dir, err := os.MkdirTemp("", "sluice-sentinel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const name = "sluice-master"
	var sn *Server
	for try := 1; ; try++ {
		port := freePort(t)
		conf := fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
logfile %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 30000
`, port, dir, filepath.Join(dir, "sentinel.log"), name, master.Port, name, name)
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		sn = &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir, args: []string{path, "--sentinel"},
			logPath: filepath.Join(dir, "sentinel.log")}
		if !sn.startOnce(t) {
			break
		}
		if try == startTries {
			t.Fatalf("redis sentinel: %d ports in a row were taken between being found free and bound", try)
		}
		t.Logf("redis sentinel: port %d was taken after being found free; trying another", port)
	}
	t.Cleanup(func() {
		sn.stop(syscall.SIGKILL)
		if t.Failed() {
			// What the Sentinel decided and when (+sdown, +switch-master,
			// a failover it gave up on, +convert-to-slave) is in its
			// log alone.
			if b, err := os.ReadFile(sn.logPath); err == nil {
				t.Logf("redis sentinel %s log:\n%s", sn.Addr, tail(b, 8000))
			}
		}
	})
	// The Sentinel knows the master as soon as it has read its config.
	c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	if _, err := c.GetMasterAddrByName(context.Background(), name).Result(); err != nil {
		t.Fatalf("sentinel does not know %s: %v", name, err)
	}
	return &Sentinel{Master: master, Replica: replica, Addr: sn.Addr, MasterName: name, sentinel: sn}
}

// MasterAddr returns the address the Sentinel gives for the master now.
func (s *Sentinel) MasterAddr(t testing.TB) string {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	hp, err := c.GetMasterAddrByName(context.Background(), s.MasterName).Result()
	if err != nil || len(hp) != 2 {
		t.Fatalf("sentinel: master of %s: %v %v", s.MasterName, hp, err)
	}
	return net.JoinHostPort(hp[0], hp[1])
}

// WaitReplicated waits until the replica has everything the master has.
func (s *Sentinel) WaitReplicated(t testing.TB) {
	t.Helper()
	n, err := s.Master.Client(t).Wait(context.Background(), 1, 10*time.Second).Result()
	if err != nil || n < 1 {
		t.Fatalf("WAIT for the replica: %d %v", n, err)
	}
}
