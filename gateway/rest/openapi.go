package rest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strconv"
)

// openAPI is the OpenAPI 3.1 document of every route the node serves
// under /api/v1, and of /healthz, /readyz and /metrics. It is kept by hand
// beside the handlers; the server's tests validate real requests and
// answers against it and fail on a route it does not describe.
//
//go:embed openapi.json
var openAPI []byte

// openAPIETag names this build's document, so caches revalidate cheaply.
var openAPIETag = func() string {
	sum := sha256.Sum256(openAPI)
	return strconv.Quote(hex.EncodeToString(sum[:16]))
}()

// getOpenAPI serves the document; it is public and changes only with the
// binary, so it may be cached for an hour.
func getOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=3600")
	h.Set("ETag", openAPIETag)
	if r.Header.Get("If-None-Match") == openAPIETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPI)))
	_, _ = w.Write(openAPI)
}
