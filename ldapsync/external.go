package ldapsync

// ExternalUser is a directory user as access will know it.
// TODO(switch): replace with access.ExternalUser when it lands.
type ExternalUser struct {
	Source, ExternalID, Login, DisplayName, Mail string
	Disabled                                     bool
	Groups                                       []string
}

// ExternalChanges TODO(switch): access.ExternalChanges.
type ExternalChanges = Diff

func externalChanges(d Diff) ExternalChanges { return d }
