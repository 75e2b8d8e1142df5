package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/server"
)

// writeLogo writes a 40×20 PNG in pure red with a transparent stripe.
func writeLogo(t *testing.T, dir string) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			a := uint8(255)
			if x < 4 {
				a = 0
			}
			img.Set(x, y, color.NRGBA{R: 255, A: a})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "logo.png")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// redInside counts strongly red pixels of page 1, rendered at 72 dpi,
// inside and outside the rectangle (PDF units from the lower-left corner).
func redInside(t *testing.T, file string, x, y, w, h int) (inside, outside int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "page")
	if msg, err := run(t, "pdftoppm", "-r", "72", "-png", "-singlefile", "-f", "1", "-l", "1", file, out); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, msg)
	}
	f, err := os.Open(out + ".png")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			r, g, bl, _ := img.At(px, py).RGBA()
			if r>>8 < 200 || g>>8 > 80 || bl>>8 > 80 {
				continue
			}
			ux, uy := px, b.Dy()-py
			if ux >= x && ux <= x+w && uy >= y && uy <= y+h {
				inside++
			} else {
				outside++
			}
		}
	}
	return inside, outside
}

// The configured stamp look (a logo) and revocation file (a CRL of the
// seal's CA) reach a B-LT seal made over REST: the logo is drawn inside the
// stamp, nowhere else, and the CRL is in the document security store.
func TestStampAndRevocationSettings(t *testing.T) {
	var crlFile string
	n, cfg := nodeConfig(t, func(doc map[string]any) {
		dir := filepath.Dir(doc["database"].(string))
		crlFile = filepath.Join(dir, "ca.crl")
		s := doc["seal"].(map[string]any)
		s["stamp"] = map[string]any{"logo": writeLogo(t, dir), "logoPosition": "left"}
		s["revocation"] = map[string]any{"fetch": false, "crl": []string{crlFile}}
	})
	crl, err := n.CA.CRL(24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crlFile, crl, 0o644); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, n, cfg)

	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0043"}}})
	resp, sealed := n.sealPDF(t, "format=pades&level=B-LT&page=1&x=300&y=40&width=240&height=80", invoice)
	if lvl := resp.Header.Get("Sealgate-Level"); lvl != "B-LT" {
		t.Errorf("level %q", lvl)
	}
	if un := resp.Header.Get("Sealgate-Revocation-Unavailable"); un != "" {
		t.Errorf("revocation unavailable for %s certificates, though the CRL covers the chain", un)
	}
	f := writeTemp(t, "sealed.pdf", sealed)
	if out, err := run(t, "pdfsig", "-nocert", f); err != nil || !strings.Contains(out, "Signature is Valid.") {
		t.Errorf("pdfsig: %v\n%s", err, out)
	}
	if in, out := redInside(t, f, 300, 40, 240, 80); in < 200 || out != 0 {
		t.Errorf("logo: %d red pixels inside the stamp, %d outside", in, out)
	}
	// The store's streams are compressed; qpdf writes them out plain.
	plain := filepath.Join(t.TempDir(), "plain.pdf")
	if out, err := run(t, "qpdf", "--stream-data=uncompress", "--object-streams=disable", f, plain); err != nil {
		t.Fatalf("qpdf: %v\n%s", err, out)
	}
	b, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, crl) {
		t.Error("the configured CRL is not in the sealed document")
	}
}

// The configured wording, zone, verification hint and QR code reach a seal
// made over REST, and stamp text that cannot be drawn is refused with 400
// and its code, sealing nothing.
func TestStampWordingSettings(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["seal"].(map[string]any)["stamp"] = map[string]any{
			"language": "de", "timeZone": "Europe/Berlin", "verifyURL": "https://seal.example.com/", "qr": true, "background": "#FFFFFF",
		}
	})
	invoice := pdftest.Bytes(pdftest.Spec{})
	_, sealed := n.sealPDF(t, "format=pades&page=1&x=300&y=40&width=260&height=100&reason=Rechnung+freigegeben", invoice)
	f := writeTemp(t, "sealed.pdf", sealed)
	text, err := run(t, "pdftotext", "-enc", "UTF-8", f, "-")
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, text)
	}
	for _, want := range []string{"ELEKTRONISCH VERSIEGELT", "Grund: Rechnung freigegeben", "Prüfen: https://seal.example.com/", "Entwicklung — nicht qualifiziert"} {
		if !strings.Contains(text, want) {
			t.Errorf("the stamp does not say %q:\n%s", want, text)
		}
	}
	if !regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T`).MatchString(text) {
		t.Errorf("the sealing time is not shown in Berlin time:\n%s", text)
	}
	for _, tt := range []struct{ reason, code string }{
		{strings.Repeat("freigegeben+", 60), "stamp_text_too_long"},
		{"gepr%C3%BCft+%E2%9C%93", "stamp_glyph_missing"},
	} {
		resp, body := n.post(t, "/api/v1/seals?format=pades&page=1&x=300&y=40&width=200&height=70&reason="+tt.reason, n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(invoice))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"code":"`+tt.code+`"`) {
			t.Errorf("reason %.30s…: status %s, %s; want 400 %s", tt.reason, resp.Status, body, tt.code)
		}
	}
}

// Bad stamp and revocation settings stop the start with a message naming
// the setting, instead of failing every seal later.
func TestStampAndRevocationSettingsRefused(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("GIF89a not a logo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An OpenType font with CFF outlines starts with the tag OTTO.
	cff := filepath.Join(t.TempDir(), "font.otf")
	if err := os.WriteFile(cff, append([]byte("OTTO"), make([]byte, 64)...), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		settings map[string]any
		want     string
	}{
		{"logo not an image", map[string]any{"stamp": map[string]any{"logo": junk}}, "seal.stamp.logo"},
		{"logo missing", map[string]any{"stamps": map[string]any{"acme": map[string]any{"logo": junk + ".png"}}}, "seal.stamps.acme.logo"},
		{"logo position", map[string]any{"stamp": map[string]any{"logoPosition": "right"}}, "seal.stamp.logoPosition"},
		{"font size", map[string]any{"stamp": map[string]any{"fontSize": -3}}, "seal.stamp.fontSize"},
		{"font not TrueType", map[string]any{"stamp": map[string]any{"font": cff}}, "seal.stamp.font: the font has CFF"},
		{"font missing", map[string]any{"stamps": map[string]any{"acme": map[string]any{"font": junk + ".ttf"}}}, "seal.stamps.acme.font"},
		{"time zone", map[string]any{"stamp": map[string]any{"timeZone": "Mars/Olympus_Mons"}}, "seal.stamp.timeZone"},
		{"language", map[string]any{"stamp": map[string]any{"language": "fr"}}, "seal.stamp.language"},
		{"QR without URL", map[string]any{"stamp": map[string]any{"qr": true}}, "seal.stamp.qr"},
		{"background", map[string]any{"stamp": map[string]any{"background": "white"}}, "seal.stamp.background"},
		{"CRL not a CRL", map[string]any{"revocation": map[string]any{"crl": []string{junk}}}, "seal.revocation.crl"},
		{"OCSP not a response", map[string]any{"revocation": map[string]any{"ocsp": []string{junk}}}, "seal.revocation.ocsp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cfg := nodeConfig(t, func(doc map[string]any) {
				for k, v := range tt.settings {
					doc["seal"].(map[string]any)[k] = v
				}
			})
			srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				srv.Close()
				t.Fatal("the node started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

// Without revocation data for the chain, a B-LT request still seals, at
// B-T, and the answer says for how many certificates the data is missing.
func TestRevocationUnavailableReported(t *testing.T) {
	n := newNode(t)
	invoice := pdftest.Bytes(pdftest.Spec{})
	resp, _ := n.sealPDF(t, "format=pades&level=B-LT", invoice)
	// The seal's certificate and the TSA's; the development CA publishes
	// neither OCSP nor CRL, and the root is not checked.
	if un := resp.Header.Get("Sealgate-Revocation-Unavailable"); un != "2" {
		t.Errorf("Sealgate-Revocation-Unavailable %q, want 2", un)
	}
	// Without that data the document reaches B-T only, and says so.
	if lvl := resp.Header.Get("Sealgate-Level"); lvl != "B-T" {
		t.Errorf("Sealgate-Level %q, want B-T", lvl)
	}
}

// A certification seal over REST: the verification report names its
// DocMDP permission; an approval seal may follow under form filling, a
// second certification is refused, and an unknown permission is a 400.
func TestCertificationOverREST(t *testing.T) {
	n := newNode(t)
	doc := pdftest.Bytes(pdftest.Spec{SigField: "Approval"})
	_, certified := n.sealPDF(t, "format=pades&level=B-B&certify=form-filling", doc)
	_, approved := n.sealPDF(t, "format=pades&level=B-B&field=Approval", certified)
	resp, b := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(approved))
	var rep struct {
		Valid bool `json:"valid"`
		PDF   struct {
			Signatures []struct {
				Valid         bool   `json:"valid"`
				Certification string `json:"certification"`
			} `json:"signatures"`
		} `json:"pdf"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("verification: %s %s", resp.Status, b)
	}
	if sigs := rep.PDF.Signatures; !rep.Valid || len(sigs) != 2 || sigs[0].Certification != "form-filling" || sigs[1].Certification != "" || !sigs[0].Valid || !sigs[1].Valid {
		t.Errorf("report: %s", b)
	}
	if out, err := run(t, "pdfsig", "-nocert", writeTemp(t, "approved.pdf", approved)); err != nil || strings.Count(out, "Signature is Valid.") != 2 {
		t.Errorf("pdfsig: %v\n%s", err, out)
	}

	for _, tt := range []struct {
		query  string
		body   []byte
		status int
		code   string
	}{
		{"certify=annotations", certified, http.StatusConflict, "pdf_signing_forbidden"},
		{"certify=everything", doc, http.StatusBadRequest, "pades_option_invalid"},
	} {
		resp, b := n.post(t, "/api/v1/seals?format=pades&level=B-B&"+tt.query, n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(tt.body))
		var p struct {
			Code string `json:"code"`
		}
		json.Unmarshal(b, &p)
		if resp.StatusCode != tt.status || p.Code != tt.code {
			t.Errorf("%s: %s %s, want %d %s", tt.query, resp.Status, b, tt.status, tt.code)
		}
	}
}

// hostileObjStm is a 409-byte PDF whose object stream holds its own
// /Length: reading it once recursed until the process died.
const hostileObjStm = "JVBERi0xLjcKMSAwIG9iago8PC9BY3JvRm9ybSAyIDAgUi9QYWdlcyAyIDAgUj4+CmVuZG9iago0IDAgb2JqCjw8L1R5cGUgL1BhZ2UgL1BhcmVudCAyIDAgUiAvTWVkaWFCb3ggWzAgMCA2MTIgNzkyXT4+CmVuZG9iago1IDAgb2JqCjw8L1R5cGUgL09ialN0bSAvTiAyIC9GaXJzdCA5IC9MZW5ndGggMyAwIFI+PgpzdHJlYW0KMiAwIDMgNDAgPDwvVHlwZSAvUGFnZXMgL0NvdW50IDEgL0tpZHMgWzQgMCBSXT4+IDk5OQplbmRzdHJlYW0KZW5kb2JqCjYgMCBvYmoKPDwvVHlwZSAvWFJlZiAvU2l6ZSA3IC9XIFsxIDQgMV0gL1Jvb3QgMSAwIFIgL0xlbmd0aCA0Mj4+CnN0cmVhbQoAAAAAAAABAAAACQACAAAABQACAAAABQEBAAAAOAABAAAAfQABAAABAAAKZW5kc3RyZWFtCmVuZG9iagpzdGFydHhyZWYKMjU2CiUlRU9GCg=="

// The public verification endpoint answers a hostile PDF with a coded 400;
// the node keeps serving.
func TestVerifyHostilePDF(t *testing.T) {
	n := newNode(t)
	doc, err := base64.StdEncoding.DecodeString(hostileObjStm)
	if err != nil {
		t.Fatal(err)
	}
	resp, b := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(doc))
	var p struct {
		Code string `json:"code"`
	}
	json.Unmarshal(b, &p)
	if resp.StatusCode != http.StatusBadRequest || p.Code != "pdf_malformed" {
		t.Errorf("verification of a hostile PDF: %s %s", resp.Status, b)
	}
	resp, b = n.post(t, "/api/v1/seals?format=pades", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(doc))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("sealing a hostile PDF: %s %s", resp.Status, b)
	}
	if resp, _ := http.Get(n.URL + "/healthz"); resp == nil || resp.StatusCode != http.StatusOK {
		t.Error("the node stopped serving")
	}
}
