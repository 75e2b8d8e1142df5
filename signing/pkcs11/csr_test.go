package pkcs11_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/signing/softkey"
)

// TestCardKeyFromRequestToSeal walks a new card through its administration:
// a key made on the card, a certificate request signed by it, the issued
// chain imported next to the configuration, and a pool sealing with it.
func TestCardKeyFromRequestToSeal(t *testing.T) {
	for _, keyType := range []string{"rsa:2048", "EC:prime256v1", "EC:secp384r1"} {
		t.Run(keyType, func(t *testing.T) {
			h := signingtest.NewSoftHSM(t)
			h.InitToken("seal-1", "1234")
			cardPub := h.GenerateKey("seal-1", "1234", "seal", "0a", keyType)
			chainFile := filepath.Join(t.TempDir(), "acme-chain.pem")
			cfg := signing.PoolConfig{
				Modules: []signing.ModuleConfig{{Name: "softhsm", Path: h.Module}},
				Tokens:  []signing.TokenConfig{{Module: "softhsm", Label: "seal-1", PIN: h.PINFile("seal-1", "1234")}},
				Seals:   []signing.SealConfig{{ID: "acme", Certificate: chainFile, Keys: []signing.KeyRef{{Token: "seal-1", Label: "seal", ID: "0a"}}}},
			}

			key, err := pkcs11.OpenTokenKey(&cfg, signing.KeyRef{Token: "seal-1", Label: "seal"})
			if err != nil {
				t.Fatal(err)
			}
			defer key.Close()
			if !cardPub.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Fatal("OpenTokenKey's public key is not the one made on the card")
			}

			subject, err := pkcs11.ParseSubject("CN=Example Manufacturing Seal,O=Example Manufacturing GmbH,organizationIdentifier=VATDE-123456789,C=DE")
			if err != nil {
				t.Fatal(err)
			}
			der, err := pkcs11.CreateCSR(key, subject)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatalf("request signature: %v", err)
			}
			csrPEM := filepath.Join(t.TempDir(), "req.csr")
			os.WriteFile(csrPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644)
			if out, err := exec.Command("openssl", "req", "-verify", "-noout", "-in", csrPEM).CombinedOutput(); err != nil {
				t.Fatalf("openssl req -verify: %v\n%s", err, out)
			}
			got := csr.Subject
			if got.CommonName != "Example Manufacturing Seal" || !slices.Equal(got.Organization, []string{"Example Manufacturing GmbH"}) ||
				!slices.Equal(got.Country, []string{"DE"}) || !slices.ContainsFunc(got.Names, func(a pkix.AttributeTypeAndValue) bool {
				return a.Type.String() == "2.5.4.97" && a.Value == "VATDE-123456789"
			}) {
				t.Errorf("request subject %s", got)
			}

			ca, err := devpki.NewCA("Example Trust Services")
			if err != nil {
				t.Fatal(err)
			}
			issued, err := ca.IssueSeal(csr.PublicKey, devpki.SealSubject{Organization: "Example Manufacturing GmbH"}, 365*24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			chainPEM := pemCerts(issued, ca.Cert)
			if _, err := pkcs11.ImportChain(chainPEM, chainFile, key); err != nil {
				t.Fatalf("ImportChain: %v", err)
			}
			if got, _ := os.ReadFile(chainFile); !bytes.Equal(got, chainPEM) {
				t.Fatal("the chain file does not hold the imported chain")
			}
			key.Close()

			pool, _ := newPool(t, cfg)
			seal, err := pool.Key("acme")
			if err != nil {
				t.Fatal(err)
			}
			digest := sha256.Sum256([]byte("first sealed invoice"))
			opts := crypto.SHA256
			sig, err := seal.Sign(nil, digest[:], opts)
			if err != nil {
				t.Fatalf("sealing with the imported certificate: %v", err)
			}
			if err := verify(issued.PublicKey, digest[:], sig, opts); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestImportChainRefusesWhatDoesNotFit(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	h.InitToken("seal-1", "1234")
	h.GenerateKey("seal-1", "1234", "seal", "01", "rsa:2048")
	cfg := signing.PoolConfig{
		Modules: []signing.ModuleConfig{{Name: "softhsm", Path: h.Module}},
		Tokens:  []signing.TokenConfig{{Module: "softhsm", Label: "seal-1", PIN: h.PINFile("seal-1", "1234")}},
	}
	key, err := pkcs11.OpenTokenKey(&cfg, signing.KeyRef{Token: "seal-1", ID: "01"})
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	ca, _ := devpki.NewCA("Example Trust Services")
	other, _ := devpki.NewCA("Other Trust Services")
	forCard, err := ca.IssueSeal(key.Public(), devpki.SealSubject{Organization: "Example"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forOtherKey, _ := ca.IssueSeal(mustKey(t, "rsa2048").Public(), devpki.SealSubject{Organization: "Example"}, 24*time.Hour)

	cases := []struct {
		name  string
		chain []byte
		code  fault.Code
	}{
		{"certificate for another key", pemCerts(forOtherKey, ca.Cert), signing.CodeKeyMismatch},
		{"issuer is not the next certificate", pemCerts(forCard, other.Cert), pkcs11.CodeChainInvalid},
		{"issuer before the seal certificate", pemCerts(ca.Cert, forCard), pkcs11.CodeChainInvalid},
		{"no certificate at all", []byte("not PEM"), pkcs11.CodeChainInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "chain.pem")
			os.WriteFile(path, []byte("previous chain"), 0o644)
			if _, err := pkcs11.ImportChain(c.chain, path, key); fault.CodeOf(err) != c.code {
				t.Fatalf("ImportChain: %v; want %s", err, c.code)
			}
			if got, _ := os.ReadFile(path); string(got) != "previous chain" {
				t.Fatal("a refused chain was written")
			}
		})
	}
}

func TestOpenTokenKeyFailures(t *testing.T) {
	h := signingtest.NewSoftHSM(t)
	h.InitToken("seal-1", "1234")
	h.GenerateKey("seal-1", "1234", "seal", "01", "EC:prime256v1")
	cfg := signing.PoolConfig{
		Modules: []signing.ModuleConfig{{Name: "softhsm", Path: h.Module}},
		Tokens: []signing.TokenConfig{
			{Module: "softhsm", Label: "seal-1", PIN: h.PINFile("seal-1", "1234")},
			{Module: "softhsm", Label: "wrong-pin", PIN: h.PINFile("wrong-pin", "9999")},
			{Module: "softhsm", Label: "absent", PIN: h.PINFile("absent", "1234")},
		},
	}
	h.InitToken("wrong-pin", "1234")
	cases := []struct {
		name string
		ref  signing.KeyRef
		code fault.Code
	}{
		{"token not configured", signing.KeyRef{Token: "seal-9", Label: "seal"}, signing.CodeConfigInvalid},
		{"token not present", signing.KeyRef{Token: "absent", Label: "seal"}, signing.CodeTokenUnavailable},
		{"wrong PIN", signing.KeyRef{Token: "wrong-pin", Label: "seal"}, signing.CodeTokenLoginFailed},
		{"no such key", signing.KeyRef{Token: "seal-1", Label: "other"}, signing.CodeSealUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := pkcs11.OpenTokenKey(&cfg, c.ref)
			if err == nil {
				k.Close()
			}
			if fault.CodeOf(err) != c.code || strings.Contains(err.Error(), "9999") {
				t.Fatalf("OpenTokenKey: %v; want %s without the PIN", err, c.code)
			}
		})
	}
	// The pool shares the module with keys opened for administration.
	k, err := pkcs11.OpenTokenKey(&cfg, signing.KeyRef{Token: "seal-1", Label: "seal"})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := signing.NewPool(context.Background(), signing.PoolConfig{Modules: cfg.Modules, Tokens: cfg.Tokens[:1]}, nil, pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	if !pool.Status()[0].Healthy {
		t.Errorf("a pool opened beside an administration key: %+v", pool.Status()[0])
	}
	pool.Close()
	digest := sha256.Sum256([]byte("after the pool closed"))
	if _, err := k.Sign(nil, digest[:], crypto.SHA256); err != nil {
		t.Errorf("the administration key stopped working when the pool closed: %v", err)
	}
	k.Close()
}

func TestParseSubject(t *testing.T) {
	orgID := func(v string) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 97}, Value: v}}
	}
	cases := []struct {
		in   string
		want pkix.Name
		err  string
	}{
		{in: "CN=Acme Seal", want: pkix.Name{CommonName: "Acme Seal"}},
		{in: "CN=Acme Seal, O=Acme\\, Inc., c=de, organizationIdentifier=VATDE-1", want: pkix.Name{CommonName: "Acme Seal", Organization: []string{"Acme, Inc."}, Country: []string{"DE"}, ExtraNames: orgID("VATDE-1")}},
		{in: "CN=Acme,OU=Finance,OU=Sales,L=Berlin,ST=BE,STREET=Hauptstr. 1,SERIALNUMBER=HRB 1", want: pkix.Name{CommonName: "Acme", OrganizationalUnit: []string{"Finance", "Sales"}, Locality: []string{"Berlin"}, Province: []string{"BE"}, StreetAddress: []string{"Hauptstr. 1"}, SerialNumber: "HRB 1"}},
		{in: "O=Acme", err: "has no CN"},
		{in: "CN=Acme,C=Germany", err: `country "Germany"`},
		{in: "CN=Acme,E=seal@example.com", err: `attribute "E" is not supported`},
		{in: "CN=Acme,Acme GmbH", err: `"Acme GmbH" is not attribute=value`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := pkcs11.ParseSubject(c.in)
			if c.err != "" {
				if fault.CodeOf(err) != pkcs11.CodeSubjectInvalid || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseSubject: %v; want subject_invalid mentioning %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseSubject = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}
