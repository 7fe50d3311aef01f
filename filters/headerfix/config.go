package headerfix

import (
	"fmt"
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Config is the filter's options, as written under options: in the
// configuration file. The zero value means every default; docs/headerfix.md
// lists them.
type Config struct {
	// Policy is what to do with a header that has stray line ends: fix
	// (the default), reject, tag or off.
	Policy string `yaml:"policy"`
	// Reply is the SMTP reply of policy reject, e.g. "550 5.6.0 Bare CR
	// in header". A 4xx reply refuses the message temporarily instead.
	Reply string `yaml:"reply"`
	// TraceHeader names the field that records what was repaired (policy
	// fix) or found (policy tag); nil means DefaultTraceHeader and ""
	// adds no field.
	TraceHeader *string `yaml:"trace_header"`
}

// Policy is what the filter does with a header that needs repair.
type Policy uint8

// The policies.
const (
	// PolicyFix repairs the header (see Repair) and lets the message go
	// on.
	PolicyFix Policy = iota
	// PolicyReject refuses the message with the configured reply.
	PolicyReject
	// PolicyTag leaves the header as it is and adds the trace field only.
	PolicyTag
	// PolicyOff turns the filter off: it does not even look.
	PolicyOff
)

var policyNames = []string{"fix", "reject", "tag", "off"}

// String returns the policy's name as written in the configuration.
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy parses a policy name.
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("policy %q: want one of %s", s, strings.Join(policyNames, ", "))
}

// Defaults.
const (
	DefaultPolicy      = PolicyFix
	DefaultTraceHeader = "X-Sluice-Repaired"
	// DefaultReply follows RFC 3463: 5.6.0 is "other or undefined media
	// error", the class for content the server will not take as it is.
	DefaultReply = "550 5.6.0 Message header contains a bare CR or LF line ending"
)

// settings is a checked Config.
type settings struct {
	policy Policy
	reply  filters.Reply
	action filters.Action // Reject or Tempfail, after the reply's code
	trace  string         // "" for none
}

func (c Config) check() (settings, error) {
	s := settings{policy: DefaultPolicy, trace: DefaultTraceHeader}
	if c.Policy != "" {
		p, err := ParsePolicy(c.Policy)
		if err != nil {
			return s, err
		}
		s.policy = p
	}
	reply := c.Reply
	if reply == "" {
		reply = DefaultReply
	}
	r, err := filters.ParseReply(reply)
	if err != nil {
		return s, err
	}
	s.reply = r
	s.action = filters.Reject
	if r.Code < 500 {
		s.action = filters.Tempfail
	}
	if c.Reply != "" && s.policy != PolicyReject {
		return s, fmt.Errorf("reply: only used with policy reject, not %s", s.policy)
	}
	if c.TraceHeader != nil {
		s.trace = *c.TraceHeader
		if s.trace != "" {
			if err := filters.CheckFieldName(s.trace, maxTraceFirst); err != nil {
				return s, fmt.Errorf("trace_header: %w", err)
			}
		}
	}
	if s.policy == PolicyTag && s.trace == "" {
		return s, fmt.Errorf("policy tag needs a trace_header: the field is all it does")
	}
	return s, nil
}
