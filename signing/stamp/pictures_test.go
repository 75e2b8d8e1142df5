package stamp_test

import (
	"bytes"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/stamp"
)

var update = flag.Bool("update", false, "rewrite the stamp pictures in docs/")

// renderArea draws the rectangle pl of a sealed file's page, with margin
// points around it, as pdftoppm sees it at dpi.
func renderArea(t testing.TB, sealed []byte, pl pades.Placement, margin float64, dpi int) image.Image {
	t.Helper()
	px := func(v float64) string { return fmt.Sprint(int(v * float64(dpi) / 72)) }
	const pageHeight = 842 // A4, as pdftest makes it
	x, y := pl.X-margin, pageHeight-(pl.Y+pl.Height)-margin
	n := fmt.Sprint(pl.Page)
	return pdftoppm(t, sealed, "-r", fmt.Sprint(dpi), "-f", n, "-l", n,
		"-x", px(x), "-y", px(y), "-W", px(pl.Width+2*margin), "-H", px(pl.Height+2*margin))
}

func writePNG(t testing.TB, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pictureTime is the sealing time of the stamps shown in the README.
var pictureTime = time.Date(2026, 11, 30, 14, 25, 7, 0, time.UTC)

// The README shows two stamps as sealgate draws them: docs/stamp-*.png are
// this test's output (rewrite them with
// go test ./signing/stamp -run TestREADMEPictures -update). Without
// -update the test checks that the pictures are still what the code draws,
// allowing for anti-aliasing differences between poppler versions.
func TestREADMEPictures(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file             string
		pl               pades.Placement
		reason, location string
		opts             stamp.Options
	}{
		{"stamp-en.png", pades.Placement{Page: 1, X: 300, Y: 40, Width: 260, Height: 100},
			"Invoice 2026-4711 approved for payment", "Hamburg",
			stamp.Options{Logo: signingtest.Logo(t), VerifyURL: "https://seal.example.com/", QR: true}},
		{"stamp-de.png", pades.Placement{Page: 1, X: 300, Y: 40, Width: 200, Height: 70},
			"Rechnung freigegeben", "Hamburg",
			stamp.Options{Language: stamp.LanguageGerman, TimeZone: berlin}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sealed, _ := signingtest.SealPDF(t, key, doc, pades.Options{Placement: tt.pl, Reason: tt.reason, Location: tt.location, Time: pictureTime, Stamp: tt.opts})
			signingtest.CheckIndependently(t, sealed, 1)
			img := renderArea(t, sealed, tt.pl, 4, 150)
			path := filepath.Join("..", "..", "docs", tt.file)
			if *update {
				writePNG(t, path, img)
				return
			}
			f, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (make it with -update)", err)
			}
			old, err := png.Decode(bytes.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			if old.Bounds() != img.Bounds() {
				t.Fatalf("%s is %v, the stamp renders as %v: run go test ./signing/stamp -run TestREADMEPictures -update", path, old.Bounds(), img.Bounds())
			}
			differ := 0
			b := img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					if !sameColor(old.At(x, y), img.At(x, y)) {
						differ++
					}
				}
			}
			if differ > b.Dx()*b.Dy()/50 {
				t.Errorf("%d of %d pixels of %s differ from what the stamp draws now: run go test ./signing/stamp -run TestREADMEPictures -update", differ, b.Dx()*b.Dy(), path)
			}
		})
	}
}
