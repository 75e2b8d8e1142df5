package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/server"
)

func init() { register(newServeCmd) }

func newServeCmd(a *app) *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sealgate server",
		Long: `Run the sealgate server: REST API, evidence log and (with development
defaults) the development timestamp authority at /tsa.

Without a configuration file, the data directory is prepared with development
defaults on first start — a development CA, a seal whose key sits in a SoftHSM
token (or a key file when SoftHSM is missing), a development TSA, an admin user
and a process client "dev" — and data/dev-credentials.json tells how to call it.
Everything it makes is marked "development — not qualified".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if a.logLevel == "" {
				a.logLevel = "info"
			}
			log := a.logger()
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
				cfg.PublicURL = "http://" + listen
			}
			dev := cfg.Path == "" || devsetup.IsDevelopment(cfg.Data)
			if cfg.Path == "" {
				res, err := devsetup.Prepare(ctx, cfg.Data, cfg.Listen, log)
				if err != nil {
					return err
				}
				a.cfg = nil
				if cfg, err = a.config(); err != nil {
					return err
				}
				if listen != "" {
					cfg.Listen = listen
					cfg.PublicURL = "http://" + listen
				}
				if res.Created {
					fmt.Fprintf(os.Stderr, "prepared development data in %s (seal key in %s)\n", cfg.Data, map[bool]string{true: "a SoftHSM token", false: "a software key file"}[res.SoftHSM])
				}
			}
			srv, err := server.New(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer srv.Close()
			if dev {
				creds, made, err := devsetup.EnsureCredentials(ctx, cfg.Data, cfg.PublicURL, srv.Access)
				if err != nil {
					return err
				}
				printDevBanner(cfg.Data, cfg.Database, cfg.PublicURL, creds, made)
			}
			log.Info("sealgate listening", "addr", cfg.Listen, "data", cfg.Data)
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default from the configuration, 127.0.0.1:8080)")
	return cmd
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
