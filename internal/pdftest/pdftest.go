// Package pdftest makes the PDF documents sealgate's PDF tests run on: its
// own minimal writer (classic or hybrid cross-reference, rotated and cropped
// pages, an empty signature field, padding to a given size), headless
// Chromium's print-to-PDF, and qpdf rewrites of them (object streams,
// linearization, encryption).
package pdftest

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Page describes one page of a generated document.
type Page struct {
	MediaBox [4]float64 // default A4 portrait
	CropBox  *[4]float64
	Rotate   int
	Text     string
}

// Spec describes a generated document.
type Spec struct {
	Pages []Page // default one A4 page
	// Pad adds an image of about Pad bytes to page 1, to make large files.
	Pad int64
	// SigField adds an empty signature field of that name on page 1, at
	// SigFieldRect (default: invisible, a zero rectangle).
	SigField     string
	SigFieldRect [4]float64
	// Hybrid writes a hybrid-reference file: a classic table whose trailer
	// names a cross-reference stream (/XRefStm) for objects kept in an
	// object stream.
	Hybrid bool
	// PDFA claims conformance to that part of PDF/A (1, 2 or 3) in a catalog
	// /Metadata XMP packet, as an attribute pdfaid:part="N" followed by the
	// usual whitespace padding (room to rewrite the packet in place).
	PDFA int
	// OutputIntentN adds a PDF/A output intent (/S /GTS_PDFA1) whose
	// destination profile has that many components: 1 gray, 3 RGB, 4 CMYK.
	// The profile is an ICC header without tags: right for readers that look
	// at /N and the header's colour space, not usable for colour management.
	OutputIntentN int
}

// A4 is the A4 portrait media box.
var A4 = [4]float64{0, 0, 595, 842}

type writer struct {
	w       *bufio.Writer
	n       int64
	offsets map[int]int64
}

func (w *writer) printf(format string, args ...any) {
	k, _ := fmt.Fprintf(w.w, format, args...)
	w.n += int64(k)
}

func (w *writer) obj(num int, body string) {
	w.offsets[num] = w.n
	w.printf("%d 0 obj\n%s\nendobj\n", num, body)
}

// Write writes the document s describes to out, streaming its padding.
func Write(out io.Writer, s Spec) error {
	if len(s.Pages) == 0 {
		s.Pages = []Page{{Text: "sealgate test document"}}
	}
	w := &writer{w: bufio.NewWriterSize(out, 1<<16), offsets: map[int]int64{}}
	w.printf("%%PDF-1.7\n%%\xe2\xe3\xcf\xd3\n")
	const (
		catalog = 1
		pages   = 2
		form    = 3
		font    = 4
		info    = 5
		image   = 6
		field   = 7
		objstm  = 8
		xrefstm = 9
		first   = 10
	)
	kids := ""
	for i := range s.Pages {
		kids += fmt.Sprintf("%d 0 R ", first+2*i)
	}
	size := first + 2*len(s.Pages)
	// The PDF/A objects follow the pages.
	metadata, profile := size, size+1
	cat := ""
	if s.SigField != "" {
		cat += fmt.Sprintf(" /AcroForm %d 0 R", form)
	}
	if s.PDFA != 0 {
		cat += fmt.Sprintf(" /Metadata %d 0 R", metadata)
		size = metadata + 1
	}
	if s.OutputIntentN != 0 {
		cat += fmt.Sprintf(" /OutputIntents [<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sealgate test) /DestOutputProfile %d 0 R >>]", profile)
		size = profile + 1
	}
	w.obj(catalog, fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R%s >>", pages, cat))
	w.obj(pages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", kids, len(s.Pages)))
	if s.SigField != "" {
		w.obj(form, fmt.Sprintf("<< /Fields [%d 0 R] >>", field))
		r := s.SigFieldRect
		w.obj(field, fmt.Sprintf("<< /Type /Annot /Subtype /Widget /FT /Sig /T (%s) /Rect [%g %g %g %g] /F 4 /P %d 0 R >>", s.SigField, r[0], r[1], r[2], r[3], first))
	}
	fontBody := "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
	infoBody := "<< /Producer (sealgate pdftest) /Title (Test document) >>"
	if !s.Hybrid {
		w.obj(font, fontBody)
		w.obj(info, infoBody)
	}
	if s.Pad > 0 {
		const width = 1000
		height := (s.Pad + width - 1) / width
		w.offsets[image] = w.n
		w.printf("%d 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>\nstream\n", image, width, height, width*height)
		row := make([]byte, width)
		for y := int64(0); y < height; y++ {
			for x := range row {
				row[x] = byte(x*7 + int(y)*13)
			}
			k, _ := w.w.Write(row)
			w.n += int64(k)
		}
		w.printf("\nendstream\nendobj\n")
	}
	for i, p := range s.Pages {
		mb := p.MediaBox
		if mb == [4]float64{} {
			mb = A4
		}
		extra := ""
		if p.CropBox != nil {
			extra += fmt.Sprintf(" /CropBox [%g %g %g %g]", p.CropBox[0], p.CropBox[1], p.CropBox[2], p.CropBox[3])
		}
		if p.Rotate != 0 {
			extra += fmt.Sprintf(" /Rotate %d", p.Rotate)
		}
		res := fmt.Sprintf("/Font << /F1 %d 0 R >>", font)
		content := fmt.Sprintf("BT /F1 18 Tf %g %g Td (%s) Tj ET\n", mb[0]+72, mb[3]-100, p.Text)
		if i == 0 && s.Pad > 0 {
			res += fmt.Sprintf(" /XObject << /Im1 %d 0 R >>", image)
			content += fmt.Sprintf("q 100 0 0 20 %g %g cm /Im1 Do Q\n", mb[0]+72, mb[3]-160)
		}
		if i == 0 && s.SigField != "" {
			extra += fmt.Sprintf(" /Annots [%d 0 R]", field)
		}
		w.obj(first+2*i, fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [%g %g %g %g]%s /Resources << %s >> /Contents %d 0 R >>",
			pages, mb[0], mb[1], mb[2], mb[3], extra, res, first+2*i+1))
		w.obj(first+2*i+1, fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", len(content), content))
	}
	if s.PDFA != 0 {
		xmp := xmpPacket(s.PDFA)
		w.obj(metadata, fmt.Sprintf("<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream", len(xmp), xmp))
	}
	if s.OutputIntentN != 0 {
		icc := iccHeader(s.OutputIntentN)
		w.obj(profile, fmt.Sprintf("<< /N %d /Length %d >>\nstream\n%s\nendstream", s.OutputIntentN, len(icc), icc))
	}
	if s.Hybrid {
		hdr := fmt.Sprintf("%d 0 %d %d ", font, info, len(fontBody)+1)
		body := hdr + fontBody + "\n" + infoBody
		w.obj(objstm, fmt.Sprintf("<< /Type /ObjStm /N 2 /First %d /Length %d >>\nstream\n%s\nendstream", len(hdr), len(body)+1, body))
		var rows []byte
		rows = append(rows, 2, 0, 0, 0, objstm, 0, 0) // font: in objstm, index 0
		rows = append(rows, 2, 0, 0, 0, objstm, 0, 1) // info: index 1
		data := zdeflate(rows)
		w.obj(xrefstm, fmt.Sprintf("<< /Type /XRef /Size %d /W [1 4 2] /Index [%d 2] /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream",
			size, font, len(data), data))
	}
	xref := w.n
	w.printf("xref\n0 %d\n", size)
	for n := 0; n < size; n++ {
		if off, ok := w.offsets[n]; ok {
			w.printf("%010d 00000 n\r\n", off)
		} else {
			w.printf("0000000000 65535 f\r\n")
		}
	}
	extra := ""
	if s.Hybrid {
		extra = fmt.Sprintf(" /XRefStm %d", w.offsets[xrefstm])
	}
	w.printf("trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>]%s >>\nstartxref\n%d\n%%%%EOF\n",
		size, catalog, info, extra, xref)
	return w.w.Flush()
}

// xmpPacket is an XMP packet claiming PDF/A part, conformance level B.
func xmpPacket(part int) string {
	return fmt.Sprintf(`<?xpacket begin="%s" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="%d" pdfaid:conformance="B"/>
 </rdf:RDF>
</x:xmpmeta>
%s
<?xpacket end="w"?>`, "\ufeff", part, strings.Repeat(" ", 1024))
}

// iccHeader is the 128-byte header of an ICC v2 output profile for n
// components (ICC.1:2001-04 §6.1), followed by an empty tag table.
func iccHeader(n int) []byte {
	space := map[int]string{1: "GRAY", 3: "RGB ", 4: "CMYK"}[n]
	h := make([]byte, 132)
	binary.BigEndian.PutUint32(h[0:], uint32(len(h)))
	binary.BigEndian.PutUint32(h[8:], 0x02100000)
	copy(h[12:], "prtr")
	copy(h[16:], space)
	copy(h[20:], "XYZ ")
	copy(h[36:], "acsp")
	// The D50 illuminant as s15Fixed16 numbers.
	binary.BigEndian.PutUint32(h[68:], 0x0000f6d6)
	binary.BigEndian.PutUint32(h[72:], 0x00010000)
	binary.BigEndian.PutUint32(h[76:], 0x0000d32d)
	return h
}

func zdeflate(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Bytes returns the document s describes.
func Bytes(s Spec) []byte {
	var buf bytes.Buffer
	if err := Write(&buf, s); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return buf.Bytes()
}

// Chromium prints html to PDF with headless Chromium and returns the file.
func Chromium(t testing.TB, html string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed to make test documents (apt-get install chromium): %v", err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.html")
	out := filepath.Join(dir, "out.pdf")
	if err := os.WriteFile(in, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--no-pdf-header-footer",
		"--print-to-pdf="+out, "file://"+in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --print-to-pdf: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("chromium wrote no PDF: %v", err)
	}
	return b
}

// Qpdf rewrites in with qpdf and the given options and returns the result.
func Qpdf(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in.pdf"), filepath.Join(dir, "out.pdf")
	if err := os.WriteFile(src, in, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("qpdf", append(append(args, src), dst)...)
	msg, err := cmd.CombinedOutput()
	// qpdf exits 3 for warnings with a usable output.
	if err != nil && cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("qpdf %v: %v\n%s", args, err, msg)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Doc is one corpus document.
type Doc struct {
	Name string
	Data []byte
	// Pages is its page count.
	Pages int
}

// Corpus returns documents from several producers, covering classic tables,
// cross-reference and object streams, hybrid references and linearization.
func Corpus(t testing.TB) []Doc {
	t.Helper()
	chrome := Chromium(t, `<!doctype html><html><body style="font-family:sans-serif">
<h1>Invoice 2026-0042</h1><p>Example Manufacturing GmbH — total 1.234,56 EUR</p>
<div style="page-break-after:always"></div><h2>Terms</h2><p>Payable within 30 days.</p></body></html>`)
	rotated := Spec{Pages: []Page{
		{Text: "portrait"},
		{Text: "rotated 90", Rotate: 90},
		{Text: "cropped", CropBox: &[4]float64{50, 60, 545, 782}},
	}}
	own := Bytes(Spec{})
	return []Doc{
		{Name: "go-classic", Data: own, Pages: 1},
		{Name: "go-rotated-cropped", Data: Bytes(rotated), Pages: 3},
		{Name: "go-hybrid", Data: Bytes(Spec{Hybrid: true}), Pages: 1},
		{Name: "go-sigfield", Data: Bytes(Spec{SigField: "Approval"}), Pages: 1},
		{Name: "chromium", Data: chrome, Pages: 2},
		{Name: "chromium-objstm", Data: Qpdf(t, chrome, "--object-streams=generate"), Pages: 2},
		{Name: "chromium-linearized", Data: Qpdf(t, chrome, "--linearize"), Pages: 2},
		{Name: "go-rotated-objstm-linearized", Data: Qpdf(t, Bytes(rotated), "--object-streams=generate", "--linearize"), Pages: 3},
	}
}
