package filters

import (
	"fmt"
	"log/slog"
	"sort"
)

// Env is what a filter gets from the daemon when it is built.
type Env struct {
	// Name is the filter's name in this pipeline (its type unless the
	// config names it), used in logs, metrics and replies.
	Name string
	// Logger is the daemon's logger, already tagged with the filter name.
	Logger *slog.Logger
	// StateDir is the directory for the filter's state files (the config's
	// state_dir), e.g. the default place of a token store.
	StateDir string
	// Observer receives measurements specific to a filter type. It is the
	// daemon's metrics sink, built once and kept across reloads; a filter
	// asserts it to its own observer interface (e.g. bayes.Observer) and
	// measures nothing when it is nil or does not implement it.
	Observer any
	// CheckOnly says the filter is built only to check its options
	// ("sluice config check"), never to run: it must create and change
	// nothing, on disk or elsewhere. That command is often run as root,
	// and a file it made would be root's, which the daemon's user could
	// not open. A filter may then return a stand-in that only answers
	// Name, OwnedFields and Close.
	CheckOnly bool
}

// Factory builds a filter from its config section. decode fills a struct
// from the section's options; it rejects unknown keys and wrong types with
// the file and line, so a factory only checks values.
type Factory func(env Env, decode func(v any) error) (Filter, error)

// Registry maps a filter type, as written in the config file, to its
// factory. Adding a filter to sluice is one package and one line in the
// daemon's registry.
type Registry map[string]Factory

// Types returns the registered filter types, sorted.
func (r Registry) Types() []string {
	types := make([]string, 0, len(r))
	for t := range r {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// Build returns a filter of the given type.
func (r Registry) Build(typ string, env Env, decode func(v any) error) (Filter, error) {
	f, ok := r[typ]
	if !ok {
		return nil, fmt.Errorf("unknown filter type %q (known: %v)", typ, r.Types())
	}
	return f(env, decode)
}
