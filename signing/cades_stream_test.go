package signing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/signing"
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

// procStatus reads a "kB" field of /proc/self/status, in bytes.
func procStatus(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/self/status has no %s", field)
	return 0
}

// peakRSSGrowth runs f and returns how far the process's peak resident set
// rose above its resident set before f. Writing 5 to clear_refs resets
// the peak (VmHWM) so earlier tests do not hide f's.
func peakRSSGrowth(t testing.TB, f func()) int64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	before := procStatus(t, "VmRSS")
	f()
	return procStatus(t, "VmHWM") - before
}

const (
	gigabyte      = 1 << 30
	maxStreamPeak = 64 << 20
)

// Sealing a 1 GiB document reads it once as a stream: peak memory grows by
// far less than the document (target: at most 64 MiB), and the result
// carries the document's SHA-256 and size.
func TestCAdESStreams1GiBInBoundedMemory(t *testing.T) {
	p := sharedPKI(t)
	doc := newStreamedDocument(t, gigabyte)
	// The expected SHA-256 comes from hashing the same bytes independently.
	want := sha256.New()
	if _, err := io.Copy(want, &streamedDocument{block: doc.block, remaining: gigabyte}); err != nil {
		t.Fatal(err)
	}
	var res *signing.CAdESResult
	var err error
	growth := peakRSSGrowth(t, func() {
		res, err = signing.CAdES(context.Background(), p.keys["ecdsa-p256"], doc, signing.CAdESOptions{})
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
	r, err := signing.VerifyCMS(context.Background(), res.Signature, signing.SignedContent{Digest: res.SHA256, Hash: res.Hash},
		signing.CMSVerifyOptions{Roots: p.roots})
	if err != nil || !r.Valid {
		t.Errorf("VerifyCMS over the independently computed digest: %v", err)
	}
}

// BenchmarkSigningCAdES100KB seals a 100 KB document as CAdES B-B through a
// software RSA-2048 key and through the same key on a SoftHSM token, one
// caller at a time (compare with the raw one-session rate) and from
// parallel callers (compare with the raw two-session rate).
func BenchmarkSigningCAdES100KB(b *testing.B) {
	p := sharedPKI(b)
	doc := bytes.Repeat([]byte("0123456789"), 10_000)
	seal := func(b *testing.B, key signing.Key) {
		if _, err := signing.CAdES(context.Background(), key, bytes.NewReader(doc), signing.CAdESOptions{}); err != nil {
			b.Error(err)
		}
	}
	b.Run("softkey-rsa2048", func(b *testing.B) {
		benchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) { seal(b, p.keys["rsa-2048"]) })
	})
	b.Run("softhsm-rsa2048", func(b *testing.B) {
		key := softHSMKey(b, p)
		benchSerialAndParallel(b, int64(len(doc)), func(b *testing.B) { seal(b, key) })
	})
}

// benchSerialAndParallel runs op one caller at a time and from parallel
// callers, reporting seals per second for each.
func benchSerialAndParallel(b *testing.B, size int64, op func(b *testing.B)) {
	b.Run("serial", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			op(b)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seals/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetBytes(size)
		// Twice as many callers as cores, as on a server: while one caller
		// hashes or encodes, another keeps the card's session busy.
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				op(b)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seals/s")
	})
}

// BenchmarkSigningCAdES1GBRSS seals a 1 GiB stream and reports the peak RSS
// growth (MiB) besides the throughput.
func BenchmarkSigningCAdES1GBRSS(b *testing.B) {
	p := sharedPKI(b)
	var peak int64
	b.SetBytes(gigabyte)
	for b.Loop() {
		doc := newStreamedDocument(b, gigabyte)
		growth := peakRSSGrowth(b, func() {
			if _, err := signing.CAdES(context.Background(), p.keys["rsa-2048"], doc, signing.CAdESOptions{}); err != nil {
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
