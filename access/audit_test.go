package access

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
)

// auditTrail opens a Service whose trail holds ten events and returns it
// with the heads reported to OnAuditHead.
func auditTrail(t *testing.T) (*testEnv, *[]uint64) {
	t.Helper()
	var counts []uint64
	env := openTestService(t, func(o *Options) {
		o.OnAuditHead = func(_ context.Context, head []byte, count uint64) {
			if len(head) != 32 {
				t.Errorf("head of %d bytes", len(head))
			}
			counts = append(counts, count)
		}
	})
	for i := 1; i <= 10; i++ {
		if err := env.svc.Audit(context.Background(), Event{Type: "card.health", Actor: "signing", Subject: fmt.Sprintf("card:%d", i),
			Detail: map[string]string{"state": "ok"}}); err != nil {
			t.Fatal(err)
		}
	}
	return env, &counts
}

func TestVerifyAuditFindsTamperedAndMissingEvents(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		tamper  []string // SQL run directly on the database file
		wantBad int64
	}{
		{"intact", nil, 0},
		{"detail of event 4 changed", []string{`UPDATE access_audit SET detail = '{"state":"failed"}' WHERE id = 4`}, 4},
		{"actor of event 7 changed", []string{`UPDATE access_audit SET actor = 'someone' WHERE id = 7`}, 7},
		{"hash of event 5 changed", []string{`UPDATE access_audit SET hash = X'00' WHERE id = 5`}, 5},
		{"event 6 deleted", []string{`DELETE FROM access_audit WHERE id = 6`}, 6},
		{"first event deleted", []string{`DELETE FROM access_audit WHERE id = 1`}, 1},
		{"last event deleted", []string{`DELETE FROM access_audit WHERE id = 10`}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _ := auditTrail(t)
			raw, err := sql.Open("sqlite", env.path)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			for _, q := range tt.tamper {
				if _, err := raw.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := env.svc.VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.FirstBad != tt.wantBad || rep.OK != (tt.wantBad == 0) {
				t.Fatalf("report %+v, want first bad event %d", rep, tt.wantBad)
			}
			if tt.wantBad == 0 && rep.Count != 10 {
				t.Fatalf("intact trail of %d events", rep.Count)
			}
		})
	}
}

func TestAuditRewriteWithRecomputedHashIsCaughtByTheNextEvent(t *testing.T) {
	ctx := context.Background()
	env, _ := auditTrail(t)
	evs, err := env.svc.AuditEvents(ctx, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	e.Detail = map[string]string{"state": "failed"}
	e.Hash = chainHash(e.PrevHash, &e)
	raw, err := sql.Open("sqlite", env.path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, `UPDATE access_audit SET detail = '{"state":"failed"}', hash = ? WHERE id = 3`, e.Hash); err != nil {
		t.Fatal(err)
	}
	rep, err := env.svc.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.FirstBad != 3 {
		t.Fatalf("report %+v, want event 3", rep)
	}
}

func TestAuditExportAndHeadHook(t *testing.T) {
	ctx := context.Background()
	env, counts := auditTrail(t)
	if len(*counts) != 10 || (*counts)[9] != 10 {
		t.Fatalf("OnAuditHead counts %v", *counts)
	}
	var buf bytes.Buffer
	if err := env.svc.ExportAudit(ctx, &buf, 0); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	var prev []byte
	n := 0
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		// Each exported line carries enough to re-check the chain offline.
		if e.ID != int64(n) || (prev != nil && !bytes.Equal(e.PrevHash, prev)) || !bytes.Equal(chainHash(e.PrevHash, &e), e.Hash) {
			t.Fatalf("line %d does not chain: %+v", n, e)
		}
		prev = e.Hash
	}
	if n != 10 {
		t.Fatalf("%d lines exported", n)
	}
}
