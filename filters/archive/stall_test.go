package archive

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// stallEnv makes the test binary a sluice writer that takes an mbox's
// locks and then stops before the first byte of its record reaches the
// file (see childStall).
const stallEnv = "SLUICE_ARCHIVE_TEST_STALL"

// childStall takes the locks of the mbox at path for an append, says so
// on standard output and waits to be killed: a daemon killed (the OOM
// killer, a stop timeout) while it formats a record, before its first
// write, leaves its dot-lock and nothing of the record. With spec
// "PATH|partial" it first writes more of a record than the write buffer
// holds, so that part of it is in the file.
func childStall(spec string) int {
	path, mode, _ := strings.Cut(spec, "|")
	_, err := NewAppender(time.Second, nil).AppendMbox(context.Background(), path, func(w *bufio.Writer) error {
		if mode == "partial" {
			w.WriteString("From dead Thu Jan  1 00:00:00 1970\nSubject: half\n\n")
			w.WriteString(strings.Repeat("half a record\n", 10000))
			w.Flush()
		}
		fmt.Println("locked")
		select {}
	})
	fmt.Fprintln(os.Stderr, err)
	return 1
}
