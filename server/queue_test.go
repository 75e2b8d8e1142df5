package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/server"
)

// Seals beyond seal.queue's bound get 429 seal_busy with Retry-After at
// once, without waiting for the ones in progress; the ones admitted and
// queued all seal once the work moves on.
func TestSealQueueBounded(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["seal"].(map[string]any)["queue"] = map[string]any{"perSession": 1, "length": 1, "maxWait": "20s"}
	})
	// Every turn and the one queue place are taken by seals whose
	// documents are still arriving.
	holders := n.Pool.Sessions("acme") + 1
	release := make(chan struct{})
	statuses := make(chan int, holders)
	var wg sync.WaitGroup
	for range holders {
		wg.Go(func() {
			resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", io.MultiReader(strings.NewReader("held"), blockUntil(release)))
			if resp.StatusCode != http.StatusOK {
				t.Errorf("a seal admitted or queued: %s %s", resp.Status, b)
			}
			statuses <- resp.StatusCode
		})
	}
	// Probe only once every turn and the queue place are taken.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if running, waiting := n.Seal.Load("acme"); running+waiting == holders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holding seals did not all take a turn or a queue place")
		}
	}
	var busy *http.Response
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		started := time.Now()
		resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", strings.NewReader("probe"))
		if resp.StatusCode == http.StatusTooManyRequests {
			if took := time.Since(started); took > 5*time.Second {
				t.Errorf("the refusal took %s: a full queue refuses at once", took)
			}
			busy, body = resp, b
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a probe before the queue filled: %s %s", resp.Status, b)
		}
	}
	close(release)
	wg.Wait()
	if busy == nil {
		t.Fatal("no seal was refused with the queue full")
	}
	if !strings.Contains(string(body), `"seal_busy"`) || busy.Header.Get("Retry-After") == "" {
		t.Errorf("the refusal: %s Retry-After %q %s", busy.Status, busy.Header.Get("Retry-After"), body)
	}
	if resp, b := n.post(t, "/api/v1/seals?format=cades", n.ERPID, n.ERPSecret, "", strings.NewReader("after")); resp.StatusCode != http.StatusOK {
		t.Errorf("once the queue is free: %s %s", resp.Status, b)
	}
}

// debug.pprof serves Go's profiles to the admin role only, and nothing
// without it.
func TestPProfAdminOnly(t *testing.T) {
	plain := newNode(t)
	if resp, _ := plain.getText(t, "/debug/pprof/", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without debug.pprof: %s", resp.Status)
	}
	n := newNode(t, func(doc map[string]any) { doc["debug"] = map[string]any{"pprof": true} })
	_, rootSecret, err := n.Access.AddProcess(context.Background(), "root", "administration", []string{access.RoleAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, auditorSecret, err := n.Access.AddProcess(context.Background(), "auditor", "monitoring", []string{access.RoleAuditor}, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, secret string
		want       int
	}{
		{"", "", http.StatusUnauthorized},
		{n.ERPID, n.ERPSecret, http.StatusForbidden},
		{"auditor", auditorSecret, http.StatusForbidden},
		{"root", rootSecret, http.StatusOK},
	} {
		resp, body := n.getText(t, "/debug/pprof/goroutine?debug=1", c.id, c.secret)
		if resp.StatusCode != c.want {
			t.Errorf("%q: %s, want %d", c.id, resp.Status, c.want)
		}
		if c.want == http.StatusOK && !strings.Contains(body, "goroutine profile:") {
			t.Errorf("the admin's goroutine profile: %.200s", body)
		}
	}
}

// A negative queue bound is a configuration error, not a silent default.
func TestSealQueueNegative(t *testing.T) {
	_, cfg := nodeConfig(t, func(doc map[string]any) {
		doc["seal"].(map[string]any)["queue"] = map[string]any{"length": -1}
	})
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("seal.queue.length -1 accepted")
	}
	if !strings.Contains(err.Error(), "queue") {
		t.Errorf("the error does not name the queue: %v", err)
	}
}
