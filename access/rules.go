package access

// SubjectKind says what a rule's subject is.
type SubjectKind string

// Subject kinds.
const (
	SubjectUser    SubjectKind = "user"
	SubjectGroup   SubjectKind = "group"
	SubjectProcess SubjectKind = "process"
)

// index is the in-memory view of rules and memberships used by Decide.
type index struct {
	generation int64
}
