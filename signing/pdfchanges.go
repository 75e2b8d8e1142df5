package signing

import (
	"bytes"
	"fmt"
	"io"
	"reflect"

	"github.com/sealgate/sealgate/signing/pdf"
)

// laterChanges compares the revision a signature closes (the file's first
// end bytes) with the current file and lists every change that incremental
// signing does not make. What an existing object may become is decided by
// the role it has in the signed revision — which later revisions cannot
// change — never by what the new object says it is:
//
//   - the catalog may gain or change /AcroForm (checked like the form
//     below), /DSS (a document security store), /Extensions and /Version;
//   - a page may gain signature widgets in /Annots;
//   - the interactive form may gain signature fields in /Fields, and change
//     /SigFlags, /DR and /DA;
//   - an indirect /Annots or /Fields array may gain signature widgets;
//   - an unsigned signature field may receive its value and appearance;
//   - the document security store may be extended.
//
// The trailer must keep its /Root and /Info, no object of the signed
// revision may be deleted, and an added signature field that is not signed
// must not be visible: it would draw over the signed content. A signature
// dictionary added later that no field refers to is reported too: it is a
// signature whose field was taken away.
func laterChanges(doc *pdf.Reader, r io.ReaderAt, end int64, sigRefs map[uint32]bool) []string {
	old, err := pdf.Open(io.NewSectionReader(r, 0, end), end)
	if err != nil {
		return []string{fmt.Sprintf("the signed revision cannot be read: %v", err)}
	}
	c := &changeCheck{old: old, doc: doc}
	c.trailer()
	for num := uint32(1); num < old.NextNumber(); num++ {
		if old.Exists(num) && !doc.Exists(num) {
			c.report("object %d was deleted", num)
		}
	}
	seen := map[uint32]bool{}
	for _, sec := range doc.Sections {
		if sec.Offset < end {
			continue
		}
		for _, num := range sec.Objects {
			if seen[num] {
				continue
			}
			seen[num] = true
			if !old.Exists(num) {
				if d, _ := doc.Dict(pdf.Ref{Num: num}); d != nil && d["ByteRange"] != nil && !sigRefs[num] {
					c.report("object %d: a signature dictionary no field refers to", num)
				}
				continue
			}
			ov, _ := old.Get(pdf.Ref{Num: num})
			nv, _ := doc.Get(pdf.Ref{Num: num})
			if why := c.changed(num, ov, nv); why != "" {
				c.report("object %d: %s", num, why)
			}
		}
	}
	return c.changes
}

// changeCheck holds the two revisions being compared and what was found.
type changeCheck struct {
	old, doc *pdf.Reader
	changes  []string
	// arrays maps the indirect /Annots arrays of the signed revision's
	// pages and its /Fields array to their role; made when first needed.
	arrays map[uint32]string
}

func (c *changeCheck) report(format string, args ...any) {
	c.changes = append(c.changes, fmt.Sprintf(format, args...))
}

// trailer checks that the document's root and information dictionary are
// those of the signed revision, and that it was not encrypted since.
func (c *changeCheck) trailer() {
	for _, k := range []pdf.Name{"Root", "Info", "Encrypt"} {
		if !reflect.DeepEqual(c.old.Trailer[k], c.doc.Trailer[k]) {
			c.report("the trailer's /%s changed", k)
		}
	}
}

// changed explains why object num, ov in the signed revision, may not
// become nv, or returns "".
func (c *changeCheck) changed(num uint32, ov, nv pdf.Object) string {
	if sameObject(c.old, c.doc, ov, nv) {
		return ""
	}
	_, oldCat, _ := c.old.Catalog()
	if oa, ok := ov.(pdf.Array); ok {
		na, ok := nv.(pdf.Array)
		if !ok {
			return "content changed"
		}
		switch c.arrayRole(num) {
		case "Annots":
			return c.appendsSignatureWidgets(oa, na, "page annotations")
		case "Fields":
			return c.appendsSignatureWidgets(oa, na, "form fields")
		}
		return "content changed"
	}
	od, ok1 := ov.(pdf.Dict)
	nd, ok2 := nv.(pdf.Dict)
	if !ok1 || !ok2 {
		return "content changed"
	}
	switch {
	case refNum(c.old.Trailer["Root"]) == num:
		return c.catalog(od, nd)
	case od.Name("Type") == "Page":
		oa, _ := c.old.Array(od["Annots"])
		na, _ := c.doc.Array(nd["Annots"])
		if why := c.appendsSignatureWidgets(oa, na, "page annotations"); why != "" {
			return why
		}
		return c.keysKept(od, nd, "Annots")
	case oldCat != nil && refNum(oldCat["AcroForm"]) == num:
		return c.form(od, nd)
	case oldCat != nil && refNum(oldCat["DSS"]) == num:
		return dssShape(nd)
	case od.Name("FT") == "Sig" && od["V"] == nil:
		return c.keysKept(od, nd, "V", "AP", "AS", "F", "MK", "Lock", "SV")
	case od.Name("Subtype") == "Widget" && od["FT"] == nil && c.unsignedSignatureField(od["Parent"]):
		// The widget of an unsigned signature field receives its appearance.
		return c.keysKept(od, nd, "AP", "AS", "F", "MK")
	}
	return "content changed"
}

// unsignedSignatureField tells whether o is, in the signed revision, a
// signature field without a value.
func (c *changeCheck) unsignedSignatureField(o pdf.Object) bool {
	d, err := c.old.Dict(o)
	return err == nil && d != nil && d.Name("FT") == "Sig" && d["V"] == nil
}

// catalog checks the catalog's changes.
func (c *changeCheck) catalog(od, nd pdf.Dict) string {
	if why := c.keysKept(od, nd, "AcroForm", "DSS", "Extensions", "Version"); why != "" {
		return why
	}
	if !sameObject(c.old, c.doc, od["AcroForm"], nd["AcroForm"]) && refNum(nd["AcroForm"]) != refNum(od["AcroForm"]) {
		// A form that is new, or a new object in place of the old one.
		of, _ := c.old.Dict(od["AcroForm"])
		nf, err := c.doc.Dict(nd["AcroForm"])
		if err != nil || nf == nil {
			return "the interactive form was removed"
		}
		if of == nil {
			of = pdf.Dict{}
		}
		if why := c.form(of, nf); why != "" {
			return "the interactive form: " + why
		}
	}
	if !sameObject(c.old, c.doc, od["DSS"], nd["DSS"]) && refNum(nd["DSS"]) != refNum(od["DSS"]) {
		d, err := c.doc.Dict(nd["DSS"])
		if err != nil || d == nil {
			return "the document security store was removed"
		}
		if why := dssShape(d); why != "" {
			return why
		}
	}
	return ""
}

// form checks the interactive form's changes: signature fields added to
// /Fields, and /SigFlags, /DR and /DA.
func (c *changeCheck) form(od, nd pdf.Dict) string {
	oa, _ := c.old.Array(od["Fields"])
	na, _ := c.doc.Array(nd["Fields"])
	if why := c.appendsSignatureWidgets(oa, na, "form fields"); why != "" {
		return why
	}
	return c.keysKept(od, nd, "Fields", "SigFlags", "DR", "DA")
}

// dssShape checks that d is a document security store (ETSI EN 319 142-1
// §5.4.2) and nothing else.
func dssShape(d pdf.Dict) string {
	for k := range d {
		switch k {
		case "Type", "Certs", "OCSPs", "CRLs", "VRI":
		default:
			return fmt.Sprintf("the document security store has an entry /%s", k)
		}
	}
	if t := d.Name("Type"); t != "" && t != "DSS" {
		return fmt.Sprintf("the document security store has /Type /%s", t)
	}
	return ""
}

// keysKept reports the first entry outside allowed that differs.
func (c *changeCheck) keysKept(od, nd pdf.Dict, allowed ...pdf.Name) string {
	for _, k := range unionKeys(od, nd) {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok && !sameObject(c.old, c.doc, od[k], nd[k]) {
			return fmt.Sprintf("entry /%s changed", k)
		}
	}
	return ""
}

// appendsSignatureWidgets checks that na is oa with signature fields or
// widgets appended, and that those not signed draw nothing.
func (c *changeCheck) appendsSignatureWidgets(oa, na pdf.Array, what string) string {
	if len(na) < len(oa) {
		return what + " removed"
	}
	for i := range oa {
		if !reflect.DeepEqual(oa[i], na[i]) {
			return what + " replaced"
		}
	}
	for _, o := range na[len(oa):] {
		d, err := c.doc.Dict(o)
		if err != nil || d == nil {
			return what + ": an added entry is not a dictionary"
		}
		field := d
		if d.Name("FT") == "" {
			if p, err := c.doc.Dict(d["Parent"]); err == nil && p != nil {
				field = p
			}
		}
		if field.Name("FT") != "Sig" || (d["Subtype"] != nil && d.Name("Subtype") != "Widget") {
			return what + " changed beyond added signature fields"
		}
		if v, _ := c.doc.Resolve(field["V"]); v == nil || reflect.DeepEqual(v, pdf.Null{}) {
			if visible(c.doc, d) {
				return what + ": an unsigned signature field with a visible appearance was added"
			}
		}
	}
	return ""
}

// visible tells whether a widget draws something: it has a normal
// appearance and a rectangle with an area.
func visible(r *pdf.Reader, w pdf.Dict) bool {
	if w["AP"] == nil {
		return false
	}
	rect, err := r.Array(w["Rect"])
	if err != nil || len(rect) != 4 {
		return true
	}
	var v [4]float64
	for i, o := range rect {
		x, _ := r.Resolve(o)
		v[i], _ = pdf.Number(x)
	}
	return v[2] != v[0] && v[3] != v[1]
}

// arrayRole tells whether object num is, in the signed revision, the
// indirect /Annots array of a page ("Annots") or the form's /Fields array
// ("Fields").
func (c *changeCheck) arrayRole(num uint32) string {
	if c.arrays == nil {
		c.arrays = map[uint32]string{}
		if _, cat, err := c.old.Catalog(); err == nil {
			if f, err := c.old.Dict(cat["AcroForm"]); err == nil && f != nil {
				if n := refNum(f["Fields"]); n != 0 {
					c.arrays[n] = "Fields"
				}
			}
			c.pageArrays(cat["Pages"], 0, map[uint32]bool{})
		}
	}
	return c.arrays[num]
}

// pageArrays records the indirect /Annots arrays of the page tree below o.
func (c *changeCheck) pageArrays(o pdf.Object, depth int, seen map[uint32]bool) {
	n := refNum(o)
	if depth > 64 || n == 0 || seen[n] {
		return
	}
	seen[n] = true
	d, err := c.old.Dict(o)
	if err != nil || d == nil {
		return
	}
	if a := refNum(d["Annots"]); a != 0 {
		c.arrays[a] = "Annots"
	}
	kids, _ := c.old.Array(d["Kids"])
	for _, k := range kids {
		c.pageArrays(k, depth+1, seen)
	}
}

func refNum(o pdf.Object) uint32 {
	r, _ := o.(pdf.Ref)
	return r.Num
}

func unionKeys(a, b pdf.Dict) []pdf.Name {
	seen := map[pdf.Name]bool{}
	var keys []pdf.Name
	for _, d := range []pdf.Dict{a, b} {
		for k := range d {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// sameObject compares two objects; streams by dictionary and raw bytes.
func sameObject(old, doc *pdf.Reader, a, b pdf.Object) bool {
	sa, ok1 := a.(*pdf.Stream)
	sb, ok2 := b.(*pdf.Stream)
	if ok1 != ok2 {
		return false
	}
	if !ok1 {
		return reflect.DeepEqual(a, b)
	}
	da, db := sa.Dict.Clone(), sb.Dict.Clone()
	delete(da, "Length")
	delete(db, "Length")
	if !reflect.DeepEqual(da, db) {
		return false
	}
	ra, err1 := old.RawStream(sa)
	rb, err2 := doc.RawStream(sb)
	return err1 == nil && err2 == nil && bytes.Equal(ra, rb)
}
