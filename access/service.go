package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/store"
)

// Error codes reported by this package.
const (
	CodeUnauthenticated  fault.Code = "unauthenticated"
	CodeAccountLocked    fault.Code = "account_locked"
	CodeTOTPRequired     fault.Code = "totp_required"
	CodeTOTPEnrollment   fault.Code = "totp_enrollment_required"
	CodeTOTPInvalid      fault.Code = "totp_invalid"
	CodeTOTPReplayed     fault.Code = "totp_replayed"
	CodeSealNotPermitted fault.Code = "seal_not_permitted"
	// CodeApprovalPerDocument: a rule that wants a TOTP approval for each
	// document was asked for a batch of several.
	CodeApprovalPerDocument   fault.Code = "approval_per_document"
	CodeOperationNotPermitted fault.Code = "operation_not_permitted"
	CodeUserUnknown           fault.Code = "user_unknown"
	CodeUserExists            fault.Code = "user_exists"
	CodeUserExternal          fault.Code = "user_external"
	CodeGroupUnknown          fault.Code = "group_unknown"
	CodeGroupExists           fault.Code = "group_exists"
	CodeProcessUnknown        fault.Code = "process_unknown"
	CodeProcessExists         fault.Code = "process_exists"
	CodeRuleInvalid           fault.Code = "rule_invalid"
	CodeRuleUnknown           fault.Code = "rule_unknown"
	CodeInvalidInput          fault.Code = "invalid_input"
	CodeDirectoryUnknown      fault.Code = "directory_unknown"
	// CodeLoginBusy refuses a password check while PasswordChecks.Concurrency
	// checks run and the queue is full (429 with Retry-After).
	CodeLoginBusy fault.Code = "login_busy"
)

// Options configure a Service. The zero value gives production defaults.
type Options struct {
	// Logger receives operational messages; never secrets. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Password sets the argon2id cost of new password hashes. Default
	// DefaultPasswordParams. Existing hashes keep the parameters they were
	// made with (they are part of the PHC string).
	Password PasswordParams
	// PasswordChecks bounds concurrent argon2id runs (logins, new
	// passwords). Default: one per CPU (GOMAXPROCS) but at most 256 MiB of
	// argon2id memory at once (4 with the default 64 MiB), 4 × that queued
	// for up to 2s.
	PasswordChecks limit.GateSettings
	// TokenTTL is the lifetime of OAuth access tokens. Default 10 minutes.
	TokenTTL time.Duration
	// SessionTTL is the lifetime of user sessions. Default 8 hours.
	SessionTTL time.Duration
	// SessionIdleTimeout ends a session unused for this long. Default 30
	// minutes.
	SessionIdleTimeout time.Duration
	// Lockout is the brute-force policy. Zero fields take defaults.
	Lockout LockoutPolicy
	// Directories verify the passwords of directory users, by source name.
	Directories map[string]PasswordVerifier
	// TOTPIssuer names sealgate in authenticator apps. Default "sealgate".
	TOTPIssuer string
	// SecretsKey is where the key that seals TOTP secrets in the database
	// is kept: 32 random bytes written as 64 hex digits. When zero,
	// SecretsKeyFile holds it.
	SecretsKey secret.Ref
	// SecretsKeyFile is the key file used when SecretsKey is zero; Open
	// creates it with a new random key (mode 0600) when it is missing.
	// Default: secrets.key beside the database file.
	SecretsKeyFile string
	// Proxy names the reverse proxies in front of sealgate, for the HTTP
	// transports; the Service itself does not use it.
	Proxy ProxySettings
	// Seals are the ids of the node's configured seals. When not nil, a new
	// rule naming another seal is refused (rule_invalid, listing them).
	Seals []string
	// OnAuditHead, when set, is called after each committed audit append
	// with the new chain head and event count, so an external log can
	// anchor the audit trail (a deleted tail is only detectable that way).
	OnAuditHead func(ctx context.Context, headHash []byte, count uint64)
}

// Service holds users, groups, processes, credentials, rules and the audit
// trail in the database, and makes every authorization decision.
type Service struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
	now  func() time.Time
	box  *secretBox // seals TOTP secrets
	// hashGate bounds concurrent argon2id runs (see hashing).
	hashGate *limit.Gate
	hashers  atomic.Int32 // argon2id runs in progress
	release  *time.Timer  // runs releaseMemory once the gate is idle

	// The generation is read on a connection of its own, with the
	// statement prepared once: about 4 µs instead of a pool round trip.
	genMu   sync.Mutex
	genConn *sql.Conn
	genStmt *sql.Stmt
	// stmts are the authentication path's prepared reads.
	stmts statements

	mu  sync.RWMutex
	idx *index // rules and memberships as of idx.generation

	// dummyHash is verified for unknown accounts so they cost the same
	// time; made on first use, so opening a Service stays cheap.
	dummyHash func() string
}

var migrations = []string{
	`CREATE TABLE access_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`,
	`INSERT INTO access_state (name, value) VALUES ('generation', 1)`,
	`CREATE TABLE access_users (
		id INTEGER PRIMARY KEY,
		login TEXT NOT NULL UNIQUE,
		display_name TEXT NOT NULL DEFAULT '',
		mail TEXT NOT NULL DEFAULT '',
		source TEXT NOT NULL DEFAULT '',
		external_id TEXT,
		password_hash TEXT NOT NULL DEFAULT '',
		disabled INTEGER NOT NULL DEFAULT 0,
		roles TEXT NOT NULL DEFAULT '',
		totp_secret TEXT NOT NULL DEFAULT '',
		totp_pending TEXT NOT NULL DEFAULT '',
		totp_last_step INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		UNIQUE (source, external_id))`,
	`CREATE TABLE access_groups (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		source TEXT NOT NULL DEFAULT '',
		require_totp INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL)`,
	`CREATE TABLE access_members (
		group_id INTEGER NOT NULL REFERENCES access_groups(id) ON DELETE CASCADE,
		user_id INTEGER NOT NULL REFERENCES access_users(id) ON DELETE CASCADE,
		source TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (group_id, user_id))`,
	`CREATE INDEX access_members_user ON access_members (user_id)`,
	`CREATE TABLE access_processes (
		id INTEGER PRIMARY KEY,
		client_id TEXT NOT NULL UNIQUE,
		description TEXT NOT NULL DEFAULT '',
		roles TEXT NOT NULL DEFAULT '',
		revoked INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL)`,
	`CREATE TABLE access_process_secrets (
		id INTEGER PRIMARY KEY,
		process_id INTEGER NOT NULL REFERENCES access_processes(id) ON DELETE CASCADE,
		salt BLOB NOT NULL,
		hash BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER)`,
	`CREATE TABLE access_process_certs (
		id INTEGER PRIMARY KEY,
		process_id INTEGER NOT NULL REFERENCES access_processes(id) ON DELETE CASCADE,
		fingerprint TEXT NOT NULL DEFAULT '',
		subject TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL)`,
	`CREATE TABLE access_tokens (
		hash BLOB PRIMARY KEY,
		kind TEXT NOT NULL,
		principal_kind TEXT NOT NULL,
		principal_id INTEGER NOT NULL,
		factors TEXT NOT NULL,
		issued_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		revoked_at INTEGER)`,
	`CREATE INDEX access_tokens_principal ON access_tokens (principal_kind, principal_id)`,
	`CREATE TABLE access_approvals (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES access_users(id) ON DELETE CASCADE,
		factor TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		used_at INTEGER)`,
	`CREATE TABLE access_recovery_codes (
		user_id INTEGER NOT NULL REFERENCES access_users(id) ON DELETE CASCADE,
		hash BLOB NOT NULL,
		used_at INTEGER,
		PRIMARY KEY (user_id, hash))`,
	`CREATE TABLE access_failures (
		key TEXT PRIMARY KEY,
		failures INTEGER NOT NULL,
		last_at INTEGER NOT NULL,
		locked_until INTEGER NOT NULL)`,
	`CREATE TABLE access_rules (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		subject_kind TEXT NOT NULL,
		subject_id INTEGER NOT NULL,
		conditions TEXT NOT NULL,
		created_at INTEGER NOT NULL)`,
	`CREATE INDEX access_rules_subject ON access_rules (subject_kind, subject_id)`,
	`CREATE TABLE access_usage (
		rule_id INTEGER NOT NULL,
		day TEXT NOT NULL,
		documents INTEGER NOT NULL,
		PRIMARY KEY (rule_id, day))`,
	`CREATE TABLE access_audit (
		id INTEGER PRIMARY KEY,
		at INTEGER NOT NULL,
		type TEXT NOT NULL,
		actor TEXT NOT NULL,
		subject TEXT NOT NULL,
		source TEXT NOT NULL,
		outcome TEXT NOT NULL,
		detail TEXT NOT NULL,
		prev_hash BLOB NOT NULL,
		hash BLOB NOT NULL)`,
	`CREATE TABLE access_audit_head (
		id INTEGER PRIMARY KEY,
		last_id INTEGER NOT NULL,
		count INTEGER NOT NULL,
		hash BLOB NOT NULL)`,
	// Failures are counted per account and source as well: the columns
	// name what a row counts, so an account's locks can be listed and lifted.
	`ALTER TABLE access_failures ADD COLUMN account TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE access_failures ADD COLUMN source TEXT NOT NULL DEFAULT ''`,
	`UPDATE access_failures SET account = substr(key, 9) WHERE key LIKE 'account:%'`,
	`UPDATE access_failures SET source = substr(key, 8) WHERE key LIKE 'source:%'`,
	`CREATE INDEX access_failures_account ON access_failures (account)`,
	// Sessions end after an idle time as well as at their expiry.
	`ALTER TABLE access_tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0`,
	`UPDATE access_tokens SET last_used_at = issued_at`,
}

// Open prepares the access tables in db and returns the Service.
func Open(ctx context.Context, db *store.DB, opts Options) (*Service, error) {
	if err := db.Migrate(ctx, "access", migrations); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Password == (PasswordParams{}) {
		opts.Password = DefaultPasswordParams
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 10 * time.Minute
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = 8 * time.Hour
	}
	if opts.SessionIdleTimeout == 0 {
		opts.SessionIdleTimeout = 30 * time.Minute
	}
	if opts.TOTPIssuer == "" {
		opts.TOTPIssuer = "sealgate"
	}
	if err := checkIPv6Prefix(opts.Lockout.IPv6Prefix, ""); err != nil {
		return nil, err
	}
	opts.Lockout = opts.Lockout.withDefaults()
	if opts.SecretsKeyFile == "" {
		opts.SecretsKeyFile = filepath.Join(filepath.Dir(db.Path()), "secrets.key")
	}
	box, err := openSecretsKey(ctx, db, opts)
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, opts: opts, log: opts.Logger, now: opts.Now, box: box, stmts: statements{db: db.Read()},
		hashGate: limit.NewGate(opts.PasswordChecks.WithDefaults(defaultPasswordChecks(opts.Password)), func() *fault.Error {
			return fault.New(fault.TooMany, CodeLoginBusy, "too many password checks at once; try again shortly")
		})}
	s.release = time.AfterFunc(time.Hour, s.releaseMemory)
	s.release.Stop()
	if err := s.sealPlainSecrets(ctx); err != nil {
		return nil, err
	}
	conn, err := db.Read().Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("access: generation connection: %w", err)
	}
	st, err := conn.PrepareContext(ctx, `SELECT value FROM access_state WHERE name = 'generation'`)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("access: prepare: %w", err)
	}
	s.genConn, s.genStmt = conn, st
	s.dummyHash = sync.OnceValue(func() string {
		h, err := hashPassword("sealgate-no-such-account", opts.Password)
		if err != nil {
			panic(err) // only crypto/rand can fail, and it does not
		}
		return h
	})
	return s, nil
}

// Close releases the Service's connection; the database stays open.
func (s *Service) Close() error {
	s.release.Stop()
	return errors.Join(s.stmts.close(), s.genStmt.Close(), s.genConn.Close())
}

// generation reads the database's change counter.
func (s *Service) generation(ctx context.Context) (int64, error) {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	var gen int64
	if err := s.genStmt.QueryRowContext(ctx).Scan(&gen); err != nil {
		return 0, internal(err, "read generation")
	}
	return gen, nil
}

// Now is the Service's clock, for callers that report lifetimes.
func (s *Service) Now() time.Time { return s.now() }

// bumpGeneration marks rules, groups, memberships or account states as
// changed, so every Service on this database rebuilds its index before the
// next decision.
func bumpGeneration(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE access_state SET value = value + 1 WHERE name = 'generation'`); err != nil {
		return fmt.Errorf("access: bump generation: %w", err)
	}
	return nil
}

// nowMS returns the clock in Unix milliseconds, the unit of every stored time.
func (s *Service) nowMS() int64 { return s.now().UnixMilli() }

// joinList and splitList store short name lists (roles, factors) in one
// TEXT column; names never contain commas (validName forbids them).
func joinList(v []string) string { return strings.Join(v, ",") }

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// validName checks a login, group name, client id or rule name: printable,
// no separators used in storage or in principal strings, bounded length.
func validName(what, v string) error {
	if v == "" || len(v) > 128 {
		return fault.New(fault.Invalid, CodeInvalidInput, "%s %q must be 1 to 128 characters", what, v)
	}
	for _, r := range v {
		if r <= ' ' || r == ',' || r == ':' || r == 0x7f {
			return fault.New(fault.Invalid, CodeInvalidInput, "%s %q must not contain spaces, commas, colons or control characters", what, v)
		}
	}
	return nil
}

func internal(err error, what string) error {
	return fault.Wrap(err, fault.Internal, fault.CodeInternal, "access: %s failed", what)
}
