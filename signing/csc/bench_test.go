package csc_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/csc/csctest"
	"github.com/sealgate/sealgate/signing/pades"
)

// BenchmarkSigningCSC seals a PDF (PAdES B-B) on a local SoftHSM card,
// then through the CSC provider on loopback (whose key sits on the same
// SoftHSM, so the difference is the remote protocol: HTTPS, JSON, OAuth,
// authorize and signHash), one signature at a time and in batches. It
// reports seals/s, the ratio to the local card of the same run and the
// signatures per signHash call.
func BenchmarkSigningCSC(b *testing.B) {
	const multisign, batchSize = 20, 50
	s := newSetup(b, setupOptions{local: true, server: csctest.Options{Multisign: multisign}})
	only := func(remote bool) *signing.SealKey {
		cfg := s.cfg
		cfg.Seals = []signing.SealConfig{s.cfg.Seals[0]}
		if remote {
			cfg.Tokens, cfg.Seals[0].Keys = nil, s.cfg.Seals[0].Keys[:1]
		} else {
			cfg.Remote, cfg.Seals[0].Keys = nil, s.cfg.Seals[0].Keys[1:]
		}
		saved := s.cfg
		s.cfg = cfg
		defer func() { s.cfg = saved }()
		_, key := s.pool(b)
		return key
	}
	local, remote := only(false), only(true)
	in := pdftest.Bytes(pdftest.Spec{})
	seal := func(b *testing.B, key signing.Key) {
		if _, err := pades.Seal(context.Background(), key, bytes.NewReader(in), int64(len(in)), io.Discard, pades.Options{}); err != nil {
			b.Error(err)
		}
	}
	perSignHash := func(b *testing.B, signed0, calls0 int) {
		if calls := s.tsp.Calls("signatures/signHash") - calls0; calls > 0 {
			b.ReportMetric(float64(s.tsp.Signed()-signed0)/float64(calls), "sigs/signHash")
		}
	}
	var localRate float64
	b.Run("local card", func(b *testing.B) {
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				seal(b, local)
			}
		})
		localRate = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(localRate, "seals/s")
	})
	b.Run("CSC one by one", func(b *testing.B) {
		signed0, calls0 := s.tsp.Signed(), s.tsp.Calls("signatures/signHash")
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				seal(b, remote)
			}
		})
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "seals/s")
		if localRate > 0 {
			b.ReportMetric(rate/localRate, "x-local")
		}
		perSignHash(b, signed0, calls0)
	})
	b.Run("CSC batches of 50", func(b *testing.B) {
		signed0, calls0 := s.tsp.Signed(), s.tsp.Calls("signatures/signHash")
		for b.Loop() {
			batch := remote.NewBatch(batchSize, time.Second)
			var wg sync.WaitGroup
			for range batchSize {
				wg.Go(func() { seal(b, batch) })
			}
			wg.Wait()
		}
		rate := float64(b.N*batchSize) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "seals/s")
		if localRate > 0 {
			b.ReportMetric(rate/localRate, "x-local")
		}
		perSignHash(b, signed0, calls0)
	})
}
