package evidence

import (
	"context"
	"crypto"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
)

// Checkpoint is a signed statement of the log's state: the tree of Size
// leaves has root hash Root. Its Note is the C2SP / sumdb signed-note text
//
//	<origin>
//	<size in decimal>
//	<base64 root hash>
//	<time, RFC 3339 UTC>
//
//	— <origin> <base64(key hash ‖ Ed25519 signature)>
//
// Seal (CAdES, detached) and Timestamp (RFC 3161, over SHA-256) both cover
// Note byte for byte, signature lines included.
type Checkpoint struct {
	// Origin names the log (first note line and log key name).
	Origin string `json:"origin"`
	// Size is the number of leaves covered.
	Size uint64 `json:"size"`
	// Root is the RFC 9162 root hash of those leaves.
	Root []byte `json:"root"`
	// Time is when the checkpoint was made, to the second.
	Time time.Time `json:"time"`
	// Note is the signed note; the fields above are parsed from it.
	Note string `json:"note"`
	// Seal is the organisation's detached CAdES signature over Note, when sealed.
	Seal []byte `json:"seal,omitempty"`
	// Timestamp is an RFC 3161 token over SHA-256(Note), when timestamped.
	Timestamp []byte `json:"timestamp,omitempty"`
}

// noteText is the unsigned body of a checkpoint note.
func noteText(origin string, size uint64, root tlog.Hash, t time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]), t.UTC().Format(time.RFC3339))
}

// ParseCheckpoint opens a signed checkpoint note, checking its signature
// with the log's verifier key (see Log.VerifierKey), and returns its fields.
// A bad or missing signature is checkpoint_signature_invalid.
func ParseCheckpoint(signed []byte, verifierKey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeSignatureInvalid, "the log verifier key %q is malformed", verifierKey)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeSignatureInvalid, "the checkpoint is not signed by log key %s", v.Name())
	}
	lines := strings.Split(n.Text, "\n")
	bad := func(why string) error {
		return fault.New(fault.Invalid, CodeSignatureInvalid, "the checkpoint text %q is malformed: %s", n.Text, why)
	}
	if len(lines) != 5 || lines[4] != "" {
		return nil, bad("want 4 lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, bad("size")
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		return nil, bad("root hash")
	}
	t, err := time.Parse(time.RFC3339, lines[3])
	if err != nil {
		return nil, bad("time")
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root, Time: t, Note: string(signed)}, nil
}

// Checkpoint makes a checkpoint of the committed tree if it has grown since
// the latest one, and returns the latest checkpoint either way. When a
// Sealer or Timestamper is configured it seals and timestamps the note, and
// with a Timestamper also issues the RFC 4998 archive timestamp over the
// documents new in this checkpoint; if the card or the TSA fails, the
// checkpoint is made without (and the failure logged). After a bulk load it
// makes several checkpoints, each covering at most 2^20 new leaves. On an
// empty log it fails with evidence_not_found.
func (l *Log) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	latest, err := l.Latest(ctx)
	if err != nil && fault.CodeOf(err) != CodeNotFound {
		return nil, err
	}
	size := l.Size()
	if latest != nil && latest.Size >= size {
		return latest, nil
	}
	var prev uint64
	if latest != nil {
		prev = latest.Size
	}
	// Checkpoints cover at most checkpointStep new leaves each, so the
	// RFC 4998 tree over their documents stays small after a bulk load.
	// An empty log publishes the empty tree's checkpoint, as RFC 6962 logs
	// do: the log answers at once, and later checkpoints extend it.
	for {
		cp, err := l.makeCheckpoint(ctx, prev, min(size, prev+l.checkpointStep))
		if err != nil || cp.Size == size {
			return cp, err
		}
		prev = cp.Size
	}
}

// makeCheckpoint makes the checkpoint of tree size size, the previous
// checkpoint being of size prev.
func (l *Log) makeCheckpoint(ctx context.Context, prev, size uint64) (*Checkpoint, error) {
	root, err := tlog.TreeHash(int64(size), l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("evidence: tree hash at %d: %w", size, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	signed, err := note.Sign(&note.Note{Text: noteText(l.opts.Origin, size, root, now)}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("evidence: sign checkpoint: %w", err)
	}
	cp := &Checkpoint{Origin: l.opts.Origin, Size: size, Root: root[:], Time: now, Note: string(signed)}
	// A card or TSA outage must not stop the log from publishing signed
	// checkpoints: they are made without seal or timestamp, and the missing
	// archive timestamp is issued later (Run, Renew).
	if l.opts.Sealer != nil {
		if cp.Seal, err = l.opts.Sealer(ctx, signed); err != nil {
			l.opts.Logger.Error("evidence checkpoint left unsealed", "size", size, "err", err)
		}
	}
	var ats *storedATS
	var atsRoot []byte
	if l.opts.Timestamper != nil {
		if cp.Timestamp, err = l.timestamp(ctx, crypto.SHA256, signed); err != nil {
			l.opts.Logger.Error("evidence checkpoint left without timestamp", "size", size, "err", err)
		}
	}
	// The empty tree's checkpoint has no documents to archive-timestamp.
	if l.opts.Timestamper != nil && size > 0 {
		a, root, err := l.firstATS(ctx, prev, size)
		if err != nil {
			l.opts.Logger.Error("evidence archive timestamp postponed", "size", size, "err", err)
			l.missingATS.Store(true)
		} else {
			ats, atsRoot = &a, root
		}
	}
	err = l.db.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO evidence_checkpoints (size, root, made_at, note, seal, timestamp) VALUES (?, ?, ?, ?, ?, ?)`,
			int64(size), cp.Root, now.Format(time.RFC3339), signed, cp.Seal, cp.Timestamp); err != nil {
			return fmt.Errorf("evidence: store checkpoint %d: %w", size, err)
		}
		if ats != nil {
			return insertATS(ctx, tx, size, 0, 0, *ats, atsRoot)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// storedTime is the fixed-width UTC time format of stored timestamps, so
// that their text order is their time order.
const storedTime = "2006-01-02T15:04:05.000000000Z"

// insertATS stores one archive timestamp of a checkpoint's chain.
func insertATS(ctx context.Context, tx *sql.Tx, checkpoint uint64, chain, seq int, a storedATS, root []byte) error {
	var reduced []byte
	if a.reduced != nil {
		var err error
		if reduced, err = marshalReduced(a.reduced); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO evidence_archive_timestamps (checkpoint, chain, seq, digest, root, reduced, token, made_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(checkpoint), chain, seq, cms.HashName(a.hash), root, reduced, a.token, time.Now().UTC().Format(storedTime))
	if err != nil {
		return fmt.Errorf("evidence: store archive timestamp of checkpoint %d: %w", checkpoint, err)
	}
	return nil
}

// timestamp obtains a token over h(data).
func (l *Log) timestamp(ctx context.Context, h crypto.Hash, data []byte) ([]byte, error) {
	return l.timestampDigest(ctx, h, digest(h, data))
}

func (l *Log) timestampDigest(ctx context.Context, h crypto.Hash, d []byte) ([]byte, error) {
	tok, err := l.opts.Timestamper.Timestamp(ctx, d, h)
	if err != nil {
		if fault.As(err) != nil {
			return nil, err
		}
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTimestampFailed, "the timestamp authority did not timestamp log data")
	}
	return tok, nil
}

// documentHashes returns the RFC 4998 data-object hashes of leaves
// [from, to): each entry's sealed document digest and, when it differs, its
// original document digest, in log order.
func (l *Log) documentHashes(ctx context.Context, from, to uint64) ([][]byte, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT entry FROM evidence_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("evidence: read leaves: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("evidence: read leaves: %w", err)
		}
		var e Entry
		if err := e.UnmarshalBinary(data); err != nil {
			return nil, fault.Wrap(err, fault.Internal, CodeCorrupt, "a stored leaf between %d and %d does not decode", from, to)
		}
		out = append(out, e.documents()...)
	}
	return out, rows.Err()
}

// documents are the entry's RFC 4998 data-object hashes.
func (e Entry) documents() [][]byte {
	if e.OriginalSHA256 == e.SealedSHA256 {
		return [][]byte{e.SealedSHA256[:]}
	}
	return [][]byte{e.SealedSHA256[:], e.OriginalSHA256[:]}
}

const checkpointColumns = `size, made_at, note, seal, timestamp`

func (l *Log) scanCheckpoint(row *sql.Row) (*Checkpoint, error) {
	var size int64
	var madeAt string
	var signed, seal, ts []byte
	if err := row.Scan(&size, &madeAt, &signed, &seal, &ts); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fault.New(fault.NotFound, CodeNotFound, "the evidence log %s has no such checkpoint", l.opts.Origin)
		}
		return nil, fmt.Errorf("evidence: read checkpoint: %w", err)
	}
	// The stored note is the authority: it is parsed (and its signature
	// checked) rather than trusting the other columns.
	cp, err := ParseCheckpoint(signed, l.vkey)
	if err != nil {
		return nil, fault.Wrap(err, fault.Internal, CodeCorrupt, "stored checkpoint %d fails its signature", size)
	}
	if cp.Size != uint64(size) {
		return nil, fault.New(fault.Internal, CodeCorrupt, "stored checkpoint %d says size %d", size, cp.Size)
	}
	cp.Seal, cp.Timestamp = seal, ts
	return cp, nil
}

// Latest returns the newest checkpoint (evidence_not_found if none yet).
func (l *Log) Latest(ctx context.Context) (*Checkpoint, error) {
	return l.scanCheckpoint(l.db.Read().QueryRowContext(ctx,
		`SELECT `+checkpointColumns+` FROM evidence_checkpoints ORDER BY size DESC LIMIT 1`))
}

// CheckpointAt returns the checkpoint of tree size size (evidence_not_found
// if none was made at that size).
func (l *Log) CheckpointAt(ctx context.Context, size uint64) (*Checkpoint, error) {
	return l.scanCheckpoint(l.db.Read().QueryRowContext(ctx,
		`SELECT `+checkpointColumns+` FROM evidence_checkpoints WHERE size = ?`, int64(size)))
}

// Checkpoints lists the sizes of all checkpoints, oldest first.
func (l *Log) Checkpoints(ctx context.Context) ([]uint64, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT size FROM evidence_checkpoints ORDER BY size`)
	if err != nil {
		return nil, fmt.Errorf("evidence: list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("evidence: list checkpoints: %w", err)
		}
		out = append(out, uint64(s))
	}
	return out, rows.Err()
}

// Run makes a checkpoint at start and then every CheckpointInterval while
// there are new leaves, and renews archive timestamps older than RenewAfter (when set)
// once a day, until ctx ends. Failures are logged and retried at the next
// tick; Run returns ctx's error.
func (l *Log) Run(ctx context.Context) error {
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	var lastRenewal time.Time
	// The first checkpoint is made at start, not an interval later: a fresh
	// log publishes its empty tree, a restarted one what it appended last.
	for {
		if _, err := l.Checkpoint(ctx); err != nil {
			l.opts.Logger.Error("evidence checkpoint failed", "err", err)
		}
		if l.missingATS.Load() {
			// Renewing nothing older than the zero time only issues the
			// archive timestamps checkpoints are missing.
			if _, err := l.Renew(ctx, time.Time{}); err != nil {
				l.opts.Logger.Error("evidence archive timestamps still missing", "err", err)
			}
		}
		if l.opts.RenewAfter > 0 && l.opts.Timestamper != nil && time.Since(lastRenewal) > 24*time.Hour {
			lastRenewal = time.Now()
			if n, err := l.Renew(ctx, time.Now().Add(-l.opts.RenewAfter)); err != nil {
				l.opts.Logger.Error("evidence renewal failed", "err", err)
			} else if n > 0 {
				l.opts.Logger.Info("evidence archive timestamps renewed", "checkpoints", n)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
