package ldapsync

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/sealgate/sealgate/access"
)

// inChainRule is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: a filter
// (memberOf:1.2.840.113556.1.4.1941:=G) matches members of G at any depth.
const inChainRule = "1.2.840.113556.1.4.1941"

// normDN returns a canonical form of dn for comparisons: attribute types
// and values lower-cased, spacing and escaping made uniform. DNs that do not
// parse are compared as lower-cased text.
func normDN(dn string) string {
	if !strings.ContainsAny(dn, "\\\"+#;<> ") {
		// The common case needs no parser: nothing escaped, no multi-valued
		// RDNs, no spaces to trim. Sync normalizes every member value, so
		// this matters.
		return strings.ToLower(dn)
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	var b strings.Builder
	for i, rdn := range parsed.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(ldap.EscapeDN(strings.ToLower(a.Value)))
		}
	}
	return b.String()
}

// guidString renders a 16-byte Microsoft GUID (objectGUID) in its canonical
// text form: the first three fields are stored little-endian.
func guidString(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("GUID of %d bytes, want 16", len(b))
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16]), nil
}

// laterMark reports whether change mark a is after b. Marks are
// generalized times (modifyTimestamp) or integers (uSNChanged).
func laterMark(a, b string) bool {
	if b == "" {
		return a != ""
	}
	ai, errA := strconv.ParseUint(a, 10, 64)
	bi, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return ai > bi
	}
	return a > b
}

// usableName reports whether access accepts v as a login or group name:
// 1 to 128 characters, no spaces, commas, colons or control characters.
// Checking here lets one odd entry be skipped instead of failing the
// whole sync transaction.
func usableName(v string) bool {
	return v != "" && len(v) <= 128 && !strings.ContainsFunc(v, func(r rune) bool {
		return r <= ' ' || r == ',' || r == ':' || r == 0x7f
	})
}

// reader turns directory entries into access.ExternalUser values.
type reader struct {
	cfg Config
	// mark is the highest change mark seen (next incremental sync's start).
	mark string
	// skipped lists user entries that could not be mapped, with the reason.
	skipped []string
}

func (r *reader) see(e *ldap.Entry, attr string) {
	if v := e.GetEqualFoldAttributeValue(attr); laterMark(v, r.mark) {
		r.mark = v
	}
}

// groupGraph is the directory's groups: names, membership and nesting.
type groupGraph struct {
	dns   []string       // DN per group
	names []string       // sealgate name per group; "" when the group is not synced
	index map[string]int // normalized DN → group
	// members maps what a group lists (normalized member DN, or lower-cased
	// login for memberUid) to the groups listing it.
	members map[string][]int
	// memberOf holds each group's own memberOf values (memberOf membership).
	memberOf [][]string
	nested   bool
	closure  [][]string // memo: names of a group and all groups it is in
	// inChain maps a user id to group names resolved by the directory (AD).
	inChain map[string][]string
	// inChainMissing counts users whose direct groups the in-chain answer
	// lacked: a server that does not know the rule matches nothing.
	inChainMissing int
}

// readGroups loads every group under the group base.
func (r *reader) readGroups(ctx context.Context, c *conn) (*groupGraph, error) {
	g := &groupGraph{
		index:   map[string]int{},
		members: map[string][]int{},
		nested:  r.cfg.Groups.Nested == NestedResolve,
	}
	mapped := map[string]string{}
	for k, v := range r.cfg.Groups.Map {
		if strings.Contains(k, "=") {
			mapped[normDN(k)] = v
		} else {
			mapped[strings.ToLower(k)] = v
		}
	}
	membership := r.cfg.Groups.Membership
	attrs := []string{r.cfg.Groups.Name, r.cfg.Groups.Changed, membership}
	req := ldap.NewSearchRequest(r.cfg.Groups.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		r.cfg.Groups.Filter, attrs, nil)
	err := c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
		r.see(e, r.cfg.Groups.Changed)
		i := len(g.dns)
		key := normDN(e.DN)
		cn := e.GetEqualFoldAttributeValue(r.cfg.Groups.Name)
		name, ok := mapped[key]
		if !ok {
			name, ok = mapped[strings.ToLower(cn)]
		}
		if !ok && !r.cfg.Groups.OnlyMapped {
			name = cn
		}
		if name != "" && !usableName(name) {
			r.skipped = append(r.skipped, fmt.Sprintf("group %s: %q is not a usable sealgate group name; name it in ldap.groups.map", e.DN, name))
			name = ""
		}
		g.dns = append(g.dns, e.DN)
		g.names = append(g.names, name)
		g.index[key] = i
		values := e.GetEqualFoldAttributeValues(membership)
		switch membership {
		case MembershipMemberOf:
			g.memberOf = append(g.memberOf, values)
		case MembershipMemberUID:
			for _, v := range values {
				g.members[strings.ToLower(v)] = append(g.members[strings.ToLower(v)], i)
			}
		default:
			for _, v := range values {
				if membership == MembershipUniqueMember {
					// nameAndOptionalUID: "dn#'0101'B"
					if h := strings.LastIndex(v, "#'"); h > 0 && strings.HasSuffix(v, "'B") {
						v = v[:h]
					}
				}
				k := normDN(v)
				g.members[k] = append(g.members[k], i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	g.closure = make([][]string, len(g.dns))
	return g, nil
}

// parents returns the groups group i is a direct member of.
func (g *groupGraph) parents(i int) []int {
	if len(g.memberOf) > 0 {
		var ps []int
		for _, dn := range g.memberOf[i] {
			if p, ok := g.index[normDN(dn)]; ok {
				ps = append(ps, p)
			}
		}
		return ps
	}
	return g.members[normDN(g.dns[i])]
}

// namesOf returns the sealgate names of group i and, when nesting is
// resolved, of every group it is in, directly or not. Cycles are harmless.
func (g *groupGraph) namesOf(i int) []string {
	if g.closure[i] != nil {
		return g.closure[i]
	}
	seen := map[int]bool{i: true}
	queue := []int{i}
	names := []string{}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		if g.names[j] != "" {
			names = append(names, g.names[j])
		}
		if !g.nested {
			continue
		}
		for _, p := range g.parents(j) {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	g.closure[i] = names
	return names
}

// groupsOf returns the sorted sealgate groups of the user entry e with id.
func (g *groupGraph) groupsOf(cfg Config, e *ldap.Entry, id, login string) []string {
	var direct []int
	switch cfg.Groups.Membership {
	case MembershipMemberOf:
		for _, dn := range e.GetEqualFoldAttributeValues(MembershipMemberOf) {
			if i, ok := g.index[normDN(dn)]; ok {
				direct = append(direct, i)
			}
		}
	case MembershipMemberUID:
		direct = g.members[strings.ToLower(login)]
	default:
		direct = g.members[normDN(e.DN)]
	}
	var names []string
	for _, i := range direct {
		names = append(names, g.namesOf(i)...)
	}
	if g.inChain != nil {
		if slices.ContainsFunc(names, func(n string) bool { return !slices.Contains(g.inChain[id], n) }) {
			g.inChainMissing++
		}
		names = append(names, g.inChain[id]...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// resolveInChain asks the directory for each synced group's members at any
// depth (Active Directory), instead of following nesting here.
func (r *reader) resolveInChain(ctx context.Context, c *conn, g *groupGraph) error {
	g.inChain = map[string][]string{}
	for i, dn := range g.dns {
		if g.names[i] == "" {
			continue
		}
		filter := fmt.Sprintf("(&%s(memberOf:%s:=%s))", r.cfg.Users.Filter, inChainRule, ldap.EscapeFilter(dn))
		req := ldap.NewSearchRequest(r.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, []string{r.cfg.Users.ID}, nil)
		err := c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
			if id, err := r.id(e); err == nil {
				g.inChain[id] = append(g.inChain[id], g.names[i])
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// id reads the entry's unique id.
func (r *reader) id(e *ldap.Entry) (string, error) {
	attr := r.cfg.Users.ID
	if r.cfg.Users.IDFormat == IDGUID {
		raw := e.GetEqualFoldRawAttributeValue(attr)
		if len(raw) == 0 {
			return "", fmt.Errorf("no %s", attr)
		}
		s, err := guidString(raw)
		if err != nil {
			return "", fmt.Errorf("%s: %v", attr, err)
		}
		return s, nil
	}
	v := e.GetEqualFoldAttributeValue(attr)
	if v == "" {
		return "", fmt.Errorf("no %s", attr)
	}
	return strings.ToLower(v), nil
}

// disabled applies the configured rule to e.
func (r *reader) disabled(e *ldap.Entry) bool {
	rule := r.cfg.Users.Disabled
	if rule.Attribute == "" {
		return false
	}
	values := e.GetEqualFoldAttributeValues(rule.Attribute)
	switch {
	case rule.Bit != 0:
		for _, v := range values {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n&rule.Bit != 0 {
				return true
			}
		}
		return false
	case rule.Value != "":
		return slices.ContainsFunc(values, func(v string) bool { return strings.EqualFold(v, rule.Value) })
	}
	return len(values) > 0
}

// userAttributes are the attributes a full read of a user requests.
func (r *reader) userAttributes() []string {
	u := r.cfg.Users
	attrs := []string{u.ID, u.Login, u.DisplayName, u.Mail, u.Changed}
	if u.Disabled.Attribute != "" {
		attrs = append(attrs, u.Disabled.Attribute)
	}
	if r.cfg.Groups.Membership == MembershipMemberOf {
		attrs = append(attrs, MembershipMemberOf)
	}
	return attrs
}

// listAttributes are the attributes an incremental sync reads of every
// user: enough to notice deletions, disabling and membership changes.
func (r *reader) listAttributes() []string {
	attrs := []string{r.cfg.Users.ID}
	if r.cfg.Users.Disabled.Attribute != "" {
		attrs = append(attrs, r.cfg.Users.Disabled.Attribute)
	}
	switch r.cfg.Groups.Membership {
	case MembershipMemberOf:
		attrs = append(attrs, MembershipMemberOf)
	case MembershipMemberUID:
		attrs = append(attrs, r.cfg.Users.Login)
	}
	return attrs
}

// user maps a fully read entry. Entries without id or login are skipped
// (recorded in r.skipped) rather than failing the whole sync.
func (r *reader) user(e *ldap.Entry, g *groupGraph) (access.ExternalUser, bool) {
	id, err := r.id(e)
	if err != nil {
		r.skipped = append(r.skipped, "user "+e.DN+": "+err.Error())
		return access.ExternalUser{}, false
	}
	login := e.GetEqualFoldAttributeValue(r.cfg.Users.Login)
	if !usableName(login) {
		r.skipped = append(r.skipped, fmt.Sprintf("user %s: %s %q is not a usable sealgate login", e.DN, r.cfg.Users.Login, login))
		return access.ExternalUser{}, false
	}
	return access.ExternalUser{
		Source:      r.cfg.Source,
		ExternalID:  id,
		Login:       login,
		DisplayName: e.GetEqualFoldAttributeValue(r.cfg.Users.DisplayName),
		Mail:        e.GetEqualFoldAttributeValue(r.cfg.Users.Mail),
		Disabled:    r.disabled(e),
		Groups:      g.groupsOf(r.cfg, e, id, login),
	}, true
}

// userRequest searches users matching the configured filter and extra.
func (r *reader) userRequest(base string, scope int, extra string, attrs []string) *ldap.SearchRequest {
	filter := r.cfg.Users.Filter
	if extra != "" {
		filter = "(&" + filter + extra + ")"
	}
	return ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
}

// readAll reads every user with all attributes (full sync).
func (r *reader) readAll(ctx context.Context, c *conn, g *groupGraph, fn func(access.ExternalUser)) error {
	req := r.userRequest(r.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, "", r.userAttributes())
	return c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
		r.see(e, r.cfg.Users.Changed)
		if u, ok := r.user(e, g); ok {
			fn(u)
		}
		return nil
	})
}

// readChanged reads every user with all attributes (incremental sync): only
// entries changed since mark are read in full; the rest are listed by id
// and take their attributes from known, with memberships recomputed.
func (r *reader) readChanged(ctx context.Context, c *conn, g *groupGraph, since string, known map[string]access.ExternalUser, fn func(access.ExternalUser)) error {
	changed := map[string]access.ExternalUser{}
	extra := fmt.Sprintf("(%s>=%s)", r.cfg.Users.Changed, ldap.EscapeFilter(since))
	req := r.userRequest(r.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, extra, r.userAttributes())
	err := c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
		r.see(e, r.cfg.Users.Changed)
		if u, ok := r.user(e, g); ok {
			changed[u.ExternalID] = u
		}
		return nil
	})
	if err != nil {
		return err
	}
	var unknown []string // DNs of unchanged entries sealgate does not know yet
	req = r.userRequest(r.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, "", r.listAttributes())
	err = c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
		id, err := r.id(e)
		if err != nil {
			r.skipped = append(r.skipped, "user "+e.DN+": "+err.Error())
			return nil
		}
		if u, ok := changed[id]; ok {
			fn(u)
			return nil
		}
		k, ok := known[id]
		if !ok {
			// Disabled users are not added, so reading them in full
			// would be wasted; directories keep many.
			if !r.disabled(e) {
				unknown = append(unknown, e.DN)
			}
			return nil
		}
		k.Groups = g.groupsOf(r.cfg, e, id, e.GetEqualFoldAttributeValue(r.cfg.Users.Login))
		// Lockouts (ppolicy's pwdAccountLockedTime) need not move the
		// change mark, so the disabled state is read from every entry.
		k.Disabled = r.disabled(e)
		fn(k)
		return nil
	})
	if err != nil {
		return err
	}
	for _, dn := range unknown {
		req := r.userRequest(dn, ldap.ScopeBaseObject, "", r.userAttributes())
		if err := c.search(ctx, req, r.cfg.PageSize, func(e *ldap.Entry) error {
			if u, ok := r.user(e, g); ok {
				fn(u)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
