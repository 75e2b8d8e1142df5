package gateway

import (
	"net/url"
	"strconv"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/signing/pades"
)

// applyOptions reads the seal options named in DESIGN.md from query or
// multipart fields: seal, format, level, and for PAdES field, page, x, y,
// width, height, reason, location, and certify (a certification seal with
// its DocMDP permission). Values are checked for form here; what
// they mean (does the page exist?) is for the sealing path to judge.
func applyOptions(req *seal.Request, v url.Values) error {
	req.Seal = v.Get("seal")
	req.Format = seal.Format(v.Get("format"))
	req.Level = seal.Level(v.Get("level"))
	pdf := &req.PDF
	pdf.Field = v.Get("field")
	pdf.Reason = v.Get("reason")
	pdf.Location = v.Get("location")
	certify, err := pades.ParsePermission(v.Get("certify"))
	if err != nil {
		return err
	}
	pdf.Certify = certify
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fault.New(fault.Invalid, CodeBadRequest, "page %q is not a page number (1, 2, ...)", s)
		}
		pdf.Placement.Page = n
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"x", &pdf.Placement.X}, {"y", &pdf.Placement.Y}, {"width", &pdf.Placement.Width}, {"height", &pdf.Placement.Height}} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil || x < 0 || x > 14400 {
			return fault.New(fault.Invalid, CodeBadRequest, "%s %q is not a length in PDF units between 0 and 14400", f.name, s)
		}
		*f.dst = x
	}
	return nil
}
