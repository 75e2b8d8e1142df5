package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/netip"
	"testing"
	"time"

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

// benchJob seals jobs of docs (CAdES B-B) on node n, each job through
// the job workers from submission to its last document, and reports
// documents per second.
func benchJob(b *testing.B, n *node, docs [][]byte) {
	ctx := context.Background()
	runJobs(b, n.Server)
	erp := n.process(b, n.ERPID, n.ERPSecret)
	for b.Loop() {
		st, err := n.Jobs.Submit(ctx, seal.JobRequest{
			Request: seal.Request{Principal: erp, Format: seal.CAdES, Level: seal.LevelBB}, Documents: inputs(docs...)})
		if err != nil {
			b.Fatal(err)
		}
		if st = waitJob(b, n.Server, erp, st.ID, 5*time.Minute); st.Counts.Done != len(docs) {
			b.Fatalf("job ended %s %+v", st.State, st.Counts)
		}
	}
	b.ReportMetric(float64(b.N*len(docs))/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkJobLocalCards: jobs of 200 documents of 1 KB on the node's two
// SoftHSM cards.
func BenchmarkJobLocalCards(b *testing.B) {
	benchJob(b, newNode(b), textDocs(200))
}

// BenchmarkJobRemoteBatches: jobs of 100 documents of 1 KB through a CSC
// provider on loopback (multisign 15), signed in batches of 100; compare
// with BenchmarkJobLocalCards of the same run.
func BenchmarkJobRemoteBatches(b *testing.B) {
	n, tsp := remoteNode(b, 15, 100)
	authorize0 := tsp.Calls("credentials/authorize")
	benchJob(b, n, textDocs(100))
	b.ReportMetric(float64(tsp.Calls("credentials/authorize")-authorize0)/float64(b.N), "authorize/job")
}
