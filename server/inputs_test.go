package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/internal/pdftest"
)

// part is one part of a multipart body a test sends: a field, or with file
// set, a file part.
type part struct{ name, file, value string }

func multipartBody(t *testing.T, parts ...part) (string, io.Reader) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.file != "" {
			w, err = mw.CreateFormFile(p.name, p.file)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.value)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &b
}

// problemDetail is an RFC 7807 answer as a client reads it.
type problemDetail struct {
	Code   string `json:"code"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// readProblem reads an answer that must be problem+json whose status
// member is the HTTP status.
func readProblem(t *testing.T, resp *http.Response, body []byte) problemDetail {
	t.Helper()
	var p problemDetail
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("status %d, body is not problem+json: %.200q", resp.StatusCode, body)
	}
	if p.Status != resp.StatusCode {
		t.Errorf("problem status %d in an answer of status %d", p.Status, resp.StatusCode)
	}
	return p
}

// sealEvents counts the node's seal events by outcome.
func (n *node) sealEvents(t *testing.T) (sealed, failed int) {
	t.Helper()
	if err := n.DB.Read().QueryRow(`SELECT
		COALESCE(SUM(CASE WHEN outcome = 'sealed' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END), 0) FROM seal_events`).Scan(&sealed, &failed); err != nil {
		t.Fatal(err)
	}
	return sealed, failed
}

// TestSealInputsRefused sends option values and request shapes that must
// never be sealed with a silent default: each is refused with status 400,
// the code bad_request and a message naming what was wrong, and leaves no
// evidence and no sealed event behind. Options that are wrong on their face
// are refused before the request is recorded at all; a part after the
// document is found only when the streamed document ends, so that refusal
// is recorded as a failed seal event with its code.
func TestSealInputsRefused(t *testing.T) {
	n := newNode(t)
	pdf := string(pdftest.Bytes(pdftest.Spec{}))
	rect := "&page=1&x=40&y=40&width=200&height=60"
	long := strings.Repeat("r", 1025)
	query := func(q string) func(*testing.T) (string, string, io.Reader) {
		return func(*testing.T) (string, string, io.Reader) { return q, "application/pdf", strings.NewReader(pdf) }
	}
	form := func(q string, parts ...part) func(*testing.T) (string, string, io.Reader) {
		return func(t *testing.T) (string, string, io.Reader) {
			ct, body := multipartBody(t, parts...)
			return q, ct, body
		}
	}
	doc := part{name: "document", file: "a.pdf", value: pdf}
	cases := []struct {
		name    string
		request func(*testing.T) (query, contentType string, body io.Reader)
		// detail is a part of the message that names the wrong input.
		detail string
		// recorded: the refusal comes while reading the document, after
		// the request was authorized, and is recorded as a failed event.
		recorded bool
	}{
		{"x NaN", query("format=pades&page=1&x=NaN&y=40&width=200&height=60"), `x: NaN is not a finite number`, false},
		{"x nan", query("page=1&x=nan&y=40&width=200&height=60"), `x: NaN is not a finite number`, false},
		{"y NAN", query("page=1&x=40&y=NAN&width=200&height=60"), `y: NaN is not a finite number`, false},
		{"width Inf", query("page=1&x=40&y=40&width=Inf&height=60"), `width: +Inf is not a finite number`, false},
		{"height -Infinity", query("page=1&x=40&y=40&width=200&height=-Infinity"), `height: -Inf is not a finite number`, false},
		{"height beyond float64", query("page=1&x=40&y=40&width=200&height=1e400"), `height: +Inf is not a finite number`, false},
		{"negative width", query("page=1&x=40&y=40&width=-200&height=60"), `width: -200 is not between 0 and 14400`, false},
		{"x beyond a page", query("page=1&x=20000&y=40&width=200&height=60"), `x: 20000 is not between 0 and 14400`, false},
		{"x not a number", query("page=1&x=left&y=40&width=200&height=60"), `x: "left" is not a number`, false},
		{"page zero", query("page=0&x=40&y=40&width=200&height=60"), `page: "0" is not a page number`, false},
		{"unknown option colour", query("colour=red"), `unknown option "colour"`, false},
		{"typo levle", query("levle=B-LTA"), `unknown option "levle"`, false},
		{"option twice", query("reason=a&reason=b"), `option "reason" is given 2 times`, false},
		{"page without a rectangle", query("page=1"), `page 1 needs the stamp's rectangle`, false},
		{"part of a rectangle", query("page=1&x=40&y=40"), `needs all of x, y, width and height; 2 of them`, false},
		{"rectangle without a page", query("x=40&y=40&width=200&height=60"), `the stamp's rectangle needs page`, false},
		{"rectangle without an area", query("page=1&x=40&y=40&width=0&height=60"), `page 1 needs the stamp's rectangle with an area`, false},
		{"page and field", query("field=Approval" + rect), `page and field exclude each other`, false},
		{"reason too long in the query", query("reason=" + long + rect), `reason: 1025 bytes is longer than the limit of 1024 bytes`, false},
		{"location too long in the query", query("location=" + long), `location: 1025 bytes is longer than the limit of 1024 bytes`, false},
		{"name too long in the query", query("format=cades&name=" + long), `name: 1025 bytes is longer`, false},
		{"reason with NUL", query("reason=a%00b" + rect), `reason: control character U+0000 at byte 1`, false},
		{"location with ESC", query("location=%1B[31mred"), `location: control character U+001B at byte 0`, false},
		{"name with a line break", query("format=cades&name=a%0Ab.pdf"), `name: control character U+000A at byte 1`, false},
		{"reason not UTF-8", query("reason=caf%E9" + rect), `reason: not valid UTF-8`, false},
		{"reason too long in multipart", form(rect[1:], part{name: "reason", value: long}, doc), `reason: longer than the limit of 1 KiB`, false},
		{"reason with ESC in multipart", form(rect[1:], part{name: "reason", value: "\x1b[2J"}, doc), `reason: control character U+001B`, false},
		{"x NaN in multipart", form("", part{name: "page", value: "1"}, part{name: "x", value: "NaN"}, part{name: "y", value: "1"}, part{name: "width", value: "200"}, part{name: "height", value: "60"}, doc), `x: NaN is not a finite number`, false},
		{"unknown multipart field", form("", part{name: "colour", value: "red"}, doc), `part "colour" is not one this request takes`, false},
		{"part named file", form("", part{name: "file", file: "a.pdf", value: pdf}), `part "file" is not one this request takes`, false},
		{"multipart field twice", form("", part{name: "reason", value: "a"}, part{name: "reason", value: "b"}, doc), `field "reason" is given twice`, false},
		{"option in query and multipart", form("reason=a", part{name: "reason", value: "b"}, doc), `option "reason" is given 2 times`, false},
		{"field after the document", form(rect[1:], doc, part{name: "reason", value: "Invoice"}), `part "reason" comes after the document: fields must come before`, true},
		{"second document", form("", doc, doc), `second part "document"`, true},
		{"field after the document, cades", form("format=cades", doc, part{name: "reason", value: "Invoice"}), `part "reason" comes after the document`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, failedBefore := n.sealEvents(t)
			q, ct, body := c.request(t)
			resp, b := n.post(t, "/api/v1/seals?"+q, n.ERPID, n.ERPSecret, ct, body)
			p := readProblem(t, resp, b)
			if p.Status != http.StatusBadRequest || p.Code != "bad_request" {
				t.Errorf("got %d %q (%s), want 400 bad_request", p.Status, p.Code, p.Detail)
			}
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("detail %q does not say %q", p.Detail, c.detail)
			}
			sealed, failed := n.sealEvents(t)
			if sealed != 0 || n.Evidence.Size() != 0 {
				t.Fatalf("a refused request left %d sealed events and %d evidence leaves", sealed, n.Evidence.Size())
			}
			if want := failedBefore + map[bool]int{true: 1}[c.recorded]; failed != want {
				t.Errorf("%d failed seal events after the request, want %d", failed, want)
			}
		})
	}
	// The refusals are not a side effect of a broken node: the same request,
	// well formed, seals.
	n.sealPDF(t, url.Values{"reason": {"Invoice"}, "location": {"Köln"}}.Encode()+rect, []byte(pdf))
}
