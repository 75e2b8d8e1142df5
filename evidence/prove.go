package evidence

import (
	"context"
	"crypto"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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

// Evidence is what the log shows about a document: an entry naming it, and
// an RFC 9162 §2.1.3 inclusion proof of that entry's leaf in the tree of
// Checkpoint.Size leaves.
type Evidence struct {
	Leaf
	// Role is the part the document asked about plays in the entry.
	Role Role `json:"role,omitempty"`
	// InclusionProof is the audit path from the leaf to Checkpoint.Root.
	InclusionProof [][]byte `json:"inclusionProof"`
	// Checkpoint is the newest checkpoint, which the proof leads to.
	Checkpoint *Checkpoint `json:"checkpoint"`
}

// Role is the part a document plays in an entry: a sealed PDF is the
// sealed document of its own seal and may be the original of a later one.
type Role string

// Roles.
const (
	// RoleSealed: the entry's seal produced the document (the sealed PDF,
	// or the .p7s of a CAdES seal).
	RoleSealed Role = "sealed"
	// RoleOriginal: the document was handed in to be sealed.
	RoleOriginal Role = "original"
)

func (e Entry) roleOf(h SHA256) Role {
	if e.SealedSHA256 == h {
		return RoleSealed
	}
	return RoleOriginal
}

// DocumentEvidence is the evidence for a document by role. Its embedded
// Evidence is the entry that sealed the document when there is one, else
// the newest entry that has it as original.
type DocumentEvidence struct {
	Evidence
	// Sealed is the entry whose seal produced the document, if any.
	Sealed *Evidence `json:"sealed,omitempty"`
	// Original lists the entries that sealed the document, newest first.
	Original []Evidence `json:"original,omitempty"`
}

// ProveDocument returns the evidence for document h against the newest
// checkpoint, by role. A document the log has never seen is
// evidence_not_found; one recorded only after the newest checkpoint, or
// whose sealing entry is, is evidence_pending until the next one.
func (l *Log) ProveDocument(ctx context.Context, h SHA256) (*DocumentEvidence, error) {
	return l.proveRoles(ctx, h, RoleSealed, RoleOriginal)
}

// ProveRole is ProveDocument's entry for one role only: the verifier of a
// sealed PDF asks for the entry that made it, not for later seals of it.
func (l *Log) ProveRole(ctx context.Context, h SHA256, role Role) (*Evidence, error) {
	d, err := l.proveRoles(ctx, h, role)
	if err != nil {
		return nil, err
	}
	return &d.Evidence, nil
}

// Prove returns ProveDocument's main entry: the one that sealed document
// h, else the newest that has it as original.
func (l *Log) Prove(ctx context.Context, h SHA256) (*Evidence, error) {
	d, err := l.ProveDocument(ctx, h)
	if err != nil {
		return nil, err
	}
	return &d.Evidence, nil
}

func (l *Log) proveRoles(ctx context.Context, h SHA256, roles ...Role) (*DocumentEvidence, error) {
	found, err := l.Lookup(ctx, h)
	if err != nil {
		return nil, err
	}
	leaves := slices.DeleteFunc(found, func(lf Leaf) bool { return !slices.Contains(roles, lf.Entry.roleOf(h)) })
	if len(leaves) == 0 {
		if len(found) > 0 {
			return nil, fault.New(fault.NotFound, CodeNotFound, "document %s is in the evidence log, but not as the %s document", h, roles[0])
		}
		return nil, fault.New(fault.NotFound, CodeNotFound, "no seal of document %s is in the evidence log", h)
	}
	cp, err := l.Latest(ctx)
	if err != nil && fault.CodeOf(err) != CodeNotFound {
		return nil, err
	}
	pending := func(idx uint64) error {
		return fault.New(fault.Unavailable, CodePending,
			"the seal of document %s (leaf %d) is not in a checkpoint yet; retry after the next one", h, idx)
	}
	d := &DocumentEvidence{}
	for _, lf := range leaves {
		role := lf.Entry.roleOf(h)
		if role == RoleSealed && d.Sealed != nil {
			continue
		}
		if cp == nil || lf.Index >= cp.Size {
			if role == RoleSealed {
				return nil, pending(lf.Index)
			}
			continue
		}
		ev, err := l.proveLeaf(ctx, lf, cp)
		if err != nil {
			return nil, err
		}
		ev.Role = role
		if role == RoleSealed {
			d.Sealed = ev
		} else {
			d.Original = append(d.Original, *ev)
		}
	}
	switch {
	case d.Sealed != nil:
		d.Evidence = *d.Sealed
	case len(d.Original) > 0:
		d.Evidence = d.Original[0]
	default:
		return nil, pending(leaves[0].Index)
	}
	return d, nil
}

// ProveLeaf returns the evidence of leaf idx, which must record document h
// (as sealed or original document): the link a seal hands out names its
// own leaf, so it keeps leading there when the document is sealed again.
func (l *Log) ProveLeaf(ctx context.Context, h SHA256, idx uint64) (*Evidence, error) {
	var data []byte
	err := l.db.Read().QueryRowContext(ctx, `SELECT entry FROM evidence_leaves WHERE idx = ?`, int64(idx)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, CodeNotFound, "the evidence log has no leaf %d", idx)
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: read leaf %d: %w", idx, err)
	}
	lf := Leaf{Index: idx, Data: data}
	if err := lf.Entry.UnmarshalBinary(data); err != nil {
		return nil, fault.Wrap(err, fault.Internal, CodeCorrupt, "stored leaf %d does not decode", idx)
	}
	if lf.Entry.Format == FormatAuditHead || lf.Entry.SealedSHA256 != h && lf.Entry.OriginalSHA256 != h {
		return nil, fault.New(fault.NotFound, CodeNotFound, "leaf %d of the evidence log does not record document %s", idx, h)
	}
	cp, err := l.Latest(ctx)
	if err != nil && fault.CodeOf(err) != CodeNotFound {
		return nil, err
	}
	if cp == nil || idx >= cp.Size {
		return nil, fault.New(fault.Unavailable, CodePending, "leaf %d is not in a checkpoint yet; retry after the next one", idx)
	}
	ev, err := l.proveLeaf(ctx, lf, cp)
	if err != nil {
		return nil, err
	}
	ev.Role = lf.Entry.roleOf(h)
	return ev, nil
}

// proveLeaf proves lf in the tree of checkpoint cp, which covers it.
func (l *Log) proveLeaf(ctx context.Context, lf Leaf, cp *Checkpoint) (*Evidence, error) {
	p, err := tlog.ProveRecord(int64(cp.Size), int64(lf.Index), l.hashReader(ctx))
	if err != nil {
		return nil, fmt.Errorf("evidence: prove leaf %d in %d: %w", lf.Index, cp.Size, err)
	}
	return &Evidence{Leaf: lf, InclusionProof: hashSlices(p), Checkpoint: cp}, nil
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
// without any archive timestamp (but the empty tree's, which has no
// documents to timestamp).
func (l *Log) missingArchiveTimestamps(ctx context.Context) ([][2]uint64, error) {
	rows, err := l.db.Read().QueryContext(ctx, `SELECT c.size,
		(SELECT COALESCE(MAX(p.size), 0) FROM evidence_checkpoints p WHERE p.size < c.size)
		FROM evidence_checkpoints c
		WHERE c.size > 0 AND NOT EXISTS (SELECT 1 FROM evidence_archive_timestamps a WHERE a.checkpoint = c.size)
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
