package stamp

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"unicode"

	"github.com/sealgate/sealgate/fault"
)

// role is what a paragraph of the stamp is, and so how it is set.
type role int

// Stamp paragraphs, top to bottom.
const (
	roleHeading role = iota
	roleOrganisation
	roleBody
	roleHint
	roleDevelopment
)

// style is how a role is set: its size as a multiple of the stamp's base
// size, extra space between letters (thousandths of the size), colour, and
// whether it is drawn bold — by stroking the glyph outlines as well, which
// needs no second font.
type style struct {
	scale    float64
	tracking float64
	colour   [3]float64
	bold     bool
}

// size is the role's size at base size base: never below MinFontSize.
func (st style) size(base float64) float64 {
	return max(base*st.scale, MinFontSize)
}

var styles = map[role]style{
	roleHeading:      {scale: 0.82, tracking: 70, colour: colourAccent, bold: true},
	roleOrganisation: {scale: 1.12, colour: colourText, bold: true},
	roleBody:         {scale: 1, colour: colourText},
	roleHint:         {scale: 0.88, colour: colourAccent},
	roleDevelopment:  {scale: 0.88, colour: colourDev, bold: true},
}

// Vertical rhythm: line height as a multiple of the line's size, and the
// space taken by the rule under the heading, of the base size.
const (
	lineHeight   = 1.22
	headingSpace = 0.45
)

// paragraph is one piece of the stamp's text with each character's advance
// (thousandths of the font size, tracking included), measured once so that
// fitting the text at several sizes costs no font lookups.
type paragraph struct {
	field string
	role  role
	runes []rune
	adv   []float64
	cjk   []bool // whether a line may break before or after the character
}

func newParagraph(e *embeddedFont, field, text string, r role) paragraph {
	p := paragraph{field: field, role: r, runes: []rune(text)}
	p.adv = make([]float64, len(p.runes))
	p.cjk = make([]bool, len(p.runes))
	for i, c := range p.runes {
		_, a := e.glyph(c)
		p.adv[i] = a + styles[r].tracking
		p.cjk[i] = cjk(c)
	}
	return p
}

// wrap breaks p into lines no wider than width (thousandths of the font
// size): at spaces, after a slash or hyphen, and between CJK characters,
// else (a word longer than a line) between any two characters. It returns
// each line's [start, end) in p.runes, and false when a single character
// is wider than width.
func (p paragraph) wrap(width float64) ([][2]int, bool) {
	var lines [][2]int
	start := 0
	for start < len(p.runes) {
		w, brk, next := 0.0, -1, -1
		end := len(p.runes)
		for i := start; i < len(p.runes); i++ {
			r := p.runes[i]
			if r == ' ' {
				brk, next = i, i+1 // a space may hang past the edge
				w += p.adv[i]
				continue
			}
			if i > start && (p.cjk[i] || p.cjk[i-1]) {
				brk, next = i, i
			}
			w += p.adv[i]
			if w > width {
				if i == start {
					return nil, false
				}
				if brk <= start {
					brk, next = i, i
				}
				end = brk
				break
			}
			if r == '/' || r == '-' {
				brk, next = i+1, i+1
			}
		}
		if end == len(p.runes) {
			next = end
		}
		lines = append(lines, [2]int{start, end})
		start = next
		for start < len(p.runes) && p.runes[start] == ' ' {
			start++
		}
	}
	return lines, true
}

// cjk tells whether a line may break before or after r: ideographs and
// kana are written without spaces.
func cjk(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// layout is the stamp's text set at one base size.
type layout struct {
	size   float64
	height float64
	lines  []setLine
	font   *embeddedFont
}

// setLine is one line of a layout.
type setLine struct {
	role role
	text string
}

// setText wraps paras at base size size into a tw-point-wide column, and
// returns the layout, or false when a character is wider than the column.
func setText(paras []paragraph, size, tw float64) (layout, bool) {
	lay := layout{size: size}
	for _, p := range paras {
		st := styles[p.role]
		fs := st.size(size)
		lines, ok := p.wrap(tw * 1000 / fs)
		if !ok {
			return lay, false
		}
		for _, l := range lines {
			lay.lines = append(lay.lines, setLine{role: p.role, text: string(p.runes[l[0]:l[1]])})
		}
		lay.height += float64(len(lines)) * fs * lineHeight
		if p.role == roleHeading {
			lay.height += size * headingSpace
		}
	}
	return lay, true
}

// fit sets the text at the configured size, or at the largest size from
// fitMaxFont down to MinFontSize at which it fits into tw×th points. When
// nothing fits, a small stamp (an existing signature field, say) goes
// without the verification hint, then without the heading: what it says
// — who sealed, when, why, where, and a development seal's marking — is
// kept whole or refused.
func (s *Stamp) fit(w, h, tw, th float64) (layout, error) {
	sizes := []float64{s.opts.FontSize}
	if s.opts.FontSize == 0 {
		sizes = sizes[:0]
		for size := fitMaxFont; size >= MinFontSize; size -= 0.25 {
			sizes = append(sizes, size)
		}
	}
	paras := s.paras
	for _, drop := range []role{-1, roleHint, roleHeading} {
		paras = slices.DeleteFunc(slices.Clone(paras), func(p paragraph) bool { return p.role == drop })
		// Smaller text never needs more room: the largest size that fits
		// is found by bisection.
		var best layout
		i := sort.Search(len(sizes), func(i int) bool {
			lay, ok := setText(paras, sizes[i], tw)
			if ok && lay.height <= th {
				best = lay
				return true
			}
			return false
		})
		if i < len(sizes) {
			if best.size != sizes[i] {
				best, _ = setText(paras, sizes[i], tw)
			}
			best.font = s.font.use()
			return best, nil
		}
	}
	return layout{}, tooLong(paras, sizes[len(sizes)-1], w, h, tw, th)
}

// tooLong explains why paras (the heading and hint dropped, so the
// organisation first) do not fit at size: it names the longest of the
// caller's fields (reason, location, else the organisation), and the sizes
// involved.
func tooLong(paras []paragraph, size, w, h, tw, th float64) error {
	blame := paras[0]
	for _, p := range paras {
		if (p.field == "reason" || p.field == "location") && (blame.field == "organisation" || len(p.runes) > len(blame.runes)) {
			blame = p
		}
	}
	if tw <= 0 || th <= 0 {
		return fault.New(fault.Invalid, CodeTextTooLong, "%s: the %g × %g point stamp leaves no room for text beside its logo and QR code", blame.field, w, h)
	}
	lay, ok := setText(paras, size, tw)
	if !ok {
		return fault.New(fault.Invalid, CodeTextTooLong, "%s: the %g × %g point stamp is too narrow for its text at %g points, the smallest readable size", blame.field, w, h, size)
	}
	return fault.New(fault.Invalid, CodeTextTooLong, "%s (%d characters) is too long for the %g × %g point stamp: at %g points, the smallest readable size, its text needs %.0f points of height and %.0f are free; shorten it or enlarge the stamp",
		blame.field, len(blame.runes), w, h, size, lay.height, th)
}

// draw writes the layout's text, centred vertically in the text area
// tx, ty, tw, th, with the rule under the heading.
func (s *Stamp) draw(c *bytes.Buffer, space deviceSpace, lay layout, tx, ty, tw, th float64) {
	y := ty + th/2 + lay.height/2
	prev := role(-1)
	for i, l := range lay.lines {
		st := styles[l.role]
		fs := st.size(lay.size)
		lead := fs * lineHeight
		baseline := y - lead + (lead-fs)/2 + fs*0.22
		y -= lead
		c.WriteString("BT\n")
		if l.role != prev {
			setColour(c, space, false, st.colour)
			if st.bold {
				setColour(c, space, true, st.colour)
			}
		}
		if st.bold {
			fmt.Fprintf(c, "2 Tr %s w ", num(fs*0.035))
		} else {
			c.WriteString("0 Tr ")
		}
		fmt.Fprintf(c, "%s Tc /F1 %s Tf 1 0 0 1 %s %s Tm <%s> Tj\nET\n", num(st.tracking*fs/1000), num(fs), num(tx), num(baseline), lay.font.encode(l.text))
		if l.role == roleHeading && (i+1 == len(lay.lines) || lay.lines[i+1].role != roleHeading) {
			gap := lay.size * headingSpace
			setColour(c, space, true, colourRule)
			fmt.Fprintf(c, "0.5 w %s %s m %s %s l S\n", num(tx), num(y-gap/2), num(tx+tw), num(y-gap/2))
			y -= gap
			prev = -1 // the rule changed the stroking colour
			continue
		}
		prev = l.role
	}
}
