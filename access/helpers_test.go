package access

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

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
