package seal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// How a document that failed for a reason that may pass (a card or the TSA
// unavailable) is tried again: after 2, 4, 8, ... seconds, at most
// maxAttempts times, then it fails with that reason.
const (
	maxAttempts = 8
	maxBackoff  = 5 * time.Minute
)

// jobDoc is a document of a job claimed by this process for sealing.
type jobDoc struct {
	j        *Jobs
	job      *jobRow
	n        int
	name     string
	size     int64
	attempts int
	// ended is set by finish: the state the document ended in, and the
	// job's when this document was its last.
	ended, jobEnded JobState
	// signer is the document's part in its batch of signatures (see
	// groupSignatures); nil signs with the seal's key on its own.
	signer *batchRun
}

// batchLinger bounds how long a batch's first signature waits for the
// others: a batch's documents are sealed side by side, so they normally
// all ask within the time the largest of them takes to be hashed.
const batchLinger = 5 * time.Second

// batchKey is a pooled seal key that can gather signatures into batches
// (*signing.SealKey).
type batchKey interface {
	signing.Key
	Batches() bool
	NewBatch(runs int, linger time.Duration) *signing.Batch
}

// batchRun is one document's part in a signing.Batch. It notes whether the
// document asked for its signature, so that one failing before that leaves
// the batch at once instead of holding the others up.
type batchRun struct {
	*signing.Batch
	asked atomic.Bool
}

// Sign queues the document's digest in its batch.
func (r *batchRun) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.asked.Store(true)
	return r.Batch.Sign(rand, digest, opts)
}

// SignContext queues the document's digest in its batch.
func (r *batchRun) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r.asked.Store(true)
	return r.Batch.SignContext(ctx, digest, opts)
}

// key is what the document signs with: its batch, or nil for the seal's key.
func (r *batchRun) key() signing.Key {
	if r == nil {
		return nil
	}
	return r
}

// leave takes a document that has not asked for its signature (it failed
// before, or was never started) out of its batch; it does nothing after
// the document asked, and nothing twice.
func (r *batchRun) leave() {
	if r != nil && r.asked.CompareAndSwap(false, true) {
		r.Leave()
	}
}

func (d *jobDoc) rule() string { return d.job.rule }

// key names the document in its seal event (seal_events.job_document).
func (d *jobDoc) key() string { return d.job.id + "/" + strconv.Itoa(d.n) }

func (d *jobDoc) inPath() string {
	return filepath.Join(d.j.jobDir(d.job.id), "in", strconv.Itoa(d.n))
}

func (d *jobDoc) outPath() string {
	return filepath.Join(d.j.jobDir(d.job.id), "out", strconv.Itoa(d.n))
}

// request is the seal request of the document read from doc.
func (d *jobDoc) request(doc io.Reader) Request {
	o := d.job.opts
	req := Request{Principal: d.job.principal, Seal: o.Seal, Format: o.Format, Level: o.Level,
		Document: doc, Size: d.size, Name: d.name}
	req.PDF.Field, req.PDF.Reason, req.PDF.Location = o.Field, o.Reason, o.Location
	req.PDF.Placement, req.PDF.Certify = o.Placement, o.Certify
	return req
}

// keep writes the sealed output to the job's out/ directory and flushes
// it before its evidence is appended: after a crash, the leaf of a result
// whose event was not recorded is found by the result's digest.
func (d *jobDoc) keep(res *Result) error {
	dir := filepath.Dir(d.outPath())
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seal: job results: %w", err)
	}
	f, err := os.OpenFile(d.outPath(), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("seal: keep job result: %w", err)
	}
	_, err = res.WriteTo(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal: keep job result: %w", err)
	}
	return syncDir(dir)
}

// finish records, inside the transaction of its seal event, that the
// document ended in state, and ends the job when it was the last.
func (d *jobDoc) finish(ctx context.Context, tx *sql.Tx, state JobState, code, msg, eventID string) error {
	res, err := tx.ExecContext(ctx, `UPDATE seal_job_documents SET state = ?, error_code = ?, error_message = ?, event_id = ?
		WHERE job_id = ? AND n = ? AND state = 'running'`, string(state), code, msg, eventID, d.job.id, d.n)
	if err != nil {
		return fmt.Errorf("seal: finish job document: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("seal: job %s document %d is not being sealed", d.job.id, d.n)
	}
	d.ended = state
	sealed := 0
	if state == JobDone {
		sealed = 1
	}
	return d.j.countEnded(ctx, tx, d, 1, sealed)
}

// countEnded counts n of d's job's documents as ended (sealed of them
// sealed) and ends the job when none is left.
func (j *Jobs) countEnded(ctx context.Context, tx *sql.Tx, d *jobDoc, n, sealed int) error {
	var pending, total int
	var state JobState
	err := tx.QueryRowContext(ctx, `UPDATE seal_jobs SET pending = pending - ?, sealed = sealed + ? WHERE id = ?
		RETURNING pending, sealed, state`, n, sealed, d.job.id).Scan(&pending, &total, &state)
	if err != nil {
		return fmt.Errorf("seal: count job documents: %w", err)
	}
	if pending > 0 || (state != JobQueued && state != JobRunning) {
		return nil
	}
	d.jobEnded = JobDone
	if total == 0 {
		d.jobEnded = JobFailed
	}
	_, err = tx.ExecContext(ctx, `UPDATE seal_jobs SET state = ?, finished_at = ? WHERE id = ?`,
		string(d.jobEnded), time.Now().UnixMilli(), d.job.id)
	return err
}

// observe reports how d ended, once its state is committed, and clears
// the inputs of a job that ended.
func (j *Jobs) observe(d *jobDoc) {
	if d.ended != "" {
		j.observeDocument(d.ended)
	}
	if d.jobEnded != "" {
		j.observeJob(d.jobEnded, d.job.created)
		j.log.Info("job finished", "job", d.job.id, "state", d.jobEnded, "ms", time.Since(d.job.created).Milliseconds())
		// Inputs of failed documents, and of any whose removal a crash cut
		// short, go with the job's end.
		if err := os.RemoveAll(filepath.Join(j.jobDir(d.job.id), "in")); err != nil {
			j.log.Warn("finished job's inputs not removed", "job", d.job.id, "err", err)
		}
	}
}

// Run seals queued documents with the configured number of workers and
// purges jobs past their retention, until ctx ends; documents being sealed
// then are finished first. Call it after Recover, once per node.
func (j *Jobs) Run(ctx context.Context) {
	work := make(chan *jobDoc)
	var wg sync.WaitGroup
	for range j.opts.Workers {
		wg.Go(func() {
			for d := range work {
				j.process(context.WithoutCancel(ctx), d)
			}
		})
	}
	wg.Go(func() { j.purgeLoop(ctx) })
	j.dispatch(ctx, work)
	close(work)
	wg.Wait()
}

// dispatch claims queued documents, a few at a time, and hands them to the
// workers until ctx ends; claimed documents no worker took go back to the
// queue.
func (j *Jobs) dispatch(ctx context.Context, work chan<- *jobDoc) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		docs, err := j.claim(ctx, j.opts.Workers)
		if err != nil && ctx.Err() == nil {
			j.log.Error("job documents not claimed", "err", err)
		}
		j.groupSignatures(docs)
		for i, d := range docs {
			select {
			case work <- d:
			case <-ctx.Done():
				for _, d := range docs[i:] {
					d.signer.leave()
				}
				j.release(docs[i:])
				return
			}
		}
		if len(docs) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-j.wake:
		case <-tick.C:
		}
	}
}

// claim marks up to k queued documents, oldest job first, as running.
func (j *Jobs) claim(ctx context.Context, k int) ([]*jobDoc, error) {
	var docs []*jobDoc
	jobs := map[string]*jobRow{}
	err := j.db.Write(ctx, func(tx *sql.Tx) error {
		docs = docs[:0]
		rows, err := tx.QueryContext(ctx, `SELECT d.job_id, d.n, d.name, d.size, d.attempts FROM seal_job_documents d
			WHERE d.state = 'queued' AND d.not_before <= ? ORDER BY d.created_at, d.job_id, d.n LIMIT ?`, time.Now().UnixMilli(), k)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			d := &jobDoc{j: j, job: &jobRow{}}
			if err := rows.Scan(&d.job.id, &d.n, &d.name, &d.size, &d.attempts); err != nil {
				rows.Close()
				return err
			}
			docs = append(docs, d)
			ids = append(ids, d.job.id)
		}
		rows.Close()
		for i, d := range docs {
			if jobs[ids[i]] == nil {
				if jobs[ids[i]], err = scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM seal_jobs WHERE id = ?`, ids[i])); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `UPDATE seal_jobs SET state = 'running' WHERE id = ? AND state = 'queued'`, ids[i]); err != nil {
					return err
				}
			}
			d.job = jobs[ids[i]]
			if _, err := tx.ExecContext(ctx, `UPDATE seal_job_documents SET state = 'running' WHERE job_id = ? AND n = ?`, d.job.id, d.n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal: claim job documents: %w", err)
	}
	return docs, nil
}

// groupSignatures gathers the signatures of the claimed documents of each
// job, up to BatchSize at a time, into one signing.Batch of the job's seal
// key, where a card in service holding the seal signs batches (a remote
// credential): one authorization and ⌈n/multisign⌉ signHash calls then
// cover n documents. Other cards sign document by document, as soon as
// each asks. A batch never holds more documents than there are workers,
// and all of a claim's documents are handed out before the next claim, so
// every document of a batch gets its worker.
func (j *Jobs) groupSignatures(docs []*jobDoc) {
	byJob := map[*jobRow][]*jobDoc{}
	var jobs []*jobRow
	for _, d := range docs {
		if byJob[d.job] == nil {
			jobs = append(jobs, d.job)
		}
		byJob[d.job] = append(byJob[d.job], d)
	}
	for _, job := range jobs {
		if len(byJob[job]) < 2 {
			continue
		}
		key, err := j.svc.opts.Keys.Key(job.opts.Seal)
		bk, ok := key.(batchKey)
		if err != nil || !ok || !bk.Batches() {
			continue // an unknown seal fails each document through the sealing path
		}
		for group := range slices.Chunk(byJob[job], j.opts.BatchSize) {
			if len(group) < 2 {
				continue
			}
			batch := bk.NewBatch(len(group), batchLinger)
			for _, d := range group {
				d.signer = &batchRun{Batch: batch}
			}
		}
	}
}

// release puts claimed documents that were not started back in the queue.
func (j *Jobs) release(docs []*jobDoc) {
	err := j.db.Write(context.Background(), func(tx *sql.Tx) error {
		for _, d := range docs {
			if _, err := tx.ExecContext(context.Background(), `UPDATE seal_job_documents SET state = 'queued' WHERE job_id = ? AND n = ? AND state = 'running'`,
				d.job.id, d.n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// They stay running until the next start's recovery queues them again.
		j.log.Error("claimed job documents not released", "err", err)
	}
}

// process seals one claimed document through the sealing path.
func (j *Jobs) process(ctx context.Context, d *jobDoc) {
	var state JobState
	if err := j.db.Read().QueryRowContext(ctx, `SELECT state FROM seal_jobs WHERE id = ?`, d.job.id).Scan(&state); err != nil || state == JobCancelled {
		d.signer.leave()
		j.drop(ctx, d, err)
		return
	}
	f, err := os.Open(d.inPath())
	if err != nil {
		d.signer.leave()
		j.settle(ctx, d, fmt.Errorf("seal: job document: %w", err))
		return
	}
	res, err := j.svc.sealOne(ctx, d.request(f), d, d.signer.key())
	d.signer.leave()
	f.Close()
	if err != nil {
		j.settle(ctx, d, err)
		return
	}
	res.Close()
	j.observe(d)
	if err := os.Remove(d.inPath()); err != nil {
		j.log.Warn("sealed job document's input not removed", "job", d.job.id, "n", d.n, "err", err)
	}
}

// drop ends a claimed document of a job cancelled or removed meanwhile.
func (j *Jobs) drop(ctx context.Context, d *jobDoc, cause error) {
	if errors.Is(cause, sql.ErrNoRows) {
		return // the job was removed, documents and all
	}
	if cause != nil {
		j.log.Error("job of a claimed document not read", "job", d.job.id, "err", cause)
		return // running until the next start's recovery
	}
	err := j.db.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE seal_job_documents SET state = 'cancelled' WHERE job_id = ? AND n = ? AND state = 'running'`, d.job.id, d.n)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			d.ended = JobCancelled
			return d.j.countEnded(ctx, tx, d, 1, 0)
		}
		return nil
	})
	if err != nil {
		j.log.Error("cancelled job document not recorded", "job", d.job.id, "n", d.n, "err", err)
		return
	}
	j.observe(d)
}

// settle decides the fate of a document whose sealing did not end cleanly:
// it failed with cause, or (cause nil, at start) the process sealing it
// ended. A document whose seal event exists has ended already. One whose
// result was kept and whose evidence leaf exists was sealed but its event
// was not recorded: the event is recorded now, from the leaf. Any other
// never reached the evidence log, so no signature of it is ever handed out:
// its kept result is deleted, and it is queued again, or fails when cause
// will not pass or its attempts are used up.
func (j *Jobs) settle(ctx context.Context, d *jobDoc, cause error) {
	if err := j.settleOne(ctx, d, cause); err != nil {
		// It stays running until the next start's recovery.
		j.log.Error("job document not settled", "job", d.job.id, "n", d.n, "err", err)
		return
	}
	j.observe(d)
}

func (j *Jobs) settleOne(ctx context.Context, d *jobDoc, cause error) error {
	var events int
	if err := j.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM seal_events WHERE job_document = ?`, d.key()).Scan(&events); err != nil {
		return fmt.Errorf("seal: read seal event: %w", err)
	}
	if events > 0 {
		return nil
	}
	leaf, size, err := j.keptLeaf(ctx, d)
	if err != nil {
		return err
	}
	if leaf != nil {
		e := leaf.Entry
		req := d.request(nil)
		req.Level = Level(e.Level)
		res := &Result{Seal: e.SealID, Format: Format(e.Format), Level: Level(e.Level), OriginalSHA256: e.OriginalSHA256[:],
			SealedSHA256: e.SealedSHA256[:], EvidenceIndex: leaf.Index, Rule: d.rule(), Size: size, Time: e.Time}
		ev := event{req: req, started: e.Time, doc: d}
		if err := j.svc.record(ctx, &ev, res); err != nil {
			return err
		}
		j.log.Info("job document's seal recovered from its evidence leaf", "job", d.job.id, "n", d.n, "event", ev.id, "leaf", leaf.Index)
		if err := os.Remove(d.inPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.log.Warn("sealed job document's input not removed", "job", d.job.id, "n", d.n, "err", err)
		}
		return nil
	}
	if err := os.Remove(d.outPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("seal: remove unrecorded job result: %w", err)
	}
	attempts := d.attempts
	if cause != nil {
		attempts++
	}
	if cause != nil && (!transient(cause) || attempts >= maxAttempts) {
		// Failures that will not pass were recorded by the sealing path;
		// what reaches here failed outside it or kept failing.
		ev := event{req: d.request(nil), started: time.Now(), doc: d, code: string(fault.CodeOf(cause))}
		if e := fault.As(cause); e != nil && e.Kind != fault.Internal {
			ev.msg = e.Msg
		}
		j.log.Warn("job document failed", "job", d.job.id, "n", d.n, "code", ev.code, "err", cause)
		return j.svc.record(ctx, &ev, nil)
	}
	notBefore := int64(0)
	if cause != nil {
		notBefore = time.Now().Add(min(time.Duration(1<<attempts)*time.Second, maxBackoff)).UnixMilli()
		j.log.Info("job document will be tried again", "job", d.job.id, "n", d.n, "attempt", attempts, "code", fault.CodeOf(cause))
	}
	return j.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE seal_job_documents SET state = 'queued', attempts = ?, not_before = ?
			WHERE job_id = ? AND n = ? AND state = 'running'`, attempts, notBefore, d.job.id, d.n)
		return err
	})
}

// keptLeaf returns the evidence leaf of the document's kept result, if the
// result exists and its leaf was appended, and the result's size.
func (j *Jobs) keptLeaf(ctx context.Context, d *jobDoc) (*evidence.Leaf, int64, error) {
	f, err := os.Open(d.outPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("seal: read kept job result: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, 0, fmt.Errorf("seal: read kept job result: %w", err)
	}
	var sum evidence.SHA256
	h.Sum(sum[:0])
	leaves, err := j.svc.opts.Evidence.Lookup(ctx, sum)
	if err != nil {
		return nil, 0, err
	}
	for i := range leaves {
		if bytes.Equal(leaves[i].Entry.SealedSHA256[:], sum[:]) {
			return &leaves[i], size, nil
		}
	}
	return nil, 0, nil
}

// Recover settles every document a previous process left being sealed
// (see settle), and removes the directories of jobs that were never
// committed (a submission cut short) or were removed without their files.
// Call it once when the node starts, before jobs are submitted or Run
// works them.
func (j *Jobs) Recover(ctx context.Context) error {
	rows, err := j.db.Read().QueryContext(ctx, `SELECT job_id, n, name, size, attempts FROM seal_job_documents WHERE state = 'running'`)
	if err != nil {
		return fmt.Errorf("seal: recover jobs: %w", err)
	}
	var docs []*jobDoc
	for rows.Next() {
		d := &jobDoc{j: j, job: &jobRow{}}
		if err := rows.Scan(&d.job.id, &d.n, &d.name, &d.size, &d.attempts); err != nil {
			rows.Close()
			return fmt.Errorf("seal: recover jobs: %w", err)
		}
		docs = append(docs, d)
	}
	rows.Close()
	jobs := map[string]*jobRow{}
	for _, d := range docs {
		if jobs[d.job.id] == nil {
			r, err := scanJob(j.db.Read().QueryRowContext(ctx, `SELECT `+jobColumns+` FROM seal_jobs WHERE id = ?`, d.job.id))
			if err != nil {
				return fmt.Errorf("seal: recover job %s: %w", d.job.id, err)
			}
			jobs[d.job.id] = r
		}
		d.job = jobs[d.job.id]
		// One document that cannot be settled now (its files unreadable)
		// does not keep the node from starting; it is tried at the next.
		j.settle(ctx, d, nil)
	}
	if len(docs) > 0 {
		j.log.Info("job documents interrupted by the previous run settled", "documents", len(docs), "jobs", len(jobs))
	}
	return j.removeOrphans(ctx)
}

// removeOrphans removes job directories without a job.
func (j *Jobs) removeOrphans(ctx context.Context) error {
	entries, err := os.ReadDir(j.opts.Dir)
	if err != nil {
		return fmt.Errorf("seal: jobs directory: %w", err)
	}
	for _, e := range entries {
		var n int
		if err := j.db.Read().QueryRowContext(ctx, `SELECT COUNT(*) FROM seal_jobs WHERE id = ?`, e.Name()).Scan(&n); err != nil {
			return fmt.Errorf("seal: recover jobs: %w", err)
		}
		if n == 0 {
			if err := os.RemoveAll(filepath.Join(j.opts.Dir, e.Name())); err != nil {
				return fmt.Errorf("seal: remove files of job %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

// purgeLoop purges jobs past their retention until ctx ends.
func (j *Jobs) purgeLoop(ctx context.Context) {
	every := min(max(j.opts.Retention/4, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := j.purge(ctx); err != nil && ctx.Err() == nil {
				j.log.Error("expired jobs not purged", "err", err)
			}
		}
	}
}

// purge removes the rows, then the files, of jobs that ended longer than
// the retention ago.
func (j *Jobs) purge(ctx context.Context) error {
	cutoff := time.Now().Add(-j.opts.Retention).UnixMilli()
	rows, err := j.db.Read().QueryContext(ctx, `SELECT id FROM seal_jobs WHERE finished_at IS NOT NULL AND finished_at < ?`, cutoff)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := j.db.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM seal_jobs WHERE id = ?`, id)
			return err
		}); err != nil {
			return err
		}
		if err := os.RemoveAll(j.jobDir(id)); err != nil {
			return err
		}
		j.log.Info("expired job purged", "job", id)
	}
	return nil
}
