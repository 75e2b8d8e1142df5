package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMigrateAppliesOnceAndRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sealgate.db")
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := []string{`CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`}
	v2 := append(v1, `ALTER TABLE things ADD COLUMN colour TEXT`)
	if err := db.Migrate(ctx, "things", v1); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, "things", v2); err != nil {
		t.Fatal(err)
	}
	// Applying again is a no-op, not a duplicate-column error.
	if err := db.Migrate(ctx, "things", v2); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	db.Close()

	db, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Migrate(ctx, "things", v1)
	if err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("old binary on newer schema: got %v, want refusal naming version 2", err)
	}
	var mode string
	if err := db.Read().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
}

func TestWriteRollsBackOnErrorAndSerializesWriters(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, "c", []string{`CREATE TABLE c (n INTEGER NOT NULL)`}); err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO c (n) VALUES (1)`); err != nil {
			return err
		}
		return sql.ErrNoRows // any error
	})
	if err != sql.ErrNoRows {
		t.Fatalf("Write returned %v", err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Write(ctx, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO c (n) VALUES (2)`)
				return err
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var n, sum int
	if err := db.Read().QueryRow(`SELECT COUNT(*), COALESCE(SUM(n),0) FROM c`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 50 || sum != 100 {
		t.Fatalf("rows=%d sum=%d, want 50 rows of 2 (the rolled-back 1 must be gone)", n, sum)
	}
}

func TestDurability(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		durability string
		want       int // PRAGMA synchronous: 1 NORMAL, 2 FULL
	}{{"", 2}, {"full", 2}, {"normal", 1}} {
		db, err := Open(ctx, filepath.Join(t.TempDir(), "d.db"), Options{Durability: c.durability})
		if err != nil {
			t.Fatal(err)
		}
		var got int
		if err := db.writer.QueryRow(`PRAGMA synchronous`).Scan(&got); err != nil || got != c.want {
			t.Errorf("durability %q: synchronous = %d, %v; want %d", c.durability, got, err, c.want)
		}
		db.Close()
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "d.db"), Options{Durability: "sometimes"}); err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("unknown durability: %v", err)
	}
}

// Concurrent grouped writes commit together, yet each stands alone: one
// that fails or panics leaves nothing and gets its own error, the others
// commit and each caller hears only of its own write.
func TestWriteGroupedKeepsEachWriteApart(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, "c", []string{`CREATE TABLE c (n INTEGER NOT NULL UNIQUE)`}); err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO c (n) VALUES (-1)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const writers = 200
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			errs[i] = db.WriteGrouped(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO c (n) VALUES (?)`, i); err != nil {
					return err
				}
				switch i % 10 {
				case 3:
					return sql.ErrNoRows // any error, after writing
				case 7:
					panic("a write that panics")
				case 9:
					_, err := tx.ExecContext(ctx, `INSERT INTO c (n) VALUES (-1)`) // a constraint the database refuses
					return err
				}
				return nil
			})
		})
	}
	wg.Wait()
	rows, err := db.Read().Query(`SELECT n FROM c`)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[int]bool{}
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		kept[n] = true
	}
	rows.Close()
	for i, err := range errs {
		failing := i%10 == 3 || i%10 == 7 || i%10 == 9
		switch {
		case failing && err == nil:
			t.Errorf("write %d should have failed", i)
		case !failing && err != nil:
			t.Errorf("write %d: %v", i, err)
		case failing == kept[i]:
			t.Errorf("write %d: failed %v, row kept %v", i, failing, kept[i])
		}
	}
}
