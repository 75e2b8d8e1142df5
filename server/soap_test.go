package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	gowsdl "github.com/hooklift/gowsdl/soap"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/wsdl"
)

// soapFault is the part of a SOAP fault the tests read.
type soapFault struct {
	Code   string `xml:"Body>Fault>faultcode"`
	Code12 string `xml:"Body>Fault>Code>Value"`
	Detail struct {
		Code    string `xml:"code"`
		Message string `xml:"message"`
	} `xml:"Body>Fault>detail>SealgateFault"`
	Detail12 struct {
		Code string `xml:"code"`
	} `xml:"Body>Fault>Detail>SealgateFault"`
}

// faultOf reads a fault's SOAP code and sealgate code from body.
func faultOf(t testing.TB, body []byte) (soapCode, code string) {
	t.Helper()
	var f soapFault
	if err := xml.Unmarshal(body, &f); err != nil {
		t.Fatalf("not a SOAP fault: %v\n%.400s", err, body)
	}
	if f.Code12 != "" {
		return f.Code12, f.Detail12.Code
	}
	return f.Code, f.Detail.Code
}

// envelope11 wraps body (and header) in a SOAP 1.1 envelope.
func envelope11(header, body string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>` + header +
		`</s:Header><s:Body>` + body + `</s:Body></s:Envelope>`
}

// usernameToken is a wsse:Security header; digest sends
// base64(SHA-1(nonce ‖ created ‖ password)) as PasswordDigest.
func usernameToken(user, password string, nonce []byte, created string, digest bool) string {
	var extra string
	if nonce != nil {
		extra += `<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">` + base64.StdEncoding.EncodeToString(nonce) + `</wsse:Nonce>`
	}
	if created != "" {
		extra += `<wsu:Created>` + created + `</wsu:Created>`
	}
	typ := "PasswordText"
	if digest {
		typ = "PasswordDigest"
		h := sha1.Sum([]byte(string(nonce) + created + password))
		password = base64.StdEncoding.EncodeToString(h[:])
	}
	return `<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">` +
		`<wsse:UsernameToken><wsse:Username>` + user + `</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#` + typ + `">` +
		password + `</wsse:Password>` + extra + `</wsse:UsernameToken></wsse:Security>`
}

func freshNonce() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// soapPost posts a SOAP 1.1 envelope to the node and returns the response
// with its body and how long the answer took.
func (n *node) soapPost(t testing.TB, action string, body io.Reader, header map[string]string) (*http.Response, []byte, time.Duration) {
	t.Helper()
	h := map[string]string{"SOAPAction": `"` + action + `"`}
	for k, v := range header {
		h[k] = v
	}
	return soapCall(t, http.DefaultClient, n.URL, h, body)
}

// soapCall posts body to base's /soap as text/xml unless header says otherwise.
func soapCall(t testing.TB, c *http.Client, base string, header map[string]string, body io.Reader) (*http.Response, []byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/soap", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", `text/xml; charset="utf-8"`)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b, time.Since(start)
}

// TestSOAPGoClient drives the endpoint with the gowsdl-generated client:
// seals a PDF with a WS-Security UsernameToken, verifies it, lists seals.
// gowsdl's generated []byte fields carry their element's text as is, so
// the client puts base64 in them and reads base64 out.
func TestSOAPGoClient(t *testing.T) {
	n := newNode(t)
	client := gowsdl.NewClient(n.URL + "/soap")
	client.AddHeader(gowsdl.NewWSSSecurityHeader(n.ERPID, n.ERPSecret, "", "1"))
	port := wsdl.NewSealgatePortType(client)

	seals, err := port.ListSeals(&wsdl.ListSeals{})
	if err != nil || len(seals.Seal) != 1 || seals.Seal[0] != "acme" {
		t.Fatalf("ListSeals: %v %+v", err, seals)
	}
	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0099"}}})
	page, x, y, w, h := int32(1), 0.0, 0.0, 200.0, 60.0
	res, err := port.SealDocument(&wsdl.SealDocument{SealOptions: &wsdl.SealOptions{Format: "pades", Page: &page, X: &x, Y: &y, Width: &w, Height: &h, Reason: "Invoice"},
		Document: []byte(base64.StdEncoding.EncodeToString(invoice))})
	if err != nil {
		t.Fatalf("SealDocument: %v", err)
	}
	sealed, err := base64.StdEncoding.DecodeString(string(res.SealedDocument))
	if err != nil || !bytes.HasPrefix(sealed, invoice) {
		t.Fatalf("sealed document: %v", err)
	}
	if res.Result.Seal != "acme" || res.Result.Level != "B-T" || res.Result.Size != int64(len(sealed)) || res.Result.Time.ToGoTime().IsZero() {
		t.Errorf("result %+v", res.Result)
	}
	if out, err := run(t, "pdfsig", "-nocert", writeTemp(t, "sealed.pdf", sealed)); err != nil || !strings.Contains(out, "Signature is Valid.") {
		t.Errorf("pdfsig: %v\n%s", err, out)
	}
	rep, err := port.VerifyDocument(&wsdl.VerifyDocument{Document: []byte(base64.StdEncoding.EncodeToString(sealed))})
	if err != nil {
		t.Fatalf("VerifyDocument: %v", err)
	}
	if r := rep.Report; !r.Valid || r.Kind != "pdf" || r.Pdf == nil || len(r.Pdf.Signature) != 1 || !r.Pdf.Signature[0].Valid || !r.InLog {
		t.Errorf("report %+v", r)
	}
	// The same report as REST's, typed.
	resp, b := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(sealed))
	var restRep seal.Report
	if err := json.Unmarshal(b, &restRep); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("REST verification: %s %v", resp.Status, err)
	}
	r, rs := rep.Report, restRep.PDF.Signatures[0]
	soapSig := r.Pdf.Signature[0]
	if r.Verdict != restRep.Verdict || r.DocumentSha256 != restRep.DocumentSHA256 || r.Size != restRep.Size ||
		soapSig.Level != string(rs.Level) || soapSig.SubFilter != rs.SubFilter || fmt.Sprint(soapSig.ByteRange) != fmt.Sprint(rs.ByteRange) ||
		soapSig.Cms.Signer != rs.CMS.Signer || len(soapSig.Cms.Chain) != len(rs.CMS.Chain) ||
		(rs.CMS.Timestamp == nil) != (soapSig.Cms.Timestamp == nil) ||
		len(r.Qualification) != len(restRep.Qualifications) || len(r.Qualification) == 0 || r.Qualification[0].Level != string(restRep.Qualifications[0].Qualification.Level) {
		t.Errorf("SOAP report %+v differs from REST's %+v", r, restRep)
	}

	// A principal without a rule gets the fault REST's problem has.
	intruder := gowsdl.NewClient(n.URL + "/soap")
	intruder.AddHeader(gowsdl.NewWSSSecurityHeader(n.IntruderID, n.IntruderSecret, "", "1"))
	_, err = wsdl.NewSealgatePortType(intruder).SealDocument(&wsdl.SealDocument{Document: []byte(base64.StdEncoding.EncodeToString(invoice))})
	var he *gowsdl.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("intruder: %v", err)
	}
	if sc, code := faultOf(t, he.ResponseBody); he.StatusCode != 500 || sc != "soap:Client" || code != "seal_not_permitted" {
		t.Errorf("intruder: %d %s %s", he.StatusCode, sc, code)
	}
}

// TestSOAPWSSecurityRefusals: each way a UsernameToken can be wrong gets
// its fault and code.
func TestSOAPWSSecurityRefusals(t *testing.T) {
	n := newNode(t)
	now := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }
	list := `<ListSeals xmlns="urn:sealgate:v1"/>`
	replayed := usernameToken(n.ERPID, n.ERPSecret, freshNonce(), now(0), false)
	if resp, body, _ := n.soapPost(t, "urn:sealgate:v1/ListSeals", strings.NewReader(envelope11(replayed, list)), nil); resp.StatusCode != 200 {
		t.Fatalf("first use of a token: %s\n%s", resp.Status, body)
	}
	// A digest over one nonce, sent with another.
	signed, other := freshNonce(), freshNonce()
	wrongNonce := strings.Replace(usernameToken(n.ERPID, n.ERPSecret, signed, now(0), true),
		base64.StdEncoding.EncodeToString(signed), base64.StdEncoding.EncodeToString(other), 1)
	for _, tc := range []struct {
		name, header, code string
	}{
		{"wrong password", usernameToken(n.ERPID, "sgp_wrong", freshNonce(), now(0), false), "unauthenticated"},
		{"replayed nonce", replayed, "wsse_nonce_replayed"},
		{"stale Created", usernameToken(n.ERPID, n.ERPSecret, freshNonce(), now(-time.Hour), false), "wsse_created_stale"},
		{"Created in the future", usernameToken(n.ERPID, n.ERPSecret, freshNonce(), now(time.Hour), false), "wsse_created_stale"},
		{"PasswordDigest", usernameToken(n.ERPID, n.ERPSecret, freshNonce(), now(0), true), "wsse_password_digest_unsupported"},
		{"PasswordDigest with a wrong nonce", wrongNonce, "wsse_password_digest_unsupported"},
		{"Nonce without Created", usernameToken(n.ERPID, n.ERPSecret, freshNonce(), "", false), "wsse_malformed"},
		{"no rule", usernameToken(n.IntruderID, n.IntruderSecret, freshNonce(), now(0), false), "seal_not_permitted"},
	} {
		body := list
		if tc.code == "seal_not_permitted" {
			body = `<SealDocument xmlns="urn:sealgate:v1"><document>` + base64.StdEncoding.EncodeToString([]byte("x")) + `</document></SealDocument>`
		}
		resp, b, _ := n.soapPost(t, "", strings.NewReader(envelope11(tc.header, body)), nil)
		sc, code := faultOf(t, b)
		if resp.StatusCode != 500 || sc != "soap:Client" || code != tc.code {
			t.Errorf("%s: %s %s %s, want soap:Client %s", tc.name, resp.Status, sc, code, tc.code)
		}
		if strings.Contains(string(b), n.ERPSecret) {
			t.Errorf("%s: the fault shows the secret", tc.name)
		}
	}
}

// TestSOAPZeep drives the endpoint with python3-zeep (Debian's
// /usr/bin/python3), which reads /soap?wsdl: PAdES and CAdES inline and as
// MTOM, a batch job and its results, verification; the outputs pass pdfsig
// and openssl cms -verify.
func TestSOAPZeep(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import zeep").Run(); err != nil {
		t.Skip("python3-zeep is not installed (apt-get install python3-zeep)")
	}
	n := newNode(t)
	runJobs(t, n.Server)
	dir := t.TempDir()
	invoice := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0100"}}})
	order := bytes.Repeat([]byte("order 8 · 12 units\n"), 3000)
	pdfFile, docFile := writeTemp(t, "invoice.pdf", invoice), writeTemp(t, "order.txt", order)
	out, err := exec.Command("/usr/bin/python3", "testdata/zeep_client.py", n.URL, n.ERPID, n.ERPSecret, pdfFile, docFile, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("zeep: %v\n%s", err, out)
	}
	var found struct {
		Seals       []string `json:"seals"`
		InlinePades struct {
			Level  string `json:"level"`
			Prefix bool   `json:"prefix"`
		} `json:"inlinePades"`
		InlineCades string `json:"inlineCades"`
		VerifyPades struct {
			Valid      bool `json:"valid"`
			Signatures int  `json:"signatures"`
		} `json:"verifyPades"`
		VerifyCades struct {
			Valid bool   `json:"valid"`
			Kind  string `json:"kind"`
		} `json:"verifyCades"`
		MtomAnswers    []string `json:"mtomAnswers"`
		MtomPades      string   `json:"mtomPades"`
		MtomCades      string   `json:"mtomCades"`
		VerifyMtom     bool     `json:"verifyMtom"`
		BatchSubmitted struct {
			State     string `json:"state"`
			Documents int    `json:"documents"`
		} `json:"batchSubmitted"`
		BatchState    string  `json:"batchState"`
		BatchVerified [][]any `json:"batchVerified"`
		WrongPassword struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		} `json:"wrongPassword"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &found); err != nil {
		t.Fatalf("zeep output: %v\n%s", err, out)
	}
	if len(found.Seals) != 1 || found.InlinePades.Level != "B-T" || !found.InlinePades.Prefix || found.InlineCades != "cades" ||
		!found.VerifyPades.Valid || found.VerifyPades.Signatures != 1 || !found.VerifyCades.Valid || found.VerifyCades.Kind != "cades" ||
		found.MtomPades != "B-T" || found.MtomCades != "cades" || !found.VerifyMtom {
		t.Errorf("zeep found %+v", found)
	}
	if len(found.MtomAnswers) != 3 || found.MtomAnswers[0] != "multipart/related" {
		t.Errorf("MTOM requests were answered as %v, want multipart/related", found.MtomAnswers)
	}
	if found.BatchSubmitted.State != "queued" || found.BatchSubmitted.Documents != 2 || found.BatchState != "done" ||
		fmt.Sprint(found.BatchVerified) != "[[a.pdf true] [b.pdf true]]" {
		t.Errorf("batch: %+v %s %v", found.BatchSubmitted, found.BatchState, found.BatchVerified)
	}
	if found.WrongPassword.Detail != "unauthenticated" {
		t.Errorf("wrong password: %+v", found.WrongPassword)
	}
	for _, f := range []string{"inline.pdf", "mtom.pdf", "batch-1.pdf", "batch-2.pdf"} {
		if out, err := run(t, "pdfsig", "-nocert", dir+"/"+f); err != nil || !strings.Contains(out, "Signature is Valid.") || !strings.Contains(out, "Total document signed") {
			t.Errorf("pdfsig %s: %v\n%s", f, err, out)
		}
	}
	for _, f := range []string{"inline.p7s", "mtom.p7s"} {
		if out, err := run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", dir+"/"+f, "-content", docFile, "-CAfile", n.CAFile, "-purpose", "any", "-out", os.DevNull); err != nil {
			t.Errorf("openssl cms -verify %s: %v\n%s", f, err, out)
		}
	}
}

// endless is n bytes of text that never ends an element, made on the fly.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.n)
	for i := range p[:k] {
		p[i] = 'A'
	}
	e.n -= k
	return int(k), nil
}

// TestSOAPHostileInputs: an XML bomb, an external entity, a 1 GB envelope,
// deep nesting and broken MTOM packages each get a SOAP fault within 2 s
// and bounded memory, and the node keeps serving.
func TestSOAPHostileInputs(t *testing.T) {
	// A 4 MiB envelope limit (default 32 MiB) keeps the 1 GB envelope's
	// refusal within 2 s under the race detector too.
	n := newNode(t, func(doc map[string]any) { doc["soap"] = map[string]any{"maxEnvelopeSize": 4 << 20} })
	auth := map[string]string{"Authorization": basicAuth(n.ERPID, n.ERPSecret)}
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;">]>` +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ListSeals xmlns="urn:sealgate:v1">&lol9;</ListSeals></s:Body></s:Envelope>`
	xxe := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><SealDocument xmlns="urn:sealgate:v1"><document>&x;</document></SealDocument></s:Body></s:Envelope>`
	deep := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ListSeals xmlns="urn:sealgate:v1">` + strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000) + `</ListSeals></s:Body></s:Envelope>`
	gigabyte := func() io.Reader {
		return io.MultiReader(strings.NewReader(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><SealDocument xmlns="urn:sealgate:v1"><document>`), &endless{n: 1 << 30})
	}
	root := envelope11("", `<SealDocument xmlns="urn:sealgate:v1"><format>cades</format><document><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:doc"/></document></SealDocument>`)
	mtomHead := "--b\r\nContent-Type: application/xop+xml; type=\"text/xml\"\r\nContent-ID: <root>\r\n\r\n" + root + "\r\n--b\r\nContent-ID: <doc>\r\n\r\n"
	mtomType := `multipart/related; type="application/xop+xml"; start="<root>"; start-info="text/xml"; boundary=b`
	for _, tc := range []struct {
		name   string
		body   func() io.Reader
		header map[string]string
		code   string
	}{
		{"billion laughs", func() io.Reader { return strings.NewReader(bomb) }, nil, "soap_dtd_forbidden"},
		{"external entity", func() io.Reader { return strings.NewReader(xxe) }, nil, "soap_dtd_forbidden"},
		{"1 GB envelope", gigabyte, auth, "soap_limit_exceeded"},
		{"100,000 nested elements", func() io.Reader { return strings.NewReader(deep) }, nil, "soap_limit_exceeded"},
		{"truncated envelope", func() io.Reader {
			return strings.NewReader(envelope11("", `<ListSeals xmlns="urn:sealgate:v1">`)[:150])
		}, nil, "soap_malformed"},
		{"not XML", func() io.Reader { return strings.NewReader("%PDF-1.7\n") }, nil, "soap_malformed"},
		{"truncated MTOM package", func() io.Reader { return strings.NewReader(mtomHead + "order 9 · 1 unit") }, map[string]string{"Content-Type": mtomType, "Authorization": auth["Authorization"]}, "mtom_malformed"},
		{"MTOM without its attachment", func() io.Reader {
			return strings.NewReader(strings.TrimSuffix(mtomHead, "\r\n--b\r\nContent-ID: <doc>\r\n\r\n") + "\r\n--b--\r\n")
		},
			map[string]string{"Content-Type": mtomType, "Authorization": auth["Authorization"]}, "mtom_malformed"},
		{"too many MTOM parts", func() io.Reader {
			parts := mtomHead + "x"
			for i := range 1000 {
				parts += fmt.Sprintf("\r\n--b\r\nContent-ID: <p%d>\r\n\r\nx", i)
			}
			return strings.NewReader(parts + "\r\n--b--\r\n")
		},
			map[string]string{"Content-Type": mtomType, "Authorization": auth["Authorization"]}, "soap_limit_exceeded"},
		{"SOAP 1.2 envelope as text/xml", func() io.Reader {
			return strings.NewReader(`<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><ListSeals xmlns="urn:sealgate:v1"/></e:Body></e:Envelope>`)
		}, nil, "soap_version_mismatch"},
		{"unknown operation", func() io.Reader { return strings.NewReader(envelope11("", `<DropTables xmlns="urn:sealgate:v1"/>`)) }, nil, "soap_operation_unknown"},
		{"unknown mustUnderstand header", func() io.Reader {
			return strings.NewReader(envelope11(`<x:Routing xmlns:x="urn:other" s:mustUnderstand="1"/>`, `<ListSeals xmlns="urn:sealgate:v1"/>`))
		}, nil, "soap_must_understand"},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		resp, b, took := n.soapPost(t, "", tc.body(), tc.header)
		runtime.ReadMemStats(&after)
		_, code := faultOf(t, b)
		if code != tc.code || resp.StatusCode != 500 {
			t.Errorf("%s: %s %s, want %s\n%.300s", tc.name, resp.Status, code, tc.code, b)
		}
		if took > 2*time.Second {
			t.Errorf("%s: answered after %s", tc.name, took)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
			t.Errorf("%s: %d MiB allocated", tc.name, grew>>20)
		}
	}
	if resp, b, _ := n.soapPost(t, "urn:sealgate:v1/ListSeals", strings.NewReader(envelope11("", `<ListSeals xmlns="urn:sealgate:v1"/>`)), auth); resp.StatusCode != 200 || !strings.Contains(string(b), "<seal>acme</seal>") {
		t.Errorf("after the hostile inputs: %s %s", resp.Status, b)
	}
	noSpool(t, n.Dir)
}

func basicAuth(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// TestSOAPJAXWS generates a Java JAX-WS client from /soap?wsdl with
// wsimport, compiles and runs it: SealDocument over SOAP 1.1 and 1.2 with
// MTOM and a UsernameToken from a SOAP handler; the results verify.
func TestSOAPJAXWS(t *testing.T) {
	for _, tool := range []string{"wsimport", "javac", "java"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install jaxws default-jdk-headless)", tool)
		}
	}
	n := newNode(t)
	dir := t.TempDir()
	classes, sources := dir+"/classes", dir+"/src"
	for _, d := range []string{classes, sources} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("wsimport", "-extension", "-keep", "-p", "sealgate.client", "-d", classes, "-s", sources, n.URL+"/soap?wsdl").CombinedOutput(); err != nil {
		t.Fatalf("wsimport: %v\n%s", err, out)
	}
	jars, err := filepath.Glob("/usr/share/java/*.jar")
	if err != nil {
		t.Fatal(err)
	}
	cp := []string{classes}
	for _, j := range jars {
		if regexp.MustCompile(`(?i)jaxws|jaxb|saaj|stax-ex|streambuffer|policy|gmbal|mimepull|ha-api|management-api|activation|istack|FastInfoset|javax.annotation|jws`).MatchString(filepath.Base(j)) {
			cp = append(cp, j)
		}
	}
	classPath := strings.Join(cp, ":")
	if out, err := exec.Command("javac", "-cp", classPath, "-d", classes, "testdata/jaxws/Main.java").CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	invoice := writeTemp(t, "invoice.pdf", pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 2026-0101"}}}))
	out, err := exec.Command("java", "-cp", classPath, "Main", n.URL, n.ERPID, n.ERPSecret, invoice, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	for _, want := range []string{"soap11 sealed=B-T", "soap12 sealed=B-T", "valid=true kind=pdf seals=acme", "fault=unauthenticated"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the Java client's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(string(out), "valid=true") != 2 {
		t.Errorf("not both seals verified:\n%s", out)
	}
	for _, f := range []string{"soap11.pdf", "soap12.pdf"} {
		if out, err := run(t, "pdfsig", "-nocert", filepath.Join(dir, f)); err != nil || !strings.Contains(out, "Signature is Valid.") || !strings.Contains(out, "Total document signed") {
			t.Errorf("pdfsig %s: %v\n%s", f, err, out)
		}
	}
}

// TestSOAPCredentials: besides UsernameTokens, SOAP takes what REST takes
// — HTTP Basic, an OAuth bearer token, a TLS client certificate — for the
// same principals; and failed UsernameTokens count toward the same lockout.
func TestSOAPCredentials(t *testing.T) {
	n := newNode(t)
	tn := newTLSNode(t, "request")
	cert := clientCert(t, tn.CA, "erp-soap", 24*time.Hour)
	if err := tn.Access.AddProcessCert(context.Background(), tn.ERPID, access.ProcessCert{Fingerprint: fingerprint(cert)}, "test"); err != nil {
		t.Fatal(err)
	}
	list := envelope11("", `<ListSeals xmlns="urn:sealgate:v1"/>`)
	call := func(c *http.Client, base string, header map[string]string, body string) (int, []byte) {
		resp, b, _ := soapCall(t, c, base, header, strings.NewReader(body))
		return resp.StatusCode, b
	}
	plain := http.DefaultClient
	for name, tc := range map[string]struct {
		c      *http.Client
		base   string
		header map[string]string
	}{
		"HTTP Basic":         {plain, n.URL, map[string]string{"Authorization": basicAuth(n.ERPID, n.ERPSecret)}},
		"bearer token":       {plain, n.URL, map[string]string{"Authorization": "Bearer " + oauthToken(t, n.URL, n.ERPID, n.ERPSecret)}},
		"client certificate": {tn.client(cert), tn.URL, nil},
	} {
		if status, b := call(tc.c, tc.base, tc.header, list); status != 200 || !strings.Contains(string(b), "<seal>acme</seal>") {
			t.Errorf("%s: %d %s", name, status, b)
		}
	}
	if _, b := call(plain, n.URL, nil, list); !strings.Contains(string(b), "<code>unauthenticated</code>") {
		t.Errorf("anonymous: %s, want unauthenticated", b)
	}
	both := envelope11(usernameToken(n.ERPID, n.ERPSecret, nil, "", false), `<ListSeals xmlns="urn:sealgate:v1"/>`)
	if _, b := call(plain, n.URL, map[string]string{"Authorization": basicAuth(n.ERPID, n.ERPSecret)}, both); !strings.Contains(string(b), "<code>unauthenticated</code>") {
		t.Errorf("UsernameToken and Authorization together: %s", b)
	}
	// SOAP 1.2: the action rides in the Content-Type; a caller's fault is a Sender fault, HTTP 400.
	env12 := `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><ListSeals xmlns="urn:sealgate:v1"/></e:Body></e:Envelope>`
	soap12 := func(action string) map[string]string {
		return map[string]string{"Content-Type": `application/soap+xml; charset=utf-8; action="` + action + `"`, "Authorization": basicAuth(n.ERPID, n.ERPSecret)}
	}
	if status, b := call(plain, n.URL, soap12("urn:sealgate:v1/ListSeals"), env12); status != 200 || !strings.Contains(string(b), "<seal>acme</seal>") || !strings.Contains(string(b), "http://www.w3.org/2003/05/soap-envelope") {
		t.Errorf("SOAP 1.2: %d %s", status, b)
	}
	if status, b := call(plain, n.URL, soap12("urn:sealgate:v1/SealDocument"), env12); status != 400 {
		t.Errorf("SOAP 1.2 with another action: %d %s", status, b)
	} else if sc, code := faultOf(t, b); sc != "soap:Sender" || code != "soap_operation_unknown" {
		t.Errorf("SOAP 1.2 with another action: %s %s", sc, code)
	}
	// Five wrong secrets lock the client id from this address, for SOAP and REST alike.
	var codes []string
	for range 6 {
		_, b := call(plain, n.URL, nil, envelope11(usernameToken(n.ERPID, "sgp_wrong", nil, "", false), `<ListSeals xmlns="urn:sealgate:v1"/>`))
		_, code := faultOf(t, b)
		codes = append(codes, code)
	}
	if codes[0] != "unauthenticated" || codes[5] != "account_locked" {
		t.Errorf("wrong UsernameTokens answered %v, want unauthenticated, then account_locked", codes)
	}
	if resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "text/plain", strings.NewReader("x")); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("REST after the lockout: %s %s", resp.Status, b)
	}
}

// TestSOAPBatch: a SealBatch over MTOM (one attachment per document), its
// status and results for its owner only, and the refusals of the batch
// operations with their codes.
func TestSOAPBatch(t *testing.T) {
	n := newNode(t)
	auth := map[string]string{"Authorization": basicAuth(n.ERPID, n.ERPSecret)}
	order := []byte("order 10 · 3 units\n")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.SetBoundary("sealgate-test-boundary")
	root, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {`application/xop+xml; type="text/xml"`}, "Content-Id": {"<root>"}})
	io.WriteString(root, envelope11("", `<SealBatch xmlns="urn:sealgate:v1"><format>cades</format><level>B-B</level>`+
		`<document><name>one.txt</name><content>`+strings.Replace(xopInclude, "cid:doc", "cid:one", 1)+`</content></document>`+
		`<document><name>two.txt</name><content>`+strings.Replace(xopInclude, "cid:doc", "cid:two", 1)+`</content></document></SealBatch>`))
	for _, id := range []string{"one", "two"} {
		part, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Id": {"<" + id + ">"}})
		part.Write(order)
	}
	mw.Close()
	resp, b, _ := n.soapPost(t, "urn:sealgate:v1/SealBatch", &body, map[string]string{"Content-Type": mtomType, "Authorization": auth["Authorization"]})
	var submitted struct {
		ID    string `xml:"Body>SealBatchResponse>job>id"`
		State string `xml:"Body>SealBatchResponse>job>state"`
		Docs  []struct {
			Name string `xml:"name"`
			Size int64  `xml:"size"`
		} `xml:"Body>SealBatchResponse>job>document"`
	}
	if err := xml.Unmarshal(mtomRoot(t, resp, b), &submitted); err != nil || resp.StatusCode != 200 || submitted.State != "queued" || len(submitted.Docs) != 2 ||
		submitted.Docs[1].Name != "two.txt" || submitted.Docs[1].Size != int64(len(order)) {
		t.Fatalf("SealBatch: %s %v %+v\n%s", resp.Status, err, submitted, b)
	}
	getStatus := envelope11("", `<GetJobStatus xmlns="urn:sealgate:v1"><jobId>`+submitted.ID+`</jobId></GetJobStatus>`)
	getFirst := envelope11("", `<GetSealedDocument xmlns="urn:sealgate:v1"><jobId>`+submitted.ID+`</jobId><n>1</n></GetSealedDocument>`)
	if _, b, _ := n.soapPost(t, "", strings.NewReader(getFirst), auth); !strings.Contains(string(b), "<code>job_pending</code>") {
		t.Errorf("a result before the job ran: %s", b)
	}
	intruder := map[string]string{"Authorization": basicAuth(n.IntruderID, n.IntruderSecret)}
	if _, b, _ := n.soapPost(t, "", strings.NewReader(getStatus), intruder); !strings.Contains(string(b), "<code>job_unknown</code>") {
		t.Errorf("another principal's job: %s", b)
	}
	runJobs(t, n.Server)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, b, _ := n.soapPost(t, "", strings.NewReader(getStatus), auth)
		if strings.Contains(string(b), "<state>done</state><seal>") || time.Now().After(deadline) {
			if !strings.Contains(string(b), "<done>2</done>") {
				t.Fatalf("the job did not finish: %s", b)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, b, _ = n.soapPost(t, "", strings.NewReader(getFirst), auth)
	var got struct {
		Name string `xml:"Body>GetSealedDocumentResponse>name"`
		P7S  string `xml:"Body>GetSealedDocumentResponse>sealedDocument"`
	}
	if err := xml.Unmarshal(b, &got); err != nil || got.Name != "one.txt" {
		t.Fatalf("GetSealedDocument: %s %v %s", resp.Status, err, b)
	}
	p7s, _ := base64.StdEncoding.DecodeString(got.P7S)
	if out, err := run(t, "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", writeTemp(t, "one.p7s", p7s), "-content", writeTemp(t, "one.txt", order), "-CAfile", n.CAFile, "-purpose", "any", "-out", os.DevNull); err != nil {
		t.Errorf("openssl cms -verify: %v\n%s", err, out)
	}
	for name, tc := range map[string]struct{ body, code string }{
		"no documents":      {`<SealBatch xmlns="urn:sealgate:v1"><format>cades</format></SealBatch>`, "job_empty"},
		"a name for all":    {`<SealBatch xmlns="urn:sealgate:v1"><name>x</name><document><content>eA==</content></document></SealBatch>`, "bad_request"},
		"a bad option":      {`<SealBatch xmlns="urn:sealgate:v1"><level>B-Z</level><document><content>eA==</content></document></SealBatch>`, "level_unsupported"},
		"no such document":  {`<GetSealedDocument xmlns="urn:sealgate:v1"><jobId>` + submitted.ID + `</jobId><n>3</n></GetSealedDocument>`, "job_document_unknown"},
		"no such job":       {`<GetJobStatus xmlns="urn:sealgate:v1"><jobId>0000</jobId></GetJobStatus>`, "job_unknown"},
		"not base64 inline": {`<SealBatch xmlns="urn:sealgate:v1"><document><content>!!</content></document></SealBatch>`, "bad_request"},
	} {
		if _, b, _ := n.soapPost(t, "", strings.NewReader(envelope11("", tc.body)), auth); !strings.Contains(string(b), "<code>"+tc.code+"</code>") {
			t.Errorf("%s: %s, want %s", name, b, tc.code)
		}
	}
}

// mtomRoot is the envelope of an MTOM answer.
func mtomRoot(t *testing.T, resp *http.Response, b []byte) []byte {
	t.Helper()
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		t.Fatalf("not an MTOM answer: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	part, err := multipart.NewReader(bytes.NewReader(b), params["boundary"]).NextPart()
	if err != nil {
		t.Fatal(err)
	}
	root, err := io.ReadAll(part)
	if err != nil {
		t.Fatal(err)
	}
	return root
}
