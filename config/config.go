// Package config reads sealgate.yaml. Each package owns the shape of its own
// section (signing, tsa, evidence, access, ldap, ...); this package only finds
// the file, holds the top-level settings and decodes a section on request, so
// adding a feature never means editing a central struct. Secrets are never
// read from this file: sections name a secret.Ref instead.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// File is a loaded configuration.
type File struct {
	// Path is where it was read from; empty when no file exists (all defaults).
	Path string
	// Listen is the address the HTTP server binds. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Data is the data directory (database, development PKI and tokens). Default ./data.
	Data string `yaml:"data"`
	// Database is the SQLite file. Default <data>/sealgate.db.
	Database string `yaml:"database"`
	// Durability is the database's flush policy: "full" (default) or
	// "normal" (see store.Options.Durability).
	Durability string `yaml:"durability"`
	// PublicURL is how clients reach this server (used in links and the
	// development TSA URL). Default http://<listen>.
	PublicURL string `yaml:"publicURL"`

	sections map[string]yaml.Node
}

// Load reads the configuration at path. An empty path means <dataDir>/sealgate.yaml
// if it exists, else defaults. dataDir, when not empty, overrides the file's data.
func Load(path, dataDir string) (*File, error) {
	f := &File{}
	explicit := path != ""
	if !explicit {
		d := dataDir
		if d == "" {
			d = "data"
		}
		path = filepath.Join(d, "sealgate.yaml")
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !explicit:
	case err != nil:
		return nil, fmt.Errorf("config: %w", err)
	default:
		f.Path = path
		if err := f.parse(b); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if dataDir != "" {
		f.Data = dataDir
	}
	if f.Data == "" {
		f.Data = "data"
	}
	if f.Listen == "" {
		f.Listen = "127.0.0.1:8080"
	}
	if f.Database == "" {
		f.Database = filepath.Join(f.Data, "sealgate.db")
	}
	if f.PublicURL == "" {
		f.PublicURL = "http://" + f.Listen
	}
	return f, nil
}

func (f *File) parse(b []byte) error {
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	f.sections = map[string]yaml.Node{}
	for k, v := range doc {
		switch k {
		case "listen", "data", "database", "publicURL", "durability":
			var s string
			if err := v.Decode(&s); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			switch k {
			case "listen":
				f.Listen = s
			case "data":
				f.Data = s
			case "database":
				f.Database = s
			case "publicURL":
				f.PublicURL = s
			case "durability":
				f.Durability = s
			}
		default:
			f.sections[k] = v
		}
	}
	return nil
}

// Section decodes section name into v, rejecting unknown keys so a typo in
// sealgate.yaml is an error, not a silently ignored setting. A missing section
// leaves v as it is (its defaults). It reports whether the section was present.
func (f *File) Section(name string, v any) (bool, error) {
	n, ok := f.sections[name]
	if !ok {
		return false, nil
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(&n); err != nil {
		return true, fmt.Errorf("config section %s: %w", name, err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return true, fmt.Errorf("config section %s: %w", name, err)
	}
	return true, nil
}
