package config_test

import (
	"errors"
	"os"
	"testing"

	"github.com/sluice-mail/sluice/cmd/sluice/internal/config"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// FuzzParse checks that any file gives a config or an error that names
// the file, never a panic: a typo in a config must not crash
// "sluice config check", the start or a reload.
func FuzzParse(f *testing.F) {
	sample, err := os.ReadFile("../../../../testdata/sluice.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(sample),
		"",
		"listen: [inet:127.0.0.1:7357]\nfilters:\n  - type: script\n    options: {header: X-A}\n",
		"log_level: debug\nbody: {memory_limit: 2MiB}\n",
		"---\n---\n",
		"a: &a [*a]\n",
		"filters:\n  - type: sleep\n    options: {delay: 1s}\n  - type: nope\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yml", data, filtertest.Registry())
		if c == nil && err == nil {
			t.Fatal("no config and no error")
		}
		var ce *config.Error
		if err != nil && errors.As(err, &ce) && ce.File != "fuzz.yml" {
			t.Errorf("error names %q: %v", ce.File, err)
		}
	})
}
