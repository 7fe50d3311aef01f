package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/filtertest"
)

// The test binary doubles as a second and third writer process for the
// cross-process locking test when this variable is set (see TestMain).
const appenderEnv = "SLUICE_ARCHIVE_TEST_APPEND"

func TestMain(m *testing.M) {
	if spec := os.Getenv(appenderEnv); spec != "" {
		os.Exit(childAppend(spec))
	}
	if path := os.Getenv(stallEnv); path != "" {
		os.Exit(childStall(path))
	}
	os.Exit(m.Run())
}

// childAppend appends N records tagged TAG to PATH: spec is "PATH|TAG|N",
// or "PATH|TAG|N|maildir" to deliver them into the maildir PATH as pid 1
// with a clock read to the second (see
// TestMaildirConcurrentProcessesSamePid).
func childAppend(spec string) int {
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[2])
	cfg := Config{Targets: map[string]string{"default": parts[0]}}
	maildir := len(parts) > 3 && parts[3] == FormatMaildir
	if maildir {
		cfg.Format = FormatMaildir
	}
	f, err := New(filters.Env{Name: "child"}, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if maildir {
		f.app.holder.pid = 1
		f.app.now = func() time.Time { return time.Now().Truncate(time.Second) }
	}
	for i := 0; i < n; i++ {
		m := testMessage(fmt.Sprintf("%s-%d", parts[1], i), childBody(parts[1], i, "\r\n"))
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// childBody is the body a child writer appends: every third one larger
// than the write buffer, so that a record takes several write calls and
// unlocked writers would interleave.
func childBody(tag string, i int, eol string) string {
	return strings.Repeat(fmt.Sprintf("body of %s %d%s", tag, i, eol), 1+(i%3/2)*8000) + "From the child" + eol
}

func testMessage(qid, body string, headers ...filters.Header) *filters.Message {
	b := filters.NewBody(1<<20, "")
	b.Write([]byte(body))
	if headers == nil {
		headers = []filters.Header{{Name: "Subject", Value: "message " + qid}, {Name: "Message-ID", Value: "<" + qid + "@example.org>"}}
	}
	return &filters.Message{
		QueueID: qid,
		From:    filters.Address{Addr: "alice@example.org"},
		Rcpts:   []filters.Address{{Addr: "bob@lab.example"}, {Addr: "carol@lab.example"}},
		Headers: headers,
		Body:    b,
	}
}

func newFilter(t *testing.T, cfg Config, obs Observer) *Filter {
	t.Helper()
	f, err := New(filters.Env{Name: "archive", StateDir: t.TempDir(), Observer: obs}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var recs []Record
	if err := ReadMbox(fh, func(r Record) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return recs
}

// countingObserver counts what the filter reports.
type countingObserver struct {
	mu       sync.Mutex
	appended map[string]int
	bytes    map[string]int64
	failed   map[string]int
}

func newObserver() *countingObserver {
	return &countingObserver{appended: map[string]int{}, bytes: map[string]int64{}, failed: map[string]int{}}
}

func (o *countingObserver) ArchiveAppended(filter, target string, n int64, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.appended[target]++
	o.bytes[target] += n
}

func (o *countingObserver) ArchiveFailed(filter, target string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed[target]++
}

func TestRecordFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "b", "spam.mbox")
	obs := newObserver()
	f := newFilter(t, Config{Targets: map[string]string{"spam": path}}, obs)
	f.now = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local) }
	m := testMessage("4QID", "Hello\r\nFrom the start\r\n>From quoted\r\nend", filters.Header{Name: "Subject", Value: "folded\r\n\tsubject"},
		filters.Header{Name: "X-Sluice-Bayes", Value: "Spam, spamicity=0.999"})
	m.Decided = filters.Decided{Action: filters.Continue}
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "From alice@example.org Wed Mar  4 05:06:07 2026\n" +
		"X-Sluice-Queue-ID: 4QID\n" +
		"X-Sluice-Envelope-To: bob@lab.example\n" +
		"X-Sluice-Envelope-To: carol@lab.example\n" +
		"X-Sluice-Verdict: spam; action=accept\n" +
		"Subject: folded\n\tsubject\n" +
		"X-Sluice-Bayes: Spam, spamicity=0.999\n" +
		"\n" +
		"Hello\n>From the start\n>>From quoted\nend\n" +
		"\n"
	if string(got) != want {
		t.Errorf("record:\n%s\nwant:\n%s", got, want)
	}
	for _, d := range []string{filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != dirMode&^umask() {
			t.Errorf("%s: %v %v, want mode %o", d, fi.Mode(), err, dirMode&^umask())
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != fileMode&^umask() {
		t.Errorf("mbox mode %v", fi.Mode())
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock left behind: %v", err)
	}
	if obs.appended["spam"] != 1 || obs.bytes["spam"] != int64(len(want)) {
		t.Errorf("observer: %v %v", obs.appended, obs.bytes)
	}
}

func umask() os.FileMode {
	dir, _ := os.MkdirTemp("", "umask")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "d")
	os.Mkdir(p, 0o777)
	fi, _ := os.Stat(p)
	return 0o777 &^ fi.Mode().Perm()
}

func TestVerdictSelection(t *testing.T) {
	all := map[string]string{}
	for _, v := range Verdicts {
		all[v] = "/x/" + v
	}
	classOnly := map[string]string{"spam": "/x/spam", "ham": "/x/ham", "default": "/x/default"}
	tests := []struct {
		targets map[string]string
		action  filters.Action
		header  string
		want    string
	}{
		{all, filters.Continue, "Spam, spamicity=1", "spam"},
		{all, filters.Accept, "Ham, spamicity=0", "ham"},
		{all, filters.Continue, "Unsure, spamicity=0.5", "unsure"},
		{all, filters.Continue, "Skipped, size=1", "default"},
		{all, filters.Continue, "", "default"},
		{all, filters.Reject, "", "reject"},
		{all, filters.Tempfail, "", "tempfail"},
		{all, filters.Discard, "", "discard"},
		{all, filters.Quarantine, "Spam, spamicity=1", "quarantine"},
		// Without a target for the action, the class decides.
		{classOnly, filters.Quarantine, "Spam, spamicity=1", "spam"},
		{classOnly, filters.Reject, "", "default"},
		{classOnly, filters.Continue, "Unsure", "default"},
		{map[string]string{"spam": "/x/spam"}, filters.Continue, "Ham", ""},
	}
	for _, tc := range tests {
		f := newFilter(t, Config{Targets: tc.targets}, nil)
		m := &filters.Message{Decided: filters.Decided{Action: tc.action}}
		if tc.header != "" {
			m.Headers = []filters.Header{{Name: "x-sluice-bayes", Value: tc.header}}
		}
		if got := f.verdictOf(m); got != tc.want {
			t.Errorf("%v, action %s, header %q: %q, want %q", keys(tc.targets), tc.action, tc.header, got, tc.want)
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A rejected message is archived with who rejected it and why; a message
// no target takes is not archived at all.
func TestRejectedAndUnmatched(t *testing.T) {
	dir := t.TempDir()
	f := newFilter(t, Config{Targets: map[string]string{"reject": filepath.Join(dir, "rejected.mbox")}}, nil)
	m := testMessage("R1", "spam body\r\n")
	m.Decided = filters.Decided{Action: filters.Reject, Filter: "bayes", Reason: `bayes: spam, "quoted" \ and` + "\r\n" + `new line`}
	if v, err := f.Check(context.Background(), filters.StageEOM, m); err != nil || v.Action != filters.Continue || len(v.Edits) != 0 {
		t.Fatalf("Check: %+v %v", v, err)
	}
	recs := readRecords(t, filepath.Join(dir, "rejected.mbox"))
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	want := `X-Sluice-Verdict: reject; action=reject; filter=bayes; reason="bayes: spam, \"quoted\" \\ and__new line"` + "\n"
	if !bytes.Contains(recs[0].Message, []byte(want)) {
		t.Errorf("record lacks %q:\n%s", want, recs[0].Message)
	}
	ham := testMessage("H1", "ham\r\n")
	if _, err := f.Check(context.Background(), filters.StageEOM, ham); err != nil {
		t.Fatal(err)
	}
	if n := len(readRecords(t, filepath.Join(dir, "rejected.mbox"))); n != 1 {
		t.Errorf("a message no target takes was archived: %d records", n)
	}
}

func TestPerRecipientCopies(t *testing.T) {
	dir := t.TempDir()
	f := newFilter(t, Config{Targets: map[string]string{"default": filepath.Join(dir, "{rcpt_domain}", "{rcpt_local}-{verdict}.mbox")}}, nil)
	m := testMessage("Q2", "x\r\n")
	m.Rcpts = []filters.Address{{Addr: "bob@lab.example"}, {Addr: "../../evil@lab.example"}, {Addr: "Bob@LAB.example"}}
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	bob := readRecords(t, filepath.Join(dir, "lab.example", "bob-default.mbox"))
	if len(bob) != 1 || bytes.Count(bob[0].Message, []byte(FieldEnvelopeTo)) != 2 {
		t.Errorf("bob's copy: %d records", len(bob))
	}
	evil := readRecords(t, filepath.Join(dir, "lab.example", "_._.._evil-default.mbox"))
	if len(evil) != 1 {
		t.Errorf("traversal recipient: %d records", len(evil))
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 2 {
		t.Errorf("files written: %v", files)
	}
}

// A file name made of several long values stays within NAME_MAX (255
// bytes) with room for the dot-lock and its temporary file: the values
// are cut and the literal end of the name (".mbox") kept. Before, the
// copy failed with "file name too long" and on_failure applied to the
// message, so mail to a long address could be tempfailed again and again.
func TestLongValuesFitAFileName(t *testing.T) {
	dir := t.TempDir()
	f := newFilter(t, Config{Targets: map[string]string{"default": filepath.Join(dir, "{rcpt}-{rcpt_local}-{rcpt_domain}.mbox")}}, nil)
	local := strings.Repeat("l", 64)
	domain := strings.Repeat("d", 60) + "." + strings.Repeat("e", 60) + ".example"
	m := testMessage("Q9", "x\r\n")
	m.Rcpts = []filters.Address{{Addr: local + "@" + domain}, {Addr: "bob@lab.example"}}
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if len(e.Name()) > maxName || !strings.HasSuffix(e.Name(), ".mbox") {
			t.Errorf("file name of %d bytes: %s", len(e.Name()), e.Name())
		}
		if recs := readRecords(t, filepath.Join(dir, e.Name())); len(recs) != 1 {
			t.Errorf("%s: %d records", e.Name(), len(recs))
		}
	}
	if len(names) != 2 || !slices.Contains(names, "bob@lab.example-bob-lab.example.mbox") {
		t.Errorf("files %q", names)
	}
}

// A recipient chooses the name of its copy's mbox: it must not be able
// to name the dot-lock of another recipient's mbox. Otherwise mail to
// bob.lock@ (a catch-all takes any local part) creates an mbox where
// bob's archive takes its lock, and bob's copies fail until that file is
// 17 minutes old, when it is taken for a stale lock and replaced.
func TestRecipientCannotNameADotLock(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Targets: map[string]string{"default": filepath.Join(dir, "{rcpt_domain}", "{rcpt_local}")}, LockTimeout: 200 * time.Millisecond}
	f := newFilter(t, cfg, nil)
	ctx := context.Background()
	for i, rcpt := range []string{"bob.lock@lab.example", "bob@lab.example", "bob.lock@lab.example", "bob@lab.example"} {
		m := testMessage(fmt.Sprintf("L%d", i), "x\r\n")
		m.Rcpts = []filters.Address{{Addr: rcpt}}
		if _, err := f.Check(ctx, filters.StageEOM, m); err != nil {
			t.Fatalf("copy %d for %s: %v", i, rcpt, err)
		}
	}
	bob := readRecords(t, filepath.Join(dir, "lab.example", "bob"))
	if len(bob) != 2 || headerOf(bob[0].Message, FieldQueueID) != "L1" || headerOf(bob[1].Message, FieldQueueID) != "L3" {
		t.Errorf("bob's mbox holds %d records, want L1 and L3", len(bob))
	}
	entries, err := os.ReadDir(filepath.Join(dir, "lab.example"))
	if err != nil {
		t.Fatal(err)
	}
	var other []Record
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("a recipient's mbox is named like a dot-lock: %s", e.Name())
		}
		if e.Name() != "bob" {
			other = append(other, readRecords(t, filepath.Join(dir, "lab.example", e.Name()))...)
		}
	}
	if len(other) != 2 || headerOf(other[0].Message, FieldQueueID) != "L0" || headerOf(other[1].Message, FieldQueueID) != "L2" {
		t.Errorf("bob.lock's copies: %d records, want L0 and L2", len(other))
	}
}

func TestMaildir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "archive", "spam")
	f := newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"spam": dir}}, nil)
	m := testMessage("M1", "From here\r\nbody\r\n", filters.Header{Name: "X-Sluice-Bayes", Value: "Spam"})
	m.From.Addr = ""
	for i := 0; i < 3; i++ {
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
	}
	news, _ := os.ReadDir(filepath.Join(dir, "new"))
	tmps, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	if len(news) != 3 || len(tmps) != 0 {
		t.Fatalf("new/ %d files, tmp/ %d files", len(news), len(tmps))
	}
	// Made as the docs say, as the mbox and its directories are: 0750
	// and 0640, less what the umask takes (the packaged unit's 0007
	// takes nothing).
	for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != dirMode&^umask() {
			t.Errorf("%s: %v %v, want mode %o", d, fi.Mode(), err, dirMode&^umask())
		}
	}
	for _, e := range news {
		if fi, err := os.Stat(filepath.Join(dir, "new", e.Name())); err != nil || fi.Mode().Perm() != fileMode&^umask() {
			t.Errorf("new/%s: %v %v, want mode %o", e.Name(), fi.Mode(), err, fileMode&^umask())
		}
	}
	got, _ := os.ReadFile(filepath.Join(dir, "new", news[0].Name()))
	want := "Return-Path: <>\nX-Sluice-Queue-ID: M1\nX-Sluice-Envelope-To: bob@lab.example\nX-Sluice-Envelope-To: carol@lab.example\nX-Sluice-Verdict: spam; action=accept\nX-Sluice-Bayes: Spam\n\nFrom here\nbody\n"
	if string(got) != want {
		t.Errorf("maildir file:\n%q\nwant\n%q", got, want)
	}
}

// Appends from goroutines of this process and from two other processes
// to one mbox never interleave: every record is whole.
func TestConcurrentAppendsAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "all.mbox")
	const perWriter = 60
	var cmds []*exec.Cmd
	for _, tag := range []string{"p1", "p2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), appenderEnv+"="+path+"|"+tag+"|"+strconv.Itoa(perWriter))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				tag := fmt.Sprintf("g%d-%d", g, i)
				body := strings.Repeat("line of "+tag+"\r\n", 1+(i%4/3)*9000) + "From inside " + tag + "\r\n"
				if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(tag, body)); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child writer: %v", err)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(recs) != 6*perWriter {
		t.Fatalf("%d records, want %d", len(recs), 6*perWriter)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		qid := headerOf(r.Message, FieldQueueID)
		if seen[qid] {
			t.Errorf("record %s twice", qid)
		}
		seen[qid] = true
		_, body, _ := bytes.Cut(r.Message, []byte("\n\n"))
		var want string
		if strings.HasPrefix(qid, "p") {
			tag, n, _ := strings.Cut(qid, "-")
			i, _ := strconv.Atoi(n)
			want = childBody(tag, i, "\n")
		} else {
			i, _ := strconv.Atoi(qid[strings.IndexByte(qid, '-')+1:])
			want = strings.Repeat("line of "+qid+"\n", 1+(i%4/3)*9000) + "From inside " + qid + "\n"
		}
		if string(body) != want {
			t.Errorf("record %s: body %q, want %q", qid, body, want)
		}
	}
	checkWithPython(t, path, len(recs))
}

func headerOf(msg []byte, name string) string {
	for _, line := range strings.Split(string(msg), "\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// needTool returns the path of program, installing its Debian package
// pkg as the other test dependencies are (as root) when it is missing.
// Without it the test is skipped, or fails under CI.
func needTool(t *testing.T, program, pkg, why string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	out, ierr := exec.CommandContext(ctx, "bash", "../../testdata/install-deps.sh", pkg).CombinedOutput()
	cancel()
	if path, err = exec.LookPath(program); err != nil {
		msg := fmt.Sprintf("%s is needed %s (install-deps.sh %s: %v %s)", program, why, pkg, ierr, bytes.TrimSpace(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// checkWithPython parses the mbox with Python's mailbox module, an
// independent reader (testdata/archive/mbox2json.py), and checks the
// count and that each message it returns is the one ReadMbox returns.
func checkWithPython(t *testing.T, path string, want int) {
	t.Helper()
	py := needTool(t, "python3", "python3", "to check the mbox with an independent parser")
	cmd := exec.Command(py, "../../testdata/archive/mbox2json.py", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var msgs []struct{ From, Message string }
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(msgs) != want || len(recs) != want {
		t.Fatalf("python reads %d messages, ReadMbox %d, want %d", len(msgs), len(recs), want)
	}
	for i, m := range msgs {
		if m.Message != string(recs[i].Message) || "From "+m.From != recs[i].From() {
			t.Errorf("message %d: python %q %q, ReadMbox %q %q", i, m.From, m.Message, recs[i].From(), recs[i].Message)
		}
	}
}

// failingBody makes the body reader fail half way, after part of the
// record was written.
func TestFailedAppendLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	app := NewAppender(time.Second, nil)
	ctx := context.Background()
	write := func(s string) func(w *bufio.Writer) error {
		return func(w *bufio.Writer) error { _, err := w.WriteString(s); return err }
	}
	if _, err := app.AppendMbox(ctx, path, write("From a Thu Jan  1 00:00:00 1970\nfirst\n")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	_, err := app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
		w.WriteString("From b Thu Jan  1 00:00:00 1970\n")
		w.Write(bytes.Repeat([]byte("partial\n"), 20000)) // beyond the buffer: on disk
		w.Flush()
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("append error %v", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Errorf("the failed record left %d bytes behind", len(after)-len(before))
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock left behind: %v", err)
	}

	// A cancelled context stops the copy of a body, and the record goes.
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Check(cctx, filters.StageEOM, testMessage("C", strings.Repeat("x\r\n", 100000))); err == nil {
		t.Error("append with a cancelled context succeeded")
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("a cancelled append left bytes behind")
	}
}

// A panic while the record is written (a bug in the writer; the pipeline
// recovers it and fails the filter) takes the partial record back off,
// as an error does, before the locks go: else the next record would
// run on from the middle of this one.
func TestPanickedAppendLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	app := NewAppender(time.Second, nil)
	ctx := context.Background()
	if _, err := app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
		_, err := w.WriteString("From a Thu Jan  1 00:00:00 1970\nfirst\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	func() {
		defer func() {
			if r := recover(); r != "writer bug" {
				t.Errorf("recovered %v, want the writer's panic passed on", r)
			}
		}()
		app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
			w.WriteString("From b Thu Jan  1 00:00:00 1970\n")
			w.Write(bytes.Repeat([]byte("partial\n"), 20000))
			w.Flush()
			panic("writer bug")
		})
	}()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("the panicked record left %d bytes behind", len(after)-len(before))
	}
	if _, err := os.Stat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock left behind: %v", err)
	}
	if _, err := app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
		_, err := w.WriteString("From c Thu Jan  1 00:00:00 1970\nthird\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if recs := readRecords(t, path); len(recs) != 2 {
		t.Errorf("%d records after the panic and another append, want 2", len(recs))
	}
}

// A panic while a maildir copy is written (a bug in the writer) leaves
// neither the partial file in tmp/ (where only the 36-hour clean-up
// would find it) nor its descriptor open: one leaked per panic, in a
// daemon that recovers the panic and goes on.
func TestPanickedMaildirCopyLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spam")
	app := NewAppender(time.Second, nil)
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(ents)
	}
	before := fds()
	for range 3 {
		func() {
			defer func() {
				if r := recover(); r != "writer bug" {
					t.Errorf("recovered %v, want the writer's panic passed on", r)
				}
			}()
			app.appendMaildir(context.Background(), dir, func(w *bufio.Writer) error {
				w.Write(bytes.Repeat([]byte("partial\n"), 20000))
				w.Flush()
				panic("writer bug")
			})
		}()
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("tmp/ after the panics: %d files, %v; want none", len(ents), err)
	}
	if after := fds(); after > before {
		t.Errorf("%d file descriptors before the panics, %d after", before, after)
	}
}

// A failed append cuts back only its own bytes. Another process may have
// appended during it without the locks (a program that takes only the
// dot-lock, whose lock was removed by someone who may write the
// directory): cutting back to the length measured before would take that
// process's message away.
func TestFailedAppendSparesAnotherWritersRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	first := "From a Thu Jan  1 00:00:00 1970\nfirst\n\n"
	if err := os.WriteFile(path, []byte(first), 0o640); err != nil {
		t.Fatal(err)
	}
	other := "From b Thu Jan  1 00:00:00 1970\nappended meanwhile\n\n"
	app := NewAppender(time.Second, nil)
	_, err := app.AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
		o, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		o.WriteString(other)
		o.Close()
		return errors.New("disk on fire")
	})
	if err == nil {
		t.Fatal("the failed append succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != first+other {
		t.Errorf("after the failed append the mbox holds\n%q\nwant\n%q", b, first+other)
	}
}

// An mbox that does not end in an empty line (written by something else)
// gets the missing line ends before the next record.
func TestSeparatorRepair(t *testing.T) {
	for _, tail := range []string{"no newline", "one newline\n", "two\n\n"} {
		path := filepath.Join(t.TempDir(), "x.mbox")
		os.WriteFile(path, []byte("From x Thu Jan  1 00:00:00 1970\n"+tail), 0o600)
		f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("S", "b\r\n")); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, path)
		if len(recs) != 2 || headerOf(recs[1].Message, FieldQueueID) != "S" {
			t.Errorf("after %q: %d records", tail, len(recs))
		}
	}
}

// An mbox emptied the way shells make it easy, "echo > spam.mbox", holds
// one empty line; the archive's next record follows it (after the line
// end it adds so that a "From " line follows an empty line). The
// archive's reader, which "sluice archive" and the move use, must still
// read the records: the empty lines before the first one are no message.
func TestMboxStartingWithEmptyLines(t *testing.T) {
	for _, start := range []string{"\n", "\n\n\n"} {
		path := filepath.Join(t.TempDir(), "x.mbox")
		os.WriteFile(path, []byte(start), 0o600)
		f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
		for _, qid := range []string{"E1", "E2"} {
			if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(qid, "b\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		recs := readRecords(t, path)
		if len(recs) != 2 || headerOf(recs[0].Message, FieldQueueID) != "E1" || headerOf(recs[1].Message, FieldQueueID) != "E2" {
			t.Errorf("after %q: %d records", start, len(recs))
		}
		checkWithPython(t, path, 2)
	}
}

// A sluice process that died while appending leaves its dot-lock, which
// records the length before the append: the next writer (or New, for a
// fixed path) cuts the half-written record off.
func TestDeadWriterRolledBack(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, via := range []string{"append", "new"} {
		path := filepath.Join(t.TempDir(), "x.mbox")
		good := "From a Thu Jan  1 00:00:00 1970\nSubject: whole\n\nwhole\n\n"
		half := "From b Thu Jan  1 00:00:00 1970\nSubject: half\n\nhal"
		os.WriteFile(path, []byte(good+half), 0o600)
		h := thisProcess()
		h.pid = dead.Process.Pid
		os.WriteFile(path+".lock", []byte(h.dotLockContent(int64(len(good)), recordHead([]byte(half)))), 0o600)
		// The lock it was about to take next time, never linked.
		os.WriteFile(filepath.Join(filepath.Dir(path), ".x.mbox.lock-123"), []byte(h.dotLockContent(0, noHead)), 0o600)
		f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
		if via == "new" {
			got, _ := os.ReadFile(path)
			if string(got) != good {
				t.Errorf("New did not repair: %q", got)
			}
		}
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage("N", "new\r\n")); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, path)
		if len(recs) != 2 || string(recs[0].Raw) != good[:len(good)-1] || headerOf(recs[1].Message, FieldQueueID) != "N" {
			t.Errorf("%s: records %q", via, recs)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("%s: files left: %v", via, entries)
		}
	}
}

// A dot-lock held by another program is waited for, up to lock_timeout;
// one held by this very process id but from an earlier start (a restarted
// daemon with the same pid) is stale.
func TestForeignDotLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	os.WriteFile(path+".lock", nil, 0o600) // as procmail or mutt make it
	f := newFilter(t, Config{Targets: map[string]string{"default": path}, LockTimeout: 300 * time.Millisecond}, nil)
	start := time.Now()
	_, err := f.Check(context.Background(), filters.StageEOM, testMessage("L", "x\r\n"))
	if err == nil || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("append under a foreign lock: %v after %v", err, time.Since(start))
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Error("wrote under a foreign lock")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.Remove(path + ".lock")
	}()
	f2 := newFilter(t, Config{Targets: map[string]string{"default": path}, LockTimeout: 5 * time.Second}, nil)
	if _, err := f2.Check(context.Background(), filters.StageEOM, testMessage("L2", "x\r\n")); err != nil {
		t.Fatalf("after the lock went away: %v", err)
	}

	h := thisProcess()
	h.start++ // same pid, another start: a previous life of this daemon
	// It wrote the record of L2, after length 0.
	l2, _ := os.ReadFile(path)
	os.WriteFile(path+".lock", []byte(h.dotLockContent(0, recordHead(l2))), 0o600)
	if _, err := f2.Check(context.Background(), filters.StageEOM, testMessage("L3", "x\r\n")); err != nil {
		t.Fatalf("stale lock of an earlier process with our pid: %v", err)
	}
	// It recorded length 0: the record of L2 was not acknowledged by it
	// and is rolled back with it.
	if recs := readRecords(t, path); len(recs) != 1 || headerOf(recs[0].Message, FieldQueueID) != "L3" {
		t.Errorf("records after the stale lock: %d", len(recs))
	}
}

// Rotation needs no signal (docs/archive.md): once the mbox is renamed,
// the next copy goes to a new file at the path, and the rotated file
// keeps exactly what it had.
func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	ctx := context.Background()
	if _, err := f.Check(ctx, filters.StageEOM, testMessage("A", "a\r\n")); err != nil {
		t.Fatal(err)
	}
	rotated, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Check(ctx, filters.StageEOM, testMessage("B", "b\r\n")); err != nil {
		t.Fatalf("append after rotation: %v", err)
	}
	if old, _ := os.ReadFile(path + ".1"); !bytes.Equal(old, rotated) {
		t.Errorf("the rotated mbox changed:\n%q\nwant\n%q", old, rotated)
	}
	recs := readRecords(t, path)
	if len(recs) != 1 || headerOf(recs[0].Message, FieldQueueID) != "B" {
		t.Errorf("the new mbox holds %d records, want B alone", len(recs))
	}
}

func TestRemoveRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	for _, q := range []string{"A", "B", "C", "B"} {
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(q, "From "+q+"\r\n\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	before := readRecords(t, path)
	n, err := f.app.RemoveRecords(context.Background(), path, func(r RecordAt) bool { return headerOf(r.Head.Message, FieldQueueID) == "B" })
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v", n, err)
	}
	after := readRecords(t, path)
	if len(after) != 2 || !bytes.Equal(after[0].Raw, before[0].Raw) || !bytes.Equal(after[1].Raw, before[2].Raw) {
		t.Errorf("after removal: %q", after)
	}
	if n, err := f.app.RemoveRecords(context.Background(), path, func(RecordAt) bool { return false }); n != 0 || err != nil {
		t.Errorf("removing nothing: %d %v", n, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
	checkWithPython(t, path, 2)
}

// A removal killed while it wrote the new mbox leaves its temporary file,
// named after its pid. A later removal with the same pid (every "docker
// run ... sluice archive move" is pid 1) must replace it, not fail on it
// for good.
func TestRemoveRecordsAfterKilledRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	for _, q := range []string{"A", "B"} {
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(q, "b\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	leftover := filepath.Join(filepath.Dir(path), ".x.mbox.sluice-tmp-"+strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(leftover, []byte("From half a copy"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := f.app.RemoveRecords(context.Background(), path, func(r RecordAt) bool { return headerOf(r.Head.Message, FieldQueueID) == "B" })
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if recs := readRecords(t, path); len(recs) != 1 || headerOf(recs[0].Message, FieldQueueID) != "A" {
		t.Errorf("the mbox holds %d records, want A alone", len(recs))
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
}

// An mbox path may be a symbolic link, e.g. to an archive kept on
// another disk. Removing records must rewrite the file it points to: a
// new file put in place of the link would leave the removed records in
// the real mbox, where "sluice archive move" had just copied them from,
// and the daemon would go on appending to a file nobody looks at.
func TestRemoveRecordsThroughSymlink(t *testing.T) {
	real := filepath.Join(t.TempDir(), "x.mbox")
	link := filepath.Join(t.TempDir(), "x.mbox")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": link}}, nil)
	for _, q := range []string{"A", "B"} {
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(q, "b\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.app.RemoveRecords(context.Background(), link, func(r RecordAt) bool { return headerOf(r.Head.Message, FieldQueueID) == "B" })
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	if recs := readRecords(t, real); len(recs) != 1 || headerOf(recs[0].Message, FieldQueueID) != "A" {
		t.Errorf("the mbox the link points to holds %d records, want A alone", len(recs))
	}
	if entries, _ := os.ReadDir(filepath.Dir(link)); len(entries) != 1 {
		t.Errorf("files left next to the link: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Dir(real)); len(entries) != 1 {
		t.Errorf("files left next to the mbox: %v", entries)
	}
}

// Spam a filter rejects keeps the sender's forged "X-Sluice-Bayes: Ham":
// the Bayes filter's edits (delete the forged field, add its own) are not
// applied to mail that is not delivered. Without a reject target the
// message must not be archived as ham by that forged field, where ham is
// retrained from.
func TestRefusedMailIgnoresVerdictField(t *testing.T) {
	dir := t.TempDir()
	arch := newFilter(t, Config{Targets: map[string]string{
		"spam": filepath.Join(dir, "spam.mbox"), "ham": filepath.Join(dir, "ham.mbox")}}, nil)
	bayes := &filtertest.Fixed{FilterName: "bayes", At: filters.StagesOf(filters.StageEOM), NeedBody: true, NeedHeaders: true,
		Verdict: filters.Verdict{Action: filters.Reject, Reason: "bayes: spam", Edits: []filters.HeaderEdit{
			{Kind: filters.DeleteHeader, Name: "X-Sluice-Bayes", Index: 1},
			{Kind: filters.AddHeader, Name: "X-Sluice-Bayes", Value: "Spam, spamicity=0.99"}}}}
	p := filters.NewPipeline([]filters.Step{{Filter: bayes}, {Filter: arch}}, nil)
	m := testMessage("F1", "buy now\r\n", filters.Header{Name: "Subject", Value: "cheap"},
		filters.Header{Name: "X-Sluice-Bayes", Value: "Ham, spamicity=0.0001"})
	res := p.Run(context.Background(), filters.StageEOM, m)
	if res.Verdict.Action != filters.Reject {
		t.Fatalf("outcome %s", res.Verdict.Action)
	}
	for _, d := range res.Decisions {
		if d.Err != nil {
			t.Fatal(d.Err)
		}
	}
	for _, name := range []string{"ham.mbox", "spam.mbox"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("rejected message archived in %s by the sender's verdict field", name)
		}
	}
	// Delivered mail is still sorted by the field the filters left.
	m = testMessage("F2", "hello\r\n", filters.Header{Name: "Subject", Value: "hi"},
		filters.Header{Name: "X-Sluice-Bayes", Value: "Ham, spamicity=0.0001"})
	if _, err := arch.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	if recs := readRecords(t, filepath.Join(dir, "ham.mbox")); len(recs) != 1 {
		t.Errorf("delivered ham: %d records in ham.mbox", len(recs))
	}
}

// An append whose context ends after the record was written but before
// it was committed (the filter's time ran out during the flush or the
// fsync of a large message) is cut back: the pipeline went on without
// this copy, and with on_failure tempfail the message comes back and is
// archived again.
func TestMboxAppendCutBackAfterDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	app := NewAppender(time.Second, nil)
	if _, err := app.AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
		_, err := w.WriteString("From a Thu Jan  1 00:00:00 1970\nSubject: first\n\nbody\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := app.AppendMbox(ctx, path, func(w *bufio.Writer) error {
		w.WriteString("From b Thu Jan  1 00:00:00 1970\nSubject: late\n\nbody\n")
		cancel()
		return nil
	})
	if err == nil {
		t.Error("append whose context ended before the commit succeeded")
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, before) {
		t.Errorf("mbox after the late append:\n%q\nwant\n%q", got, before)
	}
}

// Breaking a dead writer's lock on DIR/spam removes that writer's lock
// files in the making, but not those of the mbox DIR/spam.lock-x (a
// recipient's local part can name one), whose names share the prefix.
func TestStaleLockCleanupSparesOtherMboxes(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := thisProcess()
	h.pid = dead.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "spam")+".lock", []byte(h.dotLockContent(0, noHead)), 0o600); err != nil {
		t.Fatal(err)
	}
	deadTemp := filepath.Join(dir, ".spam.lock-4242")     // the dead writer's
	other := filepath.Join(dir, ".spam.lock-x.lock-4242") // DIR/spam.lock-x's, not yet linked
	for _, p := range []string{deadTemp, other} {
		if err := os.WriteFile(p, []byte(thisProcess().dotLockContent(0, noHead)), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	f := newFilter(t, Config{Targets: map[string]string{"default": filepath.Join(dir, "{rcpt_local}")}}, nil)
	m := testMessage("S", "x\r\n")
	m.Rcpts = m.Rcpts[:1]
	m.Rcpts[0].Addr = "spam@example.org"
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	if recs := readRecords(t, filepath.Join(dir, "spam")); len(recs) != 1 {
		t.Errorf("%d records in spam", len(recs))
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the lock in the making of another mbox was removed: %v", err)
	}
	if _, err := os.Stat(deadTemp); err == nil {
		t.Error("the dead writer's lock in the making was left")
	}
}

// Maildir file names are unique per Appender only: two appenders of one
// process (the archive filters of the pipelines before and after a
// reload) can make the same name in the same microsecond. The second
// message must get another name, not replace the first in new/, and a
// name taken in tmp/ must not fail the copy.
func TestMaildirNameCollision(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	fixed := time.Unix(1700000000, 123456000)
	newApp := func() *Appender {
		a := NewAppender(time.Second, nil)
		a.now = func() time.Time { return fixed }
		return a
	}
	deliver := func(a *Appender, body string) {
		t.Helper()
		if _, err := a.AppendMaildir(context.Background(), dir, func(w *bufio.Writer) error {
			_, err := w.WriteString("Subject: " + body + "\n\n" + body + "\n")
			return err
		}); err != nil {
			t.Fatalf("append %s: %v", body, err)
		}
	}
	deliver(newApp(), "one")
	deliver(newApp(), "two")
	// Another writer's message in the making under the name the next
	// appender tries first.
	taken := filepath.Join(dir, "tmp", newApp().maildirName(false))
	if err := os.WriteFile(taken, []byte("Subject: other\n\nin the making\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	deliver(newApp(), "three")

	entries, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, string(b))
	}
	sort.Strings(bodies)
	want := []string{"Subject: one\n\none\n", "Subject: three\n\nthree\n", "Subject: two\n\ntwo\n"}
	if !slices.Equal(bodies, want) {
		t.Errorf("new/ holds %q, want %q", bodies, want)
	}
	if b, err := os.ReadFile(taken); err != nil || !strings.Contains(string(b), "in the making") {
		t.Errorf("the other writer's file in tmp/: %q, %v", b, err)
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 1 {
		t.Errorf("tmp/ holds %d files, want only the other writer's", len(tmps))
	}
}

// Two sluice processes in containers that share a maildir volume, each
// pid 1 under the same host name (host networking), and goroutines of a
// third, all deliver into one maildir at once: the pid tells none of
// their file names apart, and with a clock read to the second (the
// worst case; a real one gives microseconds) most names are another
// writer's too. Every message is in new/ once and whole, none replaced
// by another of the same name and no copy failed for want of a free
// name, tmp/ is left empty, and Python's mailbox.Maildir finds them all.
func TestMaildirConcurrentProcessesSamePid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	const perWriter = 60
	var cmds []*exec.Cmd
	for _, tag := range []string{"p1", "p2"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), appenderEnv+"="+dir+"|"+tag+"|"+strconv.Itoa(perWriter)+"|"+FormatMaildir)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	f := newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"default": dir}}, nil)
	f.app.holder.pid = 1
	f.app.now = func() time.Time { return time.Now().Truncate(time.Second) }
	var wg sync.WaitGroup
	errs := make(chan error, 4*perWriter)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				tag := fmt.Sprintf("g%d-%d", g, i)
				if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(tag, childBody(tag, i, "\r\n"))); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child writer: %v", err)
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	if tmps, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(tmps) != 0 {
		t.Errorf("tmp/ holds %d files (%v), want none", len(tmps), err)
	}
	news, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	const want = 6 * perWriter
	if len(news) != want {
		t.Errorf("new/ holds %d files, want %d", len(news), want)
	}
	seen := map[string]bool{}
	for _, e := range news {
		if !strings.Contains(e.Name(), "P1Q") {
			t.Errorf("%s: not named by pid 1", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, msg, _ := strings.Cut(string(b), "\n") // Return-Path
		qid := headerOf([]byte(msg), FieldQueueID)
		if seen[qid] {
			t.Errorf("message %s twice", qid)
		}
		seen[qid] = true
		tag, n, _ := strings.Cut(qid, "-")
		if strings.HasPrefix(tag, "g") {
			tag, n = qid, qid[strings.IndexByte(qid, '-')+1:]
		}
		i, _ := strconv.Atoi(n)
		if _, body, _ := strings.Cut(msg, "\n\n"); body != childBody(tag, i, "\n") {
			t.Errorf("message %s: body of %d bytes is not the one sent", qid, len(body))
		}
	}
	if len(seen) != want {
		t.Errorf("%d messages found, want %d", len(seen), want)
	}

	py := needTool(t, "python3", "python3", "to check the maildir with an independent reader")
	out, err := exec.Command(py, "-c", "import mailbox, sys; print(len(mailbox.Maildir(sys.argv[1], create=False)))", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(want) {
		t.Errorf("python's mailbox.Maildir finds %s messages, want %d", got, want)
	}
}

// A long read (a training run, or "sluice archive show" into a pager that
// stopped reading) must not hold the daemon's appends off: ReadLocked
// holds the locks only to find the length to read, and the read sees the
// mbox as it was then.
func TestReadLockedDoesNotHoldAppendsOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	ctx := context.Background()
	record := func(s string) func(w *bufio.Writer) error {
		return func(w *bufio.Writer) error {
			_, err := w.WriteString("From " + s + " Thu Jan  1 00:00:00 1970\n" + s + "\n")
			return err
		}
	}
	daemon := NewAppender(200*time.Millisecond, nil)
	if _, err := daemon.AppendMbox(ctx, path, record("first")); err != nil {
		t.Fatal(err)
	}
	reader := NewAppender(time.Second, nil)
	var read []string
	err := reader.ReadLocked(ctx, path, nil, func(r io.Reader) error {
		// The daemon appends while the reader is still reading.
		if _, err := daemon.AppendMbox(ctx, path, record("second")); err != nil {
			return fmt.Errorf("append during the read: %w", err)
		}
		return ReadMbox(r, func(rec Record) error {
			read = append(read, string(rec.Message))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"first\n"}; !slices.Equal(read, want) {
		t.Errorf("read %q, want %q", read, want)
	}
	var all []string
	if err := reader.ReadLocked(ctx, path, nil, func(r io.Reader) error {
		return ReadMbox(r, func(rec Record) error {
			all = append(all, string(rec.Message))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first\n", "second\n"}; !slices.Equal(all, want) {
		t.Errorf("after the read the mbox holds %q, want %q", all, want)
	}
}

// Readers share the kernel locks, so two of them ("sluice train" and
// "sluice archive show" on one archive) can reach the same stale dot-lock
// at once. One must not take the other's lock in the making for a dead
// writer's and remove it, nor replace the lock the other just made:
// either made the other's read fail ("rename ...: no such file or
// directory") or left it without a dot-lock.
func TestReadersAtAStaleDotLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.mbox")
	if err := os.WriteFile(path, []byte("From a Thu Jan  1 00:00:00 1970\nhello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	lockPath := path + lockSuffix
	staleLock := func() {
		t.Helper()
		if err := os.WriteFile(lockPath, []byte("12345\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * staleLockAge)
		if err := os.Chtimes(lockPath, old, old); err != nil {
			t.Fatal(err)
		}
	}
	read := func(a *Appender) error {
		return a.ReadLocked(context.Background(), path, nil, func(r io.Reader) error {
			b, err := io.ReadAll(r)
			if err == nil && !strings.Contains(string(b), "hello") {
				err = fmt.Errorf("read %q", b)
			}
			return err
		})
	}

	// Another reader, under its shared kernel locks, with its lock in the
	// making.
	staleLock()
	other, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryKernelReadLocks(other); err != nil {
		t.Fatal(err)
	}
	h := thisProcess()
	making, err := h.writeLockTemp(lockPath, 0, noHead)
	if err != nil {
		t.Fatal(err)
	}
	reader := NewAppender(time.Second, nil)
	if l, err := reader.tryReadLock(path, true); err == nil {
		l.unlock()
	}
	if _, err := os.Stat(making); err != nil {
		t.Errorf("the other reader's lock in the making: %v", err)
	}
	if b, err := os.ReadFile(lockPath); err != nil || string(b) != "12345\n" {
		t.Errorf("the stale lock was replaced under the other reader: %q, %v", b, err)
	}
	os.Remove(making)
	other.Close()
	// With the other reader gone, the stale lock is broken and the mbox
	// read.
	if err := read(reader); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lockPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dot-lock after the read: %v", err)
	}

	// Readers at once, each time at a stale lock.
	for round := 0; round < 50; round++ {
		staleLock()
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = read(NewAppender(5*time.Second, nil))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// RemoveRecords writes the new mbox under a name anyone can predict, in
// the mbox's directory. Whoever may write there (the daemon's user, when
// root runs "sluice archive move" on the daemon's archive) can put a
// symbolic link in its place while the copy is written. The mode and
// owner of the mbox must go to the file sluice wrote, never through such
// a link: as root, a chown by name would give the link's target
// (/etc/shadow, say) to the mbox's owner.
func TestRemoveRecordsKeepsModeOffSwappedTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.mbox")
	f := newFilter(t, Config{Targets: map[string]string{"default": path}}, nil)
	for _, q := range []string{"A", "B"} {
		if _, err := f.Check(context.Background(), filters.StageEOM, testMessage(q, "b\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, ".x.mbox.sluice-tmp-"+strconv.Itoa(os.Getpid()))
	swapped := false
	_, err := f.app.RemoveRecords(context.Background(), path, func(r RecordAt) bool {
		if !swapped {
			// The attacker's move, while the new mbox is being written.
			swapped = true
			if err := os.Remove(tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, tmp); err != nil {
				t.Fatal(err)
			}
		}
		return headerOf(r.Head.Message, FieldQueueID) == "B"
	})
	if !swapped {
		t.Fatal("the records were not read")
	}
	if err == nil {
		t.Error("RemoveRecords put what replaced its new mbox in place of the mbox")
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("the mbox is no longer a regular file: %v %v", fi, err)
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("the file the link points to has mode %v, want 0600: the mbox's mode went through the link", fi.Mode().Perm())
	}
}

// A header value with a line end that is not folding (Sendmail told to
// accept bare LF hands such values over, and headerfix with policy tag
// leaves them) stays one field in the copy, indented as Sendmail writes it
// into the mailbox: a line end at the end of a value must not end the
// copy's header block, and text after one must not become a field of its
// own, such as a forged verdict field above the real one.
func TestRecordKeepsStrayLineEndsInsideTheField(t *testing.T) {
	for _, format := range []string{FormatMbox, FormatMaildir} {
		t.Run(format, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "all")
			f := newFilter(t, Config{Format: format, Targets: map[string]string{"default": path}}, nil)
			m := testMessage("Q1", "body\r\n",
				filters.Header{Name: "X-Lf", Value: "x\n"},
				filters.Header{Name: "Subject", Value: "hi\nX-Sluice-Bayes: Ham\r\nFrom q"},
				filters.Header{Name: "X-Fold", Value: "a\n b\r\n\tc"},
				filters.Header{Name: "X-Cr", Value: "p\rq"},
				filters.Header{Name: "X-Sluice-Bayes", Value: "Spam, spamicity=0.999"})
			if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
				t.Fatal(err)
			}
			var msg []byte
			if format == FormatMbox {
				recs := readRecords(t, path)
				if len(recs) != 1 {
					t.Fatalf("%d records, want 1", len(recs))
				}
				msg = recs[0].Message
			} else {
				news, _ := os.ReadDir(filepath.Join(path, "new"))
				if len(news) != 1 {
					t.Fatalf("%d files in new/, want 1", len(news))
				}
				var err error
				if msg, err = os.ReadFile(filepath.Join(path, "new", news[0].Name())); err != nil {
					t.Fatal(err)
				}
			}
			want := "X-Lf: x\n \n" +
				"Subject: hi\n X-Sluice-Bayes: Ham\n From q\n" +
				"X-Fold: a\n b\n\tc\n" +
				"X-Cr: p\rq\n" +
				"X-Sluice-Bayes: Spam, spamicity=0.999\n" +
				"\n" +
				"body\n"
			if !strings.HasSuffix(string(msg), want) {
				t.Errorf("copy:\n%q\nwant it to end in\n%q", msg, want)
			}
			if got := HeaderValues(msg, "X-Sluice-Bayes"); len(got) != 1 || got[0] != "Spam, spamicity=0.999" {
				t.Errorf("X-Sluice-Bayes fields %q, want only the real one", got)
			}
		})
	}
}

// The queue id that "sluice archive" and "sluice train --queue-id" select
// by is the first X-Sluice-Queue-ID field of a record. Without a queue id
// from the MTA the archive wrote none, and a field of that name in the
// message, the sender's, came first: a sender could have its message
// picked (moved to ham, trained) for the queue id of another.
func TestSendersQueueIDFieldSelectsNothing(t *testing.T) {
	dir := t.TempDir()
	for _, format := range []string{FormatMbox, FormatMaildir} {
		path := filepath.Join(dir, "spam."+format)
		f := newFilter(t, Config{Format: format, Targets: map[string]string{"default": path}}, nil)
		m := testMessage("", "body\r\n", filters.Header{Name: "Subject", Value: "hi"},
			filters.Header{Name: FieldQueueID, Value: "4VICTIM"})
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
		var msg []byte
		if format == FormatMbox {
			recs := readRecords(t, path)
			if len(recs) != 1 {
				t.Fatalf("%s: %d records", format, len(recs))
			}
			if id := recs[0].QueueID(); id != "" {
				t.Errorf("%s: record's queue id %q, want none", format, id)
			}
			msg = recs[0].Message
		} else {
			files, _ := filepath.Glob(filepath.Join(path, "new", "*"))
			if len(files) != 1 {
				t.Fatalf("%s: %d files", format, len(files))
			}
			var err error
			if msg, err = os.ReadFile(files[0]); err != nil {
				t.Fatal(err)
			}
		}
		if v := HeaderValues(msg, FieldQueueID); len(v) == 0 || v[0] != "" {
			t.Errorf("%s: queue id fields %q, want an empty one first", format, v)
		}
	}
}

// "sluice archive move --to VERDICT" fills in {action} from the record's
// X-Sluice-Verdict field. Its reason comes after the action and may hold
// text from the message (a filter quoting what it matched): an
// "action=" inside the reason must not choose the file the record goes to.
func TestTargetPathReadsTheRecordsOwnAction(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Targets: map[string]string{"reject": filepath.Join(dir, "{action}.mbox")}}
	f := newFilter(t, cfg, nil)
	m := testMessage("4QID", "body\r\n")
	m.Decided = filters.Decided{Action: filters.Reject, Filter: "x", Reason: "x: matched \"a; action=accept\""}
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, filepath.Join(dir, "reject.mbox"))
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	got, err := cfg.TargetPath(dir, "reject", recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "reject.mbox"); got != want {
		t.Errorf("target path %s, want %s (verdict field %q)", got, want, HeaderValues(recs[0].Message, FieldVerdict))
	}
}

// "sluice config check" builds the filter with CheckOnly set: it must
// change nothing on disk (filters.Env), and it is often run as root. The
// repair New makes of an mbox a dead sluice process left half written
// (cut back, its dot-lock removed) is the daemon's to make.
func TestCheckOnlyRepairsNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.mbox")
	good := "From a Thu Jan  1 00:00:00 1970\nSubject: whole\n\nwhole\n\n"
	mbox := good + "From b Thu Jan  1 00:00:00 1970\nSubject: half\n\nhal"
	lock := deadSluiceLockContent(t, int64(len(good)))
	if err := os.WriteFile(path, []byte(mbox), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+lockSuffix, []byte(lock), 0o600); err != nil {
		t.Fatal(err)
	}
	env := filters.Env{Name: "archive", StateDir: dir, CheckOnly: true}
	if _, err := New(env, Config{Targets: map[string]string{"default": path}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != mbox {
		t.Errorf("config check changed the mbox to %q", got)
	}
	if got, _ := os.ReadFile(path + lockSuffix); string(got) != lock {
		t.Errorf("config check changed the dot-lock to %q", got)
	}
}

// A recipient the client named twice (the same RCPT TO again, or the
// domain in another case) is one mailbox, which the MTA delivers to once
// (observed with Sendmail 8.17, which still shows the milter every RCPT
// TO it accepted): the record lists it once, in its first spelling. A
// local part in another case may be another mailbox (RFC 5321 2.4) and
// stays.
func TestDuplicateRecipientsRecordedOnce(t *testing.T) {
	dir := t.TempDir()
	f := newFilter(t, Config{Targets: map[string]string{"default": filepath.Join(dir, "all.mbox"), "spam": filepath.Join(dir, "{rcpt}.mbox")}}, nil)
	rcpts := []filters.Address{{Addr: "bob@lab.example"}, {Addr: "carol@lab.example"}, {Addr: "bob@lab.example"}, {Addr: "bob@LAB.example"}, {Addr: "Bob@lab.example"}}
	m := testMessage("Q1", "x\r\n")
	m.Rcpts = rcpts
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, filepath.Join(dir, "all.mbox"))
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	if got, want := HeaderValues(recs[0].Message, FieldEnvelopeTo), []string{"bob@lab.example", "carol@lab.example", "Bob@lab.example"}; !slices.Equal(got, want) {
		t.Errorf("%s %q, want %q", FieldEnvelopeTo, got, want)
	}

	// Per recipient: one copy in bob's file, which holds both spellings
	// of the local part (file names fold case, see
	// TestPerRecipientCopies).
	m = testMessage("Q2", "x\r\n", filters.Header{Name: "X-Sluice-Bayes", Value: "Spam"})
	m.Rcpts = rcpts
	if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
		t.Fatal(err)
	}
	recs = readRecords(t, filepath.Join(dir, "bob@lab.example.mbox"))
	if len(recs) != 1 {
		t.Fatalf("bob: %d records, want 1", len(recs))
	}
	if got, want := HeaderValues(recs[0].Message, FieldEnvelopeTo), []string{"bob@lab.example", "Bob@lab.example"}; !slices.Equal(got, want) {
		t.Errorf("bob's copy: %s %q, want %q", FieldEnvelopeTo, got, want)
	}
}

// A maildir copy whose deadline (the filter's timeout) has passed before
// it reached new/ is not delivered: the session has gone on without the
// filter, and on_failure may have the client retry, which would archive
// the message twice. The file in tmp/ is removed, whether the deadline
// stopped the copy of the body or came when the file was written (a
// message without a body has none to stop).
func TestMaildirDeadlinePassedDeliversNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		body bool
	}{{"body", true}, {"header only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "md")
			f := newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"default": dir}}, nil)
			m := testMessage("Q1", "body\r\n")
			if !tc.body {
				m.Body = nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := f.Check(ctx, filters.StageEOM, m); !errors.Is(err, context.Canceled) {
				t.Errorf("copy after its deadline: error %v, want context.Canceled", err)
			}
			for _, sub := range []string{"tmp", "new"} {
				if files, err := os.ReadDir(filepath.Join(dir, sub)); err != nil || len(files) != 0 {
					t.Errorf("%s/ holds %d files (%v), want none", sub, len(files), err)
				}
			}
		})
	}
}

// A maildir file name carries the host name with "/" and ":" written
// \057 and \072, as maildir(5) asks (and "," written \054, see
// TestMaildirHostEscapesComma): a "/" would make a path of the name,
// and readers take what follows a ":" for the message's flags, so that
// Python's mailbox.Maildir (and Dovecot, mutt) would key the message by
// part of its name and read "2,S" in a host name as the flag Seen.
func TestMaildirNameEscapesHost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "md")
	a := NewAppender(time.Second, nil)
	a.holder.host = "mx/1:2,S"
	a.now = func() time.Time { return time.Unix(1700000000, 123456000) }
	if _, err := a.AppendMaildir(context.Background(), dir, func(w *bufio.Writer) error {
		_, err := w.WriteString("Subject: host\n\nbody\n")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	news, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil || len(news) != 1 {
		t.Fatalf("new/ holds %d files (%v), want 1", len(news), err)
	}
	name := news[0].Name()
	if want := `1700000000.M123456P` + strconv.Itoa(a.holder.pid) + `Q1.mx\0571\0722\054S`; name != want {
		t.Errorf("file name %q, want %q", name, want)
	}

	py := needTool(t, "python3", "python3", "to check the maildir with an independent reader")
	script := `import mailbox, sys
md = mailbox.Maildir(sys.argv[1], create=False)
for key in md.keys():
    msg = md.get_message(key)
    print(key, repr(msg.get_flags()), msg["Subject"])
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), name+" '' host"; got != want {
		t.Errorf("python's mailbox.Maildir reads %q, want %q", got, want)
	}
}

// A "," in the host name is written \054, like "/" and ":": readers split
// a maildir name at commas too, and Dovecot takes ",S=<n>" in a name for
// the message's size, so a host name "mx,S=5" would have it read five
// bytes of each message.
func TestMaildirHostEscapesComma(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"mx.example.org", "mx.example.org"},
		{"mx,S=5", `mx\054S=5`},
		{",,", `\054\054`},
		{"a/b:c,d", `a\057b\072c\054d`},
	} {
		if got := maildirHost(c.host); got != c.want {
			t.Errorf("maildirHost(%q) = %q, want %q", c.host, got, c.want)
		}
	}
}

// The null sender has more spellings than "": a source route to no
// address (MAIL FROM:<@relay.example:>) is one, which Postfix delivers
// with "Return-Path: <>" (see the senders end-to-end tests). The copy
// names the sender the mailbox has: MAILER-DAEMON in the mbox "From "
// line, <> in the maildir Return-Path; any other sender as sent, less a
// source route before it, which Postfix 3.7 and Sendmail 8.17 drop
// (RFC 5321 appendix C): MAIL FROM:<@relay.example:alice@example.org>
// is delivered with "Return-Path: <alice@example.org>" (observed).
func TestNullSenderSpellings(t *testing.T) {
	for _, tc := range []struct{ from, fromLine, returnPath string }{
		{"", "From MAILER-DAEMON ", "Return-Path: <>\n"},
		{"<>", "From MAILER-DAEMON ", "Return-Path: <>\n"},
		{"@relay.example:", "From MAILER-DAEMON ", "Return-Path: <>\n"},
		{"@a.example,@[IPv6:2001:db8::1]:", "From MAILER-DAEMON ", "Return-Path: <>\n"},
		{"@relay.example:alice@example.org", "From alice@example.org ", "Return-Path: <alice@example.org>\n"},
		{"@a.example,@[IPv6:2001:db8::1]:bob@example.org", "From bob@example.org ", "Return-Path: <bob@example.org>\n"},
		{"@x@example.org", "From @x@example.org ", "Return-Path: <@x@example.org>\n"},
		{"alice@example.org", "From alice@example.org ", "Return-Path: <alice@example.org>\n"},
		{"jösé@exämple.org", "From jösé@exämple.org ", "Return-Path: <jösé@exämple.org>\n"},
	} {
		dir := t.TempDir()
		mbox := filepath.Join(dir, "all.mbox")
		m := testMessage("N1", "x\r\n")
		m.From.Addr = tc.from
		f := newFilter(t, Config{Targets: map[string]string{"default": mbox}}, nil)
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, mbox)
		if len(recs) != 1 {
			t.Fatalf("sender %q: %d mbox records, want 1", tc.from, len(recs))
		}
		if got := recs[0].From(); !strings.HasPrefix(got, tc.fromLine) {
			t.Errorf("sender %q: From line %q, want it to start %q", tc.from, got, tc.fromLine)
		}

		md := filepath.Join(dir, "md")
		m = testMessage("N2", "x\r\n")
		m.From.Addr = tc.from
		f = newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"default": md}}, nil)
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
		news, _ := os.ReadDir(filepath.Join(md, "new"))
		if len(news) != 1 {
			t.Fatalf("sender %q: %d maildir files, want 1", tc.from, len(news))
		}
		b, _ := os.ReadFile(filepath.Join(md, "new", news[0].Name()))
		if !strings.HasPrefix(string(b), tc.returnPath) {
			line, _, _ := strings.Cut(string(b), "\n")
			t.Errorf("sender %q: maildir copy starts %q, want %q", tc.from, line, tc.returnPath)
		}
	}
}

// A value cut to keep a long file name within maxName is cut before a
// character, also when the template's text after it leaves room for
// fewer bytes of the value than a character has.
func TestCutComponentKeepsCharacters(t *testing.T) {
	for _, n := range []int{188, 189, 190, 191, 192, 193, 194, 195} {
		tmpl := "/srv/a/{rcpt_local}" + strings.Repeat("x", n) + ".mbox"
		tp, err := parsePathTemplate(tmpl, "")
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(tp.render(map[string]string{"rcpt_local": "übü"}))
		if !utf8.ValidString(name) || len(name) > maxName || !strings.HasSuffix(name, ".mbox") {
			t.Errorf("literal of %d bytes: file name %.12q... of %d bytes", n+5, name, len(name))
		}
	}
}

// Behind Postfix, the sender is recorded as Postfix delivers the
// message from it (see TestArchiveSenderAgainstMailbox in cmd/sluice,
// which compares with a real mailbox): without a phrase, group, comment
// or list commas around the address, and with the quotes a local part
// needs. Behind another MTA it is recorded as written, as Sendmail
// delivers most forms. The maildir Return-Path keeps a quoted local
// part's blank, as the mailbox's does with both MTAs; the mbox From_
// line writes it "_", since readers take the sender for one word. A CR
// or LF, which no MTA passes in MAIL FROM but a milter peer may send,
// never starts a line of its own.
func TestSenderAsDelivered(t *testing.T) {
	postfix := &filters.Conn{Macros: map[string]string{"v": "Postfix 3.7.11"}}
	for _, tc := range []struct {
		conn                       *filters.Conn
		from, fromLine, returnPath string
	}{
		{postfix, `"Joe" <joe@example.com`, "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, "Joe:joe@example.com;", "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, "joe@example.com (Joe)", "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, "joe@example.com,", "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, `"joe"@example.com`, "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, "example.com!joe", "From joe@example.com ", "Return-Path: <joe@example.com>\n"},
		{postfix, "@x@example.org", `From "@x"@example.org `, `Return-Path: <"@x"@example.org>` + "\n"},
		{postfix, `"john smith"@example.com`, `From "john_smith"@example.com `, `Return-Path: <"john smith"@example.com>` + "\n"},
		{postfix, `x:"john smith"@example.com;`, `From "john_smith"@example.com `, `Return-Path: <"john smith"@example.com>` + "\n"},
		{postfix, `"a\"b"@example.com`, `From "a\"b"@example.com `, `Return-Path: <"a\"b"@example.com>` + "\n"},
		{postfix, "\"a\r\nX-Injected: 1\"@example.com", `From "a__X-Injected:_1"@example.com `, `Return-Path: <"a__X-Injected: 1"@example.com>` + "\n"},
		{postfix, "a\nX-Injected: 1@example.com", `From "a_X-Injected:1"@example.com `, `Return-Path: <"a_X-Injected:1"@example.com>` + "\n"},
		{nil, `"john smith"@example.com`, `From "john_smith"@example.com `, `Return-Path: <"john smith"@example.com>` + "\n"},
		{nil, `"joe"@example.com`, `From "joe"@example.com `, `Return-Path: <"joe"@example.com>` + "\n"},
		{nil, "\"a\r\nX-Injected: 1\"@example.com", `From "a__X-Injected:_1"@example.com `, `Return-Path: <"a__X-Injected: 1"@example.com>` + "\n"},
	} {
		what := fmt.Sprintf("sender %q, behind Postfix %v", tc.from, tc.conn != nil)
		dir := t.TempDir()
		mbox := filepath.Join(dir, "all.mbox")
		m := testMessage("S1", "x\r\n")
		m.From.Addr = tc.from
		m.Conn = tc.conn
		f := newFilter(t, Config{Targets: map[string]string{"default": mbox}}, nil)
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
		recs := readRecords(t, mbox)
		if len(recs) != 1 {
			t.Fatalf("%s: %d mbox records, want 1", what, len(recs))
		}
		if got := recs[0].From(); !strings.HasPrefix(got, tc.fromLine) {
			t.Errorf("%s: From line %q, want it to start %q", what, got, tc.fromLine)
		}

		md := filepath.Join(dir, "md")
		m = testMessage("S2", "x\r\n")
		m.From.Addr = tc.from
		m.Conn = tc.conn
		f = newFilter(t, Config{Format: FormatMaildir, Targets: map[string]string{"default": md}}, nil)
		if _, err := f.Check(context.Background(), filters.StageEOM, m); err != nil {
			t.Fatal(err)
		}
		news, _ := os.ReadDir(filepath.Join(md, "new"))
		if len(news) != 1 {
			t.Fatalf("%s: %d maildir files, want 1", what, len(news))
		}
		b, _ := os.ReadFile(filepath.Join(md, "new", news[0].Name()))
		if !strings.HasPrefix(string(b), tc.returnPath) {
			line, _, _ := strings.Cut(string(b), "\n")
			t.Errorf("%s: maildir copy starts %q, want %q", what, line, tc.returnPath)
		}
		if strings.Contains(string(b)+string(recs[0].Raw), "\nX-Injected") {
			t.Errorf("%s: a header line of the sender's making in the copy", what)
		}
	}
}
