// Package filtertest provides filters for tests of the pipeline, the milter
// edge and the daemon. They are not registered in the shipped binary.
//
// Script is the workhorse: it decides by the local part of the recipient,
// so one end-to-end test can drive every verdict through a real MTA:
//
//	reject@...     Reject with 550 5.7.1 "Rejected by test filter"
//	tempfail@...   Tempfail with 451 4.7.1
//	discard@...    Discard
//	quarantine@... Quarantine
//	anything else  adds "X-Sluice-Test: client=<ip> helo=<helo>" at EOM
package filtertest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Script is a filter that decides by recipient local part (see package doc).
type Script struct {
	// FilterName defaults to "script".
	FilterName string
	// Header is the name of the header added to delivered mail;
	// default "X-Sluice-Test".
	Header string
	// RejectText overrides the text of the reject reply.
	RejectText string
}

// Name implements filters.Filter.
func (s *Script) Name() string {
	if s.FilterName != "" {
		return s.FilterName
	}
	return "script"
}

// Needs implements filters.Filter.
func (s *Script) Needs() filters.Needs {
	return filters.Needs{Stages: filters.StagesOf(filters.StageEOM)}
}

// Check implements filters.Filter.
func (s *Script) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	for _, r := range m.Rcpts {
		local, _, _ := strings.Cut(strings.ToLower(r.Addr), "@")
		switch local {
		case "reject":
			text := s.RejectText
			if text == "" {
				text = "Rejected by test filter"
			}
			return filters.Verdict{Action: filters.Reject, Reply: &filters.Reply{Code: 550, Enhanced: "5.7.1", Text: text}, Reason: "recipient " + r.Addr}, nil
		case "tempfail":
			return filters.Verdict{Action: filters.Tempfail, Reply: &filters.Reply{Code: 451, Enhanced: "4.7.1", Text: "Deferred by test filter"}, Reason: "recipient " + r.Addr}, nil
		case "discard":
			return filters.Verdict{Action: filters.Discard, Reason: "recipient " + r.Addr}, nil
		case "quarantine":
			return filters.Verdict{Action: filters.Quarantine, Reason: "held by test filter"}, nil
		}
	}
	name := s.Header
	if name == "" {
		name = "X-Sluice-Test"
	}
	client := ""
	helo := ""
	if m.Conn != nil {
		if m.Conn.Addr.IsValid() {
			client = m.Conn.Addr.String()
		}
		helo = m.Conn.Helo
	}
	return filters.Verdict{Edits: []filters.HeaderEdit{{Kind: filters.AddHeader, Name: name, Value: "client=" + client + " helo=" + helo}}}, nil
}

// Fixed is a filter that returns the same verdict or error at the stages
// it is configured for, optionally after a delay. It counts its calls.
type Fixed struct {
	FilterName string
	At         filters.Stages
	Verdict    filters.Verdict
	Err        error
	// Panic makes Check panic with this value when non-nil.
	Panic any
	// Delay is waited before answering; ctx cancellation ends the wait
	// unless IgnoreContext is set.
	Delay         time.Duration
	IgnoreContext bool
	NeedBody      bool
	NeedHeaders   bool

	mu    sync.Mutex
	calls int
}

// Name implements filters.Filter.
func (f *Fixed) Name() string { return f.FilterName }

// Needs implements filters.Filter.
func (f *Fixed) Needs() filters.Needs {
	return filters.Needs{Stages: f.At, Body: f.NeedBody, Headers: f.NeedHeaders}
}

// Calls returns how often Check ran.
func (f *Fixed) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// Check implements filters.Filter.
func (f *Fixed) Check(ctx context.Context, stage filters.Stage, m *filters.Message) (filters.Verdict, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.Delay > 0 {
		if f.IgnoreContext {
			time.Sleep(f.Delay)
		} else {
			t := time.NewTimer(f.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return filters.Verdict{}, ctx.Err()
			}
		}
	}
	if f.Panic != nil {
		panic(f.Panic)
	}
	if f.Err != nil {
		return filters.Verdict{}, f.Err
	}
	return f.Verdict, nil
}

// ErrTest is a ready-made error for Fixed.Err.
var ErrTest = errors.New("filtertest: induced failure")

// Registry returns a registry with the test filters, for daemon tests:
// "script" (options: header, reject_text) and "sleep" (options: delay,
// which makes the filter hold each message at EOM that long).
func Registry() filters.Registry {
	return filters.Registry{
		"script": func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var opts struct {
				Header     string `yaml:"header"`
				RejectText string `yaml:"reject_text"`
			}
			if err := decode(&opts); err != nil {
				return nil, err
			}
			return &Script{FilterName: env.Name, Header: opts.Header, RejectText: opts.RejectText}, nil
		},
		"sleep": func(env filters.Env, decode func(any) error) (filters.Filter, error) {
			var opts struct {
				Delay time.Duration `yaml:"delay"`
			}
			if err := decode(&opts); err != nil {
				return nil, err
			}
			return &Fixed{FilterName: env.Name, At: filters.StagesOf(filters.StageEOM), Delay: opts.Delay, NeedBody: true}, nil
		},
	}
}
