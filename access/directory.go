package access

import (
	"context"
	"database/sql"
	"errors"

	"github.com/sealgate/sealgate/fault"
)

// ExternalUser is a user as a directory (LDAP, Active Directory) describes
// it. ExternalID (objectGUID, entryUUID) is the identity; Login may change.
type ExternalUser struct {
	Source      string   `json:"source"`
	ExternalID  string   `json:"externalId"`
	Login       string   `json:"login"`
	DisplayName string   `json:"displayName,omitempty"`
	Mail        string   `json:"mail,omitempty"`
	Disabled    bool     `json:"disabled"`
	Groups      []string `json:"groups"`
}

// Membership names a directory user (by ExternalID) and a sealgate group.
type Membership struct {
	ExternalID string `json:"externalId"`
	Group      string `json:"group"`
}

// ExternalChanges is one synchronisation step from a directory, applied
// all together or not at all.
type ExternalChanges struct {
	// Added are new users; their Groups become their directory memberships.
	Added []ExternalUser
	// Changed replaces login, display name, mail and disabled state of
	// existing users (found by ExternalID). Their Groups are ignored:
	// membership changes go in Joined and Left.
	Changed []ExternalUser
	// Disabled are ExternalIDs of users to disable.
	Disabled []string
	// Removed are ExternalIDs of users to delete.
	Removed []string
	// Joined and Left change directory memberships. A group that does not
	// exist yet is created, marked with the source.
	Joined []Membership
	Left   []Membership
}

// PasswordVerifier checks a directory user's password, typically by binding
// to the directory as that user. It returns nil when the password is right,
// an error of kind fault.Unauthenticated when it is wrong, and any other
// error when the directory cannot answer.
type PasswordVerifier interface {
	VerifyPassword(ctx context.Context, user ExternalUser, password string) error
}

// ExternalUsers returns the users synchronised from source, with their
// directory memberships.
func (s *Service) ExternalUsers(ctx context.Context, source string) ([]ExternalUser, error) {
	us, err := loadUsers(ctx, s.db.Read(), `source = ?`, source)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.Read().QueryContext(ctx, `SELECT m.user_id, g.name FROM access_members m
		JOIN access_groups g ON g.id = m.group_id WHERE m.source = ? ORDER BY g.name`, source)
	if err != nil {
		return nil, internal(err, "read directory memberships")
	}
	defer rows.Close()
	groups := map[int64][]string{}
	for rows.Next() {
		var id int64
		var g string
		if err := rows.Scan(&id, &g); err != nil {
			return nil, internal(err, "read directory membership")
		}
		groups[id] = append(groups[id], g)
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "read directory memberships")
	}
	out := make([]ExternalUser, len(us))
	for i, u := range us {
		out[i] = ExternalUser{Source: source, ExternalID: u.ExternalID, Login: u.Login, DisplayName: u.DisplayName,
			Mail: u.Mail, Disabled: u.Disabled, Groups: groups[u.ID]}
		if out[i].Groups == nil {
			out[i].Groups = []string{}
		}
	}
	return out, nil
}

// ApplyExternal applies one synchronisation step from directory source in a
// single transaction. Users that end up disabled or removed lose every
// right at once (tokens and sessions end, pending approvals are cancelled);
// every change is audited with actor as its author.
func (s *Service) ApplyExternal(ctx context.Context, source string, ch ExternalChanges, actor string) error {
	if err := validName("directory source", source); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		for _, u := range ch.Added {
			if err := s.addExternal(ctx, tx, audit, source, u, actor); err != nil {
				return err
			}
		}
		for _, u := range ch.Changed {
			if err := s.changeExternal(ctx, tx, audit, source, u, actor); err != nil {
				return err
			}
		}
		for _, xid := range ch.Disabled {
			id, login, err := externalUserID(ctx, tx, source, xid)
			if err != nil {
				return err
			}
			if err := s.setDisabled(ctx, tx, audit, id, login, true, actor); err != nil {
				return err
			}
		}
		for _, xid := range ch.Removed {
			id, login, err := externalUserID(ctx, tx, source, xid)
			if err != nil {
				return err
			}
			if err := s.removeUser(ctx, tx, audit, id, login, actor); err != nil {
				return err
			}
		}
		for _, m := range ch.Joined {
			if err := s.externalMembership(ctx, tx, audit, source, m, true, actor); err != nil {
				return err
			}
		}
		for _, m := range ch.Left {
			if err := s.externalMembership(ctx, tx, audit, source, m, false, actor); err != nil {
				return err
			}
		}
		return bumpGeneration(ctx, tx)
	})
}

func checkExternal(source string, u ExternalUser) error {
	if u.Source != "" && u.Source != source {
		return fault.New(fault.Invalid, CodeInvalidInput, "user %q is from source %q, not %q", u.Login, u.Source, source)
	}
	if u.ExternalID == "" {
		return fault.New(fault.Invalid, CodeInvalidInput, "directory user %q has no external id", u.Login)
	}
	return validName("login", u.Login)
}

func (s *Service) addExternal(ctx context.Context, tx *sql.Tx, audit func(Event) error, source string, u ExternalUser, actor string) error {
	if err := checkExternal(source, u); err != nil {
		return err
	}
	if _, err := lookupUserID(ctx, tx, u.Login); err == nil {
		return fault.New(fault.Conflict, CodeUserExists, "directory user %q (%s) clashes with existing login %q", u.ExternalID, source, u.Login)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO access_users (login, display_name, mail, source, external_id, disabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, u.Login, u.DisplayName, u.Mail, source, u.ExternalID, u.Disabled, s.nowMS())
	if err != nil {
		return internal(err, "add directory user")
	}
	id, err := res.LastInsertId()
	if err != nil {
		return internal(err, "add directory user")
	}
	if err := audit(Event{Type: "user.add", Actor: actor, Subject: "user:" + u.Login,
		Detail: map[string]string{"source": source, "externalId": u.ExternalID}}); err != nil {
		return err
	}
	for _, g := range u.Groups {
		gid, err := s.ensureGroup(ctx, tx, audit, source, g, actor)
		if err != nil {
			return err
		}
		if err := s.setMembership(ctx, tx, audit, gid, g, id, u.Login, source, true, actor); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) changeExternal(ctx context.Context, tx *sql.Tx, audit func(Event) error, source string, u ExternalUser, actor string) error {
	if err := checkExternal(source, u); err != nil {
		return err
	}
	cur, err := loadUsers(ctx, tx, `source = ? AND external_id = ?`, source, u.ExternalID)
	if err != nil {
		return err
	}
	if len(cur) == 0 {
		return fault.New(fault.NotFound, CodeUserUnknown, "directory user %q (%s) does not exist", u.ExternalID, source)
	}
	old := cur[0]
	if old.Login != u.Login {
		if _, err := lookupUserID(ctx, tx, u.Login); err == nil {
			return fault.New(fault.Conflict, CodeUserExists, "directory user %q (%s) cannot be renamed to existing login %q", u.ExternalID, source, u.Login)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE access_users SET login = ?, display_name = ?, mail = ? WHERE id = ?`,
		u.Login, u.DisplayName, u.Mail, old.ID); err != nil {
		return internal(err, "change directory user")
	}
	detail := map[string]string{"source": source, "externalId": u.ExternalID}
	if old.Login != u.Login {
		detail["renamedFrom"] = old.Login
	}
	if err := audit(Event{Type: "user.change", Actor: actor, Subject: "user:" + u.Login, Detail: detail}); err != nil {
		return err
	}
	if old.Disabled != u.Disabled {
		return s.setDisabled(ctx, tx, audit, old.ID, u.Login, u.Disabled, actor)
	}
	return nil
}

func externalUserID(ctx context.Context, tx *sql.Tx, source, xid string) (int64, string, error) {
	var id int64
	var login string
	err := tx.QueryRowContext(ctx, `SELECT id, login FROM access_users WHERE source = ? AND external_id = ?`, source, xid).Scan(&id, &login)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fault.New(fault.NotFound, CodeUserUnknown, "directory user %q (%s) does not exist", xid, source)
	}
	if err != nil {
		return 0, "", internal(err, "look up directory user")
	}
	return id, login, nil
}

func (s *Service) ensureGroup(ctx context.Context, tx *sql.Tx, audit func(Event) error, source, name, actor string) (int64, error) {
	id, err := lookupGroupID(ctx, tx, name)
	if err == nil || fault.CodeOf(err) != CodeGroupUnknown {
		return id, err
	}
	if err := validName("group name", name); err != nil {
		return 0, err
	}
	if id, err = insertGroup(ctx, tx, name, source, false, s.nowMS()); err != nil {
		return 0, err
	}
	return id, audit(Event{Type: "group.add", Actor: actor, Subject: "group:" + name, Detail: map[string]string{"source": source}})
}

func (s *Service) externalMembership(ctx context.Context, tx *sql.Tx, audit func(Event) error, source string, m Membership, member bool, actor string) error {
	uid, login, err := externalUserID(ctx, tx, source, m.ExternalID)
	if err != nil {
		return err
	}
	var gid int64
	if member {
		gid, err = s.ensureGroup(ctx, tx, audit, source, m.Group, actor)
	} else {
		gid, err = lookupGroupID(ctx, tx, m.Group)
	}
	if err != nil {
		return err
	}
	return s.setMembership(ctx, tx, audit, gid, m.Group, uid, login, source, member, actor)
}
