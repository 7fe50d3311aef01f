package bayes_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/bayes"
)

// The queue id comes from the MTA and the version from the build; a value
// longer than the configuration check allowed for (64 characters) must not
// make a line of the added field longer than RFC 5322 2.1.1 allows: the
// MTA or a reader downstream may cut or refuse it.
func TestLongQueueIDAndVersionKeepLinesShort(t *testing.T) {
	st := trainedStore(t)
	long := strings.Repeat("Q", 2000)
	version := strings.Repeat("v", 300)
	name := "X-" + strings.Repeat("B", 880)
	tests := []struct {
		name string
		opts string
		m    func() *filters.Message
	}{
		{"classified", "spam: {action: tag}\nheader: {name: " + name + "}", spamMessage},
		{"skipped for size", "max_size: 200\nheader: {name: " + name + "}", hamMessage},
		{"skipped, authenticated", "header: {name: " + name + "}", func() *filters.Message {
			m := hamMessage()
			m.Macros = map[string]string{"auth_authen": "bob"}
			return m
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := filters.Env{Name: "bayes", Logger: slog.New(slog.DiscardHandler), StateDir: t.TempDir()}
			f, err := bayes.New(env, fixtureOptions(t, tc.opts), version, nopCloser{st})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m := tc.m()
			m.QueueID = long
			v, err := f.Check(context.Background(), filters.StageEOM, m)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range v.Edits {
				if e.Kind != filters.AddHeader || e.Name != name {
					continue
				}
				found = true
				for i, line := range strings.Split(e.Name+": "+e.Value, "\n") {
					if len(line) > filters.MaxLineLength {
						t.Errorf("line %d of the field is %d characters long, more than %d", i+1, len(line), filters.MaxLineLength)
					}
				}
				if !strings.Contains(e.Value, "queue_id=QQQQ") {
					t.Errorf("the value %.120q... lost the queue id", e.Value)
				}
			}
			if !found {
				t.Fatalf("no field %s added: %+v", name[:10], v.Edits)
			}
		})
	}
}
