package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// A header field larger than Postfix's header_size_limit (102400 bytes by
// default) is cut by Postfix before its milters see it, so the daemon
// never meets the 1 MiB bound of a header block with one such field:
// sluice test must give the same verdict as the daemon behind Postfix.
func TestDryRunHugeFieldMatchesDaemonPostfix(t *testing.T) {
	mtatest.Require(t)
	state := t.TempDir()
	sock := filepath.Join(socketDir(t), "sluice.sock")
	td := startDaemonWith(t, fmt.Sprintf(`listen:
  - address: unix:%s
    mode: "0666"
metrics:
  listen: 127.0.0.1:0
shutdown_timeout: 5s
state_dir: %s
filters:
  - type: headerfix
`, sock, state))
	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: "unix:" + sock, DefaultAction: "tempfail"})

	raw := "From: alice@lab.example\r\nTo: bob@lab.example\r\nSubject: huge\r\nMessage-ID: <huge@lab.example>\r\n" +
		"X-Huge: " + strings.Repeat("h", 1200000) + "\r\n\r\nHello.\r\n"
	file := filepath.Join(t.TempDir(), "huge.eml")
	if err := os.WriteFile(file, []byte(raw), 0o644); err != nil {
		t.Fatal(err)
	}

	logStart := len(td.log.String())
	c := mtatest.DialSMTP(t, mta.Addr())
	c.Cmd("EHLO client.example")
	reply := c.Send("alice@lab.example", []string{"bob@lab.example"}, []byte(raw))
	c.Quit()
	daemon := dryRunDaemonLine(t, td, logStart)

	r := runCLI(t, "", "test", "--config", td.config, "--format", "json", "--client-name", daemon.clientName,
		"--helo", "client.example", "--from", "alice@lab.example", "--rcpt", "bob@lab.example", file)
	var rep testReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("sluice test: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if rep.Verdict != daemon.fields["verdict"] {
		t.Errorf("verdict: sluice test %s (%s, exit %d), daemon %s; the client got %d %s",
			rep.Verdict, rep.Reason, r.code, daemon.fields["verdict"], reply.Code, reply.Text)
	}
	if rep.Reply != daemon.fields["reply"] {
		t.Errorf("reply: sluice test %q, daemon %q", rep.Reply, daemon.fields["reply"])
	}
}
