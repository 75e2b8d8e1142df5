// Package adminapi serves sealgate's administration REST API under
// /api/v1/admin: users, groups, processes, their lockouts, rules and the
// audit trail.
// It is a thin adapter: every request is authenticated by httpauth and
// authorized by access.Service.Decide (admin-read, admin-write or
// audit-read), the one decision point; the changes themselves are
// access.Service methods, audited there with the caller as actor.
package adminapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
)

// CodeBadRequest is returned for a body that is not the expected JSON.
const CodeBadRequest fault.Code = "bad_request"

// Options configure the API.
type Options struct {
	// Logger receives one line per change; never secrets. Default slog.Default().
	Logger *slog.Logger
	// Directory is the directory sync behind /api/v1/admin/directory; nil
	// when sealgate has no directory.
	Directory Directory
}

type api struct {
	svc  *access.Service
	auth *httpauth.Authenticator
	log  *slog.Logger
	dir  Directory
}

// handlerFunc serves an authorized request for principal p.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p access.Principal) error

// Register adds the admin routes, /api/v1/admin/..., to r.
func Register(r gin.IRouter, svc *access.Service, auth *httpauth.Authenticator, opts Options) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &api{svc: svc, auth: auth, log: opts.Logger, dir: opts.Directory}
	read, write, audit := access.OpAdminRead, access.OpAdminWrite, access.OpAuditRead
	routes := []struct {
		pattern string
		op      access.Operation
		h       handlerFunc
	}{
		{"GET /api/v1/admin/users", read, a.listUsers},
		{"POST /api/v1/admin/users", write, a.addUser},
		{"GET /api/v1/admin/users/{login}", read, a.getUser},
		{"DELETE /api/v1/admin/users/{login}", write, a.removeUser},
		{"POST /api/v1/admin/users/{login}/disable", write, a.disableUser(true)},
		{"POST /api/v1/admin/users/{login}/enable", write, a.disableUser(false)},
		{"PUT /api/v1/admin/users/{login}/roles", write, a.setRoles},
		{"PUT /api/v1/admin/users/{login}/password", write, a.setPassword},
		{"POST /api/v1/admin/users/{login}/totp", write, a.enrollTOTP},
		{"DELETE /api/v1/admin/users/{login}/totp", write, a.resetTOTP},
		{"POST /api/v1/admin/users/{login}/unlock", write, a.unlock(access.KindUser, "login")},
		{"GET /api/v1/admin/groups", read, a.listGroups},
		{"POST /api/v1/admin/groups", write, a.addGroup},
		{"POST /api/v1/admin/groups/{name}/members", write, a.addMember},
		{"DELETE /api/v1/admin/groups/{name}/members/{login}", write, a.removeMember},
		{"GET /api/v1/admin/processes", read, a.listProcesses},
		{"POST /api/v1/admin/processes", write, a.addProcess},
		{"POST /api/v1/admin/processes/{clientId}/secret", write, a.rotateSecret},
		{"POST /api/v1/admin/processes/{clientId}/revoke", write, a.revokeProcess},
		{"POST /api/v1/admin/processes/{clientId}/certificates", write, a.addCert},
		{"POST /api/v1/admin/processes/{clientId}/unlock", write, a.unlock(access.KindProcess, "clientId")},
		{"GET /api/v1/admin/rules", read, a.listRules},
		{"POST /api/v1/admin/rules", write, a.addRule},
		{"DELETE /api/v1/admin/rules/{name}", write, a.removeRule},
		{"GET /api/v1/admin/audit", audit, a.listAudit},
		{"GET /api/v1/admin/audit/export", audit, a.exportAudit},
		{"GET /api/v1/admin/audit/verify", audit, a.verifyAudit},
		{"GET /api/v1/admin/directory", read, a.getDirectory},
		{"POST /api/v1/admin/directory/sync", write, a.syncDirectory},
	}
	for _, rt := range routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		r.Handle(method, ginPath(path), engine.Std(a.authorized(rt.op, rt.h)))
	}
}

// ginPath writes a pattern's {name} segments as gin's :name.
func ginPath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			segs[i] = ":" + s[1:len(s)-1]
		}
	}
	return strings.Join(segs, "/")
}

// authorized authenticates the caller and asks Decide before h runs.
func (a *api) authorized(op access.Operation, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		p, err := a.auth.Authenticate(r)
		if err == nil {
			_, err = a.svc.Decide(r.Context(), p, access.Action{Operation: op})
		}
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			problem.Write(w, r, a.log, err)
		}
	})
}

// writeJSON writes v and returns nil: once the status is sent, a failed
// write (the client went away) cannot become a problem response.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
	return nil
}

// decode reads a JSON body into v, refusing unknown fields so a typo is an
// error rather than a silently ignored setting.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fault.Wrap(err, fault.Invalid, CodeBadRequest, "the request body is not valid JSON for %s %s: %v", r.Method, r.URL.Path, err)
	}
	return nil
}

func (a *api) changed(p access.Principal, what, subject string) {
	a.log.Info("admin change", "actor", p.String(), "change", what, "subject", subject)
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	us, err := a.svc.Users(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, us)
}

func (a *api) getUser(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	u, err := a.svc.User(r.Context(), r.PathValue("login"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (a *api) addUser(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var nu access.NewUser
	if err := decode(r, &nu); err != nil {
		return err
	}
	u, err := a.svc.AddUser(r.Context(), nu, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "user.add", u.Login)
	return writeJSON(w, http.StatusCreated, u)
}

func (a *api) removeUser(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	login := r.PathValue("login")
	if err := a.svc.DeprovisionUser(r.Context(), login, p.String()); err != nil {
		return err
	}
	a.changed(p, "user.remove", login)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) disableUser(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p access.Principal) error {
		login := r.PathValue("login")
		if err := a.svc.SetUserDisabled(r.Context(), login, disabled, p.String()); err != nil {
			return err
		}
		a.changed(p, "user.disabled="+strconv.FormatBool(disabled), login)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (a *api) setRoles(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		Roles []string `json:"roles"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	login := r.PathValue("login")
	if err := a.svc.SetRoles(r.Context(), login, body.Roles, p.String()); err != nil {
		return err
	}
	a.changed(p, "user.roles", login)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		Password string `json:"password"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	login := r.PathValue("login")
	if err := a.svc.SetPassword(r.Context(), login, body.Password, p.String()); err != nil {
		return err
	}
	a.changed(p, "user.password", login)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) enrollTOTP(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	login := r.PathValue("login")
	en, err := a.svc.EnrollTOTP(r.Context(), login, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "user.totp.enroll", login)
	return writeJSON(w, http.StatusOK, en) // QRCode is base64 in JSON
}

func (a *api) resetTOTP(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	login := r.PathValue("login")
	if err := a.svc.ResetTOTP(r.Context(), login, p.String()); err != nil {
		return err
	}
	a.changed(p, "user.totp.reset", login)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// unlock lifts the locks of the user or process the path names in param.
func (a *api) unlock(kind access.Kind, param string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, p access.Principal) error {
		name := r.PathValue(param)
		n, err := a.svc.Unlock(r.Context(), kind, name, p.String())
		if err != nil {
			return err
		}
		a.changed(p, string(kind)+".unlock", name)
		return writeJSON(w, http.StatusOK, struct {
			LocksLifted int `json:"locksLifted"`
		}{n})
	}
}

func (a *api) listGroups(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	gs, err := a.svc.Groups(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, gs)
}

func (a *api) addGroup(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		Name        string `json:"name"`
		RequireTOTP bool   `json:"requireTotp"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	g, err := a.svc.AddGroup(r.Context(), body.Name, body.RequireTOTP, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "group.add", g.Name)
	return writeJSON(w, http.StatusCreated, g)
}

func (a *api) addMember(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		Login string `json:"login"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	group := r.PathValue("name")
	if err := a.svc.AddMember(r.Context(), group, body.Login, p.String()); err != nil {
		return err
	}
	a.changed(p, "group.member.add", group)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) removeMember(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	group := r.PathValue("name")
	if err := a.svc.RemoveMember(r.Context(), group, r.PathValue("login"), p.String()); err != nil {
		return err
	}
	a.changed(p, "group.member.remove", group)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listProcesses(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	ps, err := a.svc.Processes(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ps)
}

// secretResponse shows a client secret once, at creation or rotation.
type secretResponse struct {
	Process      *access.Process `json:"process,omitempty"`
	ClientID     string          `json:"clientId"`
	ClientSecret string          `json:"clientSecret"`
}

func (a *api) addProcess(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		ClientID    string   `json:"clientId"`
		Description string   `json:"description"`
		Roles       []string `json:"roles"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	pr, secret, err := a.svc.AddProcess(r.Context(), body.ClientID, body.Description, body.Roles, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "process.add", pr.ClientID)
	return writeJSON(w, http.StatusCreated, secretResponse{Process: &pr, ClientID: pr.ClientID, ClientSecret: secret})
}

func (a *api) rotateSecret(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var body struct {
		OverlapSeconds int64 `json:"overlapSeconds"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &body); err != nil {
			return err
		}
	}
	id := r.PathValue("clientId")
	secret, err := a.svc.RotateSecret(r.Context(), id, time.Duration(body.OverlapSeconds)*time.Second, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "process.secret.rotate", id)
	return writeJSON(w, http.StatusOK, secretResponse{ClientID: id, ClientSecret: secret})
}

func (a *api) revokeProcess(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	id := r.PathValue("clientId")
	if err := a.svc.RevokeProcess(r.Context(), id, p.String()); err != nil {
		return err
	}
	a.changed(p, "process.revoke", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) addCert(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var c access.ProcessCert
	if err := decode(r, &c); err != nil {
		return err
	}
	id := r.PathValue("clientId")
	if err := a.svc.AddProcessCert(r.Context(), id, c, p.String()); err != nil {
		return err
	}
	a.changed(p, "process.cert.add", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) listRules(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	rs, err := a.svc.Rules(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rs)
}

func (a *api) addRule(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	var rule access.Rule
	if err := decode(r, &rule); err != nil {
		return err
	}
	rule, err := a.svc.AddRule(r.Context(), rule, p.String())
	if err != nil {
		return err
	}
	a.changed(p, "rule.add", rule.Name)
	return writeJSON(w, http.StatusCreated, rule)
}

func (a *api) removeRule(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	name := r.PathValue("name")
	if err := a.svc.RemoveRule(r.Context(), name, p.String()); err != nil {
		return err
	}
	a.changed(p, "rule.remove", name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// intParam reads an optional integer query parameter.
func intParam(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fault.New(fault.Invalid, CodeBadRequest, "query parameter %s=%q is not an integer", name, v)
	}
	return n, nil
}

func (a *api) listAudit(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	after, err := intParam(r, "after", 0)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil {
		return err
	}
	if limit < 1 || limit > 1000 {
		return fault.New(fault.Invalid, CodeBadRequest, "limit %d is not between 1 and 1000", limit)
	}
	evs, err := a.svc.AuditEvents(r.Context(), after, int(limit))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, evs)
}

func (a *api) exportAudit(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	after, err := intParam(r, "after", 0)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jsonl")
	err = a.svc.ExportAudit(r.Context(), w, after)
	if err != nil {
		// Headers are gone once lines are written: the log is all that is left.
		a.log.Error("audit export failed", "err", err)
	}
	return nil
}

func (a *api) verifyAudit(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	rep, err := a.svc.VerifyAudit(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
