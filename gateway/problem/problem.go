// Package problem renders sealgate errors as RFC 7807 problem details
// (application/problem+json) with the stable code, for every HTTP transport:
// one table maps an error's kind to a status, so a code means the same status
// everywhere.
package problem

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// Problem is an RFC 7807 problem detail with sealgate's stable code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

// StatusOf maps an error's kind to an HTTP status.
func StatusOf(err error) int {
	e := fault.As(err)
	if e == nil {
		return http.StatusInternalServerError
	}
	switch e.Kind {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Unauthenticated:
		return http.StatusUnauthorized
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.TooMany:
		return http.StatusTooManyRequests
	case fault.Timeout:
		return http.StatusRequestTimeout
	case fault.MethodNotAllowed:
		return http.StatusMethodNotAllowed
	case fault.UnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	}
	return http.StatusInternalServerError
}

// Of turns an error into the problem shown to the caller. Internal
// errors show no details: they go to the log only.
func Of(err error) Problem {
	status := StatusOf(err)
	p := Problem{Status: status, Title: http.StatusText(status), Code: string(fault.CodeOf(err))}
	if e := fault.As(err); e != nil && e.Kind != fault.Internal {
		p.Detail = e.Msg
	} else {
		p.Detail = "sealgate could not complete the request; the server log has the details"
	}
	p.Type = "https://sealgate.invalid/problems/" + p.Code
	return p
}

// Write writes err as application/problem+json and logs internal errors.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := Of(err)
	if p.Status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", p.Code, "err", err)
	}
	if p.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="sealgate", Bearer realm="sealgate"`)
	}
	SetRetryAfter(w.Header(), err)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// SetRetryAfter tells a caller when to try again (RFC 9110 §10.2.3): in
// whole seconds, rounded up so a client that waits that long is let in.
// Every 429 carries it; other refusals when err says how long to wait.
func SetRetryAfter(h http.Header, err error) {
	d := fault.RetryAfterOf(err)
	if d <= 0 && StatusOf(err) != http.StatusTooManyRequests {
		return
	}
	secs := int64((d + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
}

// WriteJSON writes v as indented JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
