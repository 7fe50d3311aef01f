package bayes

import (
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	tests := []struct{ name, value string }{
		{"X-Sluice-Bayes", "Ham, spamicity=0.000012, queue_id=4ZkQ8m1xYz, version=dev"},
		{"X-Sluice-Bayes", "Unsure, spamicity=0.512345, queue_id=4ZkQ8m1xYzAbCdEfGhIjKl, version=v1.2.3-45-gabcdef0-dirty, autolearn=spam"},
		{"X-Bogosity", "Spam, tests=bogofilter, spamicity=0.999871, version=1.2.5"},
		{"X-A", strings.Repeat("x", 100) + " short " + strings.Repeat("y", 90)},
		{"X-A", "two  spaces   kept"},
	}
	for _, tc := range tests {
		got := fold(tc.name, tc.value)
		if unfolded := strings.ReplaceAll(got, "\n", ""); unfolded != tc.value {
			t.Errorf("unfolding %q gives %q, want %q", got, unfolded, tc.value)
		}
		lines := strings.Split(tc.name+": "+got, "\n")
		for i, l := range lines {
			if len(l) > maxLine && !strings.Contains(strings.TrimSpace(l), strings.Repeat("x", 80)) && !strings.Contains(l, strings.Repeat("y", 80)) {
				t.Errorf("%q: line %d is %d long: %q", tc.value, i, len(l), l)
			}
			if i > 0 && !strings.HasPrefix(l, " ") {
				t.Errorf("continuation line %q does not start with white space", l)
			}
		}
		if len(tc.name)+2+len(tc.value) > maxLine && len(lines) < 2 {
			t.Errorf("%q was not folded", tc.value)
		}
	}
}

func TestTemplate(t *testing.T) {
	tp, err := parseTemplate("{verdict}, x={spamicity} {queue_id}/{version} {")
	if err != nil {
		t.Fatal(err)
	}
	got := tp.render(map[string]string{"verdict": "Spam", "spamicity": "0.5", "queue_id": "Q\r\nX-Evil: 1", "version": "v"})
	if got != "Spam, x=0.5 Q??X-Evil: 1/v {" {
		t.Errorf("render: %q", got)
	}
	for _, bad := range []string{"{nope}", "tab\there", "{verdict}{}", "{verdict", "x={spamicity) y"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
