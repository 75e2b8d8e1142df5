package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"strings"
	"testing"
)

// TestAuditTrailAnchoredInEvidence: the audit trail's head goes into the
// evidence log; deleting the newest audit events and rewriting the recorded
// head — which the trail's own chain check cannot see — is then reported,
// naming the anchored event.
func TestAuditTrailAnchoredInEvidence(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", strings.NewReader("order "+string(rune('a'+i))))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("seal: %s %s", resp.Status, b)
		}
	}
	if err := n.AnchorAudit(ctx); err != nil {
		t.Fatal(err)
	}
	size := n.Evidence.Size()
	if err := n.AnchorAudit(ctx); err != nil || n.Evidence.Size() != size {
		t.Fatalf("anchoring an unchanged trail appended a leaf (%d → %d): %v", size, n.Evidence.Size(), err)
	}
	rep, err := n.VerifyAudit(ctx)
	if err != nil || !rep.OK || !rep.AnchorOK || rep.AnchorCount != rep.Count {
		t.Fatalf("intact trail: %+v %v", rep, err)
	}
	anchored := rep.AnchorCount

	// Cover the tracks the way an attacker with database access would:
	// drop the newest two events and make the recorded head match.
	err = n.DB.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM access_audit WHERE id > ?`, anchored-2); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE access_audit_head SET last_id = ?, count = ?, hash = (SELECT hash FROM access_audit WHERE id = ?) WHERE id = 1`,
			anchored-2, anchored-2, anchored-2)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	own, err := n.Access.VerifyAudit(ctx)
	if err != nil || !own.OK {
		t.Fatalf("precondition: the chain alone should not see the truncation: %+v %v", own, err)
	}
	rep, err = n.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.AnchorOK || rep.FirstBad != int64(anchored) || !strings.Contains(rep.Problem, "deleted") {
		t.Errorf("truncated trail: %+v", rep)
	}
}

// TestAuditAnchorCatchesARewrittenEvent: changing the hash of the anchored
// event is reported even where the chain check would start from it.
func TestAuditAnchorCatchesARewrittenEvent(t *testing.T) {
	ctx := context.Background()
	n2 := newNode(t)
	resp, b := n2.post(t, "/api/v1/seals?format=cades", n2.ERPID, n2.ERPSecret, "", bytes.NewReader([]byte("x")))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("seal: %s %s", resp.Status, b)
	}
	if err := n2.AnchorAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.DB.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE access_audit SET hash = zeroblob(32) WHERE id = (SELECT MAX(id) FROM access_audit)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := n2.VerifyAudit(ctx); err != nil || rep.OK {
		t.Errorf("rewritten anchored event: %+v %v", rep, err)
	}
}
