package pades_test

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
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// rawObject is an object of a hand-written update: its body, or free.
type rawObject struct {
	num  uint32
	body string
	free bool
	at   int64 // when not zero: list the object already at this offset
	// unlisted writes the object but leaves it out of the table.
	unlisted bool
	// indent writes white space before the object's header.
	indent string
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
	prev, _ := strconv.Atoi(string(m[1])) // the trailer's /Prev unless it names one
	out := bytes.NewBuffer(append([]byte(nil), file...))
	offsets := map[uint32]int{}
	for _, o := range objs {
		switch {
		case o.at != 0:
			offsets[o.num] = int(o.at)
		case !o.free:
			offsets[o.num] = out.Len()
			fmt.Fprintf(out, "%s%d 0 obj\n%s\nendobj\n", o.indent, o.num, o.body)
		}
	}
	xref := out.Len()
	out.WriteString("xref\n")
	for _, o := range objs {
		if o.unlisted {
			continue
		}
		if o.free {
			fmt.Fprintf(out, "%d 1\n0000000000 00001 f \n", o.num)
		} else {
			fmt.Fprintf(out, "%d 1\n%010d 00000 n \n", o.num, offsets[o.num])
		}
	}
	if !strings.Contains(trailer, "/Prev") {
		trailer += fmt.Sprintf(" /Prev %d", prev)
	}
	fmt.Fprintf(out, "trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n", size, trailer, xref)
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

func sealForTampering(t *testing.T, key signing.Key, doc []byte) *sealedForTampering {
	t.Helper()
	sealed, _ := signingtest.SealPDF(t, key, doc, pades.Options{})
	r, root, cat := signingtest.OpenCatalog(t, sealed)
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

func mustOffset(t testing.TB, r *pdf.Reader, num uint32) int64 {
	t.Helper()
	off, ok := r.ObjectOffset(num)
	if !ok {
		t.Fatalf("object %d has no offset", num)
	}
	return off
}

func obj(o pdf.Object) string { return string(pdf.AppendObject(nil, o)) }

// Forged updates after a seal — each one a way to change what the document
// shows or says while keeping the old bytes — are all reported, with the
// change named; updates that signing makes are not.
func TestVerifyPDFRefusesForgedUpdates(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	s := sealForTampering(t, key, pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0077: 1,200 EUR"}}}))
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
		{"a page content written outside any cross-reference section", []rawObject{
			{num: contentRef.Num, body: forgedContent, unlisted: true},
			{num: s.root.Num, at: mustOffset(t, s.r, s.root.Num)},
		}, s.trailer, fmt.Sprintf("object %d 0 at offset", contentRef.Num)},
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
			if fault.CodeOf(err) != pades.CodeModifiedAfterSign || rep == nil || rep.Valid {
				t.Fatalf("VerifyPDF: %v, want %s", err, pades.CodeModifiedAfterSign)
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
	key, p := signingtest.SoftHSMSeal(t)
	sealed, _ := signingtest.SealPDF(t, key, pdftest.Bytes(pdftest.Spec{}), pades.Options{})
	if _, err := verifyPDF(t, append(bytes.Clone(sealed), "\r\n \x00\n"...), p); err != nil {
		t.Errorf("white space after %%%%EOF: %v", err)
	}
	rep, err := verifyPDF(t, append(bytes.Clone(sealed), "% approved by the CFO\n"...), p)
	if fault.CodeOf(err) != pades.CodeModifiedAfterSign || rep == nil || rep.Valid || len(rep.Errors) != 1 {
		t.Errorf("a comment after %%%%EOF: %v, %+v", err, rep)
	}
}

// missingNum is a number formForTampering refers to without defining it.
const missingNum = 4242

// formForTampering is a one-page document with an empty visible signature
// field "CEO" and a form with default resources and appearance, as forms
// made by office software have.
func formForTampering(t *testing.T) []byte {
	t.Helper()
	doc := pdftest.Bytes(pdftest.Spec{SigField: "CEO", SigFieldRect: [4]float64{300, 40, 520, 110}})
	r, root, cat := signingtest.OpenCatalog(t, doc)
	form, err := r.Dict(cat["AcroForm"])
	if err != nil || form == nil {
		t.Fatalf("no form: %v", err)
	}
	u := pdf.NewUpdate(r)
	helv := u.Add(pdf.Dict{"Type": pdf.Name("Font"), "Subtype": pdf.Name("Type1"), "BaseFont": pdf.Name("Helvetica")})
	form = form.Clone()
	form["DR"] = pdf.Dict{"Font": pdf.Dict{"Helv": helv}}
	form["DA"] = pdf.String("/Helv 10 Tf 0 g")
	// A text field drawn with a font the resources lack (viewers fall back).
	// Its font name is written with an escape (#39 is "9"), and it refers
	// to an object the file does not define (read as null).
	amount := u.Add(pdf.Dict{"FT": pdf.Name("Tx"), "T": pdf.TextString("Amount"), "V": pdf.TextString("100 EUR"),
		"DA": pdf.String("/F#39 24 Tf 0 g"), "Rect": pdf.Array{pdf.Integer(0), pdf.Integer(0), pdf.Integer(0), pdf.Integer(0)},
		"MK": pdf.Ref{Num: missingNum}})
	fields, _ := r.Array(form["Fields"])
	form["Fields"] = append(append(pdf.Array{}, fields...), amount)
	cat = cat.Clone()
	cat["AcroForm"] = u.Add(form)
	u.Set(root, cat)
	laid, err := u.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	withForm := append(bytes.Clone(doc), laid.Bytes...)
	// And a number the file leaves free (as files that deleted an object do).
	free := r.NextNumber() + 100
	return appendRaw(t, withForm, free+1, []rawObject{{num: free, free: true}}, fmt.Sprintf("/Root %d 0 R", root.Num))
}

// Forged signature fields and form changes after a seal are reported: a
// copied signature dictionary claiming another reason, a second field
// holding the seal's signature, a visible widget joining the signed field,
// an appearance for an unsigned field, redefined default resources or
// appearance, a widget with an action, a /Version that is not a name, and
// a /Prev that skips the seal's section.
func TestVerifyPDFRefusesForgedSignatureFields(t *testing.T) {
	key, p := signingtest.SoftHSMSeal(t)
	s := sealForTampering(t, key, formForTampering(t))
	form, err := s.r.Dict(s.catalog["AcroForm"])
	if err != nil {
		t.Fatal(err)
	}
	formRef, _ := s.catalog["AcroForm"].(pdf.Ref)
	fields, _ := s.r.Array(form["Fields"])
	var ceo, seal1 pdf.Ref
	for _, f := range fields {
		d, _ := s.r.Dict(f)
		switch pdf.DecodeText(d["T"].(pdf.String)) {
		case "CEO":
			ceo = f.(pdf.Ref)
		case "Seal1":
			seal1 = f.(pdf.Ref)
		}
	}
	seal1Dict, _ := s.r.Dict(seal1)
	sigRef := seal1Dict["V"].(pdf.Ref)
	sigDict, _ := s.r.Dict(sigRef)
	ceoDict, _ := s.r.Dict(ceo)
	next := s.r.NextNumber()
	n1, n2 := next, next+1
	size := max(next+2, missingNum+1)
	with := func(d pdf.Dict, k pdf.Name, v pdf.Object) string {
		d = d.Clone()
		d[k] = v
		return obj(d)
	}
	annots, _ := s.r.Array(s.page.Dict["Annots"])
	pageAnnot := func(ref pdf.Ref) string {
		return with(s.page.Dict, "Annots", append(append(pdf.Array{}, annots...), ref))
	}
	formField := func(ref pdf.Ref) string {
		return with(form, "Fields", append(append(pdf.Array{}, fields...), ref))
	}
	overlay := "<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Length 38 >>\nstream\n1 1 1 rg 0 0 595 842 re f 0 0 0 rg\nendstream"
	visibleWidget := func(extra string) string {
		return fmt.Sprintf("<< /Type /Annot /Subtype /Widget /Rect [0 0 595 842] /P %d 0 R /AP << /N %d 0 R >> %s >>", s.page.Ref.Num, n2, extra)
	}
	dr, _ := s.r.Dict(form["DR"])
	fonts, _ := s.r.Dict(dr["Font"])
	helvRef := fonts["Helv"]
	contentNum := s.page.Dict["Contents"].(pdf.Ref).Num
	var freeNum uint32
	for n := s.r.NextNumber() - 1; n > 0 && freeNum == 0; n-- {
		if !s.r.Exists(n) {
			freeNum = n
		}
	}
	copied := sigDict.Clone()
	copied["Reason"] = pdf.TextString("Approved for payment of 1,000,000 EUR")
	// The update relists the seal's objects where they are, but its /Prev
	// leads past the seal's section to the one before it.
	beforeSeal := s.r.Sections[1].Offset
	var relisted []rawObject
	for _, num := range s.r.Sections[0].Objects {
		at, _ := s.r.ObjectOffset(num)
		relisted = append(relisted, rawObject{num: num, at: at})
	}

	tests := []struct {
		name    string
		objs    []rawObject
		trailer string
		code    fault.Code
		want    string
	}{
		{"a copied signature dictionary claiming another reason", []rawObject{
			{num: formRef.Num, body: formField(pdf.Ref{Num: n1})},
			{num: n1, body: fmt.Sprintf("<< /FT /Sig /T (Approval) /Rect [0 0 0 0] /V %d 0 R >>", n2)},
			{num: n2, body: obj(copied)},
		}, s.trailer, pades.CodeByteRangeInvalid, "lies outside the bytes its signature covers"},
		{"a second field holding the seal's signature", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: formRef.Num, body: formField(pdf.Ref{Num: n1})},
			{num: n1, body: visibleWidget(fmt.Sprintf("/FT /Sig /T (Seal2) /V %d 0 R", sigRef.Num))},
			{num: n2, body: overlay},
		}, s.trailer, pades.CodeByteRangeInvalid, "the value of more than one field"},
		{"a visible widget joining the signed field", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: visibleWidget(fmt.Sprintf("/Parent %d 0 R", seal1.Num))},
			{num: n2, body: overlay},
		}, s.trailer, pades.CodeModifiedAfterSign, "a visible widget was added to a field of the signed revision"},
		{"an appearance for the unsigned field", []rawObject{
			{num: ceo.Num, body: with(ceoDict, "AP", pdf.Dict{"N": pdf.Ref{Num: n2}})},
			{num: n2, body: overlay},
		}, s.trailer, pades.CodeModifiedAfterSign, "entry /AP changed"},
		{"a default font redefined", []rawObject{
			{num: formRef.Num, body: with(form, "DR", pdf.Dict{"Font": pdf.Dict{"Helv": pdf.Ref{Num: n1}}})},
			{num: n1, body: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Differences [49 /nine] >> >>"},
		}, s.trailer, pades.CodeModifiedAfterSign, "default resource /Font /Helv changed"},
		{"the default appearance changed", []rawObject{
			{num: formRef.Num, body: with(form, "DA", pdf.String("/Helv 10 Tf 1 g"))},
		}, s.trailer, pades.CodeModifiedAfterSign, "entry /DA changed"},
		{"an invisible signature widget with an action", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (Hidden) /Rect [0 0 595 842] /P %d 0 R /AA << /PO << /S /JavaScript /JS (this.print()) >> >> >>", s.page.Ref.Num)},
		}, s.trailer, pades.CodeModifiedAfterSign, "carries an action"},
		{"a font added under a name a field draws with", []rawObject{
			{num: formRef.Num, body: with(form, "DR", pdf.Dict{"Font": pdf.Dict{"Helv": helvRef, "F9": pdf.Ref{Num: n1}}})},
			{num: n1, body: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Differences [49 /nine] >> >>"},
		}, s.trailer, pades.CodeModifiedAfterSign, "gained /Font /F9"},
		{"an object given a number the signed revision left free", []rawObject{
			{num: freeNum, body: "<< /Type /Annot /Subtype /Square /Rect [0 0 595 842] >>"},
		}, s.trailer, pades.CodeModifiedAfterSign, fmt.Sprintf("object %d: a number free in the signed revision is defined", freeNum)},
		{"an object the signed revision referred to before it existed", []rawObject{
			{num: missingNum, body: "<< /BG [1 1 1] >>"},
		}, s.trailer, pades.CodeModifiedAfterSign, fmt.Sprintf("object %d: the signed revision refers to this number", missingNum)},
		{"a widget hidden by a flag viewers do not read", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: visibleWidget("/FT /Sig /T (Flagged) /F 4294967298")},
			{num: n2, body: overlay},
		}, s.trailer, pades.CodeModifiedAfterSign, "an unsigned signature field with a visible appearance was added"},
		{"a widget without appearance over the page", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (Box) /F 4 /Rect [60 580 600 660] /P %d 0 R /MK << /BG [1 1 1] /BC [1 0 0] >> >>", s.page.Ref.Num)},
		}, s.trailer, pades.CodeModifiedAfterSign, "an unsigned signature field with a visible appearance was added"},
		{"a reference to a missing object, and an indented object no section lists", []rawObject{
			{num: s.page.Ref.Num, body: pageAnnot(pdf.Ref{Num: n1})},
			{num: n1, body: fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (Trigger) /Rect [0 0 0 0] /P %d 0 R /NM %d 0 R >>", s.page.Ref.Num, size+50)},
			{num: contentNum, body: "<< /Length 44 >>\nstream\nBT /F1 30 Tf 72 600 Td (PAY 1,000,000) Tj ET\nendstream", unlisted: true, indent: " \v"},
		}, s.trailer, pades.CodeModifiedAfterSign, fmt.Sprintf("refers to object %d, which does not exist", size+50)},
		{"an indented object no section lists", []rawObject{
			{num: contentNum, body: "<< /Length 0 >>\nstream\n\nendstream", unlisted: true, indent: " \v"},
			{num: s.root.Num, at: mustOffset(t, s.r, s.root.Num)},
		}, s.trailer, pades.CodeModifiedAfterSign, fmt.Sprintf("object %d 0 at offset", contentNum)},
		{"a /Version that is not a name", []rawObject{
			{num: s.root.Num, body: with(s.catalog, "Version", pdf.Ref{Num: n1})},
			{num: n1, body: "/2.0"},
		}, s.trailer, pades.CodeModifiedAfterSign, "/Version is not a name"},
		{"a /Prev that skips the seal's section", relisted,
			s.trailer + fmt.Sprintf(" /Prev %d", beforeSeal), pades.CodeModifiedAfterSign, "does not lead back to the signed revision"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := appendRaw(t, s.file, size+1, tt.objs, tt.trailer)
			rep, err := verifyPDF(t, forged, p)
			if fault.CodeOf(err) != tt.code || rep == nil || rep.Valid {
				t.Fatalf("VerifyPDF: %v, want %s", err, tt.code)
			}
			var all []string
			for _, f := range rep.Errors {
				all = append(all, f.Message)
			}
			for _, sig := range rep.Signatures {
				for _, f := range sig.Errors {
					all = append(all, f.Message)
				}
			}
			if got := strings.Join(all, "; "); !strings.Contains(got, tt.want) {
				t.Errorf("findings %q, want one saying %q", got, tt.want)
			}
		})
	}
	// The unsigned field, signed by sealgate later, stays valid.
	signed, _ := signingtest.SealPDF(t, key, s.file, pades.Options{Field: "CEO", Placement: pades.Placement{}})
	if rep, err := verifyPDF(t, signed, p); err != nil || len(rep.Signatures) != 2 {
		t.Errorf("signing the CEO field after the seal: %v", err)
	}
}
