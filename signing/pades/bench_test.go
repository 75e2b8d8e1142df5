package pades_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	dpdf "github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/stamp"
)

// bench100KB is a 100 KB document for the signing speed benchmarks.
func bench100KB() []byte {
	return pdftest.Bytes(pdftest.Spec{Pad: 100 << 10})
}

// BenchmarkSigningPAdES100KB seals a 100 KB PDF at B-B through a SoftHSM
// key, serially and from parallel callers.
func BenchmarkSigningPAdES100KB(b *testing.B) {
	key, _ := signingtest.SoftHSMSeal(b)
	doc := bench100KB()
	ctx := context.Background()
	signingtest.BenchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) {
		if _, err := pades.Seal(ctx, key, bytes.NewReader(doc), int64(len(doc)), io.Discard, pades.Options{}); err != nil {
			b.Error(err)
		}
	})
}

// BenchmarkSigningPAdES100KBStamp seals the same document with a visible
// stamp (text in the embedded font subset, reason, location and a PNG logo).
func BenchmarkSigningPAdES100KBStamp(b *testing.B) {
	key, _ := signingtest.SoftHSMSeal(b)
	doc := bench100KB()
	opts := pades.Options{
		Reason: "Invoice approved", Location: "Hamburg",
		Placement: pades.Placement{Page: 1, X: 330, Y: 40, Width: 230, Height: 80},
		Stamp:     stamp.Options{Logo: signingtest.Logo(b)},
	}
	ctx := context.Background()
	signingtest.BenchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) {
		if _, err := pades.Seal(ctx, key, bytes.NewReader(doc), int64(len(doc)), io.Discard, opts); err != nil {
			b.Error(err)
		}
	})
}

// BenchmarkSigningPAdESVsToken compares, in one run, sealgate's PAdES B-B
// rate on a 100 KB PDF with the raw rate of the token it signs with: one
// SoftHSM token, one session, the same RSA-2048 key, signed through
// miekg/pkcs11 directly (C_SignInit, C_Sign) and through sealgate (pool,
// PDF update, CMS). It also reports the floor any PAdES signer of that
// document is bound by: hashing its 100 KB, then one raw signature. The
// phases alternate in rounds, so all see the same load on the machine.
//
// "serial" is one caller: every seal waits for its own hashing and
// encoding, and the token idles meanwhile. "busy" is four callers sharing
// the one session, as on a server with work queued: one caller's document
// is hashed while another's signature is made, and the token is the limit.
// SoftHSM signs on the host's CPU, so there the hashing still competes with
// the token; a hardware token would not.
func BenchmarkSigningPAdESVsToken(b *testing.B) {
	for _, callers := range []int{1, 4} {
		name := "serial"
		if callers > 1 {
			name = "busy"
		}
		b.Run(name, func(b *testing.B) {
			key, _, h := signingtest.SoftHSMSealSessions(b, 1)
			raw := signingtest.OpenRawToken(b, h.Module, "seal-1", "1234", 1)
			doc := bench100KB()
			phases := []func(){
				func() { raw.Sign(b) },
				func() {
					sha256.Sum256(doc)
					raw.Sign(b)
				},
				func() {
					if _, err := pades.Seal(context.Background(), key, bytes.NewReader(doc), int64(len(doc)), io.Discard, pades.Options{}); err != nil {
						b.Error(err)
					}
				},
			}
			const round = 64
			spent := make([]time.Duration, len(phases))
			var n int
			b.ResetTimer()
			for n < b.N {
				k := min(round, b.N-n)
				for i, op := range phases {
					start := time.Now()
					runCallers(callers, k, op)
					spent[i] += time.Since(start)
				}
				n += k
			}
			rate := func(i int) float64 { return float64(n) / spent[i].Seconds() }
			b.ReportMetric(rate(0), "raw-sigs/s")
			b.ReportMetric(rate(1), "floor/s")
			b.ReportMetric(rate(2), "seals/s")
			b.ReportMetric(100*rate(2)/rate(0), "%-of-raw")
			b.ReportMetric(100*rate(2)/rate(1), "%-of-floor")
		})
	}
}

// runCallers runs op n times from the given number of goroutines.
func runCallers(callers, n int, op func()) {
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range work {
				op()
			}
		})
	}
	wg.Wait()
}

// BenchmarkSigningPdfsign100KB signs the same document with the same key
// through digitorus/pdfsign, for comparison.
func BenchmarkSigningPdfsign100KB(b *testing.B) {
	key, _ := signingtest.SoftHSMSeal(b)
	doc := bench100KB()
	signingtest.BenchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) {
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
	key, _ := signingtest.SoftHSMSeal(b)
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
		growth = max(growth, signingtest.PeakRSSGrowth(b, func() {
			if _, err := pades.Seal(context.Background(), key, in, st.Size(), out, pades.Options{}); err != nil {
				b.Fatal(err)
			}
		}))
		in.Close()
		out.Close()
	}
	b.ReportMetric(float64(growth)/(1<<20), "MB-peak-RSS-growth")
}
