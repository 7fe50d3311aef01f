package classifier_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
	"github.com/sluice-mail/sluice/classifier/redistest"
)

// Export and import lose nothing, for both stores: tokens of every kind
// the format must quote or must not (NUL and other control bytes, CR and
// LF, invalid UTF-8, a leading double quote, Unicode spaces, a token as
// long as a bbolt key can be, tokens named like the format's records),
// counts and totals at their limit, last-seen days, digests with and
// without features. An export whose lines end in CRLF (a transfer in
// text mode) imports the same.
func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	toks := []string{"a", "\x00", "a\x00b", "\"q", "sp ace", "tab\there", "cr\r", "lf\n", "\xff\xfe", "\ufffd",
		"\u00a0nb", "\u2028ls", "\u0085nel", `x\y`, "end\x7f", "\u200bzw", "\ufeffbom", "t", "d", "end", "totals", "dialect",
		strings.Repeat("h", 32768)}
	var b classifier.Batch
	b.Totals = classifier.Totals{Spam: 4294967295, Ham: 7}
	for i, tok := range toks {
		b.Records = append(b.Records, classifier.Record{Token: tok, Counts: classifier.Counts{
			Spam: uint32(i), Ham: 4294967295 - uint32(i), LastSeen: classifier.Date(20240101 + i)}})
	}
	b.Digests = []classifier.DigestClass{
		{Digest: classifier.MessageDigest([]byte("x")), Class: classifier.Spam, Features: []byte{0, 1, 2}},
		{Digest: classifier.MessageDigest([]byte("y")), Class: classifier.Ham},
	}
	srv := redistest.Start(t)
	stores := map[string]func() classifier.Store{
		"bolt": func() classifier.Store {
			st, err := classifier.Open(filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"redis": func() classifier.Store {
			return openRedisStore(t, classifier.RedisOptions{Addrs: []string{srv.Addr}})
		},
	}
	export := func(st classifier.Store) []byte {
		t.Helper()
		var out bytes.Buffer
		if err := classifier.Export(ctx, st, &out); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			src := open()
			defer src.Close()
			if err := src.Add(ctx, b); err != nil {
				t.Fatal(err)
			}
			want := export(src)
			ws, err := src.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{string(want), strings.ReplaceAll(string(want), "\n", "\r\n")} {
				dst := open()
				if _, err := classifier.Import(ctx, dst, strings.NewReader(text)); err != nil {
					t.Fatal(err)
				}
				if got := export(dst); !bytes.Equal(got, want) {
					t.Errorf("export after import differs (CRLF %v)", strings.Contains(text, "\r\n"))
				}
				gs, err := dst.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ws.Bytes, gs.Bytes = 0, 0
				if gs != ws || gs.Tokens != len(toks) {
					t.Errorf("stats after import %+v, want %+v", gs, ws)
				}
				dst.Close()
			}
		})
	}
}
