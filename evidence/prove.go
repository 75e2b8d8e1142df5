package evidence

import (
	"context"
	"crypto"
	"database/sql"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/cms"
)

// Leaf is a stored entry with its position in the log.
type Leaf struct {
	// Index is the leaf's position, from 0.
	Index uint64 `json:"index"`
	// Entry is the decoded entry.
	Entry Entry `json:"entry"`
	// Data is the entry's canonical encoding, the input of the leaf hash.
	Data []byte `json:"leaf"`
}

// Evidence is what the log shows about a document: the newest entry naming
// it, and an RFC 9162 §2.1.3 inclusion proof of that entry's leaf in the
// tree of Checkpoint.Size leaves.
type Evidence struct {
	Leaf
	// InclusionProof is the audit path from the leaf to Checkpoint.Root.
	InclusionProof [][]byte `json:"inclusionProof"`
	// Checkpoint is the newest checkpoint, which the proof leads to.
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Prove returns the evidence for document h against the newest checkpoint.
// A document the log has never seen is evidence_not_found; one appended
// after the newest checkpoint is evidence_pending until the next one.
func (l *Log) Prove(ctx context.Context, h SHA256) (*Evidence, error) {
	leaves, err := l.Lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	if len(leaves) == 0 {
		return nil, fault.New(fault.NotFound, CodeNotFound, "no seal of document %s is in the evidence log", h)
	}
	cp, err := l.Latest(ctx)
	if err != nil && fault.CodeOf(err) != CodeNotFound {
		return nil, err
	}
	for _, lf := range leaves {
		if cp == nil || lf.Index >= cp.Size {
			continue
		}
		p, err := tlog.ProveRecord(int64(cp.Size), int64(lf.Index), l.hashReader(ctx))
		if err != nil {
			return nil, fmt.Errorf("evidence: prove leaf %d in %d: %w", lf.Index, cp.Size, err)
		}
		return &Evidence{Leaf: lf, InclusionProof: hashSlices(p), Checkpoint: cp}, nil
	}
	return nil, fault.New(fault.Unavailable, CodePending,
		"the seal of document %s (leaf %d) is not in a checkpoint yet; retry after the next one", h, leaves[0].Index)
}

// Consistency returns the RFC 9162 §2.1.4 consistency proof that the tree of
// size from is a prefix of the tree of size to. It needs 0 < from ≤ to ≤ the
// committed size (evidence_bad_range otherwise); from = to gives an empty proof.
func (l *Log) Consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from == 0 || from > to || to > l.Size() {
		return nil, fault.New(fault.Invalid, CodeBadRange,
			"consistency from %d to %d: want 0 < from ≤ to ≤ %d (the log size)", from, to, l.Size())
	}
	if from == to {
		return [][]byte{}, nil
	}
	p, err := tlog.ProveTree(int64(to), int64(from), l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("evidence: consistency %d→%d: %w", from, to, err)
	}
	return hashSlices(p), nil
}

func hashSlices(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// EvidenceRecord returns the DER RFC 4998 EvidenceRecord for document h:
// the archive timestamp chains of the checkpoint that first included h's
// newest checkpointed entry, with h's reduced hash tree in the first one.
// Without an archive timestamp yet (no Timestamper when the checkpoint was
// made, and no renewal since) it is evidence_record_unavailable.
func (l *Log) EvidenceRecord(ctx context.Context, h SHA256) ([]byte, error) {
	ev, err := l.Prove(ctx, h)
	if err != nil {
		return nil, err
	}
	var size, prev int64
	err = l.db.Read().QueryRowContext(ctx, `SELECT MIN(size) FROM evidence_checkpoints WHERE size > ?`, int64(ev.Index)).Scan(&size)
	if err == nil {
		err = l.db.Read().QueryRowContext(ctx, `SELECT COALESCE(MAX(size), 0) FROM evidence_checkpoints WHERE size < ?`, size).Scan(&prev)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: checkpoint of leaf %d: %w", ev.Index, err)
	}
	chains, err := l.archiveTimestamps(ctx, uint64(size))
	if err != nil {
		return nil, err
	}
	if len(chains) == 0 {
		return nil, fault.New(fault.Unavailable, CodeRecordUnavailable,
			"checkpoint %d holding document %s has no archive timestamp yet", size, h)
	}
	docs, err := l.documentHashes(ctx, uint64(prev), uint64(size))
	if err != nil {
		return nil, err
	}
	reduced := ersReduced(ersTree(crypto.SHA256, docs), h[:])
	if reduced == nil {
		return nil, fault.New(fault.Internal, CodeCorrupt, "document %s is not among the leaves of checkpoint %d", h, size)
	}
	return marshalRecord(chains, reduced)
}

// archiveTimestamps reads a checkpoint's chains, in order.
func (l *Log) archiveTimestamps(ctx context.Context, checkpoint uint64) ([][]storedATS, error) {
	rows, err := l.db.Read().QueryContext(ctx,
		`SELECT chain, digest, reduced, token FROM evidence_archive_timestamps WHERE checkpoint = ? ORDER BY chain, seq`, int64(checkpoint))
	if err != nil {
		return nil, fmt.Errorf("evidence: archive timestamps of %d: %w", checkpoint, err)
	}
	defer rows.Close()
	var chains [][]storedATS
	for rows.Next() {
		var chain int
		var name string
		var reduced, token []byte
		if err := rows.Scan(&chain, &name, &reduced, &token); err != nil {
			return nil, fmt.Errorf("evidence: archive timestamps of %d: %w", checkpoint, err)
		}
		h, _ := cms.HashByName(name)
		a := storedATS{hash: h, token: token}
		if reduced != nil {
			if a.reduced, err = unmarshalReduced(reduced); err != nil {
				return nil, fault.Wrap(err, fault.Internal, CodeCorrupt, "stored reduced hash tree of checkpoint %d", checkpoint)
			}
		}
		for len(chains) <= chain {
			chains = append(chains, nil)
		}
		chains[chain] = append(chains[chain], a)
	}
	return chains, rows.Err()
}

// Renew keeps archive timestamps verifiable past their TSA certificate's
// life (RFC 4998 §5.2, timestamp renewal). For every checkpoint whose newest
// archive timestamp was made before olderThan, it hashes that timestamp's
// DER token, builds one hash tree over all those hashes, has the root
// timestamped and appends to each checkpoint's chain an ArchiveTimeStamp
// with its reduced hash tree. Checkpoints that have no archive timestamp
// yet (made while the TSA was down or not configured) get their first one.
// It returns how many checkpoints it covered.
func (l *Log) Renew(ctx context.Context, olderThan time.Time) (int, error) {
	if l.opts.Timestamper == nil {
		return 0, fault.New(fault.Unavailable, CodeRecordUnavailable, "renewing archive timestamps needs a timestamp authority")
	}
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	missing, err := l.missingArchiveTimestamps(ctx)
	if err != nil {
		return 0, err
	}
	for _, m := range missing {
		a, root, err := l.firstATS(ctx, m[0], m[1])
		if err == nil {
			err = l.db.Write(ctx, func(tx *sql.Tx) error { return insertATS(ctx, tx, m[1], 0, 0, a, root) })
		}
		if err != nil {
			return 0, err
		}
	}
	l.missingATS.Store(false)
	due, err := l.dueArchiveTimestamps(ctx, olderThan)
	if err != nil || len(due) == 0 {
		return len(missing), err
	}
	leaves := make([][]byte, len(due))
	for i, d := range due {
		leaves[i] = d.leaf
	}
	levels := ersTree(crypto.SHA256, leaves)
	root := levels[len(levels)-1][0]
	tok, err := l.timestampDigest(ctx, crypto.SHA256, root)
	if err != nil {
		return len(missing), err
	}
	err = l.db.Write(ctx, func(tx *sql.Tx) error {
		for _, d := range due {
			a := storedATS{hash: crypto.SHA256, reduced: ersReduced(levels, d.leaf), token: tok}
			if err := insertATS(ctx, tx, d.checkpoint, d.chain, d.seq, a, root); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return len(missing), err
	}
	return len(missing) + len(due), nil
}

// missingArchiveTimestamps lists, as (previous size, size), the checkpoints
// without any archive timestamp.
func (l *Log) missingArchiveTimestamps(ctx context.Context) ([][2]uint64, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT c.size,
		(SELECT COALESCE(MAX(p.size), 0) FROM evidence_checkpoints p WHERE p.size < c.size)
		FROM evidence_checkpoints c
		WHERE NOT EXISTS (SELECT 1 FROM evidence_archive_timestamps a WHERE a.checkpoint = c.size)
		ORDER BY c.size`)
	if err != nil {
		return nil, fmt.Errorf("evidence: checkpoints without archive timestamp: %w", err)
	}
	defer rows.Close()
	var out [][2]uint64
	for rows.Next() {
		var size, prev int64
		if err := rows.Scan(&size, &prev); err != nil {
			return nil, fmt.Errorf("evidence: checkpoints without archive timestamp: %w", err)
		}
		out = append(out, [2]uint64{uint64(prev), uint64(size)})
	}
	return out, rows.Err()
}

// dueATS is a chain whose newest archive timestamp is due for renewal.
type dueATS struct {
	checkpoint uint64
	chain, seq int    // position of the new timestamp
	leaf       []byte // SHA-256 of the newest timestamp's token
}

// dueArchiveTimestamps finds the chains whose newest archive timestamp was
// made before olderThan (made_at is in storedTime format).
func (l *Log) dueArchiveTimestamps(ctx context.Context, olderThan time.Time) ([]dueATS, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT a.checkpoint, a.chain, a.seq, a.token
		FROM evidence_archive_timestamps a
		WHERE a.made_at < ? AND NOT EXISTS (SELECT 1 FROM evidence_archive_timestamps b
			WHERE b.checkpoint = a.checkpoint AND (b.chain > a.chain OR b.chain = a.chain AND b.seq > a.seq))
		ORDER BY a.checkpoint`, olderThan.UTC().Format(storedTime))
	if err != nil {
		return nil, fmt.Errorf("evidence: archive timestamps due: %w", err)
	}
	defer rows.Close()
	var out []dueATS
	for rows.Next() {
		var cp int64
		var chain, seq int
		var token []byte
		if err := rows.Scan(&cp, &chain, &seq, &token); err != nil {
			return nil, fmt.Errorf("evidence: archive timestamps due: %w", err)
		}
		out = append(out, dueATS{uint64(cp), chain, seq + 1, digest(crypto.SHA256, token)})
	}
	return out, rows.Err()
}

// firstATS timestamps the RFC 4998 hash tree over the documents of leaves
// [prev, size), the initial archive timestamp of checkpoint size.
func (l *Log) firstATS(ctx context.Context, prev, size uint64) (storedATS, []byte, error) {
	docs, err := l.documentHashes(ctx, prev, size)
	if err != nil {
		return storedATS{}, nil, err
	}
	levels := ersTree(crypto.SHA256, docs)
	root := levels[len(levels)-1][0]
	tok, err := l.timestampDigest(ctx, crypto.SHA256, root)
	if err != nil {
		return storedATS{}, nil, err
	}
	return storedATS{hash: crypto.SHA256, token: tok}, root, nil
}
