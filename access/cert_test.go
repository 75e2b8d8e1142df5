package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// clientCert makes a self-signed TLS client certificate valid around now.
func clientCert(t testing.TB, cn string, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Example Corp"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func TestClientCertificatesMapToProcesses(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	for _, id := range []string{"erp", "batch"} {
		if _, _, err := svc.AddProcess(ctx, id, "", nil, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	pinned := clientCert(t, "erp-host", clock.Now())
	byDN := clientCert(t, "batch-host", clock.Now())
	stranger := clientCert(t, "someone", clock.Now())
	// Fingerprints are accepted with colons and in upper case, as tools print them.
	fp := strings.ToUpper(fingerprint(pinned))
	var colons []string
	for i := 0; i < len(fp); i += 2 {
		colons = append(colons, fp[i:i+2])
	}
	if err := svc.AddProcessCert(ctx, "erp", ProcessCert{Fingerprint: strings.Join(colons, ":")}, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddProcessCert(ctx, "batch", ProcessCert{Subject: byDN.Subject.String()}, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddProcessCert(ctx, "batch", ProcessCert{Fingerprint: "abcd"}, "cli"); fault.CodeOf(err) != CodeInvalidInput {
		t.Fatalf("short fingerprint: %v", err)
	}

	tests := []struct {
		name     string
		cert     *x509.Certificate
		verified bool
		want     string // process, or "" for refused
	}{
		{"pinned fingerprint, chain not verified", pinned, false, "erp"},
		{"pinned fingerprint, chain verified", pinned, true, "erp"},
		{"subject DN with a verified chain", byDN, true, "batch"},
		{"subject DN without a verified chain", byDN, false, ""},
		{"unknown certificate", stranger, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := svc.AuthenticateClientCert(ctx, tt.cert, tt.verified, office)
			if tt.want == "" {
				if fault.CodeOf(err) != CodeUnauthenticated {
					t.Fatalf("got %+v, %v; want unauthenticated", p, err)
				}
				return
			}
			if err != nil || p.Name != tt.want || !p.Has(FactorClientCert) {
				t.Fatalf("got %+v, %v; want %s with client_cert", p, err, tt.want)
			}
		})
	}

	clock.Add(25 * time.Hour)
	if _, err := svc.AuthenticateClientCert(ctx, pinned, false, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("expired pinned certificate: %v", err)
	}
	clock.Add(-25 * time.Hour)
	if err := svc.RevokeProcess(ctx, "erp", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AuthenticateClientCert(ctx, pinned, true, office); fault.CodeOf(err) != CodeUnauthenticated {
		t.Fatalf("certificate of a revoked process: %v", err)
	}
}
