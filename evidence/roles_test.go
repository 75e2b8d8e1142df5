package evidence

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// A document is the sealed document of its own seal and may be the
// original of later ones: lookups give each entry its role, the seal's own
// entry stays reachable by its index, and no document lookup ever yields an
// audit anchor — neither in the appending process nor after a restart,
// when the leaves are found through the bulk index.
func TestEvidenceByRole(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	a, b, c := sha256.Sum256([]byte("a.pdf")), sha256.Sum256([]byte("b.pdf")), sha256.Sum256([]byte("c.pdf"))
	seal := func(original, sealed SHA256) Entry {
		e := testEntry(0)
		e.OriginalSHA256, e.SealedSHA256 = original, sealed
		return e
	}
	anchor := Entry{SealedSHA256: sha256.Sum256([]byte("audit event 7")), SealID: "audit-trail/7", Format: FormatAuditHead, Time: time.Now()}
	for _, e := range []Entry{seal(a, b), seal(b, c), anchor} {
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// A later seal of b, not yet in a checkpoint, hides nothing.
	if _, err := l.Append(ctx, seal(b, sha256.Sum256([]byte("d.pdf")))); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, l *Log) {
		d, err := l.ProveDocument(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if d.Sealed == nil || d.Sealed.Index != 0 || d.Sealed.Role != RoleSealed || d.Index != 0 || d.Role != RoleSealed {
			t.Errorf("b's sealed entry: %+v (main entry %d %s), want leaf 0", d.Sealed, d.Index, d.Role)
		}
		if len(d.Original) != 1 || d.Original[0].Index != 1 || d.Original[0].Role != RoleOriginal {
			t.Errorf("b's original entries: %+v, want leaf 1 (leaf 3 is not checkpointed)", d.Original)
		}
		if ev, err := l.ProveRole(ctx, b, RoleSealed); err != nil || ev.Index != 0 {
			t.Errorf("ProveRole(b, sealed) = %+v, %v; want leaf 0", ev, err)
		}
		if ev, err := l.ProveRole(ctx, a, RoleOriginal); err != nil || ev.Index != 0 || ev.Role != RoleOriginal {
			t.Errorf("ProveRole(a, original) = %+v, %v; want leaf 0", ev, err)
		}
		if ev, err := l.ProveLeaf(ctx, b, 0); err != nil || ev.Index != 0 || ev.Role != RoleSealed {
			t.Errorf("ProveLeaf(b, 0) = %+v, %v", ev, err)
		}
		if ev, err := l.Prove(ctx, c); err != nil || ev.Index != 1 {
			t.Errorf("Prove(c) = %+v, %v; want leaf 1", ev, err)
		}
		for _, tc := range []struct {
			name string
			err  error
			code fault.Code
		}{
			{"a as a sealed document", func() error { _, err := l.ProveRole(ctx, a, RoleSealed); return err }(), CodeNotFound},
			{"leaf 2 (an anchor) for b", func() error { _, err := l.ProveLeaf(ctx, b, 2); return err }(), CodeNotFound},
			{"leaf 1 for a", func() error { _, err := l.ProveLeaf(ctx, a, 1); return err }(), CodeNotFound},
			{"leaf 9 (past the end)", func() error { _, err := l.ProveLeaf(ctx, b, 9); return err }(), CodeNotFound},
			{"leaf 3 (not checkpointed)", func() error { _, err := l.ProveLeaf(ctx, b, 3); return err }(), CodePending},
			{"the anchor's zero original", func() error { _, err := l.Prove(ctx, SHA256{}); return err }(), CodeNotFound},
			{"the anchored event hash", func() error { _, err := l.Prove(ctx, anchor.SealedSHA256); return err }(), CodeNotFound},
		} {
			if fault.CodeOf(tc.err) != tc.code {
				t.Errorf("%s: %v, want %s", tc.name, tc.err, tc.code)
			}
		}
		if leaves, err := l.Lookup(ctx, b); err != nil || len(leaves) != 3 {
			t.Errorf("Lookup(b): %d leaves, %v; want 3", len(leaves), err)
		}
	}
	t.Run("appending process", func(t *testing.T) { check(t, l) })
	t.Run("after a restart", func(t *testing.T) { check(t, openLog(t, dir, Options{})) })
}
