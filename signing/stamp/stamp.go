// Package stamp draws the visible seal stamp of a PAdES signature: the
// appearance stream (ISO 32000-1 §12.7.4.5 form XObject) with the
// organisation, time, reason, location and logo; the stamp font embedded as
// a TrueType subset with its ToUnicode map and CIDSet; and colours and logo
// kept in the space a PDF/A document's output intent demands. Work shared by
// many stamps (font subsets, logo images) is cached.
package stamp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers the JPEG decoder for image.Decode
	_ "image/png"  // and the PNG decoder
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pdf"
)

// CodeLogoInvalid is reported for a logo that is not a readable PNG or JPEG.
const CodeLogoInvalid fault.Code = "stamp_logo_invalid"

// LogoPosition says where the logo sits in the stamp.
type LogoPosition string

// Logo positions.
const (
	LogoLeft LogoPosition = "left"
	LogoTop  LogoPosition = "top"
)

// Options configure how the stamp looks: its language, time zone, colours,
// font and logo, and the verification hint.
type Options struct {
	// Logo is a PNG (transparency kept) or JPEG image.
	Logo []byte
	// LogoPosition is LogoLeft (default) or LogoTop.
	LogoPosition LogoPosition
	// FontSize in points; zero fits the text into the rectangle. A fixed
	// size is at least MinFontSize.
	FontSize float64
	// Font is the stamp font (see ParseFont), for text beyond Go Regular's
	// Latin, Greek and Cyrillic; nil means Go Regular.
	Font *Font
	// Language of the stamp's wording: LanguageEnglish (default) or
	// LanguageGerman.
	Language Language
	// TimeZone the sealing time is shown in; nil means UTC.
	TimeZone *time.Location
	// Background is the stamp's fill, "#RRGGBB"; empty means a very light
	// blue-grey. The fill is opaque, so page content does not show through.
	Background string
	// VerifyURL, when set, is shown as a verification hint ("Verify: URL"),
	// e.g. the portal where anyone can check a sealed document.
	VerifyURL string
	// QR adds a QR code of VerifyURL.
	QR bool
}

// Language is the language of the stamp's wording.
type Language string

// Stamp languages.
const (
	LanguageEnglish Language = "en"
	LanguageGerman  Language = "de"
)

// wording is what a stamp says besides its content.
type wording struct {
	heading, reason, location, verify, development string
}

var wordings = map[Language]wording{
	LanguageEnglish: {"Electronically sealed", "Reason", "Location", "Verify", devpki.NotQualified},
	LanguageGerman:  {"Elektronisch versiegelt", "Grund", "Ort", "Prüfen", "Entwicklung — nicht qualifiziert"},
}

// CodeTextTooLong is reported for stamp text that does not fit into the
// stamp's rectangle at the smallest readable size, MinFontSize.
const CodeTextTooLong fault.Code = "stamp_text_too_long"

// Font sizes, in points.
const (
	// MinFontSize is the smallest text size a stamp uses: smaller print is
	// not readable on paper.
	MinFontSize = 6.0
	// maxStampFont is the largest font size Options accept.
	maxStampFont = 200
	// fitMaxFont is where fitting starts: large enough for any stamp.
	fitMaxFont = 11.0
)

// defaultBackground is a very light blue-grey: the stamp stands out from
// white paper and a QR code on it still scans.
var defaultBackground = [3]float64{0.965, 0.973, 0.988}

// Validate checks the options as a stamp uses them. Each error's message
// starts with the option's name (logoPosition, fontSize, logo, language, background, verifyURL, qr), so that a configuration can point
// at the setting.
func (o Options) Validate() error {
	invalid := func(format string, args ...any) error {
		return fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, format, args...)
	}
	switch o.LogoPosition {
	case "", LogoLeft, LogoTop:
	default:
		return invalid("logoPosition: %q is not left or top", o.LogoPosition)
	}
	if o.FontSize != 0 && !(o.FontSize >= MinFontSize && o.FontSize <= maxStampFont) {
		return invalid("fontSize: %g is not 0 (fit) or between %g and %d points", o.FontSize, MinFontSize, maxStampFont)
	}
	if _, ok := wordings[o.language()]; !ok {
		return invalid("language: %q is not en or de", o.Language)
	}
	if _, err := o.background(); err != nil {
		return invalid("background: %v", err)
	}
	if o.VerifyURL != "" {
		u, err := url.Parse(o.VerifyURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return invalid("verifyURL: %q is not an http or https URL", o.VerifyURL)
		}
	}
	if o.QR {
		if o.VerifyURL == "" {
			return invalid("qr: a QR code needs verifyURL")
		}
		if _, err := verifyQR(o.VerifyURL); err != nil {
			return invalid("%v", err)
		}
	}
	if len(o.Logo) > 0 {
		if _, err := cachedLogo(o.Logo, pdfaProfile{}); err != nil {
			msg := err.Error()
			if e := fault.As(err); e != nil {
				msg = e.Msg
			}
			return fault.New(fault.Invalid, CodeLogoInvalid, "logo: %s", msg)
		}
	}
	return nil
}

func (o Options) language() Language {
	if o.Language == "" {
		return LanguageEnglish
	}
	return o.Language
}

// background returns the fill colour, RGB from 0 to 1.
func (o Options) background() ([3]float64, error) {
	if o.Background == "" {
		return defaultBackground, nil
	}
	var c [3]float64
	s, ok := strings.CutPrefix(o.Background, "#")
	v, err := strconv.ParseUint(s, 16, 32)
	if !ok || len(s) != 6 || err != nil {
		return c, fmt.Errorf("%q is not a colour #RRGGBB", o.Background)
	}
	for i := range c {
		c[i] = float64(v>>(16-8*i)&0xff) / 255
	}
	return c, nil
}

// Content is what a stamp says.
type Content struct {
	// Signer is the seal certificate; its organisation (else common name)
	// heads the stamp, and a development certificate is marked as such.
	Signer *x509.Certificate
	// Time is the sealing time.
	Time time.Time
	// Reason and Location are shown when not empty.
	Reason, Location string
}

// Stamp is a stamp ready to be drawn into one document: what it says, how
// it looks, and what the document (PDF/A) demands of it.
type Stamp struct {
	paras []paragraph
	font  *parsedFont
	bg    [3]float64
	qr    *qrPath
	opts  Options
	pdfa  pdfaProfile
}

// New prepares the stamp for doc, the document it will be added to. It
// refuses text the stamp font cannot draw (CodeGlyphMissing), naming the
// field and the character; the options must have passed Validate.
func New(doc *pdf.Reader, c Content, o Options) (*Stamp, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Stamp{opts: o, pdfa: readPDFAProfile(doc)}
	s.font = o.Font.parsed()
	s.bg, _ = o.background()
	if o.QR {
		s.qr, _ = verifyQR(o.VerifyURL)
	}
	words := wordings[o.language()]
	org := c.Signer.Subject.CommonName
	if len(c.Signer.Subject.Organization) > 0 && c.Signer.Subject.Organization[0] != "" {
		org = c.Signer.Subject.Organization[0]
	}
	zone := o.TimeZone
	if zone == nil {
		zone = time.UTC
	}
	when := c.Time.In(zone).Format("2006-01-02 15:04:05 MST")
	if z, _ := c.Time.In(zone).Zone(); strings.HasPrefix(z, "+") || strings.HasPrefix(z, "-") {
		when = c.Time.In(zone).Format("2006-01-02 15:04:05 UTC-07:00") // a zone without an abbreviation
	}
	type part struct {
		field, text string
		role        role
	}
	parts := []part{
		{"heading", strings.ToUpper(words.heading), roleHeading},
		{"organisation", org, roleOrganisation},
		{"time", when, roleBody},
	}
	if c.Reason != "" {
		parts = append(parts, part{"reason", words.reason + ": " + c.Reason, roleBody})
	}
	if c.Location != "" {
		parts = append(parts, part{"location", words.location + ": " + c.Location, roleBody})
	}
	if o.VerifyURL != "" {
		parts = append(parts, part{"verifyURL", words.verify + ": " + o.VerifyURL, roleHint})
	}
	if developmentSeal(c.Signer) {
		parts = append(parts, part{"development marking", words.development, roleDevelopment})
	}
	e := s.font.use()
	for _, p := range parts {
		if err := e.checkGlyphs(p.field, p.text); err != nil {
			return nil, err
		}
		s.paras = append(s.paras, newParagraph(e, p.field, p.text, p.role))
	}
	return s, nil
}

// developmentSeal tells whether cert is of the development PKI, which marks
// every certificate it issues as not qualified.
func developmentSeal(cert *x509.Certificate) bool {
	for _, ou := range cert.Subject.OrganizationalUnit {
		if strings.Contains(ou, devpki.NotQualified) {
			return true
		}
	}
	return false
}

// Colours of the stamp, RGB from 0 to 1: a dark blue for the frame and the
// heading, near-black text, a dark red for the development marking.
var (
	colourAccent = [3]float64{0.11, 0.23, 0.45}
	colourRule   = [3]float64{0.62, 0.69, 0.80}
	colourText   = [3]float64{0.10, 0.12, 0.18}
	colourQR     = [3]float64{0.04, 0.06, 0.12}
	colourDev    = [3]float64{0.70, 0.10, 0.10}
)

// Appearance adds the stamp's form XObject for a w×h rectangle (displayed
// orientation, drawn through matrix) to u and returns its reference. It
// draws in the colour space the document's PDF/A output intent asks for.
// Text that does not fit at MinFontSize (or at the configured size) is
// refused with CodeTextTooLong, before anything is added to u.
func (s *Stamp) Appearance(u *pdf.Update, w, h float64, matrix pdf.Array) (pdf.Ref, error) {
	pad := min(max(0.08*min(w, h), 3), 8)
	tx, ty, tw, th := pad, pad, w-2*pad, h-2*pad
	var logoBox, qrBox [4]float64
	if len(s.opts.Logo) > 0 {
		if s.opts.LogoPosition == LogoTop {
			logoBox = [4]float64{tx, ty + th*0.7, tw, th * 0.3}
			th -= logoBox[3] + pad/2
		} else {
			// A quarter of the width at most: the text is what is read.
			side := min(th*0.8, tw*0.24)
			logoBox = [4]float64{tx, ty + (th-side)/2, side, side}
			tx += side + 1.5*pad
			tw -= side + 1.5*pad
		}
	}
	if s.qr != nil {
		side := min(th, tw*0.3)
		qrBox = [4]float64{tx + tw - side, ty + (th-side)/2, side, side}
		tw -= side + pad
	}
	lay, err := s.fit(w, h, tw, th)
	if err != nil {
		return pdf.Ref{}, err
	}

	res := pdf.Dict{}
	space := s.pdfa.space()
	var c bytes.Buffer
	c.WriteString("q\n")
	setColour(&c, space, true, colourAccent)
	setColour(&c, space, false, s.bg)
	c.WriteString("1 w\n")
	roundedRect(&c, 0.5, 0.5, w-1, h-1, min(3, h/8))
	c.WriteString("b\n")
	if len(s.opts.Logo) > 0 {
		logo, iw, ih, err := logoImage(u, s.opts.Logo, s.pdfa)
		if err != nil {
			return pdf.Ref{}, err
		}
		res["XObject"] = pdf.Dict{"Logo": logo}
		bx, by, bw, bh := logoBox[0], logoBox[1], logoBox[2], logoBox[3]
		scale := min(bw/float64(iw), bh/float64(ih))
		dw, dh := float64(iw)*scale, float64(ih)*scale
		fmt.Fprintf(&c, "q %s 0 0 %s %s %s cm /Logo Do Q\n", num(dw), num(dh), num(bx+(bw-dw)/2), num(by+(bh-dh)/2))
		if s.opts.LogoPosition != LogoTop {
			// A hairline sets the logo apart from the text.
			setColour(&c, space, true, colourRule)
			x := tx - 0.75*pad
			fmt.Fprintf(&c, "0.5 w %s %s m %s %s l S\n", num(x), num(pad), num(x), num(h-pad))
		}
	}
	if s.qr != nil {
		m := qrBox[2] / float64(s.qr.modules)
		c.WriteString("q ")
		setColour(&c, space, false, colourQR)
		fmt.Fprintf(&c, " %s 0 0 %s %s %s cm\n", num(m), num(m), num(qrBox[0]), num(qrBox[1]))
		c.Write(s.qr.path)
		c.WriteString("Q\n")
	}
	s.draw(&c, space, lay, tx, ty, tw, th)
	c.WriteString("Q\n")
	res["Font"] = pdf.Dict{"F1": lay.font.embed(u)}
	// A few kilobytes at most: compressing them would cost more time than
	// the bytes are worth.
	return u.Add(&pdf.Stream{
		Dict: pdf.Dict{
			"Type":      pdf.Name("XObject"),
			"Subtype":   pdf.Name("Form"),
			"BBox":      pdf.Array{pdf.Integer(0), pdf.Integer(0), pdf.Real(w), pdf.Real(h)},
			"Matrix":    matrix,
			"Resources": res,
		},
		Data: c.Bytes(),
	}), nil
}

// roundedRect appends a closed rectangle path with corners of radius r,
// drawn with Bézier quarter circles.
func roundedRect(c *bytes.Buffer, x, y, w, h, r float64) {
	k := r * (1 - 0.5523) // distance from the corner to each control point
	fmt.Fprintf(c, "%s %s m\n", num(x+r), num(y))
	fmt.Fprintf(c, "%s %s l %s %s %s %s %s %s c\n", num(x+w-r), num(y), num(x+w-k), num(y), num(x+w), num(y+k), num(x+w), num(y+r))
	fmt.Fprintf(c, "%s %s l %s %s %s %s %s %s c\n", num(x+w), num(y+h-r), num(x+w), num(y+h-k), num(x+w-k), num(y+h), num(x+w-r), num(y+h))
	fmt.Fprintf(c, "%s %s l %s %s %s %s %s %s c\n", num(x+r), num(y+h), num(x+k), num(y+h), num(x), num(y+h-k), num(x), num(y+h-r))
	fmt.Fprintf(c, "%s %s l %s %s %s %s %s %s c h\n", num(x), num(y+r), num(x), num(y+k), num(x+k), num(y), num(x+r), num(y))
}

func setColour(c *bytes.Buffer, space deviceSpace, stroke bool, rgb [3]float64) {
	space.setColor(c, stroke, rgb[0], rgb[1], rgb[2])
	c.WriteByte('\n')
}

func num(f float64) string {
	return string(pdf.AppendObject(nil, pdf.Real(f)))
}

// logoXObject is a logo made into image XObject data for one kind of
// document (see pdfaProfile), ready to be added to updates.
type logoXObject struct {
	image  *pdf.Stream
	mask   *pdf.Stream // soft mask, or nil
	width  int
	height int
}

// logoCache keeps logos made into images: a configured logo is the same on
// every stamp, and decoding and compressing it can cost more than the seal.
var logoCache = newBoundedCache[*logoXObject](16)

// logoImage adds the logo as an image XObject the way the document allows
// it and returns it with its size in pixels.
func logoImage(u *pdf.Update, data []byte, pdfa pdfaProfile) (pdf.Ref, int, int, error) {
	l, err := cachedLogo(data, pdfa)
	if err != nil {
		return pdf.Ref{}, 0, 0, err
	}
	dict := l.image.Dict.Clone()
	if l.mask != nil {
		dict["SMask"] = u.Add(&pdf.Stream{Dict: l.mask.Dict.Clone(), Data: l.mask.Data})
	}
	return u.Add(&pdf.Stream{Dict: dict, Data: l.image.Data}), l.width, l.height, nil
}

// cachedLogo is makeLogo, once per logo and kind of document.
func cachedLogo(data []byte, pdfa pdfaProfile) (*logoXObject, error) {
	sum := sha256.Sum256(data)
	key := fmt.Sprintf("%x/%d/%t", sum, pdfa.intentN, pdfa.softMasks())
	return logoCache.get(key, func() (*logoXObject, error) { return makeLogo(data, pdfa) })
}

// makeLogo makes the logo into an image for the document (see
// pdfaProfile): a JPEG whose colour space is allowed as it is (DCTDecode);
// any other logo decoded to samples in the stamp's colour space, with the
// PNG's alpha channel as a soft mask, or composited onto white where soft
// masks are not allowed.
func makeLogo(data []byte, pdfa pdfaProfile) (*logoXObject, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width == 0 || cfg.Height == 0 {
		return nil, fault.New(fault.Invalid, CodeLogoInvalid, "the stamp logo is not a readable PNG or JPEG image")
	}
	if format != "png" && format != "jpeg" {
		return nil, fault.New(fault.Invalid, CodeLogoInvalid, "the stamp logo is %s; PNG or JPEG is needed", strings.ToUpper(format))
	}
	if format == "jpeg" {
		space, dict := deviceRGB, pdf.Dict{}
		switch cfg.ColorModel {
		case color.GrayModel:
			space = deviceGray
		case color.CMYKModel:
			// Adobe writes CMYK JPEGs inverted (§8.9.5.2).
			space = deviceCMYK
			dict["Decode"] = pdf.Array{pdf.Integer(1), pdf.Integer(0), pdf.Integer(1), pdf.Integer(0), pdf.Integer(1), pdf.Integer(0), pdf.Integer(1), pdf.Integer(0)}
		}
		if pdfa.allows(space) {
			for k, v := range imageDict(cfg.Width, cfg.Height, space.name()) {
				dict[k] = v
			}
			dict["Filter"] = pdf.Name("DCTDecode")
			return &logoXObject{image: &pdf.Stream{Dict: dict, Data: data}, width: cfg.Width, height: cfg.Height}, nil
		}
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeLogoInvalid, "the stamp logo %s cannot be decoded", strings.ToUpper(format))
	}
	space := pdfa.space()
	b := img.Bounds()
	samples := make([]byte, 0, b.Dx()*b.Dy()*int(space))
	alpha := make([]byte, 0, b.Dx()*b.Dy())
	opaque := true
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			switch {
			case a == 0xffff:
			case !pdfa.softMasks():
				// Over white: the premultiplied colour plus the white showing through.
				r, g, bl = r+0xffff-a, g+0xffff-a, bl+0xffff-a
			case a > 0:
				// Undo premultiplication so colours under partial transparency stay true.
				r, g, bl = r*0xffff/a, g*0xffff/a, bl*0xffff/a
			}
			samples = space.appendPixel(samples, r, g, bl)
			alpha = append(alpha, byte(a>>8))
			opaque = opaque && a == 0xffff
		}
	}
	dict := imageDict(b.Dx(), b.Dy(), space.name())
	dict["Filter"] = pdf.Name("FlateDecode")
	l := &logoXObject{image: &pdf.Stream{Dict: dict, Data: pdf.Deflate(samples)}, width: b.Dx(), height: b.Dy()}
	if !opaque && pdfa.softMasks() {
		mask := imageDict(b.Dx(), b.Dy(), deviceGray.name())
		mask["Filter"] = pdf.Name("FlateDecode")
		l.mask = &pdf.Stream{Dict: mask, Data: pdf.Deflate(alpha)}
	}
	return l, nil
}

func imageDict(w, h int, cs pdf.Name) pdf.Dict {
	return pdf.Dict{
		"Type":             pdf.Name("XObject"),
		"Subtype":          pdf.Name("Image"),
		"Width":            pdf.Integer(w),
		"Height":           pdf.Integer(h),
		"ColorSpace":       cs,
		"BitsPerComponent": pdf.Integer(8),
	}
}
