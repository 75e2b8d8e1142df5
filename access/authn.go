package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// UserCredentials are what a person presents at login.
type UserCredentials struct {
	Login    string
	Password string
	// OTP is a TOTP code or a recovery code; required when the user has
	// TOTP or belongs to a group that requires it.
	OTP    string
	Source netip.Addr
}

// AuthenticateUser checks a user's password (locally, or through the
// user's directory) and second factor. A TOTP code proved here is also a
// fresh approval (Principal.Approval). Unknown logins, disabled users and
// wrong passwords all get the same unauthenticated answer after the same
// argon2id work.
func (s *Service) AuthenticateUser(ctx context.Context, c UserCredentials) (Principal, error) {
	if _, err := s.checkLocked(ctx, KindUser, c.Login, c.Source); err != nil {
		return Principal{}, err
	}
	u, err := loadUser(ctx, s.db.Read(), c.Login)
	if err != nil && fault.CodeOf(err) != CodeUserUnknown {
		return Principal{}, err
	}
	if u == nil || u.Disabled || (u.Source == "" && u.passwordHash == "") {
		if _, err := s.passwordMatches(ctx, s.dummyHash, c.Password); err != nil {
			return Principal{}, err
		}
		return Principal{}, s.recordFailure(ctx, KindUser, c.Login, c.Source, "password")
	}
	if u.Source == "" {
		ok, err := s.passwordMatches(ctx, func() string { return u.passwordHash }, c.Password)
		if err != nil {
			return Principal{}, err
		}
		if !ok {
			return Principal{}, s.recordFailure(ctx, KindUser, c.Login, c.Source, "password")
		}
	} else {
		v := s.opts.Directories[u.Source]
		if v == nil {
			return Principal{}, fault.New(fault.Unavailable, CodeDirectoryUnknown, "no password verifier for directory %q of user %q", u.Source, c.Login)
		}
		err := v.VerifyPassword(ctx, ExternalUser{Source: u.Source, ExternalID: u.ExternalID, Login: u.Login}, c.Password)
		if f := fault.As(err); f != nil && f.Kind == fault.Unauthenticated {
			return Principal{}, s.recordFailure(ctx, KindUser, c.Login, c.Source, "directory password")
		}
		if err != nil {
			return Principal{}, err
		}
	}
	needTOTP, err := s.totpRequired(ctx, u)
	if err != nil {
		return Principal{}, err
	}
	if needTOTP && !u.TOTP {
		return Principal{}, fault.New(fault.Forbidden, CodeTOTPEnrollment, "user %q must enroll a second factor (TOTP) before logging in", c.Login)
	}
	if u.TOTP && c.OTP == "" {
		return Principal{}, fault.New(fault.Unauthenticated, CodeTOTPRequired, "a TOTP code is required for user %q", c.Login)
	}
	p := Principal{Kind: KindUser, ID: u.ID, Name: u.Login, Groups: u.Groups, Roles: u.Roles, Source: c.Source,
		Factors: []Factor{FactorPassword}}
	secondOK := false
	err = s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if u.TOTP {
			ok, err := s.verifySecondFactor(ctx, tx, u, c.OTP)
			if err != nil || !ok {
				return err
			}
			if p.Approval, err = s.recordApproval(ctx, tx, u.ID); err != nil {
				return err
			}
			p.Factors = append(p.Factors, FactorTOTP)
		}
		secondOK = true
		if err := s.clearFailures(ctx, tx, KindUser, c.Login, c.Source); err != nil {
			return err
		}
		return audit(Event{Type: "login", Actor: p.String(), Source: addrString(c.Source), Detail: map[string]string{"factors": factorList(p.Factors)}})
	})
	if err != nil {
		return Principal{}, err
	}
	if !secondOK {
		return Principal{}, s.recordFailure(ctx, KindUser, c.Login, c.Source, "totp")
	}
	s.log.Info("login", "principal", p.String(), "source", addrString(c.Source), "factors", factorList(p.Factors))
	return p, nil
}

// totpRequired reports whether the user has TOTP or any of its groups requires it.
func (s *Service) totpRequired(ctx context.Context, u *userRow) (bool, error) {
	if u.TOTP {
		return true, nil
	}
	var n int
	err := s.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM access_members m JOIN access_groups g ON g.id = m.group_id
		WHERE m.user_id = ? AND g.require_totp <> 0`, u.ID).Scan(&n)
	if err != nil {
		return false, internal(err, "read group policy")
	}
	return n > 0, nil
}

// Approve records a fresh TOTP approval for an already authenticated user
// (a browser session that is about to seal a batch) and returns p carrying it.
func (s *Service) Approve(ctx context.Context, p Principal, code string) (Principal, error) {
	if p.Kind != KindUser {
		return Principal{}, fault.New(fault.Forbidden, CodeOperationNotPermitted, "only users approve with TOTP, not %s", p.String())
	}
	if _, err := s.checkLocked(ctx, KindUser, p.Name, p.Source); err != nil {
		return Principal{}, err
	}
	u, err := loadUser(ctx, s.db.Read(), p.Name)
	if err != nil {
		return Principal{}, err
	}
	if u.Disabled {
		return Principal{}, errUnauthenticated()
	}
	if !u.TOTP {
		return Principal{}, fault.New(fault.Forbidden, CodeTOTPEnrollment, "user %q has no TOTP key to approve with", p.Name)
	}
	var ok bool
	err = s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if ok, err = s.verifySecondFactor(ctx, tx, u, code); err != nil || !ok {
			return err
		}
		if p.Approval, err = s.recordApproval(ctx, tx, u.ID); err != nil {
			return err
		}
		return audit(Event{Type: "approval", Actor: p.String(), Source: addrString(p.Source)})
	})
	if err != nil {
		return Principal{}, err
	}
	if !ok {
		return Principal{}, s.recordFailure(ctx, KindUser, p.Name, p.Source, "approval")
	}
	if !p.Has(FactorTOTP) {
		p.Factors = append(slices.Clone(p.Factors), FactorTOTP)
	}
	return p, nil
}

// staleAfter is when used, cancelled or expired approvals and tokens are
// deleted: long past any rule's approval age or token lifetime.
const staleAfter = 7 * 24 * time.Hour

func (s *Service) recordApproval(ctx context.Context, tx *sql.Tx, userID int64) (*Approval, error) {
	now := s.nowMS()
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_approvals WHERE created_at < ?`, now-staleAfter.Milliseconds()); err != nil {
		return nil, internal(err, "delete stale approvals")
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO access_approvals (user_id, factor, created_at) VALUES (?, ?, ?)`, userID, string(FactorTOTP), now)
	if err != nil {
		return nil, internal(err, "record approval")
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, internal(err, "record approval")
	}
	return &Approval{ID: id, Factor: FactorTOTP, At: time.UnixMilli(now)}, nil
}

func factorList(fs []Factor) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return joinList(s)
}

// Token kinds: bearer tokens are OAuth access tokens of processes,
// sessions are browser logins of users.
const (
	tokenBearer  = "bearer"
	tokenSession = "session"
)

// Token prefixes tell an OAuth access token from a user's session token.
const (
	BearerTokenPrefix  = "sgt_"
	SessionTokenPrefix = "sgs_"
)

// Tokens are opaque: 256 random bits, stored only as SHA-256. A lookup per
// request is needed anyway to honour revocation, so a signed JWT would add
// key management without saving the lookup. The prefix tells the kind.
func newToken(kind string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	prefix := BearerTokenPrefix
	if kind == tokenSession {
		prefix = SessionTokenPrefix
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func (s *Service) storeToken(ctx context.Context, tx *sql.Tx, kind string, p Principal, ttl time.Duration) (string, time.Time, error) {
	tok := newToken(kind)
	now := s.nowMS()
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_tokens WHERE expires_at < ?`, now-staleAfter.Milliseconds()); err != nil {
		return "", time.Time{}, internal(err, "delete stale tokens")
	}
	exp := now + ttl.Milliseconds()
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_tokens (hash, kind, principal_kind, principal_id, factors, issued_at, expires_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tokenHash(tok), kind, string(p.Kind), p.ID, factorList(p.Factors), now, exp, now); err != nil {
		return "", time.Time{}, internal(err, "store token")
	}
	return tok, time.UnixMilli(exp), nil
}

// StartSession opens a session for an authenticated user and returns its
// token and expiry. The session carries the factors proved at login, never
// a standing approval; it also ends after Options.SessionIdleTimeout
// without use.
func (s *Service) StartSession(ctx context.Context, p Principal) (string, time.Time, error) {
	if p.Kind != KindUser {
		return "", time.Time{}, fault.New(fault.Invalid, CodeInvalidInput, "sessions are for users, not %s", p.String())
	}
	var tok string
	var exp time.Time
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		var err error
		if tok, exp, err = s.storeToken(ctx, tx, tokenSession, p, s.opts.SessionTTL); err != nil {
			return err
		}
		return audit(Event{Type: "session.start", Actor: p.String(), Source: addrString(p.Source)})
	})
	return tok, exp, err
}

// Session is a person's login: the token to present as a bearer token,
// and when the session ends.
type Session struct {
	Token     string
	Principal Principal
	// ExpiresAt is the latest end; IdleTimeout ends it sooner when unused.
	ExpiresAt   time.Time
	IdleTimeout time.Duration
}

// Login authenticates a user as AuthenticateUser does (password, and TOTP
// where the user has it or a group requires it; failures count toward the
// lockout) and opens a session, so a person proves both factors once
// rather than on every request.
func (s *Service) Login(ctx context.Context, c UserCredentials) (Session, error) {
	p, err := s.AuthenticateUser(ctx, c)
	if err != nil {
		return Session{}, err
	}
	tok, exp, err := s.StartSession(ctx, p)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: tok, Principal: p, ExpiresAt: exp, IdleTimeout: s.opts.SessionIdleTimeout}, nil
}

// AuthenticateSession returns the user of a live session.
func (s *Service) AuthenticateSession(ctx context.Context, token string, src netip.Addr) (Principal, error) {
	return s.authenticateToken(ctx, tokenSession, token, src)
}

// AuthenticateBearer returns the process holding a live OAuth access token.
func (s *Service) AuthenticateBearer(ctx context.Context, token string, src netip.Addr) (Principal, error) {
	p, err := s.authenticateToken(ctx, tokenBearer, token, src)
	if err != nil {
		return Principal{}, err
	}
	p.Factors = append(p.Factors, FactorBearer)
	return p, nil
}

// EndToken revokes a session or bearer token (logout, OAuth revocation).
// An unknown token is not an error: the outcome is the same.
func (s *Service) EndToken(ctx context.Context, token, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL`, s.nowMS(), tokenHash(token))
		if err != nil {
			return internal(err, "revoke token")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return audit(Event{Type: "token.revoke", Actor: actor})
	})
}

// sessionTouchEvery bounds how often a session's last use is written: the
// idle timeout needs only this precision, and a write per request would
// cost more than the lookup.
const sessionTouchEvery = time.Minute

func (s *Service) authenticateToken(ctx context.Context, kind, token string, src netip.Addr) (Principal, error) {
	if _, err := s.checkLocked(ctx, "", "", src); err != nil {
		return Principal{}, err
	}
	var pkind, factors string
	var pid, exp, lastUsed int64
	var revoked sql.NullInt64
	err := s.db.Read().QueryRowContext(ctx, `SELECT principal_kind, principal_id, factors, expires_at, revoked_at, last_used_at
		FROM access_tokens WHERE hash = ? AND kind = ?`, tokenHash(token), kind).Scan(&pkind, &pid, &factors, &exp, &revoked, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, s.recordFailure(ctx, "", "", src, kind)
	}
	if err != nil {
		return Principal{}, internal(err, "read token")
	}
	// A token sealgate issued is no guess: once ended it is refused, but
	// not counted toward the source's lockout (a browser holding an
	// expired session would lock its own address).
	now := s.nowMS()
	idle := s.opts.SessionIdleTimeout.Milliseconds()
	if revoked.Valid || exp <= now || (kind == tokenSession && now-lastUsed > idle) {
		return Principal{}, fault.New(fault.Unauthenticated, CodeUnauthenticated, "the %s token has expired or was revoked", kind)
	}
	if kind == tokenSession && now-lastUsed >= min(sessionTouchEvery.Milliseconds(), idle/2) {
		if err := s.db.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE access_tokens SET last_used_at = ? WHERE hash = ?`, now, tokenHash(token))
			return err
		}); err != nil {
			return Principal{}, internal(err, "record session use")
		}
	}
	var p Principal
	switch Kind(pkind) {
	case KindUser:
		p, err = s.userPrincipal(ctx, pid)
	case KindProcess:
		p, err = s.processPrincipal(ctx, pid)
	default:
		err = fault.New(fault.Internal, fault.CodeInternal, "token of unknown principal kind %q", pkind)
	}
	if fault.CodeOf(err) == CodeUnauthenticated {
		return Principal{}, s.recordFailure(ctx, "", "", src, kind)
	}
	if err != nil {
		return Principal{}, err
	}
	for _, f := range splitList(factors) {
		p.Factors = append(p.Factors, Factor(f))
	}
	p.Source = src
	return p, nil
}

// userPrincipal loads an enabled user as a principal without factors.
func (s *Service) userPrincipal(ctx context.Context, id int64) (Principal, error) {
	us, err := loadUsers(ctx, s.db.Read(), `id = ?`, id)
	if err != nil {
		return Principal{}, err
	}
	if len(us) == 0 || us[0].Disabled {
		return Principal{}, errUnauthenticated()
	}
	u := us[0]
	return Principal{Kind: KindUser, ID: u.ID, Name: u.Login, Groups: u.Groups, Roles: u.Roles}, nil
}

// String renders the principal as "kind:name" ("anonymous" when unauthenticated).
func (p Principal) String() string {
	if p.Kind == KindAnonymous {
		return "anonymous"
	}
	return strings.Join([]string{string(p.Kind), p.Name}, ":")
}
