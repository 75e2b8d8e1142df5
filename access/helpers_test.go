package access

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/store"
)

// testPassword keeps argon2id real but small, so tests that log in often
// stay fast; BenchmarkAccessLogin measures the production parameters.
var testPassword = PasswordParams{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}

// logBuffer collects every log line of a test, to check that no secret leaks.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type testEnv struct {
	path string
	db   *store.DB
	svc  *Service
	logs *logBuffer
}

// openTestService opens a Service on a fresh SQLite file; change adjusts the options.
func openTestService(t testing.TB, change func(*Options)) *testEnv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sealgate.db")
	env := &testEnv{path: path, logs: &logBuffer{}}
	env.db = openDB(t, path)
	opts := Options{
		Logger:   slog.New(slog.NewJSONHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Password: testPassword,
	}
	if change != nil {
		change(&opts)
	}
	svc, err := Open(context.Background(), env.db, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	env.svc = svc
	return env
}

func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testClock is the Service's clock in tests that need time to pass
// (token expiry, lockout, TOTP steps) without sleeping.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	// 10 s into a TOTP step, so codes of the current step stay current.
	return &testClock{t: time.Date(2026, 11, 23, 12, 0, 10, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// enrollTOTP enrolls login's TOTP and returns the key's secret and the
// recovery codes.
func enrollTOTP(t testing.TB, svc *Service, clock *testClock, login string) (string, []string) {
	t.Helper()
	ctx := context.Background()
	en, err := svc.EnrollTOTP(ctx, login, "cli")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(en.URL)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(key.Secret(), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	recovery, err := svc.ConfirmTOTP(ctx, login, code, "cli")
	if err != nil {
		t.Fatal(err)
	}
	// The confirmation used this step's code: move on to a fresh step.
	clock.Add(30 * time.Second)
	return key.Secret(), recovery
}

func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func netipAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
