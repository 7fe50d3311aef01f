package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// debTestVersion marks the package this test builds, so that a leftover of
// an earlier run is told from a real installation, which the test never
// touches.
const debTestVersion = "0.0.0~pkgtest"

// Paths of the installed package.
const (
	debUnit   = "/lib/systemd/system/sluice.service"
	debConfig = "/etc/sluice/sluice.yml"
	debSocket = "/var/spool/postfix/sluice/sluice.sock"
	// The packaged configuration's metrics listener.
	debMetricsListen = "listen: 127.0.0.1:7358"
	// dpkg and the test's apt-get calls share the lock of
	// testdata/install-deps.sh, as tests of other packages run at the
	// same time.
	debLock = "/tmp/sluice-install-deps.lock"
)

// Acceptance test of the Debian package (make deb): build it, install it
// with dpkg, check the installed binary, configuration, unit, man pages
// and completion, run the daemon as the unit would (as user sluice, from
// the installed configuration, without systemd) and one message through
// real Postfix over the packaged socket, then remove and purge it and
// check what is left. It changes the machine (a package, a system user)
// and cleans up after itself, also on failure; it refuses to run where a
// sluice package other than its own, or a sluice installed by hand, is
// found.
func TestDebPackage(t *testing.T) {
	mtatest.Require(t, "postfix", "systemd", "adduser")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", "sluice").Output(); err == nil {
		status := string(out)
		if strings.Contains(status, "installed") && !strings.HasSuffix(status, " "+debTestVersion) {
			mtatest.Unavailable(t, "a sluice package (%s) is installed on this machine; not touching it", status)
		}
	}
	debPurge(t)
	// A sluice installed from source has the same user, configuration
	// and state directory, which purging the test's package would delete.
	for _, p := range []string{"/etc/sluice", "/var/lib/sluice", "/var/spool/postfix/sluice"} {
		if _, err := os.Lstat(p); err == nil {
			mtatest.Unavailable(t, "%s exists without the test's package (sluice installed from source?); not touching it", p)
		}
	}
	if _, err := user.Lookup("sluice"); err == nil {
		mtatest.Unavailable(t, "a user sluice exists without the test's package; not touching it")
	}
	t.Cleanup(func() {
		debPurge(t)
		os.RemoveAll("/etc/sluice") // the administrator's file of the last step
	})

	// Build.
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command("bash", filepath.Join(repoRoot, "testdata", "deb", "build.sh"), t.TempDir(), debTestVersion)
	build.Env = append(os.Environ(), "GO="+goBin)
	var buildErr bytes.Buffer
	build.Stderr = &buildErr
	out, err := build.Output()
	if err != nil {
		t.Fatalf("build.sh: %v\n%s", err, buildErr.String())
	}
	deb := strings.TrimSpace(string(out))
	if !strings.HasSuffix(deb, "sluice_"+debTestVersion+"_"+runtime.GOARCH+".deb") {
		t.Fatalf("build.sh made %q", deb)
	}
	contents := debRun(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{"./usr/bin/sluice", "./etc/sluice/sluice.yml", "./lib/systemd/system/sluice.service",
		"./usr/share/man/man8/sluice.8.gz", "./usr/share/man/man8/sluice-serve.8.gz", "./usr/share/man/man8/sluice-test.8.gz",
		"./usr/share/bash-completion/completions/sluice", "./usr/share/doc/sluice/copyright", "./usr/share/doc/sluice/changelog.gz", "./usr/share/doc/sluice/install.md",
		"./usr/share/doc/sluice/grafana-dashboard.json", "./usr/share/doc/sluice/alerts/sluice.yml", "./usr/share/doc/sluice/alerts/senders.yml"} {
		if !regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(want) + `$`).MatchString(contents) {
			t.Errorf("the package lacks %s", want)
		}
	}
	if got := debRun(t, "dpkg-deb", "-f", deb, "Depends"); strings.TrimSpace(got) != "adduser" {
		t.Errorf("Depends: %q, want adduser (the binary is static)", got)
	}
	debLintian(t, deb)
	ctl := t.TempDir()
	debRun(t, "dpkg-deb", "-e", deb, ctl)
	if conf, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(conf)) != debConfig {
		t.Errorf("conffiles: %q, want %s", conf, debConfig)
	}
	var files []string
	for _, line := range strings.Split(contents, "\n") {
		if f := strings.Fields(line); len(f) == 6 && !strings.HasSuffix(f[5], "/") {
			files = append(files, strings.TrimPrefix(f[5], "."))
		}
	}

	// Install.
	debLocked(t, "dpkg", "-i", deb)
	for _, arg := range []string{"version", "--version"} {
		if got := debRun(t, "/usr/bin/sluice", arg); !strings.HasPrefix(got, "sluice "+debTestVersion+" ") {
			t.Errorf("sluice %s: %q, want the package's version %s", arg, got, debTestVersion)
		}
	}
	if got := debRun(t, "/usr/bin/sluice", "config", "check", debConfig); !strings.Contains(got, "unix:"+debSocket) {
		t.Errorf("sluice config check %s:\n%s", debConfig, got)
	}
	u, err := user.Lookup("sluice")
	if err != nil {
		t.Fatalf("no user sluice after install: %v", err)
	}
	if groups := debRun(t, "id", "-nG", "sluice"); !slices.Contains(strings.Fields(groups), "postfix") {
		t.Errorf("user sluice is not in the group postfix: %q", groups)
	}
	debCheckDir(t, "/var/lib/sluice", "sluice", "sluice", 0o750)
	debCheckDir(t, "/var/spool/postfix/sluice", "sluice", "postfix", 0o750)
	if page := debRun(t, "sh", "-c", "zcat /usr/share/man/man8/sluice-test.8.gz"); !strings.Contains(page, ".TH \"SLUICE\" \"8\"") || !strings.Contains(page, "sluice-test") {
		t.Errorf("man page sluice-test(8):\n%.300s", page)
	}
	// The changelog dpkg-parsechangelog and lintian read: its entry names
	// the package's version.
	if got := debRun(t, "sh", "-c", "zcat /usr/share/doc/sluice/changelog.gz | head -n1"); strings.TrimSpace(got) != "sluice ("+debTestVersion+") unstable; urgency=medium" {
		t.Errorf("changelog.gz starts with %q", got)
	}
	if got := debRun(t, "bash", "-c", "source /usr/share/bash-completion/completions/sluice && complete -p sluice"); !strings.Contains(got, "sluice") {
		t.Errorf("bash completion: %q", got)
	}

	// The unit: systemd's own checks (systemd is installed, but not
	// running in a test container; these work offline).
	debRun(t, "systemd-analyze", "verify", debUnit)
	sec, _ := exec.Command("systemd-analyze", "security", "--offline=yes", debUnit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for sluice.service: ([0-9.]+) (\S+)`).FindStringSubmatch(string(sec))
	if m == nil {
		t.Errorf("systemd-analyze security:\n%s", sec)
	} else if v, _ := strconv.ParseFloat(m[1], 64); v > 2.0 {
		t.Errorf("exposure level %s (%s), want at most 2.0:\n%s", m[1], m[2], sec)
	}

	// Run the daemon as the unit says, without systemd, and one message
	// through Postfix over the packaged socket. The metrics port of the
	// packaged configuration may be taken (by "make run", whose
	// configuration uses it too): the daemon gets a free one, as an
	// administrator would edit it, and logs which.
	conf, err := os.ReadFile(debConfig)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(conf), debMetricsListen) != 1 {
		t.Fatalf("%s does not have one %q", debConfig, debMetricsListen)
	}
	conf = []byte(strings.Replace(string(conf), debMetricsListen, "listen: 127.0.0.1:0", 1))
	if err := os.WriteFile(debConfig, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	unit := debParseUnit(t, debUnit)
	// systemd kills the daemon TimeoutStopSec after SIGTERM: that must
	// leave the packaged shutdown_timeout for messages in flight.
	stopAfter, err1 := time.ParseDuration(strings.Join(unit["TimeoutStopSec"], ""))
	m = regexp.MustCompile(`(?m)^shutdown_timeout: (\S+)$`).FindStringSubmatch(string(conf))
	if m == nil {
		t.Fatalf("%s has no shutdown_timeout", debConfig)
	}
	if drain, err2 := time.ParseDuration(m[1]); err1 != nil || err2 != nil || stopAfter < drain+5*time.Second {
		t.Errorf("TimeoutStopSec=%v leaves the daemon no time past shutdown_timeout %s (%v, %v)", unit["TimeoutStopSec"], m[1], err1, err2)
	}
	// systemd orders the MTA after the unit once the daemon says READY=1,
	// which it sends itself from its main process (NotifyAccess=main,
	// the default for Type=notify).
	if got := unit["Type"]; len(got) != 1 || got[0] != "notify" {
		t.Errorf("Type=%q, want notify: the daemon tells systemd when its socket is up", got)
	}
	if got := unit["NotifyAccess"]; len(got) > 1 || len(got) == 1 && got[0] != "main" {
		t.Errorf("NotifyAccess=%q, want the default (main): only the daemon speaks for itself", got)
	}
	if got := unit["ExecReload"]; len(got) != 1 || !strings.HasSuffix(got[0], "kill -HUP $MAINPID") {
		t.Errorf("ExecReload=%q, want SIGHUP to the daemon (its reload)", got)
	}
	d := debStartDaemon(t, unit, u)
	fi, err := os.Stat(debSocket)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || debGroupName(t, st.Gid) != "postfix" {
		t.Errorf("socket %s: mode %s, group %s; want a socket, 0660, postfix", debSocket, fi.Mode(), debGroupName(t, st.Gid))
	}
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + debSocket, DefaultAction: "tempfail"})
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	// A Date line that ended in a bare CR: Postfix makes it a space, the
	// packaged configuration's headerfix filter splits the field again.
	r := c.Send("erin@lab.example", []string{"bob@lab.example"}, []byte("From: erin@lab.example\r\nTo: bob@lab.example\r\n"+
		"Date: Fri, 8 Sep 2017 13:44:33 -0400\rSubject: packaged\r\nMessage-ID: <deb@lab.example>\r\n\r\nHello.\r\n"))
	c.Quit()
	if r.Code != 250 {
		t.Fatalf("message through Postfix and the packaged daemon: %v\ndaemon log:\n%s", r, d.log.String())
	}
	got := mta.WaitDelivered(t, 1, 20*time.Second)[0]
	if got.Get("Subject") != "packaged" || got.Get("Date") != "Fri, 8 Sep 2017 13:44:33 -0400" {
		t.Errorf("delivered with Date %q, Subject %q: headerfix did not run", got.Get("Date"), got.Get("Subject"))
	}
	if metrics := debGet(t, "http://"+d.metrics+"/metrics"); !strings.Contains(metrics, `sluice_messages_total{verdict="accept"} 1`) {
		t.Errorf("metrics of the packaged daemon lack the message:\n%s", grepLines(metrics, "sluice_messages_total"))
	}
	d.stop(t)

	// Enabled at install, as docs/install.md says; an administrator's
	// "systemctl disable" survives an upgrade. (systemctl answers from
	// the unit files without a running systemd.)
	if got := debEnabled(t); got != "enabled" {
		t.Errorf("after install the unit is %q, want enabled", got)
	}
	debRun(t, "systemctl", "disable", "--quiet", "sluice")

	// Reinstall over an edited conffile: the edit stays.
	edited := "# edited by the administrator\n"
	appendFile(t, debConfig, edited)
	debLocked(t, "dpkg", "-i", deb)
	if b, _ := os.ReadFile(debConfig); !strings.HasSuffix(string(b), edited) {
		t.Errorf("reinstalling lost the administrator's edit of %s", debConfig)
	}

	if got := debEnabled(t); got != "disabled" {
		t.Errorf("after the administrator disabled it and reinstalled, the unit is %q, want disabled", got)
	}

	// Postfix installed after sluice: docs/install.md has the
	// administrator run dpkg-reconfigure, which must put the user in the
	// group postfix and make the socket directory, as a first install
	// with Postfix there does. Taken away here as if Postfix came later.
	debRun(t, "deluser", "--quiet", "sluice", "postfix")
	if err := os.Remove("/var/spool/postfix/sluice"); err != nil {
		t.Fatal(err)
	}
	debLocked(t, "dpkg-reconfigure", "sluice")
	if groups := debRun(t, "id", "-nG", "sluice"); !slices.Contains(strings.Fields(groups), "postfix") {
		t.Errorf("dpkg-reconfigure sluice did not put the user sluice in the group postfix: %q", groups)
	}
	debCheckDir(t, "/var/spool/postfix/sluice", "sluice", "postfix", 0o750)

	// Remove: the program goes; configuration, state and user stay.
	debLocked(t, "dpkg", "-r", "sluice")
	for _, p := range []string{"/usr/bin/sluice", debUnit} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after dpkg -r", p)
		}
	}
	for _, p := range []string{debConfig, "/var/lib/sluice"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dpkg -r removed %s: %v", p, err)
		}
	}

	// Installing again after a remove takes back the mask the remove
	// put on the unit, and keeps the administrator's choice.
	debLocked(t, "dpkg", "-i", deb)
	if got := debEnabled(t); got != "disabled" {
		t.Errorf("after remove and install the unit is %q, want disabled", got)
	}
	debLocked(t, "dpkg", "-r", "sluice")

	// Purge: nothing is left but what the administrator made.
	admin := "/etc/sluice/senders"
	if err := os.WriteFile(admin, []byte("spam.example REJECT\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An administrator's overrides naming the user and group sluice: one
	// the postinst honours, and the one docs/install.md suggests to keep
	// the configuration from other users. dpkg refuses to run at all,
	// for any package, while an override names a group that is gone:
	// they must not outlive the purge, whatever this test does.
	overrides := [][]string{{"sluice", "sluice", "0750", "/var/lib/sluice"}, {"root", "sluice", "0640", debConfig}}
	t.Cleanup(func() {
		for _, o := range overrides {
			exec.Command("dpkg-statoverride", "--quiet", "--remove", o[3]).Run()
		}
	})
	for _, o := range overrides {
		debRun(t, "dpkg-statoverride", append([]string{"--update", "--add"}, o...)...)
	}
	debLocked(t, "dpkg", "--purge", "sluice")
	if list, _ := exec.Command("dpkg-statoverride", "--list").Output(); regexp.MustCompile(`(?m)^\S+ sluice |^sluice `).Match(list) {
		t.Errorf("overrides naming sluice outlived the purge:\n%s", list)
	}
	var left []string
	for _, p := range append(files, "/var/lib/sluice", "/var/spool/postfix/sluice", "/run/sluice",
		"/etc/systemd/system/multi-user.target.wants/sluice.service", "/etc/systemd/system/sluice.service",
		"/var/lib/systemd/deb-systemd-helper-enabled/sluice.service.dsh-also",
		"/var/lib/systemd/deb-systemd-helper-masked/sluice.service") {
		if _, err := os.Lstat(p); err == nil {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("left after dpkg --purge: %v", left)
	}
	if _, err := user.Lookup("sluice"); err == nil {
		t.Error("user sluice is left after dpkg --purge")
	}
	if _, err := user.LookupGroup("sluice"); err == nil {
		t.Error("group sluice is left after dpkg --purge")
	}
	if entries, _ := os.ReadDir("/etc/sluice"); len(entries) != 1 || entries[0].Name() != "senders" {
		t.Errorf("/etc/sluice after purge holds %v, want only the administrator's senders file", entries)
	}

	// The package installs again after a purge (the cleanup purges it).
	debLocked(t, "dpkg", "-i", deb)
}

// debRun runs a command and returns its standard output; the test fails
// if it fails.
func debRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// debLocked runs a dpkg command under the lock the test suite's package
// installs take. On a machine with systemd the package's postinst would
// start the packaged daemon, on the socket and port the test's own daemon
// takes: the command runs with service starts denied, as installs do.
func debLocked(t *testing.T, args ...string) {
	t.Helper()
	nostart := filepath.Join("..", "..", "testdata", "no-service-starts.sh")
	cmd := exec.Command("flock", append([]string{"-w", "600", debLock, nostart}, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// debPurge removes the test's package if it is installed, with whatever
// an interrupted run left: a daemon still running as user sluice.
func debPurge(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", "sluice").Output()
	if !strings.HasSuffix(string(out), " "+debTestVersion) {
		return
	}
	exec.Command("pkill", "-TERM", "-u", "sluice", "-x", "sluice").Run()
	cmd := exec.Command("flock", "-w", "600", debLock, "dpkg", "--purge", "sluice")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("dpkg --purge sluice: %v\n%s", err, b)
	}
}

func debCheckDir(t *testing.T, path, owner, group string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	u, _ := user.LookupId(strconv.Itoa(int(st.Uid)))
	if u == nil || u.Username != owner || debGroupName(t, st.Gid) != group || fi.Mode().Perm() != mode {
		t.Errorf("%s: %s %d:%s, want %s %s:%s", path, fi.Mode(), st.Uid, debGroupName(t, st.Gid), os.FileMode(mode), owner, group)
	}
}

func debGroupName(t *testing.T, gid uint32) string {
	g, err := user.LookupGroupId(strconv.Itoa(int(gid)))
	if err != nil {
		return strconv.Itoa(int(gid))
	}
	return g.Name
}

// debParseUnit reads the [Service] section of a unit file: key to values,
// in order (a key may be given several times).
func debParseUnit(t *testing.T, path string) map[string][]string {
	t.Helper()
	keys := unitSection(t, path, "[Service]")
	for _, k := range []string{"User", "Group", "ExecStart", "RuntimeDirectory", "StateDirectory", "UMask"} {
		if len(keys[k]) != 1 {
			t.Fatalf("%s: [Service] %s = %q, want one value", path, k, keys[k])
		}
	}
	return keys
}

// debDaemon is the packaged daemon started as its unit says.
type debDaemon struct {
	cmd     *exec.Cmd
	log     *syncBuffer
	done    chan error
	metrics string // host:port of its metrics listener
}

// debStartDaemon does what systemd does for the unit's [Service]: it
// makes RuntimeDirectory and StateDirectory (owned by User, with their
// modes), runs ExecStart as User and Group with User's supplementary
// groups and UMask, with a clean environment and a NOTIFY_SOCKET, and
// waits for READY=1, when the socket and the metrics listener, whose
// address the daemon logs, must answer. The runtime directory goes when
// the test ends, as at a stop.
func debStartDaemon(t *testing.T, unit map[string][]string, u *user.User) *debDaemon {
	t.Helper()
	if unit["User"][0] != "sluice" || unit["Group"][0] != "sluice" {
		t.Fatalf("unit runs as %s:%s, want sluice:sluice", unit["User"][0], unit["Group"][0])
	}
	uid, _ := strconv.Atoi(u.Uid)
	g, err := user.LookupGroup(unit["Group"][0])
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	var groups []uint32
	gids, _ := u.GroupIds()
	for _, s := range gids {
		n, _ := strconv.Atoi(s)
		groups = append(groups, uint32(n))
	}
	mkdir := func(path, modeKey, def string) {
		mode, err := strconv.ParseUint(append(unit[modeKey], def)[0], 8, 32)
		if err != nil {
			t.Fatalf("%s: %v", modeKey, err)
		}
		if err := os.MkdirAll(path, os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, os.FileMode(mode))
		os.Chown(path, uid, gid)
	}
	run := "/run/" + unit["RuntimeDirectory"][0]
	mkdir(run, "RuntimeDirectoryMode", "0755")
	t.Cleanup(func() { os.RemoveAll(run) })
	mkdir("/var/lib/"+unit["StateDirectory"][0], "StateDirectoryMode", "0755")

	argv := strings.Fields(unit["ExecStart"][0])
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask "$0" && exec "$@"`, unit["UMask"][0]}, argv...)...)
	// systemd's end of NOTIFY_SOCKET (Type=notify), which the daemon, as
	// user sluice, must be able to write to.
	ndir, err := os.MkdirTemp("", "sluice-notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ndir) })
	os.Chmod(ndir, 0o755)
	nsock := filepath.Join(ndir, "notify")
	nconn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nconn.Close() })
	os.Chmod(nsock, 0o666)
	notified := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nconn.Read(buf)
			if err != nil {
				return
			}
			notified <- string(buf[:n])
		}
	}()
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "NOTIFY_SOCKET=" + nsock}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, Setpgid: true}
	d := &debDaemon{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("packaged daemon's log:\n%s", d.log.String())
		}
	})
	// Type=notify: systemd takes the daemon for started at READY=1, and
	// starts the MTA then. Its socket and metrics must answer at once.
	timeout := time.After(15 * time.Second)
	for ready := false; !ready; {
		select {
		case err := <-d.done:
			t.Fatalf("the packaged daemon exited: %v\n%s", err, d.log.String())
		case msg := <-notified:
			ready = slices.Contains(strings.Split(msg, "\n"), "READY=1")
		case <-timeout:
			t.Fatalf("the packaged daemon did not send READY=1:\n%s", d.log.String())
		}
	}
	if _, err := os.Stat(debSocket); err != nil {
		t.Fatalf("READY=1 before the socket: %v\n%s", err, d.log.String())
	}
	// The start line, which names the metrics port, was written before
	// READY=1 was sent, but the copy of the daemon's output into d.log may
	// lag behind.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m := regexp.MustCompile(`msg="sluice started" .* metrics=(\S+)`).FindStringSubmatch(d.log.String()); m != nil {
			d.metrics = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start line with the metrics address:\n%s", d.log.String())
		}
	}
	resp, err := http.Get("http://" + d.metrics + "/healthz")
	if err != nil {
		t.Fatalf("READY=1 before the metrics listener: %v", err)
	}
	resp.Body.Close()
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if !regexp.MustCompile(`(?m)^Uid:\s+` + u.Uid + `\s`).Match(status) {
		t.Errorf("the daemon does not run as sluice (%s):\n%s", u.Uid, status)
	}
	return d
}

// stop sends SIGTERM, as systemctl stop does, and waits for exit status 0
// within the unit's TimeoutStopSec.
func (d *debDaemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("the packaged daemon exited with %v\n%s", err, d.log.String())
		}
	case <-time.After(45 * time.Second):
		t.Errorf("the packaged daemon did not stop within 45s")
	}
	if _, err := os.Stat(debSocket); err == nil {
		t.Errorf("the daemon left its socket %s", debSocket)
	}
}

func debGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// debLintianAccepted are the lintian tags the package has on purpose.
var debLintianAccepted = map[string]string{
	"statically-linked-binary":            "the binary is static: no library dependencies",
	"bogus-mail-host":                     "the project has no mailing list to name as maintainer",
	"bogus-mail-host-in-debian-changelog": "the same maintainer, in the changelog",
}

// debLintian runs lintian on the package, installing it first if need be
// (under CI=true it must be there, as every tool a test uses), and fails
// on any error or warning not in debLintianAccepted.
func debLintian(t *testing.T, deb string) {
	t.Helper()
	mtatest.Require(t, "lintian")
	// lintian exits non-zero when it finds errors: its output decides.
	out, _ := exec.Command("lintian", "--tag-display-limit", "0", deb).CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "E:" && f[0] != "W:") {
			continue
		}
		if _, ok := debLintianAccepted[f[2]]; !ok {
			t.Errorf("lintian: %s", line)
		}
	}
}

// debEnabled is what "systemctl is-enabled sluice" says: enabled,
// disabled, masked...
func debEnabled(t *testing.T) string {
	t.Helper()
	// It exits non-zero for anything but enabled: its output decides.
	out, _ := exec.Command("systemctl", "is-enabled", "sluice").Output()
	return strings.TrimSpace(string(out))
}
