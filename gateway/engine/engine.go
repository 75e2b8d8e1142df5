// Package engine is the node's one HTTP engine: a gin.Engine with
// sealgate's own middleware — recovery that answers problem+json, a request
// id, and a structured access log through slog — on which every transport
// (REST, the admin API, SOAP, the portal) mounts its routes. Handlers stay
// plain net/http: Std mounts one and hands it gin's path parameters as the
// request's path values.
package engine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
)

// RequestIDHeader carries a request's id, in the request (when a proxy set
// a usable one) and in every response.
const RequestIDHeader = "X-Request-Id"

// CodeBadRequest answers requests for a path or method the node does not
// serve, like any other malformed request.
const CodeBadRequest fault.Code = "bad_request"

func init() {
	// Gin's debug mode prints every route and a warning at start; sealgate
	// logs through slog only.
	gin.SetMode(gin.ReleaseMode)
}

// New returns an engine with sealgate's middleware, logging to log.
// Unknown paths answer 404 and known paths with another method 405, both
// as problem+json; paths are matched as they are (no redirects).
func New(log *slog.Logger) *gin.Engine {
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.Use(requestID, accessLog(log), recovery(log))
	e.NoRoute(func(c *gin.Context) {
		problem.Write(c.Writer, c.Request, log, fault.New(fault.NotFound, CodeBadRequest, "no resource %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		problem.Write(c.Writer, c.Request, log, fault.New(fault.MethodNotAllowed, CodeBadRequest, "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	return e
}

// HeadAsGet serves HEAD requests with the GET routes of h, as net/http's
// own mux does (gin routes HEAD separately): net/http sends the headers and
// drops the body.
func HeadAsGet(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			r = r.Clone(r.Context())
			r.Method = http.MethodGet
		}
		h.ServeHTTP(w, r)
	})
}

// Std mounts a net/http handler: gin's path parameters become the
// request's path values (http.Request.PathValue).
func Std(h http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			c.Request.SetPathValue(p.Key, p.Value)
		}
		h.ServeHTTP(c.Writer, c.Request)
	}
}

// requestID keeps a usable id the client or proxy sent, else makes one,
// and names it in the response.
func requestID(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !usableID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(RequestIDHeader, id)
	c.Writer.Header().Set(RequestIDHeader, id)
	c.Next()
}

// usableID accepts up to 64 letters, digits, '-', '_' and '.': an id from
// outside ends up in log lines.
func usableID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// accessLog logs one line per request: method, path (never the query,
// which may hold a reason or a misplaced secret), status, bytes, duration,
// client address and request id.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		log.LogAttrs(c.Request.Context(), level, "http request",
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.Duration("duration", time.Since(start)),
			slog.String("client", httpauth.RemoteAddr(c.Request).String()),
			slog.String("requestId", c.GetString(RequestIDHeader)))
	}
}

// recovery turns a panic in a handler into a logged internal error and,
// while nothing was written yet, a 500 problem+json answer. An aborted
// handler (http.ErrAbortHandler) ends the connection as net/http does.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p)
			}
			log.Error("handler panicked", "method", c.Request.Method, "path", c.Request.URL.Path,
				"requestId", c.GetString(RequestIDHeader), "panic", p, "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				problem.Write(c.Writer, c.Request, log, fault.New(fault.Internal, fault.CodeInternal, "handler panicked"))
			}
			c.Abort()
		}()
		c.Next()
	}
}
