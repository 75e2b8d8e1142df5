package stamp_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/signing/stamp"
)

// stampAreaText is the text pdftotext finds inside pl on the sealed page,
// with runs of white space made one space.
func stampAreaText(t testing.TB, sealed []byte, pl pades.Placement) string {
	t.Helper()
	file := signingtest.WriteTemp(t, "sealed.pdf", sealed)
	n := fmt.Sprint(pl.Page)
	g := func(v float64) string { return strconv.Itoa(int(v)) }
	out, err := exec.Command("pdftotext", "-f", n, "-l", n, "-r", "72", "-enc", "UTF-8",
		"-x", g(pl.X), "-y", g(842-pl.Y-pl.Height), "-W", g(pl.Width), "-H", g(pl.Height), file, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// companySeal is a seal key whose certificate names org and is not of the
// development PKI: a stand-in for a qualified seal.
func companySeal(t testing.TB, org string) signing.Key {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: org + " Seal", Organization: []string{org}, Country: []string{"DE"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	key, err := softkey.New(k, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// cjkFont is Debian's IPAGothic (fonts-ipafont-gothic), a TrueType-outlined
// font with Latin and Japanese glyphs.
func cjkFont(t testing.TB) *stamp.Font {
	t.Helper()
	const path = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"
	data, err := os.ReadFile(path)
	if err != nil {
		if out, err := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "fonts-ipafont-gothic").CombinedOutput(); err != nil {
			t.Skipf("fonts-ipafont-gothic cannot be installed: %v\n%s", err, out)
		}
		if data, err = os.ReadFile(path); err != nil {
			t.Fatal(err)
		}
	}
	f, err := stamp.ParseFont(data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// xImageTestFont reads one of golang.org/x/image's test fonts.
func xImageTestFont(t testing.TB, name string) []byte {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "golang.org/x/image").Output()
	if err != nil {
		t.Fatalf("locating golang.org/x/image: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "font", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var tfRE = regexp.MustCompile(`([0-9.]+) Tf`)

// The stamp says what a company seal says — heading, organisation, time
// with its zone, reason and location wrapped at a readable size, the
// verification hint, a development seal's marking — in the configured
// language and font, all inside its rectangle.
func TestStampText(t *testing.T) {
	dev, _ := signingtest.SoftHSMSeal(t)
	company := companySeal(t, "Beispiel Handels AG")
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	long := "Invoice 2026-4711 approved for payment by the accounts payable department after a three-way match with order and delivery note"
	small := pades.Placement{Page: 1, X: 300, Y: 40, Width: 200, Height: 70}
	large := pades.Placement{Page: 1, X: 300, Y: 40, Width: 260, Height: 100}
	tests := []struct {
		name             string
		key              signing.Key
		pl               pades.Placement
		reason, location string
		opts             stamp.Options
		want, notWant    []string
		font             string // the embedded font's name
	}{
		{name: "English, development seal", key: dev, pl: small, reason: "Invoice approved", location: "Hamburg",
			want: []string{"ELECTRONICALLY SEALED", "Example Manufacturing GmbH", "2026-11-30 14:25:07 UTC", "Reason: Invoice approved", "Location: Hamburg", "development — not qualified"}},
		{name: "German, Berlin time", key: dev, pl: small, reason: "Rechnung freigegeben", location: "Hamburg", opts: stamp.Options{Language: stamp.LanguageGerman, TimeZone: berlin},
			want:    []string{"ELEKTRONISCH VERSIEGELT", "2026-11-30 15:25:07 CET", "Grund: Rechnung freigegeben", "Ort: Hamburg", "Entwicklung — nicht qualifiziert"},
			notWant: []string{"development", "Reason"}},
		{name: "long reason wraps", key: dev, pl: large, reason: long, location: "Hamburg",
			want: []string{"Reason: " + long, "Location: Hamburg"}},
		{name: "verification hint", key: dev, pl: large, reason: "Approved", opts: stamp.Options{VerifyURL: "https://seal.example.com/"},
			want: []string{"Verify: https://seal.example.com/"}},
		{name: "company seal: no development marking", key: company, pl: small, reason: "Approved",
			want: []string{"ELECTRONICALLY SEALED", "Beispiel Handels AG", "Reason: Approved"}, notWant: []string{"development"}},
		{name: "CJK in a configured font", key: company, pl: large, reason: "請求書を承認しました", location: "東京都千代田区", opts: stamp.Options{Font: cjkFont(t)},
			want: []string{"ELECTRONICALLY SEALED", "Reason: 請求書を承認しました", "Location: 東京都千代田区"}, font: "IPAGothic"},
		{name: "a small field drops the hint, keeps the text", key: dev, pl: pades.Placement{Page: 1, X: 300, Y: 40, Width: 150, Height: 45}, opts: stamp.Options{VerifyURL: "https://seal.example.com/"},
			want: []string{"Example Manufacturing GmbH", "development — not qualified"}, notWant: []string{"Verify"}},
	}
	doc := pdftest.Bytes(pdftest.Spec{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, _ := signingtest.SealPDF(t, tt.key, doc, pades.Options{Placement: tt.pl, Reason: tt.reason, Location: tt.location, Time: pictureTime, Stamp: tt.opts})
			signingtest.CheckIndependently(t, sealed, 1)
			text := stampAreaText(t, sealed, tt.pl)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("the stamp does not say %q; it says %q", w, text)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(text, w) {
					t.Errorf("the stamp says %q: %q", w, text)
				}
			}
			content, _ := stampAppearance(t, sealed)
			for _, m := range tfRE.FindAllSubmatch(content, -1) {
				if size, _ := strconv.ParseFloat(string(m[1]), 64); size < stamp.MinFontSize {
					t.Errorf("text set at %g points, below the readable %g", size, stamp.MinFontSize)
				}
			}
			font := tt.font
			if font == "" {
				font = "GoRegular"
			}
			fonts, err := exec.Command("pdffonts", signingtest.WriteTemp(t, "sealed.pdf", sealed)).CombinedOutput()
			if err != nil {
				t.Fatalf("pdffonts: %v\n%s", err, fonts)
			}
			if !regexp.MustCompile(`[A-Z]{6}\+` + font + `\s+CID TrueType\s+Identity-H\s+yes\s+yes\s+yes`).Match(fonts) {
				t.Errorf("the stamp font is not an embedded %s subset with a Unicode map:\n%s", font, fonts)
			}
		})
	}
}

// Text the stamp cannot draw whole is refused with a code naming the field
// — too long for the rectangle at the readable size, or with a character
// the font lacks — as are bad stamp options; in every case before the key
// is asked to sign and before a byte is written.
func TestStampRefusals(t *testing.T) {
	dev, _ := signingtest.SoftHSMSeal(t)
	few, err := stamp.ParseFont(xImageTestFont(t, "glyfTest.ttf"))
	if err != nil {
		t.Fatal(err)
	}
	small := pades.Placement{Page: 1, X: 300, Y: 40, Width: 200, Height: 70}
	tests := []struct {
		name             string
		key              signing.Key
		reason, location string
		opts             stamp.Options
		code             fault.Code
		msg              []string
	}{
		{name: "reason too long", key: dev, reason: strings.Repeat("approved ", 40), code: stamp.CodeTextTooLong, msg: []string{"reason", "200 × 70", "6 points"}},
		{name: "location too long", key: dev, reason: "ok", location: strings.Repeat("Hamburg ", 30), code: stamp.CodeTextTooLong, msg: []string{"location", "200 × 70"}},
		{name: "fixed size too large", key: dev, reason: "Invoice approved", opts: stamp.Options{FontSize: 14}, code: stamp.CodeTextTooLong, msg: []string{"reason", "14 points"}},
		{name: "check mark in the reason", key: dev, reason: "Approved ✓", code: stamp.CodeGlyphMissing, msg: []string{"reason", `U+2713 '✓'`, "GoRegular"}},
		{name: "CJK in Go Regular", key: dev, location: "東京", code: stamp.CodeGlyphMissing, msg: []string{"location", `U+6771 '東'`}},
		{name: "organisation", key: companySeal(t, "Kōbō ★ Works"), code: stamp.CodeGlyphMissing, msg: []string{"organisation", `U+2605 '★'`}},
		{name: "heading in a font without it", key: dev, opts: stamp.Options{Font: few}, code: stamp.CodeGlyphMissing, msg: []string{"heading", "U+"}},
		{name: "right-to-left", key: dev, reason: "מאושר", code: stamp.CodeGlyphMissing, msg: []string{"reason", "right-to-left"}},
		{name: "font size below readable", key: dev, opts: stamp.Options{FontSize: 4}, code: signing.CodePAdESOptionInvalid, msg: []string{"fontSize"}},
		{name: "QR without URL", key: dev, opts: stamp.Options{QR: true}, code: signing.CodePAdESOptionInvalid, msg: []string{"qr"}},
		{name: "verify URL not http", key: dev, opts: stamp.Options{VerifyURL: "ftp://seal.example.com"}, code: signing.CodePAdESOptionInvalid, msg: []string{"verifyURL"}},
		{name: "background not a colour", key: dev, opts: stamp.Options{Background: "blue"}, code: signing.CodePAdESOptionInvalid, msg: []string{"background"}},
		{name: "unknown language", key: dev, opts: stamp.Options{Language: "fr"}, code: signing.CodePAdESOptionInvalid, msg: []string{"language"}},
	}
	doc := pdftest.Bytes(pdftest.Spec{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := &signingtest.CountingKey{Key: tt.key}
			var out bytes.Buffer
			_, err := pades.Seal(context.Background(), key, bytes.NewReader(doc), int64(len(doc)), &out,
				pades.Options{Placement: small, Reason: tt.reason, Location: tt.location, Stamp: tt.opts})
			if fault.CodeOf(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			for _, m := range tt.msg {
				if !strings.Contains(fault.As(err).Msg, m) {
					t.Errorf("the message %q does not mention %q", fault.As(err).Msg, m)
				}
			}
			if key.Signs.Load() != 0 || out.Len() != 0 {
				t.Errorf("refused, yet the key signed %d times and %d bytes were written", key.Signs.Load(), out.Len())
			}
		})
	}
}

// Only TrueType-outlined single fonts can be stamp fonts: the subsetter cuts
// glyf tables.
func TestParseFontRefusals(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"CFF OpenType", xImageTestFont(t, "CFFTest.otf"), "CFF"},
		{"collection", append([]byte("ttcf"), make([]byte, 64)...), "collection"},
		{"not a font", []byte("%PDF-1.7 not a font"), "font:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stamp.ParseFont(tt.data)
			if fault.CodeOf(err) != signing.CodePAdESOptionInvalid || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseFont = %v, want %s mentioning %q", err, signing.CodePAdESOptionInvalid, tt.want)
			}
		})
	}
}

// The stamp's background is opaque: over page text it looks exactly as over
// an empty page, in every pixel inside its rectangle.
func TestStampOpaque(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	// pdftest writes the page's text at 72, 742 in 18 points.
	pl := pades.Placement{Page: 1, X: 60, Y: 700, Width: 260, Height: 100}
	withText := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "WWWWWWWWWWWWWWWWWWWW"}}})
	blank := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: " "}}})
	for _, bg := range []string{"", "#FFFFFF", "#FFF4E0"} {
		t.Run("background "+bg, func(t *testing.T) {
			opts := pades.Options{Placement: pl, Reason: "Approved", Time: pictureTime, Stamp: stamp.Options{Background: bg, Logo: signingtest.Logo(t)}}
			over, _ := signingtest.SealPDF(t, key, withText, opts)
			alone, _ := signingtest.SealPDF(t, key, blank, opts)
			signingtest.CheckIndependently(t, over, 1)
			page := renderArea(t, withText, pl, 0, 72)
			a, b := renderArea(t, over, pl, 0, 72), renderArea(t, alone, pl, 0, 72)
			ink, shows := 0, 0
			r := a.Bounds()
			for y := r.Min.Y + 1; y < r.Max.Y-1; y++ {
				for x := r.Min.X + 1; x < r.Max.X-1; x++ {
					if cr, _, _, _ := page.At(x, y).RGBA(); cr < 0x8000 {
						ink++
					}
					if !sameColor(a.At(x, y), b.At(x, y)) {
						shows++
					}
				}
			}
			if ink < 200 {
				t.Fatalf("only %d pixels of page text under the stamp: the test shows nothing", ink)
			}
			if shows != 0 {
				t.Errorf("%d pixels of the page show through the stamp (%d of page ink under it)", shows, ink)
			}
		})
	}
}

// With qr set the stamp carries a QR code of the verification URL that a
// scanner reads (zbarimg, Debian zbar-tools).
func TestStampQR(t *testing.T) {
	key, _ := signingtest.SoftHSMSeal(t)
	doc := pdftest.Bytes(pdftest.Spec{})
	const url = "https://seal.example.com/verify"
	for _, pl := range []pades.Placement{
		{Page: 1, X: 300, Y: 40, Width: 200, Height: 70},
		{Page: 1, X: 300, Y: 40, Width: 260, Height: 100},
	} {
		t.Run(fmt.Sprintf("%gx%g", pl.Width, pl.Height), func(t *testing.T) {
			sealed, _ := signingtest.SealPDF(t, key, doc, pades.Options{Placement: pl, Reason: "Approved", Stamp: stamp.Options{VerifyURL: url, QR: true, Logo: signingtest.Logo(t)}})
			signingtest.CheckIndependently(t, sealed, 1)
			if _, err := exec.LookPath("zbarimg"); err != nil {
				if out, err := exec.Command("apt-get", "install", "-y", "--no-install-recommends", "zbar-tools").CombinedOutput(); err != nil {
					t.Skipf("zbar-tools cannot be installed: %v\n%s", err, out)
				}
			}
			img := renderArea(t, sealed, pl, 8, 150)
			path := filepath.Join(t.TempDir(), "stamp.png")
			writePNG(t, path, img)
			out, err := exec.Command("zbarimg", "--quiet", "--raw", path).Output()
			if err != nil || strings.TrimSpace(string(out)) != url {
				t.Errorf("zbarimg: %v: %q, want %q", err, out, url)
			}
		})
	}
}
