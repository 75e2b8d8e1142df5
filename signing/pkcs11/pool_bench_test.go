package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
)

// rawSoftHSM makes a token holding an RSA-2048 seal key and opens n
// logged-in sessions on it.
func rawSoftHSM(b *testing.B, n int) *signingtest.RawToken {
	b.Helper()
	h := signingtest.NewSoftHSM(b)
	signingtest.DevSeal(b, h, signingtest.DevSealOptions{ID: "bench", Tokens: []string{"bench"}, PIN: "1234"})
	return signingtest.OpenRawToken(b, h.Module, "bench", "1234", n)
}

// measure starts the clock; the function it returns reports signatures per
// second and the process's CPU time per signature (SoftHSM runs inside the
// process). When other work shares the machine the rate drops, while the CPU
// cost per signature stays comparable between benchmarks.
func measure(b *testing.B) func() {
	start := cpuTime(b)
	b.ResetTimer()
	return func() {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/sig")
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkSigningRawSoftHSM1Session(b *testing.B) {
	raw := rawSoftHSM(b, 1)
	done := measure(b)
	for b.Loop() {
		raw.Sign(b)
	}
	done()
}

func BenchmarkSigningRawSoftHSM2Sessions(b *testing.B) {
	raw := rawSoftHSM(b, 2)
	done := measure(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			raw.Sign(b)
		}
	})
	done()
}

// BenchmarkSigningPool signs through the pool from parallel goroutines on
// one card with two sessions, RSA-2048: compare with the raw 2-session rate.
func BenchmarkSigningPool(b *testing.B) {
	h := signingtest.NewSoftHSM(b)
	cfg, _ := signingtest.DevSeal(b, h, signingtest.DevSealOptions{ID: "bench", Tokens: []string{"bench"}, Sessions: 2})
	pool, err := signing.NewPool(context.Background(), cfg, nil, pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Close() })
	key, err := pool.Key("bench")
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark"))
	done := measure(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := key.Sign(nil, digest[:], crypto.SHA256); err != nil {
				b.Error(err)
			}
		}
	})
	done()
}
