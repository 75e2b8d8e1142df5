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
	"strings"
	"time"

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

// Options configure how the stamp looks: an optional logo and its
// position, and the font size.
type Options struct {
	// Logo is a PNG (transparency kept) or JPEG image.
	Logo []byte
	// LogoPosition is LogoLeft (default) or LogoTop.
	LogoPosition LogoPosition
	// FontSize in points; zero fits the text into the rectangle.
	FontSize float64
}

// maxStampFont is the largest font size Options accept, in points.
const maxStampFont = 200

// Validate checks the options as a stamp uses them: a known logo position,
// a font size from 0 (fit) to 200 points, a logo that decodes as PNG or
// JPEG. Each error's message starts with the option's name (logoPosition,
// fontSize, logo), so that a configuration can point at the setting.
func (o Options) Validate() error {
	switch o.LogoPosition {
	case "", LogoLeft, LogoTop:
	default:
		return fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "logoPosition: %q is not left or top", o.LogoPosition)
	}
	if o.FontSize < 0 || o.FontSize > maxStampFont {
		return fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "fontSize: %g is not between 0 (fit) and %d points", o.FontSize, maxStampFont)
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

// Content is what a stamp says.
type Content struct {
	// Signer is the seal certificate; its organisation (else common name)
	// heads the stamp.
	Signer *x509.Certificate
	// Time is the sealing time.
	Time time.Time
	// Reason and Location are shown when not empty.
	Reason, Location string
}

// Stamp is a stamp ready to be drawn into one document: what it says, how
// it looks, and what the document (PDF/A) demands of it.
type Stamp struct {
	lines []string
	opts  Options
	pdfa  pdfaProfile
}

// New prepares the stamp for doc, the document it will be added to.
func New(doc *pdf.Reader, c Content, o Options) *Stamp {
	org := c.Signer.Subject.CommonName
	if len(c.Signer.Subject.Organization) > 0 && c.Signer.Subject.Organization[0] != "" {
		org = c.Signer.Subject.Organization[0]
	}
	lines := []string{org, "Sealed " + c.Time.UTC().Format(time.DateTime) + " UTC"}
	if c.Reason != "" {
		lines = append(lines, "Reason: "+c.Reason)
	}
	if c.Location != "" {
		lines = append(lines, "Location: "+c.Location)
	}
	return &Stamp{lines: lines, opts: o, pdfa: readPDFAProfile(doc)}
}

// Stamp geometry, as fractions of the rectangle.
const (
	stampPadding    = 0.06
	stampLineHeight = 1.25
	stampMaxFont    = 14.0
	stampMinFont    = 2.0
)

// Appearance adds the stamp's form XObject for a w×h rectangle (displayed
// orientation, drawn through matrix) to u and returns its reference. It
// draws in the colour space the document's PDF/A output intent asks for.
func (s *Stamp) Appearance(u *pdf.Update, w, h float64, matrix pdf.Array) (pdf.Ref, error) {
	pad := stampPadding * min(w, h)
	res := pdf.Dict{}
	space := s.pdfa.space()
	var c bytes.Buffer
	c.WriteString("q\n")
	space.setColor(&c, true, 0.20, 0.25, 0.45)
	c.WriteString(" 0.8 w\n")
	fmt.Fprintf(&c, "0.4 0.4 %s %s re S\n", num(w-0.8), num(h-0.8))
	tx, ty, tw, th := pad, pad, w-2*pad, h-2*pad
	if len(s.opts.Logo) > 0 {
		logo, iw, ih, err := logoImage(u, s.opts.Logo, s.pdfa)
		if err != nil {
			return pdf.Ref{}, err
		}
		res["XObject"] = pdf.Dict{"Logo": logo}
		var bx, by, bw, bh float64
		if s.opts.LogoPosition == LogoTop {
			bx, by, bw, bh = pad, h-pad-th*0.4, tw, th*0.4
			th -= bh + pad
		} else {
			bx, by, bw, bh = pad, pad, min(th, tw*0.35), th
			tx += bw + pad
			tw -= bw + pad
		}
		scale := min(bw/float64(iw), bh/float64(ih))
		dw, dh := float64(iw)*scale, float64(ih)*scale
		fmt.Fprintf(&c, "q %s 0 0 %s %s %s cm /Logo Do Q\n", num(dw), num(dh), num(bx+(bw-dw)/2), num(by+(bh-dh)/2))
	}
	font := stampFont()
	size := s.opts.FontSize
	if size <= 0 {
		size = stampMaxFont
		for _, l := range s.lines {
			if lw := font.width(l); lw > 0 {
				size = min(size, tw*1000/lw)
			}
		}
		size = min(size, th/(stampLineHeight*float64(len(s.lines))))
		size = max(size, stampMinFont)
	}
	c.WriteString("BT ")
	space.setColor(&c, false, 0.10, 0.12, 0.30)
	c.WriteString("\n")
	fmt.Fprintf(&c, "/F1 %s Tf\n", num(size))
	lead := size * stampLineHeight
	// Center the block of lines vertically in the text area.
	top := ty + th/2 + lead*float64(len(s.lines))/2
	for i, l := range s.lines {
		y := top - lead*float64(i+1) + (lead-size)/2 + size*0.22
		fmt.Fprintf(&c, "1 0 0 1 %s %s Tm <%s> Tj\n", num(tx), num(y), font.encode(l))
	}
	c.WriteString("ET\nQ\n")
	res["Font"] = pdf.Dict{"F1": font.embed(u)}
	// A few hundred bytes: compressing them would cost more time than the
	// bytes are worth.
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
