package ldapsync

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/store"
)

// Users is what a sync needs of sealgate's user store (access.Service).
type Users interface {
	// ExternalUsers returns the users sealgate knows from source.
	ExternalUsers(ctx context.Context, source string) ([]access.ExternalUser, error)
	// ApplyExternal applies changes for source in one transaction,
	// auditing them as actor.
	ApplyExternal(ctx context.Context, source string, changes access.ExternalChanges, actor string) error
}

// Outcome is how a sync run ended.
type Outcome string

// Outcomes.
const (
	OutcomeRunning      Outcome = "running" // still running, or the process died during the run
	OutcomeApplied      Outcome = "applied"
	OutcomeUnchanged    Outcome = "unchanged"
	OutcomeDryRun       Outcome = "dry_run"
	OutcomeGuardTripped Outcome = "guard_tripped"
	OutcomeFailed       Outcome = "failed"
)

// OK reports whether the outcome leaves sealgate in step with the directory.
func (o Outcome) OK() bool {
	return o == OutcomeApplied || o == OutcomeUnchanged || o == OutcomeDryRun
}

// SyncOptions choose what a run does.
type SyncOptions struct {
	// DryRun computes and reports the diff without applying it.
	DryRun bool
	// Full reads every user in full. Otherwise only users changed since
	// the last applied run are read in full (incremental); a source never
	// synced before is always read in full.
	Full bool
	// Force applies even when the removal guard would stop the run: for an
	// administrator who has checked the dry run. An empty directory still
	// stops it.
	Force bool
	// Actor is recorded in access's audit trail. Default "ldapsync".
	Actor string
}

// Run is one recorded sync run.
type Run struct {
	ID       int64     `json:"id"`
	Source   string    `json:"source"`
	Full     bool      `json:"full"`
	DryRun   bool      `json:"dryRun"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Outcome  Outcome   `json:"outcome"`
	// Seen counts directory users read; the others count the diff.
	Seen        int `json:"seen"`
	Added       int `json:"added"`
	Changed     int `json:"changed"`
	Disabled    int `json:"disabled"`
	Removed     int `json:"removed"`
	Memberships int `json:"memberships"`
	Skipped     int `json:"skipped"`
	// Error is why the run failed or stopped; never contains secrets.
	Error string `json:"error,omitempty"`
}

// Report is a run with its diff.
type Report struct {
	Run
	// Diff is what the run applied, or would have applied (dry run,
	// guard tripped).
	Diff Diff `json:"diff"`
	// SkippedEntries name entries that could not be mapped and why.
	SkippedEntries []string `json:"skippedEntries,omitempty"`
}

// Health is the state of directory sync for /readyz and the admin view.
type Health struct {
	Source string `json:"source"`
	// Last is the most recent finished run (zero before the first).
	Last Run `json:"last"`
	// LastSuccess is when a run last ended in step with the directory.
	LastSuccess time.Time `json:"lastSuccess"`
}

// OK reports whether the last run succeeded (or none ran yet).
func (h Health) OK() bool { return h.Last.ID == 0 || h.Last.Outcome.OK() }

var migrations = []string{
	`CREATE TABLE ldapsync_runs (
		id INTEGER PRIMARY KEY,
		source TEXT NOT NULL,
		full_sync INTEGER NOT NULL,
		dry_run INTEGER NOT NULL,
		started_at TEXT NOT NULL,
		finished_at TEXT NOT NULL DEFAULT '',
		outcome TEXT NOT NULL,
		seen INTEGER NOT NULL DEFAULT 0,
		added INTEGER NOT NULL DEFAULT 0,
		changed INTEGER NOT NULL DEFAULT 0,
		disabled INTEGER NOT NULL DEFAULT 0,
		removed INTEGER NOT NULL DEFAULT 0,
		memberships INTEGER NOT NULL DEFAULT 0,
		skipped INTEGER NOT NULL DEFAULT 0,
		error TEXT NOT NULL DEFAULT '')`,
	`CREATE INDEX ldapsync_runs_source ON ldapsync_runs (source, id)`,
	// mark is the highest modifyTimestamp / uSNChanged applied so far:
	// incremental syncs read in full only entries changed since.
	`CREATE TABLE ldapsync_marks (
		source TEXT PRIMARY KEY,
		mark TEXT NOT NULL,
		updated_at TEXT NOT NULL)`,
	// server is the URL the mark was read from: uSNChanged counts per
	// domain controller, so a mark means nothing to another server.
	`ALTER TABLE ldapsync_marks ADD COLUMN server TEXT NOT NULL DEFAULT ''`,
}

// Syncer synchronises one directory into access.
type Syncer struct {
	cfg   Config
	dir   *directory
	db    *store.DB
	users Users
	log   *slog.Logger
	now   func() time.Time

	running sync.Mutex // one run at a time
	mu      sync.Mutex // guards health
	health  Health
}

// NewSyncer prepares syncs of the directory cfg describes (defaults filled
// in by cfg.WithDefaults) into users, recording runs in db.
func NewSyncer(ctx context.Context, cfg Config, db *store.DB, users Users, log *slog.Logger) (*Syncer, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	dir, err := newDirectory(cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, "ldapsync", migrations); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{cfg: cfg, dir: dir, db: db, users: users, log: log, now: time.Now, health: Health{Source: cfg.Source}}
	if err := s.loadHealth(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Health returns the outcome of the last run.
func (s *Syncer) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health
}

// Run syncs once. The returned report is never nil; err is a fault with
// code ldap_sync_guard_tripped, directory_unavailable, ... when the run
// did not apply. Every run is recorded, whatever its outcome.
func (s *Syncer) Run(ctx context.Context, opts SyncOptions) (*Report, error) {
	rep := &Report{Run: Run{Source: s.cfg.Source, DryRun: opts.DryRun, Started: s.now().UTC()}}
	if !s.running.TryLock() {
		rep.Outcome = OutcomeFailed
		err := fault.New(fault.Conflict, CodeSyncBusy, "a sync of directory source %q is already running", s.cfg.Source)
		rep.Error = err.Error()
		return rep, err
	}
	defer s.running.Unlock()
	if opts.Actor == "" {
		opts.Actor = "ldapsync"
	}
	since, err := s.mark(ctx)
	if err == nil {
		rep.Full = opts.Full || since.value == ""
		err = s.record(ctx, rep)
	}
	if err == nil {
		err = s.run(ctx, opts, since, rep)
	}
	rep.Finished = s.now().UTC()
	if err != nil && rep.Outcome != OutcomeGuardTripped {
		rep.Outcome = OutcomeFailed
	}
	if err != nil {
		rep.Error = err.Error()
	}
	rep.Added, rep.Changed, rep.Disabled = len(rep.Diff.Added), len(rep.Diff.Changed), len(rep.Diff.Disabled)
	rep.Removed, rep.Memberships, rep.Skipped = len(rep.Diff.Removed), len(rep.Diff.Memberships), len(rep.SkippedEntries)
	// The run's own context may be the reason it failed; its record must
	// still be written.
	if ferr := s.finish(context.WithoutCancel(ctx), &rep.Run); ferr != nil {
		err = errors.Join(err, ferr)
	}
	s.mu.Lock()
	s.health.Last = rep.Run
	if rep.Outcome.OK() && !rep.DryRun {
		s.health.LastSuccess = rep.Finished
	}
	s.mu.Unlock()
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	s.log.Log(ctx, level, "directory sync", "source", rep.Source, "run", rep.ID, "outcome", rep.Outcome,
		"full", rep.Full, "dryRun", rep.DryRun, "seen", rep.Seen, "added", rep.Added, "changed", rep.Changed,
		"disabled", rep.Disabled, "removed", rep.Removed, "memberships", rep.Memberships, "skipped", rep.Skipped,
		"error", rep.Error)
	return rep, err
}

func (s *Syncer) run(ctx context.Context, opts SyncOptions, since changeMark, rep *Report) error {
	known, err := s.users.ExternalUsers(ctx, s.cfg.Source)
	if err != nil {
		return err
	}
	c, err := s.dir.serviceConn(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	if !rep.Full && c.url != since.server {
		s.log.Info("directory server changed since the last sync; reading in full", "source", s.cfg.Source,
			"server", c.url, "markFrom", since.server)
		rep.Full = true
	}
	r := &reader{cfg: s.cfg}
	g, err := r.readGroups(ctx, c)
	if err != nil {
		return err
	}
	if s.cfg.Groups.Nested == NestedInChain {
		if err := r.resolveInChain(ctx, c, g); err != nil {
			return err
		}
	}
	var desired []access.ExternalUser
	collect := func(u access.ExternalUser) { desired = append(desired, u) }
	if rep.Full {
		err = r.readAll(ctx, c, g, collect)
	} else {
		knownByID := make(map[string]access.ExternalUser, len(known))
		for _, k := range known {
			knownByID[k.ExternalID] = k
		}
		err = r.readChanged(ctx, c, g, since.value, knownByID, collect)
	}
	if err != nil {
		return err
	}
	if g.inChainMissing > 0 {
		return fault.New(fault.Internal, CodeDirectoryError,
			"the directory at %s left %d users out of groups that list them directly: it does not evaluate the in-chain matching rule (Active Directory only); set ldap.groups.nested to resolve",
			c.url, g.inChainMissing)
	}
	rep.Seen = len(desired)
	desired = dropDuplicateLogins(desired, r)
	rep.SkippedEntries = r.skipped
	rep.Diff = diff(known, desired)
	if err := s.guard(len(known), rep, opts.Force); err != nil {
		rep.Outcome = OutcomeGuardTripped
		return err
	}
	if opts.DryRun {
		rep.Outcome = OutcomeDryRun
		return nil
	}
	rep.Outcome = OutcomeUnchanged
	if !rep.Diff.Empty() {
		if err := s.users.ApplyExternal(ctx, s.cfg.Source, externalChanges(rep.Diff), opts.Actor); err != nil {
			return err
		}
		rep.Outcome = OutcomeApplied
	}
	if rep.Full || laterMark(r.mark, since.value) {
		return s.setMark(ctx, changeMark{value: r.mark, server: c.url})
	}
	return nil
}

// dropDuplicateLogins skips every user whose login another directory entry
// also has: access could not hold both, and guessing which one is meant
// would hand one person's account to another.
func dropDuplicateLogins(users []access.ExternalUser, r *reader) []access.ExternalUser {
	count := make(map[string]int, len(users))
	for _, u := range users {
		count[strings.ToLower(u.Login)]++
	}
	out := users[:0]
	for _, u := range users {
		if count[strings.ToLower(u.Login)] > 1 {
			r.skipped = append(r.skipped, fmt.Sprintf("user %s (%s): login shared with another directory entry", u.Login, u.ExternalID))
			continue
		}
		out = append(out, u)
	}
	return out
}

// guard stops runs that look like a directory failure rather than real
// departures: no users at all, or more removals and disablings than the
// configured share of the users sealgate knows from this source.
func (s *Syncer) guard(known int, rep *Report, force bool) error {
	if rep.Seen == 0 {
		return fault.New(fault.Conflict, CodeGuardTripped,
			"the directory returned no users under %q matching %q; nothing was applied", s.cfg.Users.BaseDN, s.cfg.Users.Filter)
	}
	gone := len(rep.Diff.Removed) + len(rep.Diff.Disabled)
	if force || known == 0 || gone == 0 {
		return nil
	}
	if share := 100 * float64(gone) / float64(known); share > s.cfg.MaxRemovalPercent {
		return fault.New(fault.Conflict, CodeGuardTripped,
			"the sync would remove or disable %d of %d users (%.1f%%, limit %.1f%% in ldap.maxRemovalPercent); nothing was applied",
			gone, known, share, s.cfg.MaxRemovalPercent)
	}
	return nil
}

// Loop syncs every interval until ctx ends: incremental runs, with a full
// run first and every FullEvery-th time. Failures are recorded and retried
// at the next tick; the last known state stays in sealgate meanwhile. An
// interval of zero or less means no schedule: Loop returns at once.
func (s *Syncer) Loop(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := 0; ; n++ {
		_, _ = s.Run(ctx, SyncOptions{Full: n%s.cfg.FullEvery == 0})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// changeMark is where the last applied sync left off: the highest change
// mark (modifyTimestamp, uSNChanged) it read, and from which server.
type changeMark struct {
	value, server string
}

func (s *Syncer) mark(ctx context.Context) (changeMark, error) {
	var m changeMark
	err := s.db.Read().QueryRowContext(ctx, `SELECT mark, server FROM ldapsync_marks WHERE source = ?`, s.cfg.Source).Scan(&m.value, &m.server)
	if errors.Is(err, sql.ErrNoRows) {
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("ldapsync: read change mark of %s: %w", s.cfg.Source, err)
	}
	return m, nil
}

func (s *Syncer) setMark(ctx context.Context, m changeMark) error {
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO ldapsync_marks (source, mark, server, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (source) DO UPDATE SET mark = excluded.mark, server = excluded.server, updated_at = excluded.updated_at`,
			s.cfg.Source, m.value, m.server, s.now().UTC().Format(time.RFC3339Nano))
		if err != nil {
			return fmt.Errorf("ldapsync: store change mark of %s: %w", s.cfg.Source, err)
		}
		return nil
	})
}

// record stores the start of a run and sets its id.
func (s *Syncer) record(ctx context.Context, rep *Report) error {
	rep.Outcome = OutcomeRunning
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO ldapsync_runs (source, full_sync, dry_run, started_at, outcome)
			VALUES (?, ?, ?, ?, ?) RETURNING id`,
			rep.Source, rep.Full, rep.DryRun, rep.Started.Format(time.RFC3339Nano), rep.Outcome).Scan(&rep.ID)
		if err != nil {
			return fmt.Errorf("ldapsync: record run: %w", err)
		}
		return nil
	})
}

// finish stores a run's end. A run that failed before it was recorded
// (database down) has no id and is only logged.
func (s *Syncer) finish(ctx context.Context, r *Run) error {
	if r.ID == 0 {
		return nil
	}
	return s.db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE ldapsync_runs SET finished_at = ?, full_sync = ?, outcome = ?, seen = ?,
			added = ?, changed = ?, disabled = ?, removed = ?, memberships = ?, skipped = ?, error = ? WHERE id = ?`,
			r.Finished.Format(time.RFC3339Nano), r.Full, r.Outcome, r.Seen, r.Added, r.Changed, r.Disabled, r.Removed,
			r.Memberships, r.Skipped, r.Error, r.ID)
		if err != nil {
			return fmt.Errorf("ldapsync: record end of run %d: %w", r.ID, err)
		}
		return nil
	})
}

// Runs returns the latest runs of this source, newest first.
func (s *Syncer) Runs(ctx context.Context, limit int) ([]Run, error) {
	rows, err := s.db.Read().QueryContext(ctx, `SELECT id, source, full_sync, dry_run, started_at, finished_at, outcome,
		seen, added, changed, disabled, removed, memberships, skipped, error
		FROM ldapsync_runs WHERE source = ? ORDER BY id DESC LIMIT ?`, s.cfg.Source, limit)
	if err != nil {
		return nil, fmt.Errorf("ldapsync: list runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		var r Run
		var started, finished string
		if err := rows.Scan(&r.ID, &r.Source, &r.Full, &r.DryRun, &started, &finished, &r.Outcome,
			&r.Seen, &r.Added, &r.Changed, &r.Disabled, &r.Removed, &r.Memberships, &r.Skipped, &r.Error); err != nil {
			return nil, fmt.Errorf("ldapsync: list runs: %w", err)
		}
		r.Started, _ = time.Parse(time.RFC3339Nano, started)
		r.Finished, _ = time.Parse(time.RFC3339Nano, finished)
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ldapsync: list runs: %w", err)
	}
	return runs, nil
}

// loadHealth restores the last outcome after a restart.
func (s *Syncer) loadHealth(ctx context.Context) error {
	runs, err := s.Runs(ctx, 1)
	if err != nil || len(runs) == 0 {
		return err
	}
	s.health.Last = runs[0]
	var finished string
	err = s.db.Read().QueryRowContext(ctx, `SELECT COALESCE(MAX(finished_at), '') FROM ldapsync_runs
		WHERE source = ? AND dry_run = 0 AND outcome IN (?, ?)`, s.cfg.Source, OutcomeApplied, OutcomeUnchanged).Scan(&finished)
	if err != nil {
		return fmt.Errorf("ldapsync: read last successful run: %w", err)
	}
	s.health.LastSuccess, _ = time.Parse(time.RFC3339Nano, finished)
	return nil
}
