package server

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/seal"
)

// HTTPSettings is the "http" section of sealgate.yaml: how long a client
// may take over its request. There is no overall write timeout, since
// sealed documents of gigabytes take long to download.
type HTTPSettings struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 2m.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// BodyTimeout is the most a request body may take to arrive in full.
	// Default 15m (2 GiB at 2.4 MB/s).
	BodyTimeout time.Duration `yaml:"bodyTimeout"`
	// MinBodyRate is the least average rate, in bytes per second, at which
	// a body must arrive once BodyGrace has passed. Default 16384.
	MinBodyRate int64 `yaml:"minBodyRate"`
	// BodyGrace is the time a body gets before MinBodyRate applies. Default 10s.
	BodyGrace time.Duration `yaml:"bodyGrace"`
}

// CodeBodyTimeout answers a request whose body arrived too slowly (408).
const CodeBodyTimeout fault.Code = "body_timeout"

// loadHTTP reads the http section with its defaults.
func loadHTTP(cfg *config.File) (HTTPSettings, error) {
	var h HTTPSettings
	if _, err := cfg.Section("http", &h); err != nil {
		return h, err
	}
	for name, d := range map[string]time.Duration{"readHeaderTimeout": h.ReadHeaderTimeout, "idleTimeout": h.IdleTimeout,
		"bodyTimeout": h.BodyTimeout, "bodyGrace": h.BodyGrace} {
		if d < 0 {
			return h, fmt.Errorf("config section http: %s is negative (%s)", name, d)
		}
	}
	if h.MinBodyRate < 0 {
		return h, fmt.Errorf("config section http: minBodyRate is negative (%d)", h.MinBodyRate)
	}
	h.ReadHeaderTimeout = cmp.Or(h.ReadHeaderTimeout, 10*time.Second)
	h.IdleTimeout = cmp.Or(h.IdleTimeout, 2*time.Minute)
	h.BodyTimeout = cmp.Or(h.BodyTimeout, 15*time.Minute)
	h.MinBodyRate = cmp.Or(h.MinBodyRate, 16<<10)
	h.BodyGrace = cmp.Or(h.BodyGrace, 10*time.Second)
	return h, nil
}

// guardBodies cuts off request bodies that arrive slower than the settings
// allow: the connection's read deadline follows the body, so a blocked read
// ends when the sender falls behind, the handler fails as on any broken
// input (removing what it spooled), and the client gets 408 body_timeout
// whatever the handler would have answered.
func (h HTTPSettings) guardBodies(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		g := &bodyGuard{body: r.Body, rc: http.NewResponseController(w), start: time.Now(), s: h}
		r.Body = g
		gw := &guardedWriter{ResponseWriter: w, g: g, r: r, log: log}
		next.ServeHTTP(gw, r)
		if gw.state == unwritten && g.timedOut.Load() {
			gw.WriteHeader(http.StatusRequestTimeout)
		}
	})
}

// bodyGuard is a request body under a deadline: the body must be complete
// by start+BodyTimeout, and byte n must arrive by start+BodyGrace+n/MinBodyRate.
type bodyGuard struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	s     HTTPSettings
	n     int64
	done  bool
	// err is set before timedOut, which publishes it to the writer.
	err      error
	timedOut atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	if g.done {
		return g.body.Read(p)
	}
	deadline := g.start.Add(g.s.BodyTimeout)
	if byRate := g.start.Add(g.s.BodyGrace + time.Duration(float64(g.n+1)/float64(g.s.MinBodyRate)*float64(time.Second))); byRate.Before(deadline) {
		deadline = byRate
	}
	// Without deadline support (not a network connection) the body cannot
	// be cut off; it is read as it comes.
	_ = g.rc.SetReadDeadline(deadline)
	k, err := g.body.Read(p)
	g.n += int64(k)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		g.err = fault.New(fault.Timeout, CodeBodyTimeout,
			"the request body arrived too slowly (%d bytes in %s; at least %d bytes/s after %s, and at most %s in all)",
			g.n, time.Since(g.start).Round(time.Second), g.s.MinBodyRate, g.s.BodyGrace, g.s.BodyTimeout)
		g.timedOut.Store(true)
		return k, g.err
	case err != nil:
		// At the end of the body the deadline must go: the server reads
		// on in the background to notice a client leaving, and a deadline
		// passing there would cancel the request while it is still at work.
		g.done = true
		_ = g.rc.SetReadDeadline(time.Time{})
	}
	return k, err
}

func (g *bodyGuard) Close() error { return g.body.Close() }

// Response states of a guardedWriter.
const (
	unwritten = iota
	passed    // the handler's response goes out
	replaced  // the body timed out: 408 went out instead
)

// guardedWriter sends 408 body_timeout in place of the handler's response
// once the request's body timed out.
type guardedWriter struct {
	http.ResponseWriter
	g     *bodyGuard
	r     *http.Request
	log   *slog.Logger
	state int
}

func (w *guardedWriter) WriteHeader(code int) {
	switch {
	case w.state == unwritten && w.g.timedOut.Load():
		w.state = replaced
		h := w.ResponseWriter.Header()
		for k := range h {
			delete(h, k)
		}
		h.Set("Connection", "close")
		problem.Write(w.ResponseWriter, w.r, w.log, w.g.err)
		return
	case w.state == unwritten:
		w.state = passed
	case w.state == replaced:
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardedWriter) Write(p []byte) (int, error) {
	if w.state == unwritten {
		w.WriteHeader(http.StatusOK)
	}
	if w.state == replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps the connection's own ReadFrom (sendfile for a sealed
// PDF sent from its temporary file) in use through the wrapper.
func (w *guardedWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.state == unwritten {
		w.WriteHeader(http.StatusOK)
	}
	if w.state == replaced {
		return io.Copy(io.Discard, r)
	}
	return io.Copy(w.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *guardedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// loadVerify reads the verify section: the bounds of public verification.
func loadVerify(cfg *config.File) (seal.VerifyLimits, error) {
	var l seal.VerifyLimits
	if _, err := cfg.Section("verify", &l); err != nil {
		return l, err
	}
	if l.MaxDocumentSize < 0 || l.Concurrency < 0 || l.Queue < 0 || l.MaxWait < 0 || l.PerSource.Rate < 0 || l.PerSource.Burst < 0 {
		return l, errors.New("config section verify: no value may be negative")
	}
	return l.WithDefaults(), nil
}
