// Command sealgate is the sealgate server and its administration tool.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/store"
)

// app is what every subcommand shares: flags, configuration, database.
// Subcommands open only what they use.
type app struct {
	configPath string
	dataDir    string
	logLevel   string

	cfg *config.File
	db  *store.DB
	log *slog.Logger
}

// commands are added by the files of this package (one file per area), so
// each area's CLI lives beside no other's.
var commands []func(*app) *cobra.Command

func register(f func(*app) *cobra.Command) { commands = append(commands, f) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{}
	root := &cobra.Command{
		Use:           "sealgate",
		Short:         "sealgate applies the company's electronic seal to documents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "configuration file (default <data>/sealgate.yaml if present)")
	root.PersistentFlags().StringVar(&a.dataDir, "data", "", "data directory (default ./data)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "", "log level: debug, info, warn, error (default info for serve, warn otherwise)")
	for _, f := range commands {
		root.AddCommand(f(a))
	}
	err := root.ExecuteContext(ctx)
	if a.db != nil {
		a.db.Close()
	}
	stop()
	if err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintf(os.Stderr, "sealgate: %v\n", err)
		os.Exit(1)
	}
}

// exitError makes main exit with a given status without printing more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// config loads the configuration once.
func (a *app) config() (*config.File, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	cfg, err := config.Load(a.configPath, a.dataDir)
	if err != nil {
		return nil, err
	}
	// The development seal's SoftHSM tokens live in the data directory; the
	// SoftHSM library finds them through SOFTHSM2_CONF, read when the module
	// is loaded. An operator's own setting wins.
	if conf := (devsetup.Layout{Dir: cfg.Data}).SoftHSMConf(); os.Getenv("SOFTHSM2_CONF") == "" {
		if _, err := os.Stat(conf); err == nil {
			os.Setenv("SOFTHSM2_CONF", conf)
		}
	}
	a.cfg = cfg
	return cfg, nil
}

// logger returns the process logger (text lines on stderr).
func (a *app) logger() *slog.Logger {
	if a.log == nil {
		lvl := slog.LevelWarn
		if a.logLevel != "" {
			if err := lvl.UnmarshalText([]byte(a.logLevel)); err != nil {
				lvl = slog.LevelInfo
			}
		}
		// Every line passes the redaction: a secret is never logged, whatever field it came in.
		a.log = slog.New(access.RedactingHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
	}
	return a.log
}

// database opens the database once.
func (a *app) database(ctx context.Context) (*store.DB, error) {
	if a.db != nil {
		return a.db, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.Database, store.Options{Durability: cfg.Durability})
	if err != nil {
		return nil, err
	}
	a.db = db
	return db, nil
}
