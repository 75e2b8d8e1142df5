package seal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
)

// Idempotent requests (draft-ietf-httpapi-idempotency-key-header): a
// request that carries an idempotency key is remembered, per principal, for
// the idempotency window. A retry with the same key and the same request
// gets the first answer and seals nothing; the same key with another
// request is refused, and so is a retry while the first is still at work.
//
// A seal's output is kept under Options.IdempotencyDir before its evidence
// is appended, and its seal event names the key's row (seal_events.idempotency,
// unique) and commits with the row's state, the way a job's document is
// sealed exactly once: after a crash, Recover finds every key still at work
// either sealed (its event, or its kept output's evidence leaf) or never
// sealed (then the key is released and a retry seals).

// Codes of idempotency keys.
const (
	// CodeIdempotencyKeyReused: the key was used by the principal for
	// another request (another document, other options) within the window.
	CodeIdempotencyKeyReused fault.Code = "idempotency_key_reused"
	// CodeIdempotencyKeyInProgress: the first request with the key is still
	// being processed; retry after RetryAfter.
	CodeIdempotencyKeyInProgress fault.Code = "idempotency_key_in_progress"
)

// MaxIdempotencyKeyLength bounds an idempotency key, in bytes.
const MaxIdempotencyKeyLength = 255

// DefaultIdempotencyWindow is how long an answer is kept for its key.
const DefaultIdempotencyWindow = 24 * time.Hour

// inProgressRetry is what a caller refused with idempotency_key_in_progress
// is told to wait: most seals take well under a second.
const inProgressRetry = time.Second

// CheckIdempotencyKey refuses a key that is empty, longer than
// MaxIdempotencyKeyLength or not printable ASCII (space to tilde), with the
// code bad_request.
func CheckIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLength {
		return fault.New(fault.Invalid, CodeBadRequest, "the idempotency key has %d bytes: give 1 to %d", len(key), MaxIdempotencyKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return fault.New(fault.Invalid, CodeBadRequest, "the idempotency key has the byte 0x%02x at %d: only printable ASCII is allowed", c, i)
		}
	}
	return nil
}

// Key row states.
const (
	keyRunning = "running"
	keyDone    = "done"
)

// keyRow is a row of seal_idempotency.
type keyRow struct {
	id          string
	fingerprint string
	state       string
	jobID       string
	revocation  string
	expires     time.Time
}

// idemClaim is an idempotency key claimed (state running) by the request
// being sealed under it.
type idemClaim struct {
	id        string
	dir       string
	principal access.Principal
	name      string
	// in is the request's document, spooled while its digest was taken.
	in *spoolFile
}

// outPath is where the seal's output is kept for replays.
func (c *idemClaim) outPath() string { return filepath.Join(c.dir, c.id) }

// fingerprint identifies a request for its key: the operation, the
// normalized options, the document name(s) and the documents' SHA-256.
func fingerprint(op string, req Request, names []string, digests [][]byte) string {
	hexes := make([]string, len(digests))
	for i, d := range digests {
		hexes[i] = hex.EncodeToString(d)
	}
	b, _ := json.Marshal(struct {
		Op        string     `json:"op"`
		Options   jobOptions `json:"options"`
		Names     []string   `json:"names"`
		Documents []string   `json:"documents"`
	}{op, optionsOf(req), names, hexes})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// readKey reads p's row of key, sql.ErrNoRows when there is none.
func readKey(ctx context.Context, q querier, p access.Principal, key string) (*keyRow, error) {
	var r keyRow
	var expires int64
	err := q.QueryRowContext(ctx, `SELECT id, fingerprint, state, job_id, revocation_unavailable, expires_at FROM seal_idempotency
		WHERE principal_kind = ? AND principal_id = ? AND request_key = ?`, string(p.Kind), p.ID, key).
		Scan(&r.id, &r.fingerprint, &r.state, &r.jobID, &r.revocation, &expires)
	r.expires = time.UnixMilli(expires)
	return &r, err
}

// checkKey says what an existing row means for a request with fingerprint
// fp: nil when the row answers it, else why it is refused.
func (s *Service) checkKey(r *keyRow, fp string) error {
	switch {
	case r.state == keyRunning:
		return fault.New(fault.Conflict, CodeIdempotencyKeyInProgress, "a request with this idempotency key is still being processed; retry shortly").Retry(inProgressRetry)
	case r.fingerprint != fp:
		return fault.New(fault.Unprocessable, CodeIdempotencyKeyReused, "this idempotency key was used for another request (another document or other options) within the last %s: use a new key for a new request", s.opts.IdempotencyWindow)
	}
	return nil
}

// useKey looks up p's key within a write transaction: the row that answers
// fp (nil when the key is free, or its answer expired and was removed now,
// then expired names the removed row), or why the request is refused.
func (s *Service) useKey(ctx context.Context, tx *sql.Tx, p access.Principal, key, fp string) (r *keyRow, expired string, err error) {
	r, err = readKey(ctx, tx, p, key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("seal: read idempotency key: %w", err)
	case r.state == keyDone && !r.expires.After(time.Now()):
		if _, err := tx.ExecContext(ctx, `DELETE FROM seal_idempotency WHERE id = ?`, r.id); err != nil {
			return nil, "", fmt.Errorf("seal: remove expired idempotency key: %w", err)
		}
		return nil, r.id, nil
	}
	return r, "", s.checkKey(r, fp)
}

// insertKey records p's key for fp, done with its job or running for a seal.
func (s *Service) insertKey(ctx context.Context, tx *sql.Tx, id string, p access.Principal, key, fp, name, jobID string) error {
	state := keyRunning
	if jobID != "" {
		state = keyDone
	}
	now := time.Now()
	_, err := tx.ExecContext(ctx, `INSERT INTO seal_idempotency
		(id, principal_kind, principal_id, principal_name, request_key, fingerprint, state, document_name, job_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, string(p.Kind), p.ID, p.Name, key, fp, state, name, jobID, now.UnixMilli(), now.Add(s.opts.IdempotencyWindow).UnixMilli())
	if err != nil {
		return fmt.Errorf("seal: record idempotency key: %w", err)
	}
	return nil
}

// removeKept deletes the kept output of an expired key's row.
func (s *Service) removeKept(id string) {
	if id == "" {
		return
	}
	if err := os.Remove(filepath.Join(s.opts.IdempotencyDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("expired idempotent result not removed", "key", id, "err", err)
	}
}

// claimRequest handles req's idempotency key before it is sealed: it
// spools the document while taking its digest, then either returns the
// stored result of the first request with the key, or refuses req, or
// claims the key (req.claim, with req's document now the spooled copy).
func (s *Service) claimRequest(ctx context.Context, req *Request) (*Result, error) {
	if s.opts.IdempotencyDir == "" {
		return nil, errors.New("seal: idempotency keys need Options.IdempotencyDir")
	}
	p, key := req.Principal, req.IdempotencyKey
	if err := CheckIdempotencyKey(key); err != nil {
		return nil, err
	}
	if p.Kind == access.KindAnonymous {
		return nil, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "an idempotency key needs an authenticated caller")
	}
	// A retry of a request still at work is told so before its document is read.
	if r, err := readKey(ctx, s.opts.DB.Read(), p, key); err == nil && r.state == keyRunning {
		return nil, s.checkKey(r, "")
	}
	in, size, sum, err := s.spoolCopy(newLimitedReader(req.Document, s.opts.MaxDocumentSize), true)
	if err != nil {
		return nil, err
	}
	fp := fingerprint("seal", *req, []string{req.Name}, [][]byte{sum})
	c := &idemClaim{id: newID(), dir: s.opts.IdempotencyDir, principal: p, name: req.Name, in: in}
	var stored *keyRow
	var expired string
	err = s.opts.DB.Write(ctx, func(tx *sql.Tx) error {
		var err error
		if stored, expired, err = s.useKey(ctx, tx, p, key, fp); err != nil || stored != nil {
			return err
		}
		return s.insertKey(ctx, tx, c.id, p, key, fp, req.Name, "")
	})
	s.removeKept(expired)
	if err != nil || stored != nil {
		in.remove()
		if err != nil {
			return nil, err
		}
		return s.replay(ctx, stored)
	}
	req.claim = c
	req.Document, req.Size = io.NewSectionReader(in, 0, size), size
	return nil, nil
}

// replay is the stored result of a key's first seal.
func (s *Service) replay(ctx context.Context, r *keyRow) (*Result, error) {
	res := &Result{Replayed: true}
	err := scanEventResult(s.opts.DB.Read().QueryRowContext(ctx, `SELECT `+eventResultColumns+`, e.seal_id, e.format
		FROM seal_events e WHERE e.idempotency = ?`, r.id), res, &res.Seal, &res.Format)
	if err != nil {
		return nil, fmt.Errorf("seal: seal event of idempotency key: %w", err)
	}
	res.ContentType = contentType(res.Format)
	if r.revocation != "" {
		res.RevocationUnavailable = strings.Split(r.revocation, "\n")
	}
	if res.stored, err = os.Open(filepath.Join(s.opts.IdempotencyDir, r.id)); err != nil {
		return nil, fmt.Errorf("seal: kept result of idempotency key: %w", err)
	}
	return res, nil
}

// finish marks the claimed key done, inside the transaction of its seal
// event; its window starts now.
func (c *idemClaim) finish(ctx context.Context, tx *sql.Tx, s *Service, res *Result) error {
	_, err := tx.ExecContext(ctx, `UPDATE seal_idempotency SET state = 'done', revocation_unavailable = ?, expires_at = ?
		WHERE id = ? AND state = 'running'`, strings.Join(res.RevocationUnavailable, "\n"), time.Now().Add(s.opts.IdempotencyWindow).UnixMilli(), c.id)
	if err != nil {
		return fmt.Errorf("seal: finish idempotency key: %w", err)
	}
	return nil
}

// settleClaim decides a claimed key whose request did not end with its
// seal event (it failed, or the process sealing it ended): a seal whose
// kept output has an evidence leaf gets its event recorded from the leaf,
// and the key answers with it; otherwise nothing was sealed, the kept
// output (never handed out) is deleted and the key is released.
func (s *Service) settleClaim(ctx context.Context, c *idemClaim) {
	if err := s.settleKey(ctx, c); err != nil {
		// It answers idempotency_key_in_progress until Recover settles it.
		s.log.Error("idempotency key not settled", "key", c.id, "err", err)
	}
}

func (s *Service) settleKey(ctx context.Context, c *idemClaim) error {
	var events int
	if err := s.opts.DB.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM seal_events WHERE idempotency = ?`, c.id).Scan(&events); err != nil {
		return fmt.Errorf("seal: read seal event: %w", err)
	}
	if events > 0 {
		return nil
	}
	leaf, size, err := s.keptLeaf(ctx, c.outPath())
	if err != nil {
		return err
	}
	if leaf != nil {
		e := leaf.Entry
		req := Request{Principal: c.principal, Seal: e.SealID, Format: Format(e.Format), Level: Level(e.Level), Name: c.name, claim: c}
		res := &Result{Seal: e.SealID, Format: Format(e.Format), Level: Level(e.Level), OriginalSHA256: e.OriginalSHA256[:],
			SealedSHA256: e.SealedSHA256[:], EvidenceIndex: leaf.Index, Size: size, Time: e.Time}
		ev := event{req: req, started: e.Time}
		if err := s.record(ctx, &ev, res); err != nil {
			return err
		}
		s.log.Info("idempotent seal recovered from its evidence leaf", "key", c.id, "event", ev.id, "leaf", leaf.Index)
		return nil
	}
	if err := os.Remove(c.outPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("seal: remove unrecorded idempotent result: %w", err)
	}
	return s.opts.DB.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM seal_idempotency WHERE id = ? AND state = 'running'`, c.id)
		return err
	})
}

// Recover settles the idempotent seals a previous process left at work
// (see settleClaim) and removes kept outputs without a key. Call it once
// when the node starts, before it serves.
func (s *Service) Recover(ctx context.Context) error {
	if s.opts.IdempotencyDir == "" {
		return nil
	}
	rows, err := s.opts.DB.Read().QueryContext(ctx, `SELECT id, principal_kind, principal_id, principal_name, document_name
		FROM seal_idempotency WHERE state = 'running'`)
	if err != nil {
		return fmt.Errorf("seal: recover idempotency keys: %w", err)
	}
	var claims []*idemClaim
	for rows.Next() {
		c := &idemClaim{dir: s.opts.IdempotencyDir}
		var kind string
		if err := rows.Scan(&c.id, &kind, &c.principal.ID, &c.principal.Name, &c.name); err != nil {
			rows.Close()
			return fmt.Errorf("seal: recover idempotency keys: %w", err)
		}
		c.principal.Kind = access.Kind(kind)
		claims = append(claims, c)
	}
	rows.Close()
	for _, c := range claims {
		s.settleClaim(ctx, c)
	}
	if len(claims) > 0 {
		s.log.Info("idempotent seals interrupted by the previous run settled", "keys", len(claims))
	}
	entries, err := os.ReadDir(s.opts.IdempotencyDir)
	if err != nil {
		return fmt.Errorf("seal: idempotency directory: %w", err)
	}
	for _, e := range entries {
		var n int
		if err := s.opts.DB.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM seal_idempotency WHERE id = ?`, e.Name()).Scan(&n); err != nil {
			return fmt.Errorf("seal: recover idempotency keys: %w", err)
		}
		if n == 0 {
			s.removeKept(e.Name())
		}
	}
	return nil
}

// Run purges idempotency keys past their window, and their kept outputs,
// until ctx ends.
func (s *Service) Run(ctx context.Context) {
	purgeEvery(ctx, s.log, s.opts.IdempotencyWindow, "expired idempotency keys not purged", s.purgeKeys)
}

func (s *Service) purgeKeys(ctx context.Context) error {
	var ids []string
	err := s.opts.DB.Write(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `DELETE FROM seal_idempotency WHERE state = 'done' AND expires_at <= ? RETURNING id`, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("seal: purge idempotency keys: %w", err)
	}
	if s.opts.IdempotencyDir != "" {
		for _, id := range ids {
			s.removeKept(id)
		}
	}
	return nil
}
