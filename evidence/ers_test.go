package evidence

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/tsa"
)

// Bouncy Castle's ERSTest (bc-java pkix/src/test/java/org/bouncycastle/tsp/
// test/ERSTest.java) publishes the message imprints its
// ERSArchiveTimeStampGenerator requests for fixed data objects; data groups
// (H3, H5) are hashed as RFC 4998 §4.2 groups. The same objects must give
// the same roots here, and every reduced tree must fold back to the root.
func TestERSTreeMatchesBouncyCastle(t *testing.T) {
	h := func(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }
	group := func(names ...string) []byte {
		var hs [][]byte
		for _, n := range names {
			hs = append(hs, h(n))
		}
		return ersParent(crypto.SHA256, hs...)
	}
	h1, h2, h4 := h("This is H1"), h("This is H2"), h("This is H4")
	h3 := group("This is H3A", "This is H3B", "This is H3C")
	h5 := group("This is H5A", "This is H5B", "This is H5C")
	for _, tc := range []struct {
		name   string
		leaves [][]byte
		root   string
	}{
		{"testBasicBuild", [][]byte{h1, h2, h3}, "98fbf91c1aebdfec514d4a76532ec95f27ebcf4c8b6f7e2947afcbbfe7084cd4"},
		{"testBuildMultiGroups", [][]byte{h1, h2, h3, h5}, "06836dfdec4b556e05535d5696b0e4add5cee7d765bcba1f4c1613ddb9176813"},
		{"testBuildMulti", [][]byte{h1, h2, h3, h4, h5}, "b7efd5e742df672584e69b36ba5592748f841cc400ef989180aa2a69e43499e8"},
	} {
		levels := ersTree(crypto.SHA256, tc.leaves)
		root := levels[len(levels)-1][0]
		if hex.EncodeToString(root) != tc.root {
			t.Errorf("%s: root %x, want %s", tc.name, root, tc.root)
		}
		for _, leaf := range tc.leaves {
			got, err := ersRootFromReduced(crypto.SHA256, leaf, ersReduced(levels, leaf))
			if err != nil || !bytes.Equal(got, root) {
				t.Errorf("%s: leaf %x folds to %x, %v", tc.name, leaf[:4], got, err)
			}
		}
		if got, err := ersRootFromReduced(crypto.SHA256, h("absent"), ersReduced(levels, h1)); err == nil {
			t.Errorf("%s: a document not in the tree folded to %x", tc.name, got)
		}
	}
}

// Evidence records are issued per checkpoint, verify with this package's
// verifier and their timestamps with openssl, survive timestamp renewal
// (RFC 4998 §5.2) and reject other documents and altered records.
func TestEvidenceRecords(t *testing.T) {
	ctx := context.Background()
	pki := newDevPKI(t)
	dir := t.TempDir()
	l := openLog(t, dir, Options{Timestamper: pki.tsa})
	n := 0
	for _, batch := range []int{5, 1, 50} {
		if _, err := l.AppendBatch(ctx, testEntries(n, batch)); err != nil {
			t.Fatal(err)
		}
		n += batch
		if _, err := l.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	docs := map[string]SHA256{
		"first sealed":            testEntry(0).SealedSHA256,
		"original":                testEntry(3).OriginalSHA256,
		"alone in its checkpoint": testEntry(5).SealedSHA256,
		"last":                    testEntry(55).SealedSHA256,
	}
	check := func(wantTimestamps int) {
		t.Helper()
		for name, doc := range docs {
			rec, err := l.EvidenceRecord(ctx, doc)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			rep, err := VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: doc[:]}, pki.opensslToken)
			if err != nil || !rep.OK || len(rep.Timestamps) != wantTimestamps || rep.Chains != 1 {
				t.Fatalf("%s: %+v, %v; want OK with %d timestamps", name, rep, err, wantTimestamps)
			}
			other := testEntry(99).SealedSHA256
			if rep, _ := VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: other[:]}, nil); rep.OK || rep.Problems[0].Code != CodeRecordInvalid {
				t.Errorf("%s: record verified for another document: %+v", name, rep)
			}
			structure(t, rec, wantTimestamps)
		}
	}
	check(1)

	renewed, err := l.Renew(ctx, time.Now().Add(time.Hour))
	if err != nil || renewed != 3 {
		t.Fatalf("Renew = %d, %v; want 3 checkpoints", renewed, err)
	}
	check(2)
	if renewed, err := l.Renew(ctx, time.Now().Add(-time.Hour)); err != nil || renewed != 0 {
		t.Fatalf("Renew of fresh timestamps = %d, %v; want 0", renewed, err)
	}

	// Flipping any byte of the reduced hash tree or of a timestamp breaks it.
	doc := docs["last"]
	rec, _ := l.EvidenceRecord(ctx, doc)
	for _, at := range []int{len(rec) / 8, len(rec) / 2, len(rec) - 40} {
		bad := bytes.Clone(rec)
		bad[at] ^= 0x01
		rep, err := VerifyEvidenceRecord(bad, map[crypto.Hash][]byte{crypto.SHA256: doc[:]}, pki.opensslToken)
		if err == nil && rep.OK {
			t.Errorf("record with byte %d flipped still verifies", at)
		}
	}
	if _, err := VerifyEvidenceRecord([]byte("not DER"), nil, nil); fault.CodeOf(err) != CodeRecordInvalid {
		t.Errorf("garbage record: %v", err)
	}
}

// structure checks the DER with openssl asn1parse and the RFC 4998 §3 shape.
func structure(t *testing.T, rec []byte, timestamps int) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "er.der")
	os.WriteFile(f, rec, 0o600)
	if out, err := exec.Command("openssl", "asn1parse", "-inform", "DER", "-in", f).CombinedOutput(); err != nil {
		t.Fatalf("openssl asn1parse: %v\n%s", err, out)
	}
	var er evidenceRecord
	if _, err := asn1.Unmarshal(rec, &er); err != nil {
		t.Fatal(err)
	}
	if er.Version != 1 || len(er.DigestAlgorithms) != 1 || !er.DigestAlgorithms[0].Algorithm.Equal(hashOIDs[crypto.SHA256]) ||
		len(er.ArchiveTimeStampSequence) != 1 || len(er.ArchiveTimeStampSequence[0]) != timestamps {
		t.Fatalf("record shape: version %d, %d algorithms, chains %d", er.Version, len(er.DigestAlgorithms), len(er.ArchiveTimeStampSequence))
	}
}

// A checkpoint made while no TSA was configured has no record until a
// renewal with a TSA issues its first archive timestamp.
func TestEvidenceRecordAfterLateTimestamp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if _, err := l.AppendBatch(ctx, testEntries(0, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	doc := testEntry(2).SealedSHA256
	if _, err := l.EvidenceRecord(ctx, doc); fault.CodeOf(err) != CodeRecordUnavailable {
		t.Fatalf("record without TSA: %v, want %s", err, CodeRecordUnavailable)
	}
	if _, err := l.Renew(ctx, time.Now()); fault.CodeOf(err) != CodeRecordUnavailable {
		t.Fatalf("renew without TSA: %v", err)
	}
	l.Close()
	pki := newDevPKI(t)
	l2, err := Open(ctx, l.db, Options{Timestamper: pki.tsa})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if n, err := l2.Renew(ctx, time.Now()); err != nil || n != 1 {
		t.Fatalf("Renew = %d, %v", n, err)
	}
	rec, err := l2.EvidenceRecord(ctx, doc)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: doc[:]}, pki.opensslToken); err != nil || !rep.OK {
		t.Fatalf("%+v, %v", rep, err)
	}
}

// While the TSA is down, checkpoints are still made (without timestamps);
// once it is back, Run issues the missing archive timestamps by itself.
func TestTSAOutageDefersArchiveTimestamps(t *testing.T) {
	ctx := context.Background()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	unreachable, err := tsa.NewClient(tsa.ClientConfig{URL: down.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, t.TempDir(), Options{Timestamper: unreachable})
	if _, err := l.AppendBatch(ctx, testEntries(0, 4)); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.Size != 4 || len(cp.Timestamp) != 0 {
		t.Fatalf("checkpoint during the outage: %+v, %v; want one of size 4 without timestamp", cp, err)
	}
	doc := testEntry(1).OriginalSHA256
	if _, err := l.EvidenceRecord(ctx, doc); fault.CodeOf(err) != CodeRecordUnavailable {
		t.Fatalf("record during the outage: %v", err)
	}
	l.Close()

	pki := newDevPKI(t)
	back, err := Open(ctx, l.db, Options{Timestamper: pki.tsa, CheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go back.Run(runCtx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := back.EvidenceRecord(ctx, doc)
		if err == nil {
			rep, err := VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: doc[:]}, pki.opensslToken)
			if err != nil || !rep.OK {
				t.Fatalf("%+v, %v", rep, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no archive timestamp after the TSA came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After a bulk load, one Checkpoint call makes several checkpoints of at
// most checkpointStep new leaves, each with its own archive timestamp.
func TestBulkLoadIsCheckpointedInSteps(t *testing.T) {
	ctx := context.Background()
	pki := newDevPKI(t)
	l := openLog(t, t.TempDir(), Options{Timestamper: pki.tsa})
	l.checkpointStep = 7
	if _, err := l.AppendBatch(ctx, testEntries(0, 30)); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.Size != 30 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	sizes, _ := l.Checkpoints(ctx)
	if fmt.Sprint(sizes) != "[7 14 21 28 30]" {
		t.Fatalf("checkpoint sizes %v", sizes)
	}
	for _, i := range []int{0, 6, 7, 20, 29} {
		doc := testEntry(i).SealedSHA256
		rec, err := l.EvidenceRecord(ctx, doc)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := VerifyEvidenceRecord(rec, map[crypto.Hash][]byte{crypto.SHA256: doc[:]}, nil); err != nil || !rep.OK {
			t.Fatalf("leaf %d: %+v, %v", i, rep, err)
		}
	}
}

// TestHashTreeRenewal renews a record's hash tree with SHA-512 (RFC 4998
// §5.2) as the document's holder would: the renewed record verifies with the
// document's SHA-256 and SHA-512 digests, both chains' timestamps pass
// openssl, and neither another document nor a missing SHA-512 digest does.
func TestHashTreeRenewal(t *testing.T) {
	ctx := context.Background()
	pki := newDevPKI(t)
	l := openLog(t, t.TempDir(), Options{Timestamper: pki.tsa})
	if _, err := l.AppendBatch(ctx, testEntries(0, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	doc := []byte("sealed 2") // the document testEntry(2) records
	rec, err := l.EvidenceRecord(ctx, sha256.Sum256(doc))
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := RenewRecordHashTree(ctx, rec, bytes.NewReader(doc), crypto.SHA512, pki.tsa)
	if err != nil {
		t.Fatal(err)
	}
	digests := func(b []byte) map[crypto.Hash][]byte {
		s256, s512 := sha256.Sum256(b), sha512.Sum512(b)
		return map[crypto.Hash][]byte{crypto.SHA256: s256[:], crypto.SHA512: s512[:]}
	}
	rep, err := VerifyEvidenceRecord(renewed, digests(doc), pki.opensslToken)
	if err != nil || !rep.OK || rep.Chains != 2 || len(rep.Timestamps) != 2 {
		t.Fatalf("renewed record: %+v, %v", rep, err)
	}
	if rep, _ := VerifyEvidenceRecord(renewed, digests([]byte("sealed 3")), nil); rep.OK {
		t.Error("the renewed record verifies for another document")
	}
	only256 := digests(doc)
	delete(only256, crypto.SHA512)
	if rep, _ := VerifyEvidenceRecord(renewed, only256, nil); rep.OK {
		t.Error("the renewed chain verified without the document's SHA-512 digest")
	}
	wrong, err := RenewRecordHashTree(ctx, rec, bytes.NewReader([]byte("sealed 3")), crypto.SHA512, pki.tsa)
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := VerifyEvidenceRecord(wrong, digests(doc), nil); rep.OK {
		t.Error("a hash tree renewed over another document verifies for this one")
	}
	if _, err := RenewRecordHashTree(ctx, []byte("not DER"), bytes.NewReader(doc), crypto.SHA512, pki.tsa); fault.CodeOf(err) != CodeRecordInvalid {
		t.Errorf("renewing garbage: %v", err)
	}
}
