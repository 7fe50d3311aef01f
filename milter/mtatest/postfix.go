package mtatest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
)

// PostfixOptions configures StartPostfix.
type PostfixOptions struct {
	// Port is the loopback SMTP port; 0 picks a free one.
	Port int
	// Milter is the smtpd_milters value: "unix:/path" or
	// "inet:127.0.0.1:PORT" ("inet:[::1]:PORT"); "" runs without a milter.
	Milter string
	// DefaultAction is milter_default_action, what Postfix does when the
	// milter cannot be reached or fails: "accept", "tempfail" (the default
	// when empty) or "reject".
	DefaultAction string
	// NonSMTPDMilters sets non_smtpd_milters = $smtpd_milters, so that
	// mail submitted on the host (MTA.SubmitLocal) goes through the milter
	// too. Unset, such mail is queued without it.
	NonSMTPDMilters bool
	// ExtraConfig holds main.cf lines ("name = value"), applied after the
	// harness's own settings with postconf -e, so they may override them;
	// e.g. "smtpd_delay_open_until_valid_rcpt = no" or
	// "milter_end_of_data_macros = i {rcpt_addr}".
	ExtraConfig []string
}

// StartPostfix starts a private Postfix instance for the duration of the
// test (see the package documentation for what it accepts and where it
// delivers). It installs Postfix if needed; see Require for what happens
// when that is impossible.
func StartPostfix(t testing.TB, opts PostfixOptions) *MTA {
	t.Helper()
	if err := checkMilterSpec(opts.Milter); err != nil {
		t.Fatalf("StartPostfix: %v", err)
	}
	action, err := defaultAction(opts.DefaultAction)
	if err != nil {
		t.Fatalf("StartPostfix: %v", err)
	}
	Require(t, "postfix", "swaks")
	args := []string{"-m", opts.Milter, "-a", action}
	if opts.NonSMTPDMilters {
		args = append(args, "-o", "non_smtpd_milters = $smtpd_milters")
	}
	for _, line := range opts.ExtraConfig {
		args = append(args, "-o", line)
	}
	return start(t, "postfix", opts.Port, args)
}

func defaultAction(a string) (string, error) {
	switch a {
	case "":
		return "tempfail", nil
	case "accept", "tempfail", "reject":
		return a, nil
	}
	return "", fmt.Errorf("default action %q is not accept, tempfail or reject", a)
}

// checkMilterSpec accepts "", "unix:/abs/path" and loopback
// "inet:HOST:PORT" specs in Postfix syntax.
func checkMilterSpec(spec string) error {
	if spec == "" {
		return nil
	}
	_, _, err := parseMilterSpec(spec)
	return err
}

// parseMilterSpec splits a Postfix-syntax milter spec into its network
// ("unix" or "tcp") and address (a path, or host:port with a loopback IP).
func parseMilterSpec(spec string) (network, addr string, err error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return "", "", fmt.Errorf("milter %q: want unix:/path or inet:HOST:PORT", spec)
	}
	switch kind {
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("milter %q: unix socket path must be absolute", spec)
		}
		// sockaddr_un.sun_path holds 108 bytes including the final NUL.
		if len(rest) > 107 {
			return "", "", fmt.Errorf("milter %q: socket path longer than 107 bytes", spec)
		}
		return "unix", rest, nil
	case "inet":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("milter %q: %w", spec, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return "", "", fmt.Errorf("milter %q: host must be a loopback IP address", spec)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("milter %q: bad port", spec)
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("milter %q: want unix:/path or inet:HOST:PORT", spec)
}
