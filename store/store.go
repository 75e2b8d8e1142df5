// Package store opens sealgate's database and applies each package's schema
// migrations.
//
// SQLite (modernc.org/sqlite, no cgo) in WAL mode is the default. All writes go
// through one connection (DB.Write), so writers queue in Go instead of
// fighting over SQLite's lock; reads use a separate pool and never block on a
// writer. Packages own their tables: each passes its migrations to Migrate
// under its own component name. SQL is kept portable (no SQLite-only syntax
// beyond what PostgreSQL also accepts) so several nodes can later share
// PostgreSQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open sealgate database.
type DB struct {
	path   string
	read   *sql.DB
	writer *sql.DB
	group  writeGroup
}

// Options tune Open. The zero value is fine.
type Options struct {
	// BusyTimeout is how long a connection waits for another process's lock.
	// Default 10s.
	BusyTimeout time.Duration
	// ReadConns bounds the read pool. Default 8.
	ReadConns int
	// Durability is "full" (the default: every commit is flushed to disk
	// before it returns, so what was answered survives a power loss) or
	// "normal" (commits survive a crash of sealgate but the last ones may be
	// lost if the machine loses power; about a third more seals per second).
	Durability string
}

// Open opens (creating if needed) the SQLite database at path.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.ReadConns == 0 {
		opts.ReadConns = 8
	}
	sync := "FULL"
	switch opts.Durability {
	case "", "full":
	case "normal":
		sync = "NORMAL"
	default:
		return nil, fmt.Errorf("store: durability %q is not full or normal", opts.Durability)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// Seal events, users and audit trail are for sealgate's eyes only; SQLite
	// gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	} else {
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	writer, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	read, err := sql.Open("sqlite", dsn)
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(opts.ReadConns)
	db := &DB{path: path, read: read, writer: writer}
	if err := db.Migrate(ctx, "store", nil); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Read returns the pool for queries. Do not write through it.
func (db *DB) Read() *sql.DB { return db.read }

// Write runs fn in a write transaction on the single writer connection and
// commits it if fn returns nil. Transactions start IMMEDIATE, so a writer in
// another process makes this one wait (up to the busy timeout) instead of
// failing at commit.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// writeGroup gathers the WriteGrouped calls waiting at one time.
type writeGroup struct {
	mu      sync.Mutex
	pending []*groupedWrite
	leading bool // a caller is committing a group; the next one waits its turn
}

// groupedWrite is one WriteGrouped call: its function, and where it hears
// its outcome or that it is to commit the next group.
type groupedWrite struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	done chan error
	lead chan struct{}
}

// WriteGrouped runs fn like Write, but in one transaction with the other
// WriteGrouped calls waiting at the same time, so that a group costs one
// commit (one flush to disk with durability full) instead of one each.
// Every fn runs under its own savepoint: one that fails, or panics, is
// rolled back alone and its caller gets the error; the others commit. It
// returns only once the group's commit is done, so what a caller was told
// is written is durable like with Write. fn must not call Write or
// WriteGrouped.
func (db *DB) WriteGrouped(ctx context.Context, fn func(tx *sql.Tx) error) error {
	w := &groupedWrite{ctx: ctx, fn: fn, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	g := &db.group
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if !g.leading {
		g.leading = true
		w.lead <- struct{}{}
	}
	g.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-w.lead:
	}
	// This caller commits everything waiting now, its own write included,
	// then hands the turn to the first that came meanwhile: no caller
	// commits for others for longer than one group.
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()
	db.commitGroup(batch)
	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].lead <- struct{}{}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return <-w.done
}

// commitGroup runs the writes of batch in one transaction, each under a
// savepoint, commits, and tells each its outcome.
func (db *DB) commitGroup(batch []*groupedWrite) {
	errs := make([]error, len(batch))
	fail := func(err error) {
		for _, w := range batch {
			w.done <- err
		}
	}
	// The transaction serves many callers: none's context may end it.
	ctx := context.Background()
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		fail(fmt.Errorf("store: begin: %w", err))
		return
	}
	for i, w := range batch {
		if err := w.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := tx.ExecContext(ctx, `SAVEPOINT grouped`); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("store: savepoint: %w", err))
			return
		}
		errs[i] = runGrouped(w.fn, tx)
		if errs[i] != nil {
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO grouped`); err != nil {
				_ = tx.Rollback()
				fail(fmt.Errorf("store: rollback to savepoint: %w", err))
				return
			}
		}
		if _, err := tx.ExecContext(ctx, `RELEASE grouped`); err != nil {
			_ = tx.Rollback()
			fail(fmt.Errorf("store: release savepoint: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(fmt.Errorf("store: commit: %w", err))
		return
	}
	for i, w := range batch {
		w.done <- errs[i]
	}
}

// runGrouped runs one grouped write, turning a panic into its error so the
// others of its group still commit.
func runGrouped(fn func(tx *sql.Tx) error, tx *sql.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: grouped write panicked: %v", p)
		}
	}()
	return fn(tx)
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.read.Close(), db.writer.Close())
}

// Migrate applies, in order, the migrations of component that this database
// has not seen yet. Migration i (0-based) is schema version i+1 of that
// component; a migration is never edited once released, only appended to.
// A database newer than the binary (more versions applied than known) is
// refused, so an old binary never writes into a schema it does not understand.
func (db *DB) Migrate(ctx context.Context, component string, migrations []string) error {
	return db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			component TEXT NOT NULL,
			version INTEGER NOT NULL,
			applied_at TEXT NOT NULL,
			PRIMARY KEY (component, version))`); err != nil {
			return fmt.Errorf("store: migrations table: %w", err)
		}
		var current int
		if err := tx.QueryRowContext(ctx,
			`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = ?`,
			component).Scan(&current); err != nil {
			return fmt.Errorf("store: schema version of %s: %w", component, err)
		}
		if current > len(migrations) {
			return fmt.Errorf("store: database schema of %s is version %d, this sealgate knows only %d: upgrade sealgate",
				component, current, len(migrations))
		}
		for v := current + 1; v <= len(migrations); v++ {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("store: %s migration %d: %w", component, v, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)`,
				component, v, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
				return fmt.Errorf("store: record %s migration %d: %w", component, v, err)
			}
		}
		return nil
	})
}
