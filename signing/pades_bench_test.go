package signing_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	dpdf "github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
)

// bench100KB is a 100 KB document for the signing speed benchmarks.
func bench100KB() []byte {
	return pdftest.Bytes(pdftest.Spec{Pad: 100 << 10})
}

// BenchmarkSigningPAdES100KB seals a 100 KB PDF at B-B through a SoftHSM
// key, serially and from parallel callers.
func BenchmarkSigningPAdES100KB(b *testing.B) {
	key, _ := softHSMSeal(b)
	doc := bench100KB()
	ctx := context.Background()
	benchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) {
		if _, err := signing.PAdES(ctx, key, bytes.NewReader(doc), int64(len(doc)), io.Discard, signing.PAdESOptions{}); err != nil {
			b.Error(err)
		}
	})
}

// BenchmarkSigningPdfsign100KB signs the same document with the same key
// through digitorus/pdfsign, for comparison.
func BenchmarkSigningPdfsign100KB(b *testing.B) {
	key, _ := softHSMSeal(b)
	doc := bench100KB()
	benchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) {
		if _, err := pdfsignSign(key, doc); err != nil {
			b.Error(err)
		}
	})
}

// pdfsignSign signs doc with the served digitorus/pdfsign, as another
// producer would (an approval signature, adbe.pkcs7.detached).
func pdfsignSign(key signing.Key, doc []byte) ([]byte, error) {
	in := bytes.NewReader(doc)
	rdr, err := dpdf.NewReader(in, int64(len(doc)))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	chain := key.Chain()
	err = sign.Sign(in, &out, rdr, int64(len(doc)), sign.SignData{
		Signature: sign.SignDataSignature{
			CertType: sign.ApprovalSignature,
			Info:     sign.SignDataSignatureInfo{Name: "other tool", Date: time.Now()},
		},
		Signer:            key,
		DigestAlgorithm:   crypto.SHA256,
		Certificate:       chain[0],
		CertificateChains: [][]*x509.Certificate{chain},
	})
	return out.Bytes(), err
}

// BenchmarkSigningPAdES200MBRSS seals a 200 MB PDF from a file to a file
// and reports how far the peak resident set grew above the idle one; the
// target is at most 64 MB.
func BenchmarkSigningPAdES200MBRSS(b *testing.B) {
	key, _ := softHSMSeal(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "big.pdf")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := pdftest.Write(w, pdftest.Spec{Pad: 200 << 20}); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	var growth int64
	b.ResetTimer()
	for b.Loop() {
		in, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		st, _ := in.Stat()
		out, err := os.Create(filepath.Join(dir, "sealed.pdf"))
		if err != nil {
			b.Fatal(err)
		}
		growth = max(growth, peakRSSGrowth(b, func() {
			if _, err := signing.PAdES(context.Background(), key, in, st.Size(), out, signing.PAdESOptions{}); err != nil {
				b.Fatal(err)
			}
		}))
		in.Close()
		out.Close()
	}
	b.ReportMetric(float64(growth)/(1<<20), "MB-peak-RSS-growth")
}
