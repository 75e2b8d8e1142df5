package server_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/csc/csctest"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// remoteNode starts a node whose seal "acme" lives at a CSC provider on
// loopback allowing multisign hashes per signHash call (and on a local
// SoftHSM card for each of localTokens), with jobs of up to batchSize
// documents signed as one batch; its jobs are not run.
func remoteNode(t testing.TB, multisign, batchSize int, localTokens ...string) (*node, *csctest.Server) {
	t.Helper()
	var tsp *csctest.Server
	n := newNode(t, func(doc map[string]any) {
		var cfg signing.PoolConfig
		tsp, cfg = csctest.StartSeal(t, signingtest.NewSoftHSM(t), csctest.Options{Multisign: multisign}, localTokens...)
		doc["signing"] = cfg
		doc["jobs"] = map[string]any{"workers": batchSize, "batchSize": batchSize}
	})
	return n, tsp
}

// A job of 100 PDFs whose seal lives at a CSC provider costs one
// credentials/authorize and ⌈100/multisign⌉ signHash calls; every
// document is sealed (PAdES B-T), verifies, has one seal event naming the
// provider's credential and one evidence leaf. A document failing before
// its signature leaves its batch: the others are signed without waiting
// for it.
func TestJobBatchesRemoteSignatures(t *testing.T) {
	const docs, multisign = 100, 15
	n, tsp := remoteNode(t, multisign, docs)
	runJobs(t, n.Server)
	erp := n.process(t, n.ERPID, n.ERPSecret)
	roots := x509.NewCertPool()
	roots.AddCert(n.CA.Cert) // the TSA's
	roots.AddCert(signingtest.SharedPKI(t).CA.Cert)

	pdfs := make([][]byte, docs)
	for i := range pdfs {
		pdfs[i] = pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: fmt.Sprintf("invoice %d", i+1)}}})
	}
	authorize0, sign0 := tsp.Calls("credentials/authorize"), tsp.Calls("signatures/signHash")
	started := time.Now()
	st := waitJob(t, n.Server, erp, submit(t, n.Server, erp, seal.PAdES, pdfs...).ID, 5*time.Minute)
	t.Logf("%d PDFs sealed through the provider in %s", docs, time.Since(started).Round(time.Millisecond))
	if st.State != seal.JobDone || st.Counts.Done != docs {
		t.Fatalf("job ended %s %+v", st.State, st.Counts)
	}
	wantSign := (docs + multisign - 1) / multisign
	if a, sh := tsp.Calls("credentials/authorize")-authorize0, tsp.Calls("signatures/signHash")-sign0; a != 1 || sh != wantSign {
		t.Errorf("a job of %d documents: %d credentials/authorize and %d signatures/signHash calls, want 1 and %d", docs, a, sh, wantSign)
	}
	for k, doc := range pdfs {
		checkResult(t, n.Server, erp, st, k+1, doc, roots)
	}
	for _, k := range []int{1, 50, docs} {
		res, err := n.Jobs.Result(context.Background(), erp, st.ID, k)
		if err != nil {
			t.Fatal(err)
		}
		if res.Card != "tsp" {
			t.Errorf("document %d: seal event names card %q, want the credential tsp", k, res.Card)
		}
		res.Close()
	}

	// One of four documents is no PDF: it fails before asking for its
	// signature, and the three others are signed as one batch at once.
	authorize0, sign0 = tsp.Calls("credentials/authorize"), tsp.Calls("signatures/signHash")
	started = time.Now()
	st = waitJob(t, n.Server, erp, submit(t, n.Server, erp, seal.PAdES, pdfs[0], []byte("not a pdf"), pdfs[1], pdfs[2]).ID, time.Minute)
	took := time.Since(started)
	if st.State != seal.JobDone || st.Counts.Done != 3 || st.Counts.Failed != 1 || st.Documents[1].Code != signing.CodePDFMalformed {
		t.Fatalf("job with a bad document: %+v", st)
	}
	if a, sh := tsp.Calls("credentials/authorize")-authorize0, tsp.Calls("signatures/signHash")-sign0; a != 1 || sh != 1 {
		t.Errorf("three documents: %d credentials/authorize and %d signatures/signHash calls, want 1 and 1", a, sh)
	}
	// Its batch would have waited 5 s for the bad document.
	if took > 4*time.Second {
		t.Errorf("a job of 3 PDFs and a bad document took %s: the batch waited for the document that failed", took)
	}
}

// The provider failing its signHash calls while a job's batches are
// signed: the pool signs them on the local card holding the same seal, and
// every document ends sealed and verifying, none failed or retried.
func TestJobBatchFailsOver(t *testing.T) {
	const docs = 40
	n, tsp := remoteNode(t, 15, 10, "local-1")
	runJobs(t, n.Server)
	erp := n.process(t, n.ERPID, n.ERPSecret)
	roots := x509.NewCertPool()
	roots.AddCert(n.CA.Cert)
	roots.AddCert(signingtest.SharedPKI(t).CA.Cert)
	files := textDocs(docs)
	authorize0 := tsp.Calls("credentials/authorize")
	tsp.SetFault(csctest.Fault{Status: http.StatusServiceUnavailable, Methods: []string{"signatures/signHash"}})
	st := waitJob(t, n.Server, erp, submit(t, n.Server, erp, seal.CAdES, files...).ID, 2*time.Minute)
	if st.State != seal.JobDone || st.Counts.Done != docs {
		t.Fatalf("job with the provider failing: %s %+v", st.State, st.Counts)
	}
	// A batch authorized at the provider whose signHash failed moved on.
	if tsp.Calls("credentials/authorize") == authorize0 {
		t.Error("no batch went to the provider, so none failed over")
	}
	byCard := map[string]int{}
	for k, doc := range files {
		checkResult(t, n.Server, erp, st, k+1, doc, roots)
		res, err := n.Jobs.Result(context.Background(), erp, st.ID, k+1)
		if err != nil {
			t.Fatal(err)
		}
		byCard[res.Card]++
		res.Close()
	}
	var retried int
	if err := n.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_job_documents WHERE job_id = ? AND attempts > 0`, st.ID).Scan(&retried); err != nil {
		t.Fatal(err)
	}
	if byCard["local-1"] != docs || retried != 0 {
		t.Errorf("documents by card %v, %d tried again; want all %d signed on local-1 at the first attempt", byCard, retried, docs)
	}
}

// jobs.batchSize may not exceed jobs.workers, which seal a batch's
// documents side by side; without workers set, the node runs as many
// workers as a batch holds.
func TestJobBatchSizeConfig(t *testing.T) {
	for _, tc := range []struct {
		jobs map[string]any
		code fault.Code
	}{
		{map[string]any{"workers": 4, "batchSize": 5}, seal.CodeJobsConfigInvalid},
		{map[string]any{"batchSize": -1}, seal.CodeJobsConfigInvalid},
		{map[string]any{"batchSize": 64}, ""},
	} {
		_, cfg := nodeConfig(t, func(doc map[string]any) { doc["jobs"] = tc.jobs })
		srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if fault.CodeOf(err) != tc.code || (tc.code == "" && err != nil) {
			t.Errorf("jobs %v: %v, want %q", tc.jobs, err, tc.code)
		}
		if err == nil {
			srv.Close()
		}
	}
}
