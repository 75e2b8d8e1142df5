package access

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// Process is a machine client (ERP, batch job) that seals without a person.
type Process struct {
	ID          int64         `json:"id"`
	ClientID    string        `json:"clientId"`
	Description string        `json:"description,omitempty"`
	Roles       []string      `json:"roles"`
	Revoked     bool          `json:"revoked"`
	Secrets     int           `json:"activeSecrets"`
	Certs       []ProcessCert `json:"certificates"`
	// Locks in force against the client id (Service.Unlock lifts them).
	Locks []Lock `json:"locks,omitempty"`
}

// ProcessCert maps TLS client certificates to a process: by the SHA-256
// fingerprint of one certificate, or by subject DN for any certificate the
// TLS listener verified against the client CA.
type ProcessCert struct {
	ID          int64  `json:"id,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Subject     string `json:"subject,omitempty"`
}

// Client secrets are 256 random bits, so guessing is hopeless and a slow
// password hash would only add ~60 ms of argon2id to every machine
// request. HMAC-SHA-256 with a per-secret salt makes a leaked table
// useless for lookups at the cost of a microsecond.
// ClientSecretPrefix starts every client secret, so transports can tell a
// process's secret from a user's password in HTTP Basic.
const ClientSecretPrefix = "sgp_"

func newClientSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return ClientSecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func secretHash(salt []byte, secret string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

func (s *Service) storeSecret(ctx context.Context, tx *sql.Tx, processID int64) (string, error) {
	secret := newClientSecret()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", internal(err, "salt")
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_process_secrets (process_id, salt, hash, created_at) VALUES (?, ?, ?, ?)`,
		processID, salt, secretHash(salt, secret), s.nowMS()); err != nil {
		return "", internal(err, "store client secret")
	}
	return secret, nil
}

// AddProcess registers a machine client and returns its first secret,
// which is shown once and stored only hashed.
func (s *Service) AddProcess(ctx context.Context, clientID, description string, roles []string, actor string) (Process, string, error) {
	if err := validName("client id", clientID); err != nil {
		return Process{}, "", err
	}
	if err := checkRoles(roles); err != nil {
		return Process{}, "", err
	}
	var secret string
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if _, err := lookupProcessID(ctx, tx, clientID); err == nil {
			return fault.New(fault.Conflict, CodeProcessExists, "process %q already exists", clientID)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO access_processes (client_id, description, roles, created_at) VALUES (?, ?, ?, ?)`,
			clientID, description, joinList(roles), s.nowMS())
		if err != nil {
			return internal(err, "add process")
		}
		id, err := res.LastInsertId()
		if err != nil {
			return internal(err, "add process")
		}
		if secret, err = s.storeSecret(ctx, tx, id); err != nil {
			return err
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "process.add", Actor: actor, Subject: "process:" + clientID, Detail: map[string]string{"roles": joinList(roles)}})
	})
	if err != nil {
		return Process{}, "", err
	}
	p, err := s.Process(ctx, clientID)
	return p, secret, err
}

func lookupProcessID(ctx context.Context, q queryer, clientID string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM access_processes WHERE client_id = ?`, clientID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fault.New(fault.NotFound, CodeProcessUnknown, "process %q does not exist", clientID)
	}
	if err != nil {
		return 0, internal(err, "look up process")
	}
	return id, nil
}

// Processes lists all machine clients.
func (s *Service) Processes(ctx context.Context) ([]Process, error) {
	return s.loadProcesses(ctx, `1 = 1`)
}

// Process returns one machine client.
func (s *Service) Process(ctx context.Context, clientID string) (Process, error) {
	ps, err := s.loadProcesses(ctx, `client_id = ?`, clientID)
	if err != nil {
		return Process{}, err
	}
	if len(ps) == 0 {
		return Process{}, fault.New(fault.NotFound, CodeProcessUnknown, "process %q does not exist", clientID)
	}
	return ps[0], nil
}

func (s *Service) loadProcesses(ctx context.Context, where string, args ...any) ([]Process, error) {
	q := s.db.Read()
	rows, err := q.QueryContext(ctx, `SELECT p.id, p.client_id, p.description, p.roles, p.revoked,
		(SELECT COUNT(*) FROM access_process_secrets x WHERE x.process_id = p.id AND (x.expires_at IS NULL OR x.expires_at > ?))
		FROM access_processes p WHERE `+where+` ORDER BY p.client_id`, append([]any{s.nowMS()}, args...)...)
	if err != nil {
		return nil, internal(err, "read processes")
	}
	out := []Process{}
	idx := map[int64]int{}
	for rows.Next() {
		var p Process
		var roles string
		if err := rows.Scan(&p.ID, &p.ClientID, &p.Description, &roles, &p.Revoked, &p.Secrets); err != nil {
			rows.Close()
			return nil, internal(err, "read process")
		}
		p.Roles = splitList(roles)
		if p.Roles == nil {
			p.Roles = []string{}
		}
		p.Certs = []ProcessCert{}
		idx[p.ID] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, internal(err, "read processes")
	}
	crows, err := q.QueryContext(ctx, `SELECT id, process_id, fingerprint, subject FROM access_process_certs ORDER BY id`)
	if err != nil {
		return nil, internal(err, "read process certificates")
	}
	defer crows.Close()
	for crows.Next() {
		var c ProcessCert
		var pid int64
		if err := crows.Scan(&c.ID, &pid, &c.Fingerprint, &c.Subject); err != nil {
			return nil, internal(err, "read process certificate")
		}
		if i, ok := idx[pid]; ok {
			out[i].Certs = append(out[i].Certs, c)
		}
	}
	if err := crows.Err(); err != nil {
		return nil, internal(err, "read process certificates")
	}
	locks, err := s.locks(ctx, KindProcess)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Locks = locks[out[i].ClientID]
	}
	return out, nil
}

// RotateSecret issues a new secret for a process. The old secrets stop
// working at once when overlap is zero, else after overlap, so a client
// can be redeployed without downtime.
func (s *Service) RotateSecret(ctx context.Context, clientID string, overlap time.Duration, actor string) (string, error) {
	if overlap < 0 {
		return "", fault.New(fault.Invalid, CodeInvalidInput, "overlap %s for process %q must not be negative", overlap, clientID)
	}
	var secret string
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupProcessID(ctx, tx, clientID)
		if err != nil {
			return err
		}
		now := s.nowMS()
		if overlap == 0 {
			_, err = tx.ExecContext(ctx, `DELETE FROM access_process_secrets WHERE process_id = ?`, id)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE access_process_secrets SET expires_at = ?
				WHERE process_id = ? AND (expires_at IS NULL OR expires_at > ?)`, now+overlap.Milliseconds(), id, now+overlap.Milliseconds())
		}
		if err != nil {
			return internal(err, "retire old secrets")
		}
		if secret, err = s.storeSecret(ctx, tx, id); err != nil {
			return err
		}
		return audit(Event{Type: "process.secret.rotate", Actor: actor, Subject: "process:" + clientID,
			Detail: map[string]string{"overlap": overlap.String()}})
	})
	return secret, err
}

// RevokeProcess disables a process for good: its secrets, certificates and
// tokens stop working at once.
func (s *Service) RevokeProcess(ctx context.Context, clientID, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupProcessID(ctx, tx, clientID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_processes SET revoked = 1 WHERE id = ?`, id); err != nil {
			return internal(err, "revoke process")
		}
		if err := endCredentials(ctx, tx, KindProcess, id, s.nowMS()); err != nil {
			return err
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "process.revoke", Actor: actor, Subject: "process:" + clientID})
	})
}

// AddProcessCert maps client certificates to a process. A fingerprint is
// the hex SHA-256 of the DER certificate (colons and case ignored).
func (s *Service) AddProcessCert(ctx context.Context, clientID string, c ProcessCert, actor string) error {
	fp := strings.ToLower(strings.ReplaceAll(c.Fingerprint, ":", ""))
	if b, err := hex.DecodeString(fp); fp != "" && (err != nil || len(b) != sha256.Size) {
		return fault.New(fault.Invalid, CodeInvalidInput, "fingerprint %q is not a SHA-256 hex digest", c.Fingerprint)
	}
	if (fp == "") == (c.Subject == "") {
		return fault.New(fault.Invalid, CodeInvalidInput, "give exactly one of fingerprint and subject for process %q", clientID)
	}
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupProcessID(ctx, tx, clientID)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO access_process_certs (process_id, fingerprint, subject, created_at) VALUES (?, ?, ?, ?)`,
			id, fp, c.Subject, s.nowMS()); err != nil {
			return internal(err, "add process certificate")
		}
		return audit(Event{Type: "process.cert.add", Actor: actor, Subject: "process:" + clientID,
			Detail: map[string]string{"fingerprint": fp, "subject": c.Subject}})
	})
}

// AuthenticateClientSecret checks a process's client id and secret (HTTP
// Basic or the OAuth token endpoint).
func (s *Service) AuthenticateClientSecret(ctx context.Context, clientID, secret string, src netip.Addr) (Principal, error) {
	hadFailures, err := s.checkLocked(ctx, KindProcess, clientID, src)
	if err != nil {
		return Principal{}, err
	}
	// One read finds the process (not revoked) with its live secrets: a
	// revocation or rotation counts from the next request on.
	rows, err := s.stmts.query(ctx, `SELECT p.id, p.roles, x.salt, x.hash FROM access_process_secrets x
		JOIN access_processes p ON p.id = x.process_id
		WHERE p.client_id = ? AND p.revoked = 0 AND (x.expires_at IS NULL OR x.expires_at > ?)`, clientID, s.nowMS())
	if err != nil {
		return Principal{}, internal(err, "read client secrets")
	}
	ok := false
	n := 0
	var p Principal
	for rows.Next() {
		var id int64
		var roles string
		var salt, want []byte
		if err := rows.Scan(&id, &roles, &salt, &want); err != nil {
			rows.Close()
			return Principal{}, internal(err, "read client secret")
		}
		n++
		if hmac.Equal(secretHash(salt, secret), want) {
			ok = true
			p = Principal{Kind: KindProcess, ID: id, Name: clientID, Roles: splitList(roles)}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Principal{}, internal(err, "read client secrets")
	}
	if n == 0 {
		secretHash(make([]byte, 16), secret) // same work as for a known client
	}
	if !ok {
		return Principal{}, s.recordFailure(ctx, KindProcess, clientID, src, "client secret")
	}
	if hadFailures {
		if err := s.db.Write(ctx, func(tx *sql.Tx) error { return s.clearFailures(ctx, tx, KindProcess, clientID, src) }); err != nil {
			return Principal{}, err
		}
	}
	p.Factors = []Factor{FactorClientSecret}
	p.Source = src
	return p, nil
}

// AuthenticateClientCert maps a TLS client certificate to a process. A
// pinned fingerprint matches the certificate alone; a subject DN matches
// only when chainVerified says the TLS listener verified the chain (the
// server's tls.clientAuth request or require), since anyone can make a
// certificate with any subject.
func (s *Service) AuthenticateClientCert(ctx context.Context, cert *x509.Certificate, chainVerified bool, src netip.Addr) (Principal, error) {
	if _, err := s.checkLocked(ctx, "", "", src); err != nil {
		return Principal{}, err
	}
	now := s.now()
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return Principal{}, s.recordFailure(ctx, "", "", src, "client certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	subject := ""
	if chainVerified {
		subject = cert.Subject.String()
	}
	var id int64
	err := s.db.Read().QueryRowContext(ctx, `SELECT c.process_id FROM access_process_certs c
		JOIN access_processes p ON p.id = c.process_id
		WHERE p.revoked = 0 AND (c.fingerprint = ? OR (c.subject <> '' AND c.subject = ?))
		ORDER BY c.id LIMIT 1`, hex.EncodeToString(sum[:]), subject).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, s.recordFailure(ctx, "", "", src, "client certificate")
	}
	if err != nil {
		return Principal{}, internal(err, "match client certificate")
	}
	p, err := s.processPrincipal(ctx, id)
	if err != nil {
		return Principal{}, err
	}
	p.Factors = []Factor{FactorClientCert}
	p.Source = src
	return p, nil
}

// IssueToken issues an OAuth 2.0 access token (client-credentials grant)
// to a process that proved a secret or certificate in this request.
func (s *Service) IssueToken(ctx context.Context, p Principal) (string, time.Time, error) {
	if p.Kind != KindProcess || p.Has(FactorBearer) || !(p.Has(FactorClientSecret) || p.Has(FactorClientCert)) {
		return "", time.Time{}, fault.New(fault.Forbidden, CodeOperationNotPermitted, "access tokens are issued to processes that present their own credentials, not to %s", p.String())
	}
	var tok string
	var exp time.Time
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		var err error
		if tok, exp, err = s.storeToken(ctx, tx, tokenBearer, p, s.opts.TokenTTL); err != nil {
			return err
		}
		return audit(Event{Type: "token.issue", Actor: p.String(), Source: addrString(p.Source),
			Detail: map[string]string{"expires": exp.UTC().Format(time.RFC3339)}})
	})
	return tok, exp, err
}

// processPrincipal loads a process that is not revoked, without factors.
func (s *Service) processPrincipal(ctx context.Context, id int64) (Principal, error) {
	var clientID, roles string
	var revoked bool
	err := s.stmts.queryRow(ctx, `SELECT client_id, roles, revoked FROM access_processes WHERE id = ?`, id).Scan(&clientID, &roles, &revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked) {
		return Principal{}, errUnauthenticated()
	}
	if err != nil {
		return Principal{}, internal(err, "read process")
	}
	return Principal{Kind: KindProcess, ID: id, Name: clientID, Roles: splitList(roles)}, nil
}
