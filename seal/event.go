package seal

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/sealgate/sealgate/access"
)

// migrations are the seal package's schema versions (append only).
var migrations = []string{
	`CREATE TABLE seal_events (
		id TEXT PRIMARY KEY,
		at TEXT NOT NULL,
		principal_kind TEXT NOT NULL,
		principal_id INTEGER NOT NULL,
		principal_name TEXT NOT NULL,
		seal_id TEXT NOT NULL,
		card TEXT NOT NULL DEFAULT '',
		format TEXT NOT NULL,
		level TEXT NOT NULL,
		document_name TEXT NOT NULL DEFAULT '',
		original_sha256 TEXT NOT NULL DEFAULT '',
		sealed_sha256 TEXT NOT NULL DEFAULT '',
		size INTEGER NOT NULL DEFAULT 0,
		outcome TEXT NOT NULL CHECK (outcome IN ('sealed', 'failed')),
		error_code TEXT NOT NULL DEFAULT '',
		evidence_index INTEGER,
		duration_ms INTEGER NOT NULL
	)`,
	`CREATE INDEX seal_events_at ON seal_events (at)`,
	`CREATE INDEX seal_events_sealed ON seal_events (sealed_sha256)`,
	// A job's document has at most one seal event: on recovery, a document
	// whose event exists is finished (see Jobs.settle).
	`ALTER TABLE seal_events ADD COLUMN job_document TEXT`,
	`CREATE UNIQUE INDEX seal_events_job_document ON seal_events (job_document)`,
	`CREATE TABLE seal_jobs (
		id TEXT PRIMARY KEY,
		principal_kind TEXT NOT NULL,
		principal_id INTEGER NOT NULL,
		principal_name TEXT NOT NULL,
		source TEXT NOT NULL DEFAULT '',
		options TEXT NOT NULL,
		rule TEXT NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
		documents INTEGER NOT NULL,
		pending INTEGER NOT NULL,
		sealed INTEGER NOT NULL DEFAULT 0,
		size INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		finished_at INTEGER)`,
	`CREATE INDEX seal_jobs_finished ON seal_jobs (finished_at)`,
	`CREATE TABLE seal_job_documents (
		job_id TEXT NOT NULL REFERENCES seal_jobs (id) ON DELETE CASCADE,
		n INTEGER NOT NULL,
		name TEXT NOT NULL,
		size INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
		attempts INTEGER NOT NULL DEFAULT 0,
		not_before INTEGER NOT NULL DEFAULT 0,
		error_code TEXT NOT NULL DEFAULT '',
		error_message TEXT NOT NULL DEFAULT '',
		event_id TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (job_id, n))`,
	`CREATE INDEX seal_job_documents_queue ON seal_job_documents (state, created_at, job_id, n)`,
	// Idempotency keys (idempotency.go): one row per principal and key; a
	// seal made under a key has its event name the row, at most once.
	`CREATE TABLE seal_idempotency (
		id TEXT PRIMARY KEY,
		principal_kind TEXT NOT NULL,
		principal_id INTEGER NOT NULL,
		principal_name TEXT NOT NULL,
		request_key TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		state TEXT NOT NULL CHECK (state IN ('running', 'done')),
		document_name TEXT NOT NULL DEFAULT '',
		job_id TEXT NOT NULL DEFAULT '',
		revocation_unavailable TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		UNIQUE (principal_kind, principal_id, request_key))`,
	`CREATE INDEX seal_idempotency_expires ON seal_idempotency (state, expires_at)`,
	`ALTER TABLE seal_events ADD COLUMN idempotency TEXT`,
	`CREATE UNIQUE INDEX seal_events_idempotency ON seal_events (idempotency)`,
}

// event is one row of seal_events being recorded.
type event struct {
	id      string
	req     Request
	started time.Time
	code    string
	msg     string  // the failure's message, kept for a job's document
	doc     *jobDoc // the job's document sealed, if any
}

// record writes the event: sealed when res is not nil, failed otherwise.
func (s *Service) record(ctx context.Context, ev *event, res *Result) error {
	ev.id = newID()
	outcome := "failed"
	var orig, sealed string
	var size int64
	var idx sql.NullInt64
	level, card := string(ev.req.Level), ""
	if res != nil {
		card = res.Card
		outcome = "sealed"
		orig, sealed = hex.EncodeToString(res.OriginalSHA256), hex.EncodeToString(res.SealedSHA256)
		size = res.Size
		idx = sql.NullInt64{Int64: int64(res.EvidenceIndex), Valid: true}
		level = string(res.Level)
	}
	p := ev.req.Principal
	var jobDocument, idempotency sql.NullString
	if ev.doc != nil {
		jobDocument = sql.NullString{String: ev.doc.key(), Valid: true}
	}
	claim := ev.req.claim
	if res == nil {
		claim = nil // a failure releases the key (settleClaim)
	}
	if claim != nil {
		idempotency = sql.NullString{String: claim.id, Valid: true}
	}
	// The event row, its audit event and a job document's or an idempotency
	// key's state commit together — and with the events of the seals
	// recorded at the same moment: one commit, one flush, for the group.
	err := s.opts.DB.WriteGrouped(ctx, func(tx *sql.Tx) error {
		if err := s.opts.Authorizer.AuditTx(ctx, tx, auditEvent(ev, res)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO seal_events
			(id, at, principal_kind, principal_id, principal_name, seal_id, card, format, level, document_name,
			 original_sha256, sealed_sha256, size, outcome, error_code, evidence_index, duration_ms, job_document, idempotency)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.id, ev.started.UTC().Format(time.RFC3339Nano), string(p.Kind), p.ID, p.Name, ev.req.Seal, card,
			string(ev.req.Format), level, ev.req.Name, orig, sealed, size, outcome, ev.code, idx,
			time.Since(ev.started).Milliseconds(), jobDocument, idempotency)
		if err != nil {
			return err
		}
		if claim != nil {
			return claim.finish(ctx, tx, s, res)
		}
		if ev.doc == nil {
			return nil
		}
		state := JobDone
		if res == nil {
			state = JobFailed
		}
		return ev.doc.finish(ctx, tx, state, ev.code, ev.msg, ev.id)
	})
	if err != nil {
		return fmt.Errorf("seal: record event: %w", err)
	}
	return nil
}

// eventResultColumns are the columns of a seal event (as e) that make its
// Result; scanEventResult reads them.
const eventResultColumns = `e.id, e.at, e.card, e.level, e.original_sha256, e.sealed_sha256, e.size, e.evidence_index`

// scanEventResult fills res from a row of eventResultColumns followed by
// the extra destinations.
func scanEventResult(row *sql.Row, res *Result, extra ...any) error {
	var at, orig, sealed string
	var idx int64
	if err := row.Scan(append([]any{&res.EventID, &at, &res.Card, &res.Level, &orig, &sealed, &res.Size, &idx}, extra...)...); err != nil {
		return err
	}
	res.EvidenceIndex = uint64(idx)
	res.Time, _ = time.Parse(time.RFC3339Nano, at)
	var err error
	if res.OriginalSHA256, err = hex.DecodeString(orig); err == nil {
		res.SealedSHA256, err = hex.DecodeString(sealed)
	}
	return err
}

// auditEvent is the seal's outcome for the tamper-evident audit trail. The
// seal event row is the operational record; the audit event makes its
// deletion or change detectable.
func auditEvent(ev *event, res *Result) access.Event {
	p := ev.req.Principal
	e := access.Event{
		Type:    "seal",
		Actor:   p.String(),
		Subject: "seal:" + ev.req.Seal,
		Outcome: access.OutcomeOK,
		Detail:  map[string]string{"event": ev.id, "format": string(ev.req.Format)},
	}
	if p.Source.IsValid() {
		e.Source = p.Source.String()
	}
	if res != nil {
		e.Detail["level"] = string(res.Level)
		e.Detail["card"] = res.Card
		e.Detail["rule"] = res.Rule
		e.Detail["sealedSha256"] = hex.EncodeToString(res.SealedSHA256)
		e.Detail["leaf"] = strconv.FormatUint(res.EvidenceIndex, 10)
	} else {
		e.Outcome = access.OutcomeFailed
		e.Detail["code"] = ev.code
	}
	return e
}
