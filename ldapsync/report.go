package ldapsync

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report for a person: one line per change, then the
// outcome. "+" adds, "~" changes, "-" removes, "!" disables.
func (r *Report) WriteText(w io.Writer) error {
	kind := "incremental"
	if r.Full {
		kind = "full"
	}
	if r.DryRun {
		kind += ", dry run"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "directory sync %d of %s (%s): %d users read\n", r.ID, r.Source, kind, r.Seen)
	for _, u := range r.Diff.Added {
		fmt.Fprintf(&b, "+ user %s (%s) %q <%s> groups [%s]\n", u.Login, u.ExternalID, u.DisplayName, u.Mail, strings.Join(u.Groups, ", "))
	}
	for _, c := range r.Diff.Changed {
		var what []string
		if c.Before.Login != c.After.Login {
			what = append(what, fmt.Sprintf("login %s → %s", c.Before.Login, c.After.Login))
		}
		if c.Before.DisplayName != c.After.DisplayName {
			what = append(what, fmt.Sprintf("name %q → %q", c.Before.DisplayName, c.After.DisplayName))
		}
		if c.Before.Mail != c.After.Mail {
			what = append(what, fmt.Sprintf("mail %s → %s", c.Before.Mail, c.After.Mail))
		}
		if c.Before.Disabled && !c.After.Disabled {
			what = append(what, "enabled")
		}
		fmt.Fprintf(&b, "~ user %s (%s): %s\n", c.After.Login, c.After.ExternalID, strings.Join(what, "; "))
	}
	for _, u := range r.Diff.Disabled {
		fmt.Fprintf(&b, "! user %s (%s) disabled\n", u.Login, u.ExternalID)
	}
	for _, u := range r.Diff.Removed {
		fmt.Fprintf(&b, "- user %s (%s) removed\n", u.Login, u.ExternalID)
	}
	for _, m := range r.Diff.Memberships {
		sign, verb := "-", "leaves"
		if m.Added {
			sign, verb = "+", "joins"
		}
		fmt.Fprintf(&b, "%s user %s %s group %s\n", sign, m.Login, verb, m.Group)
	}
	for _, s := range r.SkippedEntries {
		fmt.Fprintf(&b, "? skipped %s\n", s)
	}
	fmt.Fprintf(&b, "outcome: %s (%d added, %d changed, %d disabled, %d removed, %d membership changes, %d skipped)\n",
		r.Outcome, r.Added, r.Changed, r.Disabled, r.Removed, r.Memberships, r.Skipped)
	if r.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", r.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
