package access

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/store"
)

// TOTP shared secrets are stored sealed with AES-256-GCM under the secrets
// key, which is kept outside the database, so a copy of the database or of
// a backup yields no working second factor. The user id and the column are
// the additional data: a value copied to another user or column does not
// open.
const (
	// CodeSecretsKeyInvalid reports a secrets key that cannot be read or is
	// not 32 bytes written as 64 hex digits.
	CodeSecretsKeyInvalid fault.Code = "secrets_key_invalid"
	// CodeSecretsKeyMismatch reports a sealed value that does not open with
	// the secrets key: the database was sealed under another key.
	CodeSecretsKeyMismatch fault.Code = "secrets_key_mismatch"
)

const (
	secretsKeyBytes = 32
	// sealedV1 starts a value sealed as base64(nonce || ciphertext || tag).
	sealedV1 = "v1:"

	colTOTPSecret  = "totp_secret"
	colTOTPPending = "totp_pending"
)

// secretBox seals and opens per-user column values.
type secretBox struct {
	aead cipher.AEAD
	// from names the key's source in errors (never the key).
	from string
}

func newSecretBox(key []byte, from string) (*secretBox, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, internal(err, "secrets key cipher")
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, internal(err, "secrets key cipher")
	}
	return &secretBox{aead: aead, from: from}, nil
}

func additionalData(userID int64, column string) []byte {
	return fmt.Appendf(nil, "sealgate access_users.%s id=%d", column, userID)
}

// seal returns the stored form of plain for the user's column.
func (b *secretBox) seal(userID int64, column, plain string) string {
	return sealedV1 + base64.StdEncoding.EncodeToString(b.aead.Seal(nil, nil, []byte(plain), additionalData(userID, column)))
}

// open returns the value of u's column from its stored form.
func (b *secretBox) open(u *userRow, column, stored string) (string, error) {
	raw, ok := strings.CutPrefix(stored, sealedV1)
	if !ok {
		return "", fault.New(fault.Internal, CodeSecretsKeyMismatch,
			"the TOTP key (%s) of user %q is not sealed in a form this sealgate knows; a restart seals keys stored in clear", column, u.Login)
	}
	ct, err := base64.StdEncoding.DecodeString(raw)
	if err == nil {
		var plain []byte
		if plain, err = b.aead.Open(nil, nil, ct, additionalData(u.ID, column)); err == nil {
			return string(plain), nil
		}
	}
	return "", fault.New(fault.Internal, CodeSecretsKeyMismatch,
		"the TOTP key (%s) of user %q does not open with the secrets key from %s: it was sealed under another key (restore that key, or reset the user's TOTP)",
		column, u.Login, b.from)
}

// isPlain tells a TOTP secret stored in clear by an earlier sealgate
// (base32, which has no colon) from a sealed one ("v1:...").
func isPlain(v string) bool { return v != "" && !strings.Contains(v, ":") }

// sealPlainSecrets seals, in one transaction, the TOTP secrets that an
// earlier sealgate stored in clear; sealed ones are left as they are.
func (s *Service) sealPlainSecrets(ctx context.Context) error {
	type plainRow struct {
		id              int64
		secret, pending string
	}
	n := 0
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, totp_secret, totp_pending FROM access_users
			WHERE (totp_secret <> '' AND instr(totp_secret, ':') = 0) OR (totp_pending <> '' AND instr(totp_pending, ':') = 0)`)
		if err != nil {
			return internal(err, "read clear totp keys")
		}
		var todo []plainRow
		for rows.Next() {
			var r plainRow
			if err := rows.Scan(&r.id, &r.secret, &r.pending); err != nil {
				rows.Close()
				return internal(err, "read clear totp keys")
			}
			todo = append(todo, r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return internal(err, "read clear totp keys")
		}
		for _, r := range todo {
			if isPlain(r.secret) {
				r.secret = s.box.seal(r.id, colTOTPSecret, r.secret)
				n++
			}
			if isPlain(r.pending) {
				r.pending = s.box.seal(r.id, colTOTPPending, r.pending)
				n++
			}
			if _, err := tx.ExecContext(ctx, `UPDATE access_users SET totp_secret = ?, totp_pending = ? WHERE id = ?`, r.secret, r.pending, r.id); err != nil {
				return internal(err, "seal totp key")
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Info("sealed TOTP keys stored in clear by an earlier sealgate", "keys", n, "secretsKey", s.box.from)
	}
	return nil
}

// openSecretsKey reads the secrets key from opts.SecretsKey, or else from
// opts.SecretsKeyFile, which it creates with a new random key when missing.
func openSecretsKey(ctx context.Context, db *store.DB, opts Options) (*secretBox, error) {
	ref := opts.SecretsKey
	if ref.IsZero() {
		if err := ensureKeyFile(ctx, db, opts); err != nil {
			return nil, err
		}
		ref = secret.Ref{File: opts.SecretsKeyFile}
	}
	v, err := ref.Value()
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeSecretsKeyInvalid, "cannot read the secrets key (access.secretsKey) from %s", ref)
	}
	// The decoder's error would quote a byte of the key: it is not passed on.
	key, err := hex.DecodeString(strings.TrimSpace(string(v)))
	if err != nil || len(key) != secretsKeyBytes {
		return nil, fault.New(fault.Invalid, CodeSecretsKeyInvalid, "the secrets key in %s must be %d bytes written as %d hex digits",
			ref, secretsKeyBytes, 2*secretsKeyBytes)
	}
	return newSecretBox(key, ref.String())
}

// ensureKeyFile creates opts.SecretsKeyFile with a new random key when it
// is missing, unless the database already holds values sealed under a key:
// a new key would not open them, so the missing file (a database restored
// without its key, another data directory) is an error.
func ensureKeyFile(ctx context.Context, db *store.DB, opts Options) error {
	path := opts.SecretsKeyFile
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil // the file is read next, which reports any other error
	}
	var sealed bool
	if err := db.Read().QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM access_users
		WHERE instr(totp_secret, ':') > 0 OR instr(totp_pending, ':') > 0)`).Scan(&sealed); err != nil {
		return internal(err, "look for sealed totp keys")
	}
	if sealed {
		return fault.New(fault.Invalid, CodeSecretsKeyInvalid,
			"the secrets key file %s is missing, but the database holds TOTP keys sealed under a secrets key: restore the file or set access.secretsKey (a new key would not open them)", path)
	}
	created, err := createKeyFile(path)
	if err != nil {
		return fault.Wrap(err, fault.Internal, CodeSecretsKeyInvalid, "cannot create the secrets key file %s", path)
	}
	if created {
		opts.Logger.Warn("created a new secrets key, which seals TOTP keys in the database; back it up apart from the database",
			"file", path)
	}
	return nil
}

// createKeyFile writes a new random key to path (mode 0600) unless the file
// exists, and reports whether it did. The key is written to a temporary
// file first and linked into place, so a second sealgate starting at the
// same moment reads either no file or a whole key, and both use the same.
func createKeyFile(path string) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, ".secrets.key-*") // mode 0600
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, secretsKeyBytes)
	rand.Read(key) // never fails: crypto/rand ends the program instead
	_, err = tmp.WriteString(hex.EncodeToString(key) + "\n")
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}
