package main

import (
	"github.com/sluice-mail/sluice/filters"
	"github.com/sluice-mail/sluice/filters/archive"
	"github.com/sluice-mail/sluice/filters/bayes"
	"github.com/sluice-mail/sluice/filters/dnsbl"
	"github.com/sluice-mail/sluice/filters/headerfix"
	"github.com/sluice-mail/sluice/filters/senders"
)

// registry lists the filters this binary ships, by the type name used in
// the config file. Adding a filter is one import and one line here.
func registry() filters.Registry {
	return filters.Registry{
		"archive":   archive.Factory,
		"bayes":     bayes.Factory(version),
		"dnsbl":     dnsbl.Factory(dnsbl.NewShared()),
		"headerfix": headerfix.Factory,
		"senders":   senders.Factory(),
	}
}
