package config

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-mail/sluice/filters"
)

var (
	nodeType        = reflect.TypeOf(yaml.Node{})
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// checkKeys walks node against the Go type it will be decoded into and
// reports the first key the type does not have, with its line. yaml.v3's
// Node.Decode has no strict mode of its own.
func checkKeys(file string, n *yaml.Node, t reflect.Type, path string) error {
	w := keyWalker{file: file, checked: map[checkedNode]bool{}}
	return w.walk(n, t, path)
}

// keyWalker is one walk of checkKeys.
type keyWalker struct {
	file string
	// checked holds the nodes already walked, by the type they were
	// walked against. Aliases repeat a node without copying it: nested
	// ones ("billion laughs") make a few hundred bytes a tree of a
	// billion nodes, and walking each repeat would keep the walk going
	// for hours before yaml.v3's own limit on aliasing is reached. The
	// walk stops at the first error, so a node in here passed.
	checked map[checkedNode]bool
}

type checkedNode struct {
	n *yaml.Node
	t reflect.Type
}

func (w *keyWalker) walk(n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if w.checked[checkedNode{n, t}] {
		return nil
	}
	w.checked[checkedNode{n, t}] = true
	if t == nodeType {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// A key with nothing after it ("listen:") decodes as no value
		// at all, so a setting keeps its default: the metrics stay on
		// where the administrator meant "" to turn them off. An empty
		// section or list is fine.
		switch {
		case t.Kind() == reflect.String:
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New(`no value: write "" for an empty one, or leave the key out for the default`)}
		case t == durationType || t.Kind() >= reflect.Bool && t.Kind() <= reflect.Float64:
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New("no value: write one, or leave the key out for the default")}
		}
		return nil
	}
	if t == durationType {
		// yaml.v3 says "cannot unmarshal !!int `30` into time.Duration"
		// without the key; a unit-less number is the usual mistake.
		if n.Kind != yaml.ScalarNode {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New("want a duration such as 30s, not a list or mapping")}
		}
		// time.ParseDuration takes a bare 0, but yaml.v3 decodes only a
		// string into a duration and refuses 0 as an !!int, again
		// without the key: refuse it here, where the key is known.
		if _, err := time.ParseDuration(n.Value); err != nil || n.ShortTag() != "!!str" {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: fmt.Errorf("%q: want a duration with a unit, such as 30s or 1m30s (units: ms, s, m, h)", n.Value)}
		}
		return nil
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Decode the value alone so that its error names the key, not
		// only the line, as the decoding of the whole document would.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: valueError(err)}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New("want a mapping of keys")}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByTag(t, k.Value)
			name := k.Value
			if name == "" {
				// Written "" or as a "?" with no key; shown so, not
				// as nothing.
				name = `""`
			}
			key := join(path, name)
			if !ok {
				return &Error{File: w.file, Line: k.Line, Key: key, Err: fmt.Errorf("unknown key%s (known: %s)", didYouMean(k.Value, tagNames(t)), strings.Join(tagNames(t), ", "))}
			}
			if err := w.walk(v, f.Type, key); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New("want a list")}
		}
		elem := t.Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			// yaml.v3 drops a null item of a list of mappings: a lone
			// "-" (an entry whose lines were commented out) would
			// vanish from the pipeline without a word.
			if elem.Kind() == reflect.Struct && elem != nodeType && item.Kind == yaml.ScalarNode && item.Tag == "!!null" {
				return &Error{File: w.file, Line: item.Line, Key: key, Err: errors.New("empty entry")}
			}
			if err := w.walk(item, t.Elem(), key); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: errors.New("want a mapping")}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: fmt.Errorf("want a single value (%s), not a list or mapping", t.Kind())}
		}
		if k := t.Kind(); k >= reflect.Int && k <= reflect.Uintptr {
			tag := n.ShortTag()
			// yaml.v3 reads a number with a leading 0 as octal, as
			// YAML 1.1 did (0100 is 64), and one that is no octal
			// (09) as a float: neither is what a reader of the file
			// sees. 0o100 says octal.
			if d := strings.TrimLeft(n.Value, "+-"); (tag == "!!int" || tag == "!!float") && len(d) > 1 && d[0] == '0' && (d[1] >= '0' && d[1] <= '9' || d[1] == '_') {
				return &Error{File: w.file, Line: n.Line, Key: path, Err: fmt.Errorf("%q: write a whole number without a leading 0 (YAML would read it as octal; write 0o... if that is meant)", n.Value)}
			}
			// yaml.v3 decodes a float into an integer by cutting off
			// its fraction: max_connections: 0.5 would be 0, no limit.
			if tag == "!!float" {
				return &Error{File: w.file, Line: n.Line, Key: path, Err: fmt.Errorf("%q: want a whole number written in digits, such as 100", n.Value)}
			}
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return &Error{File: w.file, Line: n.Line, Key: path, Err: valueError(err)}
		}
	}
	return nil
}

// valueError is the message of a decoding error of one value, without
// yaml.v3's "line N:" prefix: the Error around it gives the line.
func valueError(err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		msg = m[2]
	}
	return errors.New(msg)
}

// didYouMean suggests the known key closest to an unknown one, when it is
// a typo away (two letters added, dropped, changed or swapped at most).
func didYouMean(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		// The distance is at least the difference in length. A key
		// much longer than k is no typo of it, and editDistance would
		// fill a table of its length times k's: gigabytes for the
		// megabytes an explicit key ("? ...") may hold.
		if diff := len(key) - len(k); diff >= bestDist || -diff >= bestDist {
			continue
		}
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %s?", best)
}

// editDistance is the Levenshtein distance between a and b, counting a
// swap of neighbouring letters as one edit.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	if name == "" {
		// tagName is "" for the fields that have no key (unexported,
		// or tagged "-"), which yaml.v3 does not fill in: an empty key
		// would pass here and then be dropped without a word.
		return reflect.StructField{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if tag == "-" {
		return ""
	}
	if tag == "" {
		return strings.ToLower(f.Name)
	}
	return tag
}

func tagNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := tagName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a yaml.v3 error into an Error with file and line.
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	m := yamlLine.FindStringSubmatch(msgs[0])
	if m == nil {
		return &Error{File: file, Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	return &Error{File: file, Line: line, Err: errors.New(m[2])}
}

// keyLine finds the line of a dotted key in the document; 0 if absent
// (the line of the deepest part present if only its start is).
func keyLine(root *yaml.Node, key string) int {
	n, line := root, 0
	for _, part := range strings.Split(key, ".") {
		next, l := mappingValue(n, part)
		if next == nil {
			return line
		}
		n, line = next, l
	}
	return line
}

// itemLine finds the line of item i of the list under key: the key's
// line if there is no such item, 0 if there is no such key.
func itemLine(root *yaml.Node, key string, i int) int {
	list, line := mappingValue(root, key)
	if list == nil {
		return 0
	}
	if list.Kind == yaml.SequenceNode && i < len(list.Content) {
		return list.Content[i].Line
	}
	return line
}

// entryKeyLine finds the line of key in item i of the list under list;
// 0 if the item has no such key.
func entryKeyLine(root *yaml.Node, list string, i int, key string) int {
	items, _ := mappingValue(root, list)
	if items == nil || items.Kind != yaml.SequenceNode || i >= len(items.Content) {
		return 0
	}
	return keyLine(items.Content[i], key)
}

// optionPath is the key path a filter's error starts with: "header",
// "targets.spam", "zones[2].codes".
var optionPath = regexp.MustCompile(`^[a-z0-9_]+(?:\[[0-9]+\])*(?:\.[a-z0-9_]+(?:\[[0-9]+\])*)*$`)

// optionLine finds the line of the option a filter's error names, 0 if it
// names none the options give. Filters check their options after decoding
// them and know no lines; their errors start with the key path, alone or
// followed by the bad value, before the first ": " ("reply: ...",
// "zones[1].zone \"x\": ..."). A long options block made the entry's line
// a poor pointer to the value at fault. A message with no ": " names no
// single option ("max_bytes and max_tokens must not be negative") and
// keeps the entry's line.
func optionLine(opts *yaml.Node, msg string) int {
	head, _, ok := strings.Cut(msg, ": ")
	if !ok {
		return 0
	}
	path, _, _ := strings.Cut(head, " ")
	if !optionPath.MatchString(path) {
		return 0
	}
	n, line := opts, 0
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		next, keyLine := mappingValue(n, key)
		if next == nil {
			return line
		}
		n, line = next, keyLine
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			rest = strings.TrimPrefix(after, "[")
			i, err := strconv.Atoi(idx)
			for n.Kind == yaml.AliasNode {
				n = n.Alias
			}
			if err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n, line = n.Content[i], n.Content[i].Line
		}
	}
	return line
}

// mappingValue returns the value of key in the mapping n and the line of
// the key; nil if n is no mapping or has no such key.
func mappingValue(n *yaml.Node, key string) (*yaml.Node, int) {
	if n == nil {
		return nil, 0
	}
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// Build creates the pipeline the config describes. Each filter decodes its
// own options strictly; an error names the file and the line of the
// option it is about, or of the entry when it names no option.
func Build(c *Config, reg filters.Registry, logger *slog.Logger, obs filters.Observer) (*filters.Pipeline, error) {
	return build(c, reg, logger, obs, false)
}

// Check builds every filter the config describes only to check its
// options, as "sluice config check" does: filters create and change
// nothing (filters.Env.CheckOnly), and the pipeline is closed again. The
// errors are Build's; what the filters log as they are built goes to
// logger (nil for nowhere).
func Check(c *Config, reg filters.Registry, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := build(c, reg, logger, nil, true)
	if err != nil {
		return err
	}
	return p.Close()
}

func build(c *Config, reg filters.Registry, logger *slog.Logger, obs filters.Observer, checkOnly bool) (*filters.Pipeline, error) {
	defPolicy, err := filters.ParseFailurePolicy(c.FilterDefaults.OnFailure)
	if err != nil {
		return nil, err
	}
	var steps []filters.Step
	fail := func(err error) (*filters.Pipeline, error) {
		filters.NewPipeline(steps, nil).Close()
		return nil, err
	}
	// owner of each owned header field, by lower-cased name.
	type owner struct {
		name string
		line int
	}
	owners := map[string]owner{}
	for i := range c.Filters {
		f := &c.Filters[i]
		name := f.EntryName()
		decode := func(v any) error { return c.DecodeOptions(i, v) }
		// obs is the daemon's metrics: besides the pipeline's observer it
		// implements the observers of filter types (see filters.Env).
		env := filters.Env{Name: name, Logger: logger.With("filter", name), StateDir: c.StateDir, Observer: obs, CheckOnly: checkOnly}
		filter, err := reg.Build(f.Type, env, decode)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				return fail(err)
			}
			line := f.line
			if l := optionLine(&f.Options, err.Error()); l > 0 {
				line = l
			}
			return fail(&Error{File: c.File, Line: line, Key: fmt.Sprintf("filters[%d] (%s)", i, name), Err: err})
		}
		if fo, ok := filter.(filters.FieldOwner); ok {
			for _, field := range fo.OwnedFields() {
				if filters.MessageField(field) {
					if cl, ok := filter.(filters.Closer); ok {
						cl.Close()
					}
					return fail(&Error{File: c.File, Line: f.line, Key: fmt.Sprintf("filters[%d] (%s)", i, name),
						Err: fmt.Errorf("adds header field %s, a field of the message itself: the filter deletes a message's own fields of the names it adds, as forged; give it a name of its own, such as X-%s", field, field)})
				}
				key := filters.NameKey(field)
				if o, dup := owners[key]; dup {
					if cl, ok := filter.(filters.Closer); ok {
						cl.Close()
					}
					return fail(&Error{File: c.File, Line: f.line, Key: fmt.Sprintf("filters[%d] (%s)", i, name),
						Err: fmt.Errorf("adds header field %s, which filter %s (line %d) adds too; each deletes the other's as forged, so give one of them another field name", field, o.name, o.line)})
				}
				owners[key] = owner{name, f.line}
			}
		}
		step := filters.Step{Filter: filter, Timeout: c.FilterDefaults.Timeout, OnFailure: defPolicy}
		if f.Timeout > 0 {
			step.Timeout = f.Timeout
		}
		if f.OnFailure != "" {
			step.OnFailure, _ = filters.ParseFailurePolicy(f.OnFailure)
		}
		steps = append(steps, step)
	}
	return filters.NewPipeline(steps, obs), nil
}

// DecodeOptions decodes the options of filter entry i into v, a pointer,
// as strictly as Build does for the daemon: an unknown key, a value of
// the wrong type or a bad value is an Error naming the file, the line and
// the key. The CLI reads the bayes filter's options through it.
func (c *Config) DecodeOptions(i int, v any) error {
	f := &c.Filters[i]
	if f.Options.Kind == 0 {
		return nil
	}
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("decode target must be a pointer, got %v", t)
	}
	if err := checkKeys(c.File, &f.Options, t.Elem(), fmt.Sprintf("filters[%d].options", i)); err != nil {
		return err
	}
	if err := f.Options.Decode(v); err != nil {
		return yamlError(c.File, err)
	}
	return nil
}
