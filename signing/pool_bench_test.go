package signing_test

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

// rawToken is a seal key on a SoftHSM token reached straight through
// miekg/pkcs11, without the pool: the ceiling the pool and the sealing
// paths are measured against.
type rawToken struct {
	p        *pkcs11.Ctx
	sessions chan pkcs11.SessionHandle
	key      pkcs11.ObjectHandle
	data     []byte // a SHA-256 DigestInfo to sign
}

// rawSoftHSM makes a token holding an RSA-2048 seal key and opens n
// logged-in sessions on it.
func rawSoftHSM(b *testing.B, n int) *rawToken {
	b.Helper()
	h := signingtest.NewSoftHSM(b)
	signingtest.DevSeal(b, h, signingtest.DevSealOptions{ID: "bench", Tokens: []string{"bench"}, PIN: "1234"})
	return openRawToken(b, h.Module, "bench", "1234", n)
}

// openRawToken opens n logged-in sessions on the token labelled label. The
// library may already be initialised and logged in by a pool in this
// process (a shared token): then the pool keeps it and finalises it.
func openRawToken(b *testing.B, module, label, pin string, n int) *rawToken {
	b.Helper()
	p := pkcs11.New(module)
	owner := true
	if err := p.Initialize(); errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		owner = false
	} else if err != nil {
		b.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	var slot uint
	found := false
	for _, s := range slots {
		if info, err := p.GetTokenInfo(s); err == nil && strings.TrimSpace(info.Label) == label {
			slot, found = s, true
		}
	}
	if !found {
		b.Fatalf("no token labelled %q", label)
	}
	raw := &rawToken{p: p, sessions: make(chan pkcs11.SessionHandle, n)}
	var first pkcs11.SessionHandle
	for i := range n {
		s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = s
		}
		raw.sessions <- s
	}
	b.Cleanup(func() {
		for range n {
			p.CloseSession(<-raw.sessions)
		}
		if owner {
			p.Finalize()
			p.Destroy()
		}
	})
	if err := p.Login(first, pkcs11.CKU_USER, pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		b.Fatal(err)
	}
	if err := p.FindObjectsInit(first, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}); err != nil {
		b.Fatal(err)
	}
	keys, _, err := p.FindObjects(first, 1)
	p.FindObjectsFinal(first)
	if err != nil || len(keys) != 1 {
		b.Fatalf("seal key on token %q: %v", label, err)
	}
	raw.key = keys[0]
	digest := sha256.Sum256([]byte("benchmark"))
	raw.data = append(append([]byte{}, sha256DigestInfo...), digest[:]...)
	return raw
}

// sign makes one PKCS#1 v1.5 signature as the pool does: CKM_RSA_PKCS over
// the DigestInfo.
func (r *rawToken) sign(b *testing.B) {
	s := <-r.sessions
	defer func() { r.sessions <- s }()
	if err := r.p.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}, r.key); err != nil {
		b.Error(err)
		return
	}
	if _, err := r.p.Sign(s, r.data); err != nil {
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
	raw := rawSoftHSM(b, 1)
	done := measure(b)
	for b.Loop() {
		raw.sign(b)
	}
	done()
}

func BenchmarkSigningRawSoftHSM2Sessions(b *testing.B) {
	raw := rawSoftHSM(b, 2)
	done := measure(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			raw.sign(b)
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
