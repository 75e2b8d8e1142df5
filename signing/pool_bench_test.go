package signing_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2).
var sha256DigestInfo, _ = hex.DecodeString("3031300d060960864801650304020105000420")

// rawSoftHSM opens n logged-in sessions on a SoftHSM token holding an
// RSA-2048 seal key, straight through miekg/pkcs11: the ceiling the pool is
// measured against.
func rawSoftHSM(b *testing.B, n int) (*pkcs11.Ctx, chan pkcs11.SessionHandle, pkcs11.ObjectHandle) {
	b.Helper()
	h := signingtest.NewSoftHSM(b)
	signingtest.DevSeal(b, h, signingtest.DevSealOptions{ID: "bench", Tokens: []string{"bench"}, PIN: "1234"})
	p := pkcs11.New(h.Module)
	if err := p.Initialize(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Finalize(); p.Destroy() })
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	var slot uint
	for _, s := range slots {
		if info, err := p.GetTokenInfo(s); err == nil && strings.TrimSpace(info.Label) == "bench" {
			slot = s
		}
	}
	sessions := make(chan pkcs11.SessionHandle, n)
	var first pkcs11.SessionHandle
	for i := range n {
		s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = s
		}
		sessions <- s
	}
	if err := p.Login(first, pkcs11.CKU_USER, "1234"); err != nil {
		b.Fatal(err)
	}
	if err := p.FindObjectsInit(first, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}); err != nil {
		b.Fatal(err)
	}
	keys, _, err := p.FindObjects(first, 1)
	p.FindObjectsFinal(first)
	if err != nil || len(keys) != 1 {
		b.Fatalf("seal key on the bench token: %v", err)
	}
	return p, sessions, keys[0]
}

// rawSign makes one PKCS#1 v1.5 signature as the pool does: CKM_RSA_PKCS over
// the DigestInfo.
func rawSign(b *testing.B, p *pkcs11.Ctx, sessions chan pkcs11.SessionHandle, key pkcs11.ObjectHandle, data []byte) {
	s := <-sessions
	defer func() { sessions <- s }()
	if err := p.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, key); err != nil {
		b.Error(err)
		return
	}
	if _, err := p.Sign(s, data); err != nil {
		b.Error(err)
	}
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
	p, sessions, key := rawSoftHSM(b, 1)
	digest := sha256.Sum256([]byte("benchmark"))
	data := append(append([]byte{}, sha256DigestInfo...), digest[:]...)
	done := measure(b)
	for b.Loop() {
		rawSign(b, p, sessions, key, data)
	}
	done()
}

func BenchmarkSigningRawSoftHSM2Sessions(b *testing.B) {
	p, sessions, key := rawSoftHSM(b, 2)
	digest := sha256.Sum256([]byte("benchmark"))
	data := append(append([]byte{}, sha256DigestInfo...), digest[:]...)
	done := measure(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rawSign(b, p, sessions, key, data)
		}
	})
	done()
}

// BenchmarkSigningPool signs through the pool from parallel goroutines on
// one card with two sessions, RSA-2048: compare with the raw 2-session rate.
func BenchmarkSigningPool(b *testing.B) {
	h := signingtest.NewSoftHSM(b)
	cfg, _ := signingtest.DevSeal(b, h, signingtest.DevSealOptions{ID: "bench", Tokens: []string{"bench"}, Sessions: 2})
	pool, err := signing.NewPool(context.Background(), cfg, nil)
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
