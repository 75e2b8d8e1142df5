package httpauth

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
)

// loginRequest is the body of POST /api/v1/sessions.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// TOTP is a TOTP or recovery code; required when the user has TOTP or
	// a group of theirs requires it.
	TOTP string `json:"totp"`
}

// sessionReply is the answer to a login.
type sessionReply struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"`
	ExpiresAt time.Time `json:"expiresAt"`
	// ExpiresIn and IdleTimeout are in seconds.
	ExpiresIn   int64    `json:"expiresIn"`
	IdleTimeout int64    `json:"idleTimeout"`
	User        string   `json:"user"`
	Factors     []string `json:"factors"`
}

// LoginHandler serves POST /api/v1/sessions: a person logs in once with
// username, password and TOTP, and gets a session token to send as
// Authorization: Bearer on every later request. Failed logins count toward
// the lockout like any other.
func (a *Authenticator) LoginHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var body loginRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			problem.Write(w, r, a.opts.Logger, fault.New(fault.Invalid, access.CodeInvalidInput,
				`the body must be JSON {"username": ..., "password": ..., "totp": ...}`))
			return
		}
		if body.Username == "" || body.Password == "" {
			problem.Write(w, r, a.opts.Logger, fault.New(fault.Invalid, access.CodeInvalidInput, "username and password are required"))
			return
		}
		s, err := a.svc.Login(r.Context(), access.UserCredentials{Login: body.Username, Password: body.Password, OTP: body.TOTP, Source: RemoteAddr(r)})
		if err != nil {
			problem.Write(w, r, a.opts.Logger, err)
			return
		}
		factors := make([]string, len(s.Principal.Factors))
		for i, f := range s.Principal.Factors {
			factors[i] = string(f)
		}
		problem.WriteJSON(w, http.StatusCreated, sessionReply{Token: s.Token, TokenType: "Bearer", ExpiresAt: s.ExpiresAt.UTC(),
			ExpiresIn: int64(s.ExpiresAt.Sub(a.svc.Now()).Round(time.Second).Seconds()), IdleTimeout: int64(s.IdleTimeout.Seconds()),
			User: s.Principal.Name, Factors: factors})
	})
}

// LogoutHandler serves DELETE /api/v1/sessions/current: the session whose
// token authorizes the request ends at once.
func (a *Authenticator) LogoutHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(tok, access.SessionTokenPrefix) {
			problem.Write(w, r, a.opts.Logger, fault.New(fault.Unauthenticated, access.CodeUnauthenticated,
				"logging out needs the session token as Authorization: Bearer"))
			return
		}
		p, err := a.svc.AuthenticateSession(r.Context(), tok, RemoteAddr(r))
		if err == nil {
			err = a.svc.EndToken(r.Context(), tok, p.String())
		}
		if err != nil {
			problem.Write(w, r, a.opts.Logger, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
