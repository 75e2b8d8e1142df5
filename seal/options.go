package seal

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pades"
)

// CodeBadRequest is the code of a request whose options are malformed: an
// unknown or repeated option, a value that is not a number, out of range,
// too long or not text — in every transport.
const CodeBadRequest fault.Code = "bad_request"

// MaxTextLength bounds each text option (seal, field, name, reason,
// location) in bytes of UTF-8, whichever transport carries it: a sentence
// of reason fits, a stamp or signature dictionary stays readable.
const MaxTextLength = 1024

// maxCoordinate bounds stamp coordinates and sizes in PDF units: ISO 32000
// pages are at most 14,400 units a side.
const maxCoordinate = 14400

// optionNames are the options a seal request takes, as transports name them.
var optionNames = []string{"seal", "format", "level", "name", "field", "page", "x", "y", "width", "height", "reason", "location", "certify"}

// RectNames are the options of a stamp's rectangle, in the order x, y,
// width, height.
func RectNames() []string { return []string{"x", "y", "width", "height"} }

// OptionNames are the options ParseOptions takes, as transports name them
// (query parameters, multipart fields, and as far as they go, CLI flags).
func OptionNames() []string { return slices.Clone(optionNames) }

// ParseOptions sets req's options from named fields as a transport carries
// them: seal, format, level, name, field, page, x, y, width, height, reason,
// location and certify (no-changes, form-filling or annotations). An empty
// value counts as not given. Unknown and repeated options are refused, so a
// typo never silently falls back to a default, and a rectangle is given
// whole (a page alone would put a stamp over the page's content). The
// result is checked as CheckOptions does; every error names the option and
// has the code bad_request (pades_option_invalid for certify).
func ParseOptions(req *Request, fields map[string][]string) error {
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(optionNames, name) {
			return fault.New(fault.Invalid, CodeBadRequest, "unknown option %q: the options are %s", name, strings.Join(optionNames, ", "))
		}
		if n := len(fields[name]); n > 1 {
			return fault.New(fault.Invalid, CodeBadRequest, "option %q is given %d times: give it once", name, n)
		}
	}
	get := func(name string) string {
		if v := fields[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	req.Seal = get("seal")
	req.Format = Format(get("format"))
	req.Level = Level(get("level"))
	if name := get("name"); name != "" {
		req.Name = name
	}
	pdf := &req.PDF
	pdf.Field, pdf.Reason, pdf.Location = get("field"), get("reason"), get("location")
	certify, err := pades.ParsePermission(get("certify"))
	if err != nil {
		return err
	}
	pdf.Certify = certify
	if s := get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fault.New(fault.Invalid, CodeBadRequest, "page: %q is not a page number (1, 2, ...)", s)
		}
		pdf.Placement.Page = n
	}
	given, rectNames := 0, RectNames()
	for i, dst := range []*float64{&pdf.Placement.X, &pdf.Placement.Y, &pdf.Placement.Width, &pdf.Placement.Height} {
		s := get(rectNames[i])
		if s == "" {
			continue
		}
		given++
		x, err := strconv.ParseFloat(s, 64)
		if err != nil && !isRangeError(err) {
			return fault.New(fault.Invalid, CodeBadRequest, "%s: %q is not a number", rectNames[i], s)
		}
		// A value too large for a float64 is ±Inf here: CheckOptions names it.
		*dst = x
	}
	if given > 0 && given < len(rectNames) {
		return fault.New(fault.Invalid, CodeBadRequest, "the stamp's rectangle needs all of x, y, width and height; %d of them are given", given)
	}
	return req.CheckOptions()
}

func isRangeError(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// CheckOptions checks req's options however the transport filled them in,
// before anything is read or signed: text options are valid UTF-8 without
// control characters and at most MaxTextLength bytes; the stamp's
// rectangle is finite, within a page's possible size, has an area and
// comes with a page; a page and an existing field exclude each other. Whether
// the page exists and the rectangle fits on it is for the signing to judge.
func (r *Request) CheckOptions() error {
	for _, t := range []struct{ name, value string }{
		{"seal", r.Seal}, {"name", r.Name}, {"field", r.PDF.Field}, {"reason", r.PDF.Reason}, {"location", r.PDF.Location},
	} {
		if err := checkText(t.name, t.value); err != nil {
			return err
		}
	}
	pl, rectNames := r.PDF.Placement, RectNames()
	if pl.Page < 0 {
		return fault.New(fault.Invalid, CodeBadRequest, "page: %d is not a page number (1, 2, ...)", pl.Page)
	}
	for i, v := range []float64{pl.X, pl.Y, pl.Width, pl.Height} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fault.New(fault.Invalid, CodeBadRequest, "%s: %g is not a finite number", rectNames[i], v)
		}
		if v < 0 || v > maxCoordinate {
			return fault.New(fault.Invalid, CodeBadRequest, "%s: %g is not between 0 and %d PDF units", rectNames[i], v, maxCoordinate)
		}
	}
	hasRect := pl != (pades.Placement{Page: pl.Page})
	switch {
	case pl.Page == 0 && hasRect:
		return fault.New(fault.Invalid, CodeBadRequest, "the stamp's rectangle needs page: the page to put the stamp on (1, 2, ...)")
	case pl.Page > 0 && r.PDF.Field != "":
		return fault.New(fault.Invalid, CodeBadRequest, "page and field exclude each other: the signature field %q has its own place", r.PDF.Field)
	case pl.Page > 0 && (pl.Width == 0 || pl.Height == 0):
		return fault.New(fault.Invalid, CodeBadRequest, "page %d needs the stamp's rectangle with an area: give x, y, width and height (PDF units from the page's lower-left corner), or instead of page name an existing signature field with field", pl.Page)
	}
	return nil
}

// checkText refuses text a stamp or signature dictionary should not carry:
// invalid UTF-8 or control characters (NUL, ESC, line breaks, ...) would be
// drawn as garbage or cut the text, and very long text is unreadable.
func checkText(name, s string) error {
	if len(s) > MaxTextLength {
		return fault.New(fault.Invalid, CodeBadRequest, "%s: %d bytes is longer than the limit of %d bytes", name, len(s), MaxTextLength)
	}
	if !utf8.ValidString(s) {
		return fault.New(fault.Invalid, CodeBadRequest, "%s: not valid UTF-8 text", name)
	}
	for i, c := range s {
		if unicode.IsControl(c) {
			return fault.New(fault.Invalid, CodeBadRequest, "%s: control character %U at byte %d is not allowed", name, c, i)
		}
	}
	return nil
}
