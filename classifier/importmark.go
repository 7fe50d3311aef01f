package classifier

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mail/sluice/filters/process"
)

// ImportMark is what MetaImporting records of an import that has not
// finished: when it began and, since sluice records it, the process that
// runs it, so that a store can tell an import still running from one
// that was stopped. The value is
//
//	BEGAN pid=PID start=START host=HOST
//
// BEGAN in RFC 3339 (UTC), START the process's start time in clock ticks
// after boot (field 22 of /proc/PID/stat, proc(5); 0 where there is no
// /proc), so that a process that was given the pid of a dead importer is
// not taken for it. Earlier versions wrote BEGAN alone; their marks, and
// any value this cannot read, have PID 0.
type ImportMark struct {
	// Began is when the import began; "" when the store holds no part of
	// an unfinished import.
	Began string
	// PID, Start and Host identify the importing process; PID is 0 when
	// the mark does not say.
	PID   int
	Start uint64
	Host  string
}

// ImportState is what can be told from here of an import that has not
// finished.
type ImportState int

const (
	// ImportStateUnknown: the mark does not name its process (an earlier
	// version wrote it), or names one on another host (a shared Redis
	// store), whose processes cannot be seen from here.
	ImportStateUnknown ImportState = iota
	// ImportRunning: the importing process still runs on this host.
	ImportRunning
	// ImportInterrupted: the importing process is gone; the import will
	// never finish.
	ImportInterrupted
)

func (s ImportState) String() string {
	switch s {
	case ImportRunning:
		return "running"
	case ImportInterrupted:
		return "interrupted"
	}
	return "unknown"
}

// thisImporter returns the mark of an import this process begins now.
func thisImporter() string {
	pid := os.Getpid()
	start, _ := process.Start(pid)
	return fmt.Sprintf("%s pid=%d start=%d host=%s", time.Now().UTC().Format(time.RFC3339), pid, start, process.Host())
}

// parseImportMark reads a MetaImporting value.
func parseImportMark(v string) ImportMark {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return ImportMark{}
	}
	m := ImportMark{Began: fields[0]}
	if len(fields) != 4 {
		return m
	}
	var who ImportMark
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pid":
			who.PID, err = strconv.Atoi(v)
		case "start":
			who.Start, err = strconv.ParseUint(v, 10, 64)
		case "host":
			who.Host = v
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			return m
		}
	}
	if who.PID <= 0 || who.Host == "" {
		return m
	}
	m.PID, m.Start, m.Host = who.PID, who.Start, who.Host
	return m
}

// State tells whether the import's process still runs. Only a process
// on this host can be looked at.
func (m ImportMark) State() ImportState {
	if m.PID == 0 || m.Host != process.Host() {
		return ImportStateUnknown
	}
	if process.Alive(m.PID, m.Start) {
		return ImportRunning
	}
	return ImportInterrupted
}

// Progress says, for messages, what became of the import: "it is still
// running, as pid 1234", "it was interrupted: pid 1234 is gone", ...
func (m ImportMark) Progress() string {
	switch m.State() {
	case ImportRunning:
		return fmt.Sprintf("it is still running, as pid %d", m.PID)
	case ImportInterrupted:
		return fmt.Sprintf("it was interrupted: pid %d is gone", m.PID)
	}
	if m.PID != 0 {
		return fmt.Sprintf("it is still running on %s, as pid %d, or was stopped", m.Host, m.PID)
	}
	return "it is still running, or was stopped"
}
