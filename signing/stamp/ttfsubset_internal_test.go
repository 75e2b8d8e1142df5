package stamp

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// A composite glyph keeps its components in the subset, and draws as in the
// whole font. Go Regular has no composite glyphs; x/image's test font has.
func TestTTFSubsetCompositeGlyph(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/image").Output()
	if err != nil {
		t.Fatalf("locating golang.org/x/image: %v", err)
	}
	ttf, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "font", "testdata", "glyfTest.ttf"))
	if err != nil {
		t.Fatal(err)
	}
	font, err := parseTTF(ttf)
	if err != nil {
		t.Fatal(err)
	}
	composite := -1
	for g, cs := range font.components {
		if len(cs) > 0 {
			composite = g
			break
		}
	}
	if composite < 0 {
		t.Fatal("the test font has no composite glyph")
	}
	sub := font.subset([]sfnt.GlyphIndex{sfnt.GlyphIndex(composite)})
	orig, err := sfnt.Parse(ttf)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sfnt.Parse(sub)
	if err != nil {
		t.Fatalf("sfnt cannot parse the subset: %v", err)
	}
	kept := map[int]bool{0: true, composite: true}
	for _, c := range font.components[composite] {
		kept[int(c)] = true
	}
	var ob, sb sfnt.Buffer
	ppem := fixed.I(int(orig.UnitsPerEm()))
	for g := range orig.NumGlyphs() {
		want, err := orig.LoadGlyph(&ob, sfnt.GlyphIndex(g), ppem, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = slices.Clone(want)
		got, err := f.LoadGlyph(&sb, sfnt.GlyphIndex(g), ppem, nil)
		if err != nil {
			t.Fatalf("glyph %d of the subset: %v", g, err)
		}
		switch {
		case kept[g] && !reflect.DeepEqual(got, want):
			t.Errorf("glyph %d (kept): outline differs from the original", g)
		case !kept[g] && len(got) != 0:
			t.Errorf("glyph %d (not used): %d outline segments", g, len(got))
		}
	}
	if len(kept) < 3 {
		t.Errorf("composite glyph %d lists no components", composite)
	}
}
