package engine_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/gateway/engine"
)

// The engine answers what no handler answers as problem+json, survives a
// panicking handler, names every request by an id, and logs each request
// without its query.
func TestEngine(t *testing.T) {
	var logs bytes.Buffer
	e := engine.New(slog.New(slog.NewJSONHandler(&logs, nil)))
	e.GET("/items/:id", engine.Std(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "item "+r.PathValue("id"))
	})))
	e.GET("/panic", engine.Std(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	srv := httptest.NewServer(engine.HeadAsGet(e))
	defer srv.Close()

	tests := []struct {
		name, method, path, requestID string
		status                        int
		body, code                    string
	}{
		{"path value", "GET", "/items/42?reason=secret-reason", "", 200, "item 42", ""},
		{"unknown path", "GET", "/nothing", "", 404, "", "bad_request"},
		{"wrong method", "DELETE", "/items/42", "", 405, "", "bad_request"},
		{"HEAD as GET", "HEAD", "/items/42", "", 200, "", ""},
		{"trailing slash is another path", "GET", "/items/42/", "", 404, "", "bad_request"},
		{"panic", "GET", "/panic", "", 500, "", "internal"},
		{"request id kept", "GET", "/items/7", "proxy-id.1", 200, "item 7", ""},
		{"request id replaced", "GET", "/items/7", "bad id with spaces", 200, "item 7", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.requestID != "" {
				req.Header.Set(engine.RequestIDHeader, tc.requestID)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			id := resp.Header.Get(engine.RequestIDHeader)
			switch {
			case tc.requestID == "proxy-id.1" && id != tc.requestID:
				t.Errorf("request id %q, want the one sent", id)
			case id == "" || strings.ContainsAny(id, " \n"):
				t.Errorf("request id %q", id)
			}
			if tc.code == "" {
				if string(body) != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
				return
			}
			var p struct{ Code string }
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Code != tc.code {
				t.Errorf("%s %s, want problem+json with code %s", ct, body, tc.code)
			}
		})
	}
	if strings.Contains(logs.String(), "secret-reason") {
		t.Error("the access log holds a query")
	}
	for _, want := range []string{`"msg":"http request"`, `"path":"/items/42"`, `"status":405`, `"msg":"handler panicked"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}
