package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
)

func init() { register(newSealCmd) }

// newSealCmd is `sealgate seal FILE`: seal a document on this machine through
// the same sealing path as the server, authenticated as a process client.
func newSealCmd(a *app) *cobra.Command {
	var out, clientID, secretFile, rect string
	cmd := &cobra.Command{
		Use:   "seal FILE",
		Short: "Seal a document locally (PAdES into the PDF, or a detached CAdES .p7s)",
		Long: `Seal FILE with the seal of this installation, through the same sealing path,
rules and evidence log as the server. The caller is a process client: --client-id
and the secret from $SEALGATE_CLIENT_SECRET or --secret-file (a development setup
uses data/dev-credentials.json).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			fields, err := optionFlags(cmd, rect)
			if err != nil {
				return err
			}
			req := seal.Request{Name: filepath.Base(args[0])}
			if err := seal.ParseOptions(&req, fields); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			in, err := os.Open(args[0])
			if err != nil {
				return fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "cannot read %s", args[0])
			}
			defer in.Close()
			st, err := in.Stat()
			if err != nil {
				return err
			}
			srv, err := server.New(ctx, cfg, a.logger())
			if err != nil {
				return err
			}
			defer srv.Close()
			p, err := cliPrincipal(cmd, srv.Access, cfg.Data, clientID, secretFile)
			if err != nil {
				return err
			}
			req.Principal = p
			req.Document, req.Size = in, st.Size()
			if out == "" {
				out = defaultOutput(args[0], req.Format)
			}
			res, err := srv.Seal.Seal(ctx, req)
			if err != nil {
				return err
			}
			defer res.Close()
			if err := writeFileAtomic(out, res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sealed %s → %s (%s %s, seal %s, evidence leaf %d, sha256 %x)\n",
				args[0], out, res.Format, res.Level, res.Seal, res.EvidenceIndex, res.SealedSHA256)
			for _, c := range res.RevocationUnavailable {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: no OCSP response or CRL embedded for %s\n", c)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.String("seal", "", "seal id (default: the configured default seal)")
	f.String("format", "", "pades (seal inside the PDF, the default) or cades (detached .p7s)")
	f.String("level", "", "B-B, B-T, B-LT or B-LTA (default B-T with a TSA, else B-B)")
	f.StringVarP(&out, "output", "o", "", "output file (default FILE-sealed.pdf or FILE.p7s)")
	f.String("field", "", "sign this existing empty signature field")
	f.String("page", "", "put a visible stamp on this page (1-based); needs --rect")
	f.StringVar(&rect, "rect", "", "stamp rectangle x,y,width,height in PDF units from the page's lower-left corner")
	f.String("reason", "", "reason shown in the signature and stamp")
	f.String("location", "", "location shown in the signature and stamp")
	f.String("certify", "", "make a certification seal allowing later no-changes, form-filling or annotations (DocMDP)")
	f.StringVar(&clientID, "client-id", "", "process client id (default from data/dev-credentials.json in a development setup)")
	f.StringVar(&secretFile, "secret-file", "", "file holding the client secret (else $SEALGATE_CLIENT_SECRET)")
	return cmd
}

// optionFlags gives the seal options set on the command line as the fields
// seal.ParseOptions reads, so the command checks them as every transport
// does; --rect x,y,width,height stands for the four rectangle options.
func optionFlags(cmd *cobra.Command, rect string) (map[string][]string, error) {
	fields := map[string][]string{}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if slices.Contains(seal.OptionNames(), f.Name) {
			fields[f.Name] = []string{f.Value.String()}
		}
	})
	if rect == "" {
		return fields, nil
	}
	values := strings.Split(rect, ",")
	if len(values) != 4 {
		return nil, fault.New(fault.Invalid, seal.CodeBadRequest, "--rect takes x,y,width,height: %q has %d values", rect, len(values))
	}
	for i, name := range seal.RectNames() {
		fields[name] = []string{strings.TrimSpace(values[i])}
	}
	return fields, nil
}

func defaultOutput(in string, f seal.Format) string {
	if f == seal.CAdES {
		return in + ".p7s"
	}
	return strings.TrimSuffix(in, filepath.Ext(in)) + "-sealed.pdf"
}

// cliPrincipal authenticates the command-line caller as a process client,
// so the command goes through the same rules as any other caller.
func cliPrincipal(cmd *cobra.Command, svc *access.Service, data, clientID, secretFile string) (access.Principal, error) {
	secret := os.Getenv("SEALGATE_CLIENT_SECRET")
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return access.Principal{}, err
		}
		secret = strings.TrimSpace(string(b))
	}
	if clientID == "" || secret == "" {
		if b, err := os.ReadFile(devsetup.Layout{Dir: data}.CredentialsFile()); err == nil {
			var c devsetup.Credentials
			if json.Unmarshal(b, &c) == nil && (clientID == "" || clientID == c.ClientID) {
				clientID, secret = c.ClientID, c.ClientSecret
			}
		}
	}
	if clientID == "" || secret == "" {
		return access.Principal{}, fault.New(fault.Unauthenticated, access.CodeUnauthenticated,
			"name the process client with --client-id and give its secret in $SEALGATE_CLIENT_SECRET or --secret-file")
	}
	return svc.AuthenticateClientSecret(cmd.Context(), clientID, secret, localAddr)
}

// writeFileAtomic writes the result next to path and renames it into place,
// so a failure never leaves a half-written output.
func writeFileAtomic(path string, res io.WriterTo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := res.WriteTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
