package senders

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
)

// unfinishedChecks is how many checks in a row a rules file that looks
// unfinished (see looksUnfinished) must stay the same before it is read:
// 30 seconds at the default reload_interval. A writer at work pauses for
// longer than one interval more often than for that long; an emptied
// file, meant as such, still takes effect after it.
const unfinishedChecks = 15

// looksUnfinished reports whether a rules file is empty or its last line
// has no line end. That is what a file written in place shows while its
// writer is at work: the shell empties the file of "generate > file"
// before the program writes a byte, and a program's buffered output
// lands in blocks that end anywhere in a line. A file that shrank since
// st was taken is being written too.
func looksUnfinished(st stamp) bool {
	if st.err != "" {
		// A missing or unreadable file is reported as a broken edit.
		return false
	}
	if st.size == 0 {
		return true
	}
	fh, err := os.Open(st.path)
	if err != nil {
		return false
	}
	defer fh.Close()
	var last [1]byte
	if n, err := fh.ReadAt(last[:], st.size-1); n == 0 {
		return errors.Is(err, io.EOF)
	}
	return last[0] != '\n'
}

// unfinished returns the files of now that changed since before and
// look unfinished. A file left as it was is not being written, whatever
// it looks like: an empty file kept for later, or one whose last line
// never had an end, must not hold back the edit of another.
func unfinished(now, before []stamp) []string {
	var out []string
	for i, st := range now {
		if i < len(before) && sameStamps(now[i:i+1], before[i:i+1]) {
			continue
		}
		if looksUnfinished(st) {
			out = append(out, st.path)
		}
	}
	return out
}

// rulesInForce are the rules last put in force from one list of rules
// files, and how many filters use that list.
type rulesInForce struct {
	rules *Rules
	refs  int
}

// filesKey identifies a list of rules files: the rules compiled from
// the same list are interchangeable.
func filesKey(files []File) string {
	var b strings.Builder
	for _, f := range files {
		b.WriteString(f.Path)
		b.WriteByte(0)
		b.WriteString(strconv.Itoa(int(f.Scope)))
		b.WriteByte(0)
	}
	return b.String()
}

// inForce returns the rules in force from the files of key, nil when no
// filter reads them.
func (sh *Shared) inForce(key string) *Rules {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.rules[key]; ok {
		return r.rules
	}
	return nil
}

// holdRules records that a new filter reads the files of key and puts
// rs in force.
func (sh *Shared) holdRules(key string, rs *Rules) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.rules[key]
	if !ok {
		r = &rulesInForce{}
		sh.rules[key] = r
	}
	r.rules = rs
	r.refs++
}

// setRules records rules reloaded from the files of key.
func (sh *Shared) setRules(key string, rs *Rules) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.rules[key]; ok {
		r.rules = rs
	}
}

// releaseRules drops a filter's use of the files of key; with the last
// one the rules are forgotten.
func (sh *Shared) releaseRules(key string) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if r, ok := sh.rules[key]; ok {
		if r.refs--; r.refs <= 0 {
			delete(sh.rules, key)
		}
	}
}
