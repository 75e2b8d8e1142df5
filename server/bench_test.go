package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/netip"
	"testing"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
)

// benchSeal seals doc through the whole sealing path — authorization,
// signing on the SoftHSM cards, evidence append, seal event, audit — from
// parallel callers, and reports seals per second.
func benchSeal(b *testing.B, format seal.Format, level seal.Level, doc []byte) {
	n := newNode(b)
	ctx := context.Background()
	p, err := n.Access.AuthenticateClientSecret(ctx, n.ERPID, n.ERPSecret, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ResetTimer()
	b.SetParallelism(4) // many concurrent requests, as a server sees them
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := n.Seal.Seal(ctx, seal.Request{Principal: p, Format: format, Level: level, Document: bytes.NewReader(doc), Size: int64(len(doc))})
			if err != nil {
				b.Error(err)
				return
			}
			res.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seals/s")
}

// BenchmarkSealServiceCAdES100KB: detached CAdES B-B of 100 KB through seal.Service.
func BenchmarkSealServiceCAdES100KB(b *testing.B) {
	doc := make([]byte, 100<<10)
	rand.Read(doc)
	benchSeal(b, seal.CAdES, seal.LevelBB, doc)
}

// BenchmarkSealServicePAdES100KB: PAdES B-B of a 100 KB PDF through seal.Service.
func BenchmarkSealServicePAdES100KB(b *testing.B) {
	benchSeal(b, seal.PAdES, seal.LevelBB, pdftest.Bytes(pdftest.Spec{Pad: 100 << 10}))
}

// BenchmarkSealRESTCAdES100KB: the same CAdES seal over HTTP with Basic
// authentication, as a process calls it.
func BenchmarkSealRESTCAdES100KB(b *testing.B) {
	n := newNode(b)
	doc := make([]byte, 100<<10)
	rand.Read(doc)
	b.SetBytes(int64(len(doc)))
	b.ResetTimer()
	b.SetParallelism(4) // many concurrent requests, as a server sees them
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, body := n.post(b, "/api/v1/seals?format=cades&level=B-B", n.ERPID, n.ERPSecret, "application/octet-stream", bytes.NewReader(doc))
			if resp.StatusCode != http.StatusOK {
				b.Errorf("%s %s", resp.Status, body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seals/s")
}
