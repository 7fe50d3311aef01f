package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The Postfix parameters the docs tell an administrator to set, written
// as postconf writes them (`name = value` in prose, or a main.cf line in
// a code block), must be ones Postfix knows: postconf only warns of an
// unknown name, and Postfix then ignores the setting.
func TestDocPostfixParametersKnown(t *testing.T) {
	mtatest.Require(t, "postfix")
	out, err := exec.Command("postconf", "-d").Output()
	if err != nil {
		t.Fatalf("postconf -d: %v", err)
	}
	known := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if name, _, ok := strings.Cut(l, " = "); ok {
			known[name] = true
		} else if name, ok := strings.CutSuffix(l, " ="); ok {
			known[name] = true
		}
	}
	if !known["smtpd_milters"] {
		t.Fatalf("postconf -d lists no smtpd_milters; its output: %.300q", out)
	}
	// The settings of one milter inside { } in smtpd_milters, which
	// postconf -d does not list (Postfix 3.0 and later).
	perMilter := map[string]bool{"connect_timeout": true, "command_timeout": true,
		"content_timeout": true, "default_action": true, "protocol": true}

	inProse := regexp.MustCompile("`([a-z][a-z0-9_]*_[a-z0-9_]+) = [^`]*`")
	inBlock := regexp.MustCompile(`^([a-z][a-z0-9_]*_[a-z0-9_]+)\s*=([^=]|$)`)
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs found: %v", err)
	}
	checked := 0
	for _, path := range append(docs, filepath.Join(repoRoot, "README.md")) {
		rel, _ := filepath.Rel(repoRoot, path)
		fence := false
		for i, l := range strings.Split(readDoc(t, rel), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				fence = !fence
				continue
			}
			var names []string
			if fence {
				if m := inBlock.FindStringSubmatch(l); m != nil {
					names = append(names, m[1])
				}
			} else {
				for _, m := range inProse.FindAllStringSubmatch(l, -1) {
					names = append(names, m[1])
				}
			}
			for _, name := range names {
				if perMilter[name] {
					continue
				}
				checked++
				if !known[name] {
					t.Errorf("%s:%d: Postfix (postconf -d) knows no parameter %q", rel, i+1, name)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no Postfix parameter in the docs; update this test")
	}
}
