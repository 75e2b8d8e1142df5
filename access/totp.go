package access

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"image/png"
	"strings"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"

	"github.com/sealgate/sealgate/fault"
)

// TOTP follows RFC 6238 with the parameters every authenticator app
// supports: SHA-1, 6 digits, 30 s steps; one step of clock skew either way.
const (
	totpPeriod   = 30
	totpSkew     = 1
	recoveryN    = 10
	recoveryBits = 80
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrollment is what a user scans into an authenticator app.
type TOTPEnrollment struct {
	// URL is the otpauth:// key URI.
	URL string `json:"url"`
	// QRCode is a PNG image of URL.
	QRCode []byte `json:"qrCode"`
}

// EnrollTOTP starts (or restarts) TOTP enrollment for a user. The new key
// is pending until ConfirmTOTP proves the user's app produces its codes; an
// existing key keeps working until then. Keys are stored sealed under the
// secrets key (see Options.SecretsKey).
func (s *Service) EnrollTOTP(ctx context.Context, login, actor string) (TOTPEnrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.TOTPIssuer, AccountName: login, Period: totpPeriod,
		Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm})
	if err != nil {
		return TOTPEnrollment{}, internal(err, "generate totp key")
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return TOTPEnrollment{}, internal(err, "draw totp qr code")
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return TOTPEnrollment{}, internal(err, "encode totp qr code")
	}
	err = s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupUserID(ctx, tx, login)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_users SET totp_pending = ? WHERE id = ?`, s.box.seal(id, colTOTPPending, key.Secret()), id); err != nil {
			return internal(err, "store totp key")
		}
		return audit(Event{Type: "user.totp.enroll", Actor: actor, Subject: "user:" + login})
	})
	if err != nil {
		return TOTPEnrollment{}, err
	}
	return TOTPEnrollment{URL: key.URL(), QRCode: buf.Bytes()}, nil
}

// ConfirmTOTP activates the pending key when code is one of its current
// codes, and returns fresh one-time recovery codes (shown once, stored hashed).
func (s *Service) ConfirmTOTP(ctx context.Context, login, code, actor string) ([]string, error) {
	codes := make([]string, recoveryN)
	for i := range codes {
		codes[i] = newRecoveryCode()
	}
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		u, err := loadUser(ctx, tx, login)
		if err != nil {
			return err
		}
		if u.totpPending == "" {
			return fault.New(fault.Conflict, CodeTOTPEnrollment, "user %q has no pending TOTP enrollment", login)
		}
		pending, err := s.box.open(u, colTOTPPending, u.totpPending)
		if err != nil {
			return err
		}
		step, ok, _ := matchTOTP(pending, code, s.now().Unix(), 0)
		if !ok {
			return fault.New(fault.Invalid, CodeTOTPInvalid, "the code does not match the new TOTP key of user %q", login)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_users SET totp_secret = ?, totp_pending = '', totp_last_step = ? WHERE id = ?`,
			s.box.seal(u.ID, colTOTPSecret, pending), step, u.ID); err != nil {
			return internal(err, "activate totp key")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_recovery_codes WHERE user_id = ?`, u.ID); err != nil {
			return internal(err, "replace recovery codes")
		}
		for _, c := range codes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO access_recovery_codes (user_id, hash) VALUES (?, ?)`, u.ID, recoveryHash(c)); err != nil {
				return internal(err, "store recovery code")
			}
		}
		return audit(Event{Type: "user.totp.confirm", Actor: actor, Subject: "user:" + login})
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// ResetTOTP removes a user's TOTP key and recovery codes (a lost phone).
func (s *Service) ResetTOTP(ctx context.Context, login, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		id, err := lookupUserID(ctx, tx, login)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_users SET totp_secret = '', totp_pending = '', totp_last_step = 0 WHERE id = ?`, id); err != nil {
			return internal(err, "reset totp")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM access_recovery_codes WHERE user_id = ?`, id); err != nil {
			return internal(err, "reset recovery codes")
		}
		return audit(Event{Type: "user.totp.reset", Actor: actor, Subject: "user:" + login})
	})
}

// matchTOTP returns the time step (Unix seconds / 30) whose code equals
// code, within the allowed skew, and only if that step is later than
// lastStep: a code, once used, is refused when replayed, and replayed
// reports that case (the code was right, but used already).
func matchTOTP(secret, code string, unix, lastStep int64) (step int64, ok, replayed bool) {
	now := unix / totpPeriod
	for step := now - totpSkew; step <= now+totpSkew; step++ {
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), totpOpts)
		if err != nil {
			return 0, false, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if step <= lastStep {
				replayed = true
				continue
			}
			return step, true, false
		}
	}
	return 0, false, replayed
}

// verifySecondFactor checks code as a TOTP code, or else as an unused
// recovery code, and records its use in tx so it cannot be used again.
// When the TOTP key does not open (another secrets key), recovery codes,
// which are hashed, still work; anything else gets secrets_key_mismatch.
// A code used already gets totp_replayed: it proves the caller saw a right
// code, so it is no guess and callers do not count it as a failure.
func (s *Service) verifySecondFactor(ctx context.Context, tx *sql.Tx, u *userRow, code string) (bool, error) {
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT totp_last_step FROM access_users WHERE id = ?`, u.ID).Scan(&last); err != nil {
		return false, internal(err, "read totp state")
	}
	secret, openErr := s.box.open(u, colTOTPSecret, u.totpSecret)
	replayed := false
	if openErr == nil {
		step, ok, again := matchTOTP(secret, code, s.now().Unix(), last)
		replayed = again
		if ok {
			if _, err := tx.ExecContext(ctx, `UPDATE access_users SET totp_last_step = ? WHERE id = ?`, step, u.ID); err != nil {
				return false, internal(err, "record totp step")
			}
			return true, nil
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE access_recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL`,
		s.nowMS(), u.ID, recoveryHash(normalizeRecovery(code)))
	if err != nil {
		return false, internal(err, "use recovery code")
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	if replayed {
		s.log.Warn("TOTP code replayed", "principal", "user:"+u.Login)
		return false, fault.New(fault.Unauthenticated, CodeTOTPReplayed, "the TOTP code for user %q was used already; wait for the next code", u.Login)
	}
	return false, openErr
}

// Recovery codes carry 80 random bits, so an unsalted SHA-256 is enough to
// keep them unusable if the table leaks.
func newRecoveryCode() string {
	b := make([]byte, recoveryBits/8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	s := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return s[:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:]
}

func normalizeRecovery(code string) string {
	c := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
	if len(c) != 16 {
		return c
	}
	return c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
}

func recoveryHash(code string) []byte {
	h := sha256.Sum256([]byte(code))
	return h[:]
}
