package stamp_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/stamp"
)

// render draws page n of a PDF as pdftoppm sees it at 72 dpi (one pixel per
// PDF unit), cropped to the page's crop box as a viewer shows it.
func render(t testing.TB, file []byte, page int) image.Image {
	t.Helper()
	n := fmt.Sprint(page)
	return pdftoppm(t, file, "-r", "72", "-cropbox", "-f", n, "-l", n)
}

// pdftoppm renders file with args (which select one page) and decodes the
// PNG it writes.
func pdftoppm(t testing.TB, file []byte, args ...string) image.Image {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pdf")
	if err := os.WriteFile(in, file, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "page")
	args = append(append([]string{"-png", "-singlefile"}, args...), in, out)
	if msg, err := exec.Command("pdftoppm", args...).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, msg)
	}
	f, err := os.ReadFile(out + ".png")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// inkOutside compares two renderings and counts changed pixels inside and
// outside the rectangle given in displayed-page PDF units (origin lower left).
func inkOutside(before, after image.Image, x, y, w, h float64) (inside, outside int) {
	b := after.Bounds()
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			if sameColor(before.At(px, py), after.At(px, py)) {
				continue
			}
			// Image rows run top down; one pixel of slack for anti-aliasing.
			ux, uy := float64(px), float64(b.Dy()-py)
			if ux >= x-1 && ux <= x+w+1 && uy >= y-1 && uy <= y+h+1 {
				inside++
			} else {
				outside++
			}
		}
	}
	return inside, outside
}

func sameColor(a, b color.Color) bool {
	r1, g1, b1, _ := a.RGBA()
	r2, g2, b2, _ := b.RGBA()
	return r1 == r2 && g1 == g2 && b1 == b2
}

// The visible stamp is drawn where asked, on plain, rotated and cropped
// pages alike, and nowhere else.
func TestStampPlacement(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	crop := [4]float64{50, 60, 545, 782}
	doc := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{
		{Text: "plain"},
		{Text: "rotated 90", Rotate: 90},
		{Text: "rotated 180", Rotate: 180},
		{Text: "rotated 270", Rotate: 270},
		{Text: "cropped", CropBox: &crop},
		{Text: "cropped and rotated", CropBox: &crop, Rotate: 90},
	}})
	logo := signingtest.Logo(t)
	tests := []struct {
		page int
		pl   pades.Placement
	}{
		{1, pades.Placement{X: 330, Y: 40, Width: 220, Height: 70}},
		{2, pades.Placement{X: 500, Y: 30, Width: 240, Height: 80}},
		{3, pades.Placement{X: 40, Y: 700, Width: 200, Height: 60}},
		{4, pades.Placement{X: 60, Y: 400, Width: 180, Height: 90}},
		{5, pades.Placement{X: 10, Y: 10, Width: 200, Height: 60}},
		{6, pades.Placement{X: 400, Y: 300, Width: 250, Height: 70}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("page%d", tt.page), func(t *testing.T) {
			tt.pl.Page = tt.page
			sealed, _ := signingtest.SealPDF(t, key, doc, pades.Options{
				Placement: tt.pl, Reason: "Approved", Location: "Hamburg",
				Stamp: stamp.Options{Logo: logo},
			})
			before, after := render(t, doc, tt.page), render(t, sealed, tt.page)
			in, out := inkOutside(before, after, tt.pl.X, tt.pl.Y, tt.pl.Width, tt.pl.Height)
			if out != 0 || in < 500 {
				t.Errorf("page %d: %d stamp pixels inside the rectangle, %d outside", tt.page, in, out)
			}
			if os.Getenv("SEALGATE_KEEP_RENDER") != "" {
				f, _ := os.Create(filepath.Join(os.Getenv("SEALGATE_KEEP_RENDER"), fmt.Sprintf("stamp-page%d.png", tt.page)))
				png.Encode(f, after)
				f.Close()
			}
		})
	}
}

// The stamp fills an existing field's rectangle, with each layout option,
// in the embedded Go font.
func TestStampLayouts(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	rect := [4]float64{300, 50, 540, 130}
	doc := pdftest.Bytes(pdftest.Spec{SigField: "Approval", SigFieldRect: rect})
	tests := []struct {
		name  string
		stamp stamp.Options
	}{
		{"text only", stamp.Options{}},
		{"PNG logo left", stamp.Options{Logo: signingtest.Logo(t)}},
		{"JPEG logo on top", stamp.Options{Logo: testJPEG(t), LogoPosition: stamp.LogoTop}},
		{"fixed font size", stamp.Options{FontSize: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, _ := signingtest.SealPDF(t, key, doc, pades.Options{Field: "Approval", Reason: "Approved", Location: "Hamburg", Stamp: tt.stamp})
			in, out := inkOutside(render(t, doc, 1), render(t, sealed, 1), rect[0], rect[1], rect[2]-rect[0], rect[3]-rect[1])
			if out != 0 || in < 500 {
				t.Errorf("%d stamp pixels inside the field, %d outside", in, out)
			}
			fonts, err := exec.Command("pdffonts", signingtest.WriteTemp(t, "sealed.pdf", sealed)).CombinedOutput()
			if err != nil {
				t.Fatalf("pdffonts: %v\n%s", err, fonts)
			}
			if !regexp.MustCompile(`[A-Z]{6}\+GoRegular\s+CID TrueType\s+Identity-H\s+yes\s+yes\s+yes`).Match(fonts) {
				t.Errorf("the stamp font is not an embedded subset with a Unicode map:\n%s", fonts)
			}
			signingtest.CheckIndependently(t, sealed, 1)
		})
	}
}

// testJPEG is a 60×30 JPEG in two colours.
func testJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 60, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 60; x++ {
			c := color.RGBA{R: 0x20, G: 0x40, B: 0xa0, A: 0xff}
			if x > 30 {
				c = color.RGBA{R: 0xe0, G: 0xb0, B: 0x20, A: 0xff}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
