package access

import (
	"context"
	"database/sql"
	"errors"

	"github.com/sealgate/sealgate/fault"
)

// Group is a named set of users. Rules granted to a group apply to its
// members; RequireTOTP makes every member log in with a second factor.
type Group struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name"`
	Source      string   `json:"source,omitempty"`
	RequireTOTP bool     `json:"requireTotp"`
	Members     []string `json:"members"`
}

// AddGroup creates a local group.
func (s *Service) AddGroup(ctx context.Context, name string, requireTOTP bool, actor string) (Group, error) {
	if err := validName("group name", name); err != nil {
		return Group{}, err
	}
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if _, err := lookupGroupID(ctx, tx, name); err == nil {
			return fault.New(fault.Conflict, CodeGroupExists, "group %q already exists", name)
		}
		if _, err := insertGroup(ctx, tx, name, "", requireTOTP, s.nowMS()); err != nil {
			return err
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "group.add", Actor: actor, Subject: "group:" + name})
	})
	if err != nil {
		return Group{}, err
	}
	return s.Group(ctx, name)
}

func insertGroup(ctx context.Context, tx *sql.Tx, name, source string, requireTOTP bool, now int64) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO access_groups (name, source, require_totp, created_at) VALUES (?, ?, ?, ?)`,
		name, source, requireTOTP, now)
	if err != nil {
		return 0, internal(err, "add group")
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, internal(err, "add group")
	}
	return id, nil
}

func lookupGroupID(ctx context.Context, q queryer, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM access_groups WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fault.New(fault.NotFound, CodeGroupUnknown, "group %q does not exist", name)
	}
	if err != nil {
		return 0, internal(err, "look up group")
	}
	return id, nil
}

// Groups lists all groups with their members' logins.
func (s *Service) Groups(ctx context.Context) ([]Group, error) {
	return loadGroups(ctx, s.db.Read(), `1 = 1`)
}

// Group returns one group.
func (s *Service) Group(ctx context.Context, name string) (Group, error) {
	gs, err := loadGroups(ctx, s.db.Read(), `name = ?`, name)
	if err != nil {
		return Group{}, err
	}
	if len(gs) == 0 {
		return Group{}, fault.New(fault.NotFound, CodeGroupUnknown, "group %q does not exist", name)
	}
	return gs[0], nil
}

func loadGroups(ctx context.Context, q queryer, where string, args ...any) ([]Group, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, name, source, require_totp FROM access_groups WHERE `+where+` ORDER BY name`, args...)
	if err != nil {
		return nil, internal(err, "read groups")
	}
	out := []Group{}
	idx := map[int64]int{}
	for rows.Next() {
		var g Group
		if err := rows.Scan(&g.ID, &g.Name, &g.Source, &g.RequireTOTP); err != nil {
			rows.Close()
			return nil, internal(err, "read group")
		}
		g.Members = []string{}
		idx[g.ID] = len(out)
		out = append(out, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, internal(err, "read groups")
	}
	mrows, err := q.QueryContext(ctx, `SELECT m.group_id, u.login FROM access_members m JOIN access_users u ON u.id = m.user_id ORDER BY u.login`)
	if err != nil {
		return nil, internal(err, "read members")
	}
	defer mrows.Close()
	for mrows.Next() {
		var gid int64
		var login string
		if err := mrows.Scan(&gid, &login); err != nil {
			return nil, internal(err, "read member")
		}
		if i, ok := idx[gid]; ok {
			out[i].Members = append(out[i].Members, login)
		}
	}
	return out, mrows.Err()
}

// SetGroupTOTP makes a second factor required (or not) for the group's members.
func (s *Service) SetGroupTOTP(ctx context.Context, name string, require bool, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupGroupID(ctx, tx, name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_groups SET require_totp = ? WHERE id = ?`, require, id); err != nil {
			return internal(err, "set group totp")
		}
		detail := map[string]string{"requireTotp": "false"}
		if require {
			detail["requireTotp"] = "true"
		}
		return audit(Event{Type: "group.totp", Actor: actor, Subject: "group:" + name, Detail: detail})
	})
}

// AddMember puts a local user into a group. Directory users' memberships
// come from the directory.
func (s *Service) AddMember(ctx context.Context, group, login, actor string) error {
	return s.changeMember(ctx, group, login, true, actor)
}

// RemoveMember takes a local user out of a group.
func (s *Service) RemoveMember(ctx context.Context, group, login, actor string) error {
	return s.changeMember(ctx, group, login, false, actor)
}

func (s *Service) changeMember(ctx context.Context, group, login string, member bool, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		gid, err := lookupGroupID(ctx, tx, group)
		if err != nil {
			return err
		}
		u, err := loadUser(ctx, tx, login)
		if err != nil {
			return err
		}
		if u.Source != "" {
			return fault.New(fault.Conflict, CodeUserExternal, "user %q comes from directory %q; change group membership there", login, u.Source)
		}
		return s.setMembership(ctx, tx, audit, gid, group, u.ID, login, "", member, actor)
	})
}

func (s *Service) setMembership(ctx context.Context, tx *sql.Tx, audit func(Event) error, gid int64, group string, uid int64, login, source string, member bool, actor string) error {
	var err error
	typ := "group.member.add"
	if member {
		_, err = tx.ExecContext(ctx, `INSERT INTO access_members (group_id, user_id, source) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, gid, uid, source)
	} else {
		typ = "group.member.remove"
		_, err = tx.ExecContext(ctx, `DELETE FROM access_members WHERE group_id = ? AND user_id = ?`, gid, uid)
	}
	if err != nil {
		return internal(err, "change membership")
	}
	if err := bumpGeneration(ctx, tx); err != nil {
		return err
	}
	return audit(Event{Type: typ, Actor: actor, Subject: "group:" + group, Detail: map[string]string{"user": login}})
}
