package problem_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
)

const module = "github.com/sealgate/sealgate"

// repoRoot is the module's root, two levels up from this package.
const repoRoot = "../.."

// kinds maps the names of fault's kinds to their values.
var kinds = map[string]fault.Kind{
	"Internal": fault.Internal, "Invalid": fault.Invalid, "Unauthenticated": fault.Unauthenticated,
	"Forbidden": fault.Forbidden, "NotFound": fault.NotFound, "Conflict": fault.Conflict,
	"Unavailable": fault.Unavailable, "TooLarge": fault.TooLarge, "TooMany": fault.TooMany, "Timeout": fault.Timeout, "MethodNotAllowed": fault.MethodNotAllowed,
	"UnsupportedMediaType": fault.UnsupportedMediaType,
}

// codeUses is what the code base says about its error codes: every code a
// constant or a fault.New/fault.Wrap call names, and for each call whose
// kind is written out, the HTTP status that kind gives.
type codeUses struct {
	codes    map[string]bool
	statuses map[string]map[int]bool
}

// scanCodes reads every non-test Go file of the module: the fault.Code
// constants (also those defined as another package's code), and the code
// and kind of every fault.New and fault.Wrap call.
func scanCodes(t *testing.T) codeUses {
	t.Helper()
	fset := token.NewFileSet()
	type file struct {
		pkg     string
		imports map[string]string
		f       *ast.File
	}
	var files []file
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "data" || strings.HasPrefix(d.Name(), ".") && p != repoRoot) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, filepath.Dir(p))
		fl := file{pkg: path.Join(module, filepath.ToSlash(rel)), imports: map[string]string{}, f: f}
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			name := path.Base(ip)
			if im.Name != nil {
				name = im.Name.Name
			}
			fl.imports[name] = ip
		}
		files = append(files, fl)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Constants: "pkg.Name" → its value, or the constant it is defined as.
	values, aliases := map[string]string{}, map[string]string{}
	qualify := func(fl file, e ast.Expr) string {
		switch e := e.(type) {
		case *ast.Ident:
			return fl.pkg + "." + e.Name
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok && fl.imports[x.Name] != "" {
				return fl.imports[x.Name] + "." + e.Sel.Name
			}
		}
		return ""
	}
	isFaultCode := func(fl file, e ast.Expr) bool {
		return qualify(fl, e) == module+"/fault.Code"
	}
	for _, fl := range files {
		for _, decl := range fl.f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					key := fl.pkg + "." + name.Name
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						if vs.Type != nil && isFaultCode(fl, vs.Type) && v.Kind == token.STRING {
							values[key], _ = strconv.Unquote(v.Value)
						}
					case *ast.Ident, *ast.SelectorExpr:
						aliases[key] = qualify(fl, v)
					}
				}
			}
		}
	}
	resolve := func(q string) (string, bool) {
		for range 8 {
			if v, ok := values[q]; ok {
				return v, true
			}
			if q = aliases[q]; q == "" {
				return "", false
			}
		}
		return "", false
	}
	u := codeUses{codes: map[string]bool{}, statuses: map[string]map[int]bool{}}
	for _, v := range values {
		u.codes[v] = true
	}
	for _, fl := range files {
		if fl.pkg == module+"/fault" {
			continue
		}
		ast.Inspect(fl.f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			fn := qualify(fl, call.Fun)
			var kindArg, codeArg ast.Expr
			switch {
			case fn == module+"/fault.New" && len(call.Args) >= 2:
				kindArg, codeArg = call.Args[0], call.Args[1]
			case fn == module+"/fault.Wrap" && len(call.Args) >= 3:
				kindArg, codeArg = call.Args[1], call.Args[2]
			default:
				return true
			}
			var code string
			switch c := codeArg.(type) {
			case *ast.BasicLit:
				code, _ = strconv.Unquote(c.Value)
			default:
				var ok bool
				if code, ok = resolve(qualify(fl, c)); !ok {
					// A code passed in a variable: its constant is counted above.
					return true
				}
			}
			u.codes[code] = true
			sel, ok := kindArg.(*ast.SelectorExpr)
			if !ok || qualify(fl, kindArg) != module+"/fault."+sel.Sel.Name {
				return true
			}
			kind, ok := kinds[sel.Sel.Name]
			if !ok {
				t.Errorf("%s: unknown fault kind %s", fset.Position(call.Pos()), sel.Sel.Name)
				return true
			}
			if u.statuses[code] == nil {
				u.statuses[code] = map[int]bool{}
			}
			u.statuses[code][problem.StatusOf(fault.New(kind, fault.Code(code), ""))] = true
			return true
		})
	}
	u.codes[string(fault.CodeInternal)] = true
	u.statuses[string(fault.CodeInternal)] = map[int]bool{problem.StatusOf(os.ErrClosed): true}
	return u
}

// readmeTable reads the README's error table: status → the codes it lists.
func readmeTable(t *testing.T) map[string]map[int]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n### Errors\n")
	if start < 0 {
		t.Fatal("README.md has no \"### Errors\" section")
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n#"); end >= 0 {
		section = section[:end+1]
	}
	row := regexp.MustCompile(`(?m)^\| (\d{3}) \| (.*) \|$`)
	code := regexp.MustCompile("`([a-z][a-z0-9_]*)`")
	table := map[string]map[int]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		status, _ := strconv.Atoi(m[1])
		for _, c := range code.FindAllStringSubmatch(m[2], -1) {
			if table[c[1]] == nil {
				table[c[1]] = map[int]bool{}
			}
			table[c[1]][status] = true
		}
	}
	if len(table) == 0 {
		t.Fatal("the README's error table lists no codes")
	}
	return table
}

// TestREADMEErrorTable: every error code the code base can return is in the
// README's error table, under each HTTP status gateway/problem gives it; the
// table lists no code the code base does not have, nor a status the code
// never has.
func TestREADMEErrorTable(t *testing.T) {
	uses := scanCodes(t)
	table := readmeTable(t)
	if len(uses.codes) < 50 {
		t.Fatalf("found only %d codes in the code base: the scan is broken", len(uses.codes))
	}
	for _, code := range slices.Sorted(maps.Keys(uses.codes)) {
		listed, ok := table[code]
		if !ok {
			t.Errorf("code %s is missing from the README's error table (statuses %v)", code, slices.Sorted(maps.Keys(uses.statuses[code])))
			continue
		}
		for _, status := range slices.Sorted(maps.Keys(uses.statuses[code])) {
			if !listed[status] {
				t.Errorf("code %s has status %d, which the README's error table does not list it under", code, status)
			}
		}
		if known := uses.statuses[code]; known != nil {
			for _, status := range slices.Sorted(maps.Keys(listed)) {
				if !known[status] {
					t.Errorf("the README's error table lists code %s under %d, which it never has (it has %v)", code, status, slices.Sorted(maps.Keys(known)))
				}
			}
		}
	}
	for _, code := range slices.Sorted(maps.Keys(table)) {
		if !uses.codes[code] {
			t.Errorf("the README's error table lists %s, which the code base does not have", code)
		}
	}
}

// TestOpenAPIProblemCodes: every problem code the OpenAPI document lists
// for a response is in the README's error table under that response's
// status, so the document names only codes that exist, with their status.
func TestOpenAPIProblemCodes(t *testing.T) {
	table := readmeTable(t)
	b, err := os.ReadFile(filepath.Join(repoRoot, "gateway", "rest", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	type response struct {
		Ref     string `json:"$ref"`
		Content map[string]struct {
			Schema struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"schema"`
		} `json:"content"`
	}
	var doc struct {
		Paths      map[string]map[string]struct{ Responses map[string]response }
		Components struct{ Responses map[string]response }
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range doc.Paths {
		for method, op := range item {
			for statusText, r := range op.Responses {
				if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
					r = doc.Components.Responses[name]
				}
				status, _ := strconv.Atoi(statusText)
				for _, code := range r.Content["application/problem+json"].Schema.Properties.Code.Enum {
					checked++
					if !table[code][status] {
						t.Errorf("%s %s: the document lists code %s under %d; the README's error table does not", strings.ToUpper(method), path, code, status)
					}
				}
			}
		}
	}
	if checked < 100 {
		t.Fatalf("checked only %d codes of the document: the walk is broken", checked)
	}
}
