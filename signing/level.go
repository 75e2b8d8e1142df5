package signing

// Level is a baseline level of ETSI's AdES formats: CAdES (EN 319 122-1)
// and PAdES (EN 319 142-1) name the same four.
type Level string

// Baseline levels, each including the one before.
const (
	// LevelBB is the basic signature.
	LevelBB Level = "B-B"
	// LevelBT adds a signature timestamp.
	LevelBT Level = "B-T"
	// LevelBLT adds the validation data (certificates, OCSP responses,
	// CRLs) in a document security store.
	LevelBLT Level = "B-LT"
	// LevelBLTA adds a document timestamp over all of it.
	LevelBLTA Level = "B-LTA"
)

// Rank orders the levels: 0 for B-B up to 3 for B-LTA, -1 for anything else.
func (l Level) Rank() int {
	switch l {
	case LevelBB:
		return 0
	case LevelBT:
		return 1
	case LevelBLT:
		return 2
	case LevelBLTA:
		return 3
	}
	return -1
}
