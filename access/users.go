package access

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/sealgate/sealgate/fault"
)

// Administrative roles.
const (
	// RoleAdmin manages users, groups, processes and rules and reads the audit trail.
	RoleAdmin = "admin"
	// RoleAuditor reads the audit trail only.
	RoleAuditor = "auditor"
)

// User is a person who logs in: local (password kept here) or external
// (sourced from a directory, identified by Source and ExternalID).
type User struct {
	ID          int64    `json:"id"`
	Login       string   `json:"login"`
	DisplayName string   `json:"displayName,omitempty"`
	Mail        string   `json:"mail,omitempty"`
	Source      string   `json:"source,omitempty"`
	ExternalID  string   `json:"externalId,omitempty"`
	Disabled    bool     `json:"disabled"`
	Roles       []string `json:"roles"`
	TOTP        bool     `json:"totpEnrolled"`
	Groups      []string `json:"groups"`
	// Locks in force against the account (Service.Unlock lifts them).
	Locks []Lock `json:"locks,omitempty"`
}

// NewUser describes a local user to create.
type NewUser struct {
	Login       string   `json:"login"`
	DisplayName string   `json:"displayName,omitempty"`
	Mail        string   `json:"mail,omitempty"`
	Password    string   `json:"password"`
	Roles       []string `json:"roles,omitempty"`
}

// queryer is what reads need from *sql.DB and *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func checkRoles(roles []string) error {
	for _, r := range roles {
		if r != RoleAdmin && r != RoleAuditor {
			return fault.New(fault.Invalid, CodeInvalidInput, "role %q is not one of %s, %s", r, RoleAdmin, RoleAuditor)
		}
	}
	return nil
}

// checkNewPassword enforces a minimum length, and keeps user passwords
// apart from client secrets, which HTTP Basic tells apart by their prefix.
func checkNewPassword(login, password string) error {
	if len(password) < 12 {
		return fault.New(fault.Invalid, CodeInvalidInput, "password for user %q must have at least 12 characters", login)
	}
	if strings.HasPrefix(password, ClientSecretPrefix) {
		return fault.New(fault.Invalid, CodeInvalidInput, "password for user %q must not start with %q", login, ClientSecretPrefix)
	}
	return nil
}

// AddUser creates a local user with a password.
func (s *Service) AddUser(ctx context.Context, u NewUser, actor string) (User, error) {
	if err := validName("login", u.Login); err != nil {
		return User{}, err
	}
	if err := checkRoles(u.Roles); err != nil {
		return User{}, err
	}
	if err := checkNewPassword(u.Login, u.Password); err != nil {
		return User{}, err
	}
	phc, err := s.newPasswordHash(ctx, u.Password)
	if err != nil {
		return User{}, err
	}
	err = s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if _, err := lookupUserID(ctx, tx, u.Login); err == nil {
			return fault.New(fault.Conflict, CodeUserExists, "user %q already exists", u.Login)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_users (login, display_name, mail, password_hash, roles, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, u.Login, u.DisplayName, u.Mail, phc, joinList(u.Roles), s.nowMS()); err != nil {
			return internal(err, "add user")
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "user.add", Actor: actor, Subject: "user:" + u.Login, Detail: map[string]string{"roles": joinList(u.Roles)}})
	})
	if err != nil {
		return User{}, err
	}
	return s.User(ctx, u.Login)
}

func lookupUserID(ctx context.Context, q queryer, login string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM access_users WHERE login = ?`, login).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fault.New(fault.NotFound, CodeUserUnknown, "user %q does not exist", login)
	}
	if err != nil {
		return 0, internal(err, "look up user")
	}
	return id, nil
}

// userRow is a user with the stored credentials, for authentication.
type userRow struct {
	User
	passwordHash string
	totpSecret   string
	totpPending  string
	totpLastStep int64
}

const userColumns = `id, login, display_name, mail, source, COALESCE(external_id, ''), disabled, roles,
	password_hash, totp_secret, totp_pending, totp_last_step`

func scanUser(sc interface{ Scan(...any) error }) (*userRow, error) {
	var u userRow
	var roles string
	if err := sc.Scan(&u.ID, &u.Login, &u.DisplayName, &u.Mail, &u.Source, &u.ExternalID, &u.Disabled, &roles,
		&u.passwordHash, &u.totpSecret, &u.totpPending, &u.totpLastStep); err != nil {
		return nil, err
	}
	u.Roles = splitList(roles)
	u.TOTP = u.totpSecret != ""
	return &u, nil
}

// loadUsers returns the users matching where (with args), with their groups.
func loadUsers(ctx context.Context, q queryer, where string, args ...any) ([]*userRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+userColumns+` FROM access_users WHERE `+where+` ORDER BY login`, args...)
	if err != nil {
		return nil, internal(err, "read users")
	}
	var out []*userRow
	byID := map[int64]*userRow{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, internal(err, "read user")
		}
		u.Groups = []string{}
		if u.Roles == nil {
			u.Roles = []string{}
		}
		out = append(out, u)
		byID[u.ID] = u
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, internal(err, "read users")
	}
	if len(out) == 0 {
		return out, nil
	}
	mrows, err := q.QueryContext(ctx, `SELECT m.user_id, g.name FROM access_members m JOIN access_groups g ON g.id = m.group_id ORDER BY g.name`)
	if err != nil {
		return nil, internal(err, "read memberships")
	}
	defer mrows.Close()
	for mrows.Next() {
		var id int64
		var name string
		if err := mrows.Scan(&id, &name); err != nil {
			return nil, internal(err, "read membership")
		}
		if u := byID[id]; u != nil {
			u.Groups = append(u.Groups, name)
		}
	}
	return out, mrows.Err()
}

func loadUser(ctx context.Context, q queryer, login string) (*userRow, error) {
	us, err := loadUsers(ctx, q, `login = ?`, login)
	if err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return nil, fault.New(fault.NotFound, CodeUserUnknown, "user %q does not exist", login)
	}
	return us[0], nil
}

// User returns the user with login.
func (s *Service) User(ctx context.Context, login string) (User, error) {
	u, err := loadUser(ctx, s.db.Read(), login)
	if err != nil {
		return User{}, err
	}
	us, err := s.withLocks(ctx, []*userRow{u})
	if err != nil {
		return User{}, err
	}
	return us[0], nil
}

// Users lists all users, local and external.
func (s *Service) Users(ctx context.Context) ([]User, error) {
	us, err := loadUsers(ctx, s.db.Read(), `1 = 1`)
	if err != nil {
		return nil, err
	}
	return s.withLocks(ctx, us)
}

// withLocks returns the users with the locks in force against them.
func (s *Service) withLocks(ctx context.Context, us []*userRow) ([]User, error) {
	locks, err := s.locks(ctx, KindUser)
	if err != nil {
		return nil, err
	}
	out := make([]User, len(us))
	for i, u := range us {
		out[i] = u.User
		out[i].Locks = locks[u.Login]
	}
	return out, nil
}

// SetPassword replaces a local user's password. Directory users keep their
// password in the directory.
func (s *Service) SetPassword(ctx context.Context, login, password, actor string) error {
	if err := checkNewPassword(login, password); err != nil {
		return err
	}
	phc, err := s.newPasswordHash(ctx, password)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		u, err := loadUser(ctx, tx, login)
		if err != nil {
			return err
		}
		if u.Source != "" {
			return fault.New(fault.Conflict, CodeUserExternal, "user %q comes from directory %q; change the password there", login, u.Source)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_users SET password_hash = ? WHERE id = ?`, phc, u.ID); err != nil {
			return internal(err, "set password")
		}
		// A new password ends the sessions opened with the old one.
		if err := endCredentials(ctx, tx, KindUser, u.ID, s.nowMS()); err != nil {
			return err
		}
		return audit(Event{Type: "user.password", Actor: actor, Subject: "user:" + login})
	})
}

// SetRoles replaces a user's administrative roles.
func (s *Service) SetRoles(ctx context.Context, login string, roles []string, actor string) error {
	if err := checkRoles(roles); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupUserID(ctx, tx, login)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_users SET roles = ? WHERE id = ?`, joinList(roles), id); err != nil {
			return internal(err, "set roles")
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "user.roles", Actor: actor, Subject: "user:" + login, Detail: map[string]string{"roles": joinList(roles)}})
	})
}

// SetUserDisabled disables (or re-enables) a user. Disabling takes every
// right away at once: sessions and tokens end, pending approvals are
// cancelled, and the next decision denies.
func (s *Service) SetUserDisabled(ctx context.Context, login string, disabled bool, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupUserID(ctx, tx, login)
		if err != nil {
			return err
		}
		return s.setDisabled(ctx, tx, audit, id, login, disabled, actor)
	})
}

func (s *Service) setDisabled(ctx context.Context, tx *sql.Tx, audit func(Event) error, id int64, login string, disabled bool, actor string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE access_users SET disabled = ? WHERE id = ?`, disabled, id); err != nil {
		return internal(err, "disable user")
	}
	typ := "user.enable"
	if disabled {
		typ = "user.disable"
		if err := endCredentials(ctx, tx, KindUser, id, s.nowMS()); err != nil {
			return err
		}
	}
	if err := bumpGeneration(ctx, tx); err != nil {
		return err
	}
	return audit(Event{Type: typ, Actor: actor, Subject: "user:" + login})
}

// DeprovisionUser deletes a user (local or external) with its memberships,
// credentials and the rules naming it.
func (s *Service) DeprovisionUser(ctx context.Context, login, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupUserID(ctx, tx, login)
		if err != nil {
			return err
		}
		return s.removeUser(ctx, tx, audit, id, login, actor)
	})
}

func (s *Service) removeUser(ctx context.Context, tx *sql.Tx, audit func(Event) error, id int64, login, actor string) error {
	if err := endCredentials(ctx, tx, KindUser, id, s.nowMS()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_rules WHERE subject_kind = ? AND subject_id = ?`, SubjectUser, id); err != nil {
		return internal(err, "remove rules of user")
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_users WHERE id = ?`, id); err != nil {
		return internal(err, "remove user")
	}
	if err := bumpGeneration(ctx, tx); err != nil {
		return err
	}
	return audit(Event{Type: "user.remove", Actor: actor, Subject: "user:" + login})
}

// endCredentials revokes every token and session of a principal and, for
// users, cancels approvals not yet used.
func endCredentials(ctx context.Context, tx *sql.Tx, kind Kind, id, now int64) error {
	if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = ?
		WHERE principal_kind = ? AND principal_id = ? AND revoked_at IS NULL`, now, string(kind), id); err != nil {
		return internal(err, "revoke tokens")
	}
	if kind == KindUser {
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_approvals WHERE user_id = ? AND used_at IS NULL`, id); err != nil {
			return internal(err, "cancel approvals")
		}
	}
	return nil
}
