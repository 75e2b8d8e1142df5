package stamp_test

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// stampFontFile returns the sealed file's stamp font: its name, the
// decoded FontFile2 (checking Length1 gives the decoded length) and the
// decoded CIDSet.
func stampFontFile(t testing.TB, sealed []byte) (name string, file, cidSet []byte) {
	t.Helper()
	r, err := pdf.Open(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	for num := uint32(1); num < r.NextNumber(); num++ {
		o, err := r.Get(pdf.Ref{Num: num})
		if err != nil {
			t.Fatal(err)
		}
		d, ok := o.(pdf.Dict)
		if !ok || d.Name("Type") != "FontDescriptor" {
			continue
		}
		s, data := descriptorStream(t, r, d, "FontFile2")
		if n, _ := pdf.Int(s.Dict["Length1"]); n != int64(len(data)) {
			t.Errorf("Length1 %d, the font file has %d bytes", n, len(data))
		}
		_, bits := descriptorStream(t, r, d, "CIDSet")
		return string(d.Name("FontName")), data, bits
	}
	t.Fatal("the sealed file has no embedded font")
	return "", nil, nil
}

// descriptorStream returns the stream d names by key, and its decoded data.
func descriptorStream(t testing.TB, r *pdf.Reader, d pdf.Dict, key pdf.Name) (*pdf.Stream, []byte) {
	t.Helper()
	o, err := r.Resolve(d[key])
	if err != nil {
		t.Fatal(err)
	}
	s, ok := o.(*pdf.Stream)
	if !ok {
		t.Fatalf("%s is %T, not a stream", key, o)
	}
	data, err := r.StreamData(s)
	if err != nil {
		t.Fatal(err)
	}
	return s, data
}

// sfntTables checks a font's table directory and checksums independently of
// the writer and returns its tables.
func sfntTables(t testing.TB, b []byte) map[string][]byte {
	t.Helper()
	sum := func(b []byte) uint32 {
		b = append(slices.Clone(b), make([]byte, 3)...)
		var s uint32
		for i := 0; i+4 <= len(b); i += 4 {
			s += binary.BigEndian.Uint32(b[i:])
		}
		return s
	}
	if s := sum(b); s != 0xB1B0AFBA {
		t.Errorf("the font sums to %08x, not B1B0AFBA", s)
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	sr, es, rs := binary.BigEndian.Uint16(b[6:]), binary.BigEndian.Uint16(b[8:]), binary.BigEndian.Uint16(b[10:])
	if pow := 1 << es; pow > n || 2*pow <= n || int(sr) != 16*pow || int(rs) != 16*n-int(sr) {
		t.Errorf("%d tables with searchRange %d entrySelector %d rangeShift %d", n, sr, es, rs)
	}
	tables := map[string][]byte{}
	prev := ""
	for i := range n {
		rec := b[12+16*i:]
		tag := string(rec[:4])
		off, length := binary.BigEndian.Uint32(rec[8:]), binary.BigEndian.Uint32(rec[12:])
		if tag <= prev || off%4 != 0 {
			t.Errorf("table %q after %q at offset %d", tag, prev, off)
		}
		prev = tag
		data := b[off : off+length]
		want := sum(data)
		if tag == "head" {
			want -= binary.BigEndian.Uint32(data[8:]) // checkSumAdjustment counts as zero
		}
		if got := binary.BigEndian.Uint32(rec[4:]); got != want {
			t.Errorf("table %q checksum %08x, computed %08x", tag, got, want)
		}
		tables[tag] = data
	}
	return tables
}

// The stamp embeds a subset of Go Regular: the glyphs it draws keep their
// outlines and advances under their original ids, every other glyph is
// empty, the font file is whole (table directory, checksums) and a fraction
// of the original, and equal stamps embed equal fonts.
func TestTTFSubsetStampFont(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	opts := pades.Options{
		Placement: pades.Placement{Page: 1, X: 300, Y: 40, Width: 240, Height: 80},
		Reason:    "Qualitätsprüfung – Ä Ö Ü ß",
		Location:  "Besançon, Île-de-France",
		Time:      time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC),
	}
	doc := pdftest.Bytes(pdftest.Spec{})
	sealed, _ := signingtest.SealPDF(t, key, doc, opts)
	name, sub, cidSet := stampFontFile(t, sealed)
	if !regexp.MustCompile(`^[A-Z]{6}\+GoRegular$`).MatchString(name) {
		t.Errorf("font name %q is not a subset name", name)
	}
	again, _ := signingtest.SealPDF(t, key, doc, opts)
	if name2, sub2, _ := stampFontFile(t, again); name2 != name || !bytes.Equal(sub2, sub) {
		t.Errorf("an equal stamp embeds %s (%d bytes), the first %s (%d bytes)", name2, len(sub2), name, len(sub))
	}
	later := opts
	later.Time = opts.Time.Add(7*time.Hour + 13*time.Minute + 58*time.Second)
	laterSealed, _ := signingtest.SealPDF(t, key, doc, later)
	if name3, sub3, _ := stampFontFile(t, laterSealed); name3 != name || !bytes.Equal(sub3, sub) {
		t.Errorf("a stamp at another time embeds %s (%d bytes), the first %s (%d bytes)", name3, len(sub3), name, len(sub))
	}

	tables := sfntTables(t, sub)
	for _, tag := range []string{"OS/2", "cmap", "cvt ", "fpgm", "glyf", "head", "hhea", "hmtx", "loca", "maxp", "name", "post", "prep"} {
		if tables[tag] == nil {
			t.Errorf("the subset has no %q table", tag)
		}
	}
	orig, err := sfnt.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	f, err := sfnt.Parse(sub)
	if err != nil {
		t.Fatalf("sfnt cannot parse the subset: %v", err)
	}
	if f.NumGlyphs() != orig.NumGlyphs() {
		t.Fatalf("the subset has %d glyphs, the original %d", f.NumGlyphs(), orig.NumGlyphs())
	}
	var ob, sb sfnt.Buffer
	// Every subset carries the digits, so that stamps differing only in
	// their time share one.
	text := "ELECTRONICALLY SEALED" + key.Chain()[0].Subject.Organization[0] + opts.Time.Format(time.DateTime) + " UTC" +
		"Reason: " + opts.Reason + "Location: " + opts.Location + devpki.NotQualified + "0123456789"
	used := map[sfnt.GlyphIndex]bool{0: true} // .notdef is always kept
	for _, r := range text {
		g, err := orig.GlyphIndex(&ob, r)
		if err != nil || g == 0 {
			t.Fatalf("Go Regular has no glyph for %q", r)
		}
		used[g] = true
	}
	ppem := fixed.I(int(orig.UnitsPerEm()))
	drawn := 0
	for i := range orig.NumGlyphs() {
		g := sfnt.GlyphIndex(i)
		want, err := orig.LoadGlyph(&ob, g, ppem, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = slices.Clone(want)
		got, err := f.LoadGlyph(&sb, g, ppem, nil)
		if err != nil {
			t.Fatalf("glyph %d of the subset: %v", g, err)
		}
		if inSet := int(g)/8 < len(cidSet) && cidSet[g/8]&(0x80>>(g%8)) != 0; inSet != used[g] {
			t.Errorf("glyph %d: in CIDSet %v, kept %v", g, inSet, used[g])
		}
		if !used[g] {
			if len(got) != 0 {
				t.Errorf("unused glyph %d has %d outline segments", g, len(got))
			}
			continue
		}
		if len(got) > 0 {
			drawn++
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("glyph %d: outline differs from the original", g)
		}
		wa, _ := orig.GlyphAdvance(&ob, g, ppem, font.HintingNone)
		ga, err := f.GlyphAdvance(&sb, g, ppem, font.HintingNone)
		if err != nil || ga != wa {
			t.Errorf("glyph %d: advance %v (%v), the original %v", g, ga, err, wa)
		}
	}
	deflated := len(pdf.Deflate(sub))
	if drawn < len(used)-1 { // the space has no outline
		t.Errorf("%d of the %d glyphs used have outlines", drawn, len(used))
	}
	t.Logf("%d glyphs kept of %d; font file %d bytes (deflated %d), Go Regular %d bytes (deflated %d)",
		len(used), orig.NumGlyphs(), len(sub), deflated, len(goregular.TTF), len(pdf.Deflate(goregular.TTF)))
	if len(sub)*5 > len(goregular.TTF) || deflated > 16<<10 {
		t.Errorf("the subset has %d bytes (deflated %d), the whole font %d", len(sub), deflated, len(goregular.TTF))
	}
}

// A visible seal embeds the stamp font as a subset that poppler reads: the
// font is embedded and subset, the file passes qpdf --check and pdfsig,
// the stamp's text can be extracted, and the stamp adds a few kilobytes
// to the file, not the whole font.
func TestTTFSubsetEmbedded(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	opts := pades.Options{Reason: "Approved", Location: "Zürich", Time: time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)}
	invisible, _ := signingtest.SealPDF(t, key, doc, opts)
	opts.Placement = pades.Placement{Page: 1, X: 300, Y: 40, Width: 220, Height: 70}
	visible, _ := signingtest.SealPDF(t, key, doc, opts)
	signingtest.CheckIndependently(t, visible, 1)

	file := signingtest.WriteTemp(t, "sealed.pdf", visible)
	fonts, err := exec.Command("pdffonts", file).CombinedOutput()
	if err != nil {
		t.Fatalf("pdffonts: %v\n%s", err, fonts)
	}
	if !regexp.MustCompile(`[A-Z]{6}\+GoRegular\s+CID TrueType\s+Identity-H\s+yes\s+yes\s+yes`).Match(fonts) {
		t.Errorf("the stamp font is not listed as embedded subset with a Unicode map:\n%s", fonts)
	}
	text, err := exec.Command("pdftotext", "-f", "1", "-l", "1", "-enc", "UTF-8", file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	for _, want := range []string{key.Chain()[0].Subject.Organization[0], "Location: Zürich"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("pdftotext does not find %q in the stamp:\n%s", want, text)
		}
	}
	grown := len(visible) - len(invisible)
	t.Logf("the stamp adds %d bytes (Go Regular deflated whole: %d)", grown, len(pdf.Deflate(goregular.TTF)))
	// About 14 KB are the font subset: the glyphs of the heading, the
	// text and the development marking, and the tables a renderer needs.
	if grown > 18<<10 {
		t.Errorf("the visible seal is %d bytes larger than the invisible one", grown)
	}
}
