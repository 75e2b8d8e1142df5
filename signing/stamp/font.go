package stamp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pdf"
)

// The stamp's text is set in Go Regular (BSD licence, which permits
// embedding) or in the configured stamp font, embedded as a subset of the
// glyphs the stamp draws, as a CIDFontType2 with Identity-H encoding so that
// any name the seal certificate carries can be drawn, and with a ToUnicode
// map so the stamp's text can be copied and searched. An embedded font keeps
// PDF/A inputs conforming where a standard-14 font would not.

// defaultFontName is Go Regular's PostScript name.
const defaultFontName = "GoRegular"

// CodeGlyphMissing is reported for stamp text with a character the stamp
// font cannot draw: it would show as an empty box.
const CodeGlyphMissing fault.Code = "stamp_glyph_missing"

// parsedFont is a font file parsed once, for metrics and for subsetting.
type parsedFont struct {
	f       *sfnt.Font
	ttf     *ttfFont
	name    string // PostScript name, for BaseFont
	id      string // a digest of the file: subsets of different fonts differ
	upem    float64
	ascent  float64
	descent float64
	capH    float64
	bbox    [4]float64
}

var loadDefaultFont = sync.OnceValue(func() *parsedFont {
	p, err := parseFont(goregular.TTF)
	if err != nil {
		panic(fmt.Sprintf("signing: embedded Go Regular font: %v", err)) // a build-time constant
	}
	return p
})

// Font is a stamp font, parsed once (when the configuration is read): a
// CJK font has tens of thousands of glyphs.
type Font struct {
	p *parsedFont
}

// ParseFont reads a TrueType-outlined font file (.ttf, or .otf with a glyf
// table) for Options.Font. OpenType fonts with CFF outlines and font
// collections are refused.
func ParseFont(data []byte) (*Font, error) {
	p, err := parseFont(data)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, signing.CodePAdESOptionInvalid, "font: %v", err)
	}
	return &Font{p: p}, nil
}

// parsed returns the font, or Go Regular for nil.
func (f *Font) parsed() *parsedFont {
	if f == nil {
		return loadDefaultFont()
	}
	return f.p
}

// parseFont reads a TrueType-outlined font file: OpenType fonts with CFF
// outlines and font collections are refused, since the subsetter cuts glyf
// tables.
func parseFont(data []byte) (*parsedFont, error) {
	if len(data) >= 4 {
		switch string(data[:4]) {
		case "OTTO":
			return nil, errors.New("the font has CFF (PostScript) outlines; the stamp needs a TrueType-outlined font (a glyf table), e.g. a .ttf file")
		case "ttcf":
			return nil, errors.New("the file is a font collection (TTC); the stamp needs a single TrueType font")
		}
	}
	ttf, err := parseTTF(data)
	if err != nil {
		return nil, err
	}
	f, err := sfnt.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("ttf: %w", err)
	}
	var buf sfnt.Buffer
	upem := float64(f.UnitsPerEm())
	ppem := fixed.Int26_6(f.UnitsPerEm()) << 6
	m, err := f.Metrics(&buf, ppem, font.HintingNone)
	if err != nil {
		return nil, fmt.Errorf("ttf: %w", err)
	}
	b, err := f.Bounds(&buf, ppem, font.HintingNone)
	if err != nil {
		return nil, fmt.Errorf("ttf: %w", err)
	}
	scale := func(v fixed.Int26_6) float64 { return float64(v) / 64 * 1000 / upem }
	sum := sha256.Sum256(data)
	return &parsedFont{
		f:       f,
		ttf:     ttf,
		name:    postScriptName(f, &buf),
		id:      string(sum[:8]),
		upem:    upem,
		ascent:  scale(m.Ascent),
		descent: -scale(m.Descent),
		capH:    scale(m.CapHeight),
		// sfnt's y axis points down; PDF's points up.
		bbox: [4]float64{scale(b.Min.X), -scale(b.Max.Y), scale(b.Max.X), -scale(b.Min.Y)},
	}, nil
}

// postScriptName is the font's PostScript name as a PDF name may carry it
// (ISO 32000-1 §9.6.2.1: no spaces), or "StampFont" without one.
func postScriptName(f *sfnt.Font, buf *sfnt.Buffer) string {
	n, _ := f.Name(buf, sfnt.NameIDPostScript)
	n = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' || strings.ContainsRune("()<>[]{}/%#", r) {
			return -1
		}
		return r
	}, n)
	if n == "" {
		return "StampFont"
	}
	return n
}

// embeddedFont is one use of the stamp font: it records the glyphs encoded
// so that the font dictionary lists their widths and Unicode values.
type embeddedFont struct {
	p    *parsedFont
	buf  sfnt.Buffer
	used map[sfnt.GlyphIndex]rune
}

func (p *parsedFont) use() *embeddedFont {
	return &embeddedFont{p: p, used: map[sfnt.GlyphIndex]rune{}}
}

func (e *embeddedFont) glyph(r rune) (sfnt.GlyphIndex, float64) {
	g, err := e.p.f.GlyphIndex(&e.buf, r)
	if err != nil {
		g = 0
	}
	adv, err := e.p.f.GlyphAdvance(&e.buf, g, fixed.Int26_6(e.p.upem)<<6, font.HintingNone)
	if err != nil {
		return g, 0
	}
	return g, float64(adv) / 64 * 1000 / e.p.upem
}

// checkGlyphs refuses text (the stamp's field) with a character the font
// has no glyph for, and right-to-left text, which the stamp would draw in
// the wrong order: it does no bidirectional layout or shaping.
func (e *embeddedFont) checkGlyphs(field, text string) error {
	for _, r := range text {
		if unicode.In(r, unicode.Arabic, unicode.Hebrew, unicode.Syriac, unicode.Thaana, unicode.Nko) {
			return fault.New(fault.Invalid, CodeGlyphMissing, "%s: the character U+%04X %q is right-to-left script, which the stamp cannot lay out", field, r, r)
		}
		if g, err := e.p.f.GlyphIndex(&e.buf, r); err != nil || g == 0 {
			return fault.New(fault.Invalid, CodeGlyphMissing, "%s: the stamp font %s has no glyph for U+%04X %q; configure a stamp font (seal.stamp.font) that has it", field, e.p.name, r, r)
		}
	}
	return nil
}

// encode returns s as hex glyph ids for a Tj operator.
func (e *embeddedFont) encode(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		g, _ := e.glyph(r)
		if _, ok := e.used[g]; !ok {
			e.used[g] = r
		}
		fmt.Fprintf(&b, "%04X", uint16(g))
	}
	return b.String()
}

// stampAlwaysGlyphs are in every subset besides the glyphs drawn: the
// digits of the date line. Stamps of the same organisation, reason and
// location then share one subset whatever the time, and it is cut and
// compressed once (see subsetCache).
const stampAlwaysGlyphs = "0123456789"

// fontSubset is what the font objects of a stamp need that depends only on
// the glyphs it draws (and the characters they stand for): the subset font
// file, its CIDSet and ToUnicode map, compressed, and the glyphs' widths.
type fontSubset struct {
	tag      string // the six-letter subset tag of §9.6.4
	length   int    // bytes of the font file before compression (Length1)
	deflated []byte
	// cidSet is the compressed /CIDSet bit string (ISO 32000-1 §9.8.3): one
	// bit per CID, high bit first, set for the glyphs the subset keeps.
	// PDF/A-1 requires it for a subset CIDFont (ISO 19005-1 §6.3.5).
	cidSet []byte
	// toUnicode is the compressed ToUnicode CMap of the glyphs drawn.
	toUnicode []byte
	widths    pdf.Array
}

// subsetCache keeps the font objects of recent stamps, keyed by the glyphs
// drawn and their characters: cutting and compressing them costs more than
// the rest of a stamp.
var subsetCache = newBoundedCache[*fontSubset](64)

// subset returns the font objects' data for the glyphs encoded so far.
func (e *embeddedFont) subset() *fontSubset {
	glyphs := slices.Sorted(maps.Keys(e.used))
	key := make([]byte, 0, len(e.p.id)+6*len(glyphs))
	key = append(key, e.p.id...)
	for _, g := range glyphs {
		key = binary.BigEndian.AppendUint16(key, uint16(g))
		key = binary.BigEndian.AppendUint32(key, uint32(e.used[g]))
	}
	sub, _ := subsetCache.get(string(key), func() (*fontSubset, error) {
		return e.makeSubset(glyphs), nil
	})
	return sub
}

// makeSubset cuts the font for glyphs and the digits, and writes the maps.
func (e *embeddedFont) makeSubset(glyphs []sfnt.GlyphIndex) *fontSubset {
	p := e.p
	all := slices.Clone(glyphs)
	for _, r := range stampAlwaysGlyphs {
		g, _ := e.glyph(r)
		all = append(all, g)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	file := p.ttf.subset(all)
	sub := &fontSubset{tag: subsetTag(all), length: len(file), deflated: pdf.Deflate(file)}

	keep := p.ttf.closure(all)
	last := 0
	for g, k := range keep {
		if k {
			last = g
		}
	}
	cidSet := make([]byte, last/8+1)
	for g, k := range keep {
		if k {
			cidSet[g/8] |= 0x80 >> (g % 8)
		}
	}
	sub.cidSet = pdf.Deflate(cidSet)

	var cmap bytes.Buffer
	cmap.WriteString("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n" +
		"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n" +
		"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n" +
		"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
	for i := 0; i < len(glyphs); i += 100 {
		chunk := glyphs[i:min(i+100, len(glyphs))]
		fmt.Fprintf(&cmap, "%d beginbfchar\n", len(chunk))
		for _, g := range chunk {
			fmt.Fprintf(&cmap, "<%04X> <%s>\n", uint16(g), utf16Hex(e.used[g]))
		}
		cmap.WriteString("endbfchar\n")
	}
	cmap.WriteString("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
	sub.toUnicode = pdf.Deflate(cmap.Bytes())

	for _, g := range glyphs {
		adv, _ := p.f.GlyphAdvance(&e.buf, g, fixed.Int26_6(p.upem)<<6, font.HintingNone)
		sub.widths = append(sub.widths, pdf.Integer(g), pdf.Array{pdf.Real(float64(adv) / 64 * 1000 / p.upem)})
	}
	return sub
}

// embed adds the font objects for the glyphs encoded so far, with a subset
// of the font holding just those glyphs.
func (e *embeddedFont) embed(u *pdf.Update) pdf.Ref {
	p := e.p
	sub := e.subset()
	name := pdf.Name(sub.tag + "+" + p.name)
	flate := func(data []byte, extra pdf.Dict) pdf.Ref {
		dict := pdf.Dict{"Filter": pdf.Name("FlateDecode")}
		for k, v := range extra {
			dict[k] = v
		}
		return u.Add(&pdf.Stream{Dict: dict, Data: data})
	}
	desc := u.Add(pdf.Dict{
		"Type":        pdf.Name("FontDescriptor"),
		"FontName":    name,
		"Flags":       pdf.Integer(32), // nonsymbolic
		"FontBBox":    pdf.Rect(p.bbox).Array(),
		"ItalicAngle": pdf.Integer(0),
		"Ascent":      pdf.Real(p.ascent),
		"Descent":     pdf.Real(p.descent),
		"CapHeight":   pdf.Real(p.capH),
		"StemV":       pdf.Integer(80),
		"FontFile2":   flate(sub.deflated, pdf.Dict{"Length1": pdf.Integer(sub.length)}),
		"CIDSet":      flate(sub.cidSet, nil),
	})
	cid := u.Add(pdf.Dict{
		"Type":           pdf.Name("Font"),
		"Subtype":        pdf.Name("CIDFontType2"),
		"BaseFont":       name,
		"CIDSystemInfo":  pdf.Dict{"Registry": pdf.String("Adobe"), "Ordering": pdf.String("Identity"), "Supplement": pdf.Integer(0)},
		"FontDescriptor": desc,
		"W":              sub.widths,
		"CIDToGIDMap":    pdf.Name("Identity"),
	})
	return u.Add(pdf.Dict{
		"Type":            pdf.Name("Font"),
		"Subtype":         pdf.Name("Type0"),
		"BaseFont":        name,
		"Encoding":        pdf.Name("Identity-H"),
		"DescendantFonts": pdf.Array{cid},
		"ToUnicode":       flate(sub.toUnicode, nil),
	})
}

func utf16Hex(r rune) string {
	if r >= 0x10000 {
		r -= 0x10000
		return fmt.Sprintf("%04X%04X", 0xd800+(r>>10), 0xdc00+(r&0x3ff))
	}
	return fmt.Sprintf("%04X", r)
}
