package ldapsync

import (
	"cmp"
	"slices"

	"github.com/sealgate/sealgate/access"
)

// Change is a user whose login, name or mail changed, or who is enabled
// again. Identity is the external id, so a renamed user is a change, not a
// removal and an addition. A user disabled in the same run is listed in
// Diff.Disabled too, and After keeps the user enabled here.
type Change struct {
	Before access.ExternalUser `json:"before"`
	After  access.ExternalUser `json:"after"`
}

// MembershipChange is a user joining (Added) or leaving a sealgate group.
type MembershipChange struct {
	ExternalID string `json:"externalId"`
	Login      string `json:"login"`
	Group      string `json:"group"`
	Added      bool   `json:"added"`
}

// Diff is what a sync changes in sealgate.
type Diff struct {
	// Added are directory users sealgate does not know yet (with their groups).
	Added []access.ExternalUser `json:"added"`
	// Changed are known users whose attributes changed, including renames
	// and users enabled again.
	Changed []Change `json:"changed"`
	// Disabled are known users the directory now marks disabled.
	Disabled []access.ExternalUser `json:"disabled"`
	// Removed are known users no longer in the directory (or no longer
	// matching the user filter).
	Removed []access.ExternalUser `json:"removed"`
	// Memberships are group changes of users that stay.
	Memberships []MembershipChange `json:"memberships"`
}

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool {
	return len(d.Added)+len(d.Changed)+len(d.Disabled)+len(d.Removed)+len(d.Memberships) == 0
}

// diff compares what sealgate knows with what the directory says.
// Directory users that are disabled and unknown to sealgate are not added:
// there is nothing to deprovision and they could not log in.
func diff(known, desired []access.ExternalUser) Diff {
	var d Diff
	byID := make(map[string]access.ExternalUser, len(known))
	for _, k := range known {
		byID[k.ExternalID] = k
	}
	for _, u := range desired {
		k, ok := byID[u.ExternalID]
		if !ok {
			if !u.Disabled {
				d.Added = append(d.Added, u)
			}
			continue
		}
		delete(byID, u.ExternalID)
		disabled := u.Disabled && !k.Disabled
		if disabled {
			d.Disabled = append(d.Disabled, u)
		}
		if k.Login != u.Login || k.DisplayName != u.DisplayName || k.Mail != u.Mail || (k.Disabled && !u.Disabled) {
			after := u
			// Disabling is applied (and audited) once, through Disabled.
			after.Disabled = k.Disabled && u.Disabled
			d.Changed = append(d.Changed, Change{Before: k, After: after})
		}
		d.Memberships = append(d.Memberships, membershipChanges(k, u)...)
	}
	for _, k := range byID {
		d.Removed = append(d.Removed, k)
	}
	byLogin := func(a, b access.ExternalUser) int {
		return cmp.Or(cmp.Compare(a.Login, b.Login), cmp.Compare(a.ExternalID, b.ExternalID))
	}
	slices.SortFunc(d.Added, byLogin)
	slices.SortFunc(d.Disabled, byLogin)
	slices.SortFunc(d.Removed, byLogin)
	slices.SortFunc(d.Changed, func(a, b Change) int { return byLogin(a.After, b.After) })
	slices.SortFunc(d.Memberships, func(a, b MembershipChange) int {
		return cmp.Or(cmp.Compare(a.Login, b.Login), cmp.Compare(a.Group, b.Group))
	})
	return d
}

// membershipChanges lists the groups after joined and left relative to before.
func membershipChanges(before, after access.ExternalUser) []MembershipChange {
	var out []MembershipChange
	for _, g := range after.Groups {
		if !slices.Contains(before.Groups, g) {
			out = append(out, MembershipChange{ExternalID: after.ExternalID, Login: after.Login, Group: g, Added: true})
		}
	}
	for _, g := range before.Groups {
		if !slices.Contains(after.Groups, g) {
			out = append(out, MembershipChange{ExternalID: after.ExternalID, Login: after.Login, Group: g})
		}
	}
	return out
}

// externalChanges turns a diff into the one transaction access applies.
func externalChanges(d Diff) access.ExternalChanges {
	ch := access.ExternalChanges{Added: d.Added}
	for _, c := range d.Changed {
		ch.Changed = append(ch.Changed, c.After)
	}
	for _, u := range d.Disabled {
		ch.Disabled = append(ch.Disabled, u.ExternalID)
	}
	for _, u := range d.Removed {
		ch.Removed = append(ch.Removed, u.ExternalID)
	}
	for _, m := range d.Memberships {
		am := access.Membership{ExternalID: m.ExternalID, Group: m.Group}
		if m.Added {
			ch.Joined = append(ch.Joined, am)
		} else {
			ch.Left = append(ch.Left, am)
		}
	}
	return ch
}
