package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/internal/pdftest"
)

// documentEvidence is GET /api/v1/evidence/{sha256} as a client reads it.
type documentEvidence struct {
	evidence.Evidence
	Sealed   *evidence.Evidence  `json:"sealed"`
	Original []evidence.Evidence `json:"original"`
}

// TestEvidenceLinkNamesItsSeal seals a.pdf into b.pdf, then b.pdf into
// c.pdf: the link handed out for b still leads to b's own seal, the lookup
// by b's digest names both entries by role, the verifier finds b's seal,
// and a lookup never yields the audit trail's anchor.
func TestEvidenceLinkNamesItsSeal(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	a := pdftest.Bytes(pdftest.Spec{Pages: []pdftest.Page{{Text: "Invoice a"}}})
	respB, b := n.sealPDF(t, "format=pades&reason=first", a)
	respC, c := n.sealPDF(t, "format=pades&reason=second", b)
	if err := n.AnchorAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Evidence.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	digest := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

	link := respB.Header.Get("Link")
	want := `</api/v1/evidence/` + digest(b) + `?index=0>; rel="evidence"`
	if link != want {
		t.Fatalf("Link of b %q, want %q", link, want)
	}
	var ev evidence.Evidence
	if code := n.get(t, strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="evidence"`), &ev); code != http.StatusOK {
		t.Fatalf("b's link: status %d", code)
	}
	if ev.Index != 0 || ev.Role != evidence.RoleSealed || hex.EncodeToString(ev.Entry.SealedSHA256[:]) != digest(b) {
		t.Errorf("b's link leads to leaf %d (%s), want b's own seal, leaf 0", ev.Index, ev.Role)
	}
	if got := respC.Header.Get("Link"); got != `</api/v1/evidence/`+digest(c)+`?index=1>; rel="evidence"` {
		t.Errorf("Link of c %q", got)
	}

	var d documentEvidence
	if code := n.get(t, "/api/v1/evidence/"+digest(b), &d); code != http.StatusOK {
		t.Fatalf("evidence of b: status %d", code)
	}
	if d.Sealed == nil || d.Sealed.Index != 0 || len(d.Original) != 1 || d.Original[0].Index != 1 || d.Original[0].Role != evidence.RoleOriginal {
		t.Errorf("evidence of b by role: sealed %+v, original %+v; want leaf 0 and leaf 1", d.Sealed, d.Original)
	}
	// Clients that read the entry itself get b's seal, as before.
	if d.Index != 0 || d.Role != evidence.RoleSealed || len(d.InclusionProof) == 0 {
		t.Errorf("main entry of b: leaf %d %s", d.Index, d.Role)
	}

	var rep struct {
		Valid    bool `json:"valid"`
		Evidence struct {
			Index uint64 `json:"index"`
			OK    bool   `json:"ok"`
		} `json:"evidence"`
	}
	resp, body := n.post(t, "/api/v1/verifications", "", "", "application/pdf", bytes.NewReader(b))
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("verifying b: %s %s", resp.Status, body)
	}
	if !rep.Valid || !rep.Evidence.OK || rep.Evidence.Index != 0 {
		t.Errorf("verifying b: %s valid %v, evidence leaf %d ok %v; want b's own leaf 0", resp.Status, rep.Valid, rep.Evidence.Index, rep.Evidence.OK)
	}

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/v1/evidence/" + strings.Repeat("0", 64), http.StatusNotFound},
		{"/api/v1/evidence/" + digest(b) + "?index=1", http.StatusOK},
		{"/api/v1/evidence/" + digest(b) + "?index=2", http.StatusNotFound},
		{"/api/v1/evidence/" + digest(a) + "?index=1", http.StatusNotFound},
		{"/api/v1/evidence/" + digest(b) + "?index=first", http.StatusBadRequest},
	} {
		if code := n.get(t, tc.path, nil); code != tc.status {
			t.Errorf("GET %s: %d, want %d", tc.path, code, tc.status)
		}
	}
	anchor, err := n.Evidence.LatestOfFormat(ctx, evidence.FormatAuditHead)
	if err != nil {
		t.Fatal(err)
	}
	if code := n.get(t, "/api/v1/evidence/"+anchor.Entry.SealedSHA256.String(), nil); code != http.StatusNotFound {
		t.Errorf("looking up the audit anchor's hash as a document: %d, want 404", code)
	}
}

// TestFreshLogPublishesCheckpoint: a node serving a fresh log answers
// GET /api/v1/log/checkpoint at once, with the empty tree.
func TestFreshLogPublishesCheckpoint(t *testing.T) {
	n := newNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- n.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	// Serve publishes before it accepts: the first answer is the checkpoint.
	var cp evidence.Checkpoint
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/v1/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&cp); err != nil || resp.StatusCode != http.StatusOK || cp.Size != 0 || len(cp.Root) != 32 {
		t.Fatalf("checkpoint of a fresh log: %s, size %d root %x", resp.Status, cp.Size, cp.Root)
	}
	if _, err := evidence.ParseCheckpoint([]byte(cp.Note), n.Evidence.VerifierKey()); err != nil {
		t.Errorf("the empty tree's note: %v", err)
	}
}
