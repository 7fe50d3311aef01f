package mtatest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Delivered is one message as the MTA wrote it into the instance's
// Maildir: one file per recipient. Lines end in LF (the MTAs convert the
// SMTP CRLF); any CR still present was in the data the MTA received or
// added by a milter.
type Delivered struct {
	// File is the Maildir file's path.
	File string
	// Raw is the file's content.
	Raw []byte
	// Header holds the header fields in file order, including those the
	// MTA added: Postfix starts with Return-Path, X-Original-To,
	// Delivered-To, Received; Sendmail with Delivered-To, Return-Path,
	// Received.
	Header []Field
	// Body is everything after the blank line that ends the header.
	Body []byte
}

// Field is one header field.
type Field struct {
	// Name is the field name as written, e.g. "X-Spam-Flag".
	Name string
	// Value is what follows the colon with leading spaces and tabs
	// removed, continuation lines included (joined with "\n", their
	// leading whitespace kept), no final line ending.
	Value string
	// Raw is the whole field as written, name and continuation lines
	// included, without the final line ending.
	Raw string
}

// Recipient returns the envelope recipient of this copy, from the
// Delivered-To field the delivery agent prepends.
func (d Delivered) Recipient() string { return d.Get("Delivered-To") }

// Get returns the value of the first field named name (filters.SameName),
// or "" if there is none.
func (d Delivered) Get(name string) string {
	for _, f := range d.Header {
		if filters.SameName(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns the values of every field named name (filters.SameName),
// in order.
func (d Delivered) Values(name string) []string {
	var vs []string
	for _, f := range d.Header {
		if filters.SameName(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// ParseDelivered splits a delivered message into header fields and body.
// A header line that is neither a field nor a continuation (no colon)
// becomes a Field with an empty Name, so that nothing is lost.
func ParseDelivered(raw []byte) Delivered {
	d := Delivered{Raw: raw}
	rest := raw
	for len(rest) > 0 {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		if len(line) == 0 {
			d.Body = after
			return d
		}
		rest = after
		if (line[0] == ' ' || line[0] == '\t') && len(d.Header) > 0 {
			f := &d.Header[len(d.Header)-1]
			f.Value += "\n" + string(line)
			f.Raw += "\n" + string(line)
			continue
		}
		f := Field{Raw: string(line)}
		if name, value, ok := strings.Cut(string(line), ":"); ok {
			f.Name = name
			f.Value = strings.TrimLeft(value, " \t")
		} else {
			f.Value = string(line)
		}
		d.Header = append(d.Header, f)
		if !found {
			break
		}
	}
	// No blank line: header only, empty body.
	return d
}

// Delivered returns every message delivered so far (since the start or the
// last ClearDelivered), oldest first. Each Maildir file appears in new/
// only once complete (Maildir delivery writes into tmp/ and renames).
func (m *MTA) Delivered(t testing.TB) []Delivered {
	t.Helper()
	ds, err := m.readMaildir()
	if err != nil {
		t.Fatalf("%v: %v", m, err)
	}
	return ds
}

func (m *MTA) readMaildir() ([]Delivered, error) {
	type file struct {
		path string
		mod  time.Time
	}
	var files []file
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(m.maildirPath(), sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read maildir: %w", err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed by ClearDelivered meanwhile
				}
				return nil, fmt.Errorf("read maildir: %w", err)
			}
			files = append(files, file{filepath.Join(dir, e.Name()), info.ModTime()})
		}
	}
	// Maildir names start with the delivery time in seconds, so sort by
	// modification time first and name second.
	slices.SortFunc(files, func(a, b file) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	ds := make([]Delivered, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read delivered message: %w", err)
		}
		d := ParseDelivered(raw)
		d.File = f.path
		ds = append(ds, d)
	}
	return ds, nil
}

// WaitDelivered waits until at least n messages have been delivered and
// returns all of them. The test fails if that takes longer than timeout.
// To check that no more than n arrive, follow with WaitIdle and compare
// len(Delivered(t)).
func (m *MTA) WaitDelivered(t testing.TB, n int, timeout time.Duration) []Delivered {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ds, err := m.readMaildir()
		if err != nil {
			t.Fatalf("%v: %v", m, err)
		}
		if len(ds) >= n {
			return ds
		}
		if time.Now().After(deadline) {
			q, _ := m.queue()
			t.Fatalf("%v: %d of %d messages delivered after %v (queued: %v, held: %v)",
				m, len(ds), n, timeout, q.inFlight, q.held)
		}
		time.Sleep(pollEvery)
	}
}

// AssertNothingDelivered waits until the queue is idle (see WaitIdle) and
// then fails the test if any message was delivered since the start or the
// last ClearDelivered.
func (m *MTA) AssertNothingDelivered(t testing.TB, timeout time.Duration) {
	t.Helper()
	m.WaitIdle(t, timeout)
	if ds := m.Delivered(t); len(ds) > 0 {
		for _, d := range ds {
			t.Errorf("%v: unexpected delivery to %s:\n%s", m, d.Recipient(), d.Raw)
		}
		t.FailNow()
	}
}

// ClearDelivered deletes every delivered message, so that a test can reuse
// one instance for several cases. Call it when the queue is idle.
func (m *MTA) ClearDelivered(t testing.TB) {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(m.maildirPath(), sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("%v: clear maildir: %v", m, err)
		}
		for _, e := range entries {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("%v: clear maildir: %v", m, err)
			}
		}
	}
}
