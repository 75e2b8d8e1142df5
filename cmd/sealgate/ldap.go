package main

import (
	"context"
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync"
)

func init() { register(newLDAPSyncCmd) }

// newLDAPSyncCmd is `sealgate ldap-sync`: one directory sync, printed.
func newLDAPSyncCmd(a *app) *cobra.Command {
	var opts ldapsync.SyncOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ldap-sync",
		Short: "synchronise users and groups from the directory (ldap section of sealgate.yaml)",
		Long: `ldap-sync reads users and groups from the configured directory and applies
the difference to sealgate: new users, renames, group memberships, and users
disabled or deleted in the directory. With --dry-run it only prints the
difference. A run that would remove or disable more than ldap.maxRemovalPercent
of the users stops with ldap_sync_guard_tripped; check the dry run, then
repeat with --force.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfgFile, err := a.config()
			if err != nil {
				return err
			}
			cfg, ok, err := ldapsync.LoadConfig(cfgFile)
			if err != nil {
				return err
			}
			if !ok {
				return fault.New(fault.Invalid, ldapsync.CodeConfigInvalid, "no ldap section in the configuration %q (--config or <data>/sealgate.yaml)", cfgFile.Path)
			}
			// The access service opens as the server's does (its options,
			// its secrets key), so the two never disagree about the data.
			return withAccess(cmd, a, func(ctx context.Context, users *access.Service) error {
				db, err := a.database(ctx)
				if err != nil {
					return err
				}
				syncer, err := ldapsync.NewSyncer(ctx, cfg, db, users, a.logger())
				if err != nil {
					return err
				}
				opts.Actor = "cli:ldap-sync"
				rep, runErr := syncer.Run(ctx, opts)
				if asJSON {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					err = enc.Encode(rep)
				} else {
					err = rep.WriteText(os.Stdout)
				}
				if runErr != nil {
					return runErr
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "print the difference without applying it")
	cmd.Flags().BoolVar(&opts.Full, "full", false, "read every user in full instead of only those changed since the last run")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "apply even when more users would go than ldap.maxRemovalPercent allows")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
