package server_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pades"
)

// zipFile is one entry of a ZIP body a test builds: data deflated, or with
// declared set, written raw with that expanded size declared instead.
type zipFile struct {
	name     string
	data     []byte
	declared uint64
}

// zipBytes builds an archive of files in order.
func zipBytes(t testing.TB, files ...zipFile) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		if f.declared == 0 {
			w, err := zw.Create(f.name)
			if err == nil {
				_, err = w.Write(f.data)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		var packed bytes.Buffer
		fw, _ := flate.NewWriter(&packed, flate.BestCompression)
		fw.Write(f.data)
		fw.Close()
		w, err := zw.CreateRaw(&zip.FileHeader{Name: f.name, Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(f.data),
			CompressedSize64: uint64(packed.Len()), UncompressedSize64: f.declared})
		if err == nil {
			_, err = w.Write(packed.Bytes())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zerosZip is an archive of one entry of n zero bytes, deflated: about
// a thousandth of n.
func zerosZip(t testing.TB, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create("zeros.pdf")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		if _, err := w.Write(chunk[:min(left, len(chunk))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// restCall sends one request to the node as basic ("id:secret") or bearer.
func restCall(t testing.TB, method, u, auth, contentType string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if id, secret, ok := strings.Cut(auth, ":"); ok {
		req.SetBasicAuth(id, secret)
	} else if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return roundTrip(t, req)
}

// postJobREST submits a job and returns its status as answered with 202.
func postJobREST(t *testing.T, n *node, auth, query, contentType string, body []byte) seal.JobStatus {
	t.Helper()
	resp, b := restCall(t, "POST", n.URL+"/api/v1/jobs"+query, auth, contentType, body, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/v1/jobs: %s: %s", resp.Status, b)
	}
	var st seal.JobStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/jobs/"+st.ID || st.State != seal.JobQueued {
		t.Fatalf("202 with Location %q for job %q in state %s", loc, st.ID, st.State)
	}
	return st
}

// waitJobREST polls GET /api/v1/jobs/{id} until the job has ended.
func waitJobREST(t *testing.T, n *node, auth, id string) seal.JobStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, b := restCall(t, "GET", n.URL+"/api/v1/jobs/"+id, auth, "", nil, nil)
		var st seal.JobStatus
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
			t.Fatalf("GET job: %s: %s", resp.Status, b)
		}
		if st.State != seal.JobQueued && st.State != seal.JobRunning {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verifySealed checks a sealed output of doc: a PAdES PDF, or a CAdES
// signature over doc.
func verifySealed(t *testing.T, format seal.Format, out, doc []byte, roots *x509.CertPool) {
	t.Helper()
	ctx := context.Background()
	switch format {
	case seal.PAdES:
		rep, err := pades.Verify(ctx, bytes.NewReader(out), int64(len(out)), pades.VerifyOptions{Roots: roots})
		if err != nil || !rep.Valid {
			t.Fatalf("PAdES result not valid: %v %+v", err, rep)
		}
	case seal.CAdES:
		rep, err := cms.Verify(ctx, out, cms.SignedContent{Reader: bytes.NewReader(doc)}, cms.VerifyOptions{Roots: roots})
		if err != nil || !rep.Valid {
			t.Fatalf("CAdES result not valid: %v %+v", err, rep)
		}
	}
}

// TestJobsOverREST: a multipart job of PDFs and a ZIP job of other files
// are accepted with 202, sealed, and their results fetched one by one
// (ETag, evidence headers, 304 on If-None-Match) and as results.zip, with
// entries named after the documents and made unique; every result
// verifies. A user's job is approved with the totp field. DELETE purges a
// job.
func TestJobsOverREST(t *testing.T) {
	n := newNode(t)
	runJobs(t, n.Server)
	erp := n.ERPID + ":" + n.ERPSecret
	roots := x509.NewCertPool()
	roots.AddCert(n.CA.Cert)

	pdfs := [][]byte{pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 1"}}}), pdftest.Bytes(pdftest.Spec{Pad: 3000})}
	ct, body := multipartBytes(t, part{name: "format", value: "pades"}, part{name: "reason", value: "batch"},
		part{name: "document", file: "invoice-1.pdf", value: string(pdfs[0])}, part{name: "document", file: "invoice-2.pdf", value: string(pdfs[1])})
	texts := textDocs(3)
	archive := zipBytes(t, zipFile{name: "orders/", data: nil}, zipFile{name: "orders/order.txt", data: texts[0]},
		zipFile{name: "archive/order.txt", data: texts[1]}, zipFile{name: "notes.txt", data: texts[2]})
	for _, tc := range []struct {
		format       seal.Format
		query, ct    string
		body         []byte
		docs         [][]byte
		names, files []string
		// entries are the names in results.zip, made unique.
		entries []string
	}{
		{seal.PAdES, "", ct, body, pdfs, []string{"invoice-1.pdf", "invoice-2.pdf"},
			[]string{"invoice-1-sealed.pdf", "invoice-2-sealed.pdf"}, []string{"invoice-1-sealed.pdf", "invoice-2-sealed.pdf"}},
		{seal.CAdES, "?format=cades&level=B-B", "application/zip", archive, texts, []string{"orders/order.txt", "archive/order.txt", "notes.txt"},
			[]string{"order.txt.p7s", "order.txt.p7s", "notes.txt.p7s"}, []string{"order.txt.p7s", "order.txt (2).p7s", "notes.txt.p7s"}},
	} {
		st := postJobREST(t, n, erp, tc.query, tc.ct, tc.body)
		st = waitJobREST(t, n, erp, st.ID)
		if st.State != seal.JobDone || st.Counts.Done != len(tc.docs) || st.Format != tc.format {
			t.Fatalf("%s job ended %+v", tc.format, st)
		}
		for k, doc := range tc.docs {
			if st.Documents[k].Name != tc.names[k] {
				t.Errorf("document %d named %q, want %q", k+1, st.Documents[k].Name, tc.names[k])
			}
			u := fmt.Sprintf("%s/api/v1/jobs/%s/documents/%d", n.URL, st.ID, k+1)
			resp, out := restCall(t, "GET", u, erp, "", nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET document %d: %s: %s", k+1, resp.Status, out)
			}
			sum := sha256.Sum256(out)
			etag := strconv.Quote(hex.EncodeToString(sum[:]))
			h := resp.Header
			if h.Get("ETag") != etag || h.Get("Sealgate-Sealed-Sha256") != hex.EncodeToString(sum[:]) || h.Get("Sealgate-Event") != st.Documents[k].EventID ||
				h.Get("Sealgate-Evidence-Index") != strconv.FormatUint(*st.Documents[k].EvidenceIndex, 10) || !strings.HasSuffix(h.Get("Content-Disposition"), "filename="+tc.files[k]) {
				t.Fatalf("document %d: headers %v do not name the result (status %+v)", k+1, h, st.Documents[k])
			}
			verifySealed(t, tc.format, out, doc, roots)
			if resp, b := restCall(t, "GET", u, erp, "", nil, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified || len(b) != 0 || resp.Header.Get("ETag") != etag {
				t.Fatalf("If-None-Match: %s, %d bytes", resp.Status, len(b))
			}
			if jobEvents(t, n.Server, st.ID, k+1) != 1 || leavesOf(t, n.Server, doc) != 1 {
				t.Fatalf("document %d: not sealed exactly once", k+1)
			}
		}
		resp, zipped := restCall(t, "GET", n.URL+"/api/v1/jobs/"+st.ID+"/results.zip", erp, "", nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
			t.Fatalf("results.zip: %s %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for k, f := range zr.File {
			names = append(names, f.Name)
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			out, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			verifySealed(t, tc.format, out, tc.docs[k], roots)
		}
		if !slices.Equal(names, tc.entries) {
			t.Fatalf("results.zip entries %q, want %q", names, tc.entries)
		}
		if resp, b := restCall(t, "DELETE", n.URL+"/api/v1/jobs/"+st.ID, erp, "", nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %s: %s", resp.Status, b)
		}
		resp, b := restCall(t, "GET", n.URL+"/api/v1/jobs/"+st.ID, erp, "", nil, nil)
		if p := readProblem(t, resp, b); resp.StatusCode != http.StatusNotFound || p.Code != "job_unknown" {
			t.Fatalf("a deleted job: %s %s", resp.Status, p.Code)
		}
	}

	// A user approves the whole job with one TOTP code in the field totp.
	ctx := context.Background()
	pw := n.addUser(t, "dora")
	if _, err := n.Access.AddRule(ctx, access.Rule{Name: "dora-batch", Subject: access.Subject{Kind: access.SubjectUser, Name: "dora"},
		Seals: []string{"acme"}, Approval: access.ApprovalBatch}, "test"); err != nil {
		t.Fatal(err)
	}
	// Her session began before she enrolled TOTP: it carries no approval.
	login, err := n.Access.AuthenticateUser(ctx, access.UserCredentials{Login: "dora", Password: pw, Source: loopbackAddr})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := n.Access.StartSession(ctx, login)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := n.enrollTOTP(t, "dora")
	docs := zipBytes(t, zipFile{name: "a.txt", data: texts[0]}, zipFile{name: "b.txt", data: texts[1]})
	resp, b := restCall(t, "POST", n.URL+"/api/v1/jobs?format=cades", token, "application/zip", docs, nil)
	if p := readProblem(t, resp, b); p.Code != "seal_not_permitted" {
		t.Fatalf("a batch without approval: %s %s", resp.Status, p.Code)
	}
	ct, body = multipartBytes(t, part{name: "format", value: "cades"}, part{name: "totp", value: code(time.Now().Add(30 * time.Second))},
		part{name: "document", file: "a.txt", value: string(texts[0])}, part{name: "document", file: "b.txt", value: string(texts[1])})
	st := postJobREST(t, n, token, "", ct, body)
	if st = waitJobREST(t, n, token, st.ID); st.State != seal.JobDone || st.Counts.Done != 2 {
		t.Fatalf("approved job: %+v", st)
	}
}

// TestJobRefusalsOverREST: each way a job's request can be wrong gets its
// status and code, before anything is queued, and leaves neither a job nor
// a temporary file behind; another principal's job answers like an
// unknown one.
func TestJobRefusalsOverREST(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["jobs"] = map[string]any{"maxDocuments": 3, "maxTotalSize": 8 << 20}
		doc["seal"].(map[string]any)["maxDocumentSize"] = 1 << 20
	})
	runJobs(t, n.Server)
	erp := n.ERPID + ":" + n.ERPSecret
	intruder := n.IntruderID + ":" + n.IntruderSecret
	texts := textDocs(4)
	one := zipFile{name: "a.txt", data: texts[0]}
	mp := func(parts ...part) (string, []byte) { return multipartBytes(t, parts...) }
	bigCT, big := mp(part{name: "format", value: "cades"}, part{name: "document", file: "big.bin", value: strings.Repeat("x", 1<<20+1)})
	emptyCT, empty := mp(part{name: "format", value: "cades"})
	lateCT, late := mp(part{name: "document", file: "a.txt", value: "a"}, part{name: "format", value: "cades"})
	nameCT, named := mp(part{name: "name", value: "x"}, part{name: "document", file: "a.txt", value: "a"})
	bomb := zerosZip(t, 1<<30)
	if len(bomb) > 2<<20 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	for _, tc := range []struct {
		what, query, ct string
		body            []byte
		status          int
		code            string
	}{
		{"a document over seal.maxDocumentSize", "", bigCT, big, 413, "document_too_large"},
		{"an archive over jobs.maxTotalSize", "?format=cades", "application/zip", zipBytes(t, zipFile{name: "r.bin", data: randomBytes(t, 9<<20)}), 413, "zip_too_large"},
		{"a PDF body", "", "application/pdf", pdftest.Bytes(pdftest.Spec{}), 415, "unsupported_media_type"},
		{"no content type", "", "", []byte("x"), 415, "unsupported_media_type"},
		{"multipart without a document", "", emptyCT, empty, 400, "job_empty"},
		{"a field after a document", "", lateCT, late, 400, "bad_request"},
		{"the option name", "", nameCT, named, 400, "bad_request"},
		{"an empty archive", "?format=cades", "application/zip", zipBytes(t), 400, "job_empty"},
		{"not an archive", "?format=cades", "application/zip", []byte("PK not really a zip"), 400, "zip_malformed"},
		{"1 GiB of zeros", "?format=cades", "application/zip", bomb, 413, "zip_too_large"},
		{"4 MiB of zeros", "?format=cades", "application/zip", zerosZip(t, 4<<20), 400, "zip_ratio_exceeded"},
		{"an entry larger than it declares", "?format=cades", "application/zip", zipBytes(t, zipFile{name: "lie.txt", data: make([]byte, 2<<20), declared: 1000}), 400, "zip_malformed"},
		{"an entry ../../x", "?format=cades", "application/zip", zipBytes(t, one, zipFile{name: "../../x", data: texts[1]}), 400, "zip_entry_invalid"},
		{"an absolute entry", "?format=cades", "application/zip", zipBytes(t, zipFile{name: "/etc/x", data: texts[1]}), 400, "zip_entry_invalid"},
		{"a backslash", "?format=cades", "application/zip", zipBytes(t, zipFile{name: `a\..\x`, data: texts[1]}), 400, "zip_entry_invalid"},
		{"four entries", "?format=cades", "application/zip", zipBytes(t, one, zipFile{name: "b", data: texts[1]}, zipFile{name: "c", data: texts[2]}, zipFile{name: "d", data: texts[3]}), 413, "job_too_large"},
		{"a bad option", "?format=xades", "application/zip", zipBytes(t, one), 400, "format_unsupported"},
		{"an unknown option", "?colour=red", "application/zip", zipBytes(t, one), 400, "bad_request"},
		{"a seal not permitted", "?seal=other", "application/zip", zipBytes(t, one), 403, "seal_not_permitted"},
	} {
		resp, b := restCall(t, "POST", n.URL+"/api/v1/jobs"+tc.query, erp, tc.ct, tc.body, nil)
		if p := readProblem(t, resp, b); resp.StatusCode != tc.status || p.Code != tc.code {
			t.Errorf("%s: %s %s (%s), want %d %s", tc.what, resp.Status, p.Code, p.Detail, tc.status, tc.code)
		}
	}
	// Without a Content-Length the archive is cut off where it passes the limit.
	req, err := http.NewRequest("POST", n.URL+"/api/v1/jobs?format=cades", io.MultiReader(bytes.NewReader(randomBytes(t, 9<<20))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/zip")
	req.SetBasicAuth(n.ERPID, n.ERPSecret)
	resp, b := roundTrip(t, req)
	if p := readProblem(t, resp, b); resp.StatusCode != 413 || p.Code != "zip_too_large" {
		t.Errorf("a chunked archive over jobs.maxTotalSize: %s %s", resp.Status, p.Code)
	}
	resp, b = restCall(t, "POST", n.URL+"/api/v1/jobs", "", "application/zip", zipBytes(t, one), nil)
	if p := readProblem(t, resp, b); resp.StatusCode != 401 || p.Code != "unauthenticated" {
		t.Errorf("anonymous: %s %s", resp.Status, p.Code)
	}
	var jobs int
	if err := n.DB.Read().QueryRow(`SELECT COUNT(*) FROM seal_jobs`).Scan(&jobs); err != nil || jobs != 0 {
		t.Fatalf("%d jobs after refusals (%v)", jobs, err)
	}
	if entries, err := os.ReadDir(filepath.Join(n.Dir, "jobs")); err != nil || len(entries) != 0 {
		t.Fatalf("job directories after refusals: %d (%v)", len(entries), err)
	}
	noSpool(t, n.Dir)

	// Another principal's job looks like an unknown one on every route.
	st := postJobREST(t, n, erp, "?format=cades", "application/zip", zipBytes(t, one))
	waitJobREST(t, n, erp, st.ID)
	for _, id := range []string{st.ID, "0123456789abcdef01234567"} {
		for _, c := range []struct{ method, path string }{
			{"GET", ""}, {"GET", "/documents/1"}, {"GET", "/results.zip"}, {"DELETE", ""},
		} {
			resp, b := restCall(t, c.method, n.URL+"/api/v1/jobs/"+id+c.path, intruder, "", nil, nil)
			if p := readProblem(t, resp, b); resp.StatusCode != 404 || p.Code != "job_unknown" || strings.Contains(p.Detail, "intruder") {
				t.Errorf("%s %s%s as another principal: %s %s", c.method, id, c.path, resp.Status, p.Code)
			}
		}
	}
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/documents/2", 404, "job_document_unknown"},
		{"/documents/0", 400, "bad_request"},
		{"/documents/first", 400, "bad_request"},
	} {
		resp, b := restCall(t, "GET", n.URL+"/api/v1/jobs/"+st.ID+tc.path, erp, "", nil, nil)
		if p := readProblem(t, resp, b); resp.StatusCode != tc.status || p.Code != tc.code {
			t.Errorf("%s: %s %s, want %d %s", tc.path, resp.Status, p.Code, tc.status, tc.code)
		}
	}
}

// randomBytes are n bytes that do not compress.
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
