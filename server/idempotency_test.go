package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/tsa"
	"github.com/sealgate/sealgate/tsa/tsatest"
)

// sealWithKey POSTs doc to /api/v1/seals?query with an Idempotency-Key
// header (none when key is empty) as the process id.
func (n *node) sealWithKey(t testing.TB, id, secret, query, key string, doc []byte) (*http.Response, []byte) {
	t.Helper()
	h := http.Header{}
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return n.sendWith(t, http.MethodPost, "/api/v1/seals?"+query, id, secret, "application/pdf", h, bytes.NewReader(doc))
}

// sealEvents counts the node's seal events, all and sealed.
func sealEvents(t testing.TB, srv *server.Server) (all, sealed int) {
	t.Helper()
	if err := srv.DB.Read().QueryRow(`SELECT COUNT(*), COUNT(CASE WHEN outcome = 'sealed' THEN 1 END) FROM seal_events`).Scan(&all, &sealed); err != nil {
		t.Fatal(err)
	}
	return all, sealed
}

// wantProblem fails unless resp is a problem with that status and code.
func wantProblem(t testing.TB, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != status || p.Code != code {
		t.Fatalf("%s: %s %s, want %d %s", what, resp.Status, body, status, code)
	}
}

// replayedHeaders are the headers a replay repeats; Date and the request id
// are the new response's own.
var replayedHeaders = []string{"Content-Type", "Content-Length", "Content-Disposition", "Sealgate-Event", "Sealgate-Seal",
	"Sealgate-Level", "Sealgate-Original-Sha256", "Sealgate-Sealed-Sha256", "Sealgate-Evidence-Index", "Link"}

func sameAnswer(t testing.TB, what string, first *http.Response, firstBody []byte, again *http.Response, againBody []byte) {
	t.Helper()
	if again.StatusCode != first.StatusCode || !bytes.Equal(againBody, firstBody) {
		t.Fatalf("%s: %s with %d bytes, the first answer was %s with %d bytes", what, again.Status, len(againBody), first.Status, len(firstBody))
	}
	for _, h := range replayedHeaders {
		if again.Header.Get(h) != first.Header.Get(h) {
			t.Errorf("%s: %s %q, the first answer had %q", what, h, again.Header.Get(h), first.Header.Get(h))
		}
	}
}

// gatedTSA is a real RFC 3161 responder that, while closed, holds every
// query until it is opened, and tells held on each query it holds.
type gatedTSA struct {
	mu   sync.Mutex
	gate chan struct{} // nil: open
	held chan struct{}
	r    *tsa.Responder
}

func (g *gatedTSA) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.held <- struct{}{}
		<-gate
	}
	g.r.ServeHTTP(w, r)
}

func (g *gatedTSA) close() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedTSA) open() {
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
}

// TestIdempotentSeal: a retry with the same Idempotency-Key and request
// gets the first answer byte for byte and seals nothing; another request
// under the key is refused, a retry while the first is at work is told to
// wait, a failed request frees its key, and keys are the principal's own.
func TestIdempotentSeal(t *testing.T) {
	var gate *gatedTSA
	n, cfg := nodeConfig(t, func(doc map[string]any) {
		ca, err := devpki.NewCA("Example TSA Provider")
		if err != nil {
			t.Fatal(err)
		}
		authority := tsatest.Start(t, ca)
		r, err := tsa.NewResponder(authority.Key, authority.Chain, tsa.ResponderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gate = &gatedTSA{held: make(chan struct{}, 4), r: r}
		hs := httptest.NewServer(gate)
		t.Cleanup(hs.Close)
		doc["tsa"] = map[string]any{"url": hs.URL}
	})
	startNode(t, n, cfg)
	ctx := context.Background()
	_, otherSecret, err := n.Access.AddProcess(ctx, "billing", "another process", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Access.AddRule(ctx, access.Rule{Name: "billing-seals", Subject: access.Subject{Kind: access.SubjectProcess, Name: "billing"}, Seals: []string{"acme"}}, "test"); err != nil {
		t.Fatal(err)
	}
	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0100"}}})
	other := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0101"}}})
	const query = "format=pades&reason=Invoice"

	first, firstBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "invoice-0100", invoice)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first request: %s %s", first.Status, firstBody)
	}
	all, sealed := sealEvents(t, n.Server)
	for _, key := range []string{"invoice-0100", `"invoice-0100"`} {
		again, againBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, query, key, invoice)
		sameAnswer(t, "retry with "+key, first, firstBody, again, againBody)
	}
	if a, s := sealEvents(t, n.Server); a != all || s != sealed {
		t.Fatalf("retries recorded seal events: %d (%d sealed), before %d (%d)", a, s, all, sealed)
	}
	if l := leavesOf(t, n.Server, invoice); l != 1 {
		t.Fatalf("%d evidence leaves for the invoice, want 1", l)
	}

	// Another document, or other options, under the same key.
	resp, body := n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "invoice-0100", other)
	wantProblem(t, "another document", resp, body, http.StatusUnprocessableEntity, "idempotency_key_reused")
	resp, body = n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=pades&reason=Credit+note", "invoice-0100", invoice)
	wantProblem(t, "other options", resp, body, http.StatusUnprocessableEntity, "idempotency_key_reused")
	resp, body = n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=cades", "invoice-0100", invoice)
	wantProblem(t, "another format", resp, body, http.StatusUnprocessableEntity, "idempotency_key_reused")

	// Another principal's identical key is its own.
	mine, mineBody := n.sealWithKey(t, "billing", otherSecret, query, "invoice-0100", invoice)
	if mine.StatusCode != http.StatusOK || mine.Header.Get("Sealgate-Event") == first.Header.Get("Sealgate-Event") {
		t.Fatalf("another principal, same key: %s, event %s (the first's %s)", mine.Status, mine.Header.Get("Sealgate-Event"), first.Header.Get("Sealgate-Event"))
	}
	again, againBody := n.sealWithKey(t, "billing", otherSecret, query, "invoice-0100", invoice)
	sameAnswer(t, "the other principal's retry", mine, mineBody, again, againBody)
	if l := leavesOf(t, n.Server, invoice); l != 2 {
		t.Fatalf("%d evidence leaves for the invoice sealed by two principals, want 2", l)
	}

	// A detached CAdES signature is replayed alike.
	cFirst, cBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=cades&name=invoice.pdf", "cades-1", other)
	cAgain, cAgainBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=cades&name=invoice.pdf", "cades-1", other)
	if cFirst.StatusCode != http.StatusOK {
		t.Fatalf("cades: %s %s", cFirst.Status, cBody)
	}
	sameAnswer(t, "cades retry", cFirst, cBody, cAgain, cAgainBody)

	// A refused request frees its key: nothing was sealed.
	resp, body = n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "retry-after-fix", []byte("not a pdf"))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a broken document: %s %s", resp.Status, body)
	}
	if resp, body = n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "retry-after-fix", invoice); resp.StatusCode != http.StatusOK {
		t.Fatalf("the fixed request under the refused request's key: %s %s", resp.Status, body)
	}

	// Malformed keys name the header.
	for _, key := range []string{`""`, strings.Repeat("k", 256), "clé", "a\tb", `"a\x"`} {
		resp, body := n.sealWithKey(t, n.ERPID, n.ERPSecret, query, key, invoice)
		wantProblem(t, fmt.Sprintf("key %q", key), resp, body, http.StatusBadRequest, "bad_request")
		if !strings.Contains(string(body), "Idempotency-Key") {
			t.Errorf("key %q: the problem does not name the header: %s", key, body)
		}
	}

	// A retry while the first request waits for its timestamp.
	gate.close()
	held := make(chan struct{})
	var slow *http.Response
	var slowBody []byte
	go func() {
		defer close(held)
		slow, slowBody = n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "slow-1", other)
	}()
	select {
	case <-gate.held:
	case <-time.After(time.Minute):
		t.Fatal("the first request never asked the TSA")
	}
	for _, doc := range [][]byte{other, invoice} {
		resp, body := n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "slow-1", doc)
		wantProblem(t, "a retry while the first is at work", resp, body, http.StatusConflict, "idempotency_key_in_progress")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("idempotency_key_in_progress without Retry-After")
		}
	}
	gate.open()
	<-held
	if slow.StatusCode != http.StatusOK {
		t.Fatalf("the held request: %s %s", slow.Status, slowBody)
	}
	again, againBody = n.sealWithKey(t, n.ERPID, n.ERPSecret, query, "slow-1", other)
	sameAnswer(t, "the retry after the held request", slow, slowBody, again, againBody)
}

// TestIdempotencyKeyExpires: after the window (here 2 s) the key is
// forgotten, and the same request seals again; the purge removes the kept
// output.
func TestIdempotencyKeyExpires(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["seal"].(map[string]any)["idempotencyWindow"] = "2s"
	})
	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0200"}}})
	first, firstBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=pades", "k-expires", invoice)
	_, againBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=pades", "k-expires", invoice)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("first: %s %s", first.Status, firstBody)
	}
	time.Sleep(2100 * time.Millisecond)
	later, laterBody := n.sealWithKey(t, n.ERPID, n.ERPSecret, "format=pades", "k-expires", invoice)
	if later.StatusCode != http.StatusOK || later.Header.Get("Sealgate-Event") == first.Header.Get("Sealgate-Event") {
		t.Fatalf("after the window: %s, event %s (the first's %s)", later.Status, later.Header.Get("Sealgate-Event"), first.Header.Get("Sealgate-Event"))
	}
	if !bytes.Equal(againBody, firstBody) {
		t.Fatal("within the window the retry did not get the first answer")
	}
	if bytes.Equal(laterBody, firstBody) {
		t.Fatal("after the window the first answer came back")
	}
	if l := leavesOf(t, n.Server, invoice); l != 2 {
		t.Fatalf("%d evidence leaves, want 2 (sealed again after the window)", l)
	}
	// The purge loop removes what expired: the second seal's answer too, once its window ends.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Seal.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rows int
		if err := n.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_idempotency`).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		kept, _ := os.ReadDir(filepath.Join(n.Dir, "idempotency"))
		if rows == 0 && len(kept) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d keys and %d kept outputs left after their window", rows, len(kept))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestIdempotentJobSubmission: the same key and documents give the first
// job; other documents under the key are refused.
func TestIdempotentJobSubmission(t *testing.T) {
	n := newNode(t)
	erp := n.process(t, n.ERPID, n.ERPSecret)
	ctx := context.Background()
	docs := textDocs(3)
	submitKey := func(key string, docs ...[]byte) (seal.JobStatus, error) {
		return n.Jobs.Submit(ctx, seal.JobRequest{Request: seal.Request{Principal: erp, Format: seal.CAdES},
			IdempotencyKey: key, Documents: inputs(docs...)})
	}
	first, err := submitKey("batch-7", docs...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := submitKey("batch-7", docs...)
	if err != nil || again.ID != first.ID {
		t.Fatalf("retry: job %q, %v; the first was %q", again.ID, err, first.ID)
	}
	var jobs int
	if err := n.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_jobs`).Scan(&jobs); err != nil || jobs != 1 {
		t.Fatalf("%d jobs after a retry (%v), want 1", jobs, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(n.Dir, "jobs")); len(entries) != 1 {
		t.Fatalf("%d job directories after a retry, want 1", len(entries))
	}
	_, err = submitKey("batch-7", docs[:2]...)
	wantCode(t, "fewer documents under the key", err, seal.CodeIdempotencyKeyReused, http.StatusUnprocessableEntity)
	_, err = submitKey("batch-7", textDocs(4)[1:]...)
	wantCode(t, "other documents under the key", err, seal.CodeIdempotencyKeyReused, http.StatusUnprocessableEntity)
	_, err = submitKey(strings.Repeat("x", 300), docs...)
	wantCode(t, "a key too long", err, seal.CodeBadRequest, http.StatusBadRequest)
	runJobs(t, n.Server)
	if st := waitJob(t, n.Server, erp, first.ID, time.Minute); st.Counts.Done != 3 {
		t.Fatalf("the job: %s %+v", st.State, st.Counts)
	}
	for k := 1; k <= 3; k++ {
		if e := jobEvents(t, n.Server, first.ID, k); e != 1 {
			t.Fatalf("document %d: %d seal events", k, e)
		}
	}
}

const (
	idemCrashConfigEnv = "SEALGATE_IDEM_CRASH_CONFIG"
	idemCrashSecretEnv = "SEALGATE_IDEM_CRASH_SECRET"
	idemCrashDocuments = 200
	idemCrashWorkers   = 4
)

// TestIdempotentSealCrashHelper is not a test on its own: run as a child
// process, it seals textDoc(k) for k = 1, 2, ... with the idempotency key
// doc-k, a few at a time, and prints "sealed k <sha256 of the output>" for
// each answer, until it is killed.
func TestIdempotentSealCrashHelper(t *testing.T) {
	path := os.Getenv(idemCrashConfigEnv)
	if path == "" {
		t.Skip("child process of TestIdempotentSealSurvivesSIGKILL")
	}
	ctx := context.Background()
	srv, erp := openChild(t, path, os.Getenv(idemCrashSecretEnv))
	next := make(chan int)
	var out sync.Mutex
	var wg sync.WaitGroup
	for range idemCrashWorkers {
		wg.Go(func() {
			for k := range next {
				sum, err := sealKeyed(ctx, srv, erp, k)
				out.Lock()
				if err != nil {
					fmt.Printf("error %d %v\n", k, err)
				} else {
					fmt.Printf("sealed %d %s\n", k, sum)
				}
				out.Unlock()
			}
		})
	}
	for k := 1; k <= idemCrashDocuments; k++ {
		next <- k
	}
	close(next)
	wg.Wait()
}

// sealKeyed seals textDoc(k) in CAdES under the key doc-k and returns the
// output's SHA-256.
func sealKeyed(ctx context.Context, srv *server.Server, p access.Principal, k int) (string, error) {
	doc := textDoc(k)
	res, err := srv.Seal.Seal(ctx, seal.Request{Principal: p, Format: seal.CAdES, Document: bytes.NewReader(doc),
		Size: int64(len(doc)), Name: "doc-" + strconv.Itoa(k), IdempotencyKey: "doc-" + strconv.Itoa(k)})
	if err != nil {
		return "", err
	}
	defer res.Close()
	h := sha256.New()
	if _, err := res.WriteTo(h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// A node killed with SIGKILL while it answers idempotent seal requests:
// after the restart's recovery, every request retried with its key is
// answered, each document is sealed exactly once (one sealed event, one
// evidence leaf), and the requests answered before the kill get the same
// output again.
func TestIdempotentSealSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	n, cfg := nodeConfig(t)
	n.open(t, cfg)
	n.Server.Close() // the child has the database to itself
	cmd, lines := startChild(t, "TestIdempotentSealCrashHelper", idemCrashConfigEnv+"="+cfg.Path, idemCrashSecretEnv+"="+n.ERPSecret)
	answered, killed := map[int]string{}, false
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 3 && f[0] == "sealed":
			k, _ := strconv.Atoi(f[1])
			answered[k] = f[2]
		case len(f) > 0 && f[0] == "error":
			t.Fatalf("child: %s", lines.Text())
		}
		if !killed && len(answered) >= idemCrashDocuments/4 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child ended by itself (%d answered)", len(answered))
	}

	ctx := context.Background()
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var running, doneBefore int
	if err := srv.DB.Read().QueryRow(`SELECT COUNT(CASE WHEN state = 'running' THEN 1 END), COUNT(CASE WHEN state = 'done' THEN 1 END) FROM seal_idempotency`).Scan(&running, &doneBefore); err != nil {
		t.Fatal(err)
	}
	if err := srv.Seal.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	var recovered, left int
	if err := srv.DB.Read().QueryRow(`SELECT COUNT(*), COUNT(CASE WHEN state = 'running' THEN 1 END) FROM seal_idempotency`).Scan(&recovered, &left); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d of %d answers; %d requests were at work: %d sealed (recovered from their evidence leaf), %d released", len(answered), idemCrashDocuments, running, recovered-doneBefore, running-(recovered-doneBefore))
	if left != 0 {
		t.Fatalf("%d keys still at work after recovery", left)
	}
	erp, err := srv.Access.AuthenticateClientSecret(ctx, "erp", n.ERPSecret, loopbackAddr)
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k <= idemCrashDocuments; k++ {
		sum, err := sealKeyed(ctx, srv, erp, k)
		if err != nil {
			t.Fatalf("document %d retried: %v", k, err)
		}
		if before, ok := answered[k]; ok && before != sum {
			t.Fatalf("document %d: the retry answers %s, the first answer was %s", k, sum, before)
		}
		var events int
		if err := srv.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_events WHERE outcome = 'sealed' AND document_name = ?`, "doc-"+strconv.Itoa(k)).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if l := leavesOf(t, srv, textDoc(k)); events != 1 || l != 1 {
			t.Fatalf("document %d: %d sealed events and %d evidence leaves, want 1 each", k, events, l)
		}
	}
}
