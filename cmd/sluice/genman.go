package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd is the hidden command the package build uses to write the
// man pages: one per command, sluice(8), sluice-serve(8) and so on, all
// in section 8 as sluice is a system daemon and its commands are run by
// the mail administrator.
func newGenManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "Write the man pages of every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The pages carry the date of the source, not of the build,
			// so that a rebuild gives the same package
			// (https://reproducible-builds.org/specs/source-date-epoch/).
			date := time.Now()
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				sec, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
				}
				date = time.Unix(sec, 0).UTC()
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			header := &doc.GenManHeader{
				Title:   "SLUICE",
				Section: "8",
				Date:    &date,
				Source:  "sluice " + version,
				Manual:  "sluice manual",
			}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("gen-man %s: %w", args[0], err)
			}
			return nil
		},
	}
}
