// Package rest is sealgate's REST facade under /api/v1, mounted on the
// node's gin engine. Like every transport it is a thin adapter: it
// authenticates the caller into an access.Principal, turns the request into
// a seal.Request (or a verification or evidence lookup), and renders the
// result, or the error as problem+json. No business rule lives here.
package rest

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/seal"
)

// Authenticator turns a request's credentials (Basic, Bearer, TLS client
// certificate) into a principal; gateway/httpauth implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (access.Principal, error)
}

// Seals lists the seals a principal may use; access.Service implements it.
type Seals interface {
	PermittedSeals(ctx context.Context, p access.Principal) ([]string, error)
}

// REST is the /api/v1 facade.
type REST struct {
	Seal     *seal.Service
	Jobs     *seal.Jobs
	Verifier *seal.Verifier
	Evidence *evidence.Log
	Access   Seals
	Auth     Authenticator
	Log      *slog.Logger
}

// CodeBadRequest is returned for malformed HTTP requests (bad query values,
// broken multipart): the same code as malformed seal options.
const CodeBadRequest = seal.CodeBadRequest

// sealFields are the multipart fields POST /seals takes: the seal options,
// each read up to the length any text option may have.
var sealFields = func() map[string]int {
	m := map[string]int{}
	for _, name := range seal.OptionNames() {
		m[name] = seal.MaxTextLength
	}
	return m
}()

// Register adds the REST routes to r.
func (a *REST) Register(r gin.IRouter) {
	r.POST("/api/v1/seals", engine.Std(http.HandlerFunc(a.postSeal)))
	r.GET("/api/v1/seals", engine.Std(http.HandlerFunc(a.listSeals)))
	r.POST("/api/v1/verifications", engine.Std(http.HandlerFunc(a.postVerification)))
	r.GET("/api/v1/evidence/:sha256", engine.Std(http.HandlerFunc(a.getEvidence)))
	r.GET("/api/v1/evidence/:sha256/record", engine.Std(http.HandlerFunc(a.getEvidenceRecord)))
	r.GET("/api/v1/log/checkpoint", engine.Std(http.HandlerFunc(a.getCheckpoint)))
	r.GET("/api/v1/log/consistency", engine.Std(http.HandlerFunc(a.getConsistency)))
	r.GET("/api/v1/log/key", engine.Std(http.HandlerFunc(a.getLogKey)))
	r.POST("/api/v1/jobs", engine.Std(http.HandlerFunc(a.postJob)))
	r.GET("/api/v1/jobs/:id", engine.Std(http.HandlerFunc(a.getJob)))
	r.DELETE("/api/v1/jobs/:id", engine.Std(http.HandlerFunc(a.deleteJob)))
	r.GET("/api/v1/jobs/:id/documents/:n", engine.Std(http.HandlerFunc(a.getJobDocument)))
	r.GET("/api/v1/jobs/:id/results.zip", engine.Std(http.HandlerFunc(a.getJobResults)))
	r.GET("/api/v1/openapi.json", engine.Std(http.HandlerFunc(getOpenAPI)))
}

// listSeals returns the seals the caller may use.
func (a *REST) listSeals(w http.ResponseWriter, r *http.Request) {
	p, err := a.Auth.Authenticate(r)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	ids, err := a.Access.PermittedSeals(r.Context(), p)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, struct {
		Seals []string `json:"seals"`
	}{Seals: ids})
}

// postSeal seals one document: the raw body, or the multipart part
// "document". Options come from the query or from multipart fields placed
// before the document part; an option given in both counts as given twice.
func (a *REST) postSeal(w http.ResponseWriter, r *http.Request) {
	p, err := a.Auth.Authenticate(r)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	u, err := readUpload(r, sealFields)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	fields := withQuery(r, u.fields)
	req := seal.Request{Principal: p, Document: u.document, Size: u.size, Name: u.name}
	if err := seal.ParseOptions(&req, fields); err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	res, err := a.Seal.Seal(r.Context(), req)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	defer res.Close()
	h := w.Header()
	h.Set("Content-Type", res.ContentType)
	h.Set("Content-Length", strconv.FormatInt(res.Size, 10))
	h.Set("Content-Disposition", contentDisposition(req.Name, res.Format))
	setResultHeaders(h, res)
	w.WriteHeader(http.StatusOK)
	if _, err := res.WriteTo(w); err != nil {
		a.Log.Warn("sending sealed document failed", "event", res.EventID, "err", err)
	}
}

// setResultHeaders names the seal event and its evidence entry.
func setResultHeaders(h http.Header, res *seal.Result) {
	sealed := fmt.Sprintf("%x", res.SealedSHA256)
	h.Set("Sealgate-Event", res.EventID)
	h.Set("Sealgate-Seal", res.Seal)
	h.Set("Sealgate-Level", string(res.Level))
	h.Set("Sealgate-Original-Sha256", fmt.Sprintf("%x", res.OriginalSHA256))
	h.Set("Sealgate-Sealed-Sha256", sealed)
	h.Set("Sealgate-Evidence-Index", strconv.FormatUint(res.EvidenceIndex, 10))
	if n := len(res.RevocationUnavailable); n > 0 {
		h.Set("Sealgate-Revocation-Unavailable", strconv.Itoa(n))
	}
	// The link names the seal's own leaf: the digest alone would also find
	// later seals of this document.
	h.Set("Link", fmt.Sprintf(`</api/v1/evidence/%s?index=%d>; rel="evidence"`, sealed, res.EvidenceIndex))
}

func contentDisposition(name string, f seal.Format) string {
	return mime.FormatMediaType("attachment", map[string]string{"filename": resultName(name, f)})
}

// resultName is the file name of the sealed form of a document named
// name: "x-sealed.pdf" for PAdES, "x.p7s" for CAdES, "document" standing
// in for no name. Only the name's last path element counts, and characters
// file systems refuse become '_', so the name is safe to save or unpack.
func resultName(name string, f seal.Format) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || strings.ContainsRune(`:*?"<>|`, r) {
			return '_'
		}
		return r
	}, name)
	if name == "." || name == ".." {
		name = ""
	}
	if f == seal.CAdES {
		return cmp.Or(name, "document") + ".p7s"
	}
	base := strings.TrimSuffix(name, filepath.Ext(name))
	if base == "" || base == "." {
		base = "document"
	}
	return base + "-sealed.pdf"
}
