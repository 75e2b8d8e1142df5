package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/signing/signingtest"
	"github.com/sealgate/sealgate/tsa/tsatest"
)

// node is a sealgate node on a loopback HTTP server, with real SoftHSM
// tokens, a real SQLite file and the development TSA.
type node struct {
	*server.Server
	URL    string
	Dir    string
	CAFile string
	// CA issued the seal certificate and the TSA's.
	CA *devpki.CA
	// erp may use seal "acme"; intruder is a known process with no rule.
	ERPID, ERPSecret           string
	IntruderID, IntruderSecret string
}

// newNode starts a node; each edit may change its configuration document.
func newNode(t testing.TB, edits ...func(doc map[string]any)) *node {
	t.Helper()
	n, cfg := nodeConfig(t, edits...)
	return startNode(t, n, cfg)
}

// startNode starts the node nodeConfig prepared.
func startNode(t testing.TB, n *node, cfg *config.File) *node {
	t.Helper()
	n.open(t, cfg)
	hs := httptest.NewServer(n.Handler())
	t.Cleanup(hs.Close)
	n.URL = hs.URL
	return n
}

// open assembles the node nodeConfig prepared, with its processes erp and
// intruder and erp's rule, without serving it.
func (n *node) open(t testing.TB, cfg *config.File) {
	t.Helper()
	ctx := context.Background()
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	n.Server = srv

	if _, n.ERPSecret, err = srv.Access.AddProcess(ctx, "erp", "invoicing", nil, "test"); err != nil {
		t.Fatal(err)
	}
	n.ERPID = "erp"
	if _, n.IntruderSecret, err = srv.Access.AddProcess(ctx, "intruder", "no rule", nil, "test"); err != nil {
		t.Fatal(err)
	}
	n.IntruderID = "intruder"
	if _, err := srv.Access.AddRule(ctx, access.Rule{Name: "erp-seals", Subject: access.Subject{Kind: access.SubjectProcess, Name: "erp"}, Seals: []string{"acme"}}, "test"); err != nil {
		t.Fatal(err)
	}
}

// nodeConfig makes a node's tokens, development CA and TSA, and writes and
// loads its configuration document after the edits; the node is not started.
func nodeConfig(t testing.TB, edits ...func(doc map[string]any)) (*node, *config.File) {
	t.Helper()
	h := signingtest.NewSoftHSM(t)
	poolCfg, ca := signingtest.DevSeal(t, h, signingtest.DevSealOptions{ID: "acme", Tokens: []string{"seal-1", "seal-2"}})
	dir := t.TempDir()
	n := &node{Dir: dir, CAFile: filepath.Join(dir, "ca.pem"), CA: ca}
	if err := devpki.WriteCertsPEM(n.CAFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	// The node serves this authority's key and chain as its development TSA.
	authority := tsatest.Start(t, ca)
	tsaKeyFile, tsaChain := filepath.Join(dir, "tsa.key"), filepath.Join(dir, "tsa.pem")
	if err := devpki.WriteKeyPEM(tsaKeyFile, authority.Key); err != nil {
		t.Fatal(err)
	}
	if err := devpki.WriteCertsPEM(tsaChain, authority.Chain...); err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{
		"data":     dir,
		"database": filepath.Join(dir, "sealgate.db"),
		"signing":  poolCfg,
		"seal":     map[string]any{"defaultSeal": "acme", "tempDir": dir},
		"devTSA":   map[string]any{"key": tsaKeyFile, "certificate": tsaChain},
		"evidence": map[string]any{"origin": "test.sealgate/log", "checkpointInterval": "1h", "keyDir": dir},
	}
	for _, edit := range edits {
		edit(doc)
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "sealgate.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath, "")
	if err != nil {
		t.Fatal(err)
	}
	return n, cfg
}

// post sends body to path with the given credentials and returns the
// response with its body read.
func (n *node) post(t testing.TB, path, id, secret, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	return n.send(t, http.MethodPost, path, id, secret, contentType, body)
}

// send makes a request with Basic credentials (none when id is empty) and
// returns the response with its body read.
func (n *node) send(t testing.TB, method, path, id, secret, contentType string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, n.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return roundTrip(t, req)
}

// roundTrip sends req and returns the response with its body read.
func roundTrip(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (n *node) get(t testing.TB, path string, v any) int {
	t.Helper()
	return n.getAs(t, path, "", "", v)
}

// getAs is get with Basic credentials (none when id is empty).
func (n *node) getAs(t testing.TB, path, id, secret string, v any) int {
	t.Helper()
	resp, b := n.getText(t, path, id, secret)
	if v != nil {
		if err := json.Unmarshal([]byte(b), v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// getText GETs path with Basic credentials (none when id is empty) and
// returns the response with its body read.
func (n *node) getText(t testing.TB, path, id, secret string) (*http.Response, string) {
	t.Helper()
	resp, b := n.send(t, http.MethodGet, path, id, secret, "", nil)
	return resp, string(b)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// sealPDF seals doc over REST as the erp process with the given query and
// fails the test unless it is sealed.
func (n *node) sealPDF(t testing.TB, query string, doc []byte) (*http.Response, []byte) {
	t.Helper()
	resp, sealed := n.post(t, "/api/v1/seals?"+query, n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(doc))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sealing with %s: status %s: %s", query, resp.Status, sealed)
	}
	return resp, sealed
}

// TestSealPAdESOverREST seals a PDF as a process would, checks the result
// with the independent validators, and checks its evidence proof with the
// transparency-dev/merkle verifier.
func TestSealPAdESOverREST(t *testing.T) {
	n := newNode(t)
	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0042"}}})
	resp, sealed := n.sealPDF(t, "format=pades&page=1&x=300&y=700&width=220&height=70&reason=Invoice", invoice)
	if ct := resp.Header.Get("Content-Type"); ct != "application/pdf" {
		t.Errorf("Content-Type %q", ct)
	}
	if lvl := resp.Header.Get("Sealgate-Level"); lvl != "B-T" {
		t.Errorf("level %q, want B-T (a TSA is configured)", lvl)
	}
	sum := sha256.Sum256(sealed)
	if got := resp.Header.Get("Sealgate-Sealed-Sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("Sealgate-Sealed-Sha256 %s, body hashes to %x", got, sum)
	}
	orig := sha256.Sum256(invoice)
	if got := resp.Header.Get("Sealgate-Original-Sha256"); got != hex.EncodeToString(orig[:]) {
		t.Errorf("Sealgate-Original-Sha256 %s, the invoice hashes to %x", got, orig)
	}
	if !bytes.HasPrefix(sealed, invoice) {
		t.Error("the original revision is not preserved byte for byte")
	}
	f := writeTemp(t, "sealed.pdf", sealed)
	out, err := run(t, "pdfsig", "-nocert", f)
	if err != nil || !strings.Contains(out, "Signature is Valid.") || !strings.Contains(out, "Total document signed") || !strings.Contains(out, "ETSI.CAdES.detached") {
		t.Errorf("pdfsig: %v\n%s", err, out)
	}
	if out, err := run(t, "qpdf", "--check", f); err != nil {
		t.Errorf("qpdf --check: %v\n%s", err, out)
	}

	if _, err := n.Evidence.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	var ev evidence.Evidence
	if code := n.get(t, "/api/v1/evidence/"+hex.EncodeToString(sum[:]), &ev); code != http.StatusOK {
		t.Fatalf("evidence: status %d", code)
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(ev.Data)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, ev.Checkpoint.Size, leafHash, ev.InclusionProof, ev.Checkpoint.Root); err != nil {
		t.Errorf("inclusion proof does not verify: %v", err)
	}
	if ev.Entry.SealedSHA256 != sum || ev.Entry.SealID != "acme" || ev.Entry.Format != "pades" {
		t.Errorf("entry %+v does not describe this seal", ev.Entry)
	}
	if _, err := evidence.ParseCheckpoint([]byte(ev.Checkpoint.Note), n.Evidence.VerifierKey()); err != nil {
		t.Errorf("checkpoint note signature: %v", err)
	}
}

// TestSealCAdESOverREST checks a detached CAdES seal with openssl, including
// that a changed document fails and that signing-certificate-v2 is present.
func TestSealCAdESOverREST(t *testing.T) {
	n := newNode(t)
	doc := bytes.Repeat([]byte("order 7 · 100 units\n"), 5000)
	resp, p7s := n.post(t, "/api/v1/seals?format=cades&level=B-B", n.ERPID, n.ERPSecret, "application/octet-stream", bytes.NewReader(doc))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, p7s)
	}
	docFile, sigFile := writeTemp(t, "order.txt", doc), writeTemp(t, "order.p7s", p7s)
	verify := func(content string) (string, error) {
		return run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", sigFile, "-content", content, "-CAfile", n.CAFile, "-purpose", "any", "-out", os.DevNull)
	}
	if out, err := verify(docFile); err != nil {
		t.Fatalf("openssl cms -verify: %v\n%s", err, out)
	}
	flipped := bytes.Clone(doc)
	flipped[len(flipped)/2] ^= 1
	if out, err := verify(writeTemp(t, "flipped.txt", flipped)); err == nil {
		t.Errorf("openssl accepted the seal over a changed document:\n%s", out)
	}
	// The public verification takes the signature and the document as multipart parts.
	verify2 := func(doc []byte) (int, bool) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		sw, _ := mw.CreateFormFile("signature", "order.p7s")
		sw.Write(p7s)
		dw, _ := mw.CreateFormFile("document", "order.txt")
		dw.Write(doc)
		mw.Close()
		resp, body := n.post(t, "/api/v1/verifications", "", "", mw.FormDataContentType(), &b)
		var rep struct {
			Valid bool   `json:"valid"`
			Kind  string `json:"kind"`
		}
		json.Unmarshal(body, &rep)
		return resp.StatusCode, rep.Valid && rep.Kind == "cades"
	}
	if code, valid := verify2(doc); code != http.StatusOK || !valid {
		t.Errorf("multipart verification of the sealed order: %d, valid %v", code, valid)
	}
	if code, valid := verify2(flipped); code != http.StatusOK || valid {
		t.Errorf("multipart verification of a changed order: %d, valid %v", code, valid)
	}
	out, err := run(t, "openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", sigFile)
	if err != nil || !strings.Contains(out, "id-smime-aa-signingCertificateV2") || !strings.Contains(out, "signingTime") {
		t.Errorf("CAdES-B-B attributes missing: %v\n%s", err, out)
	}
}

// TestSealRefusals checks every refusal gives its status and stable code,
// and that nothing is recorded as sealed that was not.
func TestSealRefusals(t *testing.T) {
	n := newNode(t)
	pdf := pdftest.Bytes(pdftest.Spec{})
	encrypted := pdftest.Qpdf(t, pdf, "--encrypt", "user", "owner", "256", "--")
	multipartWithout := func() (string, io.Reader) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("format", "pades")
		mw.Close()
		return mw.FormDataContentType(), &b
	}
	ct, noDoc := multipartWithout()
	bigField, ctBig := func() (io.Reader, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("reason", strings.Repeat("r", 5000))
		fw, _ := mw.CreateFormFile("document", "a.pdf")
		fw.Write(pdf)
		mw.Close()
		return &b, mw.FormDataContentType()
	}()
	cases := []struct {
		name, query, id, secret, ctype string
		body                           io.Reader
		status                         int
		code                           string
	}{
		{"no credentials", "", "", "", "application/pdf", bytes.NewReader(pdf), 401, "unauthenticated"},
		{"wrong secret", "", n.ERPID, n.ERPSecret + "x", "application/pdf", bytes.NewReader(pdf), 401, "unauthenticated"},
		{"no rule for the caller", "", n.IntruderID, n.IntruderSecret, "application/pdf", bytes.NewReader(pdf), 403, "seal_not_permitted"},
		{"unknown seal", "?seal=nope", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf), 403, "seal_not_permitted"},
		{"unsupported format", "?format=xades", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf), 400, "format_unsupported"},
		{"unsupported level", "?format=cades&level=B-LTA", n.ERPID, n.ERPSecret, "", bytes.NewReader(pdf), 400, "level_unsupported"},
		{"empty document", "?format=cades", n.ERPID, n.ERPSecret, "", bytes.NewReader(nil), 400, "document_empty"},
		{"empty pdf", "", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(nil), 400, "document_empty"},
		{"multipart without document", "", n.ERPID, n.ERPSecret, ct, noDoc, 400, "document_empty"},
		{"multipart field too large", "", n.ERPID, n.ERPSecret, ctBig, bigField, 400, "bad_request"},
		{"not a pdf", "", n.ERPID, n.ERPSecret, "application/pdf", strings.NewReader("hello, not a PDF"), 400, "pdf_malformed"},
		{"bytes after %%EOF", "", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(append(bytes.Clone(pdf), bytes.Repeat([]byte{0xA5, '7'}, 3000)...)), 400, "pdf_malformed"},
		{"truncated pdf", "", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf[:len(pdf)/2]), 400, "pdf_malformed"},
		{"encrypted pdf", "", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(encrypted), 400, "pdf_encrypted"},
		{"page out of range", "?page=7&x=10&y=10&width=100&height=50", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf), 400, "pdf_page_out_of_range"},
		{"bad page number", "?page=first", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf), 400, "bad_request"},
		{"unknown field", "?field=Nope", n.ERPID, n.ERPSecret, "application/pdf", bytes.NewReader(pdf), 404, "pdf_field_unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := n.post(t, "/api/v1/seals"+c.query, c.id, c.secret, c.ctype, c.body)
			p := readProblem(t, resp, body)
			if p.Status != c.status || p.Code != c.code {
				t.Errorf("got %d %q (%s), want %d %q", p.Status, p.Code, p.Detail, c.status, c.code)
			}
		})
	}
	sealed, failed := n.sealEvents(t)
	if sealed != 0 || n.Evidence.Size() != 0 {
		t.Errorf("refused requests left %d sealed events and %d evidence leaves", sealed, n.Evidence.Size())
	}
	if failed == 0 {
		t.Error("refusals after authentication are not recorded as failed seal events")
	}
}

// TestVerificationsAndConsistency verifies sealed documents through the
// public API, detects a changed byte, and checks a consistency proof between
// two published checkpoints.
func TestVerificationsAndConsistency(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	seal := func(text string) []byte {
		resp, b := n.post(t, "/api/v1/seals", n.ERPID, n.ERPSecret, "application/pdf",
			bytes.NewReader(pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: text}}})))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seal: %s %s", resp.Status, b)
		}
		return b
	}
	first := seal("one")
	cp1, err := n.Evidence.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second := seal("two")
	seal("three")
	cp2, err := n.Evidence.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}

	type report struct {
		Valid    bool   `json:"valid"`
		InLog    bool   `json:"inLog"`
		Verdict  string `json:"verdict"`
		Evidence *struct {
			OK bool `json:"ok"`
		} `json:"evidence"`
	}
	for _, doc := range [][]byte{first, second} {
		resp, b := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(doc))
		var r report
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 {
			t.Fatalf("verification: %s %s", resp.Status, b)
		}
		if !r.Valid || !r.InLog || r.Evidence == nil || !r.Evidence.OK {
			t.Errorf("sealed document not verified: %s", b)
		}
	}
	changed := bytes.Clone(second)
	changed[100] ^= 0x20
	resp, b := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(changed))
	var r report
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("verification of a changed document: %s %s", resp.Status, b)
	}
	if r.Valid {
		t.Errorf("a changed document verified as valid: %s", b)
	}

	var cons struct {
		Proof [][]byte `json:"proof"`
	}
	if code := n.get(t, fmt.Sprintf("/api/v1/log/consistency?from=%d&to=%d", cp1.Size, cp2.Size), &cons); code != 200 {
		t.Fatalf("consistency: %d", code)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, cons.Proof, cp1.Root, cp2.Root); err != nil {
		t.Errorf("consistency proof %d→%d does not verify: %v", cp1.Size, cp2.Size, err)
	}
	var latest evidence.Checkpoint
	if code := n.get(t, "/api/v1/log/checkpoint", &latest); code != 200 || latest.Size != cp2.Size {
		t.Errorf("checkpoint: %d size %d, want size %d", code, latest.Size, cp2.Size)
	}
	var problem struct{ Code string }
	if code := n.get(t, "/api/v1/log/consistency?from=5&to=2", &problem); code != 400 || problem.Code != "evidence_bad_range" {
		t.Errorf("bad range: %d %q", code, problem.Code)
	}
}

// TestSealUnreadableInput seals from readers that fail midway: both formats
// report input_unreadable, no output exists, and no leaf is appended.
func TestSealUnreadableInput(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	p, err := n.Access.AuthenticateClientSecret(ctx, n.ERPID, n.ERPSecret, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	broken := func() io.Reader {
		return io.MultiReader(bytes.NewReader(pdftest.Bytes(pdftest.Spec{})[:200]), iotest.ErrReader(errors.New("disk read error")))
	}
	for _, f := range []seal.Format{seal.PAdES, seal.CAdES} {
		res, err := n.Seal.Seal(ctx, seal.Request{Principal: p, Format: f, Document: broken()})
		if res != nil || fault.CodeOf(err) != seal.CodeInputUnreadable {
			t.Errorf("%s: got %v, %v; want input_unreadable", f, res, err)
		}
	}
	if n.Evidence.Size() != 0 {
		t.Errorf("failed reads appended %d leaves", n.Evidence.Size())
	}
	leftovers, _ := filepath.Glob(filepath.Join(n.Dir, "sealgate-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

// TestDocumentTooLarge: a document over seal.maxDocumentSize is refused with
// 413 whether its size is announced (Content-Length) or not (chunked), and
// nothing is sealed.
func TestDocumentTooLarge(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["seal"].(map[string]any)["maxDocumentSize"] = 4096
	})
	big := bytes.Repeat([]byte("x"), 10000)
	for _, body := range []io.Reader{bytes.NewReader(big), io.MultiReader(bytes.NewReader(big))} {
		resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "document_too_large") {
			t.Errorf("%T body: %s %s", body, resp.Status, b)
		}
	}
	if resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", bytes.NewReader(big[:4096])); resp.StatusCode != http.StatusOK {
		t.Errorf("a document of exactly the limit: %s %s", resp.Status, b)
	}
	if n.Evidence.Size() != 1 {
		t.Errorf("%d leaves, want only the one document within the limit", n.Evidence.Size())
	}
}

// TestSealFromAFile seals a PDF handed over as a file, read in place (as the
// CLI does), and checks the digests the evidence records.
func TestSealFromAFile(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	p, err := n.Access.AuthenticateClientSecret(ctx, n.ERPID, n.ERPSecret, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	doc := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "delivery note"}}})
	f, err := os.Open(writeTemp(t, "note.pdf", doc))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := n.Seal.Seal(ctx, seal.Request{Principal: p, Format: seal.PAdES, Document: f, Size: int64(len(doc))})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out bytes.Buffer
	if _, err := res.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	orig, sealed := sha256.Sum256(doc), sha256.Sum256(out.Bytes())
	if !bytes.Equal(res.OriginalSHA256, orig[:]) || !bytes.Equal(res.SealedSHA256, sealed[:]) || !bytes.HasPrefix(out.Bytes(), doc) {
		t.Errorf("digests %x / %x, want %x / %x", res.OriginalSHA256, res.SealedSHA256, orig, sealed)
	}
}
