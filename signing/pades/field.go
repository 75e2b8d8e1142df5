package pades

import (
	"fmt"
	"math"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pdf"
)

// sigField is a signature field found in the AcroForm.
type sigField struct {
	name   string // fully qualified
	ref    pdf.Ref
	dict   pdf.Dict
	signed bool
}

// signatureFields lists the AcroForm's signature fields, walking /Kids.
func signatureFields(r *pdf.Reader) ([]sigField, error) {
	fields, _, err := formFields(r)
	return fields, err
}

// formFields lists the AcroForm's signature fields, and the fully
// qualified names of all its fields, of any type (lower case: a new field
// must not clash with any of them, ISO 32000-1 §12.7.3.2).
func formFields(r *pdf.Reader) ([]sigField, map[string]bool, error) {
	names := map[string]bool{}
	_, cat, err := r.Catalog()
	if err != nil {
		return nil, nil, err
	}
	form, err := r.Dict(cat["AcroForm"])
	if err != nil || form == nil {
		return nil, names, err
	}
	roots, err := r.Array(form["Fields"])
	if err != nil {
		return nil, names, err
	}
	var out []sigField
	seen := map[pdf.Ref]bool{}
	var walk func(o pdf.Object, prefix string, ft pdf.Name, depth int) error
	walk = func(o pdf.Object, prefix string, ft pdf.Name, depth int) error {
		ref, _ := o.(pdf.Ref)
		if depth > 32 || seen[ref] && ref != (pdf.Ref{}) {
			return nil
		}
		seen[ref] = true
		d, err := r.Dict(o)
		if err != nil || d == nil {
			return err
		}
		name := prefix
		if t, ok := d["T"].(pdf.String); ok {
			if name != "" {
				name += "."
			}
			name += pdf.DecodeText(t)
			names[strings.ToLower(name)] = true
		}
		if v := d.Name("FT"); v != "" {
			ft = v
		}
		kids, err := r.Array(d["Kids"])
		if err != nil {
			return err
		}
		// A field's kids are either fields (with /T) or its widgets.
		hasFieldKids := false
		for _, k := range kids {
			if kd, _ := r.Dict(k); kd != nil {
				if _, ok := kd["T"]; ok {
					hasFieldKids = true
				}
			}
		}
		if hasFieldKids {
			for _, k := range kids {
				if err := walk(k, name, ft, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		if ft == "Sig" {
			// A value that cannot be read still marks the field signed: the
			// verifier must report it, not skip it.
			v, err := r.Resolve(d["V"])
			_, isNull := v.(pdf.Null)
			out = append(out, sigField{name: name, ref: ref, dict: d, signed: err != nil || (v != nil && !isNull)})
		}
		return nil
	}
	for _, f := range roots {
		if err := walk(f, "", "", 0); err != nil {
			return nil, nil, err
		}
	}
	return out, names, nil
}

// placeField attaches the signature sigRef to the field spec names, or to a
// new field, and returns the field's name.
func placeField(u *pdf.Update, sigRef pdf.Ref, spec signatureSpec) (string, error) {
	r := u.Reader()
	fields, names, err := formFields(r)
	if err != nil {
		return "", err
	}
	if spec.field != "" {
		return fillField(u, sigRef, fields, spec)
	}
	name := uniqueFieldName(names, spec.dict.Name("Type"))
	pageNo := spec.placement.Page
	if pageNo == 0 {
		pageNo = 1 // an invisible widget still sits on a page
	}
	page, err := r.Page(pageNo)
	if err != nil {
		return "", err
	}
	widget := pdf.Dict{
		"Type":    pdf.Name("Annot"),
		"Subtype": pdf.Name("Widget"),
		"FT":      pdf.Name("Sig"),
		"T":       pdf.TextString(name),
		"V":       sigRef,
		"F":       pdf.Integer(132), // Print | Locked
		"P":       page.Ref,
		"Rect":    pdf.Rect{}.Array(),
	}
	if spec.placement.Page != 0 {
		p := spec.placement
		for _, v := range []float64{p.X, p.Y, p.Width, p.Height} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return "", fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "stamp rectangle %g,%g sized %gx%g is not made of finite numbers", p.X, p.Y, p.Width, p.Height)
			}
		}
		if p.Width <= 0 || p.Height <= 0 {
			return "", fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "stamp rectangle %gx%g on page %d has no area", p.Width, p.Height, p.Page)
		}
		if p.Width < minStampWidth || p.Height < minStampHeight {
			return "", fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "stamp rectangle %gx%g is smaller than %gx%g points: nothing could be read in it", p.Width, p.Height, float64(minStampWidth), float64(minStampHeight))
		}
		w, h := page.CropBox[2]-page.CropBox[0], page.CropBox[3]-page.CropBox[1]
		if page.Rotate == 90 || page.Rotate == 270 {
			w, h = h, w
		}
		if p.X < 0 || p.Y < 0 || p.X+p.Width > w+0.5 || p.Y+p.Height > h+0.5 {
			return "", fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "stamp rectangle at %g,%g sized %gx%g does not fit page %d (%gx%g points as displayed)", p.X, p.Y, p.Width, p.Height, p.Page, w, h)
		}
		rect, matrix := userRect(page, p)
		widget["Rect"] = rect.Array()
		if spec.stamp != nil {
			ap, err := spec.stamp.Appearance(u, p.Width, p.Height, matrix)
			if err != nil {
				return "", err
			}
			widget["AP"] = pdf.Dict{"N": ap}
		}
	} else {
		widget["AP"] = pdf.Dict{"N": emptyAppearance(u)}
	}
	wref := u.Add(widget)
	pd := page.Dict.Clone()
	annots, err := r.Array(pd["Annots"])
	if err != nil {
		return "", err
	}
	pd["Annots"] = append(append(pdf.Array{}, annots...), wref)
	u.Set(page.Ref, pd)
	if err := updateAcroForm(u, wref); err != nil {
		return "", err
	}
	return name, nil
}

// fillField signs an existing empty signature field.
func fillField(u *pdf.Update, sigRef pdf.Ref, fields []sigField, spec signatureSpec) (string, error) {
	var f *sigField
	for i := range fields {
		if fields[i].name == spec.field {
			f = &fields[i]
		}
	}
	if f == nil {
		return "", fault.New(fault.NotFound, CodeFieldUnknown, "the document has no signature field %q", spec.field)
	}
	if f.signed {
		return "", fault.New(fault.Conflict, CodeFieldSigned, "signature field %q is already signed", spec.field)
	}
	if f.ref == (pdf.Ref{}) {
		return "", fault.New(fault.Invalid, signing.CodePDFMalformed, "signature field %q is not an indirect object", spec.field)
	}
	d := f.dict.Clone()
	d["V"] = sigRef
	r := u.Reader()
	// The widget is the field itself (merged) or its first kid.
	wref, wd := f.ref, d
	if kids, _ := r.Array(d["Kids"]); len(kids) > 0 {
		if kr, ok := kids[0].(pdf.Ref); ok {
			kd, err := r.Dict(kr)
			if err != nil {
				return "", err
			}
			wref, wd = kr, kd.Clone()
		}
	}
	if rect, err := fieldRect(r, wd); err == nil && rect[2]-rect[0] > 0 && rect[3]-rect[1] > 0 && spec.stamp != nil {
		w, h := rect[2]-rect[0], rect[3]-rect[1]
		matrix := pdf.Array{pdf.Integer(1), pdf.Integer(0), pdf.Integer(0), pdf.Integer(1), pdf.Integer(0), pdf.Integer(0)}
		if page, err := widgetPage(r, wd); err == nil && page.Rotate != 0 {
			matrix = rotationMatrix(page.Rotate)
			if page.Rotate%180 != 0 {
				w, h = h, w
			}
		}
		ap, err := spec.stamp.Appearance(u, w, h, matrix)
		if err != nil {
			return "", err
		}
		wd["AP"] = pdf.Dict{"N": ap}
	}
	u.Set(f.ref, d)
	if wref != f.ref {
		u.Set(wref, wd)
	}
	if err := updateAcroForm(u, pdf.Ref{}); err != nil {
		return "", err
	}
	return f.name, nil
}

func fieldRect(r *pdf.Reader, d pdf.Dict) (pdf.Rect, error) {
	a, err := r.Array(d["Rect"])
	if err != nil || len(a) != 4 {
		return pdf.Rect{}, fault.New(fault.Invalid, signing.CodePDFMalformed, "widget has no rectangle")
	}
	var v pdf.Rect
	for i, e := range a {
		e, _ = r.Resolve(e)
		v[i], _ = pdf.Number(e)
	}
	return pdf.Rect{min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])}, nil
}

// widgetPage finds the page a widget's /P names.
func widgetPage(r *pdf.Reader, w pdf.Dict) (*pdf.Page, error) {
	pref, ok := w["P"].(pdf.Ref)
	if !ok {
		return nil, fault.New(fault.Invalid, signing.CodePDFMalformed, "widget names no page")
	}
	n, err := r.PageCount()
	if err != nil {
		return nil, err
	}
	for i := 1; i <= n && i <= 10000; i++ {
		p, err := r.Page(i)
		if err != nil {
			return nil, err
		}
		if p.Ref == pref {
			return p, nil
		}
	}
	return nil, fault.New(fault.Invalid, signing.CodePDFMalformed, "widget page %d is not in the page tree", pref.Num)
}

// updateAcroForm sets /SigFlags 3 (signatures exist, append only) and adds
// newField (when not zero) to /Fields, writing the AcroForm where it lives.
func updateAcroForm(u *pdf.Update, newField pdf.Ref) error {
	r := u.Reader()
	catRef, _, err := r.Catalog()
	if err != nil {
		return err
	}
	co, err := u.Get(catRef)
	if err != nil {
		return err
	}
	cat, _ := co.(pdf.Dict)
	formRef, indirect := cat["AcroForm"].(pdf.Ref)
	var form pdf.Dict
	if indirect {
		o, err := u.Get(formRef)
		if err != nil {
			return err
		}
		form, _ = o.(pdf.Dict)
	} else {
		form, _ = cat["AcroForm"].(pdf.Dict)
	}
	form = form.Clone()
	if newField != (pdf.Ref{}) {
		fields, err := r.Array(form["Fields"])
		if err != nil {
			return err
		}
		form["Fields"] = append(append(pdf.Array{}, fields...), newField)
	}
	form["SigFlags"] = pdf.Integer(3)
	if indirect {
		u.Set(formRef, form)
		return nil
	}
	return updateCatalog(u, pdf.Dict{"AcroForm": u.Add(form)})
}

// uniqueFieldName names a new field Seal1, Seal2, ... (DocumentTimestamp1,
// ... for a document timestamp), avoiding every name taken (lower case).
// The smallest stamp rectangle, in points: one line of small text.
const (
	minStampWidth  = 20
	minStampHeight = 10
)

func uniqueFieldName(taken map[string]bool, kind pdf.Name) string {
	base := "Seal"
	if kind == "DocTimeStamp" {
		base = "DocumentTimestamp"
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s%d", base, i)
		if !taken[strings.ToLower(n)] {
			return n
		}
	}
}

// userRect converts a placement on the displayed page into the widget's
// rectangle in default user space, and returns the appearance matrix that
// keeps the stamp upright on a rotated page (ISO 32000-1 §8.3.2.3, §12.5.5).
func userRect(p *pdf.Page, pl Placement) (pdf.Rect, pdf.Array) {
	c := p.CropBox
	x, y, w, h := pl.X, pl.Y, pl.Width, pl.Height
	var r pdf.Rect
	switch p.Rotate {
	case 90:
		r = pdf.Rect{c[2] - y - h, c[1] + x, c[2] - y, c[1] + x + w}
	case 180:
		r = pdf.Rect{c[2] - x - w, c[3] - y - h, c[2] - x, c[3] - y}
	case 270:
		r = pdf.Rect{c[0] + y, c[3] - x - w, c[0] + y + h, c[3] - x}
	default:
		r = pdf.Rect{c[0] + x, c[1] + y, c[0] + x + w, c[1] + y + h}
	}
	return r, rotationMatrix(p.Rotate)
}

// rotationMatrix turns appearance content counter to the page's rotation;
// the viewer then fits the rotated bounding box into the widget rectangle.
func rotationMatrix(rotate int) pdf.Array {
	m := map[int][4]int{0: {1, 0, 0, 1}, 90: {0, 1, -1, 0}, 180: {-1, 0, 0, -1}, 270: {0, -1, 1, 0}}[rotate]
	return pdf.Array{pdf.Integer(m[0]), pdf.Integer(m[1]), pdf.Integer(m[2]), pdf.Integer(m[3]), pdf.Integer(0), pdf.Integer(0)}
}

// emptyAppearance is the appearance of an invisible signature: some
// validators want every widget to have one.
func emptyAppearance(u *pdf.Update) pdf.Ref {
	return u.Add(&pdf.Stream{Dict: pdf.Dict{"Type": pdf.Name("XObject"), "Subtype": pdf.Name("Form"), "BBox": pdf.Rect{}.Array()}, Data: []byte{}})
}
