package stamp

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"golang.org/x/image/font/sfnt"
)

// A TrueType subsetter for the stamp font (ISO 32000-1 §9.6.4, §9.9): it
// keeps the glyphs a stamp draws, .notdef and the components of composite
// glyphs, and empties every other glyph. Glyph ids stay as they are, so a
// CIDFontType2 with CIDToGIDMap /Identity and its W array describe the
// subset exactly as they describe the whole font. The sfnt layout follows
// the OpenType specification (table directory, loca/glyf, head).

// ttfKeepTables are the tables a subset carries: what renderers and PDF/A
// need. Layout tables (kern, GPOS, GSUB, GDEF) and device metrics (hdmx,
// LTSH, VDMX) are left out; a PDF positions each glyph itself. post keeps
// its header only (format 3): a CIDFontType2 selects glyphs by id, never by
// name.
var ttfKeepTables = []string{"OS/2", "cmap", "cvt ", "fpgm", "gasp", "glyf", "head", "hhea", "hmtx", "loca", "maxp", "name", "post", "prep"}

// ttfRequiredTables are the tables a TrueType font cannot do without.
var ttfRequiredTables = []string{"cmap", "glyf", "head", "hhea", "hmtx", "loca", "maxp"}

// Table fields and sizes.
const (
	headCheckSumAdjustment = 8
	headIndexToLocFormat   = 50
	headLength             = 54
	postHeaderLength       = 32
	ttfChecksumMagic       = 0xB1B0AFBA
)

// Composite glyph component flags.
const (
	compArgsAreWords  = 0x0001
	compHaveScale     = 0x0008
	compMoreComponent = 0x0020
	compHaveXYScale   = 0x0040
	compHaveTwoByTwo  = 0x0080
)

// ttfFont is a TrueType font checked once, from which subsets are cut.
type ttfFont struct {
	tables map[string][]byte
	// glyphs is each glyph's glyf data, empty for a glyph without outline.
	glyphs [][]byte
	// components lists, for a composite glyph, the glyphs it is built of.
	components [][]sfnt.GlyphIndex
}

// parseTTF reads a TrueType font's table directory and glyphs, checking
// every offset so that subsetting it cannot fail.
func parseTTF(b []byte) (*ttfFont, error) {
	if len(b) < 12 {
		return nil, errors.New("ttf: shorter than an sfnt header")
	}
	if v := binary.BigEndian.Uint32(b); v != 0x00010000 && v != 0x74727565 { // 'true'
		return nil, fmt.Errorf("ttf: sfnt version %08x is not TrueType outlines", v)
	}
	n := int(binary.BigEndian.Uint16(b[4:]))
	if len(b) < 12+16*n {
		return nil, errors.New("ttf: table directory truncated")
	}
	f := &ttfFont{tables: map[string][]byte{}}
	for i := range n {
		rec := b[12+16*i:]
		tag := string(rec[:4])
		off, length := uint64(binary.BigEndian.Uint32(rec[8:])), uint64(binary.BigEndian.Uint32(rec[12:]))
		if off+length > uint64(len(b)) {
			return nil, fmt.Errorf("ttf: table %q lies beyond the file", tag)
		}
		if slices.Contains(ttfKeepTables, tag) {
			f.tables[tag] = b[off : off+length]
		}
	}
	for _, tag := range ttfRequiredTables {
		if f.tables[tag] == nil {
			return nil, fmt.Errorf("ttf: no %q table", tag)
		}
	}
	head, maxp, post := f.tables["head"], f.tables["maxp"], f.tables["post"]
	if len(head) < headLength || len(maxp) < 6 || post != nil && len(post) < postHeaderLength {
		return nil, errors.New("ttf: head, maxp or post table truncated")
	}
	numGlyphs := int(binary.BigEndian.Uint16(maxp[4:]))
	offsets, err := locaOffsets(f.tables["loca"], binary.BigEndian.Uint16(head[headIndexToLocFormat:]), numGlyphs)
	if err != nil {
		return nil, err
	}
	glyf := f.tables["glyf"]
	f.glyphs = make([][]byte, numGlyphs)
	f.components = make([][]sfnt.GlyphIndex, numGlyphs)
	for g := range numGlyphs {
		start, end := offsets[g], offsets[g+1]
		if start > end || end > uint32(len(glyf)) {
			return nil, fmt.Errorf("ttf: glyph %d lies outside the glyf table", g)
		}
		data := glyf[start:end]
		if len(data) > 0 && len(data) < 10 {
			return nil, fmt.Errorf("ttf: glyph %d is shorter than a glyph header", g)
		}
		f.glyphs[g] = data
		if len(data) > 0 && int16(binary.BigEndian.Uint16(data)) < 0 {
			if f.components[g], err = glyphComponents(data, numGlyphs); err != nil {
				return nil, fmt.Errorf("ttf: composite glyph %d: %w", g, err)
			}
		}
	}
	return f, nil
}

// locaOffsets decodes the loca table: numGlyphs+1 offsets into glyf, as
// 16-bit halves (format 0) or 32-bit values (format 1).
func locaOffsets(loca []byte, format uint16, numGlyphs int) ([]uint32, error) {
	offsets := make([]uint32, numGlyphs+1)
	switch format {
	case 0:
		if len(loca) < 2*len(offsets) {
			return nil, errors.New("ttf: loca table truncated")
		}
		for i := range offsets {
			offsets[i] = 2 * uint32(binary.BigEndian.Uint16(loca[2*i:]))
		}
	case 1:
		if len(loca) < 4*len(offsets) {
			return nil, errors.New("ttf: loca table truncated")
		}
		for i := range offsets {
			offsets[i] = binary.BigEndian.Uint32(loca[4*i:])
		}
	default:
		return nil, fmt.Errorf("ttf: unknown indexToLocFormat %d", format)
	}
	return offsets, nil
}

// glyphComponents lists the glyphs a composite glyph refers to.
func glyphComponents(data []byte, numGlyphs int) ([]sfnt.GlyphIndex, error) {
	var comps []sfnt.GlyphIndex
	p := 10 // after the glyph header
	for {
		if p+4 > len(data) {
			return nil, errors.New("component record truncated")
		}
		flags, g := binary.BigEndian.Uint16(data[p:]), binary.BigEndian.Uint16(data[p+2:])
		if int(g) >= numGlyphs {
			return nil, fmt.Errorf("component glyph %d does not exist", g)
		}
		comps = append(comps, sfnt.GlyphIndex(g))
		p += 4 + 2
		if flags&compArgsAreWords != 0 {
			p += 2
		}
		switch {
		case flags&compHaveScale != 0:
			p += 2
		case flags&compHaveXYScale != 0:
			p += 4
		case flags&compHaveTwoByTwo != 0:
			p += 8
		}
		if p > len(data) {
			return nil, errors.New("component record truncated")
		}
		if flags&compMoreComponent == 0 {
			return comps, nil
		}
	}
}

// closure marks the glyphs a subset for use keeps: those, .notdef and the
// components of composite glyphs among them. Glyph ids out of range are
// ignored.
func (f *ttfFont) closure(use []sfnt.GlyphIndex) []bool {
	keep := make([]bool, len(f.glyphs))
	var visit func(g sfnt.GlyphIndex)
	visit = func(g sfnt.GlyphIndex) {
		if int(g) >= len(keep) || keep[g] {
			return
		}
		keep[g] = true
		for _, c := range f.components[g] {
			visit(c)
		}
	}
	visit(0)
	for _, g := range use {
		visit(g)
	}
	return keep
}

// subset returns a TrueType font in which only the glyphs closure keeps
// have outlines.
func (f *ttfFont) subset(use []sfnt.GlyphIndex) []byte {
	keep := f.closure(use)
	var glyf []byte
	offsets := make([]int, len(f.glyphs)+1)
	for g, data := range f.glyphs {
		if keep[g] {
			glyf = append(glyf, data...)
			glyf = append(glyf, make([]byte, pad4(len(glyf)))...) // keep each glyph 4-byte aligned
		}
		offsets[g+1] = len(glyf)
	}
	var loca []byte
	format := uint16(0)
	if len(glyf)/2 > 0xFFFF {
		format = 1
	}
	for _, o := range offsets {
		if format == 0 {
			loca = binary.BigEndian.AppendUint16(loca, uint16(o/2))
		} else {
			loca = binary.BigEndian.AppendUint32(loca, uint32(o))
		}
	}
	head := slices.Clone(f.tables["head"])
	binary.BigEndian.PutUint32(head[headCheckSumAdjustment:], 0)
	binary.BigEndian.PutUint16(head[headIndexToLocFormat:], format)

	tables := maps.Clone(f.tables)
	tables["glyf"], tables["loca"], tables["head"] = glyf, loca, head
	if post := f.tables["post"]; post != nil {
		post = slices.Clone(post[:postHeaderLength])
		binary.BigEndian.PutUint32(post, 0x00030000)
		tables["post"] = post
	}
	return writeSfnt(tables)
}

// writeSfnt lays out a TrueType font: the table directory with tags in
// ascending order, then each table 4-byte aligned; last it sets head's
// checkSumAdjustment so that the whole font sums to the magic number.
func writeSfnt(tables map[string][]byte) []byte {
	tags := slices.Sorted(maps.Keys(tables))
	n := len(tags)
	entrySelector := 0
	for 2<<entrySelector <= n {
		entrySelector++
	}
	searchRange := 16 << entrySelector
	out := binary.BigEndian.AppendUint32(nil, 0x00010000)
	out = binary.BigEndian.AppendUint16(out, uint16(n))
	out = binary.BigEndian.AppendUint16(out, uint16(searchRange))
	out = binary.BigEndian.AppendUint16(out, uint16(entrySelector))
	out = binary.BigEndian.AppendUint16(out, uint16(16*n-searchRange))
	off, headAt := 12+16*n, 0
	for _, tag := range tags {
		data := tables[tag]
		if tag == "head" {
			headAt = off
		}
		out = append(out, tag...)
		out = binary.BigEndian.AppendUint32(out, ttfChecksum(data))
		out = binary.BigEndian.AppendUint32(out, uint32(off))
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		off += len(data) + pad4(len(data))
	}
	for _, tag := range tags {
		out = append(out, tables[tag]...)
		out = append(out, make([]byte, pad4(len(out)))...)
	}
	binary.BigEndian.PutUint32(out[headAt+headCheckSumAdjustment:], ttfChecksumMagic-ttfChecksum(out))
	return out
}

// pad4 is the number of zero bytes that align n to four.
func pad4(n int) int { return -n & 3 }

// ttfChecksum is the sfnt checksum: the sum of big-endian 32-bit words,
// the last one padded with zeros.
func ttfChecksum(b []byte) uint32 {
	var sum uint32
	for len(b) >= 4 {
		sum += binary.BigEndian.Uint32(b)
		b = b[4:]
	}
	var last [4]byte
	copy(last[:], b)
	return sum + binary.BigEndian.Uint32(last[:])
}

// subsetTag is the six capital letters a subset font's name starts with
// (ISO 32000-1 §9.6.4), derived from the glyphs used so that equal stamps
// produce equal bytes.
func subsetTag(use []sfnt.GlyphIndex) string {
	h := sha256.New()
	for _, g := range slices.Sorted(slices.Values(use)) {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(g)))
	}
	sum := h.Sum(nil)
	tag := make([]byte, 6)
	for i := range tag {
		tag[i] = 'A' + sum[i]%26
	}
	return string(tag)
}
