package stamp

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"

	"github.com/sealgate/sealgate/signing/pdf"
)

// pdfaProfile is what a PDF/A document demands of the stamp added to it:
// PDF/A-1 allows no soft masks (ISO 19005-1 §6.4), and every part allows a
// device colour space only when the PDF/A output intent is of that space,
// DeviceGray whenever there is an intent (19005-1 §6.2.3.3, 19005-2
// §6.2.4.3).
type pdfaProfile struct {
	// part is the PDF/A part the document's XMP metadata claims, or 0.
	part int
	// intentN is the number of components of the PDF/A output intent's
	// destination profile (1 gray, 3 RGB, 4 CMYK), or 0 without one.
	intentN int
}

// pdfaNamespace is the XMP namespace of the PDF/A identification schema.
const pdfaNamespace = "http://www.aiim.org/pdfa/ns/id/"

// readPDFAProfile reads the part claimed in the catalog's /Metadata and the
// catalog's PDF/A output intent. Neither may stop a seal: a claim that
// cannot be read counts as none (a document without a readable
// identification is no conforming PDF/A file, so the stamp keeps its usual
// form), and an output intent that cannot be read as none. A readable
// intent is followed even when the claim is not: drawing in the intent's
// colour space suits any document that has one.
func readPDFAProfile(r *pdf.Reader) pdfaProfile {
	_, cat, err := r.Catalog()
	if err != nil {
		return pdfaProfile{}
	}
	return pdfaProfile{part: pdfaPart(r, cat["Metadata"]), intentN: outputIntentComponents(r, cat["OutputIntents"])}
}

// pdfaPart returns the PDF/A part an XMP metadata stream claims, or 0.
func pdfaPart(r *pdf.Reader, o pdf.Object) int {
	m, err := r.Resolve(o)
	s, ok := m.(*pdf.Stream)
	if err != nil || !ok {
		return 0
	}
	data, err := r.StreamData(s)
	if err != nil {
		return 0
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return 0
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		// RDF allows the property as an element of its own or as an
		// attribute of its rdf:Description; producers write both.
		if el.Name.Space == pdfaNamespace && el.Name.Local == "part" {
			var v string
			if d.DecodeElement(&v, &el) != nil {
				return 0
			}
			return partNumber(v)
		}
		for _, a := range el.Attr {
			if a.Name.Space == pdfaNamespace && a.Name.Local == "part" {
				return partNumber(a.Value)
			}
		}
	}
}

func partNumber(s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// outputIntentComponents returns /N of the first PDF/A output intent's
// destination profile when it is 1, 3 or 4, else 0.
func outputIntentComponents(r *pdf.Reader, o pdf.Object) int {
	intents, err := r.Array(o)
	if err != nil {
		return 0
	}
	for _, o := range intents {
		intent, err := r.Dict(o)
		if err != nil || intent.Name("S") != "GTS_PDFA1" {
			continue
		}
		profile, err := r.Dict(intent["DestOutputProfile"])
		if err != nil {
			return 0
		}
		n, err := r.Resolve(profile["N"])
		if v, ok := pdf.Int(n); err == nil && ok && (v == 1 || v == 3 || v == 4) {
			return int(v)
		}
		return 0
	}
	return 0
}

// space is the device colour space the stamp draws in: the output
// intent's, or RGB without one.
func (p pdfaProfile) space() deviceSpace {
	switch p.intentN {
	case 1:
		return deviceGray
	case 4:
		return deviceCMYK
	}
	return deviceRGB
}

// allows tells whether an image in device space s may go in as it is: any
// space without an output intent, else gray or the intent's space.
func (p pdfaProfile) allows(s deviceSpace) bool {
	return p.intentN == 0 || s == deviceGray || s == p.space()
}

// softMasks tells whether images may have a soft mask: not in PDF/A-1.
func (p pdfaProfile) softMasks() bool {
	return p.part != 1
}

// deviceSpace is a device colour space, by its number of components.
type deviceSpace int

// The device colour spaces.
const (
	deviceGray deviceSpace = 1
	deviceRGB  deviceSpace = 3
	deviceCMYK deviceSpace = 4
)

func (s deviceSpace) name() pdf.Name {
	return map[deviceSpace]pdf.Name{deviceGray: "DeviceGray", deviceRGB: "DeviceRGB", deviceCMYK: "DeviceCMYK"}[s]
}

// convert returns the RGB colour r, g, b (0 to 1) in s, in the first s
// components: gray by ISO 32000-1 §10.3.2, CMYK with full black generation
// and undercolour removal (§10.3.4).
func (s deviceSpace) convert(r, g, b float64) [4]float64 {
	switch s {
	case deviceGray:
		return [4]float64{0.3*r + 0.59*g + 0.11*b}
	case deviceCMYK:
		k := 1 - max(r, g, b)
		if k == 1 {
			return [4]float64{0, 0, 0, 1}
		}
		return [4]float64{(1 - r - k) / (1 - k), (1 - g - k) / (1 - k), (1 - b - k) / (1 - k), k}
	}
	return [4]float64{r, g, b}
}

// setColor writes the operator that sets the stroking or the nonstroking
// colour to the RGB colour r, g, b in s.
func (s deviceSpace) setColor(c *bytes.Buffer, stroke bool, r, g, b float64) {
	v := s.convert(r, g, b)
	for _, x := range v[:s] {
		c.WriteString(num(x))
		c.WriteByte(' ')
	}
	op := map[deviceSpace]string{deviceGray: "g", deviceRGB: "rg", deviceCMYK: "k"}[s]
	if stroke {
		op = strings.ToUpper(op)
	}
	c.WriteString(op)
}

// appendPixel appends the RGB colour r, g, b (0 to 0xffff) as 8-bit
// samples in s.
func (s deviceSpace) appendPixel(dst []byte, r, g, b uint32) []byte {
	v := s.convert(float64(r)/0xffff, float64(g)/0xffff, float64(b)/0xffff)
	for _, x := range v[:s] {
		dst = append(dst, byte(x*255+0.5))
	}
	return dst
}
