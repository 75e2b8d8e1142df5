package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// Event is one entry of the audit trail. Events are append-only and chained:
// Hash = SHA-256(PrevHash ‖ canonical encoding of the event), so changing or
// removing any stored event breaks the chain from there on. Events never
// carry secrets (passwords, client secrets, PINs, tokens, TOTP codes).
type Event struct {
	// ID is the event's position in the trail, from 1, assigned on append.
	ID int64 `json:"id"`
	// At is when the event was appended (millisecond precision).
	At time.Time `json:"at"`
	// Type says what happened, e.g. "login", "decision", "seal", "rule.add".
	Type string `json:"type"`
	// Actor is who did it, e.g. "user:alice", "process:erp", "cli", "ldapsync:corp".
	Actor string `json:"actor"`
	// Subject is what it concerns, e.g. "user:bob", "rule:erp-invoices", "seal:company".
	Subject string `json:"subject,omitempty"`
	// Source is the caller's network address, when known.
	Source string `json:"source,omitempty"`
	// Outcome is "ok", "denied" or "failed".
	Outcome string `json:"outcome"`
	// Detail holds further facts as name/value pairs.
	Detail map[string]string `json:"detail,omitempty"`
	// PrevHash is the hash of the previous event (32 zero bytes before the first).
	PrevHash []byte `json:"prevHash"`
	// Hash chains this event to PrevHash.
	Hash []byte `json:"hash"`
}

// Outcomes of events.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// canonical is the hashed encoding of an event: fixed field order (struct
// order), times as integer milliseconds, detail keys sorted by encoding/json.
func (e *Event) canonical() []byte {
	b, err := json.Marshal(struct {
		ID      int64             `json:"id"`
		At      int64             `json:"at"`
		Type    string            `json:"type"`
		Actor   string            `json:"actor"`
		Subject string            `json:"subject"`
		Source  string            `json:"source"`
		Outcome string            `json:"outcome"`
		Detail  map[string]string `json:"detail"`
	}{e.ID, e.At.UnixMilli(), e.Type, e.Actor, e.Subject, e.Source, e.Outcome, e.Detail})
	if err != nil {
		panic(err) // strings and ints always encode
	}
	return b
}

func chainHash(prev []byte, e *Event) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(e.canonical())
	return h.Sum(nil)
}

// auditHead is the chain state after the last committed append.
type auditHead struct {
	lastID int64
	count  uint64
	hash   []byte
}

// appendAudit adds e to the trail inside tx and returns the new head.
func (s *Service) appendAudit(ctx context.Context, tx *sql.Tx, e Event) (auditHead, error) {
	if e.Type == "" || e.Actor == "" {
		return auditHead{}, fault.New(fault.Invalid, CodeInvalidInput, "audit event needs a type and an actor (type %q, actor %q)", e.Type, e.Actor)
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	// Actors and subjects may be what a caller typed, a secret included.
	e.Actor, e.Subject = Redact(e.Actor), Redact(e.Subject)
	if len(e.Detail) > 0 {
		clean := make(map[string]string, len(e.Detail))
		for k, v := range e.Detail {
			clean[k] = Redact(v)
		}
		e.Detail = clean
	}
	var h auditHead
	err := tx.QueryRowContext(ctx, `SELECT last_id, count, hash FROM access_audit_head WHERE id = 1`).Scan(&h.lastID, &h.count, &h.hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		h.hash = make([]byte, sha256.Size)
	case err != nil:
		return auditHead{}, internal(err, "read audit head")
	}
	e.ID = h.lastID + 1
	e.At = time.UnixMilli(s.nowMS()).UTC()
	e.PrevHash = h.hash
	e.Hash = chainHash(h.hash, &e)
	detail, _ := json.Marshal(e.Detail)
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_audit (id, at, type, actor, subject, source, outcome, detail, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.At.UnixMilli(), e.Type, e.Actor, e.Subject, e.Source, e.Outcome, string(detail), e.PrevHash, e.Hash); err != nil {
		return auditHead{}, internal(err, "append audit event")
	}
	next := auditHead{lastID: e.ID, count: h.count + 1, hash: e.Hash}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_audit_head (id, last_id, count, hash) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, count = excluded.count, hash = excluded.hash`,
		next.lastID, next.count, next.hash); err != nil {
		return auditHead{}, internal(err, "update audit head")
	}
	return next, nil
}

// write runs fn in one write transaction; events passed to audit are
// appended in the same transaction, so a change and its audit record commit
// or fail together. OnAuditHead sees the head after commit.
func (s *Service) write(ctx context.Context, fn func(tx *sql.Tx, audit func(Event) error) error) error {
	var head *auditHead
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		head = nil
		return fn(tx, func(e Event) error {
			h, err := s.appendAudit(ctx, tx, e)
			if err == nil {
				head = &h
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	if head != nil && s.opts.OnAuditHead != nil {
		s.opts.OnAuditHead(ctx, head.hash, head.count)
	}
	return nil
}

// Audit appends an event for another package (seals, card health,
// directory sync). Callers must not put secrets in it.
func (s *Service) Audit(ctx context.Context, e Event) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error { return audit(e) })
}

// AuditReport is the result of VerifyAudit.
type AuditReport struct {
	// Count is the number of events checked.
	Count uint64 `json:"count"`
	// Head is the hash of the last intact event.
	Head []byte `json:"head"`
	// OK is true when the whole trail is intact.
	OK bool `json:"ok"`
	// FirstBad is the id of the first tampered or missing event (0 when OK).
	FirstBad int64 `json:"firstBad,omitempty"`
	// Problem says what is wrong with FirstBad.
	Problem string `json:"problem,omitempty"`
}

// VerifyAudit recomputes the whole chain and reports the first event that
// was changed, or is missing (a gap in ids, or fewer events than the
// recorded head). Rewriting an event together with its hash is caught by
// the next event's PrevHash; the chain's own tail is only as safe as the
// head recorded outside the database (Options.OnAuditHead).
func (s *Service) VerifyAudit(ctx context.Context) (*AuditReport, error) {
	rep := &AuditReport{Head: make([]byte, sha256.Size)}
	var prev *Event
	err := s.scanAudit(ctx, 0, -1, func(e *Event) error {
		want := int64(1)
		if prev != nil {
			want = prev.ID + 1
		}
		switch {
		case e.ID != want:
			rep.FirstBad, rep.Problem = want, fmt.Sprintf("event %d is missing", want)
		case !bytes.Equal(chainHash(e.PrevHash, e), e.Hash):
			rep.FirstBad, rep.Problem = e.ID, fmt.Sprintf("event %d does not match its hash", e.ID)
		case !bytes.Equal(e.PrevHash, rep.Head):
			// e is self-consistent, so the previous event was rewritten
			// together with its hash.
			bad := int64(1)
			if prev != nil {
				bad = prev.ID
			}
			rep.FirstBad, rep.Problem = bad, fmt.Sprintf("event %d was rewritten: event %d does not chain to it", bad, e.ID)
		}
		if rep.FirstBad != 0 {
			return errStopScan
		}
		rep.Count++
		rep.Head = e.Hash
		prev = e
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return nil, err
	}
	if rep.FirstBad == 0 {
		var h auditHead
		err := s.db.Read().QueryRowContext(ctx, `SELECT last_id, count, hash FROM access_audit_head WHERE id = 1`).Scan(&h.lastID, &h.count, &h.hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, internal(err, "read audit head")
		case h.count != rep.Count || !bytes.Equal(h.hash, rep.Head):
			rep.FirstBad = int64(rep.Count) + 1
			rep.Problem = fmt.Sprintf("the trail ends at event %d but its recorded head is event %d", rep.Count, h.lastID)
		}
	}
	rep.OK = rep.FirstBad == 0
	return rep, nil
}

var errStopScan = errors.New("stop")

// scanAudit calls fn for events with id > after in id order, at most limit
// of them (limit < 0: all).
func (s *Service) scanAudit(ctx context.Context, after int64, limit int, fn func(*Event) error) error {
	q := `SELECT id, at, type, actor, subject, source, outcome, detail, prev_hash, hash FROM access_audit WHERE id > ? ORDER BY id`
	args := []any{after}
	if limit >= 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.Read().QueryContext(ctx, q, args...)
	if err != nil {
		return internal(err, "read audit trail")
	}
	defer rows.Close()
	for rows.Next() {
		var e Event
		var at int64
		var detail string
		if err := rows.Scan(&e.ID, &at, &e.Type, &e.Actor, &e.Subject, &e.Source, &e.Outcome, &detail, &e.PrevHash, &e.Hash); err != nil {
			return internal(err, "read audit event")
		}
		e.At = time.UnixMilli(at).UTC()
		if err := json.Unmarshal([]byte(detail), &e.Detail); err != nil {
			e.Detail = map[string]string{"undecodable": detail}
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return internal(err, "read audit trail")
	}
	return nil
}

// AuditEvents returns up to limit events with id > after, oldest first.
func (s *Service) AuditEvents(ctx context.Context, after int64, limit int) ([]Event, error) {
	out := []Event{}
	err := s.scanAudit(ctx, after, limit, func(e *Event) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// ExportAudit writes every event with id > after as JSON lines.
func (s *Service) ExportAudit(ctx context.Context, w io.Writer, after int64) error {
	enc := json.NewEncoder(w)
	return s.scanAudit(ctx, after, -1, func(e *Event) error { return enc.Encode(e) })
}

// AuditHead returns the number of events in the trail and the hash of the
// newest (32 zero bytes for an empty trail), as recorded with the last
// append. Anchoring it outside the database (the evidence log) makes a
// deleted tail detectable.
func (s *Service) AuditHead(ctx context.Context) (count uint64, hash []byte, err error) {
	err = s.db.Read().QueryRowContext(ctx, `SELECT count, hash FROM access_audit_head WHERE id = 1`).Scan(&count, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, make([]byte, sha256.Size), nil
	}
	if err != nil {
		return 0, nil, internal(err, "read audit head")
	}
	return count, hash, nil
}

// AuditTx appends e inside the caller's write transaction (from
// store.DB.Write), so another package's record and its audit event commit
// together, with one flush. Callers must not put secrets in it.
func (s *Service) AuditTx(ctx context.Context, tx *sql.Tx, e Event) error {
	_, err := s.appendAudit(ctx, tx, e)
	return err
}
