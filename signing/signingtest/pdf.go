package signingtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
)

// SoftHSMSeal returns the shared test PKI's RSA-2048 seal key on a SoftHSM
// token, and the PKI.
func SoftHSMSeal(t testing.TB) (signing.Key, *PKI) {
	t.Helper()
	key, p, _ := SoftHSMSealSessions(t, 0)
	return key, p
}

// SoftHSMSealSessions is SoftHSMSeal with the given number of sessions on
// the token (0: the pool's default); it also returns the SoftHSM holding
// the token "seal-1".
func SoftHSMSealSessions(t testing.TB, sessions int) (signing.Key, *PKI, *SoftHSM) {
	t.Helper()
	p := SharedPKI(t)
	h := NewSoftHSM(t)
	cfg, _ := DevSeal(t, h, DevSealOptions{CA: p.CA, Key: p.Signers["rsa-2048"], Sessions: sessions})
	pool, err := signing.NewPool(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	key, err := pool.Key("dev")
	if err != nil {
		t.Fatal(err)
	}
	return key, p, h
}

// SealPDF runs PAdES over in and returns the output, checking the result's
// size and digest describe it.
func SealPDF(t testing.TB, key signing.Key, in []byte, opts pades.Options) ([]byte, *pades.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := pades.Seal(context.Background(), key, bytes.NewReader(in), int64(len(in)), &out, opts)
	if err != nil {
		t.Fatalf("PAdES: %v", err)
	}
	if !bytes.HasPrefix(out.Bytes(), in) {
		t.Fatal("the sealed file does not start with the original bytes")
	}
	if res.Size != int64(out.Len()) || hex.EncodeToString(res.SHA256) != SHA256Hex(out.Bytes()) {
		t.Errorf("result size %d digest %x do not describe the %d-byte output", res.Size, res.SHA256, out.Len())
	}
	return out.Bytes(), res
}

func WriteTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// PDFSigReport is one signature as pdfsig prints it.
type PDFSigReport struct {
	Field, SubFilter, Validation string
	Total                        bool
}

// pdfsig runs poppler's pdfsig and parses its per-signature blocks (it exits
// 0 even when a digest does not match, so its text is what counts).
func PDFSig(t testing.TB, file string) []PDFSigReport {
	t.Helper()
	out, err := exec.Command("pdfsig", "-nocert", file).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfsig: %v\n%s", err, out)
	}
	var sigs []PDFSigReport
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "Signature #"):
			sigs = append(sigs, PDFSigReport{})
		case len(sigs) == 0:
		case strings.HasPrefix(line, "- Signature Field Name:"):
			sigs[len(sigs)-1].Field = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Field Name:"))
		case strings.HasPrefix(line, "- Signature Type:"):
			sigs[len(sigs)-1].SubFilter = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Type:"))
		case strings.HasPrefix(line, "- Signature Validation:"):
			sigs[len(sigs)-1].Validation = strings.TrimSpace(strings.TrimPrefix(line, "- Signature Validation:"))
		case line == "- Total document signed":
			sigs[len(sigs)-1].Total = true
		}
	}
	// Empty signature fields are listed too; they carry no signature.
	signed := sigs[:0]
	for _, s := range sigs {
		if s.SubFilter != "" {
			signed = append(signed, s)
		}
	}
	return signed
}

// CheckIndependently runs the independent verifiers over a sealed file:
// pdfsig finds want signatures, all valid and the newest covering the
// whole file; qpdf --check is clean; openssl sees signing-certificate-v2 and no
// signing-time in every CAdES signature.
func CheckIndependently(t testing.TB, sealed []byte, want int) {
	t.Helper()
	file := WriteTemp(t, "sealed.pdf", sealed)
	sigs := PDFSig(t, file)
	if len(sigs) != want {
		t.Fatalf("pdfsig found %d signatures, want %d: %+v", len(sigs), want, sigs)
	}
	for i, s := range sigs {
		// This pdfsig does not know RFC 3161 document timestamps (it names
		// their type "unknown"); openssl ts checks them in the level tests.
		if s.SubFilter == "unknown" && s.Validation == "Signature has not yet been verified." {
			continue
		}
		if s.Validation != "Signature is Valid." {
			t.Errorf("pdfsig signature %d (%s): %q", i+1, s.Field, s.Validation)
		}
	}
	// pdfsig lists signatures in field order; the newest one, whichever
	// field it is in, and only it, covers the whole file.
	total := 0
	for _, s := range sigs {
		if s.Total {
			total++
		}
	}
	if total != 1 {
		t.Errorf("pdfsig: %d signatures cover the whole document, want the newest one only", total)
	}
	if out, err := exec.Command("qpdf", "--check", file).CombinedOutput(); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}
	for i, c := range SignatureContents(t, sealed) {
		if c.SubFilter != "ETSI.CAdES.detached" {
			continue
		}
		p7s := WriteTemp(t, fmt.Sprintf("sig%d.p7s", i), c.DER)
		out, err := exec.Command("openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", p7s).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl cms -print: %v\n%s", err, out)
		}
		// Only the signer's own signed attributes count: a signature
		// timestamp token inside the unsigned ones has a signing-time of its own.
		signed := string(out)
		if i := strings.Index(signed, "unsignedAttrs:"); i >= 0 {
			signed = signed[:i]
		}
		if !strings.Contains(signed, "signingCertificateV2") || strings.Contains(signed, "signingTime") {
			t.Errorf("signature %d: want signingCertificateV2 and no signingTime in\n%s", i+1, out)
		}
	}
}

func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SigContents is one signature dictionary's /Contents, found the way an
// outside tool would: from its /ByteRange.
type SigContents struct {
	SubFilter string
	ByteRange [4]int64
	DER       []byte
}

var byteRangeRE = regexp.MustCompile(`/ByteRange\s*\[\s*0\s+(\d+)\s+(\d+)\s+(\d+)\s*\]`)
var subFilterRE = regexp.MustCompile(`/SubFilter\s*/([A-Za-z0-9.]+)`)

// SignatureContents finds every signature of file by its /ByteRange.
func SignatureContents(t testing.TB, file []byte) []SigContents {
	t.Helper()
	var out []SigContents
	for _, m := range byteRangeRE.FindAllSubmatchIndex(file, -1) {
		var br [4]int64
		for i := 1; i <= 3; i++ {
			br[i], _ = strconv.ParseInt(string(file[m[2*i]:m[2*i+1]]), 10, 64)
		}
		raw, err := hex.DecodeString(string(file[br[1]+1 : br[2]-1]))
		if err != nil {
			t.Fatalf("contents at %d: %v", br[1], err)
		}
		var rv asn1.RawValue
		if _, err := asn1.Unmarshal(raw, &rv); err != nil {
			t.Fatalf("contents at %d is not DER: %v", br[1], err)
		}
		// The signature dictionary holding this ByteRange starts at the
		// last "obj" before it.
		objStart := bytes.LastIndex(file[:m[0]], []byte(" obj"))
		sf := subFilterRE.FindSubmatch(file[objStart : br[2]+200])
		c := SigContents{ByteRange: br, DER: rv.FullBytes}
		if sf != nil {
			c.SubFilter = string(sf[1])
		}
		out = append(out, c)
	}
	return out
}

// Logo is a 64×64 PNG with a transparent background and an opaque disc.
func Logo(t testing.TB) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			if dx, dy := x-32, y-32; dx*dx+dy*dy < 28*28 {
				img.Set(x, y, color.NRGBA{R: 0xc0, G: 0x20, B: 0x30, A: 0xff})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// OpenCatalog opens file with sealgate's PDF reader and returns the reader,
// the catalog's reference and the catalog.
func OpenCatalog(t testing.TB, file []byte) (*pdf.Reader, pdf.Ref, pdf.Dict) {
	t.Helper()
	r, err := pdf.Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	root, cat, err := r.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	return r, root, cat
}
