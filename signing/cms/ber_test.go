package cms_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/asn1"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// toBER re-encodes DER as BER the way streaming signers write it: every
// constructed element down to maxDepth gets an indefinite length, and
// universal OCTET and BIT STRINGs down to that depth are split into
// constructed chunks of at most 7 bytes. CMS and certificates use one-octet
// tags only.
func toBER(t testing.TB, der []byte, depth, maxDepth int) []byte {
	t.Helper()
	var out []byte
	for len(der) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			t.Fatalf("toBER: %v", err)
		}
		der = rest
		tag := v.FullBytes[0]
		switch {
		case depth >= maxDepth:
			out = append(out, v.FullBytes...)
		case v.IsCompound:
			out = append(append(out, tag, 0x80), toBER(t, v.Bytes, depth+1, maxDepth)...)
			out = append(out, 0, 0)
		case v.Class == asn1.ClassUniversal && (v.Tag == asn1.TagOctetString || v.Tag == asn1.TagBitString):
			data := v.Bytes
			var unused byte
			if v.Tag == asn1.TagBitString {
				unused, data = data[0], data[1:]
			}
			out = append(out, tag|0x20, 0x80)
			for i := 0; i == 0 || i < len(data); i += 7 {
				chunk := data[i:min(i+7, len(data))]
				if v.Tag == asn1.TagBitString {
					u := byte(0)
					if i+7 >= len(data) {
						u = unused
					}
					chunk = append([]byte{u}, chunk...)
				}
				out = append(append(out, tag, byte(len(chunk))), chunk...)
			}
			out = append(out, 0, 0)
		default:
			out = append(out, v.FullBytes...)
		}
	}
	return out
}

// reportJSON is a report as clients see it, with the encapsulated content.
func reportJSON(t testing.TB, r *cms.Report) string {
	t.Helper()
	js, err := json.Marshal(struct {
		*cms.Report
		Content []byte
	}{r, r.Content})
	if err != nil {
		t.Fatal(err)
	}
	return string(js)
}

// A signature in BER — indefinite lengths on the SignedData's containers as
// NSS writes them, or on every element with every OCTET and BIT STRING
// chunked, signed attributes, certificates and timestamp token included —
// verifies with the same report as its DER form.
func TestVerifyCMSAcceptsBER(t *testing.T) {
	p := signingtest.SharedPKI(t)
	ts := signingtest.NewTSA(t, p)
	doc := []byte("Delivery note 88-1207\n")
	cades, err := cms.CAdES(context.Background(), p.Keys["rsa-2048"], bytes.NewReader(doc), cms.CAdESOptions{Timestamper: ts.SHA256Client})
	if err != nil {
		t.Fatal(err)
	}
	encapsulated, err := cms.Sign(context.Background(), p.Keys["ecdsa-p256"], nil, crypto.SHA256,
		cms.Options{Content: doc})
	if err != nil {
		t.Fatal(err)
	}
	opts := cms.VerifyOptions{Roots: p.Roots, At: time.Now()}
	for _, sig := range []struct {
		name    string
		der     []byte
		content func() cms.SignedContent
		level   signing.Level
	}{
		{"CAdES B-T, detached", cades.Signature, func() cms.SignedContent { return cms.SignedContent{Reader: bytes.NewReader(doc)} }, signing.LevelBT},
		{"encapsulated content", encapsulated, func() cms.SignedContent { return cms.SignedContent{} }, signing.LevelBB},
	} {
		want, err := cms.Verify(context.Background(), sig.der, sig.content(), opts)
		if err != nil || want.Level != sig.level {
			t.Fatalf("%s, DER: level %v, %v", sig.name, want.Level, err)
		}
		for _, form := range []struct {
			name     string
			maxDepth int
		}{{"SignedData containers", 3}, {"every element", 100}} {
			t.Run(sig.name+", "+form.name, func(t *testing.T) {
				ber := toBER(t, sig.der, 0, form.maxDepth)
				if !bytes.HasPrefix(ber, []byte{0x30, 0x80}) {
					t.Fatalf("the BER form starts % x…, not with an indefinite length", ber[:4])
				}
				got, err := cms.Verify(context.Background(), ber, sig.content(), opts)
				if err != nil {
					t.Fatalf("VerifyCMS: %v", err)
				}
				if g, w := reportJSON(t, got), reportJSON(t, want); g != w {
					t.Errorf("report of the BER form\n%s\ndiffers from the DER form's\n%s", g, w)
				}
			})
		}
	}
}

// openssl cms -stream writes BER (indefinite lengths, the content as a
// constructed OCTET STRING); its signatures verify, detached and with the
// content inside.
func TestVerifyCMSAcceptsOpenSSLStreamedBER(t *testing.T) {
	p := signingtest.SharedPKI(t)
	dir := t.TempDir()
	doc := []byte(strings.Repeat("Streamed by openssl\n", 200))
	docPath := signingtest.WriteFile(t, dir, "doc", doc)
	keyPath, certPath := opensslKeyFiles(t, p, dir)
	for _, tc := range []struct {
		name    string
		args    []string
		content cms.SignedContent
	}{
		{"detached", nil, cms.SignedContent{Reader: bytes.NewReader(doc)}},
		{"encapsulated", []string{"-nodetach"}, cms.SignedContent{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigPath := filepath.Join(dir, tc.name+".p7s")
			args := append([]string{"cms", "-sign", "-stream", "-cades", "-binary", "-in", docPath, "-signer", certPath, "-inkey", keyPath,
				"-md", "sha256", "-outform", "DER", "-out", sigPath}, tc.args...)
			if out, err := signingtest.RunOpenSSL(t, args...); err != nil {
				t.Fatalf("openssl cms -sign -stream: %v\n%s", err, out)
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(sig, []byte{0x30, 0x80}) {
				t.Fatalf("openssl wrote % x…, not an indefinite-length SEQUENCE", sig[:4])
			}
			r, err := cms.Verify(context.Background(), sig, tc.content, cms.VerifyOptions{Roots: p.Roots})
			if err != nil {
				t.Fatalf("VerifyCMS: %v", err)
			}
			if !r.Valid || r.Level != signing.LevelBB {
				t.Errorf("valid %v level %q, want a valid B-B", r.Valid, r.Level)
			}
			if tc.content.Reader == nil && !bytes.Equal(r.Content, doc) {
				t.Errorf("encapsulated content of %d bytes, want the %d-byte document", len(r.Content), len(doc))
			}
		})
	}
}

// Broken or hostile BER gives cms_malformed and no report.
func TestVerifyCMSRefusesBadBER(t *testing.T) {
	p := signingtest.SharedPKI(t)
	doc := []byte("Order 7\n")
	sig, err := cms.Sign(context.Background(), p.Keys["ecdsa-p256"], digestOf(crypto.SHA256, doc), crypto.SHA256, cms.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ber := toBER(t, sig, 0, 100)
	for _, tc := range []struct {
		name string
		sig  []byte
	}{
		{"last end-of-contents missing", ber[:len(ber)-2]},
		{"cut in the middle", ber[:len(ber)/2]},
		{"bytes after the ContentInfo", append(append([]byte(nil), ber...), 0x05, 0x00)},
		{"nested 100 deep", append(bytes.Repeat([]byte{0x30, 0x80}, 100), make([]byte, 200)...)},
		{"four-gigabyte length", []byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00}},
		{"length of nine octets", []byte{0x30, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x01, 0x00}},
		{"indefinite primitive", []byte{0x30, 0x80, 0x04, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00}},
		{"larger than 16 MiB", append(append([]byte(nil), sig...), make([]byte, 16<<20)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := cms.Verify(context.Background(), tc.sig, cms.SignedContent{Reader: bytes.NewReader(doc)}, cms.VerifyOptions{Roots: p.Roots})
			if fault.CodeOf(err) != cms.CodeMalformed || r != nil {
				t.Errorf("got report %v, error %v; want no report and %s", r != nil, err, cms.CodeMalformed)
			}
		})
	}
}
