package pdf

import "github.com/sealgate/sealgate/fault"

// CodePageOutOfRange is reported for a page number the document does not have.
const CodePageOutOfRange fault.Code = "pdf_page_out_of_range"

// Catalog returns the document catalog and its reference.
func (r *Reader) Catalog() (Ref, Dict, error) {
	ref, _ := r.Trailer["Root"].(Ref)
	d, err := r.Dict(ref)
	if err != nil {
		return ref, nil, err
	}
	if d == nil {
		return ref, nil, malformed("the catalog (object %d) is missing", ref.Num)
	}
	return ref, d, nil
}

// Rect is a rectangle [llx lly urx ury] in PDF user space units.
type Rect [4]float64

// Page is one page with the attributes it inherits from the page tree.
type Page struct {
	Ref  Ref
	Dict Dict
	// MediaBox and CropBox are normalised (lower-left first); CropBox
	// defaults to MediaBox.
	MediaBox, CropBox Rect
	// Rotate is the clockwise display rotation: 0, 90, 180 or 270.
	Rotate int
}

// PageCount returns the number of pages in the page tree.
func (r *Reader) PageCount() (int, error) {
	_, cat, err := r.Catalog()
	if err != nil {
		return 0, err
	}
	root, err := r.Dict(cat["Pages"])
	if err != nil {
		return 0, err
	}
	if root == nil {
		return 0, malformed("the catalog has no page tree")
	}
	n, ok := Int(root["Count"])
	if !ok || n < 0 {
		return 0, malformed("the page tree has no /Count")
	}
	return int(n), nil
}

// Page returns page n (1-based), walking only the branches of the page tree
// on the way to it.
func (r *Reader) Page(n int) (*Page, error) {
	count, err := r.PageCount()
	if err != nil {
		return nil, err
	}
	if n < 1 || n > count {
		return nil, fault.New(fault.Invalid, CodePageOutOfRange, "page %d does not exist: the document has %d pages", n, count)
	}
	_, cat, _ := r.Catalog()
	node := cat["Pages"]
	inherited := Dict{}
	seen := map[Ref]bool{}
	idx := n - 1
	for depth := 0; depth < maxDepth; depth++ {
		ref, _ := node.(Ref)
		if seen[ref] {
			return nil, malformed("the page tree loops at object %d", ref.Num)
		}
		seen[ref] = true
		d, err := r.Dict(node)
		if err != nil {
			return nil, err
		}
		if d == nil {
			return nil, malformed("page tree node %d is missing", ref.Num)
		}
		for _, k := range []Name{"MediaBox", "CropBox", "Rotate", "Resources"} {
			if v, ok := d[k]; ok {
				inherited[k] = v
			}
		}
		kids, err := r.Array(d["Kids"])
		if err != nil {
			return nil, err
		}
		if d.Name("Type") == "Page" || (kids == nil && d.Name("Type") != "Pages") {
			if idx != 0 {
				return nil, malformed("the page tree /Count does not match its pages")
			}
			return r.newPage(ref, d, inherited)
		}
		found := false
		for _, kid := range kids {
			kd, err := r.Dict(kid)
			if err != nil {
				return nil, err
			}
			c := 1
			if kd.Name("Type") == "Pages" {
				v, ok := Int(kd["Count"])
				if !ok || v < 0 {
					return nil, malformed("page tree node has no /Count")
				}
				c = int(v)
			}
			if idx < c {
				node, found = kid, true
				break
			}
			idx -= c
		}
		if !found {
			return nil, malformed("the page tree /Count does not match its pages")
		}
	}
	return nil, malformed("the page tree is deeper than %d levels", maxDepth)
}

func (r *Reader) newPage(ref Ref, d Dict, inh Dict) (*Page, error) {
	p := &Page{Ref: ref, Dict: d}
	var err error
	if p.MediaBox, err = r.rect(inh["MediaBox"]); err != nil {
		return nil, malformed("page %d has no valid /MediaBox", ref.Num)
	}
	p.CropBox = p.MediaBox
	if _, ok := inh["CropBox"]; ok {
		if cb, err := r.rect(inh["CropBox"]); err == nil {
			p.CropBox = intersect(cb, p.MediaBox)
		}
	}
	if rot, err := r.Resolve(inh["Rotate"]); err == nil {
		v, _ := Int(rot)
		p.Rotate = int(((v % 360) + 360) % 360)
		if p.Rotate%90 != 0 {
			p.Rotate = 0
		}
	}
	return p, nil
}

func (r *Reader) rect(o Object) (Rect, error) {
	a, err := r.Array(o)
	if err != nil || len(a) != 4 {
		return Rect{}, malformed("bad rectangle")
	}
	var v Rect
	for i, e := range a {
		e, err := r.Resolve(e)
		if err != nil {
			return Rect{}, err
		}
		f, ok := Number(e)
		if !ok {
			return Rect{}, malformed("bad rectangle")
		}
		v[i] = f
	}
	return Rect{min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3])}, nil
}

func intersect(a, b Rect) Rect {
	r := Rect{max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])}
	if r[0] >= r[2] || r[1] >= r[3] {
		return b
	}
	return r
}

// Array returns the rectangle as a PDF array.
func (r Rect) Array() Array {
	return Array{Real(r[0]), Real(r[1]), Real(r[2]), Real(r[3])}
}
