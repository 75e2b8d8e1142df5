package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/internal/loopback"
	"github.com/sealgate/sealgate/store"
)

// daemon is a `sealgate serve` process started by a test.
type daemon struct {
	cmd *exec.Cmd
	url string
	// output is everything the process wrote, stdout and stderr.
	output *syncBuffer
}

// binDir holds the binary buildSealgate compiles; TestMain removes it.
var binDir string

// TestMain removes the compiled binary after the package's tests: no test's
// t.TempDir lives as long as the binary the tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildSealgate compiles the binary once per test run.
var buildSealgate = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sealgate-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "sealgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// sealgateBinary builds the binary, or skips a short test run.
func sealgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the sealgate binary")
	}
	bin, err := buildSealgate()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// runner returns a function running `sealgate --data data ARGS...` to
// completion, returning its stdout; its stderr goes to stderr.
func runner(t *testing.T, data string, stderr *bytes.Buffer) func(args ...string) string {
	bin := sealgateBinary(t)
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--data", data}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("sealgate %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out.String()
	}
}

// startServe runs `sealgate serve --data data --listen addr [flags]` and
// waits until it answers /healthz.
func startServe(t *testing.T, data, addr string, flags ...string) *daemon {
	t.Helper()
	return startDaemon(t, "http://"+addr, http.DefaultClient, append([]string{"serve", "--data", data, "--listen", addr}, flags...)...)
}

// startDaemon runs sealgate with args and waits until client gets an
// answer from url's /healthz.
func startDaemon(t *testing.T, url string, client *http.Client, args ...string) *daemon {
	t.Helper()
	bin, err := buildSealgate()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	// The development setup must find its own SoftHSM tokens, not a test's.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	d := &daemon{cmd: cmd, url: url, output: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = d.output, d.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(d.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sealgate %s did not answer on %s:\n%s", strings.Join(args, " "), url, d.output)
	return nil
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func readCredentials(t *testing.T, data string) devsetup.Credentials {
	t.Helper()
	path := devsetup.Layout{Dir: data}.CredentialsFile()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want owner-only 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c devsetup.Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func sealCAdES(url string, c devsetup.Credentials, doc []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/seals?format=cades", bytes.NewReader(doc))
	if err != nil {
		return nil, nil, err
	}
	req.SetBasicAuth(c.ClientID, c.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestServeDefaultsAndCrashRecovery starts `sealgate serve` on an empty data
// directory as `make run` does, seals the README's way, then kills the
// server with SIGKILL while processes are sealing. After a restart every
// seal that was answered has its leaf, no leaf is duplicated, the stored
// tree recomputes, and the new checkpoint is consistent with the old one.
func TestServeDefaultsAndCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sealgate binary")
	}
	data := filepath.Join(t.TempDir(), "data")
	addr := loopback.FreeAddr(t)
	d := startServe(t, data, addr)
	creds := readCredentials(t, data)
	if want := "its one-time password is in " + filepath.Join(data, "dev-credentials.json"); !strings.Contains(d.output.String(), want) {
		t.Errorf("first start does not name the file holding the admin's one-time password (%q):\n%s", want, d.output)
	}

	// The README's first example.
	resp, sealed, err := sealCAdES(d.url, creds, []byte("README example\n"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("README example: %v %v %s", err, resp, sealed)
	}

	bin, _ := buildSealgate()
	if out, err := exec.Command(bin, "evidence", "checkpoint", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("sealgate evidence checkpoint: %v\n%s", err, out)
	}
	var before evidence.Checkpoint
	if code := getJSON(t, d.url+"/api/v1/log/checkpoint", &before); code != http.StatusOK || before.Size == 0 {
		t.Fatalf("checkpoint before the load: status %d, size %d", code, before.Size)
	}

	// Load: four clients seal unique documents until the server dies.
	var (
		mu       sync.Mutex
		answered [][32]byte
		wg       sync.WaitGroup
		stop     = make(chan struct{})
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, p7s, err := sealCAdES(d.url, creds, fmt.Appendf(nil, "document %d of worker %d\n", i, w))
				if err != nil {
					return // the server is gone
				}
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					answered = append(answered, sha256.Sum256(p7s))
					mu.Unlock()
				}
			}
		}(w)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown code runs
		t.Fatal(err)
	}
	d.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(answered) == 0 {
		t.Fatal("no seal was answered before the crash")
	}

	d2 := startServe(t, data, addr)
	if strings.Contains(d2.output.String(), "one-time password") {
		t.Error("a restart printed the admin password again")
	}
	if out, err := exec.Command(bin, "evidence", "checkpoint", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("sealgate evidence checkpoint: %v\n%s", err, out)
	}
	var after evidence.Checkpoint
	getJSON(t, d2.url+"/api/v1/log/checkpoint", &after)
	t.Logf("killed with %d seals answered; tree %d → %d leaves", len(answered), before.Size, after.Size)
	if after.Size < before.Size+uint64(len(answered)) {
		t.Errorf("log has %d leaves after the crash, want at least %d before + %d answered", after.Size, before.Size, len(answered))
	}
	for _, h := range answered {
		var ev evidence.Evidence
		url := d2.url + "/api/v1/evidence/" + hex.EncodeToString(h[:])
		if code := getJSON(t, url, &ev); code != http.StatusOK {
			t.Errorf("answered seal %x has no evidence after the crash (status %d)", h, code)
			continue
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, ev.Checkpoint.Size, rfc6962.DefaultHasher.HashLeaf(ev.Data), ev.InclusionProof, ev.Checkpoint.Root); err != nil {
			t.Errorf("inclusion proof of %x: %v", h, err)
		}
	}
	var cons struct {
		Proof [][]byte `json:"proof"`
	}
	if code := getJSON(t, fmt.Sprintf("%s/api/v1/log/consistency?from=%d&to=%d", d2.url, before.Size, after.Size), &cons); code != http.StatusOK {
		t.Fatalf("consistency: status %d", code)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, before.Size, after.Size, cons.Proof, before.Root, after.Root); err != nil {
		t.Errorf("checkpoint after the crash is not consistent with the one before: %v", err)
	}

	// Offline: the stored tree recomputes and no document has two leaves.
	d2.cmd.Process.Signal(syscall.SIGTERM)
	d2.cmd.Wait()

	// No secret in what the server wrote: the admin's one-time password,
	// the client secret and the card PIN never appear.
	pin, err := os.ReadFile(filepath.Join(data, "secrets", "dev-seal-pin"))
	if err != nil {
		t.Fatal(err)
	}
	output := d.output.String() + d2.output.String()
	for name, secret := range map[string]string{"admin password": creds.AdminPassword, "client secret": creds.ClientSecret, "card PIN": strings.TrimSpace(string(pin))} {
		if strings.Contains(output, secret) {
			t.Errorf("the %s appears in the server output", name)
		}
	}
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(data, "sealgate.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log, err := evidence.Open(ctx, db, evidence.Options{KeyDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := log.Audit(ctx); err != nil {
		t.Errorf("evidence audit after the crash: %v", err)
	}
	for _, h := range answered {
		leaves, err := log.Lookup(ctx, evidence.SHA256(h))
		if err != nil || len(leaves) != 1 {
			t.Errorf("document %x has %d leaves (%v), want exactly 1", h, len(leaves), err)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}
