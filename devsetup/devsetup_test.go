package devsetup

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
)

// prepare runs Prepare on a new directory and loads the pool it configured.
func prepare(t *testing.T) (*Result, *signing.Pool, string) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	res, err := Prepare(ctx, dir, "127.0.0.1:8080", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if res.SoftHSM {
		t.Setenv("SOFTHSM2_CONF", Layout{Dir: dir}.SoftHSMConf())
	}
	cfg, err := config.Load(res.Config, "")
	if err != nil {
		t.Fatal(err)
	}
	pc, ok, err := signing.LoadPoolConfig(cfg)
	if err != nil || !ok {
		t.Fatalf("signing section: %v %v", ok, err)
	}
	pool, err := signing.NewPool(ctx, pc, slog.New(slog.NewTextHandler(io.Discard, nil)), pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return res, pool, dir
}

// checkDevSeal checks the development seal signs, is issued by the
// development CA and says it is not qualified.
func checkDevSeal(t *testing.T, pool *signing.Pool, dir string) {
	t.Helper()
	if err := pool.Ready(); err != nil {
		t.Fatalf("development seal not ready: %v", err)
	}
	key, err := pool.Key(SealID)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := devpki.ReadCertsPEM(Layout{Dir: dir}.CA())
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Chain()[0].CheckSignatureFrom(ca[0]); err != nil {
		t.Errorf("seal certificate not issued by the development CA: %v", err)
	}
	if ou := key.Chain()[0].Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != devpki.NotQualified {
		t.Errorf("seal certificate OU %q, want %q", ou, devpki.NotQualified)
	}
	if _, err := cms.CAdES(context.Background(), key, strings.NewReader("probe"), cms.CAdESOptions{}); err != nil {
		t.Errorf("development seal does not sign: %v", err)
	}
	// The CA's CRL, named in the configuration, covers the seal for B-LT.
	der, err := os.ReadFile(Layout{Dir: dir}.CRL())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil || crl.CheckSignatureFrom(ca[0]) != nil || crl.NextUpdate.Before(key.Chain()[0].NotAfter.Add(-24*time.Hour)) {
		t.Errorf("development CRL: %v", err)
	}
	cfg, err := os.ReadFile(Layout{Dir: dir}.Config())
	if err != nil || !strings.Contains(string(cfg), Layout{Dir: dir}.CRL()) {
		t.Errorf("the configuration does not name the CRL: %v\n%s", err, cfg)
	}
}

func TestPrepareWithSoftHSM(t *testing.T) {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		t.Skip("softhsm2 not installed")
	}
	res, pool, dir := prepare(t)
	if !res.SoftHSM || !res.Created {
		t.Fatalf("result %+v, want a new SoftHSM setup", res)
	}
	if st := pool.Status(); len(st) != 1 || st[0].Token != tokenLabel || !st[0].Healthy {
		t.Errorf("card status %+v", st)
	}
	checkDevSeal(t, pool, dir)
	for _, secret := range []string{"secrets/dev-seal-pin", "pki/dev-ca-key.pem", "pki/dev-tsa-key.pem", "sealgate.yaml"} {
		st, err := os.Stat(filepath.Join(dir, secret))
		if err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want owner-only", secret, err, st.Mode())
		}
	}
	// A second run reuses what exists.
	again, err := Prepare(context.Background(), dir, "127.0.0.1:8080", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || again.Created || !again.SoftHSM {
		t.Errorf("second Prepare: %+v, %v; want the existing SoftHSM setup reused", again, err)
	}
}

func TestPrepareWithoutSoftHSMUsesASoftwareKey(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no softhsm2-util, no pkcs11-tool
	res, pool, dir := prepare(t)
	if res.SoftHSM {
		t.Fatal("SoftHSM reported although its tools are not on PATH")
	}
	seals := pool.Seals()
	if len(seals) != 1 || !seals[0].Software {
		t.Fatalf("seals %+v, want one software-key seal", seals)
	}
	checkDevSeal(t, pool, dir)
}

// The development setup has a TLS server certificate for the loopback
// names, and issues client certificates from its CA; a setup made before
// there were server certificates gets one on the next start.
func TestDevelopmentTLSCertificates(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // the software key is enough here
	_, _, dir := prepare(t)
	l := Layout{Dir: dir}
	ca, err := devpki.ReadCertsPEM(l.CA())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca[0])
	check := func(file string, usage x509.ExtKeyUsage, name string) {
		t.Helper()
		pair, err := tls.LoadX509KeyPair(file, strings.Replace(file, ".pem", "-key.pem", 1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		check(l.ServerCert(), x509.ExtKeyUsageServerAuth, host)
	}
	certFile, keyFile, err := IssueClientCert(dir, "erp")
	if err != nil {
		t.Fatal(err)
	}
	if certFile != l.Path("pki", "erp-client.pem") || keyFile != l.Path("pki", "erp-client-key.pem") {
		t.Errorf("client certificate written to %s, %s", certFile, keyFile)
	}
	check(certFile, x509.ExtKeyUsageClientAuth, "")
	for _, f := range []string{l.ServerKey(), keyFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v; want owner-only", f, err, st.Mode())
		}
	}
	for _, bad := range []string{"", "../erp", ".hidden", "a/b"} {
		if _, _, err := IssueClientCert(dir, bad); err == nil {
			t.Errorf("client certificate named %q was issued", bad)
		}
	}

	if err := os.Remove(l.ServerCert()); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(context.Background(), dir, "127.0.0.1:8080", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	check(l.ServerCert(), x509.ExtKeyUsageServerAuth, "127.0.0.1")
}
