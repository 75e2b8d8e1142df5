// Package secret reads secrets (PINs, passwords, client secrets) from where
// the operator keeps them: an environment variable or a file. Secrets are
// never written in sealgate's configuration file, and never printed.
package secret

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// Ref says where a secret is kept. Exactly one of Env and File is set.
// In sealgate.yaml it is written as {env: NAME} or {file: /path}.
type Ref struct {
	Env  string `yaml:"env,omitempty" json:"env,omitempty"`
	File string `yaml:"file,omitempty" json:"file,omitempty"`
}

// IsZero reports whether no source is configured.
func (r Ref) IsZero() bool { return r.Env == "" && r.File == "" }

// String names the source, never the value.
func (r Ref) String() string {
	switch {
	case r.Env != "":
		return "environment variable " + r.Env
	case r.File != "":
		return "file " + r.File
	}
	return "no secret source"
}

// ErrNotConfigured is returned by Value for a zero Ref.
var ErrNotConfigured = errors.New("secret: no source configured")

// Value reads the secret. A file's trailing newline is removed. The error
// names the source and never contains the value.
func (r Ref) Value() ([]byte, error) {
	switch {
	case r.Env != "" && r.File != "":
		return nil, fmt.Errorf("secret: both env %q and file %q given; choose one", r.Env, r.File)
	case r.Env != "":
		v, ok := os.LookupEnv(r.Env)
		if !ok || v == "" {
			return nil, fmt.Errorf("secret: environment variable %s is not set", r.Env)
		}
		return []byte(v), nil
	case r.File != "":
		b, err := os.ReadFile(r.File)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, fmt.Errorf("secret: file %s is empty", r.File)
		}
		return b, nil
	}
	return nil, ErrNotConfigured
}
