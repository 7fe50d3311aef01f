// Package process tells whether a process recorded in a lock or a mark is
// still the one that wrote it: the archive's dot-locks and the token
// store's import mark both record a pid, its start time and the host, and
// judge a holder gone when the pid is free or has been reused.
package process

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Alive reports whether process pid exists and, when its start time can
// be read, started at start (0: not recorded). EPERM from kill(2) means
// it exists under another user (a holder run as root, seen by the
// daemon).
func Alive(pid int, start uint64) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if st, ok := Start(pid); ok && start != 0 {
		return st == start
	}
	return true
}

// Start returns the start time of process pid in clock ticks after boot,
// field 22 of /proc/PID/stat (proc(5)); false where /proc cannot tell.
func Start(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return startField(b)
}

// startField returns field 22 of the contents of a /proc/PID/stat file.
func startField(b []byte) (uint64, bool) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses: count the fields after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// Host is this host's name as a lock or mark records it: without white
// space or control characters, which would split the record's fields;
// "localhost" when it has none.
func Host() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, host)
}
