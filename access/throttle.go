package access

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// LockoutPolicy slows down password and secret guessing. Failures are
// counted per account name (known or not, so a locked unknown name looks
// like a locked real one) and per source address; past the threshold the
// key is locked for BaseLock, doubling with every further failure up to
// MaxLock. Counts are kept in the database, so all sealgate processes on it
// share them. An IPv6 client usually holds a whole /64 and can change its
// address at will, so IPv6 sources are counted per prefix of IPv6Prefix
// bits; IPv4 sources (and IPv4-mapped IPv6 addresses) per address.
type LockoutPolicy struct {
	// AccountFailures before an account name locks. Default 5.
	AccountFailures int `yaml:"accountFailures"`
	// SourceFailures before a source address locks. Default 20.
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
	if p.AccountFailures == 0 {
		p.AccountFailures = 5
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

// accountKey is empty for attempts that name no account (bearer tokens).
func accountKey(kind Kind, name string) string {
	if name == "" {
		return ""
	}
	return "account:" + string(kind) + ":" + name
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

func (p LockoutPolicy) sourceKey(src netip.Addr) string {
	if block := p.sourceBlock(src); block != "" {
		return "source:" + block
	}
	return ""
}

// checkLocked refuses an attempt while the account name (when not empty)
// or the source is locked. It returns whether the account has failures on
// record, so a success only pays for clearing them when there are some.
func (s *Service) checkLocked(ctx context.Context, kind Kind, name string, src netip.Addr) (bool, error) {
	now := s.nowMS()
	hadFailures := false
	for i, key := range []string{accountKey(kind, name), s.opts.Lockout.sourceKey(src)} {
		if key == "" {
			continue
		}
		var until int64
		err := s.db.Read().QueryRowContext(ctx, `SELECT locked_until FROM access_failures WHERE key = ?`, key).Scan(&until)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return false, internal(err, "read lockout")
		}
		hadFailures = hadFailures || i == 0
		if until > now {
			wait := time.Duration(until-now) * time.Millisecond
			what := fmt.Sprintf("%q", name)
			if i == 1 {
				what = s.opts.Lockout.sourceBlock(src)
			}
			return false, fault.New(fault.TooMany, CodeAccountLocked,
				"too many failed attempts for %s; try again in %s", what, wait.Round(time.Second)).Retry(wait)
		}
	}
	return hadFailures, nil
}

// recordFailure counts a failed attempt and returns the answer to give:
// the same for an unknown account and a wrong password. The event is
// audited in the same transaction.
func (s *Service) recordFailure(ctx context.Context, kind Kind, name string, src netip.Addr, method string) error {
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if key := accountKey(kind, name); key != "" {
			if err := s.countFailure(ctx, tx, key, s.opts.Lockout.AccountFailures); err != nil {
				return err
			}
		}
		if key := s.opts.Lockout.sourceKey(src); key != "" {
			if err := s.countFailure(ctx, tx, key, s.opts.Lockout.SourceFailures); err != nil {
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

func (s *Service) countFailure(ctx context.Context, tx *sql.Tx, key string, threshold int) error {
	p := s.opts.Lockout
	now := s.nowMS()
	var failures, last int64
	err := tx.QueryRowContext(ctx, `SELECT failures, last_at FROM access_failures WHERE key = ?`, key).Scan(&failures, &last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return internal(err, "read failures")
	}
	if now-last > p.Window.Milliseconds() {
		failures = 0
	}
	failures++
	var until int64
	if failures >= int64(threshold) {
		lock := p.BaseLock
		for i := int64(threshold); i < failures && lock < p.MaxLock; i++ {
			lock *= 2
		}
		lock = min(lock, p.MaxLock)
		until = now + lock.Milliseconds()
		s.log.Warn("locked after failed attempts", "key", key, "failures", failures, "lock", lock)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO access_failures (key, failures, last_at, locked_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at, locked_until = excluded.locked_until`,
		key, failures, now, until); err != nil {
		return internal(err, "record failure")
	}
	return nil
}

// clearFailures forgets an account's failures after a successful login.
func clearFailures(ctx context.Context, tx *sql.Tx, kind Kind, name string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM access_failures WHERE key = ?`, accountKey(kind, name)); err != nil {
		return internal(err, "clear failures")
	}
	return nil
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
