package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/server"
)

func init() {
	register(newServeCmd)
	register(newInitCmd)
}

func newServeCmd(a *app) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sealgate server",
		Long: `Run the sealgate server: REST API, evidence log and (with development
defaults) the development timestamp authority at /tsa.

Without a configuration file, the data directory is prepared with development
defaults on first start (see sealgate init).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.logLevel == "" {
				a.logLevel = "info"
			}
			srv, err := openNode(cmd.Context(), a, listen)
			if err != nil {
				return err
			}
			defer srv.Close()
			a.logger().Info("sealgate listening", "addr", srv.Config.Listen, "data", srv.Config.Data)
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default from the configuration, 127.0.0.1:8080)")
	return cmd
}

func newInitCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Prepare the data directory with development defaults (serve does this on first start)",
		Long: `Prepare the data directory with development defaults: a development CA, a
seal certificate for an example organisation whose key sits in a SoftHSM token
(or a key file when SoftHSM is missing), a development TSA, an admin user and a
process client "dev", written to data/dev-credentials.json. Everything it makes
is marked "development — not qualified". An existing setup is reused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := openNode(cmd.Context(), a, "")
			if err != nil {
				return err
			}
			return srv.Close()
		},
	}
}

// openNode loads the configuration — preparing development defaults when the
// data directory has none — and assembles the node. For a development setup it
// also makes the credentials once and prints where everything is.
func openNode(ctx context.Context, a *app, listen string) (*server.Server, error) {
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		res, err := devsetup.Prepare(ctx, cfg.Data, pick(listen, cfg.Listen), a.logger())
		if err != nil {
			return nil, err
		}
		a.cfg = nil
		if cfg, err = a.config(); err != nil {
			return nil, err
		}
		if res.Created {
			where := map[bool]string{true: "a SoftHSM token", false: "a software key file"}[res.SoftHSM]
			fmt.Fprintf(os.Stderr, "prepared development data in %s (seal key in %s)\n", cfg.Data, where)
		}
	}
	if listen != "" {
		cfg.Listen, cfg.PublicURL = listen, "http://"+listen
	}
	srv, err := server.New(ctx, cfg, a.logger())
	if err != nil {
		return nil, err
	}
	if devsetup.IsDevelopment(cfg.Data) {
		creds, made, err := devsetup.EnsureCredentials(ctx, cfg.Data, cfg.PublicURL, srv.Access)
		if err != nil {
			srv.Close()
			return nil, err
		}
		printDevBanner(cfg.Data, cfg.Database, cfg.PublicURL, creds, made)
	}
	return srv, nil
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// printDevBanner says where everything is; the admin password only the
// first time, when it was just made.
func printDevBanner(data, db, url string, c *devsetup.Credentials, made bool) {
	l := devsetup.Layout{Dir: data}
	fmt.Fprintf(os.Stderr, `
sealgate — DEVELOPMENT setup (not qualified)
  server        %s
  data          %s
  database      %s
  config        %s
  dev CA        %s   (trust it in a validator to see dev seals as trusted)
  credentials   %s   (process client %q for the README examples)
`, url, data, db, l.Config(), l.CA(), l.CredentialsFile(), c.ClientID)
	if made {
		fmt.Fprintf(os.Stderr, "  admin         login %q, one-time password %s — shown once; also in the credentials file\n", c.AdminLogin, c.AdminPassword)
	}
	fmt.Fprintln(os.Stderr)
}
