package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/spf13/cobra"
)

// runCLI runs one subcommand in process, as `sealgate` does with the flags
// held in a, and returns its standard output; standard error goes to the
// test log.
func runCLI(t *testing.T, a *app, newCmd func(*app) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	if a.logLevel == "" {
		a.logLevel = "error"
	}
	cmd := newCmd(a)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if a.db != nil {
		a.db.Close()
		a.db = nil
	}
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.Bytes())
	}
	return out.String(), err
}
