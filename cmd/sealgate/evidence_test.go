package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/tsa/tsatest"
)

// runEvidence runs `sealgate --config cfg evidence args...` in process and
// returns its standard output.
func runEvidence(t *testing.T, cfg string, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, &app{configPath: cfg}, newEvidenceCmd, args...)
}

// TestEvidenceCommands: with a seal on a SoftHSM card and a TSA configured,
// `evidence checkpoint` makes a sealed, timestamped checkpoint, `evidence
// show` prints evidence that verifies offline and writes an evidence record
// whose timestamp openssl accepts, and `evidence renew` renews it.
func TestEvidenceCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := signingtest.NewSoftHSM(t)
	sealKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pool, ca := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "log-seal", Key: sealKey})
	authority := tsatest.Start(t, ca)
	tc := authority.Chain[0]
	caFile, tsaFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "tsa.pem")
	devpki.WriteCertsPEM(caFile, ca.Cert)
	devpki.WriteCertsPEM(tsaFile, tc)

	cfgFile := filepath.Join(dir, "sealgate.yaml")
	writeConfig := func(evidence map[string]string) {
		t.Helper()
		cfg, err := yaml.Marshal(map[string]any{
			"data":     dir,
			"signing":  pool,
			"tsa":      map[string]string{"url": authority.URL},
			"evidence": evidence,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(map[string]string{"origin": "seal.example.test/log", "seal": "log-seal"})

	// The sealing service appends; here the log is filled directly.
	db, err := store.Open(ctx, filepath.Join(dir, "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := evidence.Open(ctx, db, evidence.Options{Origin: "seal.example.test/log"})
	if err != nil {
		t.Fatal(err)
	}
	var docs []evidence.SHA256
	for i := 0; i < 3; i++ {
		e := evidence.Entry{SealedSHA256: sha256.Sum256(fmt.Appendf(nil, "sealed %d", i)), OriginalSHA256: sha256.Sum256(fmt.Appendf(nil, "original %d", i)),
			SealID: "log-seal", Format: evidence.FormatCAdES, Level: "B-T", Time: time.Now(), PrincipalHash: l.PrincipalHash("process:dev")}
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, e.SealedSHA256)
	}
	l.Close()
	db.Close()

	out, err := runEvidence(t, cfgFile, "checkpoint", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var cp evidence.Checkpoint
	if err := json.Unmarshal([]byte(out), &cp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if cp.Size != 3 || len(cp.Seal) == 0 || len(cp.Timestamp) == 0 {
		t.Fatalf("checkpoint %+v: want size 3, sealed and timestamped", cp)
	}
	opensslCMS(t, dir, []byte(cp.Note), cp.Seal, caFile)

	record := filepath.Join(dir, "record.ers")
	out, err = runEvidence(t, cfgFile, "show", docs[1].String(), "--record", record)
	if err != nil {
		t.Fatal(err)
	}
	var shown struct {
		evidence.Evidence
		LogKey string `json:"logKey"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	rep := evidence.VerifyEvidence(&shown.Evidence, docs[1], evidence.VerifyOptions{LogKey: shown.LogKey,
		VerifySeal: func(content, p7s []byte) error { opensslCMS(t, dir, content, p7s, caFile); return nil }})
	if !rep.OK || !rep.SealChecked || rep.Index != 1 || rep.TimestampedAt == nil {
		t.Fatalf("evidence report %+v", rep)
	}
	verifyRecord := func(wantTimestamps int) {
		t.Helper()
		rec, err := os.ReadFile(record)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := evidence.VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: docs[1][:]}, func(token []byte) error {
			f := filepath.Join(dir, "token.tst")
			os.WriteFile(f, token, 0o600)
			info, err := cms.ParseTimestampToken(token)
			if err != nil {
				return err
			}
			out, err := exec.Command("openssl", "ts", "-verify", "-digest", fmt.Sprintf("%x", info.Imprint), "-in", f, "-token_in",
				"-CAfile", caFile, "-untrusted", tsaFile).CombinedOutput()
			if err != nil {
				return fmt.Errorf("openssl ts -verify: %v: %s", err, out)
			}
			return nil
		})
		if err != nil || !rr.OK || len(rr.Timestamps) != wantTimestamps {
			t.Fatalf("evidence record: %+v, %v; want %d timestamps", rr, err, wantTimestamps)
		}
	}
	verifyRecord(1)

	// renew takes its age from evidence.renewAfter, and without one asks for it.
	if out, err = runEvidence(t, cfgFile, "renew"); fault.CodeOf(err) != "bad_request" || !strings.Contains(err.Error(), "--older-than") {
		t.Fatalf("renew without renewAfter: %q, %v", out, err)
	}
	writeConfig(map[string]string{"origin": "seal.example.test/log", "seal": "log-seal", "renewAfter": "1h"})
	if out, err = runEvidence(t, cfgFile, "renew"); err != nil || !strings.Contains(out, "of 0 checkpoints") {
		t.Fatalf("renew of timestamps younger than renewAfter: %q, %v", out, err)
	}
	if out, err = runEvidence(t, cfgFile, "renew", "--older-than", "0s"); err != nil || !strings.Contains(out, "of 1 checkpoints") {
		t.Fatalf("renew --older-than 0s: %q, %v", out, err)
	}
	if _, err := runEvidence(t, cfgFile, "show", docs[1].String(), "--record", record); err != nil {
		t.Fatal(err)
	}
	verifyRecord(2)

	// Hash-tree renewal (a new algorithm), done by the document's holder.
	docFile := filepath.Join(dir, "sealed-1")
	if err := os.WriteFile(docFile, []byte("sealed 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runEvidence(t, cfgFile, "renew", "--record", record, "--document", docFile, "--hash", "sha512"); err != nil || !strings.Contains(out, "renewed the hash tree") {
		t.Fatalf("renew --record: %q, %v", out, err)
	}
	renewed, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	s512 := sha512.Sum512([]byte("sealed 1"))
	if rr, err := evidence.VerifyEvidenceRecord(renewed, map[crypto.Hash][]byte{crypto.SHA256: docs[1][:], crypto.SHA512: s512[:]}, nil); err != nil || !rr.OK || rr.Chains != 2 {
		t.Fatalf("record after hash-tree renewal: %+v, %v", rr, err)
	}
	if _, err := runEvidence(t, cfgFile, "renew", "--record", record, "--hash", "md5", "--document", docFile); fault.CodeOf(err) != "bad_request" {
		t.Fatalf("renew --hash md5: %v", err)
	}

	unknown := sha256.Sum256([]byte("never sealed"))
	if _, err := runEvidence(t, cfgFile, "show", fmt.Sprintf("%x", unknown)); fault.CodeOf(err) != evidence.CodeNotFound {
		t.Fatalf("show of an unknown document: %v, want %s", err, evidence.CodeNotFound)
	}
	if _, err := runEvidence(t, cfgFile, "show", "xyz"); fault.CodeOf(err) != evidence.CodeBadDigest {
		t.Fatalf("show xyz: %v, want %s", err, evidence.CodeBadDigest)
	}
}

// opensslCMS verifies a detached CMS signature over content with openssl.
func opensslCMS(t *testing.T, dir string, content, p7s []byte, caFile string) {
	t.Helper()
	c, s := filepath.Join(dir, "content"), filepath.Join(dir, "sig.p7s")
	os.WriteFile(c, content, 0o600)
	os.WriteFile(s, p7s, 0o600)
	out, err := exec.Command("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", s, "-content", c,
		"-CAfile", caFile, "-purpose", "any", "-out", os.DevNull).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl cms -verify: %v: %s", err, out)
	}
}
