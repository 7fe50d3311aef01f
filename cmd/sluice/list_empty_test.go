package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --list with an empty name (a script's "--list $NEWFILES" with the
// variable unset) was taken for no --list at all, and train and classify
// read standard input instead: a hook whose standard input held a
// message learned or scored that one message, with no word that the list
// was never read. It is refused before anything is read or the store
// opened.
func TestEmptyListNameRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "bayes.db")
	msg := "Subject: piped\n\nnot meant to be read\n"
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"train", "--db", db, "--spam", "--list", ""}, statusUsage},
		{[]string{"train", "--db", db, "--spam", "--list="}, statusUsage},
		{[]string{"classify", "--db", db, "--list", ""}, 3},
	} {
		r := runCLI(t, msg, tc.args...)
		if r.code != tc.code || r.stdout != "" || !strings.Contains(r.stderr, "--list") {
			t.Errorf("%q: exit %d, want %d; stdout %q, stderr %q", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("the store was created")
	}
}
