package seal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/store"
)

// Codes of batch jobs.
const (
	// CodeJobUnknown: no job of that id, or one of another principal (the
	// two look alike, so job ids cannot be probed).
	CodeJobUnknown fault.Code = "job_unknown"
	// CodeJobDocumentUnknown: the job has no document of that number.
	CodeJobDocumentUnknown fault.Code = "job_document_unknown"
	// CodeJobTooLarge: more documents or more bytes than jobs.maxDocuments
	// and jobs.maxTotalSize (or jobs.maxQueued) allow.
	CodeJobTooLarge fault.Code = "job_too_large"
	// CodeJobEmpty: a job without documents.
	CodeJobEmpty fault.Code = "job_empty"
	// CodeQueueFull: the queued documents of all jobs reach jobs.maxQueued;
	// retry after RetryAfter.
	CodeQueueFull fault.Code = "queue_full"
	// CodeJobPending: the job or document is not finished yet.
	CodeJobPending fault.Code = "job_pending"
	// CodeJobDocumentFailed: the document was not sealed; the message has
	// its own code and reason (also in the job's status).
	CodeJobDocumentFailed fault.Code = "job_document_failed"
	// CodeJobCancelled: the job was cancelled and its results purged.
	CodeJobCancelled fault.Code = "job_cancelled"
	// CodeJobsConfigInvalid: the jobs section of sealgate.yaml is wrong.
	CodeJobsConfigInvalid fault.Code = "jobs_config_invalid"
)

// JobState is the state of a job and of each of its documents.
type JobState string

// Job and document states. A job is done when all its documents ended and
// at least one was sealed, failed when none was.
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobDone      JobState = "done"
	JobFailed    JobState = "failed"
	JobCancelled JobState = "cancelled"
)

// JobsConfig is the "jobs" section of sealgate.yaml:
//
//	jobs:
//	  workers: 32              # default: sixteen per signing session of the seal pool, at least batchSize
//	  batchSize: 8             # a job's documents signed as one batch at a remote credential; default workers
//	  maxDocuments: 10000      # documents per job
//	  maxTotalSize: 4294967296 # bytes per job
//	  maxQueued: 100000        # documents waiting over all jobs; beyond: 429 queue_full
//	  retention: 168h          # results kept after a job ends
//	  dir: /var/lib/sealgate/jobs  # default <data>/jobs
type JobsConfig struct {
	Workers int `yaml:"workers"`
	// BatchSize bounds how many of a job's documents are sealed at the same
	// time with their signatures gathered into one signing.Batch, where a
	// card holding the job's seal signs batches (a remote credential: one
	// authorization for the batch). It cannot exceed Workers, which seal
	// a batch's documents side by side.
	BatchSize    int           `yaml:"batchSize"`
	MaxDocuments int           `yaml:"maxDocuments"`
	MaxTotalSize int64         `yaml:"maxTotalSize"`
	MaxQueued    int           `yaml:"maxQueued"`
	Retention    time.Duration `yaml:"retention"`
	Dir          string        `yaml:"dir"`
}

// LoadJobsConfig decodes the jobs section of f with its defaults; a
// relative dir is taken from the configuration file's directory. Workers
// and BatchSize stay 0 unless set: the node sizes workers from its seal
// pool, and NewJobs makes a batch as large as the workers.
func LoadJobsConfig(f *config.File) (JobsConfig, error) {
	var c JobsConfig
	if _, err := f.Section("jobs", &c); err != nil {
		return c, fault.Wrap(err, fault.Invalid, CodeJobsConfigInvalid, "jobs section of %s", f.Path)
	}
	if c.Workers < 0 || c.BatchSize < 0 || c.MaxDocuments < 0 || c.MaxTotalSize < 0 || c.MaxQueued < 0 || c.Retention < 0 {
		return c, fault.New(fault.Invalid, CodeJobsConfigInvalid, "jobs: workers, batchSize, maxDocuments, maxTotalSize, maxQueued and retention must not be negative")
	}
	if c.MaxDocuments == 0 {
		c.MaxDocuments = 10000
	}
	if c.MaxTotalSize == 0 {
		c.MaxTotalSize = 4 << 30
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = 10 * c.MaxDocuments
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	switch {
	case c.Dir == "":
		c.Dir = filepath.Join(f.Data, "jobs")
	case !filepath.IsAbs(c.Dir) && f.Path != "":
		c.Dir = filepath.Join(filepath.Dir(f.Path), c.Dir)
	}
	return c, nil
}

// JobsOptions configure Jobs.
type JobsOptions struct {
	JobsConfig
	// ObserveDocument, when set, is told how each job document ended:
	// done, failed or cancelled (for metrics).
	ObserveDocument func(state JobState)
	// ObserveJob, when set, is told how each job ended and how long it took
	// from submission.
	ObserveJob func(state JobState, took time.Duration)
}

// Jobs seals batches of documents asynchronously: Submit makes a job
// durable and returns, Run's workers seal its documents through the one
// sealing path, each exactly once, also across crashes. It is safe for
// concurrent use.
type Jobs struct {
	svc  *Service
	db   *store.DB
	opts JobsOptions
	log  *slog.Logger
	// wake tells the dispatcher that a job was submitted.
	wake chan struct{}
}

// NewJobs returns the job machinery of svc; Run starts its work.
func NewJobs(svc *Service, opts JobsOptions) (*Jobs, error) {
	if opts.Dir == "" || opts.MaxDocuments <= 0 || opts.MaxTotalSize <= 0 || opts.MaxQueued <= 0 || opts.Retention <= 0 {
		return nil, errors.New("seal: jobs need Dir, MaxDocuments, MaxTotalSize, MaxQueued and Retention (LoadJobsConfig)")
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = opts.Workers
	}
	if opts.BatchSize > opts.Workers {
		return nil, fault.New(fault.Invalid, CodeJobsConfigInvalid, "jobs: batchSize %d exceeds workers %d: the documents of a batch are sealed side by side", opts.BatchSize, opts.Workers)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("seal: jobs directory: %w", err)
	}
	return &Jobs{svc: svc, db: svc.opts.DB, opts: opts, log: svc.log, wake: make(chan struct{}, 1)}, nil
}

// Limits are the job limits in force (jobs.maxDocuments, jobs.maxTotalSize
// and the rest), for transports that check an archive's directory before
// unpacking it.
func (j *Jobs) Limits() JobsConfig { return j.opts.JobsConfig }

// JobInput is one document handed in with a job. Reader is read to its end
// before the next document is asked for.
type JobInput struct {
	// Name is the document's file name, for the records only: it never
	// becomes a path.
	Name   string
	Reader io.Reader
}

// JobRequest asks for a batch of documents to be sealed alike.
type JobRequest struct {
	// Request carries the principal and the options, as for one seal
	// (ParseOptions); its Document, Size, Name and BatchSize are not used.
	Request Request
	// TOTP is a fresh TOTP code that approves the whole job, for rules
	// with approval: batch.
	TOTP string
	// IdempotencyKey, when set, makes the submission idempotent for its
	// principal, as Request.IdempotencyKey does for one seal: a retry with
	// the same key, options and documents (the TOTP code aside) gets the
	// first job's status and submits nothing.
	IdempotencyKey string
	// Documents yields the documents in order, or an error of the
	// transport (which is returned as it is).
	Documents iter.Seq2[JobInput, error]
}

// JobCounts are a job's documents by state.
type JobCounts struct {
	Queued    int `json:"queued"`
	Running   int `json:"running"`
	Done      int `json:"done"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// JobDocument is the state of one document of a job.
type JobDocument struct {
	// N numbers the documents from 1 in the order they were handed in.
	N     int      `json:"n"`
	Name  string   `json:"name,omitempty"`
	Size  int64    `json:"size"`
	State JobState `json:"state"`
	// Code and Message say why a failed document was not sealed.
	Code    fault.Code `json:"code,omitempty"`
	Message string     `json:"message,omitempty"`
	// EventID and EvidenceIndex name the seal event and the evidence leaf
	// of a sealed document (and the event of a failed one).
	EventID       string  `json:"eventId,omitempty"`
	EvidenceIndex *uint64 `json:"evidenceIndex,omitempty"`
}

// JobStatus is what Status tells of a job.
type JobStatus struct {
	ID     string   `json:"id"`
	State  JobState `json:"state"`
	Seal   string   `json:"seal"`
	Format Format   `json:"format"`
	Level  Level    `json:"level"`
	// Created is when the job was submitted; Finished when its last
	// document ended or it was cancelled; Expires when it will be purged.
	Created   time.Time     `json:"created"`
	Finished  time.Time     `json:"finished,omitzero"`
	Expires   time.Time     `json:"expires,omitzero"`
	Counts    JobCounts     `json:"counts"`
	Documents []JobDocument `json:"documents"`
}

// JobResult is one sealed document of a job: the Result of its seal (for
// the same evidence headers as a single seal; RevocationUnavailable is not
// kept) with the document's number and name. Close it.
type JobResult struct {
	*Result
	N    int
	Name string
}

// jobOptions are a job's sealing options as stored with it.
type jobOptions struct {
	Seal      string           `json:"seal"`
	Format    Format           `json:"format"`
	Level     Level            `json:"level"`
	Field     string           `json:"field,omitempty"`
	Reason    string           `json:"reason,omitempty"`
	Location  string           `json:"location,omitempty"`
	Placement pades.Placement  `json:"placement"`
	Certify   pades.Permission `json:"certify,omitempty"`
}

func optionsOf(req Request) jobOptions {
	return jobOptions{Seal: req.Seal, Format: req.Format, Level: req.Level, Field: req.PDF.Field, Reason: req.PDF.Reason,
		Location: req.PDF.Location, Placement: req.PDF.Placement, Certify: req.PDF.Certify}
}

// spooled is a document written to a job's in/ directory.
type spooled struct {
	name   string
	size   int64
	sha256 []byte
}

// Submit makes a job durable and returns its status (every document
// queued): the documents are spooled under the jobs directory and flushed,
// the job is authorized as one seal of all its documents (one approval, a
// quota counting each document), and its rows are committed. A refused job
// leaves nothing behind.
func (j *Jobs) Submit(ctx context.Context, jr JobRequest) (JobStatus, error) {
	p := jr.Request.Principal
	if p.Kind == access.KindAnonymous {
		return JobStatus{}, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "a job needs an authenticated caller")
	}
	if jr.Request.Name != "" {
		return JobStatus{}, fault.New(fault.Invalid, CodeBadRequest, "option \"name\" does not apply to a job: each document is named by itself (a part's file name, a ZIP entry, a SOAP document's name)")
	}
	req, err := j.svc.normalizeOptions(jr.Request)
	if err != nil {
		return JobStatus{}, err
	}
	if jr.Documents == nil {
		return JobStatus{}, fault.New(fault.Invalid, CodeJobEmpty, "the job has no documents")
	}
	if err := j.checkQueue(ctx, j.db.Read(), 1); err != nil {
		return JobStatus{}, err
	}
	if jr.IdempotencyKey != "" {
		if err := CheckIdempotencyKey(jr.IdempotencyKey); err != nil {
			return JobStatus{}, err
		}
	}
	id := newID()
	dir := j.jobDir(id)
	docs, size, err := j.spool(dir, jr.Documents)
	var key *jobKey
	if err == nil && jr.IdempotencyKey != "" {
		key, err = j.checkKey(ctx, req, jr.IdempotencyKey, docs)
	}
	if err == nil && key.answer() == "" {
		err = j.admit(ctx, id, jr.TOTP, req, docs, size, key)
	}
	if err == nil && key.answer() != "" {
		// A retry: the first job answers, this one's files go.
		if rerr := os.RemoveAll(dir); rerr != nil {
			j.log.Error("repeated job's files not removed", "job", id, "err", rerr)
		}
		j.log.Info("idempotent job submission replayed", "job", key.first, "principal", p.String())
		st, err := j.status(ctx, key.first)
		if errors.Is(err, sql.ErrNoRows) {
			return st, fault.New(fault.NotFound, CodeJobUnknown, "job %q, which answered this idempotency key, was removed", key.first)
		}
		return st, err
	}
	if err != nil {
		if rerr := os.RemoveAll(dir); rerr != nil {
			j.log.Error("refused job's files not removed", "job", id, "err", rerr)
		}
		return JobStatus{}, err
	}
	j.log.Info("job submitted", "job", id, "principal", p.String(), "seal", req.Seal, "documents", len(docs), "bytes", size)
	// The status as submitted, before the workers are told.
	st, err := j.status(ctx, id)
	select {
	case j.wake <- struct{}{}:
	default:
	}
	return st, err
}

// jobKey is a submission's idempotency key with the fingerprint of its
// documents; first names the job that answered it first, if any.
type jobKey struct {
	key, fingerprint string
	first            string
}

// answer is the job that answers the key: none without a key.
func (k *jobKey) answer() string {
	if k == nil {
		return ""
	}
	return k.first
}

// checkKey looks up the submission's idempotency key before the job is
// authorized (a retry brings the TOTP code used already): the job that
// answers it, or why it is refused, or nothing when the key is free.
func (j *Jobs) checkKey(ctx context.Context, req Request, key string, docs []spooled) (*jobKey, error) {
	names, digests := make([]string, len(docs)), make([][]byte, len(docs))
	for i, d := range docs {
		names[i], digests[i] = d.name, d.sha256
	}
	k := &jobKey{key: key, fingerprint: fingerprint("job", req, names, digests)}
	r, err := readKey(ctx, j.db.Read(), req.Principal, key)
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && r.state == keyDone && !r.expires.After(time.Now()):
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("seal: read idempotency key: %w", err)
	}
	if err := j.svc.checkKey(r, k.fingerprint); err != nil {
		return nil, err
	}
	k.first = r.jobID
	return k, nil
}

// admit authorizes the spooled job and commits its rows, with its
// idempotency key if any (key.first is set when a submission with the same
// key committed meanwhile).
func (j *Jobs) admit(ctx context.Context, id, totp string, req Request, docs []spooled, size int64, key *jobKey) error {
	if err := j.checkQueue(ctx, j.db.Read(), len(docs)); err != nil {
		return err
	}
	p := req.Principal
	if totp != "" {
		var err error
		if p, err = j.svc.opts.Authorizer.Approve(ctx, p, totp); err != nil {
			return err
		}
	}
	req.Principal, req.BatchSize = p, len(docs)
	dec, err := j.svc.opts.Authorizer.Decide(ctx, p, req.action())
	if err != nil {
		return err
	}
	opts, err := json.Marshal(optionsOf(req))
	if err != nil {
		return fmt.Errorf("seal: job options: %w", err)
	}
	source := ""
	if p.Source.IsValid() {
		source = p.Source.String()
	}
	now := time.Now().UnixMilli()
	return j.db.Write(ctx, func(tx *sql.Tx) error {
		if key != nil {
			first, expired, err := j.svc.useKey(ctx, tx, p, key.key, key.fingerprint)
			if err != nil {
				return err
			}
			if first != nil {
				key.first = first.jobID
				return nil
			}
			j.svc.removeKept(expired)
			if err := j.svc.insertKey(ctx, tx, newID(), p, key.key, key.fingerprint, "", id); err != nil {
				return err
			}
		}
		// Checked again where it counts: jobs submitted meanwhile.
		if err := j.checkQueue(ctx, tx, len(docs)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO seal_jobs
			(id, principal_kind, principal_id, principal_name, source, options, rule, state, documents, pending, size, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)`,
			id, string(p.Kind), p.ID, p.Name, source, string(opts), dec.Rule, len(docs), len(docs), size, now); err != nil {
			return fmt.Errorf("seal: insert job: %w", err)
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO seal_job_documents (job_id, n, name, size, created_at, state) VALUES (?, ?, ?, ?, ?, 'queued')`)
		if err != nil {
			return fmt.Errorf("seal: insert job documents: %w", err)
		}
		defer stmt.Close()
		for i, d := range docs {
			if _, err := stmt.ExecContext(ctx, id, i+1, d.name, d.size, now); err != nil {
				return fmt.Errorf("seal: insert job document: %w", err)
			}
		}
		return nil
	})
}

// queueRetry is how long a caller refused for a full queue is told to wait:
// long enough for the workers to have made room.
const queueRetry = 30 * time.Second

// checkQueue refuses n more documents when they would not fit the queue.
func (j *Jobs) checkQueue(ctx context.Context, q querier, n int) error {
	max := j.opts.MaxQueued
	if n > max {
		return fault.New(fault.TooLarge, CodeJobTooLarge, "the job's %d documents exceed the queue's %d (jobs.maxQueued)", n, max)
	}
	var queued int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM seal_job_documents WHERE state IN ('queued', 'running')`).Scan(&queued); err != nil {
		return fmt.Errorf("seal: count queued documents: %w", err)
	}
	if queued+n > max {
		return fault.New(fault.TooMany, CodeQueueFull, "%d documents are waiting to be sealed and the queue holds %d; try again later", queued, max).Retry(queueRetry)
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx offer for queries.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// spool writes the documents to dir/in/1, 2, ... and flushes them, within
// the job's limits.
func (j *Jobs) spool(dir string, docs iter.Seq2[JobInput, error]) ([]spooled, int64, error) {
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(in, 0o700); err != nil {
		return nil, 0, fmt.Errorf("seal: job directory: %w", err)
	}
	var out []spooled
	var total int64
	for doc, err := range docs {
		if err != nil {
			return nil, 0, err
		}
		n := len(out) + 1
		if n > j.opts.MaxDocuments {
			return nil, 0, fault.New(fault.TooLarge, CodeJobTooLarge, "a job holds at most %d documents (jobs.maxDocuments)", j.opts.MaxDocuments)
		}
		if err := checkText("name", doc.Name); err != nil {
			return nil, 0, fault.New(fault.Invalid, CodeBadRequest, "document %d: %s", n, fault.As(err).Msg)
		}
		size, sum, err := j.spoolOne(filepath.Join(in, strconv.Itoa(n)), doc, n, total)
		if err != nil {
			return nil, 0, err
		}
		total += size
		out = append(out, spooled{name: doc.Name, size: size, sha256: sum})
	}
	if len(out) == 0 {
		return nil, 0, fault.New(fault.Invalid, CodeJobEmpty, "the job has no documents")
	}
	return out, total, syncDir(in)
}

// spoolOne writes document n to path, which the job's bytes so far (total)
// and the document limit bound, and returns its size and SHA-256.
func (j *Jobs) spoolOne(path string, doc JobInput, n int, total int64) (int64, []byte, error) {
	perDoc, left := j.svc.opts.MaxDocumentSize, j.opts.MaxTotalSize-total
	lr := newLimitedReader(doc.Reader, min(perDoc, left))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, nil, fmt.Errorf("seal: spool job document: %w", err)
	}
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), lr)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case lr.exceeded && left < perDoc:
		return 0, nil, fault.New(fault.TooLarge, CodeJobTooLarge, "the job's documents exceed %d bytes in all (jobs.maxTotalSize), at document %d", j.opts.MaxTotalSize, n)
	case lr.exceeded:
		return 0, nil, fault.New(fault.TooLarge, CodeDocumentTooLarge, "document %d %q exceeds the limit of %d bytes", n, doc.Name, perDoc)
	case lr.failed != nil:
		return 0, nil, lr.failed
	case err != nil:
		return 0, nil, fault.Wrap(err, fault.Invalid, CodeInputUnreadable, "document %d %q could not be read", n, doc.Name)
	case size == 0:
		return 0, nil, fault.New(fault.Invalid, CodeDocumentEmpty, "document %d %q is empty", n, doc.Name)
	}
	return size, h.Sum(nil), nil
}

// syncDir flushes a directory, so the files made in it survive a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal: sync %s: %w", dir, err)
	}
	return nil
}

func (j *Jobs) jobDir(id string) string { return filepath.Join(j.opts.Dir, id) }

// jobRow is a job as stored.
type jobRow struct {
	id        string
	principal access.Principal
	opts      jobOptions
	rule      string
	state     JobState
	created   time.Time
	finished  time.Time
}

const jobColumns = `id, principal_kind, principal_id, principal_name, source, options, rule, state, created_at, finished_at`

func scanJob(sc interface{ Scan(...any) error }) (*jobRow, error) {
	var r jobRow
	var kind, source, opts string
	var created int64
	var finished sql.NullInt64
	if err := sc.Scan(&r.id, &kind, &r.principal.ID, &r.principal.Name, &source, &opts, &r.rule, &r.state, &created, &finished); err != nil {
		return nil, err
	}
	r.principal.Kind = access.Kind(kind)
	if source != "" {
		r.principal.Source, _ = netip.ParseAddr(source)
	}
	if err := json.Unmarshal([]byte(opts), &r.opts); err != nil {
		return nil, fmt.Errorf("seal: options of job %s: %w", r.id, err)
	}
	r.created = time.UnixMilli(created).UTC()
	if finished.Valid {
		r.finished = time.UnixMilli(finished.Int64).UTC()
	}
	return &r, nil
}

// visible returns job id if p may see it under operation op (its owner; for
// others, what Decide grants: administrators). Any other job looks unknown.
func (j *Jobs) visible(ctx context.Context, p access.Principal, id string, op access.Operation) (*jobRow, error) {
	unknown := fault.New(fault.NotFound, CodeJobUnknown, "job %q does not exist", id)
	if p.Kind == access.KindAnonymous {
		return nil, fault.New(fault.Unauthenticated, access.CodeUnauthenticated, "jobs need an authenticated caller")
	}
	r, err := scanJob(j.db.Read().QueryRowContext(ctx, `SELECT `+jobColumns+` FROM seal_jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, unknown
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read job: %w", err)
	}
	if r.principal.Kind == p.Kind && r.principal.ID == p.ID {
		return r, nil
	}
	if _, err := j.svc.opts.Authorizer.Decide(ctx, p, access.Action{Operation: op}); err != nil {
		if fault.CodeOf(err) == access.CodeOperationNotPermitted {
			return nil, unknown
		}
		return nil, err
	}
	return r, nil
}

// Status returns job id's state, counts and documents, to its owner and to
// administrators.
func (j *Jobs) Status(ctx context.Context, p access.Principal, id string) (JobStatus, error) {
	if _, err := j.visible(ctx, p, id, access.OpAdminRead); err != nil {
		return JobStatus{}, err
	}
	return j.status(ctx, id)
}

func (j *Jobs) status(ctx context.Context, id string) (JobStatus, error) {
	r, err := scanJob(j.db.Read().QueryRowContext(ctx, `SELECT `+jobColumns+` FROM seal_jobs WHERE id = ?`, id))
	if err != nil {
		return JobStatus{}, fmt.Errorf("seal: read job: %w", err)
	}
	st := JobStatus{ID: id, State: r.state, Seal: r.opts.Seal, Format: r.opts.Format, Level: r.opts.Level,
		Created: r.created, Finished: r.finished, Documents: []JobDocument{}}
	if !r.finished.IsZero() {
		st.Expires = r.finished.Add(j.opts.Retention)
	}
	rows, err := j.db.Read().QueryContext(ctx, `SELECT d.n, d.name, d.size, d.state, d.error_code, d.error_message, d.event_id, e.evidence_index
		FROM seal_job_documents d LEFT JOIN seal_events e ON e.id = d.event_id
		WHERE d.job_id = ? ORDER BY d.n`, id)
	if err != nil {
		return JobStatus{}, fmt.Errorf("seal: read job documents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d JobDocument
		var idx sql.NullInt64
		if err := rows.Scan(&d.N, &d.Name, &d.Size, &d.State, &d.Code, &d.Message, &d.EventID, &idx); err != nil {
			return JobStatus{}, fmt.Errorf("seal: read job document: %w", err)
		}
		if idx.Valid && d.State == JobDone {
			v := uint64(idx.Int64)
			d.EvidenceIndex = &v
		}
		switch d.State {
		case JobQueued:
			st.Counts.Queued++
		case JobRunning:
			st.Counts.Running++
		case JobDone:
			st.Counts.Done++
		case JobFailed:
			st.Counts.Failed++
		case JobCancelled:
			st.Counts.Cancelled++
		}
		st.Documents = append(st.Documents, d)
	}
	return st, rows.Err()
}

// Result returns document n of job id, sealed, to the job's owner and to
// administrators: job_pending while it is not finished, job_document_failed
// when it was not sealed, job_cancelled after the job was cancelled.
func (j *Jobs) Result(ctx context.Context, p access.Principal, id string, n int) (*JobResult, error) {
	r, err := j.visible(ctx, p, id, access.OpAdminRead)
	if err != nil {
		return nil, err
	}
	if r.state == JobCancelled {
		return nil, fault.New(fault.Conflict, CodeJobCancelled, "job %q was cancelled and its results purged", id)
	}
	var state JobState
	var name, code, msg string
	err = j.db.Read().QueryRowContext(ctx, `SELECT state, name, error_code, error_message FROM seal_job_documents WHERE job_id = ? AND n = ?`,
		id, n).Scan(&state, &name, &code, &msg)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, CodeJobDocumentUnknown, "job %q has no document %d", id, n)
	}
	if err != nil {
		return nil, fmt.Errorf("seal: read job document: %w", err)
	}
	switch state {
	case JobQueued, JobRunning:
		return nil, fault.New(fault.Conflict, CodeJobPending, "document %d of job %q is %s", n, id, state).Retry(time.Second)
	case JobFailed:
		return nil, fault.New(fault.Conflict, CodeJobDocumentFailed, "document %d of job %q was not sealed: %s: %s", n, id, code, msg)
	case JobCancelled:
		return nil, fault.New(fault.Conflict, CodeJobCancelled, "document %d of job %q was cancelled", n, id)
	}
	return j.result(ctx, r, n, name)
}

// result opens the stored result of a sealed document.
func (j *Jobs) result(ctx context.Context, r *jobRow, n int, name string) (*JobResult, error) {
	res := &Result{Seal: r.opts.Seal, Format: r.opts.Format, Rule: r.rule}
	err := scanEventResult(j.db.Read().QueryRowContext(ctx, `SELECT `+eventResultColumns+`
		FROM seal_job_documents d JOIN seal_events e ON e.id = d.event_id WHERE d.job_id = ? AND d.n = ?`, r.id, n), res)
	if err != nil {
		return nil, fmt.Errorf("seal: read seal event of job %s document %d: %w", r.id, n, err)
	}
	res.ContentType = contentType(r.opts.Format)
	if res.stored, err = os.Open(filepath.Join(j.jobDir(r.id), "out", strconv.Itoa(n))); err != nil {
		return nil, fmt.Errorf("seal: result of job %s document %d: %w", r.id, n, err)
	}
	return &JobResult{Result: res, N: n, Name: name}, nil
}

// Results returns the job's sealed documents in order, for its owner and
// administrators, once the job is finished. Each result is closed when the
// loop moves on: read it within the loop's body.
func (j *Jobs) Results(ctx context.Context, p access.Principal, id string) (iter.Seq2[*JobResult, error], error) {
	r, err := j.visible(ctx, p, id, access.OpAdminRead)
	if err != nil {
		return nil, err
	}
	switch r.state {
	case JobQueued, JobRunning:
		return nil, fault.New(fault.Conflict, CodeJobPending, "job %q is %s", id, r.state).Retry(time.Second)
	case JobCancelled:
		return nil, fault.New(fault.Conflict, CodeJobCancelled, "job %q was cancelled and its results purged", id)
	}
	return func(yield func(*JobResult, error) bool) {
		rows, err := j.db.Read().QueryContext(ctx, `SELECT n, name FROM seal_job_documents WHERE job_id = ? AND state = 'done' ORDER BY n`, id)
		if err != nil {
			yield(nil, fmt.Errorf("seal: read job documents: %w", err))
			return
		}
		type doc struct {
			n    int
			name string
		}
		var docs []doc
		for rows.Next() {
			var d doc
			if err := rows.Scan(&d.n, &d.name); err != nil {
				rows.Close()
				yield(nil, fmt.Errorf("seal: read job document: %w", err))
				return
			}
			docs = append(docs, d)
		}
		rows.Close()
		for _, d := range docs {
			res, err := j.result(ctx, r, d.n, d.name)
			more := yield(res, err)
			if res != nil {
				res.Close()
			}
			if !more || err != nil {
				return
			}
		}
	}, nil
}

// Cancel stops job id for its owner or an administrator: documents not yet
// started are cancelled and every file of the job is purged at once; the
// job's status stays readable until its retention ends. A finished job is
// removed entirely.
func (j *Jobs) Cancel(ctx context.Context, p access.Principal, id string) error {
	r, err := j.visible(ctx, p, id, access.OpAdminWrite)
	if err != nil {
		return err
	}
	cancelled := 0
	err = j.db.Write(ctx, func(tx *sql.Tx) error {
		var state JobState
		if err := tx.QueryRowContext(ctx, `SELECT state FROM seal_jobs WHERE id = ?`, id).Scan(&state); err != nil {
			return fmt.Errorf("seal: read job: %w", err)
		}
		if state != JobQueued && state != JobRunning {
			_, err := tx.ExecContext(ctx, `DELETE FROM seal_jobs WHERE id = ?`, id)
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE seal_job_documents SET state = 'cancelled' WHERE job_id = ? AND state = 'queued'`, id)
		if err != nil {
			return fmt.Errorf("seal: cancel job documents: %w", err)
		}
		n, _ := res.RowsAffected()
		cancelled = int(n)
		_, err = tx.ExecContext(ctx, `UPDATE seal_jobs SET state = 'cancelled', pending = pending - ?, finished_at = ? WHERE id = ?`,
			n, time.Now().UnixMilli(), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("seal: cancel job: %w", err)
	}
	for range cancelled {
		j.observeDocument(JobCancelled)
	}
	if r.state == JobQueued || r.state == JobRunning {
		j.observeJob(JobCancelled, r.created)
	}
	j.log.Info("job cancelled", "job", id, "by", p.String(), "documents", cancelled)
	// A document being sealed now finishes; its result goes with the job's
	// directory when the job's retention ends.
	return os.RemoveAll(j.jobDir(id))
}

func (j *Jobs) observeDocument(s JobState) {
	if j.opts.ObserveDocument != nil {
		j.opts.ObserveDocument(s)
	}
}

func (j *Jobs) observeJob(s JobState, created time.Time) {
	if j.opts.ObserveJob != nil {
		j.opts.ObserveJob(s, time.Since(created))
	}
}

// JobStats are the queue's figures for metrics.
type JobStats struct {
	// Documents are the documents of all jobs by state.
	Documents map[JobState]int
	// Jobs are the jobs kept, by state.
	Jobs map[JobState]int
}

// Stats counts documents and jobs by state.
func (j *Jobs) Stats(ctx context.Context) (JobStats, error) {
	st := JobStats{Documents: map[JobState]int{}, Jobs: map[JobState]int{}}
	for _, c := range []struct {
		query string
		into  map[JobState]int
	}{
		{`SELECT state, COUNT(*) FROM seal_job_documents GROUP BY state`, st.Documents},
		{`SELECT state, COUNT(*) FROM seal_jobs GROUP BY state`, st.Jobs},
	} {
		rows, err := j.db.Read().QueryContext(ctx, c.query)
		if err != nil {
			return st, fmt.Errorf("seal: job figures: %w", err)
		}
		for rows.Next() {
			var s JobState
			var n int
			if err := rows.Scan(&s, &n); err != nil {
				rows.Close()
				return st, fmt.Errorf("seal: job figures: %w", err)
			}
			c.into[s] = n
		}
		rows.Close()
	}
	return st, nil
}
