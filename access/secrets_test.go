package access

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
)

const alicePassword = "correct horse battery"

// rawSQL opens the database file directly, as a thief with a copy would.
func rawSQL(t *testing.T, path string) *sql.DB {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// storedTOTP returns the TOTP columns of login as stored.
func storedTOTP(t *testing.T, raw *sql.DB, login string) (secret, pending string) {
	t.Helper()
	if err := raw.QueryRow(`SELECT totp_secret, totp_pending FROM access_users WHERE login = ?`, login).Scan(&secret, &pending); err != nil {
		t.Fatal(err)
	}
	return secret, pending
}

// reopen opens a second Service on env's database file, as another
// sealgate process (or a restart) would.
func reopen(t *testing.T, env *testEnv, change func(*Options)) *Service {
	t.Helper()
	opts := Options{Password: testPassword, Logger: slog.New(slog.NewJSONHandler(env.logs, nil))}
	if change != nil {
		change(&opts)
	}
	svc, err := Open(context.Background(), openDB(t, env.path), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func writeKeyFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func randomHexKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	return hex.EncodeToString(k)
}

func TestTOTPSecretIsSealedInTheDatabaseFile(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	svc := env.svc
	if _, err := svc.AddUser(ctx, NewUser{Login: "alice", Password: alicePassword}, "cli"); err != nil {
		t.Fatal(err)
	}
	raw := rawSQL(t, env.path)

	en, err := svc.EnrollTOTP(ctx, "alice", "cli")
	if err != nil {
		t.Fatal(err)
	}
	pendingSecret := regexp.MustCompile(`secret=([A-Z2-7]+)`).FindStringSubmatch(en.URL)[1]
	if _, pending := storedTOTP(t, raw, "alice"); !strings.HasPrefix(pending, "v1:") || strings.Contains(pending, pendingSecret) {
		t.Fatalf("pending key stored as %q", pending)
	}
	if _, err := svc.ConfirmTOTP(ctx, "alice", totpCode(t, pendingSecret, clock.Now()), "cli"); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	stored, pending := storedTOTP(t, raw, "alice")
	if !strings.HasPrefix(stored, "v1:") || pending != "" {
		t.Fatalf("after confirmation: totp_secret %q, totp_pending %q", stored, pending)
	}

	// Every byte sealgate wrote: the database, its WAL and shared memory.
	if _, err := raw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(env.path + "*")
	if err != nil {
		t.Fatal(err)
	}
	var disk []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		disk = append(disk, b...)
	}
	keyBytes, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(pendingSecret)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(disk, []byte(stored)) {
		t.Fatalf("the sealed key is not in %v: the search reads the wrong bytes", files)
	}
	for _, clear := range [][]byte{[]byte(pendingSecret), []byte(strings.ToLower(pendingSecret)), keyBytes} {
		if bytes.Contains(disk, clear) {
			t.Fatalf("the TOTP key is in clear in %v", files)
		}
	}
	if strings.Contains(env.logs.String(), pendingSecret) {
		t.Fatal("the TOTP key is in the log")
	}

	p, err := svc.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: alicePassword, OTP: totpCode(t, pendingSecret, clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Factors) != 2 || p.Factors[1] != FactorTOTP {
		t.Fatalf("factors %v", p.Factors)
	}
}

func TestTOTPUnderAnotherSecretsKey(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	for _, login := range []string{"alice", "bob"} {
		if _, err := env.svc.AddUser(ctx, NewUser{Login: login, Password: alicePassword}, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	secretA, recovery := enrollTOTP(t, env.svc, clock, "alice")
	other := reopen(t, env, func(o *Options) {
		o.Now = clock.Now
		o.SecretsKey = secret.Ref{File: writeKeyFile(t, randomHexKey(t)+"\n")}
	})

	creds := UserCredentials{Login: "alice", Password: alicePassword, OTP: totpCode(t, secretA, clock.Now())}
	_, err := other.AuthenticateUser(ctx, creds)
	if fault.CodeOf(err) != CodeSecretsKeyMismatch || !strings.Contains(err.Error(), `"alice"`) || strings.Contains(err.Error(), secretA) {
		t.Fatalf("TOTP login under another key: %v, want %s naming alice", err, CodeSecretsKeyMismatch)
	}
	// Recovery codes are hashed, not sealed: they still let the user in.
	if _, err := other.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: alicePassword, OTP: recovery[0]}); err != nil {
		t.Fatalf("recovery code under another key: %v", err)
	}
	// The right key still opens it.
	if _, err := env.svc.AuthenticateUser(ctx, creds); err != nil {
		t.Fatalf("TOTP login under the right key: %v", err)
	}

	// A sealed key copied to another user, or to another column, does not open.
	raw := rawSQL(t, env.path)
	sealedA, _ := storedTOTP(t, raw, "alice")
	if _, err := raw.Exec(`UPDATE access_users SET totp_secret = ? WHERE login = 'bob'`, sealedA); err != nil {
		t.Fatal(err)
	}
	clock.Add(30 * time.Second)
	_, err = env.svc.AuthenticateUser(ctx, UserCredentials{Login: "bob", Password: alicePassword, OTP: totpCode(t, secretA, clock.Now())})
	if fault.CodeOf(err) != CodeSecretsKeyMismatch || !strings.Contains(err.Error(), `"bob"`) {
		t.Fatalf("alice's key copied to bob: %v", err)
	}
	if _, err := raw.Exec(`UPDATE access_users SET totp_pending = totp_secret WHERE login = 'alice'`); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.ConfirmTOTP(ctx, "alice", totpCode(t, secretA, clock.Now()), "cli"); fault.CodeOf(err) != CodeSecretsKeyMismatch {
		t.Fatalf("totp_secret copied to totp_pending: %v", err)
	}
	if strings.Contains(env.logs.String(), secretA) {
		t.Fatal("the TOTP key is in the log")
	}
}

func TestClearTOTPKeysAreSealedOnOpen(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	for _, login := range []string{"alice", "bob", "carol"} {
		if _, err := env.svc.AddUser(ctx, NewUser{Login: login, Password: alicePassword}, "cli"); err != nil {
			t.Fatal(err)
		}
	}
	secretC, _ := enrollTOTP(t, env.svc, clock, "carol")
	raw := rawSQL(t, env.path)
	sealedC, _ := storedTOTP(t, raw, "carol")

	// As a database written before keys were sealed has them.
	newSecret := func() string {
		k, err := totp.Generate(totp.GenerateOpts{Issuer: "sealgate", AccountName: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return k.Secret()
	}
	secretA, pendingB := newSecret(), newSecret()
	if _, err := raw.Exec(`UPDATE access_users SET totp_secret = ? WHERE login = 'alice'`, secretA); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE access_users SET totp_pending = ? WHERE login = 'bob'`, pendingB); err != nil {
		t.Fatal(err)
	}

	restarted := reopen(t, env, func(o *Options) { o.Now = clock.Now })
	a, _ := storedTOTP(t, raw, "alice")
	_, b := storedTOTP(t, raw, "bob")
	c, _ := storedTOTP(t, raw, "carol")
	if !strings.HasPrefix(a, "v1:") || !strings.HasPrefix(b, "v1:") || c != sealedC {
		t.Fatalf("after open: alice %q, bob's pending %q, carol %q (was %q)", a, b, c, sealedC)
	}
	if n := strings.Count(env.logs.String(), `"keys":2`); n != 1 {
		t.Fatalf("%d log lines about two sealed keys:\n%s", n, env.logs)
	}

	// Opening again changes nothing.
	reopen(t, env, nil)
	if a2, _ := storedTOTP(t, raw, "alice"); a2 != a {
		t.Fatalf("alice's key sealed again: %q, was %q", a2, a)
	}
	if n := strings.Count(env.logs.String(), "sealed TOTP keys"); n != 1 {
		t.Fatalf("%d log lines about sealed keys after a second open", n)
	}

	for login, s := range map[string]string{"alice": secretA, "carol": secretC} {
		if _, err := restarted.AuthenticateUser(ctx, UserCredentials{Login: login, Password: alicePassword, OTP: totpCode(t, s, clock.Now())}); err != nil {
			t.Fatalf("%s after sealing: %v", login, err)
		}
	}
	if _, err := restarted.ConfirmTOTP(ctx, "bob", totpCode(t, pendingB, clock.Now()), "cli"); err != nil {
		t.Fatalf("bob's pending key after sealing: %v", err)
	}
	for _, s := range []string{secretA, pendingB} {
		if strings.Contains(env.logs.String(), s) {
			t.Fatal("a TOTP key is in the log")
		}
	}
}

func TestSecretsKeyFileIsCreatedOnceAndReused(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock()
	env := openTestService(t, func(o *Options) { o.Now = clock.Now })
	keyFile := filepath.Join(filepath.Dir(env.path), "secrets.key")
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(key) {
		t.Fatalf("key file holds %d bytes, not 64 hex digits and a newline", len(key))
	}
	if strings.Contains(env.logs.String(), strings.TrimSpace(string(key))) {
		t.Fatal("the secrets key is in the log")
	}
	if _, err := env.svc.AddUser(ctx, NewUser{Login: "alice", Password: alicePassword}, "cli"); err != nil {
		t.Fatal(err)
	}
	secretA, _ := enrollTOTP(t, env.svc, clock, "alice")

	next := reopen(t, env, func(o *Options) { o.Now = clock.Now })
	again, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, key) {
		t.Fatal("the key file was replaced on the next open")
	}
	if n := strings.Count(env.logs.String(), "created a new secrets key"); n != 1 {
		t.Fatalf("%d log lines about a created key, want 1", n)
	}
	if _, err := next.AuthenticateUser(ctx, UserCredentials{Login: "alice", Password: alicePassword, OTP: totpCode(t, secretA, clock.Now())}); err != nil {
		t.Fatalf("TOTP login after reopening: %v", err)
	}

	// Without its key file, a database holding sealed keys is not given a new one.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, openDB(t, env.path), Options{Password: testPassword})
	if fault.CodeOf(err) != CodeSecretsKeyInvalid || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("open without the key file: %v, want %s naming %s", err, CodeSecretsKeyInvalid, keyFile)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a new key file was made for a database sealed under another")
	}
}

func TestBadSecretsKeyIsRefused(t *testing.T) {
	env := openTestService(t, nil)
	short := randomHexKey(t)[:62]
	notHex := "g" + randomHexKey(t)[1:]
	for name, ref := range map[string]secret.Ref{
		"31 bytes":      {File: writeKeyFile(t, short)},
		"not hex":       {File: writeKeyFile(t, notHex)},
		"missing file":  {File: filepath.Join(t.TempDir(), "none.key")},
		"unset env var": {Env: "SEALGATE_TEST_NO_SUCH_KEY"},
	} {
		_, err := Open(context.Background(), openDB(t, env.path), Options{Password: testPassword, SecretsKey: ref})
		if fault.CodeOf(err) != CodeSecretsKeyInvalid {
			t.Errorf("%s: %v, want %s", name, err, CodeSecretsKeyInvalid)
			continue
		}
		if strings.Contains(err.Error(), short) || strings.Contains(err.Error(), notHex[1:]) || strings.Contains(err.Error(), "'g'") {
			t.Errorf("%s: the error shows the key: %v", name, err)
		}
	}
}
