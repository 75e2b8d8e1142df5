// Package httpauth turns an HTTP request's credentials into an
// access.Principal for every HTTP transport (REST, SOAP, admin API), and
// serves the OAuth 2.0 token endpoint for processes.
//
// Credentials, in order of precedence:
//   - Authorization: Basic — a process's client id and secret (secrets start
//     with "sgp_", which is how they are told from user passwords), or a
//     user's login and password, with the TOTP code in the Sealgate-OTP header;
//   - Authorization: Bearer — an OAuth access token from the token endpoint,
//     or a user's session token (access.Service.StartSession);
//   - a TLS client certificate mapped to a process: the connection's own,
//     or one a trusted reverse proxy passed on (see Proxies).
//
// A request without credentials is anonymous; access.Service.Decide says
// what anonymous callers may do. A Sealgate-OTP header on a user's request
// is a fresh approval for per-batch or per-document rules.
package httpauth

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
)

// OTPHeader carries a user's TOTP (or recovery) code.
const OTPHeader = "Sealgate-OTP"

// realm is named in WWW-Authenticate, as gateway/problem does.
const realm = "sealgate"

// Options configure an Authenticator.
type Options struct {
	// Logger receives internal errors only; never credentials. Default slog.Default().
	Logger *slog.Logger
}

// Authenticator authenticates HTTP requests against an access.Service.
type Authenticator struct {
	svc  *access.Service
	opts Options
}

// New returns an Authenticator.
func New(svc *access.Service, opts Options) *Authenticator {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Authenticator{svc: svc, opts: opts}
}

// Authenticate returns the caller of r: anonymous when it presents no
// credentials, an error (unauthenticated, account_locked, ...) when it
// presents wrong ones.
func (a *Authenticator) Authenticate(r *http.Request) (access.Principal, error) {
	ctx := r.Context()
	src := RemoteAddr(r)
	var p access.Principal
	var err error
	authz := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(authz, " ")
	switch {
	case authz == "":
		cert, verified := clientCert(r)
		if cert == nil {
			return access.Principal{Source: src}, nil
		}
		p, err = a.svc.AuthenticateClientCert(ctx, cert, verified, src)
	case strings.EqualFold(scheme, "Basic"):
		name, secret, ok := r.BasicAuth()
		if !ok {
			return access.Principal{}, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "the Basic credentials are malformed")
		}
		return a.AuthenticatePassword(r, name, secret)
	case strings.EqualFold(scheme, "Bearer") && strings.HasPrefix(strings.TrimSpace(cred), access.SessionTokenPrefix):
		p, err = a.svc.AuthenticateSession(ctx, strings.TrimSpace(cred), src)
	case strings.EqualFold(scheme, "Bearer"):
		p, err = a.svc.AuthenticateBearer(ctx, strings.TrimSpace(cred), src)
	default:
		err = fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "authorization scheme %q is not supported (use Basic or Bearer)", scheme)
	}
	if err != nil {
		return access.Principal{}, err
	}
	// Every principal carries the address it came from: rules may limit
	// source networks whatever the kind of caller.
	p.Source = src
	if otp := r.Header.Get(OTPHeader); otp != "" && p.Kind == access.KindUser {
		return a.svc.Approve(ctx, p, otp)
	}
	return p, nil
}

// AuthenticatePassword authenticates a name and secret that r carries
// other than in HTTP Basic (SOAP's WS-Security UsernameToken does): a
// process's client id and secret, or a user's login and password with the
// TOTP code in the Sealgate-OTP header — with the lockouts and audit of
// Basic.
func (a *Authenticator) AuthenticatePassword(r *http.Request, name, secret string) (access.Principal, error) {
	ctx, src := r.Context(), RemoteAddr(r)
	if !strings.HasPrefix(secret, access.ClientSecretPrefix) {
		return a.svc.AuthenticateUser(ctx, access.UserCredentials{Login: name, Password: secret, OTP: r.Header.Get(OTPHeader), Source: src})
	}
	p, err := a.svc.AuthenticateClientSecret(ctx, name, secret, src)
	if err != nil {
		return access.Principal{}, err
	}
	p.Source = src
	return p, nil
}

// tokenError is an RFC 6749 §5.2 error response.
type tokenError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// TokenHandler serves POST /api/v1/oauth/token: the OAuth 2.0
// client-credentials grant (RFC 6749 §4.4). The client authenticates with
// HTTP Basic (client_secret_basic), with client_id and client_secret in the
// form (client_secret_post), or with its TLS client certificate
// (tls_client_auth, RFC 8705).
func (a *Authenticator) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			a.writeTokenError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			a.writeTokenError(w, http.StatusBadRequest, "invalid_request", "the form body could not be read")
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
			if gt == "" {
				a.writeTokenError(w, http.StatusBadRequest, "invalid_request", "grant_type is missing")
			} else {
				a.writeTokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+strconv.Quote(gt)+" is not supported; use client_credentials")
			}
			return
		}
		p, basic, err := a.tokenClient(r)
		if err != nil {
			switch status := problem.StatusOf(err); {
			case status == http.StatusBadRequest:
				a.writeTokenError(w, status, "invalid_request", fault.As(err).Msg)
			case status >= 500:
				a.opts.Logger.Error("token request failed", "err", err)
				a.writeTokenError(w, status, "server_error", "sealgate could not complete the request")
			default:
				// Locked clients learn when to retry; every other failure
				// gets the same answer, so it reveals nothing.
				desc := "client authentication failed"
				if status == http.StatusTooManyRequests {
					desc = fault.As(err).Msg
					problem.SetRetryAfter(w.Header(), err)
				} else {
					status = http.StatusUnauthorized
				}
				if basic {
					w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
				}
				a.writeTokenError(w, status, "invalid_client", desc)
			}
			return
		}
		tok, exp, err := a.svc.IssueToken(r.Context(), p)
		if err != nil {
			if problem.StatusOf(err) == http.StatusForbidden {
				a.writeTokenError(w, http.StatusBadRequest, "unauthorized_client", fault.As(err).Msg)
				return
			}
			a.opts.Logger.Error("token issue failed", "err", err)
			a.writeTokenError(w, http.StatusInternalServerError, "server_error", "sealgate could not complete the request")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}{tok, "Bearer", int64(exp.Sub(a.svc.Now()).Round(time.Second).Seconds())})
	})
}

// tokenClient authenticates the client of a token request; basic reports
// whether it used HTTP Basic (which then gets WWW-Authenticate on failure).
func (a *Authenticator) tokenClient(r *http.Request) (access.Principal, bool, error) {
	ctx, src := r.Context(), RemoteAddr(r)
	id, secret, basic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case basic && (formSecret != "" || (formID != "" && formID != id)):
		return access.Principal{}, true, fault.New(fault.Invalid, access.CodeInvalidInput, "use one client authentication method, not Basic and form fields together")
	case basic:
		p, err := a.svc.AuthenticateClientSecret(ctx, id, secret, src)
		return p, true, err
	case formSecret != "":
		p, err := a.svc.AuthenticateClientSecret(ctx, formID, formSecret, src)
		return p, false, err
	}
	if cert, verified := clientCert(r); cert != nil {
		p, err := a.svc.AuthenticateClientCert(ctx, cert, verified, src)
		if err == nil && formID != "" && formID != p.Name {
			return access.Principal{}, false, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "client certificate does not belong to client_id %q", formID)
		}
		return p, false, err
	}
	return access.Principal{}, false, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "no client credentials")
}

func (a *Authenticator) writeTokenError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(tokenError{Error: code, Description: desc})
}
