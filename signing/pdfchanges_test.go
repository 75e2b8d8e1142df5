package signing_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pdf"
)

// rawObject is an object of a hand-written update: its body, or free.
type rawObject struct {
	num  uint32
	body string
	free bool
}

var startxrefRE = regexp.MustCompile(`startxref\s+(\d+)\s+%%EOF\s*$`)

// appendRaw appends an incremental update written by hand, as a forger
// would: the objects, a classic cross-reference table and a trailer with
// the given entries besides /Size and /Prev.
func appendRaw(t testing.TB, file []byte, size uint32, objs []rawObject, trailer string) []byte {
	t.Helper()
	m := startxrefRE.FindSubmatch(file)
	if m == nil {
		t.Fatal("no startxref at the end of the file")
	}
	prev, _ := strconv.Atoi(string(m[1]))
	out := bytes.NewBuffer(append([]byte(nil), file...))
	offsets := map[uint32]int{}
	for _, o := range objs {
		if !o.free {
			offsets[o.num] = out.Len()
			fmt.Fprintf(out, "%d 0 obj\n%s\nendobj\n", o.num, o.body)
		}
	}
	xref := out.Len()
	out.WriteString("xref\n")
	for _, o := range objs {
		if o.free {
			fmt.Fprintf(out, "%d 1\n0000000000 00001 f \n", o.num)
		} else {
			fmt.Fprintf(out, "%d 1\n%010d 00000 n \n", o.num, offsets[o.num])
		}
	}
	fmt.Fprintf(out, "trailer\n<< /Size %d /Prev %d %s >>\nstartxref\n%d\n%%%%EOF\n", size, prev, trailer, xref)
	return out.Bytes()
}

// sealedForTampering is a sealed one-page document, opened, with what the
// forgeries below need of it.
type sealedForTampering struct {
	file    []byte
	r       *pdf.Reader
	root    pdf.Ref
	catalog pdf.Dict
	page    *pdf.Page
	trailer string // the trailer's /Root and /Info as they are
}

func sealForTampering(t *testing.T, key signing.Key) *sealedForTampering {
	t.Helper()
	sealed, _ := seal(t, key, pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0077: 1,200 EUR"}}}), signing.PAdESOptions{})
	r, err := pdf.Open(bytes.NewReader(sealed), int64(len(sealed)))
	if err != nil {
		t.Fatal(err)
	}
	root, cat, err := r.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	page, err := r.Page(1)
	if err != nil {
		t.Fatal(err)
	}
	tr := fmt.Sprintf("/Root %d 0 R", root.Num)
	if info, ok := r.Trailer["Info"].(pdf.Ref); ok {
		tr += fmt.Sprintf(" /Info %d 0 R", info.Num)
	}
	return &sealedForTampering{file: sealed, r: r, root: root, catalog: cat, page: page, trailer: tr}
}

func obj(o pdf.Object) string { return string(pdf.AppendObject(nil, o)) }

// Forged updates after a seal — each one a way to change what the document
// shows or says while keeping the old bytes — are all reported, with the
// change named; updates that signing makes are not.
func TestVerifyPDFRefusesForgedUpdates(t *testing.T) {
	key, p := softHSMSeal(t)
	s := sealForTampering(t, key)
	next := s.r.NextNumber()
	n1, n2, n3 := next, next+1, next+2
	size := next + 3
	forgedPage := fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R >>", n2, n3)
	forgedContent := "<< /Length 44 >>\nstream\nBT /F1 30 Tf 72 600 Td (PAY 1,000,000) Tj ET\nendstream"
	catalogWith := func(k pdf.Name, v pdf.Object) string {
		c := s.catalog.Clone()
		c[k] = v
		return obj(c)
	}
	// The page with one more annotation, after the seal's widget.
	pageAnnot := func(ref pdf.Ref) string {
		annots, err := s.r.Array(s.page.Dict["Annots"])
		if err != nil {
			t.Fatal(err)
		}
		d := s.page.Dict.Clone()
		d["Annots"] = append(append(pdf.Array{}, annots...), ref)
		return obj(d)
	}
	form, err := s.r.Dict(s.catalog["AcroForm"])
	if err != nil || form == nil {
		t.Fatalf("the sealed document has no form: %v", err)
	}
	formWith := func(k pdf.Name, v pdf.Object) string {
		f := form.Clone()
		f[k] = v
		return obj(f)
	}
	var fontRef pdf.Ref
	if res, err := s.r.Dict(s.page.Dict["Resources"]); err == nil && res != nil {
		if fonts, err := s.r.Dict(res["Font"]); err == nil {
			for _, f := range fonts {
				fontRef, _ = f.(pdf.Ref)
			}
		}
	}
	if fontRef.Num == 0 {
		t.Fatal("the test page has no indirect font")
	}
	contentRef, _ := s.page.Dict["Contents"].(pdf.Ref)
	widget := func(rect string) string {
		return fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (Overlay) /F 4 /Rect %s /P %d 0 R /AP << /N %d 0 R >> >>", rect, s.page.Ref.Num, n3)
	}
	overlay := "<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Length 38 >>\nstream\n1 1 1 rg 0 0 595 842 re f 0 0 0 rg\nendstream"

	tests := []struct {
		name    string
		objs    []rawObject
		trailer string
		want    string // in the report; "" means the update is allowed
	}{
		{"a new catalog with a forged page tree", []rawObject{
			{num: n1, body: catalogWith("Pages", pdf.Ref{Num: n2})},
			{num: n2, body: fmt.Sprintf("<< /Type /Pages /Kids [%d 0 R] /Count 1 >>", n1+3)},
			{num: n1 + 3, body: fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] >>", n2)},
		}, fmt.Sprintf("/Root %d 0 R", n1), "the trailer's /Root changed"},
		{"a new document information dictionary", []rawObject{
			{num: n1, body: "<< /Title (Paid in full) >>"},
		}, fmt.Sprintf("/Root %d 0 R /Info %d 0 R", s.root.Num, n1), "the trailer's /Info changed"},
		{"the page's font relabelled as a security store", []rawObject{
			{num: fontRef.Num, body: "<< /Type /DSS /Subtype /Type1 /BaseFont /Courier >>"},
		}, s.trailer, fmt.Sprintf("object %d: content changed", fontRef.Num)},
		{"the page content deleted", []rawObject{
			{num: contentRef.Num, free: true},
		}, s.trailer, fmt.Sprintf("object %d was deleted", contentRef.Num)},
		{"a visible unsigned signature field over the page", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: widget("[0 0 595 842]")},
			{num: n3, body: overlay},
		}, s.trailer, "an unsigned signature field with a visible appearance was added"},
		{"a security store carrying an action", []rawObject{
			{num: s.root.Num, body: catalogWith("DSS", pdf.Ref{Num: n1})},
			{num: n1, body: "<< /Type /DSS /Certs [] /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"},
		}, s.trailer, "the document security store has an entry /OpenAction"},
		{"a new form asking viewers to redraw fields", []rawObject{
			{num: s.root.Num, body: catalogWith("AcroForm", pdf.Ref{Num: n1})},
			{num: n1, body: formWith("NeedAppearances", pdf.Bool(true))},
		}, s.trailer, "entry /NeedAppearances changed"},
		{"a page replaced in the page tree", []rawObject{
			{num: s.page.Ref.Num, body: forgedPage},
			{num: n3, body: forgedContent},
		}, s.trailer, fmt.Sprintf("object %d:", s.page.Ref.Num)},
		{"an invisible unsigned signature field (allowed)", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (Later) /F 132 /Rect [0 0 0 0] /P %d 0 R >>", s.page.Ref.Num)},
		}, s.trailer, ""},
		{"a security store added (allowed)", []rawObject{
			{num: s.root.Num, body: catalogWith("DSS", pdf.Ref{Num: n1})},
			{num: n1, body: "<< /Type /DSS /Certs [] /CRLs [] >>"},
		}, s.trailer, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := appendRaw(t, s.file, size+1, tt.objs, tt.trailer)
			rep, err := verifyPDF(t, forged, p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("an allowed update is refused: %v", err)
				}
				return
			}
			if fault.CodeOf(err) != signing.CodeModifiedAfterSign || rep == nil || rep.Valid {
				t.Fatalf("VerifyPDF: %v, want %s", err, signing.CodeModifiedAfterSign)
			}
			if got := strings.Join(rep.Signatures[0].LaterChanges, "; "); !strings.Contains(got, tt.want) {
				t.Errorf("changes %q, want one saying %q", got, tt.want)
			}
		})
	}
}

// Bytes appended after the last %%EOF that are not white space make the
// document invalid: they belong to no revision any signature covers.
func TestVerifyPDFTrailingBytes(t *testing.T) {
	key, p := softHSMSeal(t)
	sealed, _ := seal(t, key, pdftest.Bytes(pdftest.Spec{}), signing.PAdESOptions{})
	if _, err := verifyPDF(t, append(bytes.Clone(sealed), "\r\n \x00\n"...), p); err != nil {
		t.Errorf("white space after %%%%EOF: %v", err)
	}
	rep, err := verifyPDF(t, append(bytes.Clone(sealed), "% approved by the CFO\n"...), p)
	if fault.CodeOf(err) != signing.CodeModifiedAfterSign || rep == nil || rep.Valid || len(rep.Errors) != 1 {
		t.Errorf("a comment after %%%%EOF: %v, %+v", err, rep)
	}
}
