package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dovecot, the IMAP server an administrator may point at the archive to
// browse it, finds the messages sluice wrote, each whole: its "From " line
// is one Dovecot's mbox parser accepts, and no record runs into the next.
// Dovecot does not take a '>' off a quoted "From " line (mboxo), and it
// hides the Content-Length field, as it does with the fields of its own;
// otherwise each message is the record as stored, with CRLF line ends.
//
// Dovecot writes its own fields (X-UID, X-IMAPbase) into an mbox it
// serves, so it reads a copy. It refuses to run as root: run as root, the
// test runs it as nobody.
func TestDovecotReadsTheArchive(t *testing.T) {
	imap := needTool(t, "/usr/lib/dovecot/imap", "dovecot-imapd", "to read the mbox as Dovecot does")
	dir := searchableTempDir(t)
	path := filepath.Join(t.TempDir(), "a.mbox")
	recs := archiveReaderCases(t, path, "D")

	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(home, "inbox.mbox")
	if err := os.WriteFile(inbox, stored, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`log_path = %[1]s/log
base_dir = %[1]s/run
state_dir = %[1]s/state
mail_location = mbox:%[2]s:INBOX=%[3]s:INDEX=MEMORY
`, dir, home, inbox)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, imap, "-c", conf)
	cmd.Stdin = strings.NewReader("a SELECT INBOX\r\nb FETCH 1:* (BODY.PEEK[])\r\nc LOGOUT\r\n")
	var login string
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	if os.Geteuid() == 0 {
		for _, p := range []string{dir, home, inbox} {
			if err := os.Chown(p, unprivilegedUID, unprivilegedUID); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: unprivilegedUID, Gid: unprivilegedUID}}
		login = "nobody"
	}
	cmd.Env = append(os.Environ(), "USER="+login, "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dovecot imap: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(fmt.Sprintf("\r\n* %d EXISTS\r\n", len(recs)))) {
		t.Fatalf("Dovecot does not find %d messages:\n%s", len(recs), out)
	}

	// Each message comes as "* N FETCH (BODY[] {LENGTH}" and LENGTH bytes.
	literal := regexp.MustCompile(`\* (\d+) FETCH \(BODY\[\] \{(\d+)\}\r\n`)
	var got []string
	rest := out
	for {
		m := literal.FindSubmatchIndex(rest)
		if m == nil {
			break
		}
		n, _ := strconv.Atoi(string(rest[m[4]:m[5]]))
		if m[1]+n > len(rest) {
			t.Fatalf("a message of %d bytes runs past the output:\n%s", n, out)
		}
		got = append(got, string(rest[m[1]:m[1]+n]))
		rest = rest[m[1]+n:]
	}
	if len(got) != len(recs) {
		t.Fatalf("Dovecot returns %d messages, want %d:\n%s", len(got), len(recs), out)
	}
	for i, r := range recs {
		_, asStored, _ := strings.Cut(string(r.Raw), "\n")
		head, body, _ := strings.Cut(asStored, "\n\n")
		var fields []string
		for _, line := range strings.Split(head, "\n") {
			if !strings.HasPrefix(line, "Content-Length:") {
				fields = append(fields, line)
			}
		}
		want := strings.ReplaceAll(strings.Join(fields, "\n")+"\n\n"+body, "\n", "\r\n")
		if got[i] != want {
			t.Errorf("message %d as Dovecot reads it:\n%.300q\nwant:\n%.300q", i, got[i], want)
		}
	}
}
