package classifier_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// A file of another kind given to an import by mistake (a compressed
// dump, bogofilter's database itself rather than its dump, a sluice
// store rather than its export, the dump without --bogoutil or an export
// with it) is refused with an error that names what the file is and the
// way out. Read as text, such files failed at their first line with an
// error that quoted binary garbage ("token \"\x1f\x8b\b\b...\":
// strconv.ParseUint: ..."), a field count ("want TOKEN SPAM HAM DATE,
// got 5 fields") or the export's header, none of which says what went
// wrong.
func TestImportWrongKindOfInput(t *testing.T) {
	dump := ".ENCODING 2 0 20240101\n.MSG_COUNT 2 3 20240101\ncasino 2 0 20240101\nagenda 0 3 20240101\n"
	export := "sluice-classifier-export 2\ndialect sluice\ntotals 1 1\nt casino 1 0 20240101\nend 1 0\n"
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.String()
	}
	// The first page of a Berkeley DB btree, as bogofilter's wordlist.db
	// starts: the magic number at offset 12.
	bdb := "\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x62\x31\x05\x00\x09\x00\x00\x00" + strings.Repeat("\x00", 100)
	if _, err := exec.LookPath("bogoutil"); err == nil {
		// And a real one, where bogofilter is installed.
		path := filepath.Join(t.TempDir(), "wordlist.db")
		cmd := exec.Command("bogoutil", "-l", path)
		cmd.Stdin = strings.NewReader(dump)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bogoutil -l: %v: %s", err, out)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		bdb = string(raw)
	}
	storePath := filepath.Join(t.TempDir(), "bayes.db")
	openTestStore(t, storePath).Close()
	store, err := os.ReadFile(storePath)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		input    string
		bogoutil bool
		want     string // in the error; "" for an input that is checked as usual
	}{
		{"gzip dump", gz(dump), true, "gzip-compressed, not a bogoutil word list: decompress it first, or pipe it in (zcat FILE | sluice db import --bogoutil -)"},
		{"gzip export", gz(export), false, "gzip-compressed, not an export"},
		{"xz dump", "\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46", true, "xz-compressed"},
		{"bzip2 dump", "BZh91AY&SY\x8f\x12", true, "bzip2-compressed"},
		{"zstd export", "\x28\xb5\x2f\xfd\x04\x58", false, "zstd-compressed"},
		{"wordlist.db", bdb, true, "a Berkeley DB file (bogofilter's wordlist.db), not a bogoutil word list: dump it with \"bogoutil -d FILE\""},
		{"wordlist.db as export", bdb, false, "a Berkeley DB file"},
		{"sqlite wordlist", "SQLite format 3\x00\x10\x00", true, "an SQLite database"},
		{"sluice store", string(store), false, "a sluice token store, not an export: export it"},
		{"export with --bogoutil", export, true, "a sluice export, not a bogoutil word list: import it without --bogoutil"},
		{"dump without --bogoutil", dump, false, "a bogofilter word list (bogoutil -d), not an export: import it with --bogoutil"},
		{"dump without dates, without --bogoutil", "casino 2 0\n", false, "import it with --bogoutil"},
		// What each import reads is not taken for a mistake.
		{"dump", dump, true, ""},
		{"dump, CRLF", strings.ReplaceAll(dump, "\n", "\r\n"), true, ""},
		{"export", export, false, ""},
		{"bzip2 word", ".MSG_COUNT 1 1 20240101\nBZh9 1 0 20240101\n", true, ""},
	} {
		var in *classifier.ImportInput
		var err error
		if tc.bogoutil {
			in, err = classifier.CheckBogoutil(strings.NewReader(tc.input))
		} else {
			in, err = classifier.CheckImport(strings.NewReader(tc.input))
		}
		if in != nil {
			in.Close()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}
