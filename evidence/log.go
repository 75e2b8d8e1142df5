// Package evidence keeps sealgate's tamper-evident record of every seal.
//
// Each seal appends one Entry to an append-only Merkle tree log hashed as in
// RFC 6962 / RFC 9162. Periodically the log publishes a checkpoint (tree size,
// root hash, time) as a signed note (golang.org/x/mod/sumdb/note), sealed with
// the organisation's seal and timestamped by a TSA. Anyone holding a document
// can then obtain an inclusion proof to a checkpoint, and anyone holding two
// checkpoints a consistency proof between them. For long-term preservation
// each checkpoint's new documents are also covered by an RFC 4998 evidence
// record (hash tree plus archive timestamps), renewable when algorithms age.
//
// The package knows nothing of HTTP or users; transports call Log's methods.
package evidence

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/store"
)

// Error codes reported by this package.
const (
	CodeNotFound          fault.Code = "evidence_not_found"
	CodeBadRange          fault.Code = "evidence_bad_range"
	CodeBadDigest         fault.Code = "evidence_bad_digest"
	CodeBadEntry          fault.Code = "evidence_bad_entry"
	CodePending           fault.Code = "evidence_pending"
	CodeClosed            fault.Code = "evidence_log_closed"
	CodeCorrupt           fault.Code = "evidence_log_corrupt"
	CodeRecordUnavailable fault.Code = "evidence_record_unavailable"
	CodeProofInvalid      fault.Code = "proof_invalid"
	CodeSignatureInvalid  fault.Code = "checkpoint_signature_invalid"
	CodeSealInvalid       fault.Code = "checkpoint_seal_invalid"
	CodeTimestampInvalid  fault.Code = "timestamp_invalid"
	CodeRecordInvalid     fault.Code = "record_invalid"
)

// migrations are the evidence tables, append-only.
//
// evidence_leaves holds one row per leaf: the entry encoding and the stored
// hashes the leaf completed (see merkle.go). evidence_documents maps a
// document digest's first 8 bytes (as a signed integer: a compact key whose
// rare collisions are resolved by comparing the full digest in the entry)
// to the leaves naming it; it is filled in sorted bulk steps up to
// evidence_index_state.indexed (see index.go).
var migrations = []string{
	`CREATE TABLE evidence_leaves (
		idx INTEGER PRIMARY KEY,
		entry BLOB NOT NULL,
		hashes BLOB NOT NULL)`,
	`CREATE TABLE evidence_documents (
		doc_key INTEGER NOT NULL,
		idx INTEGER NOT NULL)`,
	`CREATE INDEX evidence_documents_key ON evidence_documents (doc_key, idx)`,
	`CREATE TABLE evidence_index_state (
		id INTEGER PRIMARY KEY,
		indexed INTEGER NOT NULL)`,
	`INSERT INTO evidence_index_state (id, indexed) VALUES (1, 0)`,
	`CREATE TABLE evidence_checkpoints (
		size INTEGER PRIMARY KEY,
		root BLOB NOT NULL,
		made_at TEXT NOT NULL,
		note BLOB NOT NULL,
		seal BLOB,
		timestamp BLOB)`,
	`CREATE TABLE evidence_archive_timestamps (
		checkpoint INTEGER NOT NULL,
		chain INTEGER NOT NULL,
		seq INTEGER NOT NULL,
		digest TEXT NOT NULL,
		root BLOB NOT NULL,
		reduced BLOB,
		token BLOB NOT NULL,
		made_at TEXT NOT NULL,
		PRIMARY KEY (checkpoint, chain, seq))`,
}

// Options configure a Log. The zero value works: keys are made beside the
// database, checkpoints are signed but neither sealed nor timestamped.
type Options struct {
	// Origin is the first line of every checkpoint and the note key name,
	// identifying this log (e.g. "seal.example.com/log"). Default "sealgate".
	Origin string
	// KeyDir holds the log's signing key (evidence-log.key) and the
	// principal pseudonym key (evidence-principal.key), both made on first
	// start with mode 0600. Default: the database's directory.
	KeyDir string
	// Sealer seals a checkpoint's note text with the organisation's seal,
	// returning a detached CAdES signature (.p7s). Optional.
	Sealer func(ctx context.Context, text []byte) ([]byte, error)
	// Timestamper timestamps checkpoints and evidence record hash trees.
	// Optional; without it no evidence records can be issued.
	Timestamper signing.Timestamper
	// CheckpointInterval is how often Run makes a checkpoint when there are
	// new leaves. Default 10s.
	CheckpointInterval time.Duration
	// RenewAfter makes Run renew (RFC 4998 §5.2) archive timestamps older
	// than this. Zero disables scheduled renewal.
	RenewAfter time.Duration
	// Logger receives Run's failures. Default slog.Default().
	Logger *slog.Logger
}

// Log is an append-only evidence log stored in a sealgate database.
// Its methods are safe for concurrent use.
type Log struct {
	db           *store.DB
	opts         Options
	signer       note.Signer
	verifier     note.Verifier
	vkey         string
	principalKey []byte

	// reqs feeds the committer; every Append waiting while a transaction
	// runs is committed by the next one (group commit).
	reqs      chan *appendReq
	closing   chan struct{}
	closeOnce sync.Once
	stopped   chan struct{}

	mu      sync.Mutex // guards tree (committed state) and pending
	tree    frontier
	pending map[int64][]uint64 // digest key → leaves not yet in evidence_documents

	idxMu sync.Mutex // one index step at a time

	cpMu sync.Mutex // one checkpoint or renewal at a time

	commits atomic.Int64 // transactions written by the committer
	waiting atomic.Int64 // callers whose entries are queued or being written

	missingATS atomic.Bool // a checkpoint may lack its archive timestamp; Run retries

	checkpointStep uint64 // most new leaves one checkpoint covers
}

// maxCheckpointStep bounds the leaves one checkpoint adds: its RFC 4998 tree is
// built in memory (two digests per entry).
const maxCheckpointStep = 1 << 20

// appendReq is one caller's entries waiting for the committer.
type appendReq struct {
	rows  []leafRow
	first int64 // set by the committer
	err   error
	done  chan struct{}
}

// leafRow is an entry prepared (encoded, hashed) by the appending goroutine,
// so the committer only does the tree arithmetic and the insert.
type leafRow struct {
	data []byte
	hash tlog.Hash
	keys []int64 // digest keys of the entry's documents (Entry.documentKeys)
}

// maxBatch bounds one transaction so a flood of appends still commits in
// steps and memory stays bounded.
const maxBatch = 8192

// Open opens the log in db, applying its migrations and loading (or making)
// its keys, and starts the committer. Close stops it.
func Open(ctx context.Context, db *store.DB, opts Options) (*Log, error) {
	if opts.Origin == "" {
		opts.Origin = "sealgate"
	}
	if opts.KeyDir == "" {
		opts.KeyDir = filepath.Dir(db.Path())
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := db.Migrate(ctx, "evidence", migrations); err != nil {
		return nil, err
	}
	l := &Log{db: db, opts: opts,
		pending:        map[int64][]uint64{},
		checkpointStep: maxCheckpointStep,
		reqs:           make(chan *appendReq, 1024),
		closing:        make(chan struct{}),
		stopped:        make(chan struct{}),
	}
	if err := l.loadKeys(); err != nil {
		return nil, err
	}
	if err := l.loadTree(ctx, db.Read()); err != nil {
		return nil, err
	}
	// Leaves appended by a process that ended before indexing them.
	if err := l.index(ctx, l.Size()); err != nil {
		return nil, err
	}
	// A previous process may have made checkpoints while the TSA was down.
	l.missingATS.Store(opts.Timestamper != nil)
	go l.commit()
	return l, nil
}

// loadKeys reads the note signer and principal key, making them on first start.
func (l *Log) loadKeys() error {
	skey, err := readOrMake(filepath.Join(l.opts.KeyDir, "evidence-log.key"), func() ([]byte, error) {
		skey, _, err := note.GenerateKey(rand.Reader, l.opts.Origin)
		return []byte(skey + "\n"), err
	})
	if err != nil {
		return err
	}
	if l.signer, err = note.NewSigner(strings.TrimSpace(string(skey))); err != nil {
		return fmt.Errorf("evidence: log key in %s is malformed", l.opts.KeyDir)
	}
	if l.signer.Name() != l.opts.Origin {
		return fmt.Errorf("evidence: the log key in %s belongs to origin %q, not %q", l.opts.KeyDir, l.signer.Name(), l.opts.Origin)
	}
	l.vkey = verifierKey(string(skey))
	if l.verifier, err = note.NewVerifier(l.vkey); err != nil {
		return fmt.Errorf("evidence: log key in %s is malformed", l.opts.KeyDir)
	}
	l.principalKey, err = readOrMake(filepath.Join(l.opts.KeyDir, "evidence-principal.key"), func() ([]byte, error) {
		k := make([]byte, 32)
		_, err := rand.Read(k)
		return k, err
	})
	return err
}

// readOrMake returns the content of the secret file path, creating it with
// make's output (mode 0600, never overwriting) if it does not exist.
func readOrMake(path string, make func() ([]byte, error)) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("evidence: key file: %w", err)
	}
	b, err = make()
	if err != nil {
		return nil, fmt.Errorf("evidence: make key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("evidence: key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: key file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("evidence: write key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("evidence: write key %s: %w", path, err)
	}
	return b, f.Close()
}

// verifierKey derives the note verifier key from a note signer key, both in
// golang.org/x/mod/sumdb/note's text format: the signer key is
// "PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ Ed25519 seed)>". It returns ""
// for a malformed key, which note.NewVerifier then rejects.
func verifierKey(skey string) string {
	f := strings.SplitN(strings.TrimSpace(skey), "+", 5) // base64 may hold "+"
	if len(f) != 5 {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize {
		return ""
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(f[2], pub)
	if err != nil {
		return ""
	}
	return vkey
}

// VerifierKey returns the log's public key in note verifier format
// ("<origin>+<hash>+<base64 key>"); publish it so checkpoints can be checked.
func (l *Log) VerifierKey() string { return l.vkey }

// Timestamper returns the TSA the log timestamps with (nil without one).
func (l *Log) Timestamper() signing.Timestamper { return l.opts.Timestamper }

// RenewAfter returns the age after which archive timestamps are renewed
// (0: never automatically).
func (l *Log) RenewAfter() time.Duration { return l.opts.RenewAfter }

// Origin returns the log's origin line.
func (l *Log) Origin() string { return l.opts.Origin }

// PrincipalHash returns the pseudonym to record as Entry.PrincipalHash for
// the principal with the given stable id: HMAC-SHA-256 under this
// installation's key, so leaves carry no personal data.
func (l *Log) PrincipalHash(id string) SHA256 { return principalHash(l.principalKey, id) }

// loadTree reads the size and right edge of the committed tree.
func (l *Log) loadTree(ctx context.Context, q querier) error {
	var last sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(idx) FROM evidence_leaves`).Scan(&last); err != nil {
		return fmt.Errorf("evidence: tree size: %w", err)
	}
	f := frontier{}
	if last.Valid {
		f.size = last.Int64 + 1
	}
	levels, ns := frontierLevels(f.size)
	idx := make([]int64, len(levels))
	for i := range levels {
		idx[i] = tlog.StoredHashIndex(levels[i], ns[i])
	}
	hs, err := readHashes(ctx, q, idx)
	if err != nil {
		return err
	}
	for i, lv := range levels {
		f.hashes[lv] = hs[i]
	}
	l.mu.Lock()
	l.tree = f
	l.mu.Unlock()
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readHashes returns the stored hashes at the given tlog stored-hash
// indexes, reading each owning leaf row once: O(len(indexes)) row reads in
// one query.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows := make(map[int64][]byte, len(indexes))
	args := make([]any, 0, len(indexes))
	for _, x := range indexes {
		leaf, _ := hashOwner(tlog.SplitStoredHashIndex(x))
		if _, ok := rows[leaf]; !ok {
			rows[leaf] = nil
			args = append(args, leaf)
		}
	}
	res, err := q.QueryContext(ctx, `SELECT idx, hashes FROM evidence_leaves WHERE idx IN (?`+
		strings.Repeat(",?", len(args)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("evidence: read hashes: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var idx int64
		var hs []byte
		if err := res.Scan(&idx, &hs); err != nil {
			return nil, fmt.Errorf("evidence: read hashes: %w", err)
		}
		rows[idx] = hs
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("evidence: read hashes: %w", err)
	}
	return pickHashes(rows, indexes)
}

// pickHashes cuts the stored hashes at indexes out of their owners' rows.
func pickHashes(rows map[int64][]byte, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		leaf, off := hashOwner(tlog.SplitStoredHashIndex(x))
		row := rows[leaf]
		if len(row) < off+tlog.HashSize {
			return nil, fault.New(fault.Internal, CodeCorrupt, "stored hashes of leaf %d are missing or short", leaf)
		}
		copy(out[i][:], row[off:])
	}
	return out, nil
}

// hashReader adapts readHashes to tlog.HashReader.
func (l *Log) hashReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return readHashes(ctx, l.db.Read(), idx)
	})
}

// Size returns the number of committed leaves.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(l.tree.size)
}

// Append adds e to the log and returns its leaf index once the leaf is
// committed. Appends from many goroutines are committed together in one
// transaction (group commit). If ctx ends first, Append returns ctx's error
// and the entry may or may not have been appended.
func (l *Log) Append(ctx context.Context, e Entry) (uint64, error) {
	return l.append(ctx, []Entry{e})
}

// AppendBatch adds entries in order and returns the index of the first;
// entry i gets index first+i. They are committed atomically, possibly
// together with other callers' entries.
func (l *Log) AppendBatch(ctx context.Context, entries []Entry) (first uint64, err error) {
	if len(entries) == 0 {
		return l.Size(), nil
	}
	return l.append(ctx, entries)
}

func (l *Log) append(ctx context.Context, entries []Entry) (uint64, error) {
	r := &appendReq{rows: make([]leafRow, len(entries)), done: make(chan struct{})}
	for i, e := range entries {
		data, err := e.MarshalBinary()
		if err != nil {
			return 0, err
		}
		r.rows[i] = leafRow{data: data, hash: LeafHash(data), keys: e.documentKeys()}
	}
	select {
	case l.reqs <- r:
		l.waiting.Add(1)
		defer l.waiting.Add(-1)
	case <-l.closing:
		return 0, fault.New(fault.Unavailable, CodeClosed, "the evidence log is closed")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case <-r.done:
		return uint64(r.first), r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-l.stopped:
		// The committer answers every request it took before stopping.
		select {
		case <-r.done:
			return uint64(r.first), r.err
		default:
			return 0, fault.New(fault.Unavailable, CodeClosed, "the evidence log is closed")
		}
	}
}

// digestKey is the index key of a digest: its first 8 bytes.
func digestKey(h SHA256) int64 { return int64(binary.BigEndian.Uint64(h[:8])) }

// documentKeys are the digest keys under which the entry's documents are
// found: the sealed and the original document's, once each. An audit
// anchor names no document, so a document lookup never finds one.
func (e Entry) documentKeys() []int64 {
	if e.Format == FormatAuditHead {
		return nil
	}
	sealed, original := digestKey(e.SealedSHA256), digestKey(e.OriginalSHA256)
	if sealed == original {
		return []int64{sealed}
	}
	return []int64{sealed, original}
}

// commit is the committer goroutine: it takes every request waiting, writes
// them in one transaction, then releases their callers.
func (l *Log) commit() {
	defer close(l.stopped)
	for {
		var batch []*appendReq
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-l.closing:
			l.failPending()
			return
		}
		n := len(batch[0].rows)
	drain:
		for n < maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
				n += len(r.rows)
			default:
				break drain
			}
		}
		err := l.write(batch)
		l.commits.Add(1)
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		if err == nil && l.pendingCount() >= indexEvery {
			if err := l.index(context.Background(), l.Size()); err != nil {
				l.opts.Logger.Error("evidence index step failed", "err", err)
			}
		}
	}
}

// failPending releases callers still queued at Close.
func (l *Log) failPending() {
	for {
		select {
		case r := <-l.reqs:
			r.err = fault.New(fault.Unavailable, CodeClosed, "the evidence log is closed")
			close(r.done)
		default:
			return
		}
	}
}

// write appends the batch's leaves in one transaction. The tree state is
// advanced on a copy and published only after the commit, so a failed
// transaction leaves memory and database agreeing.
func (l *Log) write(batch []*appendReq) error {
	ctx := context.Background()
	l.mu.Lock()
	tree := l.tree
	l.mu.Unlock()
	err := l.db.Write(ctx, func(tx *sql.Tx) error {
		// Another process may have appended since this one last looked;
		// then the right edge is reloaded from the database.
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(idx) FROM evidence_leaves`).Scan(&last); err != nil {
			return fmt.Errorf("evidence: tree size: %w", err)
		}
		if size := last.Int64 + 1; !last.Valid && tree.size != 0 || last.Valid && size != tree.size {
			if err := l.loadTree(ctx, tx); err != nil {
				return err
			}
			l.mu.Lock()
			tree = l.tree
			l.mu.Unlock()
		}
		var rows []any
		for _, r := range batch {
			r.first = tree.size
			for _, row := range r.rows {
				idx := tree.size
				rows = append(rows, idx, row.data, tree.add(row.hash))
			}
		}
		return insertRows(ctx, tx, `INSERT INTO evidence_leaves (idx, entry, hashes) VALUES `, 3, rows)
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	for _, r := range batch {
		for i, row := range r.rows {
			for _, k := range row.keys {
				l.pending[k] = append(l.pending[k], uint64(r.first)+uint64(i))
			}
		}
	}
	l.tree = tree
	l.mu.Unlock()
	return nil
}

// insertRows inserts values (cols per row) with multi-row INSERT
// statements, which cost SQLite far less per row than one statement each.
func insertRows(ctx context.Context, tx *sql.Tx, insert string, cols int, values []any) error {
	const perStmt = 100
	one := "(?" + strings.Repeat(",?", cols-1) + ")"
	var full *sql.Stmt
	for len(values) > 0 {
		n := min(perStmt, len(values)/cols)
		var err error
		if n == perStmt {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insert+one+strings.Repeat(","+one, n-1)); err != nil {
					return fmt.Errorf("evidence: insert: %w", err)
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, values[:n*cols]...)
		} else {
			_, err = tx.ExecContext(ctx, insert+one+strings.Repeat(","+one, n-1), values[:n*cols]...)
		}
		if err != nil {
			return fmt.Errorf("evidence: insert: %w", err)
		}
		values = values[n*cols:]
	}
	return nil
}

// Close stops the committer; appends waiting or arriving later fail with
// evidence_log_closed. It does not close the database.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { close(l.closing) })
	<-l.stopped
	return nil
}
