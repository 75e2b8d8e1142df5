package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pades"
)

var loopbackAddr = netip.MustParseAddr("127.0.0.1")

// runJobs recovers and works the node's jobs as Serve does, until the test ends.
func runJobs(t testing.TB, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Jobs.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Jobs.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// inputs yields documents named doc-1, doc-2, ...
func inputs(docs ...[]byte) iter.Seq2[seal.JobInput, error] {
	return func(yield func(seal.JobInput, error) bool) {
		for i, d := range docs {
			if !yield(seal.JobInput{Name: "doc-" + strconv.Itoa(i+1), Reader: bytes.NewReader(d)}, nil) {
				return
			}
		}
	}
}

// textDocs are n distinct documents of about 1 KB.
func textDocs(n int) [][]byte {
	docs := make([][]byte, n)
	for i := range docs {
		docs[i] = textDoc(i + 1)
	}
	return docs
}

func textDoc(i int) []byte { return bytes.Repeat(fmt.Appendf(nil, "document %05d ", i), 70) }

func (n *node) process(t testing.TB, id, secret string) access.Principal {
	t.Helper()
	p, err := n.Access.AuthenticateClientSecret(context.Background(), id, secret, loopbackAddr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func submit(t testing.TB, srv *server.Server, p access.Principal, format seal.Format, docs ...[]byte) seal.JobStatus {
	t.Helper()
	st, err := srv.Jobs.Submit(context.Background(), seal.JobRequest{
		Request: seal.Request{Principal: p, Format: format}, Documents: inputs(docs...)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitJob polls the job until it has ended.
func waitJob(t testing.TB, srv *server.Server, p access.Principal, id string, within time.Duration) seal.JobStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := srv.Jobs.Status(context.Background(), p, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != seal.JobQueued && st.State != seal.JobRunning {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after %s: %+v", id, st.State, within, st.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wantCode fails unless err has the code and the HTTP status.
func wantCode(t testing.TB, what string, err error, code fault.Code, status int) {
	t.Helper()
	if fault.CodeOf(err) != code || problem.StatusOf(err) != status {
		t.Fatalf("%s: got %v (status %d), want %s (%d)", what, err, problem.StatusOf(err), code, status)
	}
}

// jobEvents counts the seal events recorded for a job's document.
func jobEvents(t testing.TB, srv *server.Server, id string, n int) int {
	t.Helper()
	var c int
	if err := srv.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_events WHERE job_document = ?`, id+"/"+strconv.Itoa(n)).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// leavesOf counts the evidence leaves whose original document is doc.
func leavesOf(t testing.TB, srv *server.Server, doc []byte) int {
	t.Helper()
	sum := evidence.SHA256(sha256.Sum256(doc))
	leaves, err := srv.Evidence.Lookup(context.Background(), sum)
	if err != nil {
		t.Fatal(err)
	}
	c := 0
	for _, l := range leaves {
		if l.Entry.OriginalSHA256 == sum {
			c++
		}
	}
	return c
}

// checkResult fetches document k of the job and verifies it over doc: its
// signature, its one seal event and the evidence leaf it names.
func checkResult(t testing.TB, srv *server.Server, p access.Principal, st seal.JobStatus, k int, doc []byte, roots *x509.CertPool) {
	t.Helper()
	ctx := context.Background()
	res, err := srv.Jobs.Result(ctx, p, st.ID, k)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out bytes.Buffer
	if _, err := res.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(out.Bytes()); !bytes.Equal(sum[:], res.SealedSHA256) || int64(out.Len()) != res.Size {
		t.Fatalf("document %d: result digest or size differs from its record", k)
	}
	if orig := sha256.Sum256(doc); !bytes.Equal(orig[:], res.OriginalSHA256) {
		t.Fatalf("document %d: original digest differs", k)
	}
	switch res.Format {
	case seal.PAdES:
		rep, err := pades.Verify(ctx, bytes.NewReader(out.Bytes()), int64(out.Len()), pades.VerifyOptions{Roots: roots})
		if err != nil || !rep.Valid {
			t.Fatalf("document %d: PAdES not valid: %v %+v", k, err, rep)
		}
	case seal.CAdES:
		rep, err := cms.Verify(ctx, out.Bytes(), cms.SignedContent{Reader: bytes.NewReader(doc)}, cms.VerifyOptions{Roots: roots})
		if err != nil || !rep.Valid {
			t.Fatalf("document %d: CAdES not valid: %v %+v", k, err, rep)
		}
	}
	if c := jobEvents(t, srv, st.ID, k); c != 1 {
		t.Fatalf("document %d: %d seal events", k, c)
	}
	if c := leavesOf(t, srv, doc); c != 1 {
		t.Fatalf("document %d: %d evidence leaves", k, c)
	}
	leaves, err := srv.Evidence.Lookup(ctx, evidence.SHA256(res.SealedSHA256))
	if err != nil || len(leaves) != 1 || leaves[0].Index != res.EvidenceIndex {
		t.Fatalf("document %d: leaf %d not found by the result's digest: %v %v", k, res.EvidenceIndex, leaves, err)
	}
	d := st.Documents[k-1]
	if d.State != seal.JobDone || d.EventID != res.EventID || d.EvidenceIndex == nil || *d.EvidenceIndex != res.EvidenceIndex {
		t.Fatalf("document %d: status %+v does not match its result %s/%d", k, d, res.EventID, res.EvidenceIndex)
	}
}

// A job of PDFs (PAdES) and one of other files (CAdES) end done; every
// result verifies and has exactly one seal event and evidence leaf, and
// Results streams them all in order.
func TestJobSealsEveryDocument(t *testing.T) {
	n := newNode(t)
	runJobs(t, n.Server)
	erp := n.process(t, n.ERPID, n.ERPSecret)
	roots := x509.NewCertPool()
	roots.AddCert(n.CA.Cert)
	pdfs := [][]byte{pdftest.Bytes(pdftest.Spec{}), pdftest.Bytes(pdftest.Spec{Pad: 2000}), pdftest.Bytes(pdftest.Spec{Pad: 4000})}
	files := textDocs(3)
	for _, tc := range []struct {
		format seal.Format
		docs   [][]byte
	}{{seal.PAdES, pdfs}, {seal.CAdES, files}} {
		st := submit(t, n.Server, erp, tc.format, tc.docs...)
		if st.State != seal.JobQueued || st.Counts.Queued != len(tc.docs) || len(st.Documents) != len(tc.docs) {
			t.Fatalf("submitted: %+v", st)
		}
		st = waitJob(t, n.Server, erp, st.ID, time.Minute)
		if st.State != seal.JobDone || st.Counts.Done != len(tc.docs) || st.Finished.IsZero() || !st.Expires.After(st.Finished) {
			t.Fatalf("%s job ended %+v", tc.format, st)
		}
		for k, doc := range tc.docs {
			checkResult(t, n.Server, erp, st, k+1, doc, roots)
		}
		all, err := n.Jobs.Results(context.Background(), erp, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for res, err := range all {
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.WriteTo(io.Discard); err != nil {
				t.Fatal(err)
			}
			got = append(got, res.N)
		}
		if fmt.Sprint(got) != "[1 2 3]" {
			t.Fatalf("Results yielded documents %v", got)
		}
		if entries, _ := os.ReadDir(filepath.Join(n.Dir, "jobs", st.ID, "in")); len(entries) != 0 {
			t.Fatalf("sealed documents' inputs left: %d", len(entries))
		}
	}
	// A document that is not a PDF fails with its code; the others are sealed.
	st := submit(t, n.Server, erp, seal.PAdES, pdfs[0], []byte("not a pdf at all"))
	st = waitJob(t, n.Server, erp, st.ID, time.Minute)
	if st.State != seal.JobDone || st.Counts.Done != 1 || st.Counts.Failed != 1 || st.Documents[1].Code == "" || st.Documents[1].EventID == "" {
		t.Fatalf("job with a bad document: %+v", st)
	}
	_, err := n.Jobs.Result(context.Background(), erp, st.ID, 2)
	wantCode(t, "failed document", err, seal.CodeJobDocumentFailed, http.StatusConflict)
	_, err = n.Jobs.Result(context.Background(), erp, st.ID, 3)
	wantCode(t, "no such document", err, seal.CodeJobDocumentUnknown, http.StatusNotFound)
}

// Another principal's job looks exactly like an unknown one; an
// administrator sees every job. Cancel purges the files of a job whose
// documents have not started, and retention purges finished jobs.
func TestJobIsolationCancelRetention(t *testing.T) {
	n := newNode(t, func(doc map[string]any) { doc["jobs"] = map[string]any{"retention": "1s"} })
	ctx := context.Background()
	erp := n.process(t, n.ERPID, n.ERPSecret)
	intruder := n.process(t, n.IntruderID, n.IntruderSecret)
	_, opsSecret, err := n.Access.AddProcess(ctx, "ops", "administration", []string{access.RoleAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	ops := n.process(t, "ops", opsSecret)

	// No workers yet: the job stays queued.
	st := submit(t, n.Server, erp, seal.CAdES, textDocs(4)...)
	_, errOther := n.Jobs.Status(ctx, intruder, st.ID)
	_, errUnknown := n.Jobs.Status(ctx, intruder, "0123456789abcdef01234567")
	wantCode(t, "another's job", errOther, seal.CodeJobUnknown, http.StatusNotFound)
	wantCode(t, "unknown job", errUnknown, seal.CodeJobUnknown, http.StatusNotFound)
	if strings.ReplaceAll(errOther.Error(), st.ID, "ID") != strings.ReplaceAll(errUnknown.Error(), "0123456789abcdef01234567", "ID") {
		t.Fatalf("another's job %q and an unknown one %q look different", errOther, errUnknown)
	}
	_, err = n.Jobs.Result(ctx, intruder, st.ID, 1)
	wantCode(t, "another's result", err, seal.CodeJobUnknown, http.StatusNotFound)
	wantCode(t, "another's cancel", n.Jobs.Cancel(ctx, intruder, st.ID), seal.CodeJobUnknown, http.StatusNotFound)
	if got, err := n.Jobs.Status(ctx, ops, st.ID); err != nil || got.Counts.Queued != 4 {
		t.Fatalf("admin's view: %+v %v", got, err)
	}
	_, err = n.Jobs.Result(ctx, erp, st.ID, 1)
	wantCode(t, "queued document", err, seal.CodeJobPending, http.StatusConflict)

	if err := n.Jobs.Cancel(ctx, erp, st.ID); err != nil {
		t.Fatal(err)
	}
	got, err := n.Jobs.Status(ctx, erp, st.ID)
	if err != nil || got.State != seal.JobCancelled || got.Counts.Cancelled != 4 {
		t.Fatalf("cancelled job: %+v %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "jobs", st.ID)); !os.IsNotExist(err) {
		t.Fatalf("cancelled job's files: %v", err)
	}
	_, err = n.Jobs.Result(ctx, erp, st.ID, 1)
	wantCode(t, "cancelled job's result", err, seal.CodeJobCancelled, http.StatusConflict)

	runJobs(t, n.Server)
	done := submit(t, n.Server, erp, seal.CAdES, textDocs(2)...)
	if st := waitJob(t, n.Server, erp, done.ID, time.Minute); st.State != seal.JobDone {
		t.Fatalf("job ended %s", st.State)
	}
	// Within the retention of 1 s both jobs are purged: rows and files.
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range []string{st.ID, done.ID} {
		for {
			_, err := n.Jobs.Status(ctx, erp, id)
			if fault.CodeOf(err) == seal.CodeJobUnknown {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s not purged: %v", id, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, "jobs", id)); !os.IsNotExist(err) {
			t.Fatalf("purged job's files: %v", err)
		}
	}
	var rows int
	if err := n.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_job_documents`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d job document rows left (%v)", rows, err)
	}
}

// Jobs beyond a limit are refused with their code before anything is
// queued, and leave neither rows nor files; a full queue answers 429 with
// Retry-After.
func TestJobLimits(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["jobs"] = map[string]any{"maxDocuments": 3, "maxTotalSize": 5000, "maxQueued": 4}
		doc["seal"].(map[string]any)["maxDocumentSize"] = 2000
	})
	ctx := context.Background()
	erp := n.process(t, n.ERPID, n.ERPSecret)
	try := func(docs ...[]byte) error {
		_, err := n.Jobs.Submit(ctx, seal.JobRequest{Request: seal.Request{Principal: erp, Format: seal.CAdES}, Documents: inputs(docs...)})
		return err
	}
	small := bytes.Repeat([]byte("x"), 1900)
	for _, tc := range []struct {
		what   string
		docs   [][]byte
		code   fault.Code
		status int
	}{
		{"four documents", [][]byte{small, small, small, small}, seal.CodeJobTooLarge, http.StatusRequestEntityTooLarge},
		{"a large document", [][]byte{small, bytes.Repeat([]byte("y"), 2001)}, seal.CodeDocumentTooLarge, http.StatusRequestEntityTooLarge},
		{"too many bytes", [][]byte{small, small, small}, seal.CodeJobTooLarge, http.StatusRequestEntityTooLarge},
		{"no documents", nil, seal.CodeJobEmpty, http.StatusBadRequest},
		{"an empty document", [][]byte{small, {}}, seal.CodeDocumentEmpty, http.StatusBadRequest},
	} {
		wantCode(t, tc.what, try(tc.docs...), tc.code, tc.status)
	}
	_, err := n.Jobs.Submit(ctx, seal.JobRequest{Request: seal.Request{Principal: access.Principal{}}, Documents: inputs(small)})
	wantCode(t, "anonymous", err, access.CodeUnauthenticated, http.StatusUnauthorized)
	wantCode(t, "bad option", func() error {
		_, err := n.Jobs.Submit(ctx, seal.JobRequest{Request: seal.Request{Principal: erp, Format: "xades"}, Documents: inputs(small)})
		return err
	}(), seal.CodeFormatUnsupported, http.StatusBadRequest)

	// No workers: three documents wait, two more do not fit the queue of four.
	small = small[:1600]
	if err := try(small, small, small); err != nil {
		t.Fatal(err)
	}
	err = try(small, small)
	wantCode(t, "full queue", err, seal.CodeQueueFull, http.StatusTooManyRequests)
	if fault.RetryAfterOf(err) <= 0 {
		t.Fatalf("queue_full without Retry-After: %v", err)
	}
	if err := try(small); err != nil {
		t.Fatalf("one more document fits: %v", err)
	}
	var jobs, docs int
	if err := n.DB.Read().QueryRow(`SELECT (SELECT COUNT(*) FROM seal_jobs), (SELECT COUNT(*) FROM seal_job_documents)`).Scan(&jobs, &docs); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(n.Dir, "jobs"))
	if err != nil || jobs != 2 || docs != 4 || len(entries) != 2 {
		t.Fatalf("after refusals: %d jobs, %d documents, %d job directories (%v)", jobs, docs, len(entries), err)
	}
}

// A rule with approval: batch is satisfied by one TOTP code for a whole
// job; approval: document refuses jobs of several documents with its own
// code; a daily quota counts a job's documents.
func TestJobApprovalAndQuota(t *testing.T) {
	n := newNode(t)
	runJobs(t, n.Server)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pw := n.addUser(t, "dora")
	_, err := n.Access.AddRule(ctx, access.Rule{Name: "dora-batch", Subject: access.Subject{Kind: access.SubjectUser, Name: "dora"},
		Seals: []string{"acme"}, Approval: access.ApprovalBatch}, "test")
	must(err)
	// Dora's session began before she enrolled TOTP: it carries no approval.
	login, err := n.Access.AuthenticateUser(ctx, access.UserCredentials{Login: "dora", Password: pw, Source: loopbackAddr})
	must(err)
	token, _, err := n.Access.StartSession(ctx, login)
	must(err)
	code, _ := n.enrollTOTP(t, "dora")
	dora, err := n.Access.AuthenticateSession(ctx, token, loopbackAddr)
	must(err)
	job := func(p access.Principal, totp string, docs int) (seal.JobStatus, error) {
		return n.Jobs.Submit(ctx, seal.JobRequest{Request: seal.Request{Principal: p, Format: seal.CAdES}, TOTP: totp, Documents: inputs(textDocs(docs)...)})
	}
	_, err = job(dora, "", 3)
	wantCode(t, "batch without approval", err, access.CodeSealNotPermitted, http.StatusForbidden)
	st, err := job(dora, code(time.Now().Add(30*time.Second)), 3)
	must(err)
	if st = waitJob(t, n.Server, dora, st.ID, time.Minute); st.State != seal.JobDone || st.Counts.Done != 3 {
		t.Fatalf("approved job: %+v", st)
	}

	n.addUser(t, "erin")
	_, err = n.Access.AddRule(ctx, access.Rule{Name: "erin-each", Subject: access.Subject{Kind: access.SubjectUser, Name: "erin"},
		Seals: []string{"acme"}, Approval: access.ApprovalDocument}, "test")
	must(err)
	erin, err := n.Access.AuthenticateUser(ctx, access.UserCredentials{Login: "erin", Password: "pw-of-erin-is-long-enough", Source: loopbackAddr})
	must(err)
	_, err = job(erin, "", 2)
	wantCode(t, "per-document approval", err, access.CodeApprovalPerDocument, http.StatusForbidden)

	_, quotaSecret, err := n.Access.AddProcess(ctx, "quota", "five a day", nil, "test")
	must(err)
	_, err = n.Access.AddRule(ctx, access.Rule{Name: "quota-5", Subject: access.Subject{Kind: access.SubjectProcess, Name: "quota"},
		Seals: []string{"acme"}, DailyQuota: 5}, "test")
	must(err)
	quota := n.process(t, "quota", quotaSecret)
	_, err = job(quota, "", 3)
	must(err)
	_, err = job(quota, "", 3)
	wantCode(t, "quota of documents", err, access.CodeSealNotPermitted, http.StatusForbidden)
	_, err = job(quota, "", 2)
	must(err)
}

// crashConfigEnv makes TestJobCrashHelper the child process of
// TestJobSurvivesSIGKILL: it opens the node configured there, with the
// client secret of crashSecretEnv.
const (
	crashConfigEnv = "SEALGATE_JOB_CRASH_CONFIG"
	crashSecretEnv = "SEALGATE_JOB_CRASH_SECRET"
	crashDocuments = 1000
)

// TestJobCrashHelper is not a test on its own: run as a child process, it
// opens a node, submits a job of crashDocuments documents, works it and
// prints "job <id>", then "done <n>" as documents end, until it is killed.
func TestJobCrashHelper(t *testing.T) {
	path := os.Getenv(crashConfigEnv)
	if path == "" {
		t.Skip("child process of TestJobSurvivesSIGKILL")
	}
	ctx := context.Background()
	srv, erp := openChild(t, path, os.Getenv(crashSecretEnv))
	if err := srv.Jobs.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	go srv.Jobs.Run(ctx)
	st := submit(t, srv, erp, seal.CAdES, textDocs(crashDocuments)...)
	fmt.Printf("job %s\n", st.ID)
	for {
		st, err := srv.Jobs.Status(ctx, erp, st.ID)
		if err != nil {
			fmt.Printf("error %v\n", err)
			return
		}
		fmt.Printf("done %d\n", st.Counts.Done)
		time.Sleep(10 * time.Millisecond)
	}
}

// openChild opens, in a crash test's child process, the node configured at
// path, and authenticates its process erp.
func openChild(t testing.TB, path, erpSecret string) (*server.Server, access.Principal) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	erp, err := srv.Access.AuthenticateClientSecret(ctx, "erp", erpSecret, loopbackAddr)
	if err != nil {
		t.Fatal(err)
	}
	return srv, erp
}

// startChild runs the test helper of this binary as a child process with
// env added, and returns it with the lines it prints.
func startChild(t testing.TB, helper string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout)
}

// A node killed with SIGKILL while it works a job of 1,000 documents
// resumes the job when it starts again, and every document ends sealed
// exactly once: one seal event and one evidence leaf each, its result
// present and verifying, nothing left queued or running.
func TestJobSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	n, cfg := nodeConfig(t)
	n.open(t, cfg)
	n.Server.Close() // the child has the database to itself
	cmd, lines := startChild(t, "TestJobCrashHelper", crashConfigEnv+"="+cfg.Path, crashSecretEnv+"="+n.ERPSecret)
	id, doneBefore, killed := "", 0, false
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "job":
			id = f[1]
		case len(f) == 2 && f[0] == "done":
			doneBefore, _ = strconv.Atoi(f[1])
		case len(f) > 0 && f[0] == "error":
			t.Fatalf("child: %s", lines.Text())
		}
		if !killed && doneBefore >= crashDocuments/4 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed || id == "" {
		t.Fatalf("child ended by itself (job %q, %d done)", id, doneBefore)
	}

	ctx := context.Background()
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var running, keptWithLeaf int
	rows, err := srv.DB.Read().Query(`SELECT n FROM seal_job_documents WHERE job_id = ? AND state = 'running'`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k int
		rows.Scan(&k)
		running++
		if b, err := os.ReadFile(filepath.Join(n.Dir, "jobs", id, "out", strconv.Itoa(k))); err == nil {
			if l, _ := srv.Evidence.Lookup(ctx, evidence.SHA256(sha256.Sum256(b))); len(l) > 0 {
				keptWithLeaf++
			}
		}
	}
	rows.Close()
	t.Logf("killed after about %d of %d documents; %d were being sealed, %d of them with a durable leaf but no event", doneBefore, crashDocuments, running, keptWithLeaf)

	erp, err := srv.Access.AuthenticateClientSecret(ctx, "erp", n.ERPSecret, loopbackAddr)
	if err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	runJobs(t, srv)
	st := waitJob(t, srv, erp, id, 5*time.Minute)
	t.Logf("the restarted node sealed the other %d documents in %s", crashDocuments-doneBefore, time.Since(resumed).Round(time.Millisecond))
	if st.State != seal.JobDone || st.Counts.Done != crashDocuments || st.Counts.Queued+st.Counts.Running+st.Counts.Failed+st.Counts.Cancelled != 0 {
		t.Fatalf("after the restart: %s %+v", st.State, st.Counts)
	}
	roots := x509.NewCertPool()
	roots.AddCert(n.CA.Cert)
	for k := 1; k <= crashDocuments; k++ {
		checkResult(t, srv, erp, st, k, textDoc(k), roots)
	}
	var events, sealed int
	if err := srv.DB.Read().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT job_document) FROM seal_events WHERE job_document LIKE ?`, id+"/%").Scan(&events, &sealed); err != nil {
		t.Fatal(err)
	}
	if events != crashDocuments || sealed != crashDocuments {
		t.Fatalf("%d seal events for %d documents", events, sealed)
	}
	if entries, _ := os.ReadDir(filepath.Join(n.Dir, "jobs", id, "in")); len(entries) != 0 {
		t.Fatalf("%d inputs left after every document was sealed", len(entries))
	}
}
