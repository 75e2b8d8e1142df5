package devsetup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing"
)

// writeConfig writes the development sealgate.yaml. Paths are absolute so the
// file works whatever the working directory of a later command.
func writeConfig(l Layout, listen string, seal sealConfig) error {
	var pool signing.PoolConfig
	sc := signing.SealConfig{ID: SealID}
	if seal.keyFile != "" {
		sc.SoftKey = &signing.SoftKeyConfig{Key: mustAbs(seal.keyFile), Certificate: mustAbs(seal.chain)}
	} else {
		pool.Modules = []signing.ModuleConfig{{Name: "softhsm", Path: SoftHSMModule}}
		pool.Tokens = []signing.TokenConfig{{Module: "softhsm", Label: tokenLabel, PIN: secret.Ref{File: mustAbs(seal.pinFile)}}}
		sc.Certificate = mustAbs(seal.chain)
		sc.Keys = []signing.KeyRef{{Token: tokenLabel, Label: SealID}}
	}
	pool.Seals = []signing.SealConfig{sc}
	doc := struct {
		Listen  string             `yaml:"listen"`
		Signing signing.PoolConfig `yaml:"signing"`
		Seal    map[string]any     `yaml:"seal"`
		DevTSA  map[string]string  `yaml:"devTSA"`
	}{
		Listen:  listen,
		Signing: pool,
		Seal: map[string]any{
			"defaultSeal": SealID,
			"revocation":  map[string]any{"crl": []string{mustAbs(l.CRL())}},
		},
		DevTSA: map[string]string{
			"key":         mustAbs(l.Path("pki", "dev-tsa-key.pem")),
			"certificate": mustAbs(l.Path("pki", "dev-tsa-chain.pem")),
		},
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	head := "# sealgate development configuration, made by `sealgate serve` on first start.\n" +
		"# Everything here is development — not qualified. See README.md for production.\n"
	return os.WriteFile(l.Config(), append([]byte(head), b...), 0o600)
}

// Credentials is data/dev-credentials.json: how to call the development
// server. It is readable by its owner only.
type Credentials struct {
	URL           string `json:"url"`
	AdminLogin    string `json:"adminLogin"`
	AdminPassword string `json:"adminPassword"`
	ClientID      string `json:"clientId"`
	ClientSecret  string `json:"clientSecret"`
	Seal          string `json:"seal"`
}

// CredentialsFile is where Credentials are written.
func (l Layout) CredentialsFile() string { return l.Path("dev-credentials.json") }

// EnsureCredentials makes, once, an admin user with a random one-time
// password, a process client "dev" and a rule letting it use the development
// seal, and writes them to dev-credentials.json. It returns the credentials
// and whether they were made now (so the caller prints the password once).
func EnsureCredentials(ctx context.Context, dir, url string, svc *access.Service) (*Credentials, bool, error) {
	l := Layout{Dir: dir}
	if b, err := os.ReadFile(l.CredentialsFile()); err == nil {
		var c Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, false, fmt.Errorf("devsetup: %s: %w", l.CredentialsFile(), err)
		}
		return &c, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("devsetup: %w", err)
	}
	const actor = "sealgate serve (development setup)"
	c := &Credentials{URL: url, AdminLogin: "admin", AdminPassword: randomHex(12), ClientID: "dev", Seal: SealID}
	if _, err := svc.AddUser(ctx, access.NewUser{Login: c.AdminLogin, DisplayName: "Administrator", Password: c.AdminPassword, Roles: []string{access.RoleAdmin}}, actor); err != nil {
		return nil, false, fmt.Errorf("devsetup: admin user: %w", err)
	}
	_, sec, err := svc.AddProcess(ctx, c.ClientID, "development client (README examples)", nil, actor)
	if err != nil {
		return nil, false, fmt.Errorf("devsetup: process dev: %w", err)
	}
	c.ClientSecret = sec
	if _, err := svc.AddRule(ctx, access.Rule{
		Name:    "dev-may-seal",
		Subject: access.Subject{Kind: access.SubjectProcess, Name: c.ClientID},
		Seals:   []string{SealID},
	}, actor); err != nil {
		return nil, false, fmt.Errorf("devsetup: rule: %w", err)
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(l.CredentialsFile(), append(b, '\n'), 0o600); err != nil {
		return nil, false, fmt.Errorf("devsetup: %w", err)
	}
	return c, true, nil
}
