package pades

import (
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// permissionNames are the names transports accept for a DocMDP permission.
var permissionNames = map[string]Permission{
	"no-changes":   NoChangesAllowed,
	"form-filling": FormFillingAllowed,
	"annotations":  AnnotationsAllowed,
}

// ParsePermission reads a certification's DocMDP permission as a transport
// gives it: "no-changes", "form-filling" or "annotations", or the numbers
// 1 to 3 of ISO 32000-1 §12.8.2.2. An empty string is an approval seal.
func ParsePermission(s string) (Permission, error) {
	switch s {
	case "":
		return approvalNotCertified, nil
	case "1", "2", "3":
		return Permission(s[0] - '0'), nil
	}
	if p, ok := permissionNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	return 0, fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "certification permission %q is not no-changes, form-filling or annotations (1, 2, 3)", s)
}

// MarshalText names the permission ("form-filling"), for reports.
func (p Permission) MarshalText() ([]byte, error) {
	for name, q := range permissionNames {
		if q == p {
			return []byte(name), nil
		}
	}
	return nil, fault.New(fault.Internal, signing.CodePAdESOptionInvalid, "DocMDP permission %d has no name", int(p))
}

// UnmarshalText reads what MarshalText wrote (or a number 1 to 3).
func (p *Permission) UnmarshalText(b []byte) error {
	q, err := ParsePermission(string(b))
	if err == nil {
		*p = q
	}
	return err
}
