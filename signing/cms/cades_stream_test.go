package cms_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// streamedDocument produces n bytes on the fly from one 64 KiB random
// block, so a test can seal a huge document without any copy of it in memory.
type streamedDocument struct {
	block     []byte
	remaining int64
	off       int
}

func newStreamedDocument(t testing.TB, n int64) *streamedDocument {
	t.Helper()
	block := make([]byte, 64<<10)
	if _, err := rand.Read(block); err != nil {
		t.Fatal(err)
	}
	return &streamedDocument{block: block, remaining: n}
}

func (d *streamedDocument) Read(p []byte) (int, error) {
	if d.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.remaining {
		p = p[:d.remaining]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], d.block[d.off:])
		n += c
		d.off = (d.off + c) % len(d.block)
	}
	d.remaining -= int64(n)
	return n, nil
}

const (
	gigabyte      = 1 << 30
	maxStreamPeak = 64 << 20
)

// Sealing a 1 GiB document reads it once as a stream: peak memory grows by
// far less than the document (target: at most 64 MiB), and the result
// carries the document's SHA-256 and size.
func TestCAdESStreams1GiBInBoundedMemory(t *testing.T) {
	p := signingtest.SharedPKI(t)
	doc := newStreamedDocument(t, gigabyte)
	// The expected SHA-256 comes from hashing the same bytes independently.
	want := sha256.New()
	if _, err := io.Copy(want, &streamedDocument{block: doc.block, remaining: gigabyte}); err != nil {
		t.Fatal(err)
	}
	var res *cms.CAdESResult
	var err error
	growth := signingtest.PeakRSSGrowth(t, func() {
		res, err = cms.CAdES(context.Background(), p.Keys["ecdsa-p256"], doc, cms.CAdESOptions{})
	})
	if err != nil {
		t.Fatalf("CAdES: %v", err)
	}
	t.Logf("1 GiB sealed; peak RSS growth %.1f MiB", float64(growth)/(1<<20))
	if growth > maxStreamPeak {
		t.Errorf("peak RSS grew by %d MiB sealing 1 GiB, want at most %d MiB", growth>>20, maxStreamPeak>>20)
	}
	if res.Size != gigabyte || !bytes.Equal(res.SHA256, want.Sum(nil)) {
		t.Errorf("result size %d sha256 %x, want %d %x", res.Size, res.SHA256, gigabyte, want.Sum(nil))
	}
	r, err := cms.Verify(context.Background(), res.Signature, cms.SignedContent{Digest: res.SHA256, Hash: res.Hash},
		cms.VerifyOptions{Roots: p.Roots})
	if err != nil || !r.Valid {
		t.Errorf("VerifyCMS over the independently computed digest: %v", err)
	}
}

// BenchmarkSigningCAdES100KB seals a 100 KB document as CAdES B-B through a
// software RSA-2048 key and through the same key on a SoftHSM token, one
// caller at a time (compare with the raw one-session rate) and from
// parallel callers (compare with the raw two-session rate).
func BenchmarkSigningCAdES100KB(b *testing.B) {
	p := signingtest.SharedPKI(b)
	doc := bytes.Repeat([]byte("0123456789"), 10_000)
	seal := func(b *testing.B, key signing.Key) {
		if _, err := cms.CAdES(context.Background(), key, bytes.NewReader(doc), cms.CAdESOptions{}); err != nil {
			b.Error(err)
		}
	}
	b.Run("softkey-rsa2048", func(b *testing.B) {
		signingtest.BenchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) { seal(b, p.Keys["rsa-2048"]) })
	})
	b.Run("softhsm-rsa2048", func(b *testing.B) {
		key := signingtest.SoftHSMKey(b, p)
		signingtest.BenchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) { seal(b, key) })
	})
}

// BenchmarkSigningCAdES1GBRSS seals a 1 GiB stream and reports the peak RSS
// growth (MiB) besides the throughput.
func BenchmarkSigningCAdES1GBRSS(b *testing.B) {
	p := signingtest.SharedPKI(b)
	var peak int64
	b.SetBytes(gigabyte)
	for b.Loop() {
		doc := newStreamedDocument(b, gigabyte)
		growth := signingtest.PeakRSSGrowth(b, func() {
			if _, err := cms.CAdES(context.Background(), p.Keys["rsa-2048"], doc, cms.CAdESOptions{}); err != nil {
				b.Fatal(err)
			}
		})
		peak = max(peak, growth)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	if peak > maxStreamPeak {
		b.Errorf("peak RSS grew by %d MiB, want at most %d MiB", peak>>20, maxStreamPeak>>20)
	}
}
