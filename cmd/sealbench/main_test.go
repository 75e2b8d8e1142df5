package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/server"
)

// devNode serves a node with development defaults in a temporary data
// directory on a loopback port, as `sealgate serve` would.
func devNode(t *testing.T) (url, data string) {
	t.Helper()
	ctx := context.Background()
	data = filepath.Join(t.TempDir(), "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := devsetup.Prepare(ctx, data, ln.Addr().String(), log); err != nil {
		t.Fatal(err)
	}
	if conf := (devsetup.Layout{Dir: data}).SoftHSMConf(); fileExists(conf) {
		t.Setenv("SOFTHSM2_CONF", conf)
	}
	cfg, err := config.Load("", data)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	url = "http://" + ln.Addr().String()
	if _, _, err := devsetup.EnsureCredentials(ctx, data, url, srv.Access); err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(serveCtx, ln); close(done) }()
	t.Cleanup(func() { stop(); <-done; srv.Close() })
	return url, data
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// sealbench against a real node: every step seals, the floor and pdfsign
// are measured on the node's own seal, and rates are given as ratios.
func TestSealbenchAgainstANode(t *testing.T) {
	url, data := devNode(t)
	pdf := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(pdf, pdftest.Bytes(pdftest.Spec{Pad: 20 << 10}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"cades", "pades"} {
		args := []string{"-url", url, "-data", data, "-doc", pdf, "-format", format, "-c", "1,2", "-d", "400ms", "-warmup", "100ms"}
		if format == "pades" {
			args = append(args, "-pdfsign", "-job", "20")
		}
		o, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(context.Background(), o, &out); err != nil {
			t.Fatalf("%s: %v\n%s", format, err, out.String())
		}
		text := out.String()
		for _, want := range []string{"hash-and-sign floor", "c=1 ", "c=2 ", "(4×best)", "paced"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: no %q in\n%s", format, want, text)
			}
		}
		if format == "pades" && (!strings.Contains(text, "digitorus/pdfsign") || !strings.Contains(text, "batch job of 20 documents: done, 20 sealed")) {
			t.Errorf("no pdfsign comparison or batch job in\n%s", text)
		}
		for _, line := range strings.Split(text, "\n") {
			if f := strings.Fields(line); len(f) > 8 && strings.HasPrefix(f[0], "c=") && (f[1] == "0" || f[len(f)-1] != "0") {
				t.Errorf("%s: a step without seals or with failures: %s", format, line)
			}
		}
	}
}

// A load generator must not be pointed anywhere but this machine.
func TestSealbenchLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://192.168.1.10:8080", "http://example.com", "ftp://127.0.0.1"} {
		if _, err := parseFlags([]string{"-url", u, "-doc", "x", "-floor=false"}, io.Discard); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := parseFlags([]string{"-url", "http://[::1]:8080", "-doc", "x", "-floor=false", "-c", "1", "-d", time.Second.String()}, io.Discard); err != nil {
		t.Errorf("::1 refused: %v", err)
	}
}
