package pades

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"

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
func laterChanges(doc *pdf.Reader, revs *revisions, end int64, sigRefs map[uint32]bool, covers map[uint32]int64) []string {
	old, err := pdf.Open(io.NewSectionReader(revs.r, 0, end), end)
	if err != nil {
		return []string{fmt.Sprintf("the signed revision cannot be read: %v", err)}
	}
	c := &changeCheck{old: old, doc: doc, covers: covers}
	c.chain(end)
	c.trailer()
	c.unlisted(revs, end)
	for num := uint32(1); num < old.NextNumber(); num++ {
		if old.Exists(num) && !doc.Exists(num) {
			c.report("object %d was deleted", num)
		}
	}
	seen := map[uint32]bool{}
	added := map[uint32]bool{}
	for _, sec := range doc.Sections {
		if sec.Offset < end {
			continue
		}
		for _, num := range sec.Objects {
			if seen[num] {
				continue
			}
			seen[num] = true
			// An object of the signed revision is fetched by the reference
			// that revision gives it: a later generation makes its old
			// references name nothing, which the reader refuses.
			ref, _ := doc.Reference(num)
			if o, ok := old.Reference(num); ok {
				ref = o
			}
			nv, err := doc.Get(ref)
			if err != nil {
				c.report("object %d cannot be read: %v", num, err)
				continue
			}
			c.danglingRefs(num, nv)
			if !old.Exists(num) {
				added[num] = true
				if num < old.NextNumber() {
					// The signed revision may refer to a number it left free
					// (such a reference reads as null); defining it later
					// would bring in an object the signer never saw.
					c.report("object %d: a number free in the signed revision is defined", num)
				}
				if d, ok := nv.(pdf.Dict); ok && d["ByteRange"] != nil && !sigRefs[num] {
					c.report("object %d: a signature dictionary no field refers to", num)
				}
				continue
			}
			ov, _ := old.Get(ref)
			if why := c.changed(num, ov, nv); why != "" {
				c.report("object %d: %s", num, why)
			}
		}
	}
	c.referencedBefore(revs, end, added)
	return c.changes
}

// changeCheck holds the two revisions being compared and what was found.
type changeCheck struct {
	old, doc *pdf.Reader
	// covers maps the signature dictionaries of signatures that verify to
	// where their signed bytes end.
	covers  map[uint32]int64
	changes []string
	// arrays maps the indirect /Annots arrays of the signed revision's
	// pages and its /Fields array to their role; made when first needed.
	arrays map[uint32]string
}

func (c *changeCheck) report(format string, args ...any) {
	c.changes = append(c.changes, fmt.Sprintf(format, args...))
}

// chain checks that the cross-reference sections before end are exactly
// the signed revision's, in order: a later /Prev may not lead to another
// section hidden in the signed bytes (one the signed revision never used),
// which would bring back objects the signer never saw.
func (c *changeCheck) chain(end int64) {
	var before []int64
	for _, sec := range c.doc.Sections {
		if sec.Offset < end {
			before = append(before, sec.Offset)
		}
	}
	same := len(before) == len(c.old.Sections)
	for i := 0; same && i < len(before); i++ {
		same = before[i] == c.old.Sections[i].Offset
	}
	if !same {
		c.report("the cross-reference chain does not lead back to the signed revision's sections")
	}
}

// objectHeader finds "N G obj" at the start of a line.
// objectHeader finds "N G obj" anywhere: viewers that rebuild a table
// from the file read it in short lines and accept any white space (the
// vertical tab included) between the tokens.
var objectHeader = regexp.MustCompile(`(?:^|[^0-9])(\d{1,10})[ \t\r\n\f\v\x00]+(\d{1,10})[ \t\r\n\f\v\x00]+obj\b`)

// reference finds "N G R".
var reference = regexp.MustCompile(`(?:^|[^0-9])(\d{1,10})[ \t\r\n\f\v\x00]+(\d{1,10})[ \t\r\n\f\v\x00]+R\b`)

// scan calls found with the offset and first two numbers of each match of
// re in r's bytes [from, to), read in overlapping chunks; it stops when
// found returns false.
func scan(r io.ReaderAt, from, to int64, re *regexp.Regexp, found func(at int64, a, b []byte) bool) {
	const chunk, overlap = 1 << 20, 48
	seen := map[int64]bool{}
	buf := make([]byte, chunk+overlap)
	for off := from; off < to; off += chunk {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), to-off)], off)
		if n == 0 && err != nil {
			return
		}
		for _, m := range re.FindAllSubmatchIndex(buf[:n], -1) {
			at := off + int64(m[2])
			if seen[at] {
				continue
			}
			seen[at] = true
			if !found(at, buf[m[2]:m[3]], buf[m[4]:m[5]]) {
				return
			}
		}
	}
}

// revisions is what the change checks of all a document's signatures
// share, each found once and only when needed: where each object number is
// first referred to in the file's bytes, the numbers each object stream
// refers to, and the objects each later cross-reference section lists.
type revisions struct {
	r    io.ReaderAt
	size int64
	ends []int64 // where each revision ends, ascending

	firstRef   map[uint32]int64
	streamRefs map[int64]map[uint32]bool // by the object stream's offset
	listed     map[int64][]int64         // by the section's offset
}

func newRevisions(r io.ReaderAt, size int64, ends []int64) *revisions {
	return &revisions{r: r, size: size, ends: ends, streamRefs: map[int64]map[uint32]bool{}, listed: map[int64][]int64{}}
}

// firstReferences maps each object number referred to in the file's bytes
// to the offset of its first reference.
func (v *revisions) firstReferences() map[uint32]int64 {
	if v.firstRef == nil {
		v.firstRef = map[uint32]int64{}
		scan(v.r, 0, v.size, reference, func(at int64, num, _ []byte) bool {
			if n, err := strconv.ParseUint(string(num), 10, 32); err == nil {
				if _, ok := v.firstRef[uint32(n)]; !ok {
					v.firstRef[uint32(n)] = at
				}
			}
			return true
		})
	}
	return v.firstRef
}

// objStmRefs returns the numbers object stream num of rd refers to.
func (v *revisions) objStmRefs(rd *pdf.Reader, num uint32) map[uint32]bool {
	off, _ := rd.ObjectOffset(num)
	if refs, ok := v.streamRefs[off]; ok {
		return refs
	}
	refs := map[uint32]bool{}
	v.streamRefs[off] = refs
	st, err := rd.Get(pdf.Ref{Num: num})
	s, ok := st.(*pdf.Stream)
	if err != nil || !ok {
		return refs
	}
	data, err := rd.StreamData(s)
	if err != nil {
		return refs
	}
	scan(bytes.NewReader(data), 0, int64(len(data)), reference, func(_ int64, num, _ []byte) bool {
		if n, err := strconv.ParseUint(string(num), 10, 32); err == nil {
			refs[uint32(n)] = true
		}
		return true
	})
	return refs
}

// sectionObjects returns the offsets of the objects the section at off
// lists, read from the revision it closes: the first prefix of the file
// whose newest section it is. A "revision" hidden in stream data, with its
// own table and %%EOF, is no prefix whose newest section is the document's.
func (v *revisions) sectionObjects(off int64) []int64 {
	if objs, ok := v.listed[off]; ok {
		return objs
	}
	var objs []int64
	for _, e := range v.ends {
		if e <= off {
			continue
		}
		rev, err := pdf.Open(io.NewSectionReader(v.r, 0, e), e)
		if err != nil || len(rev.Sections) == 0 || rev.Sections[0].Offset != off {
			continue
		}
		for _, num := range rev.Sections[0].Objects {
			if o, ok := rev.ObjectOffset(num); ok {
				objs = append(objs, o)
			}
		}
		break
	}
	v.listed[off] = objs
	return objs
}

// unlisted reports objects written after end that no later section of the
// document's own chain lists. Readers ignore them, but viewers that
// rebuild a damaged table from the objects found in the file show them.
func (c *changeCheck) unlisted(revs *revisions, end int64) {
	listed := map[int64]bool{}
	for _, sec := range c.doc.Sections {
		if sec.Offset < end {
			continue
		}
		listed[sec.Offset] = true
		for _, o := range revs.sectionObjects(sec.Offset) {
			listed[o] = true
		}
	}
	reported := 0
	scan(revs.r, end, revs.size, objectHeader, func(at int64, num, gen []byte) bool {
		for k := int64(0); k <= 2; k++ {
			if listed[at-k] {
				return true
			}
		}
		reported++
		c.report("object %s %s at offset %d is in no cross-reference section", num, gen, at)
		return reported < 3
	})
}

// referencedBefore reports objects new in later revisions whose numbers
// the signed revision already refers to (as a missing object, read as
// null): defining one would bring into the signed pages an object the
// signer never saw. References live in objects and object streams, never
// in content streams, so the signed bytes and its object streams are
// searched.
func (c *changeCheck) referencedBefore(revs *revisions, end int64, added map[uint32]bool) {
	if len(added) == 0 {
		return
	}
	first := revs.firstReferences()
	var inStreams []map[uint32]bool
	for _, n := range c.old.ObjectStreams() {
		inStreams = append(inStreams, revs.objStmRefs(c.old, n))
	}
	for _, n := range slices.Sorted(maps.Keys(added)) {
		at, ok := first[n]
		found := ok && at < end
		for _, refs := range inStreams {
			found = found || refs[n]
		}
		if found {
			c.report("object %d: the signed revision refers to this number, which it did not define", n)
		}
	}
}

// danglingRefs reports references, in an object a later revision
// defines, to object numbers not in use: they read as null, but a viewer
// that meets one may rebuild its cross-reference table from the file and
// pick up objects no section lists.
func (c *changeCheck) danglingRefs(num uint32, o pdf.Object) {
	var walk func(o pdf.Object, depth int) bool
	walk = func(o pdf.Object, depth int) bool {
		if depth > 64 {
			return false
		}
		switch v := o.(type) {
		case pdf.Ref:
			if !c.doc.Exists(v.Num) {
				c.report("object %d refers to object %d, which does not exist", num, v.Num)
				return true
			}
		case pdf.Dict:
			for _, x := range v {
				if walk(x, depth+1) {
					return true
				}
			}
		case pdf.Array:
			for _, x := range v {
				if walk(x, depth+1) {
					return true
				}
			}
		case *pdf.Stream:
			return walk(v.Dict, depth+1)
		}
		return false
	}
	walk(o, 0)
}

// coveredBy tells whether the signature whose dictionary is the value o
// verifies and covers object num, that is, num is defined before its
// signed bytes end.
func (c *changeCheck) coveredBy(o pdf.Object, num uint32) bool {
	end, ok := c.covers[refNum(o)]
	if !ok {
		return false
	}
	off, ok := c.doc.ObjectOffset(num)
	return ok && off < end
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
			return c.appendsSignatureWidgets(oa, na, num, "page annotations")
		case "Fields":
			return c.appendsSignatureWidgets(oa, na, num, "form fields")
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
		if why := c.appendsSignatureWidgets(oa, na, num, "page annotations"); why != "" {
			return why
		}
		return c.keysKept(od, nd, "Annots")
	case oldCat != nil && refNum(oldCat["AcroForm"]) == num:
		return c.form(od, nd, num)
	case oldCat != nil && refNum(oldCat["DSS"]) == num:
		return dssShape(nd)
	case od.Name("FT") == "Sig" && od["V"] == nil:
		// An unsigned signature field is signed: its value and appearance
		// come with a signature that covers them.
		if nd["V"] != nil && !c.coveredBy(nd["V"], num) {
			return "a signature field received a value no valid signature covers"
		}
		if nd["V"] == nil {
			return c.keysKept(od, nd)
		}
		return c.keysKept(od, nd, "V", "AP", "AS", "F", "MK", "Lock", "SV")
	case od.Name("Subtype") == "Widget" && od["FT"] == nil && c.unsignedSignatureField(od["Parent"]):
		// The widget of an unsigned signature field receives its appearance
		// with the signature that covers it.
		p, err := c.doc.Dict(nd["Parent"])
		if err != nil || p == nil || !c.coveredBy(p["V"], num) {
			return "the appearance of an unsigned signature field changed without a signature covering it"
		}
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
	if v, ok := nd["Version"]; ok {
		if _, name := v.(pdf.Name); !name {
			return "the catalog's /Version is not a name"
		}
	}
	if why := c.extensionsShape(nd["Extensions"]); why != "" {
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
		if why := c.form(of, nf, refNum(nd["AcroForm"])); why != "" {
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
// /Fields, /SigFlags, and resources added to /DR. Existing resources and
// /DA stay: fields without an appearance of their own are drawn with them.
func (c *changeCheck) form(od, nd pdf.Dict, num uint32) string {
	oa, _ := c.old.Array(od["Fields"])
	na, _ := c.doc.Array(nd["Fields"])
	if why := c.appendsSignatureWidgets(oa, na, num, "form fields"); why != "" {
		return why
	}
	if why := c.keysKept(od, nd, "Fields", "SigFlags", "DR"); why != "" {
		return why
	}
	if sameObject(c.old, c.doc, od["DR"], nd["DR"]) {
		return ""
	}
	odr, _ := c.old.Dict(od["DR"])
	ndr, err := c.doc.Dict(nd["DR"])
	if err != nil || (ndr == nil && odr != nil) {
		return "the form's default resources were removed"
	}
	for category, ov := range odr {
		oc, _ := c.old.Dict(ov)
		nc, err := c.doc.Dict(ndr[category])
		if err != nil || (nc == nil && oc != nil) {
			return fmt.Sprintf("the form's default resources /%s were removed", category)
		}
		for name, o := range oc {
			if !sameObject(c.old, c.doc, o, nc[name]) {
				return fmt.Sprintf("the form's default resource /%s /%s changed", category, name)
			}
		}
	}
	// A font added under a name some field's default appearance already
	// uses changes how that field is drawn.
	nf, _ := c.doc.Dict(ndr["Font"])
	var of pdf.Dict
	if odr != nil {
		of, _ = c.old.Dict(odr["Font"])
	}
	used := c.appearanceFonts(od)
	for name := range nf {
		if _, had := of[name]; !had && used[name] {
			return fmt.Sprintf("the form's default resources gained /Font /%s, which a field of the signed revision draws with", name)
		}
	}
	return ""
}

// appearanceFonts lists the font names the form's and its fields' default
// appearances (/DA) name in the signed revision.
func (c *changeCheck) appearanceFonts(form pdf.Dict) map[pdf.Name]bool {
	used := map[pdf.Name]bool{}
	note := func(d pdf.Dict) {
		da, _ := d["DA"].(pdf.String)
		for _, m := range daFont.FindAllSubmatch([]byte(da), -1) {
			used[pdf.Name(decodeName(m[1]))] = true
		}
	}
	note(form)
	seen := map[uint32]bool{}
	var walk func(o pdf.Object, depth int)
	walk = func(o pdf.Object, depth int) {
		n := refNum(o)
		if depth > 32 || (n != 0 && seen[n]) {
			return
		}
		seen[n] = true
		d, err := c.old.Dict(o)
		if err != nil || d == nil {
			return
		}
		note(d)
		kids, _ := c.old.Array(d["Kids"])
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	fields, _ := c.old.Array(form["Fields"])
	for _, f := range fields {
		walk(f, 0)
	}
	return used
}

// daFont finds the font names of Tf operators in a default appearance.
var daFont = regexp.MustCompile(`/([^\s\x00/\[\]()<>{}%]+)[\s\x00]+[-+.\d]+[\s\x00]+Tf`)

// decodeName undoes a name's #xx escapes (ISO 32000-1 §7.3.5).
func decodeName(b []byte) string {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] == '#' && i+2 < len(b) {
			if v, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// extensionsShape checks that a catalog's /Extensions holds developer
// extensions (ISO 32000-1 §7.12) and nothing else.
func (c *changeCheck) extensionsShape(o pdf.Object) string {
	if o == nil {
		return ""
	}
	ext, err := c.doc.Dict(o)
	if err != nil || ext == nil {
		return "the catalog's /Extensions is not a dictionary"
	}
	for prefix, v := range ext {
		if prefix == "Type" {
			continue
		}
		entries := pdf.Array{v}
		if a, err := c.doc.Array(v); err == nil && a != nil {
			entries = a // PDF 2.0 allows an array of them
		}
		for _, e := range entries {
			d, err := c.doc.Dict(e)
			if err != nil || d == nil {
				return fmt.Sprintf("the extension /%s is not a dictionary", prefix)
			}
			for k := range d {
				switch k {
				case "Type", "BaseVersion", "ExtensionLevel", "URL", "ExtensionRevision":
				default:
					return fmt.Sprintf("the extension /%s has an entry /%s", prefix, k)
				}
			}
		}
	}
	return ""
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

// appendsSignatureWidgets checks that na (in object container) is oa with
// signature fields or widgets appended. An added one carries no action, and
// draws something only when it holds a signature that verifies and covers
// it; a widget joining a field of the signed revision draws nothing.
func (c *changeCheck) appendsSignatureWidgets(oa, na pdf.Array, container uint32, what string) string {
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
		if d["A"] != nil || d["AA"] != nil || field["AA"] != nil {
			return what + ": an added signature field carries an action"
		}
		if !visible(c.doc, d) {
			continue
		}
		at := refNum(o)
		if at == 0 {
			at = container // a widget written inside the array
		}
		switch {
		case c.old.Exists(refNum(d["Parent"])):
			return what + ": a visible widget was added to a field of the signed revision"
		case field["V"] == nil:
			return what + ": an unsigned signature field with a visible appearance was added"
		case !c.coveredBy(field["V"], at):
			return what + ": a visible signature field was added that its signature does not cover"
		}
	}
	return ""
}

// visible tells whether a widget may draw something: it is not hidden and
// its rectangle has an area.
func visible(r *pdf.Reader, w pdf.Dict) bool {
	// Hidden or NoView (ISO 32000-1 §12.5.3). Without an /AP a viewer still
	// draws a widget, from its /MK colours and /BS border.
	// Viewers read /F only as an integer of 32 bits; anything else is 0.
	if f, ok := w["F"].(pdf.Integer); ok && f >= 0 && f <= 1<<32-1 && f&(2|32) != 0 {
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
