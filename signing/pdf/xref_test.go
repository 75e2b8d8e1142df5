package pdf_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pdf"
)

// rawPDF writes a file piece by piece and remembers where its last
// cross-reference section starts, so a test can write cross-reference
// sections that say what it wants, true or not.
type rawPDF struct {
	bytes.Buffer
	prev int64 // offset of the last cross-reference section, or -1
}

func newRawPDF() *rawPDF {
	f := &rawPDF{prev: -1}
	f.WriteString("%PDF-1.7\n")
	return f
}

// obj writes object num of generation gen and returns its offset.
func (f *rawPDF) obj(num, gen uint32, body string) int64 {
	off := int64(f.Len())
	fmt.Fprintf(f, "%d %d obj\n%s\nendobj\n", num, gen, body)
	return off
}

// stream writes stream object num (generation gen) whose dictionary holds
// dict and /Length, and returns its offset.
func (f *rawPDF) stream(num, gen uint32, dict string, data []byte) int64 {
	return f.obj(num, gen, fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data))
}

// member is one object of an object stream.
type member struct {
	num  uint32
	body string
}

// objStream writes object stream num holding members in that order and
// returns its offset.
func (f *rawPDF) objStream(num uint32, members []member) int64 {
	var hdr, body strings.Builder
	for _, m := range members {
		fmt.Fprintf(&hdr, "%d %d ", m.num, body.Len())
		body.WriteString(m.body + "\n")
	}
	dict := fmt.Sprintf("/Type /ObjStm /N %d /First %d", len(members), hdr.Len())
	return f.stream(num, 0, dict, []byte(hdr.String()+body.String()))
}

// xrow is one cross-reference entry of object num: kind 0 is free, 1 is at
// offset f1, 2 is in object stream f1. f2 is the generation (kinds 0 and 1)
// or the index in the object stream (kind 2).
type xrow struct {
	num  uint32
	kind byte
	f1   int64
	f2   uint32
}

// at is the entry of object num, generation gen, at offset off.
func at(num uint32, off int64, gen uint32) xrow { return xrow{num, 1, off, gen} }

// table writes a cross-reference table of one-entry subsections with a
// trailer holding trailer (and /Prev), and the startxref naming it.
func (f *rawPDF) table(rows []xrow, trailer string) {
	off := int64(f.Len())
	f.WriteString("xref\n")
	for _, r := range rows {
		kind := "n"
		if r.kind == 0 {
			kind = "f"
		}
		fmt.Fprintf(f, "%d 1\n%010d %05d %s\r\n", r.num, r.f1, r.f2, kind)
	}
	fmt.Fprintf(f, "trailer\n<< %s%s >>\n", trailer, f.prevKey())
	f.startxref(off)
}

// xrefStream writes object num as a cross-reference stream holding rows and
// dict (and /Prev), and returns its offset. It is a section of its own after
// startxref, or the hidden stream of a table's /XRefStm.
func (f *rawPDF) xrefStream(num uint32, rows []xrow, dict string) int64 {
	var data []byte
	var index []string
	for _, r := range rows {
		data = append(data, r.kind)
		data = binary.BigEndian.AppendUint32(data, uint32(r.f1))
		data = binary.BigEndian.AppendUint16(data, uint16(r.f2))
		index = append(index, fmt.Sprintf("%d 1", r.num))
	}
	return f.stream(num, 0, fmt.Sprintf("/Type /XRef /W [1 4 2] /Index [%s] %s%s", strings.Join(index, " "), dict, f.prevKey()), data)
}

func (f *rawPDF) prevKey() string {
	if f.prev < 0 {
		return ""
	}
	return fmt.Sprintf(" /Prev %d", f.prev)
}

func (f *rawPDF) startxref(off int64) {
	fmt.Fprintf(f, "startxref\n%d\n%%%%EOF\n", off)
	f.prev = off
}

// showing is the content stream of a page that shows text in font F1.
func showing(text string) []byte {
	return []byte(fmt.Sprintf("BT /F1 24 Tf 72 700 Td (%s) Tj ET", text))
}

const (
	catalog = "<< /Type /Catalog /Pages 2 0 R >>"
	pages   = "<< /Type /Pages /Count 1 /Kids [3 0 R] >>"
	font    = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
)

// page is a page whose contents are the stream contents names.
func page(contents string) string {
	return "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents " + contents + " >>"
}

// signedRevision writes a one-page file with a cross-reference table: the
// catalog 1, the page tree 2, the page 3, its contents 4 showing "signed
// text" and the font 5. It returns the file and the objects' offsets.
func signedRevision() (*rawPDF, map[uint32]int64) {
	f := newRawPDF()
	offs := map[uint32]int64{
		1: f.obj(1, 0, catalog),
		2: f.obj(2, 0, pages),
		3: f.obj(3, 0, page("4 0 R")),
		4: f.stream(4, 0, "", showing("signed text")),
		5: f.obj(5, 0, font),
	}
	rows := []xrow{{0, 0, 0, 65535}}
	for n := uint32(1); n <= 5; n++ {
		rows = append(rows, at(n, offs[n], 0))
	}
	f.table(rows, "/Size 6 /Root 1 0 R")
	return f, offs
}

// pageText returns what page 1's contents show, as the reader reads them.
func pageText(t *testing.T, r *pdf.Reader) string {
	t.Helper()
	p, err := r.Page(1)
	if err != nil {
		t.Fatalf("Page(1): %v", err)
	}
	o, err := r.Resolve(p.Dict["Contents"])
	s, ok := o.(*pdf.Stream)
	if err != nil || !ok {
		t.Fatalf("page contents = %T, %v", o, err)
	}
	data, err := r.StreamData(s)
	if err != nil {
		t.Fatalf("StreamData: %v", err)
	}
	return string(data)
}

// viewerText returns the text poppler's pdftotext finds in the file.
func viewerText(t *testing.T, b []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", file, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// readsAsViewers checks that the file opens, that page 1 shows text as the
// reader reads it, and that poppler shows the same text.
func readsAsViewers(t *testing.T, b []byte, text string) *pdf.Reader {
	t.Helper()
	r := open(t, b)
	if got := pageText(t, r); got != string(showing(text)) {
		t.Errorf("page contents read as %q, want %q", got, showing(text))
	}
	if got := viewerText(t, b); got != text {
		t.Errorf("pdftotext shows %q, want %q", got, text)
	}
	return r
}

// refused checks that err is a pdf_malformed error saying want.
func refused(t *testing.T, what string, err error, want string) {
	t.Helper()
	if fault.CodeOf(err) != pdf.CodeMalformed || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: error %v, want code %s saying %q", what, err, pdf.CodeMalformed, want)
	}
}

// An object is the one its cross-reference entry names only if the object's
// header has the entry's number and generation, and a reference names it
// only with that generation; otherwise poppler rebuilds its table from the
// headers in the file and may show objects no table lists, so the reader
// refuses the file as malformed instead of reading another object.
func TestGenerationNumbers(t *testing.T) {
	t.Run("entry with another generation than the header", func(t *testing.T) {
		// The update lists the catalog at its signed offset, where its
		// header says generation 0, as generation 1; poppler then rebuilds
		// its table and shows the unlisted page 3 appended before it.
		for root, want := range map[string]string{
			"1 0 R": "reference 1 0 R: the cross-reference table gives object 1 generation 1",
			"1 1 R": "cross-reference entry for object 1 1 points to object 1 0",
		} {
			f, offs := signedRevision()
			f.stream(4, 0, "", showing("forged text"))
			f.obj(3, 0, page("4 0 R"))
			f.table([]xrow{at(1, offs[1], 1)}, "/Size 6 /Root "+root)
			r := open(t, f.Bytes())
			_, _, err := r.Catalog()
			refused(t, "Catalog with /Root "+root, err, want)
			if root != "1 0 R" {
				continue
			}
			if got := viewerText(t, f.Bytes()); got != "forged text" {
				t.Errorf("pdftotext shows %q, not the unlisted objects this file is about", got)
			}
		}
	})
	t.Run("reference with another generation than the entry", func(t *testing.T) {
		// The update redefines the contents, unchanged, as generation 1:
		// the page's 4 0 R then names no object.
		f, _ := signedRevision()
		off := f.stream(4, 1, "", showing("signed text"))
		f.table([]xrow{at(4, off, 1)}, "/Size 6 /Root 1 0 R")
		r := open(t, f.Bytes())
		_, err := r.Get(pdf.Ref{Num: 4})
		refused(t, "Get(4 0 R)", err, "reference 4 0 R")
		p, err := r.Page(1)
		if err != nil {
			t.Fatalf("Page(1): %v", err)
		}
		_, err = r.Resolve(p.Dict["Contents"])
		refused(t, "page contents", err, "generation 1")
		ref, ok := r.Reference(4)
		if o, err := r.Get(ref); !ok || ref != (pdf.Ref{Num: 4, Gen: 1}) || err != nil {
			t.Errorf("Reference(4) = %v, %v; Get = %T, %v", ref, ok, o, err)
		}
	})
	t.Run("a generation 1 object read as viewers read it", func(t *testing.T) {
		f, _ := signedRevision()
		off4 := f.stream(4, 1, "", showing("revised text"))
		off3 := f.obj(3, 0, page("4 1 R"))
		f.table([]xrow{at(3, off3, 0), at(4, off4, 1)}, "/Size 6 /Root 1 0 R")
		readsAsViewers(t, f.Bytes(), "revised text")
	})
	t.Run("compressed object referenced with generation 1", func(t *testing.T) {
		r := open(t, onePage(map[uint32]objStmSpec{5: {members: map[uint32]string{2: pagesRoot}}}).bytes())
		_, err := r.Get(pdf.Ref{Num: 2, Gen: 1})
		refused(t, "Get(2 1 R)", err, "reference 2 1 R")
		if d, err := r.Dict(pdf.Ref{Num: 2}); err != nil || d.Name("Type") != "Pages" {
			t.Errorf("Dict(2 0 R) = %v, %v", d, err)
		}
	})
	t.Run("free and undefined objects are null", func(t *testing.T) {
		f, _ := signedRevision()
		f.table([]xrow{{6, 0, 0, 1}}, "/Size 7 /Root 1 0 R")
		r := open(t, f.Bytes())
		for _, ref := range []pdf.Ref{{Num: 6}, {Num: 6, Gen: 1}, {Num: 9}} {
			if o, err := r.Get(ref); err != nil || o != (pdf.Null{}) {
				t.Errorf("Get(%v) = %v, %v; want null", ref, o, err)
			}
			if _, ok := r.Reference(ref.Num); ok {
				t.Errorf("Reference(%d) says in use", ref.Num)
			}
		}
	})
}

// In a hybrid-reference section the table's entries come first and the
// hidden cross-reference stream (/XRefStm) adds objects the table does not
// list (ISO 32000-1 §7.5.8.4), as poppler and qpdf read it; a stream placing
// an object the table places elsewhere makes the file malformed.
func TestHybridSections(t *testing.T) {
	// update appends contents 4 showing "update text" and a hidden stream 6
	// holding hidden, then a table holding table (and 6) naming it. The
	// rows get the offset of the new contents as -1 and of the signed ones
	// as -2.
	update := func(table, hidden []xrow) []byte {
		f, offs := signedRevision()
		off := f.stream(4, 0, "", showing("update text"))
		fix := func(rows []xrow) []xrow {
			for i := range rows {
				switch rows[i].f1 {
				case -1:
					rows[i].f1 = off
				case -2:
					rows[i].f1 = offs[rows[i].num]
				}
			}
			return rows
		}
		xs := f.xrefStream(6, fix(hidden), "/Size 7")
		f.table(append(fix(table), at(6, xs, 0)), fmt.Sprintf("/Size 7 /Root 1 0 R /XRefStm %d", xs))
		return f.Bytes()
	}
	t.Run("stream places an object elsewhere", func(t *testing.T) {
		for name, hidden := range map[string]xrow{
			"at its signed offset": at(4, -2, 0),
			"in an object stream":  {4, 2, 7, 0},
		} {
			b := update([]xrow{at(4, -1, 0)}, []xrow{hidden})
			_, err := pdf.Open(bytes.NewReader(b), int64(len(b)))
			refused(t, name, err, "place object 4 differently")
		}
	})
	t.Run("table and stream agree", func(t *testing.T) {
		readsAsViewers(t, update([]xrow{at(4, -1, 0)}, []xrow{at(4, -1, 0)}), "update text")
	})
	t.Run("stream entry free", func(t *testing.T) {
		readsAsViewers(t, update([]xrow{at(4, -1, 0)}, []xrow{{4, 0, 0, 1}}), "update text")
	})
	t.Run("object only the stream lists", func(t *testing.T) {
		r := readsAsViewers(t, update(nil, []xrow{at(4, -1, 0)}), "update text")
		if objs := r.Sections[0].Objects; !slices.Contains(objs, 4) || !slices.Contains(objs, 6) {
			t.Errorf("newest section lists %v, want 4 and 6 among them", objs)
		}
	})
	t.Run("table entry free", func(t *testing.T) {
		// qpdf reads the stream's entry too; poppler rebuilds its table
		// from the object headers, where the update's contents come last.
		b := update([]xrow{{4, 0, 0, 1}}, []xrow{at(4, -1, 0)})
		r := open(t, b)
		if got := pageText(t, r); got != string(showing("update text")) {
			t.Errorf("page contents read as %q", got)
		}
		if got := qpdfObject(t, b, 4); !strings.Contains(got, "(update text)") {
			t.Errorf("qpdf shows object 4 as %q", got)
		}
	})
}

// qpdfObject returns object num of the file as qpdf shows it, stream data
// included.
func qpdfObject(t *testing.T, b []byte, num uint32) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qpdf", fmt.Sprintf("--show-object=%d", num), "--raw-stream-data", file).Output()
	if err != nil {
		t.Fatalf("qpdf --show-object=%d: %v", num, err)
	}
	return string(out)
}

// An object in an object stream is the one at the index its cross-reference
// entry names, as poppler reads it; an object stream that lists a number
// twice, or holds another object at that index, is malformed, since qpdf
// looks the number up instead.
func TestObjStmIndex(t *testing.T) {
	const decoy = "<< /Type /Pages /Count 0 /Kids [] >>"
	// file writes the page tree root 2 (and 8) in object stream 6 as
	// members, and names index idx for 2 (and idx8 for 8).
	file := func(members []member, idx, idx8 uint32) []byte {
		f := newRawPDF()
		rows := []xrow{
			{0, 0, 0, 65535},
			at(1, f.obj(1, 0, catalog), 0),
			at(3, f.obj(3, 0, page("4 0 R")), 0),
			at(4, f.stream(4, 0, "", showing("signed text")), 0),
			at(5, f.obj(5, 0, font), 0),
			at(6, f.objStream(6, members), 0),
			{2, 2, 6, idx},
			{8, 2, 6, idx8},
		}
		off := int64(f.Len())
		f.xrefStream(7, append(rows, at(7, off, 0)), "/Size 9 /Root 1 0 R")
		f.startxref(off)
		return f.Bytes()
	}
	t.Run("the index decides", func(t *testing.T) {
		r := readsAsViewers(t, file([]member{{8, decoy}, {2, pages}}, 1, 0), "signed text")
		if d, err := r.Dict(pdf.Ref{Num: 8}); err != nil || d["Count"] != pdf.Integer(0) {
			t.Errorf("Get(8 0 R) = %v, %v", d, err)
		}
	})
	tests := []struct {
		name    string
		members []member
		idx     uint32
		want    string
	}{
		// The forged page tree first, the signed one second: poppler
		// reads the first, a lookup by number may take the last.
		{"a number listed twice", []member{{2, decoy}, {2, pages}}, 0, "lists object 2 twice"},
		{"another object at the index", []member{{8, decoy}, {2, pages}}, 0, "names index 0 of object stream 6"},
		{"an index past the end", []member{{8, decoy}, {2, pages}}, 2, "names index 2 of object stream 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, file(tt.members, tt.idx, 0))
			_, err := r.Get(pdf.Ref{Num: 2})
			refused(t, "Get(2 0 R)", err, tt.want)
			_, err = r.PageCount()
			refused(t, "PageCount", err, tt.want)
		})
	}
}
