package evidence

import (
	"path/filepath"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
)

// CodeConfigInvalid: the evidence section of sealgate.yaml is wrong.
const CodeConfigInvalid fault.Code = "evidence_config_invalid"

// Config is the "evidence" section of sealgate.yaml:
//
//	evidence:
//	  origin: seal.example.com/log   # checkpoint origin line and log key name
//	  keyDir: /var/lib/sealgate      # default: the database's directory
//	  seal: company-seal             # seal (signing section) that seals checkpoints
//	  checkpointInterval: 10s
//	  renewAfter: 17520h             # renew archive timestamps older than this; 0 = never
type Config struct {
	Origin             string        `yaml:"origin"`
	KeyDir             string        `yaml:"keyDir"`
	Seal               string        `yaml:"seal"`
	CheckpointInterval time.Duration `yaml:"checkpointInterval"`
	RenewAfter         time.Duration `yaml:"renewAfter"`
}

// LoadConfig decodes the evidence section of f (defaults when absent), a
// relative keyDir being taken from the configuration file's directory.
func LoadConfig(f *config.File) (Config, error) {
	var c Config
	if _, err := f.Section("evidence", &c); err != nil {
		return c, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "evidence section of %s", f.Path)
	}
	if c.KeyDir != "" && !filepath.IsAbs(c.KeyDir) && f.Path != "" {
		c.KeyDir = filepath.Join(filepath.Dir(f.Path), c.KeyDir)
	}
	if c.CheckpointInterval < 0 || c.RenewAfter < 0 {
		return c, fault.New(fault.Invalid, CodeConfigInvalid, "evidence checkpointInterval %s and renewAfter %s must not be negative", c.CheckpointInterval, c.RenewAfter)
	}
	return c, nil
}

// Options returns the log options the section sets; the caller adds the
// Sealer (for Seal), the Timestamper and the Logger.
func (c Config) Options() Options {
	return Options{Origin: c.Origin, KeyDir: c.KeyDir, CheckpointInterval: c.CheckpointInterval, RenewAfter: c.RenewAfter}
}
