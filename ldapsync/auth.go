package ldapsync

import (
	"context"
	"log/slog"

	"github.com/go-ldap/ldap/v3"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
)

// Authenticator checks passwords against the directory.
type Authenticator struct {
	cfg Config
	dir *directory
	log *slog.Logger
}

// NewAuthenticator prepares directory logins for cfg (defaults filled in
// by cfg.WithDefaults).
func NewAuthenticator(cfg Config, log *slog.Logger) (*Authenticator, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := newDirectory(cfg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{cfg: cfg, dir: dir, log: log}, nil
}

// errLogin is the one answer to every refused login: unknown user, wrong
// or empty password and disabled account look the same to the caller.
func errLogin(login string) error {
	return fault.New(fault.Unauthenticated, CodeUnauthenticated, "login %q: wrong user name or password", login)
}

// Authenticator verifies passwords for access.Service (Options.Directories).
var _ access.PasswordVerifier = (*Authenticator)(nil)

// VerifyPassword checks the directory password of a user sealgate knows
// from this directory. The login must still belong to the same directory
// entry (same external id): a login the directory has since given to
// someone else is refused until the next sync.
func (a *Authenticator) VerifyPassword(ctx context.Context, user access.ExternalUser, password string) error {
	id, err := a.Authenticate(ctx, user.Login, password)
	if err != nil {
		return err
	}
	if id != user.ExternalID {
		a.log.Warn("directory login refused", "login", user.Login, "reason", "login belongs to another directory entry",
			"externalId", user.ExternalID, "directoryId", id)
		return errLogin(user.Login)
	}
	return nil
}

// Authenticate checks login's directory password and returns the user's
// external id. It finds the user with the service account, then binds as
// that user on a fresh connection. An empty password is refused before the
// directory is asked: LDAP treats a simple bind with a DN and no password as
// an unauthenticated bind that succeeds.
func (a *Authenticator) Authenticate(ctx context.Context, login, password string) (string, error) {
	if login == "" || password == "" {
		return "", errLogin(login)
	}
	c, err := a.dir.serviceConn(ctx)
	if err != nil {
		return "", err
	}
	r := &reader{cfg: a.cfg}
	filter := "(" + a.cfg.Users.Login + "=" + ldap.EscapeFilter(login) + ")"
	req := r.userRequest(a.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, filter, r.userAttributes())
	var found []*ldap.Entry
	err = c.search(ctx, req, a.cfg.PageSize, func(e *ldap.Entry) error {
		found = append(found, e)
		return nil
	})
	c.close()
	if err != nil {
		return "", err
	}
	if len(found) != 1 {
		a.log.Info("directory login refused", "login", login, "reason", "user not found or not unique", "entries", len(found))
		return "", errLogin(login)
	}
	e := found[0]
	if r.disabled(e) {
		a.log.Info("directory login refused", "login", login, "reason", "account disabled", "dn", e.DN)
		return "", errLogin(login)
	}
	id, err := r.id(e)
	if err != nil {
		return "", fault.Wrap(err, fault.Internal, CodeDirectoryError, "directory entry %q of login %q has no usable %s", e.DN, login, a.cfg.Users.ID)
	}
	uc, err := a.dir.dial(ctx, func(c *conn) error { return c.Bind(e.DN, password) })
	if err != nil {
		if fault.As(err) != nil {
			return "", err // no server answered
		}
		a.log.Info("directory login refused", "login", login, "reason", "bind failed", "dn", e.DN, "ldapError", err.Error())
		return "", errLogin(login)
	}
	uc.close()
	return id, nil
}
