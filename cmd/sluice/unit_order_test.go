package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/milter/mtatest"
)

// The packaged unit is ordered before the units that run the MTA's
// daemons (docs/install.md: with Type=notify, Postfix or Sendmail starts
// only once the milter socket answers). A Before= naming a unit that
// only stands for the MTA is not enough: Debian's postfix.service is a
// oneshot that runs /bin/true, and Postfix itself runs in
// postfix@-.service, which postfix-instance-generator pulls in and
// orders before postfix.service. Ordered before the wrapper alone, sluice
// starts side by side with Postfix at boot, and the first connections
// meet no socket (milter_default_action).
func TestUnitOrderedBeforeTheMTA(t *testing.T) {
	mtatest.Require(t, "postfix")
	before := unitValues(t, filepath.Join(repoRoot, "testdata", "deb", "sluice.service"), "[Unit]", "Before")
	var names []string
	for _, v := range before {
		names = append(names, strings.Fields(v)...)
	}
	files, err := filepath.Glob("/lib/systemd/system/postfix*.service")
	if err != nil {
		t.Fatal(err)
	}
	runners := 0
	for _, file := range files {
		if !unitStartsMTA(unitValues(t, file, "[Service]", "ExecStart")) {
			continue
		}
		runners++
		name := filepath.Base(file)
		if strings.HasSuffix(name, "@.service") {
			// A template: the generator starts its default instance.
			name = strings.TrimSuffix(name, "@.service") + "@-.service"
		}
		if !slices.Contains(names, name) {
			t.Errorf("%s runs Postfix, but the unit's Before= (%s) does not name %s: they start side by side", file, strings.Join(names, " "), name)
		}
	}
	if runners == 0 {
		mtatest.Unavailable(t, "no systemd unit among %v starts Postfix (not Debian's postfix package?)", files)
	}
}

// unitStartsMTA reports whether one of the ExecStart= lines starts the
// MTA: postfix or postmulti with "start" (not a wrapper such as
// /bin/true, nor a helper that only copies files).
func unitStartsMTA(execs []string) bool {
	for _, e := range execs {
		f := strings.Fields(strings.TrimLeft(e, "-@+!:"))
		if len(f) == 0 {
			continue
		}
		switch filepath.Base(f[0]) {
		case "postfix", "postmulti":
			if slices.Contains(f[1:], "start") {
				return true
			}
		}
	}
	return false
}

// unitValues returns the values of key in section of a systemd unit
// file, in order.
func unitValues(t *testing.T, path, section, key string) []string {
	t.Helper()
	return unitSection(t, path, section)[key]
}

// unitSection returns the keys of section ("[Service]") of a systemd
// unit file, each with its values in order.
func unitSection(t *testing.T, path, section string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	in := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			in = line
		case in == section:
			if k, v, ok := strings.Cut(line, "="); ok {
				keys[strings.TrimSpace(k)] = append(keys[strings.TrimSpace(k)], strings.TrimSpace(v))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}
