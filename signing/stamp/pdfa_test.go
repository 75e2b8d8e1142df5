package stamp_test

import (
	"bytes"
	"image"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/stamp"
)

// The stamp keeps a PDF/A document PDF/A: no soft mask in PDF/A-1, colours
// and logo in the output intent's colour space. Documents that are not
// PDF/A, or whose PDF/A metadata or output intent cannot be read, get the
// usual stamp and are sealed all the same.
func TestStampPDFA(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	png, jpeg := signingtest.Logo(t), testJPEG(t)
	a1rgb := pdftest.Bytes(pdftest.Spec{PDFA: 1, OutputIntentN: 3})
	tests := []struct {
		name  string
		doc   []byte
		logo  []byte
		space pdf.Name // the logo's colour space and filter
		filt  pdf.Name
		smask bool
		ops   string // the colour operators of the appearance
		ink   string // "red": the PNG logo's disc shows; "gray": every changed pixel is neutral
		// broken tells the input is damaged so that qpdf --check warns
		// about it; pdfsig must still find the seal valid.
		broken bool
	}{
		{name: "not PDF/A", doc: pdftest.Bytes(pdftest.Spec{}), logo: png, space: "DeviceRGB", filt: "FlateDecode", smask: true, ops: "RG rg", ink: "red"},
		{name: "PDF/A-1 RGB", doc: a1rgb, logo: png, space: "DeviceRGB", filt: "FlateDecode", ops: "RG rg", ink: "red"},
		{name: "PDF/A-1 element form", doc: replaceXMP(t, a1rgb, elementXMP), logo: png, space: "DeviceRGB", filt: "FlateDecode", ops: "RG rg", ink: "red"},
		{name: "PDF/A-2 RGB", doc: pdftest.Bytes(pdftest.Spec{PDFA: 2, OutputIntentN: 3}), logo: png, space: "DeviceRGB", filt: "FlateDecode", smask: true, ops: "RG rg", ink: "red"},
		{name: "PDF/A-1 RGB JPEG", doc: a1rgb, logo: jpeg, space: "DeviceRGB", filt: "DCTDecode", ops: "RG rg"},
		{name: "PDF/A-1 CMYK", doc: pdftest.Bytes(pdftest.Spec{PDFA: 1, OutputIntentN: 4}), logo: png, space: "DeviceCMYK", filt: "FlateDecode", ops: "K k", ink: "red"},
		{name: "PDF/A-2 CMYK", doc: pdftest.Bytes(pdftest.Spec{PDFA: 2, OutputIntentN: 4}), logo: png, space: "DeviceCMYK", filt: "FlateDecode", smask: true, ops: "K k", ink: "red"},
		{name: "PDF/A-2 CMYK JPEG", doc: pdftest.Bytes(pdftest.Spec{PDFA: 2, OutputIntentN: 4}), logo: jpeg, space: "DeviceCMYK", filt: "FlateDecode", ops: "K k"},
		{name: "PDF/A-1 gray", doc: pdftest.Bytes(pdftest.Spec{PDFA: 1, OutputIntentN: 1}), logo: png, space: "DeviceGray", filt: "FlateDecode", ops: "G g", ink: "gray"},
		{name: "PDF/A-3 gray JPEG", doc: pdftest.Bytes(pdftest.Spec{PDFA: 3, OutputIntentN: 1}), logo: jpeg, space: "DeviceGray", filt: "FlateDecode", ops: "G g", ink: "gray"},
		// Unreadable metadata is no PDF/A-1 claim: the soft mask stays.
		{name: "garbage metadata", doc: replaceXMP(t, a1rgb, "\x00\xff<<< not XML"), logo: png, space: "DeviceRGB", filt: "FlateDecode", smask: true, ops: "RG rg", ink: "red"},
		{name: "metadata length past the end", doc: metadataLengthPastEnd(t, a1rgb), logo: png, space: "DeviceRGB", filt: "FlateDecode", smask: true, ops: "RG rg", ink: "red", broken: true},
		// An output intent without its profile is no output intent.
		{name: "missing output profile", doc: missingOutputProfile(t, pdftest.Bytes(pdftest.Spec{PDFA: 2, OutputIntentN: 4})), logo: png, space: "DeviceRGB", filt: "FlateDecode", smask: true, ops: "RG rg", ink: "red"},
	}
	pl := pades.Placement{Page: 1, X: 300, Y: 40, Width: 220, Height: 70}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, _ := signingtest.SealPDF(t, key, tt.doc, pades.Options{Placement: pl, Reason: "Archived", Location: "Hamburg", Stamp: stamp.Options{Logo: tt.logo}})
			if tt.broken {
				if sigs := signingtest.PDFSig(t, signingtest.WriteTemp(t, "sealed.pdf", sealed)); len(sigs) != 1 || sigs[0].Validation != "Signature is Valid." {
					t.Errorf("pdfsig: %+v", sigs)
				}
			} else {
				signingtest.CheckIndependently(t, sealed, 1)
			}
			content, logo := stampAppearance(t, sealed)
			if ops := colourOperators(content); ops != tt.ops {
				t.Errorf("colour operators %q, want %q in\n%s", ops, tt.ops, content)
			}
			_, smask := logo["SMask"]
			if logo.Name("ColorSpace") != tt.space || logo.Name("Filter") != tt.filt || smask != tt.smask {
				t.Errorf("logo %v %v, soft mask %v; want %s %s, %v", logo["ColorSpace"], logo["Filter"], smask, tt.space, tt.filt, tt.smask)
			}
			update := sealed[len(tt.doc):]
			if bytes.Contains(update, []byte("/SMask")) != tt.smask {
				t.Errorf("/SMask in the update: %v, want %v", !tt.smask, tt.smask)
			}
			for _, cs := range []string{"DeviceRGB", "DeviceCMYK"} {
				if pdf.Name(cs) != tt.space && bytes.Contains(update, []byte("/"+cs)) {
					t.Errorf("the update uses /%s; the logo is %s", cs, tt.space)
				}
			}
			before, after := render(t, tt.doc, 1), render(t, sealed, 1)
			in, out := inkOutside(before, after, pl.X, pl.Y, pl.Width, pl.Height)
			if out != 0 || in < 500 {
				t.Errorf("%d stamp pixels inside the rectangle, %d outside", in, out)
			}
			red, colourful := inkColours(before, after)
			switch {
			case tt.ink == "red" && red < 500:
				t.Errorf("%d pixels show the logo's red disc", red)
			case tt.ink == "gray" && colourful != 0:
				t.Errorf("%d stamp pixels are not gray", colourful)
			}
		})
	}
}

// elementXMP claims PDF/A-1b with the properties as elements, as some
// producers write them.
const elementXMP = `<?xpacket begin="` + "\ufeff" + `" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" rdf:about="">
<pdfaid:part>1</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>`

var xmpRE = regexp.MustCompile(`(?s)<\?xpacket begin.*<\?xpacket end="w"\?>`)

// replaceXMP writes packet over doc's XMP packet in place, padded with
// spaces to the same length so that every offset stays right.
func replaceXMP(t testing.TB, doc []byte, packet string) []byte {
	t.Helper()
	loc := xmpRE.FindIndex(doc)
	if loc == nil || len(packet) > loc[1]-loc[0] {
		t.Fatalf("no XMP packet of at least %d bytes in the document", len(packet))
	}
	out := bytes.Clone(doc)
	copy(out[loc[0]:loc[1]], packet+strings.Repeat(" ", loc[1]-loc[0]-len(packet)))
	return out
}

// metadataLengthPastEnd gives the metadata stream a /Length of as many
// digits reaching past the end of the file.
func metadataLengthPastEnd(t testing.TB, doc []byte) []byte {
	t.Helper()
	return nines(t, doc, regexp.MustCompile(`/Subtype /XML /Length (\d+)`), len(doc))
}

// missingOutputProfile points the output intent at an object the file does
// not have.
func missingOutputProfile(t testing.TB, doc []byte) []byte {
	t.Helper()
	return nines(t, doc, regexp.MustCompile(`/DestOutputProfile (\d+) 0 R`), 0)
}

// nines overwrites the number re's group matches with as many nines, which
// must exceed above.
func nines(t testing.TB, doc []byte, re *regexp.Regexp, above int) []byte {
	t.Helper()
	m := re.FindSubmatchIndex(doc)
	if m == nil {
		t.Fatalf("%s not in the document", re)
	}
	n := strings.Repeat("9", m[3]-m[2])
	if v, _ := strconv.Atoi(n); v <= above {
		t.Fatalf("%s: %s does not exceed %d", re, n, above)
	}
	out := bytes.Clone(doc)
	copy(out[m[2]:m[3]], n)
	return out
}

// stampAppearance returns the decoded content of the stamp on page 1 of a
// sealed file (the normal appearance of the page's last widget) and its
// logo's image dictionary.
func stampAppearance(t testing.TB, sealed []byte) ([]byte, pdf.Dict) {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := pdf.Open(bytes.NewReader(sealed), int64(len(sealed)))
	check(err)
	page, err := r.Page(1)
	check(err)
	annots, err := r.Array(page.Dict["Annots"])
	check(err)
	if len(annots) == 0 {
		t.Fatal("page 1 has no annotations")
	}
	widget, err := r.Dict(annots[len(annots)-1])
	check(err)
	ap, err := r.Dict(widget["AP"])
	check(err)
	o, err := r.Resolve(ap["N"])
	check(err)
	form, ok := o.(*pdf.Stream)
	if !ok {
		t.Fatalf("the stamp's appearance is a %T", o)
	}
	content, err := r.StreamData(form)
	check(err)
	res, err := r.Dict(form.Dict["Resources"])
	check(err)
	xobjects, err := r.Dict(res["XObject"])
	check(err)
	logo, err := r.Dict(xobjects["Logo"])
	check(err)
	return content, logo
}

// colourOperators lists the colour-setting operators of a content stream,
// each once, in order of first use.
func colourOperators(content []byte) string {
	var ops []string
	for _, tok := range strings.Fields(string(content)) {
		switch tok {
		case "g", "G", "rg", "RG", "k", "K", "cs", "CS", "sc", "SC", "scn", "SCN":
			if !slices.Contains(ops, tok) {
				ops = append(ops, tok)
			}
		}
	}
	return strings.Join(ops, " ")
}

// inkColours counts, among the pixels the stamp changed, those in the red
// of testLogo's disc and those that are not gray.
func inkColours(before, after image.Image) (red, colourful int) {
	b := after.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if sameColor(before.At(x, y), after.At(x, y)) {
				continue
			}
			r, g, bl, _ := after.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r > 0x90 && g < 0x60 && bl < 0x70 {
				red++
			}
			if max(r, g, bl)-min(r, g, bl) > 2 {
				colourful++
			}
		}
	}
	return red, colourful
}
