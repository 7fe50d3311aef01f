package classifier_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mail/sluice/classifier"
)

// The defaults that the package documentation and the comments of the
// Params fields name are those DefaultParams returns: go doc is where a
// reader of docs/bayes.md is sent for the classifier, and a default
// changed in the code alone (the spam cutoff went from 0.8 to 0.85) must
// not leave the old value there.
func TestParamsDocDefaults(t *testing.T) {
	p := classifier.DefaultParams()
	num := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for _, name := range []string{"doc.go", "score.go"} {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}

	// doc.go: "The defaults (DefaultParams: robx R, robs S, min_dev M,
	// cutoffs C and H, ...".
	doc := strings.Join(strings.Fields(files["doc.go"].Doc.Text()), " ")
	m := regexp.MustCompile(`DefaultParams: robx ([0-9.]+), robs ([0-9.]+), min_dev ([0-9.]+), cutoffs ([0-9.]+) and ([0-9.]+)`).FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("the package documentation no longer names the defaults as \"DefaultParams: robx ..., cutoffs ... and ...\"")
	}
	for i, want := range []string{num(p.RobX), num(p.RobS), num(p.MinDev), num(p.SpamCutoff), num(p.HamCutoff)} {
		if m[i+1] != want {
			t.Errorf("doc.go: %q names %s where DefaultParams has %s", m[0], m[i+1], want)
		}
	}

	// score.go: each scoring field's comment says "Default X".
	want := map[string]string{
		"RobX":       num(p.RobX),
		"RobS":       num(p.RobS),
		"MinDev":     num(p.MinDev),
		"SpamCutoff": num(p.SpamCutoff),
		"HamCutoff":  num(p.HamCutoff),
	}
	found := 0
	ast.Inspect(files["score.go"], func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Params" {
			return true
		}
		for _, f := range ts.Type.(*ast.StructType).Fields.List {
			for _, name := range f.Names {
				w, ok := want[name.Name]
				if !ok {
					continue
				}
				found++
				text := strings.Join(strings.Fields(f.Doc.Text()), " ")
				d := regexp.MustCompile(`Default ([0-9.]*[0-9])`).FindStringSubmatch(text)
				if d == nil {
					t.Errorf("score.go: the comment of Params.%s names no default: %q", name.Name, text)
				} else if d[1] != w {
					t.Errorf("score.go: the comment of Params.%s says default %s, DefaultParams has %s", name.Name, d[1], w)
				}
			}
		}
		return false
	})
	if found != len(want) {
		t.Fatalf("found the comments of %d of the %d Params fields", found, len(want))
	}
}
