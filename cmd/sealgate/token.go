package main

import (
	"crypto"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/csc"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
)

func init() { register(newTokenCmd) }

// newTokenCmd is `sealgate token`: the seal cards of the signing section.
func newTokenCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "seal cards: health, certificate requests, certificate import (signing section of sealgate.yaml)",
	}
	cmd.AddCommand(newTokenListCmd(a), newTokenCSRCmd(a), newTokenImportCmd(a))
	return cmd
}

// tokenPoolConfig loads the signing section, which every token command needs.
func tokenPoolConfig(a *app) (signing.PoolConfig, error) {
	f, err := a.config()
	if err != nil {
		return signing.PoolConfig{}, err
	}
	cfg, ok, err := signing.LoadPoolConfig(f)
	if err != nil {
		return cfg, err
	}
	if !ok {
		return cfg, fault.New(fault.Invalid, signing.CodeConfigInvalid, "no signing section in the configuration %q (--config or <data>/sealgate.yaml)", f.Path)
	}
	return cfg, nil
}

// newTokenListCmd is `sealgate token list`.
func newTokenListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "show modules, cards, seals, their health and certificate expiry",
		Long: `list opens every configured card as the server does (log in, find each seal
key, check it against its certificate) and prints what it found. Signature
counts are those of this check, not of a running server. It exits with
status 2 when a seal has no card in service.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := tokenPoolConfig(a)
			if err != nil {
				return err
			}
			pool, err := signing.NewPool(cmd.Context(), cfg, a.logger(), pkcs11.Backend{}, softkey.Backend{}, csc.Backend{})
			if err != nil {
				return err
			}
			defer pool.Close()
			cards, seals := pool.Status(), pool.Seals()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(struct {
					Modules []signing.ModuleConfig `json:"modules"`
					Cards   []signing.CardStatus   `json:"cards"`
					Seals   []signing.SealStatus   `json:"seals"`
				}{cfg.Modules, cards, seals})
			} else {
				err = writeTokenList(cmd.OutOrStdout(), cfg, cards, seals)
			}
			if err != nil {
				return err
			}
			for _, s := range seals {
				if s.HealthyCards == 0 {
					return exitError(2)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func writeTokenList(out io.Writer, cfg signing.PoolConfig, cards []signing.CardStatus, seals []signing.SealStatus) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MODULE\tPATH")
	for _, m := range cfg.Modules {
		fmt.Fprintf(w, "%s\t%s\n", m.Name, m.Path)
	}
	fmt.Fprintln(w, "\nTOKEN\tMODULE\tSERIAL\tSTATE\tSESSIONS IN USE\tSIGNATURES\tSEALS\tPROBLEM")
	for _, c := range cards {
		state := "in service"
		switch {
		case !c.Healthy && c.Retrying:
			state = "OUT (retrying)"
		case !c.Healthy:
			state = "OUT"
		}
		problem := ""
		if !c.Healthy {
			problem = c.LastError
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", c.Token, c.Module, dash(c.Serial), state,
			c.SessionsInUse, c.Sessions, c.Signatures, strings.Join(c.Seals, ","), problem)
	}
	fmt.Fprintln(w, "\nSEAL\tSUBJECT\tNOT AFTER\tCARDS IN SERVICE\tWARNING")
	for _, s := range seals {
		var warn []string
		if s.Software {
			warn = append(warn, "software key: development — not qualified")
		}
		if left := time.Until(s.NotAfter); left <= 0 {
			warn = append(warn, "EXPIRED")
		} else if s.ExpiresSoon {
			warn = append(warn, fmt.Sprintf("expires in %d days", int(left.Hours()/24)))
		}
		if s.HealthyCards == 0 {
			warn = append(warn, "NO CARD IN SERVICE")
		}
		cards := fmt.Sprintf("%d/%d %s", s.HealthyCards, len(s.Cards), strings.Join(s.Cards, ","))
		if s.Software {
			cards = "software key"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Subject, s.NotAfter.UTC().Format(time.DateOnly), cards, strings.Join(warn, "; "))
	}
	return w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newTokenCSRCmd is `sealgate token csr`.
func newTokenCSRCmd(a *app) *cobra.Command {
	var ref signing.KeyRef
	var subject, out string
	cmd := &cobra.Command{
		Use:   "csr --token LABEL --key LABEL --subject DN [-o req.csr]",
		Short: "make a PKCS#10 certificate request signed by a key on a card",
		Long: `csr signs a certificate request with a key on a card (which needs no
certificate yet) for the subject given, e.g.
  --subject "CN=Example Manufacturing Seal,O=Example Manufacturing GmbH,organizationIdentifier=VATDE-123456789,C=DE"
The card must be listed in the signing section's tokens (module and PIN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := tokenPoolConfig(a)
			if err != nil {
				return err
			}
			name, err := pkcs11.ParseSubject(subject)
			if err != nil {
				return err
			}
			key, err := pkcs11.OpenTokenKey(&cfg, ref)
			if err != nil {
				return err
			}
			defer key.Close()
			der, err := pkcs11.CreateCSR(key, name)
			if err != nil {
				return err
			}
			req := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(req)
				return err
			}
			if err := os.WriteFile(out, req, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "certificate request for %s written to %s\n", name, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&ref.Token, "token", "", "token label (required)")
	cmd.Flags().StringVar(&ref.Label, "key", "", "label of the private key on the card")
	cmd.Flags().StringVar(&ref.ID, "id", "", "CKA_ID of the private key, in hex")
	cmd.Flags().StringVar(&subject, "subject", "", "certificate subject, e.g. CN=...,O=...,C=DE (required)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file for the PEM request (default standard output)")
	cmd.MarkFlagRequired("token")
	cmd.MarkFlagRequired("subject")
	return cmd
}

// newTokenImportCmd is `sealgate token import-certificate`.
func newTokenImportCmd(a *app) *cobra.Command {
	var sealID, token, label, id string
	cmd := &cobra.Command{
		Use:   "import-certificate --seal ID [--token LABEL --key LABEL] chain.pem",
		Short: "check an issued seal certificate chain against the card keys and install it",
		Long: `import-certificate takes the chain the CA issued (PEM, seal certificate first,
then its issuers), checks that every card key of the seal (or only the one
given with --token) makes signatures the certificate verifies, and writes the
chain to the certificate file of the seal's configuration. A certificate for
another key is refused with key_certificate_mismatch and nothing is written.
Restart sealgate to seal with the new certificate.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := tokenPoolConfig(a)
			if err != nil {
				return err
			}
			sc, ok := cfg.Seal(sealID)
			if !ok {
				return fault.New(fault.NotFound, signing.CodeSealUnknown, "no seal %q in the signing section", sealID)
			}
			if sc.SoftKey != nil {
				return fault.New(fault.Invalid, signing.CodeConfigInvalid, "seal %q is a development seal with a software key, not on a card", sealID)
			}
			refs, err := importKeyRefs(sc, token, label, id)
			if err != nil {
				return err
			}
			chainPEM, err := os.ReadFile(args[0])
			if err != nil {
				return fault.Wrap(err, fault.Invalid, signing.CodeInputUnreadable, "reading the chain %s", args[0])
			}
			var keys []*pkcs11.TokenKey
			defer func() {
				for _, k := range keys {
					k.Close()
				}
			}()
			signers := make([]crypto.Signer, 0, len(refs))
			for _, r := range refs {
				k, err := pkcs11.OpenTokenKey(&cfg, r)
				if err != nil {
					return err
				}
				keys = append(keys, k)
				signers = append(signers, k)
			}
			chain, err := pkcs11.ImportChain(chainPEM, sc.Certificate, signers...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "seal %s: certificate %q (valid until %s) checked against %d card key(s) and written to %s\n",
				sealID, chain[0].Subject.CommonName, chain[0].NotAfter.UTC().Format(time.DateOnly), len(refs), sc.Certificate)
			return nil
		},
	}
	cmd.Flags().StringVar(&sealID, "seal", "", "seal id (required)")
	cmd.Flags().StringVar(&token, "token", "", "check only the key on this token (default every card of the seal)")
	cmd.Flags().StringVar(&label, "key", "", "label of the private key on --token (default the seal's configuration)")
	cmd.Flags().StringVar(&id, "id", "", "CKA_ID of the private key on --token, in hex")
	cmd.MarkFlagRequired("seal")
	return cmd
}

// importKeyRefs chooses the card keys a chain is checked against: the seal's
// configured keys, narrowed to --token, with --key/--id overriding.
func importKeyRefs(sc signing.SealConfig, token, label, id string) ([]signing.KeyRef, error) {
	if token == "" {
		if label != "" || id != "" {
			return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "--key and --id need --token")
		}
		if len(sc.Keys) == 0 {
			return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "seal %q has no keys configured; name the card with --token and --key", sc.ID)
		}
		return sc.Keys, nil
	}
	ref := signing.KeyRef{Token: token}
	for _, k := range sc.Keys {
		if k.Token == token {
			ref = k
		}
	}
	if label != "" || id != "" {
		ref.Label, ref.ID = label, id
	}
	return []signing.KeyRef{ref}, nil
}
