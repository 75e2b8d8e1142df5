package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/pdftest"
)

// contract holds a running node to the OpenAPI document it serves: every
// request a test sends through it is validated against the document before
// it goes out, and every answer after it comes back.
type contract struct {
	t      *testing.T
	base   string
	client *http.Client
	doc    *openapi3.T
	router routers.Router
	// answered records the statuses seen per operation ("GET /path").
	answered map[string]map[int]bool
}

func init() {
	// The document's binary bodies are read as strings, as kin-openapi reads
	// application/octet-stream.
	for _, mt := range []string{"application/pdf", "application/pkcs7-signature", "application/vnd.sealgate.ers", "application/jsonl", "application/zip"} {
		openapi3filter.RegisterBodyDecoder(mt, openapi3filter.FileBodyDecoder)
	}
}

// newContract fetches the node's document from /api/v1/openapi.json and
// loads it as OpenAPI 3.1, served from the node's own address; requests
// go out through client.
func newContract(t *testing.T, base string, client *http.Client) *contract {
	t.Helper()
	resp, err := client.Get(base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "public") {
		t.Fatalf("GET /api/v1/openapi.json: %s, Content-Type %q, Cache-Control %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, base: base, client: client, doc: doc, router: router, answered: map[string]map[int]bool{}}
}

// apiCall is one request of the contract test.
type apiCall struct {
	method, path string
	// basic is "id:secret"; bearer a token.
	basic, bearer string
	contentType   string
	// cert says the contract's client presents a TLS client certificate.
	cert   bool
	body   []byte
	header map[string]string
	// status is the answer wanted; code the problem code, when one.
	status int
	code   string
	// outside marks a request the document forbids (a value out of its
	// range, a missing part, no credentials): its validation must fail,
	// and the node's refusal must still be as documented.
	outside bool
}

// authenticate tells kin-openapi whether a request carries the credentials
// of a security scheme; cert says whether it comes with a client certificate.
func authenticate(cert bool) openapi3filter.AuthenticationFunc {
	return func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
		authz := in.RequestValidationInput.Request.Header.Get("Authorization")
		s := in.SecurityScheme
		switch {
		case s.Type == "http" && s.Scheme == "basic" && strings.HasPrefix(authz, "Basic "),
			s.Type == "http" && s.Scheme == "bearer" && strings.HasPrefix(authz, "Bearer "),
			s.Type == "mutualTLS" && cert:
			return nil
		}
		return in.NewError(nil)
	}
}

// do sends c, checks it and its answer against the document and c's
// expectations, and returns the answer with its body read.
func (k *contract) do(c apiCall) (*http.Response, []byte) {
	t := k.t
	t.Helper()
	what := c.method + " " + c.path
	req, err := http.NewRequest(c.method, k.base+c.path, bytes.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	if id, secret, ok := strings.Cut(c.basic, ":"); ok {
		req.SetBasicAuth(id, secret)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for h, v := range c.header {
		req.Header.Set(h, v)
	}
	route, params, err := k.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s: not in the OpenAPI document: %v", what, err)
		return k.send(req, c.body)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: authenticate(c.cert), IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case !c.outside && reqErr != nil:
		t.Errorf("%s: the request does not conform to the document: %v", what, reqErr)
	case c.outside && reqErr == nil:
		t.Errorf("%s: the document allows a request meant to be outside it", what)
	}
	resp, body := k.send(req, c.body)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s: answer %s does not conform to the document: %v\n%.300s", what, resp.Status, err, body)
	}
	if resp.StatusCode != c.status {
		t.Errorf("%s: status %s, want %d: %.300s", what, resp.Status, c.status, body)
	}
	if c.code != "" {
		var p struct{ Code string }
		if json.Unmarshal(body, &p); p.Code != c.code {
			t.Errorf("%s: code %q, want %q: %.300s", what, p.Code, c.code, body)
		}
	}
	op := route.Method + " " + route.Path
	if k.answered[op] == nil {
		k.answered[op] = map[int]bool{}
	}
	k.answered[op][resp.StatusCode] = true
	return resp, body
}

// send sends req with body (again: validation read it) and reads the answer.
func (k *contract) send(req *http.Request, body []byte) (*http.Response, []byte) {
	k.t.Helper()
	req.Body = http.NoBody
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := k.client.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		k.t.Fatal(err)
	}
	return resp, b
}

// json is do for a JSON answer, decoded into v.
func (k *contract) json(c apiCall, v any) {
	k.t.Helper()
	_, body := k.do(c)
	if err := json.Unmarshal(body, v); err != nil {
		k.t.Fatalf("%s %s: %v: %.200s", c.method, c.path, err, body)
	}
}

// documented are the document's operations as "METHOD /path".
func (k *contract) documented() []string {
	var ops []string
	for path, item := range k.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// TestOpenAPIContract sends real requests for every route of a node with
// a directory — successes and the main refusals — and validates each
// request and answer against the OpenAPI document the node serves. Every
// documented operation must have answered with success, and every route
// the node's engine serves under /api/v1, /healthz, /readyz and /metrics
// must be documented, so the document and the node cannot drift apart.
func TestOpenAPIContract(t *testing.T) {
	ctx := context.Background()
	_, withLDAP := orgDirectory(t)
	n := newNode(t, withLDAP, func(doc map[string]any) {
		doc["seal"].(map[string]any)["maxDocumentSize"] = 1 << 20
		// Ten verifications from the test's address, then 429.
		doc["verify"] = map[string]any{"maxDocumentSize": 1 << 20, "perSource": map[string]any{"rate": 0.001, "burst": 10}}
	})
	k := newContract(t, n.URL, http.DefaultClient)
	erp := n.ERPID + ":" + n.ERPSecret
	intruder := n.IntruderID + ":" + n.IntruderSecret
	admin := n.adminSession(t)
	pdf := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 1"}}})
	hexOf := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	// Operations: the node answers, and is ready once the directory synced.
	k.do(apiCall{method: "GET", path: "/healthz", status: 200})
	resp, _ := k.do(apiCall{method: "GET", path: "/api/v1/openapi.json", status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/openapi.json", header: map[string]string{"If-None-Match": resp.Header.Get("ETag")}, status: 304})
	k.do(apiCall{method: "GET", path: "/api/v1/admin/directory", bearer: admin, status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/admin/directory/sync?dryRun=true", bearer: admin, status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/admin/directory/sync?full=yes", bearer: admin, status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/admin/directory/sync", bearer: admin, status: 200})
	k.do(apiCall{method: "GET", path: "/readyz", status: 200})
	k.do(apiCall{method: "GET", path: "/readyz", bearer: admin, status: 200})
	k.do(apiCall{method: "GET", path: "/readyz", basic: erp, status: 403, code: "operation_not_permitted"})
	k.do(apiCall{method: "GET", path: "/metrics", bearer: admin, status: 200})
	k.do(apiCall{method: "GET", path: "/metrics", status: 401, code: "unauthenticated", outside: true})

	// Sealing: raw PAdES, multipart with a stamp, CAdES, B-LT without
	// revocation data, and the refusals.
	resp, sealed := k.do(apiCall{method: "POST", path: "/api/v1/seals?format=pades&level=B-T&reason=contract", basic: erp, contentType: "application/pdf", body: pdf, status: 200})
	index := resp.Header.Get("Sealgate-Evidence-Index")
	ct, mp := multipartBytes(t, part{name: "format", value: "pades"}, part{name: "page", value: "1"}, part{name: "x", value: "50"}, part{name: "y", value: "50"},
		part{name: "width", value: "200"}, part{name: "height", value: "60"}, part{name: "location", value: "Vienna"}, part{name: "document", file: "invoice.pdf", value: string(pdf)})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: erp, contentType: ct, body: mp, status: 200})
	doc := []byte("an order, not a PDF\n")
	_, p7s := k.do(apiCall{method: "POST", path: "/api/v1/seals?format=cades&level=B-B&name=order.txt", basic: erp, contentType: "application/octet-stream", body: doc, status: 200})
	if resp, _ := k.do(apiCall{method: "POST", path: "/api/v1/seals?level=B-LT", basic: erp, contentType: "application/pdf", body: pdf, status: 200}); resp.Header.Get("Sealgate-Revocation-Unavailable") == "" {
		t.Error("B-LT without revocation data: no Sealgate-Revocation-Unavailable")
	}
	k.do(apiCall{method: "POST", path: "/api/v1/seals?format=xades", basic: erp, contentType: "application/pdf", body: pdf, status: 400, code: "format_unsupported", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/seals?page=0", basic: erp, contentType: "application/pdf", body: pdf, status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/seals?page=1&x=20000&y=0&width=100&height=50", basic: erp, contentType: "application/pdf", body: pdf, status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/seals?colour=red", basic: erp, contentType: "application/pdf", body: pdf, status: 400, code: "bad_request"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: erp, contentType: "application/pdf", body: []byte("%PDF-1.7 not really"), status: 400, code: "pdf_malformed"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: erp, contentType: "application/pdf", status: 400, code: "document_empty", outside: true})
	ct, mp = multipartBytes(t, part{name: "format", value: "pades"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: erp, contentType: ct, body: mp, status: 400, code: "document_empty", outside: true})
	ct, mp = multipartBytes(t, part{name: "document", file: "a.pdf", value: string(pdf)}, part{name: "reason", value: "late"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: erp, contentType: ct, body: mp, status: 400, code: "bad_request"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals?format=cades", basic: erp, contentType: "application/octet-stream", body: bytes.Repeat([]byte("x"), 2<<20), status: 413, code: "document_too_large"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals?seal=other", basic: erp, contentType: "application/pdf", body: pdf, status: 403, code: "seal_not_permitted"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: intruder, contentType: "application/pdf", body: pdf, status: 403, code: "seal_not_permitted"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", basic: n.ERPID + ":sgp_wrong", contentType: "application/pdf", body: pdf, status: 401, code: "unauthenticated"})
	k.do(apiCall{method: "POST", path: "/api/v1/seals", contentType: "application/pdf", body: pdf, status: 401, code: "unauthenticated", outside: true})
	var seals struct{ Seals []string }
	if k.json(apiCall{method: "GET", path: "/api/v1/seals", basic: erp, status: 200}, &seals); !slices.Equal(seals.Seals, []string{"acme"}) {
		t.Errorf("GET /api/v1/seals: %v, want [acme]", seals.Seals)
	}
	k.do(apiCall{method: "GET", path: "/api/v1/seals", status: 401, code: "unauthenticated", outside: true})

	// Jobs: multipart and ZIP submissions, status, one result (and 304),
	// all results, cancellation, and the refusals.
	runJobs(t, n.Server)
	ct, mp = multipartBytes(t, part{name: "format", value: "cades"}, part{name: "level", value: "B-B"},
		part{name: "document", file: "a.txt", value: "order 1"}, part{name: "document", file: "b.txt", value: "order 2"})
	var job struct{ ID string }
	k.json(apiCall{method: "POST", path: "/api/v1/jobs", basic: erp, contentType: ct, body: mp, status: 202}, &job)
	ct, mp = multipartBytes(t, part{name: "totp", value: "123456"}, part{name: "document", file: "a.pdf", value: string(pdf)})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs", basic: erp, contentType: ct, body: mp, status: 403, code: "operation_not_permitted"})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs?format=pades&reason=batch", basic: erp, contentType: "application/zip",
		body: zipBytes(t, zipFile{name: "in/a.pdf", data: pdf}), status: 202})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs?format=cades", basic: erp, contentType: "application/zip",
		body: zipBytes(t, zipFile{name: "../../x", data: doc}), status: 400, code: "zip_entry_invalid"})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs?format=cades", basic: erp, contentType: "application/zip", body: zerosZip(t, 4<<20), status: 400, code: "zip_ratio_exceeded"})
	ct, mp = multipartBytes(t, part{name: "format", value: "cades"}, part{name: "document", file: "big.bin", value: strings.Repeat("x", 1<<20+1)})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs", basic: erp, contentType: ct, body: mp, status: 413, code: "document_too_large"})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs", basic: erp, contentType: "application/pdf", body: pdf, status: 415, code: "unsupported_media_type", outside: true})
	ct, mp = multipartBytes(t, part{name: "format", value: "cades"})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs", basic: erp, contentType: ct, body: mp, status: 400, code: "job_empty", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/jobs", contentType: "application/zip", body: zipBytes(t, zipFile{name: "a.txt", data: doc}), status: 401, code: "unauthenticated", outside: true})
	erpP := n.process(t, n.ERPID, n.ERPSecret)
	waitJob(t, n.Server, erpP, job.ID, time.Minute)
	jobPath := "/api/v1/jobs/" + job.ID
	k.do(apiCall{method: "GET", path: jobPath, basic: erp, status: 200})
	k.do(apiCall{method: "GET", path: jobPath, basic: intruder, status: 404, code: "job_unknown"})
	resp, _ = k.do(apiCall{method: "GET", path: jobPath + "/documents/1", basic: erp, status: 200})
	k.do(apiCall{method: "GET", path: jobPath + "/documents/1", basic: erp, header: map[string]string{"If-None-Match": resp.Header.Get("ETag")}, status: 304})
	k.do(apiCall{method: "GET", path: jobPath + "/documents/3", basic: erp, status: 404, code: "job_document_unknown"})
	k.do(apiCall{method: "GET", path: jobPath + "/documents/first", basic: erp, status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "GET", path: jobPath + "/results.zip", basic: erp, status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/jobs/0123456789abcdef01234567/results.zip", basic: erp, status: 404, code: "job_unknown"})
	k.do(apiCall{method: "DELETE", path: jobPath, basic: erp, status: 204})
	k.do(apiCall{method: "DELETE", path: jobPath, basic: erp, status: 404, code: "job_unknown"})

	// OAuth and sessions.
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	form := func(v url.Values) []byte { return []byte(v.Encode()) }
	k.json(apiCall{method: "POST", path: "/api/v1/oauth/token", basic: erp, contentType: "application/x-www-form-urlencoded", body: form(url.Values{"grant_type": {"client_credentials"}}), status: 200}, &tok)
	k.do(apiCall{method: "GET", path: "/api/v1/seals", bearer: tok.AccessToken, status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/oauth/token", contentType: "application/x-www-form-urlencoded",
		body: form(url.Values{"grant_type": {"client_credentials"}, "client_id": {n.ERPID}, "client_secret": {n.ERPSecret}}), status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/oauth/token", basic: erp, contentType: "application/x-www-form-urlencoded", body: form(url.Values{"grant_type": {"password"}}), status: 400, outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/oauth/token", basic: n.ERPID + ":sgp_wrong", contentType: "application/x-www-form-urlencoded", body: form(url.Values{"grant_type": {"client_credentials"}}), status: 401})
	pw := n.addUser(t, "carol", access.RoleAuditor)
	login := func(v map[string]string) []byte { b, _ := json.Marshal(v); return b }
	var session struct{ Token string }
	k.json(apiCall{method: "POST", path: "/api/v1/sessions", contentType: "application/json", body: login(map[string]string{"username": "carol", "password": pw}), status: 201}, &session)
	k.do(apiCall{method: "POST", path: "/api/v1/sessions", contentType: "application/json", body: login(map[string]string{"username": "carol", "password": "wrong-password"}), status: 401, code: "unauthenticated"})
	k.do(apiCall{method: "POST", path: "/api/v1/sessions", contentType: "application/json", body: login(map[string]string{"username": "carol"}), status: 400, code: "invalid_input", outside: true})
	k.do(apiCall{method: "GET", path: "/api/v1/admin/audit?limit=5", bearer: session.Token, status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/admin/users", bearer: session.Token, status: 403, code: "operation_not_permitted"})
	k.do(apiCall{method: "DELETE", path: "/api/v1/sessions/current", bearer: session.Token, status: 204})
	k.do(apiCall{method: "DELETE", path: "/api/v1/sessions/current", bearer: session.Token, status: 401, code: "unauthenticated"})
	k.do(apiCall{method: "DELETE", path: "/api/v1/sessions/current", status: 401, code: "unauthenticated", outside: true})

	// Verification: a sealed PDF, a detached signature with its document,
	// an unsigned document, and the refusals; the tenth verification from
	// this address is the last one let in.
	var rep struct{ Valid bool }
	if k.json(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/pdf", body: sealed, status: 200}, &rep); !rep.Valid {
		t.Error("the sealed PDF does not verify")
	}
	ct, mp = multipartBytes(t, part{name: "signature", file: "order.txt.p7s", value: string(p7s)}, part{name: "document", file: "order.txt", value: string(doc)})
	if k.json(apiCall{method: "POST", path: "/api/v1/verifications", contentType: ct, body: mp, status: 200}, &rep); !rep.Valid {
		t.Error("the CAdES signature does not verify")
	}
	k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/octet-stream", body: []byte("never sealed"), status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/pdf", status: 400, code: "document_empty", outside: true})
	ct, mp = multipartBytes(t, part{name: "signature", file: "x.p7s", value: string(p7s)})
	k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: ct, body: mp, status: 400, code: "document_empty", outside: true})
	k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/octet-stream", body: bytes.Repeat([]byte("x"), 2<<20), status: 413, code: "document_too_large"})
	for range 5 {
		k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/pdf", body: sealed, status: 200})
	}
	if resp, _ := k.do(apiCall{method: "POST", path: "/api/v1/verifications", contentType: "application/pdf", body: sealed, status: 429, code: "verification_rate_limited"}); resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}

	// Evidence and the log: pending until the next checkpoint, then proved.
	sealedHex := hexOf(sealed)
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + sealedHex, status: 503, code: "evidence_pending"})
	if _, err := n.Evidence.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + sealedHex, status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + hexOf(pdf), status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + sealedHex + "?index=" + index, status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + sealedHex + "?index=first", status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + hexOf([]byte("unknown")), status: 404, code: "evidence_not_found"})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/abc", status: 400, code: "evidence_bad_digest", outside: true})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + hexOf(p7s) + "/record", status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/evidence/" + hexOf([]byte("unknown")) + "/record", status: 404, code: "evidence_not_found"})
	var cp struct{ Size uint64 }
	k.json(apiCall{method: "GET", path: "/api/v1/log/checkpoint", status: 200}, &cp)
	k.do(apiCall{method: "GET", path: "/api/v1/log/checkpoint", header: map[string]string{"Accept": "text/plain"}, status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/log/checkpoint?size=" + fmt.Sprint(cp.Size), status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/log/checkpoint?size=-1", status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "GET", path: fmt.Sprintf("/api/v1/log/consistency?from=1&to=%d", cp.Size), status: 200})
	k.do(apiCall{method: "GET", path: fmt.Sprintf("/api/v1/log/consistency?from=%d&to=1", cp.Size), status: 400, code: "evidence_bad_range"})
	k.do(apiCall{method: "GET", path: "/api/v1/log/consistency?from=1", status: 400, code: "bad_request", outside: true})
	k.do(apiCall{method: "GET", path: "/api/v1/log/key", status: 200})

	// Administration, as the admin's session.
	adm := func(method, path string, body any, status int, code string) []byte {
		t.Helper()
		c := apiCall{method: method, path: path, bearer: admin, status: status, code: code}
		if body != nil {
			c.body, _ = json.Marshal(body)
			c.contentType = "application/json"
		}
		_, b := k.do(c)
		return b
	}
	adm("GET", "/api/v1/admin/users", nil, 200, "")
	adm("POST", "/api/v1/admin/users", access.NewUser{Login: "dora", Password: "dora-has-a-long-password", Roles: []string{access.RoleAuditor}}, 201, "")
	adm("POST", "/api/v1/admin/users", access.NewUser{Login: "dora", Password: "dora-has-a-long-password"}, 409, "user_exists")
	k.do(apiCall{method: "POST", path: "/api/v1/admin/users", bearer: admin, contentType: "application/json", body: []byte(`{"login":"eddie","password":"a-long-password","colour":"red"}`),
		status: 400, code: "bad_request", outside: true})
	adm("GET", "/api/v1/admin/users/dora", nil, 200, "")
	adm("GET", "/api/v1/admin/users/nobody", nil, 404, "user_unknown")
	adm("POST", "/api/v1/admin/users/dora/disable", nil, 204, "")
	adm("POST", "/api/v1/admin/users/dora/enable", nil, 204, "")
	adm("PUT", "/api/v1/admin/users/dora/roles", map[string]any{"roles": []string{access.RoleAdmin}}, 204, "")
	adm("PUT", "/api/v1/admin/users/dora/password", map[string]any{"password": "dora-has-another-password"}, 204, "")
	adm("POST", "/api/v1/admin/users/dora/totp", nil, 200, "")
	adm("DELETE", "/api/v1/admin/users/dora/totp", nil, 204, "")
	adm("POST", "/api/v1/admin/users/dora/unlock", nil, 200, "")
	adm("GET", "/api/v1/admin/groups", nil, 200, "")
	adm("POST", "/api/v1/admin/groups", map[string]any{"name": "billing-team", "requireTotp": false}, 201, "")
	adm("POST", "/api/v1/admin/groups", map[string]any{"name": "billing-team"}, 409, "group_exists")
	adm("POST", "/api/v1/admin/groups/billing-team/members", map[string]any{"login": "dora"}, 204, "")
	adm("POST", "/api/v1/admin/groups/nogroup/members", map[string]any{"login": "dora"}, 404, "group_unknown")
	adm("DELETE", "/api/v1/admin/groups/billing-team/members/dora", nil, 204, "")
	adm("DELETE", "/api/v1/admin/users/dora", nil, 204, "")
	adm("GET", "/api/v1/admin/processes", nil, 200, "")
	adm("POST", "/api/v1/admin/processes", map[string]any{"clientId": "billing", "description": "billing runs"}, 201, "")
	adm("POST", "/api/v1/admin/processes", map[string]any{"clientId": "billing"}, 409, "process_exists")
	adm("POST", "/api/v1/admin/processes/billing/secret", map[string]any{"overlapSeconds": 60}, 200, "")
	adm("POST", "/api/v1/admin/processes/billing/secret", nil, 200, "")
	adm("POST", "/api/v1/admin/processes/billing/certificates", access.ProcessCert{Fingerprint: hexOf([]byte("a certificate"))}, 204, "")
	adm("POST", "/api/v1/admin/processes/billing/unlock", nil, 200, "")
	adm("POST", "/api/v1/admin/processes/billing/revoke", nil, 204, "")
	adm("POST", "/api/v1/admin/processes/nobody/revoke", nil, 404, "process_unknown")
	adm("GET", "/api/v1/admin/rules", nil, 200, "")
	rule := access.Rule{Name: "billing-seals", Subject: access.Subject{Kind: access.SubjectProcess, Name: "billing"}, Seals: []string{"acme"}, Levels: []string{"B-T"}}
	adm("POST", "/api/v1/admin/rules", rule, 201, "")
	rule.Name, rule.Seals = "no-such-seal", []string{"other"}
	adm("POST", "/api/v1/admin/rules", rule, 400, "rule_invalid")
	adm("DELETE", "/api/v1/admin/rules/billing-seals", nil, 204, "")
	adm("DELETE", "/api/v1/admin/rules/billing-seals", nil, 404, "rule_unknown")
	adm("GET", "/api/v1/admin/audit", nil, 200, "")
	k.do(apiCall{method: "GET", path: "/api/v1/admin/audit?limit=0", bearer: admin, status: 400, code: "bad_request", outside: true})
	adm("GET", "/api/v1/admin/audit/export?after=1", nil, 200, "")
	adm("GET", "/api/v1/admin/audit/verify", nil, 200, "")
	k.do(apiCall{method: "GET", path: "/api/v1/admin/users", basic: erp, status: 403, code: "operation_not_permitted"})
	k.do(apiCall{method: "GET", path: "/api/v1/admin/users", status: 401, code: "unauthenticated", outside: true})

	// Every documented operation answered with success at least once.
	for _, op := range k.documented() {
		ok := false
		for status := range k.answered[op] {
			ok = ok || status < 300
		}
		if !ok {
			t.Errorf("%s: documented, but no request of this test succeeded (statuses %v)", op, slices.Sorted(maps.Keys(k.answered[op])))
		}
	}
	// The document and the engine's routes name the same operations.
	served := map[string]bool{}
	for _, r := range n.Routes() {
		if strings.HasPrefix(r.Path, "/api/v1/") || r.Path == "/healthz" || r.Path == "/readyz" || r.Path == "/metrics" {
			served[r.Method+" "+openAPIPath(r.Path)] = true
		}
	}
	documented := k.documented()
	for _, op := range slices.Sorted(maps.Keys(served)) {
		if !slices.Contains(documented, op) {
			t.Errorf("%s is served but not in gateway/rest/openapi.json", op)
		}
	}
	for _, op := range documented {
		if !served[op] {
			t.Errorf("%s is in gateway/rest/openapi.json but not served", op)
		}
	}
}

// TestOpenAPIMutualTLS: a process authenticated by its TLS client
// certificate alone seals, lists its seals and gets a token as the
// document's mutualTLS scheme says; an unmapped certificate is refused as
// documented.
func TestOpenAPIMutualTLS(t *testing.T) {
	tn := newTLSNode(t, "request")
	pinned := clientCert(t, tn.CA, "erp-pinned", 24*time.Hour)
	if err := tn.Access.AddProcessCert(context.Background(), tn.ERPID, access.ProcessCert{Fingerprint: fingerprint(pinned)}, "test"); err != nil {
		t.Fatal(err)
	}
	k := newContract(t, tn.URL, tn.client(pinned))
	k.do(apiCall{method: "POST", path: "/api/v1/seals?format=cades", cert: true, contentType: "application/octet-stream", body: []byte("order 4711"), status: 200})
	k.do(apiCall{method: "GET", path: "/api/v1/seals", cert: true, status: 200})
	k.do(apiCall{method: "POST", path: "/api/v1/oauth/token", cert: true, contentType: "application/x-www-form-urlencoded",
		body: []byte(url.Values{"grant_type": {"client_credentials"}}.Encode()), status: 200})
	stranger := newContract(t, tn.URL, tn.client(clientCert(t, tn.CA, "nobody", 24*time.Hour)))
	stranger.do(apiCall{method: "GET", path: "/api/v1/seals", cert: true, status: 401, code: "unauthenticated"})
}

// openAPIPath writes gin's :name path segments as OpenAPI's {name}.
func openAPIPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/")
}

// multipartBytes is multipartBody read whole, for a body sent twice (to
// the validator and to the node).
func multipartBytes(t *testing.T, parts ...part) (string, []byte) {
	t.Helper()
	ct, body := multipartBody(t, parts...)
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return ct, b
}
