// Package senders blocks, discards or watches mail by sender: the envelope
// sender's domain at MAIL FROM, the domain of the header From: at the end
// of the header block, and optionally the HELO name and the client's host
// name, against rules files in Sendmail's access-db syntax.
//
// An administrator can point the filter at an existing Sendmail access
// file: "domain ACTION", "user@domain ACTION" and "From:domain ACTION"
// lines with the actions OK, RELAY, REJECT, DISCARD, SKIP, ERROR:... and
// QUARANTINE:... mean what they mean to Sendmail, a domain entry matching
// its sub-domains too. Entries Sendmail uses for other purposes (To:,
// IP addresses, TLS and rate settings) are skipped. On top of that the
// files may hold glob patterns ("emalsrv.*"), regular expressions
// ("/^(emalsrv|complains)\./"), tags for the header From: and the HELO
// name, and the action WATCH, which never blocks but reports each new
// domain that matches, once: the start of a phishing campaign.
//
// Rules compiles the files into tables whose lookups cost a few map
// accesses per label of the name, however many rules there are, and one
// pass of a multi-pattern automaton to pick the few globs and regular
// expressions that can match. docs/senders.md describes the file format,
// the precedence of matches and the options.
package senders

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Subject is what a rule is compared with.
type Subject uint8

// The subjects.
const (
	// MailFrom is the envelope sender (SMTP MAIL FROM).
	MailFrom Subject = iota
	// HeaderFrom is each address of the message's From: header field.
	HeaderFrom
	// Helo is the name the client gave in HELO or EHLO.
	Helo
	// ClientName is the client's host name as the MTA found it.
	ClientName
	numSubjects
)

var subjectNames = [numSubjects]string{"mail_from", "header_from", "helo", "client_name"}

// String returns the subject's name as used in the configuration.
func (s Subject) String() string {
	if s < numSubjects {
		return subjectNames[s]
	}
	return fmt.Sprintf("subject(%d)", uint8(s))
}

// ParseSubject returns the subject with the given configuration name.
func ParseSubject(name string) (Subject, error) {
	for i, n := range subjectNames {
		if n == name {
			return Subject(i), nil
		}
	}
	return 0, fmt.Errorf("unknown subject %q (want %s)", name, strings.Join(subjectNames[:], ", "))
}

// isAddress reports whether the subject is a mail address (as opposed to
// a host name), so that address and local-part rules apply.
func (s Subject) isAddress() bool { return s == MailFrom || s == HeaderFrom }

// Scope is a set of subjects.
type Scope uint8

// ScopeOf returns the set holding the given subjects.
func ScopeOf(subjects ...Subject) Scope {
	var sc Scope
	for _, s := range subjects {
		sc |= 1 << s
	}
	return sc
}

// DefaultScope is the scope of a file whose configuration names none: the
// envelope sender and the header From:.
const DefaultScope = Scope(1<<MailFrom | 1<<HeaderFrom)

// Has reports whether s is in the set.
func (sc Scope) Has(s Subject) bool { return sc&(1<<s) != 0 }

// String lists the subjects, e.g. "mail_from,header_from".
func (sc Scope) String() string {
	var names []string
	for s := Subject(0); s < numSubjects; s++ {
		if sc.Has(s) {
			names = append(names, s.String())
		}
	}
	return strings.Join(names, ",")
}

// Action is what a rule says about a matching sender.
type Action uint8

// The actions.
const (
	// OK exempts the sender from the rules that match less specifically
	// (Sendmail's OK and RELAY). It does not accept the message on behalf
	// of other filters.
	OK Action = iota
	// Skip ends the lookup with no decision, as if nothing matched
	// (Sendmail's SKIP).
	Skip
	// Reject refuses with a 5xx reply: REJECT, or ERROR with a 5xx code.
	Reject
	// Tempfail refuses with a 4xx reply: ERROR with a 4xx code.
	Tempfail
	// Discard accepts the message and drops it.
	Discard
	// Quarantine accepts the message and has the MTA hold it.
	Quarantine
	// Watch never decides anything: a new domain that matches is
	// reported once.
	Watch
)

var actionNames = [...]string{"OK", "SKIP", "REJECT", "TEMPFAIL", "DISCARD", "QUARANTINE", "WATCH"}

// effect returns what a rule of action a wants done with the message:
// Continue for OK, SKIP and WATCH, which decide nothing for the pipeline.
func (a Action) effect() filters.Action {
	switch a {
	case Reject:
		return filters.Reject
	case Tempfail:
		return filters.Tempfail
	case Discard:
		return filters.Discard
	case Quarantine:
		return filters.Quarantine
	}
	return filters.Continue
}

// String returns the action's name.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// keyKind says how a rule's key is compared.
type keyKind uint8

const (
	keyAddress     keyKind = iota // user@domain
	keyPlusAddress                // user+*@domain: user+anything@domain
	keyDomain                     // domain: the domain and its sub-domains
	keySubdomains                 // .domain: its sub-domains only
	keyLocal                      // user@: user at any domain
	keyPlusLocal                  // user+*@
	keyNull                       // <>: the null sender
	keyGlob                       // a pattern with * or ?
	keyRegex                      // /regular expression/
)

// Rule is one line of a rules file.
type Rule struct {
	// File and Line say where the rule is written.
	File string
	Line int
	// Key is the left-hand side as written, tag included, e.g.
	// "From:linkedin-mail.com" or "emalsrv.*".
	Key string
	// Value is the right-hand side as written, e.g. `ERROR:"550 Go away"`.
	Value string
	// Scope lists the subjects the rule applies to: its tag's, or its
	// file's for a rule without a tag.
	Scope Scope
	// Tagged is set when the key has a tag (From:, HeaderFrom:, Helo:,
	// Connect:). A tagged rule beats an untagged one with the same key.
	Tagged bool
	// Action is what the rule says.
	Action Action
	// Reply is the reply of an ERROR rule; nil for REJECT, which uses
	// the filter's default reply.
	Reply *filters.Reply
	// Reason is the text of a QUARANTINE rule.
	Reason string

	kind keyKind
	// norm is the key in compared form: the domain in punycode, the
	// address lower case, the glob or the regular expression.
	norm  string
	local string // the local part of an address key
	re    *regexp.Regexp
}

// Where returns "file:line".
func (r *Rule) Where() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }

// String returns the rule as "file:line: KEY VALUE".
func (r *Rule) String() string { return fmt.Sprintf("%s: %s %s", r.Where(), r.Key, r.Value) }
