package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/server"
)

func init() {
	register(newServeCmd)
	register(newInitCmd)
	register(newDevClientCertCmd)
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
			a.logger().Info("sealgate listening", "addr", srv.Config.Listen, "url", srv.Config.PublicURL, "data", srv.Config.Data)
			go reloadOnHangup(cmd.Context(), srv, a.logger())
			return srv.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default from the configuration, 127.0.0.1:8080)")
	return cmd
}

// reloadOnHangup reloads the TLS certificate and key on every SIGHUP until
// ctx ends; a pair that does not load leaves the one in use serving.
func reloadOnHangup(ctx context.Context, srv *server.Server, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.ReloadTLS(); err != nil {
				log.Error("SIGHUP: TLS certificate not reloaded; the previous one stays in use", "err", err)
			}
		}
	}
}

func newDevClientCertCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "dev-client-cert NAME",
		Short: "Issue a development TLS client certificate from the development CA",
		Long: `Issue a TLS client certificate with common name NAME from the development CA
in the data directory, written to data/pki/NAME-client.pem and NAME-client-key.pem.
Map it to a process with: sealgate process add-cert CLIENT_ID --cert data/pki/NAME-client.pem
Development only: it is marked "development — not qualified".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			certFile, keyFile, err := devsetup.IssueClientCert(cfg.Data, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "certificate %s\nkey         %s\n", certFile, keyFile)
			return nil
		},
	}
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

// printDevBanner says where everything is. The admin's one-time password
// is never printed — console output ends up in service logs — only the
// file holding it is named, the first time, when it was just made.
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
		fmt.Fprintf(os.Stderr, "  admin         login %q; its one-time password is in %s (adminPassword)\n", c.AdminLogin, l.CredentialsFile())
	}
	fmt.Fprintln(os.Stderr)
}
