package process

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// FuzzStartField checks the reading of a process's start time from
// /proc/PID/stat (proc(5)), whose second field, the command name, the
// process chose and may hold spaces, parentheses and line ends: the start
// time is field 22 whatever the name holds.
func FuzzStartField(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(string(b), uint64(0))
	}
	f.Add("sluice", uint64(123456))
	f.Add("a) (b", uint64(1))
	f.Add(") 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n)", uint64(42))
	f.Add("", uint64(18446744073709551615))
	f.Fuzz(func(t *testing.T, comm string, start uint64) {
		// Field 3 on; the 20th after the name is the start time.
		rest := []string{"S", "1", "1", "1", "0", "-1", "4194560", "100", "0", "0", "0", "5", "3", "0", "0", "20", "0", "1", "0", fmt.Sprint(start), "12345678", "300"}
		stat := fmt.Sprintf("4242 (%s) %s\n", comm, strings.Join(rest, " "))
		got, ok := startField([]byte(stat))
		if !ok || got != start {
			t.Fatalf("%q: start %d, %v; want %d", stat, got, ok, start)
		}
		// Cut before the start time, the line gives none.
		cut := fmt.Sprintf("4242 (%s) %s", comm, strings.Join(rest[:19], " "))
		if got, ok := startField([]byte(cut)); ok {
			t.Fatalf("%q: start %d found in a line cut before it", cut, got)
		}
	})
}
