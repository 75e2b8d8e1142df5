package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/internal/loopback"
	"github.com/sealgate/sealgate/internal/pdftest"
)

// sealgateCmd runs the built binary and returns its combined output and
// exit code.
func sealgateCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin, err := buildSealgate()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// initDevelopment makes a development setup with `sealgate init` in a
// temporary directory: it returns the directory and its data directory.
// Tests that run the binary are skipped with -short.
func initDevelopment(t *testing.T) (dir, data string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the sealgate binary")
	}
	dir = t.TempDir()
	data = filepath.Join(dir, "data")
	if out, code := sealgateCmd(t, "init", "--data", data); code != 0 {
		t.Fatalf("init: %d\n%s", code, out)
	}
	return dir, data
}

// TestSealAndVerifyCommands runs the CLI as an operator would on a
// development setup: seal a PDF with a visible stamp and a file as CAdES,
// verify both offline (exit 0), a changed copy (exit 1), an evidence record
// from `evidence show --record`, and the same verification through a server.
func TestSealAndVerifyCommands(t *testing.T) {
	dir, data := initDevelopment(t)
	pdf := filepath.Join(dir, "invoice.pdf")
	if err := os.WriteFile(pdf, pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice 7"}}}), 0o644); err != nil {
		t.Fatal(err)
	}
	// Options are checked as the REST API checks them, before anything is
	// signed or recorded: the seal after these refusals is the log's first leaf.
	for _, bad := range []struct {
		args []string
		says string
	}{
		{[]string{"--page", "1", "--rect", "NaN,40,200,60"}, "bad_request: x: NaN is not a finite number"},
		{[]string{"--page", "1", "--rect", "300,700,200"}, `bad_request: --rect takes x,y,width,height: "300,700,200" has 3 values`},
		{[]string{"--page", "1"}, "bad_request: page 1 needs the stamp's rectangle"},
		{[]string{"--reason", "a\x1bb"}, "bad_request: reason: control character U+001B at byte 1"},
		{[]string{"--reason", strings.Repeat("r", 1025)}, "bad_request: reason: 1025 bytes is longer than the limit of 1024 bytes"},
	} {
		out, code := sealgateCmd(t, append([]string{"seal", "--data", data, pdf}, bad.args...)...)
		if code != 1 || !strings.Contains(out, bad.says) {
			t.Errorf("seal %q: exit %d, want 1 and %q:\n%s", bad.args, code, bad.says, out)
		}
	}
	if out, code := sealgateCmd(t, "seal", "--data", data, pdf, "--page", "1", "--rect", "300,700,200,60", "--reason", "Invoice"); code != 0 || !strings.Contains(out, "pades B-T") || !strings.Contains(out, "evidence leaf 0,") {
		t.Fatalf("seal: %d\n%s", code, out)
	}
	sealed := filepath.Join(dir, "invoice-sealed.pdf")
	if out, code := sealgateCmd(t, "verify", "--data", data, sealed); code != 0 || !strings.HasPrefix(out, "VALID") {
		t.Fatalf("verify sealed PDF: %d\n%s", code, out)
	}
	b, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	b[200] ^= 0x01
	changed := filepath.Join(dir, "changed.pdf")
	if err := os.WriteFile(changed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := sealgateCmd(t, "verify", "--data", data, changed); code != 1 || !strings.HasPrefix(out, "NOT VALID") {
		t.Errorf("verify changed PDF: %d\n%s", code, out)
	}

	if out, code := sealgateCmd(t, "seal", "--data", data, "--format", "cades", pdf); code != 0 {
		t.Fatalf("seal cades: %d\n%s", code, out)
	}
	if out, code := sealgateCmd(t, "verify", "--data", data, "--signature", pdf+".p7s", pdf); code != 0 || !strings.Contains(out, "signature B-T VALID") {
		t.Errorf("verify CAdES: %d\n%s", code, out)
	}

	// An evidence record for the sealed PDF, after a checkpoint has covered it.
	if out, code := sealgateCmd(t, "evidence", "checkpoint", "--data", data); code != 0 {
		t.Fatalf("evidence checkpoint: %d\n%s", code, out)
	}
	sum, _ := sealgateCmd(t, "verify", "--data", data, "--json", sealed)
	i := strings.Index(sum, `"documentSha256": "`)
	if i < 0 {
		t.Fatalf("no documentSha256 in %s", sum)
	}
	digest := sum[i+19 : i+19+64]
	record := filepath.Join(dir, "invoice.ers")
	if out, code := sealgateCmd(t, "evidence", "show", "--data", data, digest, "--record", record); code != 0 {
		t.Fatalf("evidence show: %d\n%s", code, out)
	}
	out, code := sealgateCmd(t, "verify", "--data", data, "--record", record, sealed)
	if code != 0 || !strings.Contains(out, "evidence  leaf") || !strings.Contains(out, "record    RFC 4998 evidence record: VALID") {
		t.Errorf("verify with record: %d\n%s", code, out)
	}
	// The record is the sealed PDF's, not the changed copy's: its problems are told in words.
	out, code = sealgateCmd(t, "verify", "--data", data, "--record", record, changed)
	if code != 1 || !strings.Contains(out, "record    RFC 4998 evidence record: NOT VALID") || !strings.Contains(out, "          record_invalid: ") || strings.Contains(out, "{") {
		t.Errorf("verify with another document's record: %d\n%s", code, out)
	}

	d := startServe(t, data, loopback.FreeAddr(t))
	if out, code := sealgateCmd(t, "verify", "--server", d.url, "--signature", pdf+".p7s", pdf); code != 0 || !strings.HasPrefix(out, "VALID") {
		t.Errorf("verify --server: %d\n%s", code, out)
	}
	if out, code := sealgateCmd(t, "verify", "--server", d.url, changed); code != 1 {
		t.Errorf("verify --server of a changed PDF: %d\n%s", code, out)
	}
}
