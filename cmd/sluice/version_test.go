package main

import (
	"bytes"
	"testing"

	"github.com/sluice-mail/sluice/filters/filtertest"
)

// TestVersionFlag: "sluice --version", which administrators and packaging
// scripts try first, prints what "sluice version" prints.
func TestVersionFlag(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		root := newRootCmd(filtertest.Registry())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("sluice %v: %v", args, err)
		}
		return out.String()
	}
	want := run("version")
	if got := run("--version"); got != want {
		t.Errorf("sluice --version printed %q, want %q as sluice version prints", got, want)
	}
}
