package evidence

import (
	"bytes"
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/sealgate/sealgate/fault"
)

// rootOf returns the RFC 9162 §2.1.1 root hash of the tree whose right edge
// is f: with the set bits of size l₁ < l₂ < … , root = NodeHash(h(lₖ), …
// NodeHash(h(l₂), h(l₁))), the subtrees being joined right to left.
func (f *frontier) root() tlog.Hash {
	var acc tlog.Hash
	first := true
	for l := 0; l < 64; l++ {
		if f.size>>uint(l)&1 == 0 {
			continue
		}
		if first {
			acc, first = f.hashes[l], false
		} else {
			acc = tlog.NodeHash(f.hashes[l], acc)
		}
	}
	return acc
}

// Audit rereads the whole log and checks it against itself: every leaf
// decodes, every stored hash equals the one recomputed from the leaves, and
// every checkpoint is signed by the log key and names the root recomputed
// at its size. It needs O(n) time and O(log n) memory; the first mismatch is
// reported as evidence_log_corrupt naming the leaf or checkpoint.
func (l *Log) Audit(ctx context.Context) error {
	sizes, err := l.Checkpoints(ctx)
	if err != nil {
		return err
	}
	roots := map[uint64]tlog.Hash{}
	rows, err := l.db.Read().QueryContext(ctx, `SELECT idx, entry, hashes FROM evidence_leaves ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("evidence: audit: %w", err)
	}
	defer rows.Close()
	var f frontier
	want := map[uint64]bool{}
	for _, s := range sizes {
		want[s] = true
	}
	if want[0] {
		empty, _ := tlog.TreeHash(0, nil)
		roots[0] = empty
	}
	for rows.Next() {
		var idx int64
		var data, stored []byte
		if err := rows.Scan(&idx, &data, &stored); err != nil {
			return fmt.Errorf("evidence: audit: %w", err)
		}
		if idx != f.size {
			return fault.New(fault.Internal, CodeCorrupt, "leaf %d is missing", f.size)
		}
		var e Entry
		if err := e.UnmarshalBinary(data); err != nil {
			return fault.New(fault.Internal, CodeCorrupt, "leaf %d does not decode", idx)
		}
		if !bytes.Equal(f.add(LeafHash(data)), stored) {
			return fault.New(fault.Internal, CodeCorrupt, "the stored hashes of leaf %d differ from the recomputed ones", idx)
		}
		if want[uint64(f.size)] {
			roots[uint64(f.size)] = f.root()
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("evidence: audit: %w", err)
	}
	for _, s := range sizes {
		cp, err := l.CheckpointAt(ctx, s)
		if err != nil {
			return err
		}
		r, ok := roots[s]
		if !ok || !bytes.Equal(cp.Root, r[:]) {
			return fault.New(fault.Internal, CodeCorrupt, "checkpoint %d does not match the leaves' root", s)
		}
	}
	return nil
}
