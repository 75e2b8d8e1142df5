package evidence

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/sealgate/sealgate/fault"
)

// SHA256 is a SHA-256 digest. It is written as lowercase hex in JSON and
// text, the way document hashes appear in URLs and on the portal.
type SHA256 [sha256.Size]byte

// String returns the digest in lowercase hex.
func (h SHA256) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the digest as lowercase hex.
func (h SHA256) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex digest (either case).
func (h *SHA256) UnmarshalText(b []byte) error {
	d, err := ParseSHA256(string(b))
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// ParseSHA256 decodes a SHA-256 digest written in hex (64 digits).
func ParseSHA256(s string) (SHA256, error) {
	var h SHA256
	if len(s) != 2*len(h) {
		return h, fault.New(fault.Invalid, CodeBadDigest, "%q is not a SHA-256 digest: want 64 hex digits", s)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fault.New(fault.Invalid, CodeBadDigest, "%q is not a SHA-256 digest: want 64 hex digits", s)
	}
	return h, nil
}

// EntryVersion is the version of the entry encoding this package writes.
const EntryVersion = 1

// Formats an entry may record: a seal (cades, pades), or an anchor of
// sealgate's audit trail (audit-head: SealedSHA256 is the hash of the
// trail's newest event, SealID is "audit-trail/<event count>", Level is
// empty), so that deleting or rewriting audit events is detectable against
// the published log.
const (
	FormatCAdES     = "cades"
	FormatPAdES     = "pades"
	FormatAuditHead = "audit-head"
)

// maxSealID bounds Entry.SealID so a leaf stays small.
const maxSealID = 255

// formatCodes are the one-byte codes of Entry.Format in the encoding.
var formatCodes = map[string]byte{FormatCAdES: 1, FormatPAdES: 2, FormatAuditHead: 3}

// levels are the ETSI baseline levels an entry may record.
var levels = map[string]bool{"B-B": true, "B-T": true, "B-LT": true, "B-LTA": true}

// Entry is what the log records about one seal. It holds digests and
// identifiers only: no document content and no personal data (the
// principal appears as a keyed hash, see Log.PrincipalHash).
type Entry struct {
	// Version is the encoding version; 0 means EntryVersion.
	Version int `json:"version"`
	// SealedSHA256 is the digest of the sealed document (the signed PDF, or
	// the detached .p7s for CAdES).
	SealedSHA256 SHA256 `json:"sealedSha256"`
	// OriginalSHA256 is the digest of the document as it was handed in.
	OriginalSHA256 SHA256 `json:"originalSha256"`
	// SealID names the seal (key) that signed.
	SealID string `json:"sealId"`
	// SignerCertSHA256 is the digest of the seal certificate's DER.
	SignerCertSHA256 SHA256 `json:"signerCertSha256"`
	// Format is "cades" or "pades" (or "audit-head" for an audit anchor).
	Format string `json:"format"`
	// Level is the ETSI baseline level: B-B, B-T, B-LT or B-LTA (empty for
	// an audit anchor).
	Level string `json:"level"`
	// Time is when the seal was made; it is recorded to the millisecond.
	Time time.Time `json:"time"`
	// PrincipalHash is HMAC-SHA-256 of the principal's id under the
	// installation's key.
	PrincipalHash SHA256 `json:"principalHash"`
}

// MarshalBinary returns the canonical encoding of e, which is the leaf data
// hashed into the log (RFC 6962 §2.1: leaf hash = SHA-256(0x00 ‖ encoding)).
//
// Version 1 is, with integers big-endian:
//
//	offset size  field
//	     0    1  version (1)
//	     1   32  SealedSHA256
//	    33   32  OriginalSHA256
//	    65   32  SignerCertSHA256
//	    97   32  PrincipalHash
//	   129    8  Time as signed Unix milliseconds (UTC)
//	   137    1  Format: 1 = cades, 2 = pades, 3 = audit-head
//	   138    1  length L of Level, then L bytes of ASCII Level
//	 139+L    1  length S of SealID (1..255), then S bytes of UTF-8 SealID
//
// There is exactly one encoding per entry: UnmarshalBinary rejects anything
// MarshalBinary would not have written, so equal entries have equal hashes.
func (e Entry) MarshalBinary() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 140+len(e.Level)+len(e.SealID))
	b = append(b, EntryVersion)
	b = append(b, e.SealedSHA256[:]...)
	b = append(b, e.OriginalSHA256[:]...)
	b = append(b, e.SignerCertSHA256[:]...)
	b = append(b, e.PrincipalHash[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	b = append(b, formatCodes[e.Format])
	b = append(b, byte(len(e.Level)))
	b = append(b, e.Level...)
	b = append(b, byte(len(e.SealID)))
	b = append(b, e.SealID...)
	return b, nil
}

// check reports why e cannot be encoded, naming the field.
func (e Entry) check() error {
	switch {
	case e.Version != 0 && e.Version != EntryVersion:
		return fault.New(fault.Invalid, CodeBadEntry, "entry version %d is not supported (want %d)", e.Version, EntryVersion)
	case formatCodes[e.Format] == 0:
		return fault.New(fault.Invalid, CodeBadEntry, "entry format %q is not cades, pades or audit-head", e.Format)
	case e.Format == FormatAuditHead && e.Level != "":
		return fault.New(fault.Invalid, CodeBadEntry, "an audit anchor has no level (got %q)", e.Level)
	case e.Format != FormatAuditHead && !levels[e.Level]:
		return fault.New(fault.Invalid, CodeBadEntry, "entry level %q is not B-B, B-T, B-LT or B-LTA", e.Level)
	case e.SealID == "" || len(e.SealID) > maxSealID || !utf8.ValidString(e.SealID):
		return fault.New(fault.Invalid, CodeBadEntry, "entry seal id %q must be 1 to %d bytes of UTF-8", e.SealID, maxSealID)
	case e.Time.IsZero():
		return fault.New(fault.Invalid, CodeBadEntry, "entry for document %s has no time", e.SealedSHA256)
	}
	return nil
}

// UnmarshalBinary decodes the canonical encoding written by MarshalBinary.
func (e *Entry) UnmarshalBinary(b []byte) error {
	bad := func(why string) error {
		return fault.New(fault.Invalid, CodeBadEntry, "entry encoding of %d bytes: %s", len(b), why)
	}
	if len(b) < 140 {
		return bad("too short")
	}
	if b[0] != EntryVersion {
		return bad(fmt.Sprintf("version %d is not supported", b[0]))
	}
	var d Entry
	d.Version = EntryVersion
	copy(d.SealedSHA256[:], b[1:33])
	copy(d.OriginalSHA256[:], b[33:65])
	copy(d.SignerCertSHA256[:], b[65:97])
	copy(d.PrincipalHash[:], b[97:129])
	d.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(b[129:137]))).UTC()
	for name, code := range formatCodes {
		if code == b[137] {
			d.Format = name
		}
	}
	rest := b[138:]
	n := int(rest[0])
	if len(rest) < 1+n+1 {
		return bad("truncated level")
	}
	d.Level, rest = string(rest[1:1+n]), rest[1+n:]
	n = int(rest[0])
	if len(rest) != 1+n {
		return bad("seal id length does not match")
	}
	d.SealID = string(rest[1:])
	if err := d.check(); err != nil {
		return bad(err.(*fault.Error).Msg)
	}
	*e = d
	return nil
}

// principalHash is HMAC-SHA-256(key, id): a stable pseudonym that lets the
// installation (which holds key) recognise a principal's seals while the
// public log reveals nothing about who sealed.
func principalHash(key []byte, id string) SHA256 {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	var h SHA256
	copy(h[:], m.Sum(nil))
	return h
}
