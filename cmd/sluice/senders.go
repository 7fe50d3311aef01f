package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/senders"
)

const sendersType = "senders"

func (c *cli) newSendersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "senders",
		Short: "Work with the rules files of the senders filter",
	}
	cmd.AddCommand(c.newSendersTestCmd())
	return cmd
}

func (c *cli) newSendersTestCmd() *cobra.Command {
	var (
		helo, client, filter string
		files, match         []string
	)
	cmd := &cobra.Command{
		Use:                   "test ADDRESS [--helo NAME] [--client-name NAME] [--filter NAME] [--file FILE... [--match SUBJECTS]]",
		DisableFlagsInUseLine: true,
		Short:                 "Show which sender rule matches, and what it does",
		Long: `test looks ADDRESS up, in the rules files of each senders filter of
the configuration, as the daemon would: as the envelope sender
(mail_from) and as the value of a From: header field (header_from),
read as the filter reads one (a display name may come with it, as in a
From: line copied from a message, and each address of a list is looked
up), with the names given with --helo and --client-name. It prints for
each the rule that decides (file:line, key and action), what the filter
then does, and the WATCH rules that match, with whether the domain is
new to them. It reads
the files as they are now, so it also tests an edit before the daemon
picks it up. "<>" is the null sender. --client-name unknown (Postfix's
word for a client without a verified reverse name) is not looked up, as
the daemon does not. The rules that never take effect (hidden by an
earlier rule with the same key, or never compared), which the daemon
warns of, are named on standard error.

--filter picks one senders filter by name; --file tests rules files
instead of the configuration's (their untagged rules apply to the
subjects of --match, default mail_from,header_from).

Exit status 0, or 1 when the configuration or a rules file cannot be
read (the error names the file and the line), 2 on a usage error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			setups, err := c.sendersSetups(filter, files, match)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			for i, s := range setups {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := s.test(w, cmd.ErrOrStderr(), args[0], helo, client); err != nil {
					w.Flush()
					return err
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&helo, "helo", "", "also look up `NAME` as the HELO name")
	cmd.Flags().StringVar(&client, "client-name", "", "also look up `NAME` as the client's host name")
	cmd.Flags().StringVar(&filter, "filter", "", "test only the senders filter of this `NAME`")
	cmd.Flags().StringArrayVar(&files, "file", nil, "test this rules `FILE` instead of the configuration's (repeatable)")
	cmd.Flags().StringSliceVar(&match, "match", nil, "subjects of the untagged rules of --file files (mail_from, header_from, helo, client_name)")
	return cmd
}

// sendersSetup is what the test command needs of one senders filter.
type sendersSetup struct {
	name     string // the filter's; "" for --file files
	files    []senders.File
	seen     string // "" when there is no seen file to consult
	watchAll bool
	reject   filters.Reply
}

// sendersSetups reads the senders filters of the configuration, or makes
// one of --file files.
func (c *cli) sendersSetups(only string, files, match []string) ([]sendersSetup, error) {
	if len(files) > 0 {
		// A subject --match does not know is a mistake in the command
		// line, like a flag that does not exist: a usage error.
		for _, m := range match {
			if _, err := senders.ParseSubject(m); err != nil {
				return nil, badUsage(fmt.Errorf("--match: %w", err))
			}
		}
		fc := make([]senders.FileConfig, len(files))
		for i, f := range files {
			if f == "" {
				return nil, badUsage(errors.New("--file: empty path"))
			}
			fc[i] = senders.FileConfig{Path: f, Match: match}
		}
		sf, err := senders.Config{Files: fc}.RulesFiles()
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		reject, _ := senders.Config{}.Reject()
		return []sendersSetup{{files: sf, reject: reject}}, nil
	}
	if len(match) > 0 {
		return nil, badUsage(errors.New("--match applies to --file files only"))
	}
	cfg, err := c.loadConfig("")
	if err != nil {
		return nil, err
	}
	var out []sendersSetup
	for i, f := range cfg.Filters {
		if f.Type != sendersType || only != "" && f.EntryName() != only {
			continue
		}
		// Strictly, as the daemon reads them, so that an error names
		// the same line of the file and says the same thing.
		var sc senders.Config
		if err := cfg.DecodeOptions(i, &sc); err != nil {
			return nil, err
		}
		sf, err := sc.RulesFiles()
		if err != nil {
			return nil, fmt.Errorf("%s: filters[%d].options.%w", cfg.File, i, err)
		}
		reject, err := sc.Reject()
		if err != nil {
			return nil, fmt.Errorf("%s: filters[%d].options.%w", cfg.File, i, err)
		}
		out = append(out, sendersSetup{name: f.EntryName(), files: sf, seen: sc.SeenPath(cfg.StateDir, f.EntryName()), watchAll: sc.WatchAll, reject: reject})
	}
	if len(out) == 0 {
		where := cfg.File
		if where == "" {
			where = "the built-in configuration"
		}
		if only != "" {
			return nil, fmt.Errorf("%s has no senders filter named %q", where, only)
		}
		return nil, fmt.Errorf("%s has no senders filter; name rules files with --file", where)
	}
	return out, nil
}

// test prints the lookups of one filter on w, and on warn the rules
// that never take effect.
func (s sendersSetup) test(w, warn io.Writer, address, helo, client string) error {
	rs, err := senders.Load(s.files)
	if err != nil {
		return err
	}
	// The rules the daemon warns of as it loads them: a rule hidden by an
	// earlier one is what an administrator testing a fresh edit most
	// needs to hear of, since the lookups below show only the earlier
	// rule deciding. All of them, unlike the daemon's log: this is where
	// one goes through the file. Not on w, which scripts may read.
	for _, n := range rs.Notes() {
		if n.NoEffect {
			fmt.Fprintf(warn, "sluice: warning: rule has no effect: %s\n", n)
		}
	}
	var seen *senders.SeenList
	if s.seen != "" {
		// Only to say whether a domain is new; a seen file that cannot be
		// read just leaves that out.
		seen, _ = senders.ReadSeen(s.seen)
	}
	paths := make([]string, len(s.files))
	for i, f := range s.files {
		paths[i] = f.Path
	}
	if s.name != "" {
		fmt.Fprintf(w, "filter %s: ", s.name)
	}
	fmt.Fprintf(w, "%d rules from %s\n", rs.Len(), strings.Join(paths, ", "))
	// Each lookup as the filter makes it: the address as the envelope
	// sender, and as the value of a From: field, which the filter reads
	// as a mail reader does (a display name, several addresses), not as
	// an envelope address: "bob%spam.example" is one at spam.example,
	// but no From: address at all.
	type lookup struct {
		m senders.Match
		// none says why nothing was looked up.
		none string
	}
	env := rs.Match(senders.MailFrom, address)
	lookups := []lookup{{m: env}}
	if !env.Name.Null {
		names, _ := senders.FromFieldNames(address)
		for _, n := range names {
			lookups = append(lookups, lookup{m: rs.MatchName(senders.HeaderFrom, n)})
		}
		if len(names) == 0 {
			lookups = append(lookups, lookup{
				m:    senders.Match{Subject: senders.HeaderFrom, Name: senders.Name{Local: address}},
				none: "a From: field of this text holds no address",
			})
		}
	}
	if helo != "" {
		lookups = append(lookups, lookup{m: rs.Match(senders.Helo, helo)})
	}
	if client == "unknown" {
		// As the filter does: Postfix's word for a client without a
		// verified reverse name is no name, and a rule for it never
		// applies.
		lookups = append(lookups, lookup{
			m:    senders.Match{Subject: senders.ClientName, Name: senders.Name{Domain: client}},
			none: "Postfix's word for a client without a verified name",
		})
	} else if client != "" {
		lookups = append(lookups, lookup{m: rs.Match(senders.ClientName, client)})
	}
	for _, l := range lookups {
		m := &l.m
		fmt.Fprintf(w, "%s %s\n", m.Subject, senders.Describe(m.Name))
		if l.none != "" {
			fmt.Fprintf(w, "  rule    none looked up: %s\n  action  continue\n", l.none)
			continue
		}
		if m.Rule == nil {
			fmt.Fprintln(w, "  rule    none matches")
		} else {
			fmt.Fprintf(w, "  rule    %s\n", m.Rule)
		}
		fmt.Fprintf(w, "  action  %s\n", sendersAction(m, s.reject))
		watch := m.Watch
		if s.watchAll && m.Rule != nil {
			watch = append(watch, m.Rule)
		}
		for _, r := range watch {
			fmt.Fprintf(w, "  watch   %s%s\n", r, seenNote(seen, r.Key, m.Name.Domain))
		}
	}
	return nil
}

// sendersAction says what the filter does with a match.
func sendersAction(m *senders.Match, reject filters.Reply) string {
	v := senders.Verdict(m, reject)
	switch v.Action {
	case filters.Reject, filters.Tempfail:
		return v.Action.String() + ": " + v.Reply.Sent().String()
	case filters.Quarantine:
		return "quarantine: " + m.Rule.Reason
	case filters.Discard:
		return "discard (the client gets 250, nothing is delivered)"
	}
	switch {
	case m.Rule == nil:
		return "continue"
	case m.Rule.Action == senders.OK:
		return "continue (OK: less specific rules do not apply)"
	}
	return "continue (SKIP: no rule decides)"
}

func seenNote(seen *senders.SeenList, pattern, domain string) string {
	switch {
	case domain == "":
		return ""
	case seen == nil:
		return " (domain " + domain + ")"
	}
	if t, ok := seen.FirstSeen(pattern, domain); ok {
		return " (domain " + domain + " seen since " + t.UTC().Format(time.RFC3339) + ")"
	}
	return " (domain " + domain + " is new: the daemon reports it)"
}
