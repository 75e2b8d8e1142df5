package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/trust"
)

func init() { register(newTrustCmd) }

// newTrustCmd is `sealgate trust ...`: the EU trusted lists.
func newTrustCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "The EU trusted lists that decide whether seals are qualified"}
	var asJSON, refresh bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the loaded trusted lists: sequence numbers, next update, signature status",
		Long: `Show the List of the Trusted Lists and the national lists this installation
holds (from its cache directory; downloaded when nothing is cached), with
their sequence numbers, next update and signature status. --refresh
downloads them again first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			tlCfg, ok, err := trust.LoadConfig(cfg)
			if err != nil {
				return err
			}
			if !ok {
				fmt.Fprintln(cmd.OutOrStdout(), "no trusted lists are configured (trustedLists section); qualification rests on the certificates alone")
				return nil
			}
			lists, err := trust.Open(cmd.Context(), tlCfg, a.logger())
			if err != nil {
				return err
			}
			st := lists.Status()
			if refresh {
				st = lists.Refresh(cmd.Context())
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printTrustStatus(cmd.OutOrStdout(), st, tlCfg)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	status.Flags().BoolVar(&refresh, "refresh", false, "download the lists again first")
	cmd.AddCommand(status)
	return cmd
}

func printTrustStatus(w io.Writer, st trust.Status, cfg trust.Config) {
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04Z")
	}
	for _, l := range st.Lists {
		fmt.Fprintf(w, "%-4s %s\n", l.Territory, l.Location)
		if l.Signature == "valid" {
			expired := ""
			if l.Expired {
				expired = " (PAST ITS NEXT UPDATE)"
			}
			fmt.Fprintf(w, "     sequence %d, issued %s, next update %s%s, %d services\n", l.Sequence, day(l.Issued), day(l.NextUpdate), expired, l.Services)
			fmt.Fprintf(w, "     signature valid, signed by %s; loaded from the %s at %s\n", l.Signer, l.Source, day(l.LoadedAt))
		} else {
			fmt.Fprintln(w, "     NOT LOADED: no version whose signature verifies is held")
		}
		if l.Error != nil {
			fmt.Fprintf(w, "     last attempt failed: %s: %s\n", l.Error.Code, l.Error.Message)
		}
	}
	fmt.Fprintf(w, "refreshed %s; `sealgate serve` refreshes every %s (cache %s)\n", day(st.LastRefresh), cfg.Refresh, cfg.CacheDir)
}
