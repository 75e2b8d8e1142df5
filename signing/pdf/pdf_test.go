package pdf_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/pdf"
)

func open(t *testing.T, b []byte) *pdf.Reader {
	t.Helper()
	r, err := pdf.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

// Every producer's file opens, and every page is found with its inherited
// boxes and rotation.
func TestOpenCorpus(t *testing.T) {
	for _, doc := range pdftest.Corpus(t) {
		t.Run(doc.Name, func(t *testing.T) {
			r := open(t, doc.Data)
			_, cat, err := r.Catalog()
			if err != nil || cat.Name("Type") != "Catalog" {
				t.Fatalf("catalog %v: %v", cat, err)
			}
			n, err := r.PageCount()
			if err != nil || n != doc.Pages {
				t.Fatalf("PageCount = %d, %v; want %d", n, err, doc.Pages)
			}
			for i := 1; i <= n; i++ {
				p, err := r.Page(i)
				if err != nil {
					t.Fatalf("Page(%d): %v", i, err)
				}
				if p.Dict.Name("Type") != "Page" || p.MediaBox[2] <= p.MediaBox[0] {
					t.Errorf("page %d: %v mediabox %v", i, p.Dict, p.MediaBox)
				}
			}
			if _, err := r.Page(n + 1); fault.CodeOf(err) != pdf.CodePageOutOfRange {
				t.Errorf("Page(%d) error %v, want %s", n+1, err, pdf.CodePageOutOfRange)
			}
		})
	}
}

// The generated rotated/cropped document reports its page attributes.
func TestPageAttributes(t *testing.T) {
	crop := [4]float64{50, 60, 545, 782}
	b := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{}, {Rotate: 90}, {Rotate: -90, CropBox: &crop}}})
	r := open(t, b)
	tests := []struct {
		page   int
		rotate int
		crop   pdf.Rect
	}{
		{1, 0, pdf.Rect(pdftest.A4)},
		{2, 90, pdf.Rect(pdftest.A4)},
		{3, 270, pdf.Rect(crop)},
	}
	for _, tt := range tests {
		p, err := r.Page(tt.page)
		if err != nil {
			t.Fatal(err)
		}
		if p.Rotate != tt.rotate || p.CropBox != tt.crop {
			t.Errorf("page %d: rotate %d crop %v, want %d %v", tt.page, p.Rotate, p.CropBox, tt.rotate, tt.crop)
		}
	}
}

// The kind of cross-reference section found matches what each producer writes.
func TestSectionKinds(t *testing.T) {
	chrome := pdftest.Chromium(t, "<p>x</p>")
	tests := []struct {
		name    string
		data    []byte
		stream  bool
		hybrid  bool
		minSecs int
	}{
		{"classic", pdftest.Bytes(pdftest.Spec{}), false, false, 1},
		{"hybrid", pdftest.Bytes(pdftest.Spec{Hybrid: true}), false, true, 1},
		{"object streams", pdftest.Qpdf(t, chrome, "--object-streams=generate"), true, false, 1},
		{"linearized", pdftest.Qpdf(t, chrome, "--linearize"), false, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.data)
			s := r.Sections[0]
			_, hybrid := s.Trailer["XRefStm"]
			if s.Stream != tt.stream || hybrid != tt.hybrid || len(r.Sections) < tt.minSecs {
				t.Errorf("newest section stream=%v hybrid=%v sections=%d", s.Stream, hybrid, len(r.Sections))
			}
			// The hybrid file's font lives only in its hidden object stream.
			if tt.hybrid {
				p, err := r.Page(1)
				if err != nil {
					t.Fatal(err)
				}
				res, _ := r.Dict(p.Dict["Resources"])
				fonts, _ := r.Dict(res["Font"])
				f, err := r.Dict(fonts["F1"])
				if err != nil || f.Name("BaseFont") != "Helvetica" {
					t.Errorf("font from object stream = %v, %v", f, err)
				}
			}
		})
	}
}

// An update appended to each corpus file (and to a cross-reference stream
// file without /ID) leaves the original bytes as they were, uses the same kind
// of cross-reference section, passes qpdf --check, and reads back. Its trailer
// /ID keeps the file's permanent identifier, or starts one, and gives the
// revision a new second element, as does the update after it.
func TestUpdateRoundTrip(t *testing.T) {
	docs := append(pdftest.Corpus(t), pdftest.Doc{
		Name:  "xref-stream-without-id",
		Data:  onePage(map[uint32]objStmSpec{5: {lengthIn: 3, members: map[uint32]string{2: pagesRoot}}}).bytes(),
		Pages: 1,
	})
	for _, doc := range docs {
		t.Run(doc.Name, func(t *testing.T) {
			r := open(t, doc.Data)
			u := pdf.NewUpdate(r)
			note := u.Add(pdf.Dict{"Note": pdf.TextString("sealed — ok (1)")})
			catRef, cat, _ := r.Catalog()
			cat = cat.Clone()
			cat["SealgateNote"] = note
			u.Set(catRef, cat)
			laid, err := u.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			out := append(append([]byte(nil), doc.Data...), laid.Bytes...)
			if !bytes.HasPrefix(out, doc.Data) {
				t.Fatal("original bytes changed")
			}
			if !regexp.MustCompile(`/ID \[<[0-9A-F]{32,}> <[0-9A-F]{32}>\]`).Match(laid.Bytes) {
				t.Errorf("the update's trailer has no /ID of two hexadecimal strings")
			}
			qpdfCheck(t, out)
			r2 := open(t, out)
			checkUpdateID(t, r.Trailer["ID"], r2.Trailer["ID"])
			u2 := pdf.NewUpdate(r2)
			u2.Add(pdf.Dict{"Note": pdf.TextString("second revision")})
			laid2, err := u2.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			checkUpdateID(t, r2.Trailer["ID"], open(t, append(out, laid2.Bytes...)).Trailer["ID"])
			if r2.Sections[0].Stream != r.Sections[0].Stream {
				t.Errorf("update wrote stream=%v after a stream=%v section", r2.Sections[0].Stream, r.Sections[0].Stream)
			}
			_, cat2, _ := r2.Catalog()
			d, err := r2.Dict(cat2["SealgateNote"])
			if err != nil || pdf.DecodeText(d["Note"].(pdf.String)) != "sealed — ok (1)" {
				t.Errorf("note read back as %v, %v", d, err)
			}
			if n, _ := r2.PageCount(); n != doc.Pages {
				t.Errorf("page count after update %d, want %d", n, doc.Pages)
			}
		})
	}
}

// checkUpdateID checks the /ID an update wrote against the one before it: the
// first element stays (or is new when there was none), the second changes,
// and new elements are 16 bytes.
func checkUpdateID(t *testing.T, before, after pdf.Object) {
	t.Helper()
	id, ok := after.(pdf.Array)
	if !ok || len(id) != 2 {
		t.Fatalf("/ID after the update = %v, want two strings", after)
	}
	first, ok1 := id[0].(pdf.String)
	second, ok2 := id[1].(pdf.String)
	if !ok1 || !ok2 || len(second) != 16 {
		t.Fatalf("/ID after the update = %x, want strings, the second of 16 bytes", id)
	}
	old, had := before.(pdf.Array)
	switch {
	case had && !bytes.Equal(first, old[0].(pdf.String)):
		t.Errorf("first /ID element changed from %x to %x", old[0], first)
	case had && bytes.Equal(second, old[1].(pdf.String)):
		t.Errorf("second /ID element stayed %x", second)
	case !had && (len(first) != 16 || bytes.Equal(first, second)):
		t.Errorf("/ID of a file without one = %x, want two different 16-byte strings", id)
	}
}

func qpdfCheck(t *testing.T, b []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "check.pdf")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, err := exec.Command("qpdf", "--check", f).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, msg)
	}
}

// Broken and encrypted inputs are refused with their codes.
func TestOpenRefusals(t *testing.T) {
	good := pdftest.Bytes(pdftest.Spec{})
	encrypted := pdftest.Qpdf(t, good, "--encrypt", "user", "owner", "256", "--")
	xrefAt := bytes.LastIndex(good, []byte("xref\n0 "))
	badXref := append([]byte(nil), good...)
	copy(badXref[xrefAt:], "junk")
	junk := make([]byte, 4096)
	rand.NewChaCha8([32]byte{1}).Read(junk)
	tests := []struct {
		name string
		data []byte
		code fault.Code
		says string
	}{
		{"bytes after %%EOF", append(append([]byte(nil), good...), junk...), pdf.CodeMalformed, "goes on for 4096 bytes after its last %%EOF marker"},
		{"empty", nil, pdf.CodeMalformed, ""},
		{"not a PDF", []byte("hello, this is plain text\n"), pdf.CodeMalformed, ""},
		{"truncated", good[:len(good)/2], pdf.CodeMalformed, "truncated?"},
		{"no startxref", []byte(strings.Replace(string(good), "startxref", "startxxxx", 1)), pdf.CodeMalformed, ""},
		{"startxref past the end", []byte(strings.Replace(string(good), "startxref\n", "startxref\n9", 1)), pdf.CodeMalformed, ""},
		{"xref overwritten", badXref, pdf.CodeMalformed, ""},
		{"encrypted", encrypted, pdf.CodeEncrypted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pdf.Open(bytes.NewReader(tt.data), int64(len(tt.data)))
			if fault.CodeOf(err) != tt.code || !strings.Contains(fmt.Sprint(err), tt.says) {
				t.Errorf("Open error %v, want code %s saying %q", err, tt.code, tt.says)
			}
		})
	}
}

// Arbitrary bytes never panic the reader.
func FuzzOpen(f *testing.F) {
	f.Add(pdftest.Bytes(pdftest.Spec{}))
	f.Add(pdftest.Bytes(pdftest.Spec{Hybrid: true, SigField: "S"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := pdf.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if fault.As(err) == nil {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		n, err := r.PageCount()
		if err != nil {
			return
		}
		for i := 1; i <= n && i < 5; i++ {
			r.Page(i)
		}
	})
}
