// Package soap is sealgate's SOAP endpoint for ERP and other SOAP stacks:
// POST /soap takes SOAP 1.1 and 1.2 envelopes (document/literal wrapped,
// the contract in wsdl/), with documents inline as base64 or as MTOM/XOP
// attachments, and GET /soap?wsdl serves the contract with the node's
// address. Like every transport it is a thin adapter: it authenticates the
// caller (WS-Security UsernameToken, or whatever gateway/httpauth accepts),
// turns the typed request into a seal.Request through seal.ParseOptions,
// and renders the result, or the error as a SOAP fault whose detail
// carries the same stable code as REST's problem documents.
package soap

import (
	"bufio"
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/wsdl"
)

// Authenticator turns a request's credentials into a principal;
// gateway/httpauth implements it.
type Authenticator interface {
	// Authenticate reads HTTP Basic, a bearer token or a client certificate.
	Authenticate(r *http.Request) (access.Principal, error)
	// AuthenticatePassword checks a UsernameToken's name and password.
	AuthenticatePassword(r *http.Request, name, secret string) (access.Principal, error)
}

// Seals lists the seals a principal may use; access.Service implements it.
type Seals interface {
	PermittedSeals(ctx context.Context, p access.Principal) ([]string, error)
}

// Settings is the "soap" section of sealgate.yaml.
type Settings struct {
	// PublicURL is the endpoint's address the WSDL names; default the
	// address the WSDL was requested at (scheme, host and /soap).
	PublicURL string `yaml:"publicURL"`
	Limits    `yaml:",inline"`
	// WSSecurity bounds UsernameTokens.
	WSSecurity WSSecuritySettings `yaml:"wsSecurity"`
}

// LoadSettings reads the soap section, with its defaults.
func LoadSettings(cfg *config.File) (Settings, error) {
	var s Settings
	if _, err := cfg.Section("soap", &s); err != nil {
		return s, err
	}
	l, w := s.Limits, s.WSSecurity
	if l.MaxEnvelopeSize < 0 || l.MaxDepth < 0 || l.MaxElements < 0 || l.MaxAttributes < 0 || l.MaxParts < 0 || l.MaxPartSize < 0 ||
		w.Freshness < 0 || w.ClockSkew < 0 || w.MaxNonces < 0 {
		return s, fault.New(fault.Invalid, CodeConfigInvalid, "config section soap: no value may be negative")
	}
	return s, nil
}

// CodeConfigInvalid: the soap section is wrong (at start).
const CodeConfigInvalid fault.Code = "soap_config_invalid"

// Endpoint is the SOAP endpoint.
type Endpoint struct {
	Seal     *seal.Service
	Jobs     *seal.Jobs
	Verifier *seal.Verifier
	Access   Seals
	Auth     Authenticator
	Log      *slog.Logger

	settings Settings
	lim      Limits
	wss      WSSecuritySettings
	tempDir  string
	spool    *limit.Budget
	nonces   *nonces
	now      func() time.Time
}

// Options are what New needs besides the services.
type Options struct {
	Settings Settings
	// TempDir holds MTOM attachments while they are used (the seal
	// section's tempDir); Spool is the node's budget of temporary space.
	TempDir string
	Spool   *limit.Budget
	// MaxDocumentSize is the default of MaxPartSize.
	MaxDocumentSize int64
	// Now is the clock for UsernameToken freshness; default time.Now.
	Now func() time.Time
}

// New returns an endpoint; set Seal, Jobs, Verifier, Access, Auth and Log on it.
func New(opts Options) *Endpoint {
	s := opts.Settings
	if s.MaxPartSize == 0 {
		s.MaxPartSize = opts.MaxDocumentSize
	}
	e := &Endpoint{settings: s, lim: s.Limits.withDefaults(), wss: s.WSSecurity.withDefaults(), tempDir: opts.TempDir, spool: opts.Spool, now: opts.Now}
	if e.now == nil {
		e.now = time.Now
	}
	e.nonces = &nonces{seen: map[string]time.Time{}, max: e.wss.MaxNonces}
	return e
}

// Register adds POST /soap and GET /soap (?wsdl, ?xsd=sealgate.xsd) to r.
func (e *Endpoint) Register(r gin.IRouter) {
	r.POST("/soap", engine.Std(http.HandlerFunc(e.post)))
	r.GET("/soap", engine.Std(http.HandlerFunc(e.get)))
}

// get serves the contract with this endpoint's address.
func (e *Endpoint) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	addr := e.address(r)
	switch {
	case q.Has("wsdl") || q.Has("WSDL"):
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = io.WriteString(w, wsdl.Contract(addr))
	case q.Get("xsd") == wsdl.SchemaFile:
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write(wsdl.Schema)
	default:
		problem.Write(w, r, e.Log, fault.New(fault.NotFound, seal.CodeBadRequest, "GET /soap serves the contract: ask for /soap?wsdl (and its schema /soap?xsd=%s); operations are POSTed", wsdl.SchemaFile))
	}
}

// address is the endpoint's URL as the WSDL names it.
func (e *Endpoint) address(r *http.Request) string {
	if e.settings.PublicURL != "" {
		return e.settings.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/soap"
}

// call is one SOAP request in progress.
type call struct {
	e    *Endpoint
	w    http.ResponseWriter
	r    *http.Request
	env  *envelope
	pkg  *mtomPackage
	p    access.Principal
	mtom bool
}

// operation is one of the contract's operations.
type operation struct {
	action string
	run    func(*call) error
}

var operations = map[string]operation{
	"SealDocument":      {"urn:sealgate:v1/SealDocument", (*call).sealDocument},
	"VerifyDocument":    {"urn:sealgate:v1/VerifyDocument", (*call).verifyDocument},
	"ListSeals":         {"urn:sealgate:v1/ListSeals", (*call).listSeals},
	"SealBatch":         {"urn:sealgate:v1/SealBatch", (*call).sealBatch},
	"GetJobStatus":      {"urn:sealgate:v1/GetJobStatus", (*call).getJobStatus},
	"GetSealedDocument": {"urn:sealgate:v1/GetSealedDocument", (*call).getSealedDocument},
}

// post runs one operation; every failure is a SOAP fault.
func (e *Endpoint) post(w http.ResponseWriter, r *http.Request) {
	c := &call{e: e, w: w, r: r}
	v, err := c.run()
	defer c.pkg.close()
	if err != nil {
		writeFault(w, r, e.Log, v, err)
	}
}

func (c *call) run() (version, error) {
	v, params, action, err := classify(c.r.Header)
	if err != nil {
		return v, err
	}
	var root io.Reader = c.r.Body
	if params == nil && c.r.ContentLength > c.e.lim.MaxEnvelopeSize {
		return v, fault.New(fault.TooLarge, CodeLimitExceeded, "the envelope of %d bytes is larger than the limit of %d bytes; send large documents as MTOM attachments", c.r.ContentLength, c.e.lim.MaxEnvelopeSize)
	}
	if params != nil {
		c.mtom = true
		if c.pkg, root, err = openPackage(c.r.Body, params, c.e.lim, c.e.tempDir, c.e.spool); err != nil {
			return v, err
		}
	}
	if c.env, err = readEnvelope(root, v, c.e.lim); err != nil {
		return v, err
	}
	name := c.env.op.Name
	op, ok := operations[name.Local]
	if !ok || name.Space != nsSealgate {
		return v, fault.New(fault.Invalid, CodeOperationUnknown, "the Body's element {%s}%s is not an operation of urn:sealgate:v1 (SealDocument, SealBatch, GetJobStatus, GetSealedDocument, VerifyDocument, ListSeals)", name.Space, name.Local)
	}
	if action != "" && action != op.action {
		return v, fault.New(fault.Invalid, CodeOperationUnknown, "the SOAP action %q does not match the Body's operation %s (%s)", action, name.Local, op.action)
	}
	return v, op.run(c)
}

// classify reads the SOAP version, the MTOM parameters (nil without
// MTOM) and the SOAP action from the request's headers.
func classify(h http.Header) (version, map[string]string, string, error) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return soap11, nil, "", fault.New(fault.Invalid, CodeContentType, "the Content-Type %q cannot be read; send text/xml (SOAP 1.1), application/soap+xml (SOAP 1.2) or multipart/related MTOM", h.Get("Content-Type"))
	}
	var mtom map[string]string
	if mt == "multipart/related" {
		if !strings.EqualFold(params["type"], "application/xop+xml") {
			return soap11, nil, "", fault.New(fault.Invalid, CodeContentType, "multipart/related of type %q is not MTOM (application/xop+xml)", params["type"])
		}
		mtom = params
		// start-info is the root part's media type, which for SOAP 1.2
		// carries the action as its own parameter.
		if mt, params, err = mime.ParseMediaType(mtom["start-info"]); err != nil {
			return soap11, nil, "", fault.New(fault.Invalid, CodeContentType, "the MTOM start-info %q cannot be read", mtom["start-info"])
		}
		if a, ok := mtom["action"]; ok {
			params["action"] = a
		}
	}
	action := strings.Trim(h.Get("SOAPAction"), `"`)
	switch mt {
	case "text/xml":
		return soap11, mtom, action, nil
	case "application/soap+xml":
		// SOAP 1.2 names the action in the Content-Type (of the root part, with MTOM).
		action = params["action"]
		return soap12, mtom, action, nil
	}
	return soap11, nil, "", fault.New(fault.Invalid, CodeContentType, "the Content-Type %q is not SOAP: send text/xml (SOAP 1.1), application/soap+xml (SOAP 1.2) or multipart/related MTOM", h.Get("Content-Type"))
}

// prepare decodes the operation's request into req, checks the rest of
// the envelope, authenticates the caller and reads the MTOM attachments.
func prepare[T any](c *call, req *T) error {
	if err := c.env.dec.DecodeElement(req, &c.env.op); err != nil {
		return decodeError(err, c.env.op.Name.Local)
	}
	if err := c.env.finish(); err != nil {
		return err
	}
	var err error
	if c.env.security != nil {
		if c.r.Header.Get("Authorization") != "" {
			return fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "the request carries both a WS-Security header and an Authorization header; send one")
		}
		c.p, err = c.e.usernameToken(c.r, c.env.security)
	} else {
		c.p, err = c.e.Auth.Authenticate(c.r)
	}
	if err != nil {
		return err
	}
	if c.pkg != nil {
		return c.pkg.readAttachments()
	}
	return nil
}

// respond writes the envelope of a successful answer: body writes the
// Body's content, doc (when not nil) is the one attachment of an MTOM answer.
func (c *call) respond(v version, body func(w io.Writer, enc *xml.Encoder) error, doc *document) {
	h := c.w.Header()
	h.Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(c.w, 32<<10)
	var mw *mtomWriter
	if c.mtom {
		mw = newMTOMWriter(bw)
		h.Set("Content-Type", mw.contentType(v))
	} else {
		h.Set("Content-Type", v.mediaType()+"; charset=utf-8")
	}
	c.w.WriteHeader(http.StatusOK)
	var out io.Writer = bw
	if mw != nil {
		root, err := mw.root(v)
		if err != nil {
			c.e.Log.Warn("sending SOAP response failed", "err", err)
			return
		}
		out = root
	}
	if doc != nil {
		doc.mtom = mw != nil
	}
	err := writeEnvelope(out, v, body)
	if err == nil && mw != nil && doc != nil {
		var part io.Writer
		if part, err = mw.attachment(doc.contentType); err == nil {
			_, err = doc.src.WriteTo(part)
		}
	}
	if err == nil && mw != nil {
		err = mw.close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		// The status is out: the caller sees a cut answer.
		c.e.Log.Warn("sending SOAP response failed", "err", err)
	}
}

func writeEnvelope(w io.Writer, v version, body func(w io.Writer, enc *xml.Encoder) error) error {
	if _, err := io.WriteString(w, xml.Header+`<soap:Envelope xmlns:soap="`+v.ns()+`"><soap:Body>`); err != nil {
		return err
	}
	if err := body(w, xml.NewEncoder(w)); err != nil {
		return err
	}
	_, err := io.WriteString(w, `</soap:Body></soap:Envelope>`)
	return err
}
