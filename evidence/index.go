package evidence

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/sealgate/sealgate/fault"
)

// The document index (digest → leaves) is not updated per append: digests
// are random, so inserting each into a B-tree touches a random page, and at
// millions of leaves every append would rewrite pages of both digest
// indexes. Instead leaves are indexed in bulk steps, sorted by key, so each
// touched page takes many keys at once; until its step, a leaf is found
// through the appending process's in-memory pending map. A step runs when
// that map holds indexEvery leaves, and at Open for leaves a previous
// process left unindexed.

// indexEvery is how many pending leaves trigger an index step.
const indexEvery = 1 << 20

// indexChunk bounds the leaves one index transaction covers, so memory
// stays bounded when catching up after a bulk load.
const indexChunk = 1 << 20

func (l *Log) pendingCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pending)
}

// index adds the leaves below upTo that are not yet in evidence_documents,
// then forgets them from the pending map.
func (l *Log) index(ctx context.Context, upTo uint64) error {
	l.idxMu.Lock()
	defer l.idxMu.Unlock()
	for {
		var done bool
		var indexed int64
		err := l.db.Write(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, `SELECT indexed FROM evidence_index_state WHERE id = 1`).Scan(&indexed); err != nil {
				return fmt.Errorf("evidence: index state: %w", err)
			}
			to := min(int64(upTo), indexed+indexChunk)
			if indexed >= to {
				done = true
				return nil
			}
			type pair struct{ key, idx int64 }
			var pairs []pair
			rows, err := tx.QueryContext(ctx, `SELECT idx, entry FROM evidence_leaves WHERE idx >= ? AND idx < ? ORDER BY idx`, indexed, to)
			if err != nil {
				return fmt.Errorf("evidence: index: %w", err)
			}
			for rows.Next() {
				var idx int64
				var data []byte
				if err := rows.Scan(&idx, &data); err != nil {
					rows.Close()
					return fmt.Errorf("evidence: index: %w", err)
				}
				var e Entry
				if err := e.UnmarshalBinary(data); err != nil {
					rows.Close()
					return fault.Wrap(err, fault.Internal, CodeCorrupt, "leaf %d does not decode", idx)
				}
				for _, k := range e.documentKeys() {
					pairs = append(pairs, pair{k, idx})
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("evidence: index: %w", err)
			}
			slices.SortFunc(pairs, func(a, b pair) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.idx, b.idx)) })
			values := make([]any, 0, 2*len(pairs))
			for _, p := range pairs {
				values = append(values, p.key, p.idx)
			}
			if err := insertRows(ctx, tx, `INSERT INTO evidence_documents (doc_key, idx) VALUES `, 2, values); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE evidence_index_state SET indexed = ? WHERE id = 1`, to); err != nil {
				return fmt.Errorf("evidence: index state: %w", err)
			}
			indexed = to
			return nil
		})
		if err != nil {
			return err
		}
		l.mu.Lock()
		for k, idxs := range l.pending {
			if idxs = slices.DeleteFunc(idxs, func(i uint64) bool { return i < uint64(indexed) }); len(idxs) == 0 {
				delete(l.pending, k)
			} else {
				l.pending[k] = idxs
			}
		}
		l.mu.Unlock()
		if done {
			return nil
		}
	}
}

// Lookup returns the leaves whose entry names document h as the sealed or
// the original document, newest first; audit anchors name no document and
// are never returned. Leaves appended by another process are found once
// indexed (see indexEvery); this process's are found at once.
func (l *Log) Lookup(ctx context.Context, h SHA256) ([]Leaf, error) {
	k := digestKey(h)
	idxs := []any{}
	rows, err := l.db.Read().QueryContext(ctx, `SELECT idx FROM evidence_documents WHERE doc_key = ?`, k)
	if err != nil {
		return nil, fmt.Errorf("evidence: look up %s: %w", h, err)
	}
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx); err != nil {
			rows.Close()
			return nil, fmt.Errorf("evidence: look up %s: %w", h, err)
		}
		idxs = append(idxs, idx)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("evidence: look up %s: %w", h, err)
	}
	l.mu.Lock()
	for _, idx := range l.pending[k] {
		idxs = append(idxs, int64(idx))
	}
	l.mu.Unlock()
	if len(idxs) == 0 {
		return nil, nil
	}
	rows, err = l.db.Read().QueryContext(ctx, `SELECT idx, entry FROM evidence_leaves WHERE idx IN (?`+
		strings.Repeat(",?", len(idxs)-1)+`) ORDER BY idx DESC`, idxs...)
	if err != nil {
		return nil, fmt.Errorf("evidence: look up %s: %w", h, err)
	}
	defer rows.Close()
	var out []Leaf
	for rows.Next() {
		var idx int64
		var data []byte
		if err := rows.Scan(&idx, &data); err != nil {
			return nil, fmt.Errorf("evidence: look up %s: %w", h, err)
		}
		var e Entry
		if err := e.UnmarshalBinary(data); err != nil {
			return nil, fault.Wrap(err, fault.Internal, CodeCorrupt, "stored leaf %d does not decode", idx)
		}
		// The key holds 8 bytes of the digest; the entry decides. Anchors
		// indexed by an earlier version are left out here.
		if e.Format != FormatAuditHead && (e.SealedSHA256 == h || e.OriginalSHA256 == h) {
			out = append(out, Leaf{Index: uint64(idx), Entry: e, Data: data})
		}
	}
	return out, rows.Err()
}

// LatestOfFormat returns the newest leaf whose entry has the given format (for
// example FormatAuditHead), reading the log backwards from its end, or
// evidence_not_found. Audit anchors are appended while the trail grows, so
// the newest one is near the end.
func (l *Log) LatestOfFormat(ctx context.Context, format string) (*Leaf, error) {
	const batch = 4096
	before := int64(l.Size())
	for before > 0 {
		rows, err := l.db.Read().QueryContext(ctx,
			`SELECT idx, entry FROM evidence_leaves WHERE idx < ? ORDER BY idx DESC LIMIT ?`, before, batch)
		if err != nil {
			return nil, fmt.Errorf("evidence: scan leaves: %w", err)
		}
		var found *Leaf
		n := 0
		for rows.Next() && found == nil {
			var idx int64
			var data []byte
			if err := rows.Scan(&idx, &data); err != nil {
				rows.Close()
				return nil, fmt.Errorf("evidence: scan leaves: %w", err)
			}
			n++
			before = idx
			var e Entry
			if err := e.UnmarshalBinary(data); err != nil {
				rows.Close()
				return nil, err
			}
			if e.Format == format {
				found = &Leaf{Index: uint64(idx), Entry: e, Data: data}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("evidence: scan leaves: %w", err)
		}
		if found != nil {
			return found, nil
		}
		if n == 0 {
			break
		}
	}
	return nil, fault.New(fault.NotFound, CodeNotFound, "the evidence log %s has no %s entry", l.opts.Origin, format)
}
