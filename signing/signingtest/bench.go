package signingtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

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

// PeakRSSGrowth runs f and returns how far the process's peak resident set
// rose above its resident set before f. Writing 5 to clear_refs resets
// the peak (VmHWM) so earlier tests do not hide f's.
func PeakRSSGrowth(t testing.TB, f func()) int64 {
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

// BenchSerialAndParallel runs op one caller at a time and from parallel
// callers, reporting seals per second for each.
func BenchSerialAndParallel(b *testing.B, size int64, op func(b *testing.B)) {
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

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2).
var sha256DigestInfo, _ = hex.DecodeString("3031300d060960864801650304020105000420")

// RawToken is a seal key on a SoftHSM token reached straight through
// miekg/pkcs11, without the pool: the ceiling the pool and the sealing
// paths are measured against.
type RawToken struct {
	p        *pkcs11.Ctx
	sessions chan pkcs11.SessionHandle
	key      pkcs11.ObjectHandle
	data     []byte // a SHA-256 DigestInfo to sign
}

// OpenRawToken opens n logged-in sessions on the token labelled label. The
// library may already be initialised and logged in by a pool in this
// process (a shared token): then the pool keeps it and finalises it.
func OpenRawToken(b *testing.B, module, label, pin string, n int) *RawToken {
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
	raw := &RawToken{p: p, sessions: make(chan pkcs11.SessionHandle, n)}
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

// Sign makes one PKCS#1 v1.5 signature as the pool does: CKM_RSA_PKCS over
// the DigestInfo.
func (r *RawToken) Sign(b *testing.B) {
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
