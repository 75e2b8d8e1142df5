// Package csctest runs a remote signature service on a loopback port for
// tests, written from the Cloud Signature Consortium API v2.0: info, an
// OAuth 2.0 token endpoint (client credentials and refresh tokens),
// credentials/list, credentials/info, credentials/authorize (SADs for one
// or many hashes, bound to them under SCAL2, expiring) and
// signatures/signHash (at most multisign hashes per call), over TLS with a
// certificate from the test's CA. It signs with a key the test gives it
// (on SoftHSM, through a seal pool), counts the calls it answers, and
// fails on demand: error statuses, slowness, expired SADs, revoked tokens.
package csctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/signing"
)

// Options describe the service and its one credential. Zero fields take
// the defaults noted.
type Options struct {
	// Key is the credential's key with its chain (required).
	Key signing.Key
	// CA issues the server's TLS certificate (required).
	CA *devpki.CA
	// ClientID and ClientSecret are the one OAuth client; default
	// "sealgate" and "client-secret-1".
	ClientID, ClientSecret string
	// RefreshToken, when set, is accepted once with grant_type
	// refresh_token; each use answers a new one (rotation).
	RefreshToken string
	// Credential is the credential id; default "acme-seal".
	Credential string
	// Multisign is the most hashes per signHash call; default 10.
	Multisign int
	// SCAL is "1" or "2" (default): whether a SAD is bound to its hashes.
	SCAL string
	// AuthMode is "explicit" (default: a PIN, and an OTP when OTP is set),
	// "implicit" or "oauth2code".
	AuthMode string
	// PIN is the credential's PIN; default "246810".
	PIN string
	// OTP, when set, is the one-time password the explicit mode also wants.
	OTP string
	// TokenLifetime and SADLifetime default to an hour and five minutes.
	TokenLifetime, SADLifetime time.Duration
}

// Fault makes the service misbehave until SetFault is called again.
type Fault struct {
	// Status, when set, answers API calls with this status (5xx, 429).
	Status int
	// RetryAfter is sent with Status, e.g. "1".
	RetryAfter string
	// Delay holds every answer this long.
	Delay time.Duration
	// Methods limits the fault to these methods ("signatures/signHash",
	// "oauth2/token", ...); nil means all.
	Methods []string
}

// Server is a running service.
type Server struct {
	// URL is the CSC API base, https://127.0.0.1:PORT/csc/v2.
	URL string
	// CAFile holds the CA certificate that issued the TLS certificate.
	CAFile string

	opts Options
	srv  *httptest.Server

	mu      sync.Mutex
	tokens  map[string]time.Time // access token → expiry
	refresh string               // the refresh token accepted next
	sads    map[string]*sad
	calls   map[string]int
	hashes  int
	fault   Fault
}

// sad is one SAD issued by credentials/authorize.
type sad struct {
	left    int
	expires time.Time
	hashes  map[string]bool // SCAL2: the hashes it may sign
}

// Start serves the service until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "sealgate"
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = "client-secret-1"
	}
	if opts.Credential == "" {
		opts.Credential = "acme-seal"
	}
	if opts.Multisign == 0 {
		opts.Multisign = 10
	}
	if opts.SCAL == "" {
		opts.SCAL = "2"
	}
	if opts.AuthMode == "" {
		opts.AuthMode = "explicit"
	}
	if opts.PIN == "" {
		opts.PIN = "246810"
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.SADLifetime == 0 {
		opts.SADLifetime = 5 * time.Minute
	}
	s := &Server{opts: opts, tokens: map[string]time.Time{}, sads: map[string]*sad{}, calls: map[string]int{}, refresh: opts.RefreshToken}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.handle("oauth2/token", s.token))
	for method, h := range map[string]func(http.ResponseWriter, *http.Request){
		"info": s.info, "credentials/list": s.list, "credentials/info": s.credentialInfo,
		"credentials/authorize": s.authorize, "signatures/signHash": s.signHash,
	} {
		mux.HandleFunc("POST /csc/v2/"+method, s.handle(method, h))
	}
	s.srv = httptest.NewUnstartedServer(mux)
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := opts.CA.IssueServer(tlsKey.Public(), []string{"127.0.0.1", "localhost"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: tlsKey, Leaf: cert}}}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/csc/v2"
	s.CAFile = filepath.Join(t.TempDir(), "tsp-ca.pem")
	if err := devpki.WriteCertsPEM(s.CAFile, opts.CA.Cert); err != nil {
		t.Fatal(err)
	}
	return s
}

// Origin is the service's scheme, host and port, where its OAuth server is.
func (s *Server) Origin() string { return s.srv.URL }

// SetFault replaces the current fault; Fault{} ends it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// ExpireSADs makes every SAD issued so far expired.
func (s *Server) ExpireSADs() {
	s.mu.Lock()
	for _, sd := range s.sads {
		sd.expires = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
}

// RevokeTokens revokes every access token issued so far.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	clear(s.tokens)
	s.mu.Unlock()
}

// Calls is how many calls of method ("credentials/authorize",
// "signatures/signHash", "oauth2/token", ...) the service answered
// successfully.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Signed is how many hashes the service signed.
func (s *Server) Signed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hashes
}

// handle applies the fault, then runs h, counting successful answers.
func (s *Server) handle(method string, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.fault
		s.mu.Unlock()
		if f.Methods == nil || slices.Contains(f.Methods, method) {
			if f.Delay > 0 {
				select {
				case <-time.After(f.Delay):
				case <-r.Context().Done():
					return
				}
			}
			if f.Status != 0 {
				if f.RetryAfter != "" {
					w.Header().Set("Retry-After", f.RetryAfter)
				}
				fail(w, f.Status, "server_error", "injected fault")
				return
			}
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		if rec.status == http.StatusOK {
			s.mu.Lock()
			s.calls[method]++
			s.mu.Unlock()
		}
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// fail answers a CSC error (CSC API v2.0 §10.1; RFC 6749 §5.2 for OAuth).
func fail(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

func answer(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request) {
	answer(w, map[string]any{
		"specs": "2.0.0.2", "name": "sealgate test TSP", "logo": "", "region": "DE", "lang": "en",
		"description": "CSC API v2 test service", "authType": []string{"oauth2client", "oauth2code"},
		"oauth2": s.srv.URL, "methods": []string{"oauth2/token", "credentials/list", "credentials/info", "credentials/authorize", "signatures/signHash"},
	})
}

// token is the OAuth 2.0 token endpoint (RFC 6749 §4.4 and §6).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		fail(w, http.StatusBadRequest, "invalid_request", "unreadable form")
		return
	}
	id, secretValue, basic := r.BasicAuth()
	if !basic {
		id, secretValue = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.opts.ClientID || secretValue != s.opts.ClientSecret {
		fail(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := map[string]any{"token_type": "Bearer", "expires_in": int(s.opts.TokenLifetime / time.Second)}
	switch r.PostForm.Get("grant_type") {
	case "client_credentials":
	case "refresh_token":
		if s.refresh == "" || r.PostForm.Get("refresh_token") != s.refresh {
			fail(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
			return
		}
		s.refresh = random()
		resp["refresh_token"] = s.refresh
	default:
		fail(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+r.PostForm.Get("grant_type"))
		return
	}
	tok := random()
	s.tokens[tok] = time.Now().Add(s.opts.TokenLifetime)
	resp["access_token"] = tok
	answer(w, resp)
}

// authorized checks the bearer token and decodes the JSON request body.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, req any) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	exp, known := s.tokens[tok]
	s.mu.Unlock()
	if !ok || !known || time.Now().After(exp) {
		fail(w, http.StatusUnauthorized, "invalid_token", "the access token is unknown, expired or revoked")
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(req); err != nil {
		fail(w, http.StatusBadRequest, "invalid_request", "malformed JSON body")
		return false
	}
	return true
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if s.authorized(w, r, &req) {
		answer(w, map[string]any{"credentialIDs": []string{s.opts.Credential}})
	}
}

func (s *Server) credentialInfo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CredentialID string `json:"credentialID"`
		Certificates string `json:"certificates"`
	}
	if !s.authorized(w, r, &req) {
		return
	}
	if req.CredentialID != s.opts.Credential {
		fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter credentialID")
		return
	}
	chain := s.opts.Key.Chain()
	var certs []string
	switch req.Certificates {
	case "", "single":
		chain = chain[:1]
	case "none":
		chain = nil
	}
	for _, c := range chain {
		certs = append(certs, base64.StdEncoding.EncodeToString(c.Raw))
	}
	leaf := s.opts.Key.Chain()[0]
	key := map[string]any{"status": "enabled"}
	switch pub := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		key["algo"], key["len"] = []string{"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.10"}, pub.N.BitLen()
	case *ecdsa.PublicKey:
		key["algo"], key["len"] = []string{"1.2.840.10045.2.1"}, pub.Curve.Params().BitSize
	}
	auth := map[string]any{"mode": s.opts.AuthMode}
	if s.opts.AuthMode == "explicit" {
		objects := []map[string]string{{"type": "Password", "id": "PIN", "format": "N", "label": "PIN"}}
		expr := "PIN"
		if s.opts.OTP != "" {
			objects = append(objects, map[string]string{"type": "OTP", "id": "OTP", "format": "N", "label": "OTP"})
			expr = "PIN AND OTP"
		}
		auth["objects"], auth["expression"] = objects, expr
	}
	answer(w, map[string]any{
		"description": "company seal", "signatureQualifier": "eu_eidas_qeseal", "key": key,
		"cert": map[string]any{
			"status": "valid", "certificates": certs, "issuerDN": leaf.Issuer.String(), "subjectDN": leaf.Subject.String(),
			"serialNumber": hex.EncodeToString(leaf.SerialNumber.Bytes()),
			"validFrom":    leaf.NotBefore.UTC().Format("20060102150405Z"), "validTo": leaf.NotAfter.UTC().Format("20060102150405Z"),
		},
		"auth": auth, "SCAL": s.opts.SCAL, "multisign": s.opts.Multisign, "lang": "en",
	})
}

// maxSADSignatures is the most signatures one SAD may cover here.
const maxSADSignatures = 1000

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CredentialID  string   `json:"credentialID"`
		NumSignatures int      `json:"numSignatures"`
		Hashes        []string `json:"hashes"`
		HashAlgorithm string   `json:"hashAlgorithmOID"`
		AuthData      []struct {
			ID    string `json:"id"`
			Value string `json:"value"`
		} `json:"authData"`
	}
	if !s.authorized(w, r, &req) {
		return
	}
	switch {
	case req.CredentialID != s.opts.Credential:
		fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter credentialID")
		return
	case req.NumSignatures < 1 || req.NumSignatures > maxSADSignatures:
		fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter numSignatures")
		return
	case s.opts.SCAL == "2" && len(req.Hashes) != req.NumSignatures:
		fail(w, http.StatusBadRequest, "invalid_request", "SCAL2: numSignatures must equal the number of hashes")
		return
	case len(req.Hashes) > 0 && hashes[req.HashAlgorithm] == 0:
		fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter hashAlgorithmOID")
		return
	}
	switch s.opts.AuthMode {
	case "oauth2code":
		fail(w, http.StatusForbidden, "access_denied", "the credential is authorized through the user's OAuth login")
		return
	case "explicit":
		given := map[string]string{}
		for _, a := range req.AuthData {
			given[a.ID] = a.Value
		}
		if given["PIN"] != s.opts.PIN {
			fail(w, http.StatusBadRequest, "invalid_request", "invalid PIN")
			return
		}
		if s.opts.OTP != "" && given["OTP"] != s.opts.OTP {
			fail(w, http.StatusBadRequest, "invalid_otp", "invalid OTP")
			return
		}
	}
	sd := &sad{left: req.NumSignatures, expires: time.Now().Add(s.opts.SADLifetime)}
	if s.opts.SCAL == "2" {
		sd.hashes = map[string]bool{}
		for _, h := range req.Hashes {
			sd.hashes[h] = true
		}
	}
	value := random()
	s.mu.Lock()
	s.sads[value] = sd
	s.mu.Unlock()
	answer(w, map[string]any{"SAD": value, "expiresIn": max(1, int(s.opts.SADLifetime/time.Second))})
}

// hashes maps the hash OIDs the service takes to their hashes.
var hashes = map[string]crypto.Hash{
	"2.16.840.1.101.3.4.2.1": crypto.SHA256,
	"2.16.840.1.101.3.4.2.2": crypto.SHA384,
	"2.16.840.1.101.3.4.2.3": crypto.SHA512,
}

// ecdsaAlgos maps the ECDSA signAlgo OIDs to their hashes.
var ecdsaAlgos = map[string]crypto.Hash{
	"1.2.840.10045.4.3.2": crypto.SHA256, "1.2.840.10045.4.3.3": crypto.SHA384, "1.2.840.10045.4.3.4": crypto.SHA512,
}

func (s *Server) signHash(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CredentialID  string   `json:"credentialID"`
		SAD           string   `json:"SAD"`
		Hashes        []string `json:"hashes"`
		HashAlgorithm string   `json:"hashAlgorithmOID"`
		SignAlgo      string   `json:"signAlgo"`
		SignAlgoParam string   `json:"signAlgoParams"`
	}
	if !s.authorized(w, r, &req) {
		return
	}
	if req.CredentialID != s.opts.Credential {
		fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter credentialID")
		return
	}
	if len(req.Hashes) == 0 || len(req.Hashes) > s.opts.Multisign {
		fail(w, http.StatusBadRequest, "invalid_request", "the number of hashes exceeds multisign")
		return
	}
	opts, msg := s.signerOpts(req.SignAlgo, req.SignAlgoParam, req.HashAlgorithm)
	if msg != "" {
		fail(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	s.mu.Lock()
	sd := s.sads[req.SAD]
	switch {
	case sd == nil:
		msg = "invalid SAD"
	case time.Now().After(sd.expires):
		msg = "SAD expired"
	case sd.left < len(req.Hashes):
		msg = "the SAD does not cover this many signatures"
	case sd.hashes != nil:
		for _, h := range req.Hashes {
			if !sd.hashes[h] {
				msg = "the SAD is not bound to these hashes"
			}
		}
	}
	if msg == "" {
		sd.left -= len(req.Hashes)
	}
	s.mu.Unlock()
	if msg != "" {
		fail(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	sigs := make([]string, len(req.Hashes))
	for i, h := range req.Hashes {
		digest, err := base64.StdEncoding.DecodeString(h)
		if err != nil || len(digest) != opts.HashFunc().Size() {
			fail(w, http.StatusBadRequest, "invalid_request", "invalid parameter hashes")
			return
		}
		sig, err := signing.SignContext(r.Context(), s.opts.Key, digest, opts)
		if err != nil {
			fail(w, http.StatusInternalServerError, "server_error", "the signing key failed")
			return
		}
		sigs[i] = base64.StdEncoding.EncodeToString(sig)
	}
	s.mu.Lock()
	s.hashes += len(sigs)
	s.mu.Unlock()
	answer(w, map[string]any{"signatures": sigs})
}

// signerOpts reads signAlgo, signAlgoParams and hashAlgorithmOID; a
// non-empty message says what is wrong.
func (s *Server) signerOpts(signAlgo, params, hashOID string) (crypto.SignerOpts, string) {
	leaf := s.opts.Key.Chain()[0]
	switch leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		h := hashes[hashOID]
		if h == 0 {
			return nil, "invalid parameter hashAlgorithmOID"
		}
		switch signAlgo {
		case "1.2.840.113549.1.1.1":
			return h, ""
		case "1.2.840.113549.1.1.10":
			der, err := base64.StdEncoding.DecodeString(params)
			var p struct {
				Hash pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
				MGF  pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
				Salt int                      `asn1:"explicit,tag:2"`
			}
			if err != nil {
				return nil, "invalid parameter signAlgoParams"
			}
			if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) > 0 || hashes[p.Hash.Algorithm.String()] != h {
				return nil, "invalid parameter signAlgoParams"
			}
			return &rsa.PSSOptions{SaltLength: p.Salt, Hash: h}, ""
		}
	case *ecdsa.PublicKey:
		if h := ecdsaAlgos[signAlgo]; h != 0 {
			return h, ""
		}
	}
	return nil, "invalid parameter signAlgo"
}

func random() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
