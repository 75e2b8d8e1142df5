package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// LockoutPolicy slows down password and secret guessing without letting
// one attacker lock everyone out (OWASP's authentication and credential
// stuffing guidance). Failures are counted three ways:
//   - per account and source: a few failures lock that account for that
//     source only, so a guesser is stopped while its victim, elsewhere,
//     still logs in;
//   - per account from all sources together, with a much higher threshold,
//     against guessing spread over many addresses;
//   - per source across all accounts, against password spraying.
//
// Account names are counted whether they exist or not, so a locked unknown
// name looks like a locked real one. Past a threshold the counter is locked
// for BaseLock, doubling with every further failure up to MaxLock; attempts
// refused while locked are not counted. Counts are kept in the database, so
// all sealgate processes on it share them and they survive a restart;
// Service.Unlock lifts an account's locks. An IPv6 client usually holds a
// whole /64 and can change its address at will, so IPv6 sources are counted
// per prefix of IPv6Prefix bits; IPv4 sources (and IPv4-mapped IPv6
// addresses) per address.
type LockoutPolicy struct {
	// PairFailures before an account locks for one source. Default 5.
	PairFailures int `yaml:"pairFailures"`
	// AccountFailures, from all sources together, before an account locks
	// for everyone. Default 50.
	AccountFailures int `yaml:"accountFailures"`
	// SourceFailures, across all accounts, before a source address locks.
	// Default 20.
	SourceFailures int `yaml:"sourceFailures"`
	// BaseLock is the first lock's length. Default 1 minute.
	BaseLock time.Duration `yaml:"baseLock"`
	// MaxLock caps the lock. Default 1 hour.
	MaxLock time.Duration `yaml:"maxLock"`
	// Window forgets failures older than this. Default 1 hour.
	Window time.Duration `yaml:"window"`
	// IPv6Prefix is the length of the IPv6 prefix counted as one source,
	// 48 to 128. Default 64.
	IPv6Prefix int `yaml:"ipv6Prefix"`
}

// IPv6 prefix lengths a LockoutPolicy accepts: a /48 is a whole site, a
// /128 a single address.
const (
	minIPv6Prefix = 48
	maxIPv6Prefix = 128
)

// checkIPv6Prefix refuses an IPv6Prefix out of range; where names the
// setting's origin for the message.
func checkIPv6Prefix(bits int, where string) error {
	if bits != 0 && (bits < minIPv6Prefix || bits > maxIPv6Prefix) {
		return fault.New(fault.Invalid, CodeConfigInvalid, "access.lockout.ipv6Prefix%s must be between %d and %d (got %d)",
			where, minIPv6Prefix, maxIPv6Prefix, bits)
	}
	return nil
}

func (p LockoutPolicy) withDefaults() LockoutPolicy {
	if p.PairFailures == 0 {
		p.PairFailures = 5
	}
	if p.AccountFailures == 0 {
		p.AccountFailures = 50
	}
	if p.SourceFailures == 0 {
		p.SourceFailures = 20
	}
	if p.BaseLock == 0 {
		p.BaseLock = time.Minute
	}
	if p.MaxLock == 0 {
		p.MaxLock = time.Hour
	}
	if p.Window == 0 {
		p.Window = time.Hour
	}
	if p.IPv6Prefix == 0 {
		p.IPv6Prefix = 64
	}
	return p
}

// counter is one failure count: of an account from one source, of an
// account from everywhere, or of a source across accounts.
type counter struct {
	key       string // the row's primary key
	account   string // "user:alice"; empty for a source's counter
	source    string // the source block; empty for an account's counter
	threshold int
}

// counters are the counts an attempt for account name of kind from src is
// held against; name is empty for attempts that name no account (bearer
// tokens, client certificates), src invalid for attempts of unknown origin.
func (p LockoutPolicy) counters(kind Kind, name string, src netip.Addr) []counter {
	var cs []counter
	block := p.sourceBlock(src)
	if name != "" {
		// A secret typed as a login name must not be stored as a key:
		// all such attempts count against one redacted name.
		account := string(kind) + ":" + Redact(name)
		if block != "" {
			cs = append(cs, counter{key: "pair:" + account + "@" + block, account: account, source: block, threshold: p.PairFailures})
		}
		cs = append(cs, counter{key: "account:" + account, account: account, threshold: p.AccountFailures})
	}
	if block != "" {
		cs = append(cs, counter{key: "source:" + block, source: block, threshold: p.SourceFailures})
	}
	return cs
}

// sourceBlock names the source an attempt is counted against: the IPv4
// address, or the IPv6 address's prefix of IPv6Prefix bits ("2001:db8:1:2::/64").
// It is empty for attempts of unknown origin.
func (p LockoutPolicy) sourceBlock(src netip.Addr) string {
	if !src.IsValid() {
		return ""
	}
	a := src.Unmap()
	if a.Is4() {
		return a.String()
	}
	block, _ := a.Prefix(p.IPv6Prefix) // Open checked the length; a zone is dropped
	return block.String()
}

// checkLocked refuses an attempt while any of its counters is locked, with
// the time left until the longest lock ends. It returns whether the
// account has failures on record, so a success only pays for clearing them
// when there are some.
func (s *Service) checkLocked(ctx context.Context, kind Kind, name string, src netip.Addr) (bool, error) {
	cs := s.opts.Lockout.counters(kind, name, src)
	if len(cs) == 0 {
		return false, nil
	}
	keys := make([]any, len(cs))
	byKey := make(map[string]counter, len(cs))
	for i, c := range cs {
		keys[i] = c.key
		byKey[c.key] = c
	}
	rows, err := s.stmts.query(ctx, `SELECT key, locked_until FROM access_failures WHERE key IN (?`+strings.Repeat(", ?", len(cs)-1)+`)`, keys...)
	if err != nil {
		return false, internal(err, "read lockout")
	}
	defer rows.Close()
	now := s.nowMS()
	hadFailures := false
	var locked counter
	var until int64
	for rows.Next() {
		var key string
		var u int64
		if err := rows.Scan(&key, &u); err != nil {
			return false, internal(err, "read lockout")
		}
		c := byKey[key]
		hadFailures = hadFailures || c.account != ""
		if u > now && u > until {
			locked, until = c, u
		}
	}
	if err := rows.Err(); err != nil {
		return false, internal(err, "read lockout")
	}
	if until == 0 {
		return hadFailures, nil
	}
	wait := time.Duration(until-now) * time.Millisecond
	var what string
	switch {
	case locked.account == "":
		what = "from " + locked.source
	case locked.source == "":
		what = fmt.Sprintf("for %q", name)
	default:
		what = fmt.Sprintf("for %q from %s", name, locked.source)
	}
	return false, fault.New(fault.TooMany, CodeAccountLocked, "too many failed attempts %s; try again in %s", what, wait.Round(time.Second)).Retry(wait)
}

// recordFailure counts a failed attempt and returns the answer to give:
// the same for an unknown account and a wrong password. The event is
// audited in the same transaction.
func (s *Service) recordFailure(ctx context.Context, kind Kind, name string, src netip.Addr, method string) error {
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		for _, c := range s.opts.Lockout.counters(kind, name, src) {
			if err := s.countFailure(ctx, tx, c); err != nil {
				return err
			}
		}
		return audit(Event{Type: "login", Actor: Principal{Kind: kind, Name: name}.String(), Source: addrString(src), Outcome: OutcomeFailed,
			Detail: map[string]string{"method": method}})
	})
	if err != nil {
		return err
	}
	s.log.Warn("authentication failed", "principal", Principal{Kind: kind, Name: name}.String(), "source", addrString(src), "method", method)
	return errUnauthenticated()
}

func (s *Service) countFailure(ctx context.Context, tx *sql.Tx, c counter) error {
	p := s.opts.Lockout
	now := s.nowMS()
	var failures, last int64
	err := tx.QueryRowContext(ctx, `SELECT failures, last_at FROM access_failures WHERE key = ?`, c.key).Scan(&failures, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return internal(err, "read failures")
	}
	if now-last > p.Window.Milliseconds() {
		failures = 0
	}
	failures++
	var until int64
	if failures >= int64(c.threshold) {
		lock := p.BaseLock
		for i := int64(c.threshold); i < failures && lock < p.MaxLock; i++ {
			lock *= 2
		}
		lock = min(lock, p.MaxLock)
		until = now + lock.Milliseconds()
		s.log.Warn("locked after failed attempts", "account", c.account, "source", c.source, "failures", failures, "lock", lock)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_failures (key, account, source, failures, last_at, locked_until) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at, locked_until = excluded.locked_until`,
		c.key, c.account, c.source, failures, now, until); err != nil {
		return internal(err, "record failure")
	}
	return nil
}

// clearFailures forgets an account's failures, from everywhere and from
// src, after a successful login. The source's own count stays: one good
// password must not reset a sprayer's tally.
func (s *Service) clearFailures(ctx context.Context, tx *sql.Tx, kind Kind, name string, src netip.Addr) error {
	for _, c := range s.opts.Lockout.counters(kind, name, src) {
		if c.account == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_failures WHERE key = ?`, c.key); err != nil {
			return internal(err, "clear failures")
		}
	}
	return nil
}

// Lock is a lock in force against an account.
type Lock struct {
	// Source is the address (or IPv6 prefix) locked out of the account;
	// empty when the account is locked for every source.
	Source string `json:"source,omitempty"`
	// Failures counted within the window.
	Failures int `json:"failures"`
	// Until is when the lock ends by itself.
	Until time.Time `json:"until"`
}

// locks returns the locks in force against accounts of kind, by name.
func (s *Service) locks(ctx context.Context, kind Kind) (map[string][]Lock, error) {
	prefix := string(kind) + ":"
	rows, err := s.db.Read().QueryContext(ctx, `SELECT account, source, failures, locked_until FROM access_failures
		WHERE account LIKE ? AND locked_until > ? ORDER BY account, source`, prefix+"%", s.nowMS())
	if err != nil {
		return nil, internal(err, "read locks")
	}
	defer rows.Close()
	out := map[string][]Lock{}
	for rows.Next() {
		var account string
		var l Lock
		var until int64
		if err := rows.Scan(&account, &l.Source, &l.Failures, &until); err != nil {
			return nil, internal(err, "read lock")
		}
		l.Until = time.UnixMilli(until).UTC()
		name := strings.TrimPrefix(account, prefix)
		out[name] = append(out[name], l)
	}
	return out, rows.Err()
}

// Unlock lifts every lock of a user's or process's account, for all
// sources, and forgets its failures; it returns how many locks were in
// force. Locks of the sources themselves (password spraying) stay: they
// end by themselves.
func (s *Service) Unlock(ctx context.Context, kind Kind, name, actor string) (int, error) {
	var lifted int
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		var err error
		switch kind {
		case KindUser:
			_, err = lookupUserID(ctx, tx, name)
		case KindProcess:
			_, err = lookupProcessID(ctx, tx, name)
		default:
			err = fault.New(fault.Invalid, CodeInvalidInput, "only users and processes are locked, not %q", kind)
		}
		if err != nil {
			return err
		}
		account := string(kind) + ":" + name
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_failures WHERE account = ? AND locked_until > ?`,
			account, s.nowMS()).Scan(&lifted); err != nil {
			return internal(err, "read locks")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_failures WHERE account = ?`, account); err != nil {
			return internal(err, "unlock")
		}
		return audit(Event{Type: string(kind) + ".unlock", Actor: actor, Subject: account,
			Detail: map[string]string{"locks": strconv.Itoa(lifted)}})
	})
	return lifted, err
}

// errUnauthenticated is the one answer to every failed proof of identity,
// so it reveals neither whether the account exists nor what was wrong.
func errUnauthenticated() error {
	return fault.New(fault.Unauthenticated, CodeUnauthenticated, "authentication failed")
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
