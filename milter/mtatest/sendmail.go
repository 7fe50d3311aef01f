package mtatest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// SendmailOptions configures StartSendmail.
type SendmailOptions struct {
	// Port is the loopback SMTP port; 0 picks a free one.
	Port int
	// Milter uses the same syntax as PostfixOptions.Milter ("unix:/path",
	// "inet:127.0.0.1:PORT"); it is converted to Sendmail's
	// "inet:PORT@127.0.0.1". "" runs without a milter.
	Milter string
	// DefaultAction is what Sendmail does when the milter cannot be
	// reached: "accept" (no F= flag: carry on without it), "tempfail"
	// (F=T, the default when empty) or "reject" (F=R).
	DefaultAction string
	// MilterTimeouts is the milter's T= equate; empty means
	// "C:5s;S:10s;R:10s;E:30s" (connect, send, read, overall end of
	// message).
	MilterTimeouts string
	// ExtraConfig holds sendmail.mc lines, placed after the harness's own
	// definitions and before the MAILER lines, e.g.
	// "define(`confMAX_MESSAGE_SIZE', `100000')dnl".
	ExtraConfig []string
}

// sendmailPackages returns the Debian packages Sendmail needs besides the
// unpacked sendmail-bin (see testdata/mta/sendmail-install.sh).
func sendmailPackages() []string {
	return []string{"m4", "sendmail-cf", "busybox", "swaks", "procps",
		"libdb5.3", "libldap-2.5-0", "liblockfile1", "libnsl2", "libsasl2-2", "libssl3", "libwrap0"}
}

// StartSendmail starts a private Sendmail instance for the duration of the
// test (see the package documentation for what it accepts and where it
// delivers). Sendmail is never installed as a package, because it conflicts
// with Postfix; its binary is unpacked into testdata/cache once. See
// Require for what happens when that is impossible.
func StartSendmail(t testing.TB, opts SendmailOptions) *MTA {
	t.Helper()
	spec, err := SendmailMilterSpec(opts.Milter)
	if err != nil {
		t.Fatalf("StartSendmail: %v", err)
	}
	action, err := defaultAction(opts.DefaultAction)
	if err != nil {
		t.Fatalf("StartSendmail: %v", err)
	}
	Require(t, sendmailPackages()...)
	root, err := runScript(installTimeout, "mta/sendmail-install.sh")
	if err != nil {
		Unavailable(t, "cannot unpack sendmail-bin: %v", err)
	}
	args := []string{"-m", spec, "-a", action}
	if opts.MilterTimeouts != "" {
		args = append(args, "-t", opts.MilterTimeouts)
	}
	for _, line := range opts.ExtraConfig {
		args = append(args, "-o", line)
	}
	m := start(t, "sendmail", opts.Port, args)
	m.sendmail = filepath.Join(strings.TrimSpace(root), "usr/libexec/sendmail/sendmail")
	return m
}

// SendmailMilterSpec converts a milter spec from Postfix syntax
// ("unix:/path", "inet:127.0.0.1:PORT", "inet:[::1]:PORT") to Sendmail's
// S= syntax ("unix:/path", "inet:PORT@127.0.0.1", "inet6:PORT@::1").
// "" stays "".
func SendmailMilterSpec(spec string) (string, error) {
	if spec == "" {
		return "", nil
	}
	network, addr, err := parseMilterSpec(spec)
	if err != nil {
		return "", err
	}
	if network == "unix" {
		return "unix:" + addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("milter %q: %w", spec, err)
	}
	if net.ParseIP(host).To4() == nil {
		return "inet6:" + port + "@" + host, nil
	}
	return "inet:" + port + "@" + host, nil
}
