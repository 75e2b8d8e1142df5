package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/internal/loopback"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
)

// rawPost sends a chunked POST over its own connection, writing the body
// from a goroutine, and reads the answer while the body is still being
// written: as a client would see a server that answers before the end.
func rawPost(t *testing.T, base, path, auth string, body io.Reader) (*http.Response, []byte, time.Duration) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/pdf\r\nTransfer-Encoding: chunked\r\n"
	if auth != "" {
		head += "Authorization: " + auth + "\r\n"
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, err := body.Read(buf)
			if n > 0 {
				if _, werr := fmt.Fprintf(conn, "%x\r\n%s\r\n", n, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				io.WriteString(conn, "0\r\n\r\n")
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	took := time.Since(start)
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, b, took
}

// pdfStream is a PDF-looking body of n bytes made on the fly, never held
// in memory or written to disk; sent is read while it is being sent.
type pdfStream struct {
	n    int64
	sent atomic.Int64
}

func (s *pdfStream) Read(p []byte) (int, error) {
	sent := s.sent.Load()
	if sent >= s.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), s.n-sent)
	clear(p[:k])
	if sent == 0 {
		copy(p, "%PDF-1.7\n")
	}
	s.sent.Add(k)
	return int(k), nil
}

// slowBody sends one byte per interval, for ever.
type slowBody struct{ every time.Duration }

func (s slowBody) Read(p []byte) (int, error) {
	time.Sleep(s.every)
	p[0] = 'x'
	return 1, nil
}

// noSpool fails the test if the node left spool files behind.
func noSpool(t *testing.T, dir string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(dir, seal.SpoolPrefix+"*"))
	if len(left) > 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

// TestVerificationTooLarge: a 3 GB anonymous verification upload is cut off
// at verify.maxDocumentSize (default 100 MiB) with 413 and leaves no spool
// file; an announced size over the limit is refused before any byte is read.
func TestVerificationTooLarge(t *testing.T) {
	n := newNode(t)
	body := &pdfStream{n: 3 << 30}
	resp, b, _ := rawPost(t, n.URL, "/api/v1/verifications", "", body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"document_too_large"`) {
		t.Fatalf("3 GB upload: %s %s", resp.Status, b)
	}
	if body.sent.Load() >= 3<<30 {
		t.Error("the whole 3 GB were read before the refusal")
	}
	noSpool(t, n.Dir)

	req, err := http.NewRequest(http.MethodPost, n.URL+"/api/v1/verifications", &pdfStream{n: 3 << 30})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 3 << 30
	start := time.Now()
	ar, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := io.ReadAll(ar.Body)
	ar.Body.Close()
	if ar.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(ab), `"document_too_large"`) {
		t.Errorf("announced 3 GB: %s %s", ar.Status, ab)
	}
	t.Logf("refused 3 GB after %d bytes read; announced 3 GB refused in %s", body.sent.Load(), time.Since(start).Round(time.Millisecond))
	noSpool(t, n.Dir)
}

// TestSlowBodyIsCutOff: a body sent at one byte per second is cut off with
// 408 body_timeout within the configured total deadline, or once it falls
// below the minimum rate, whether it is being verified or sealed; its spool
// file is removed.
func TestSlowBodyIsCutOff(t *testing.T) {
	tests := []struct {
		name     string
		http     map[string]any
		deadline time.Duration
	}{
		{"total deadline", map[string]any{"bodyTimeout": "2s"}, 2 * time.Second},
		{"minimum rate", map[string]any{"minBodyRate": 100, "bodyGrace": "1s"}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, func(doc map[string]any) { doc["http"] = tt.http })
			for _, path := range []string{"/api/v1/verifications", "/api/v1/seals?format=pades"} {
				auth := ""
				if strings.Contains(path, "seals") {
					req, _ := http.NewRequest(http.MethodPost, "/", nil)
					req.SetBasicAuth(n.ERPID, n.ERPSecret)
					auth = req.Header.Get("Authorization")
				}
				resp, b, took := rawPost(t, n.URL, path, auth, slowBody{every: time.Second})
				if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), `"body_timeout"`) {
					t.Errorf("%s: %s %s", path, resp.Status, b)
				}
				if took < tt.deadline || took > tt.deadline+1500*time.Millisecond {
					t.Errorf("%s: cut off after %s, want at %s", path, took.Round(time.Millisecond), tt.deadline)
				}
				noSpool(t, n.Dir)
			}
		})
	}
}

// TestMetricsLabelsAreBounded: 1,000 distinct junk format values from
// anonymous callers add no series: they all count as format "other".
func TestMetricsLabelsAreBounded(t *testing.T) {
	n := newNode(t)
	_, opsSecret, err := n.Access.AddProcess(context.Background(), "ops", "monitoring", []string{access.RoleAuditor}, "test")
	if err != nil {
		t.Fatal(err)
	}
	series := func() []string {
		resp, b := n.getText(t, "/metrics", "ops", opsSecret)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics as auditor: %s %s", resp.Status, b)
		}
		var out []string
		for _, l := range strings.Split(b, "\n") {
			if strings.HasPrefix(l, "sealgate_seal_requests_total{") || strings.HasPrefix(l, "sealgate_seal_duration_seconds_count{") {
				out = append(out, l[:strings.LastIndex(l, " ")])
			}
		}
		return out
	}
	junk := func(i int) {
		resp, b := n.post(t, fmt.Sprintf("/api/v1/seals?format=junk%d", i), "", "", "", strings.NewReader("x"))
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("format junk%d: %s %s", i, resp.Status, b)
		}
	}
	junk(0)
	before := series()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				junk(i)
			}
		})
	}
	for i := 1; i < 1000; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	after := series()
	if len(after) != len(before) {
		t.Errorf("series grew from %d to %d:\n%s", len(before), len(after), strings.Join(after, "\n"))
	}
	for _, s := range after {
		if strings.Contains(s, "junk") {
			t.Errorf("a caller's value became a label: %s", s)
		}
	}
	if !strings.Contains(strings.Join(after, "\n"), `format="other"`) {
		t.Errorf("junk formats not counted as other:\n%s", strings.Join(after, "\n"))
	}
}

// TestMonitoringNeedsRoleOrListener: /metrics and the detailed /readyz are
// for the auditor and admin roles, or for whoever reaches metrics.listen;
// anonymous callers learn only whether the node is ready. Serving also
// removes spool files a previous run left behind.
func TestMonitoringNeedsRoleOrListener(t *testing.T) {
	monitorAddr := loopback.FreeAddr(t)
	n := newNode(t, func(doc map[string]any) { doc["metrics"] = map[string]any{"listen": monitorAddr} })
	ctx := context.Background()
	_, opsSecret, err := n.Access.AddProcess(ctx, "ops", "monitoring", []string{access.RoleAuditor}, "test")
	if err != nil {
		t.Fatal(err)
	}
	_, rootSecret, err := n.Access.AddProcess(ctx, "root", "administration", []string{access.RoleAdmin}, "test")
	if err != nil {
		t.Fatal(err)
	}
	serials := []string{}
	for _, c := range n.Pool.Status() {
		if c.Serial == "" {
			t.Fatalf("card %s has no serial", c.Token)
		}
		serials = append(serials, c.Serial)
	}

	for _, tt := range []struct {
		who, id, secret string
		status          int
		code            string
	}{
		{"anonymous", "", "", http.StatusUnauthorized, "unauthenticated"},
		{"a process without a role", n.ERPID, n.ERPSecret, http.StatusForbidden, "operation_not_permitted"},
		{"a wrong secret", "ops", "sgp_wrong", http.StatusUnauthorized, "unauthenticated"},
		{"an auditor", "ops", opsSecret, http.StatusOK, ""},
		{"an admin", "root", rootSecret, http.StatusOK, ""},
	} {
		resp, b := n.getText(t, "/metrics", tt.id, tt.secret)
		if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(b, `"code":"`+tt.code+`"`)) {
			t.Errorf("/metrics as %s: %s %.200s", tt.who, resp.Status, b)
		}
		if tt.status == http.StatusOK && !strings.Contains(b, "sealgate_card_signatures_total") {
			t.Errorf("/metrics as %s lacks the card metrics", tt.who)
		}
	}

	resp, public := n.getText(t, "/readyz", "", "")
	if resp.StatusCode != http.StatusOK || strings.Join(strings.Fields(public), "") != `{"ready":true}` {
		t.Errorf("public /readyz: %s %q, want only ready", resp.Status, public)
	}
	for _, s := range serials {
		if strings.Contains(public, s) {
			t.Errorf("public /readyz shows card serial %s", s)
		}
	}
	for who, secret := range map[string]string{"ops": opsSecret, "root": rootSecret} {
		resp, detailed := n.getText(t, "/readyz", who, secret)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz as %s: %s %s", who, resp.Status, detailed)
		}
		for _, s := range serials {
			if !strings.Contains(detailed, s) {
				t.Errorf("/readyz as %s does not show card serial %s", who, s)
			}
		}
	}
	if resp, b := n.getText(t, "/readyz", n.ERPID, n.ERPSecret); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/readyz as a process without a role: %s %s", resp.Status, b)
	}

	// Serving on a listener: leftover spool files go, the metrics listener answers anyone.
	leftover := filepath.Join(n.Dir, seal.SpoolPrefix+"in-123456")
	if err := os.WriteFile(leftover, []byte("half a document"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- n.Server.Serve(serveCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	var metrics *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if metrics, err = http.Get("http://" + monitorAddr + "/metrics"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("metrics listener: %v", err)
	}
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if metrics.StatusCode != http.StatusOK || !strings.Contains(string(mb), "sealgate_card_up") {
		t.Errorf("anonymous /metrics on the metrics listener: %s %.200s", metrics.Status, mb)
	}
	rr, err := http.Get("http://" + monitorAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(rr.Body)
	rr.Body.Close()
	if rr.StatusCode != http.StatusOK || !strings.Contains(string(rb), serials[0]) {
		t.Errorf("/readyz on the metrics listener: %s %.200s", rr.Status, rb)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover spool file still there once serving: %v", err)
	}
}

// TestTempSpaceIsBounded: documents in flight share seal.maxTempSpace; one
// that alone needs more is document_too_large, one that finds the space
// taken gets 503 temp_space_full with Retry-After.
func TestTempSpaceIsBounded(t *testing.T) {
	n := newNode(t, func(doc map[string]any) { doc["seal"].(map[string]any)["maxTempSpace"] = 100 << 10 })
	resp, b, _ := rawPost(t, n.URL, "/api/v1/verifications", "", &pdfStream{n: 200 << 10})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"document_too_large"`) {
		t.Errorf("a document larger than the temporary space: %s %s", resp.Status, b)
	}
	// A first upload takes 80 KiB and waits; a second finds no room.
	release := make(chan struct{})
	text := func(n int) io.Reader { return strings.NewReader(strings.Repeat("order line\n", n/11+1)[:n]) }
	first := io.MultiReader(text(80<<10), blockUntil(release))
	firstDone := make(chan *http.Response, 1)
	go func() {
		r, _, _ := rawPost(t, n.URL, "/api/v1/verifications", "", first)
		firstDone <- r
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !spoolHolds(n.Dir, 80<<10); {
		time.Sleep(20 * time.Millisecond)
	}
	resp, b, _ = rawPost(t, n.URL, "/api/v1/verifications", "", text(40<<10))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"temp_space_full"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a document finding the space taken: %s Retry-After %q %s", resp.Status, resp.Header.Get("Retry-After"), b)
	}
	close(release)
	if r := <-firstDone; r.StatusCode != http.StatusOK {
		t.Errorf("the first upload: %s", r.Status)
	}
	resp, b, _ = rawPost(t, n.URL, "/api/v1/verifications", "", text(40<<10))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("once the space is free again: %s %s", resp.Status, b)
	}
	noSpool(t, n.Dir)
}

// blockUntil is a reader that returns EOF once c is closed.
type blockUntil chan struct{}

func (c blockUntil) Read([]byte) (int, error) {
	<-c
	return 0, io.EOF
}

// spoolHolds reports whether spool files in dir hold at least n bytes.
func spoolHolds(dir string, n int64) bool {
	files, _ := filepath.Glob(filepath.Join(dir, seal.SpoolPrefix+"*"))
	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	return total >= n
}

// TestVerificationConcurrencyAndRate: beyond verify.concurrency and its
// queue a verification gets 429 verification_busy, and beyond its
// perSource rate 429 verification_rate_limited, both with Retry-After.
func TestVerificationConcurrencyAndRate(t *testing.T) {
	n := newNode(t, func(doc map[string]any) {
		doc["verify"] = map[string]any{"concurrency": 1, "queue": 1, "maxWait": "200ms", "perSource": map[string]any{"rate": 0.1, "burst": 3}}
	})
	check := func(what string, resp *http.Response, b []byte, status int, code string) {
		t.Helper()
		if resp.StatusCode != status || (code != "" && !strings.Contains(string(b), `"code":"`+code+`"`)) {
			t.Errorf("%s: %s %s", what, resp.Status, b)
		}
		if status == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", what)
		}
	}
	release := make(chan struct{})
	firstDone := make(chan *http.Response, 1)
	go func() {
		r, _, _ := rawPost(t, n.URL, "/api/v1/verifications", "", io.MultiReader(strings.NewReader("held"), blockUntil(release)))
		firstDone <- r
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !spoolHolds(n.Dir, 4); {
		time.Sleep(20 * time.Millisecond)
	}
	resp, b := n.post(t, "/api/v1/verifications", "", "", "", strings.NewReader("second"))
	check("while the one slot is taken", resp, b, http.StatusTooManyRequests, "verification_busy")
	close(release)
	if r := <-firstDone; r.StatusCode != http.StatusOK {
		t.Errorf("the first verification: %s", r.Status)
	}
	// Two of the burst of three are spent.
	resp, b = n.post(t, "/api/v1/verifications", "", "", "", strings.NewReader("third"))
	check("the last of the burst", resp, b, http.StatusOK, "")
	resp, b = n.post(t, "/api/v1/verifications", "", "", "", strings.NewReader("fourth"))
	check("past the burst", resp, b, http.StatusTooManyRequests, "verification_rate_limited")
}

// TestLimitSettingsAreChecked: the bounds' settings refuse typos and
// negative values, naming them.
func TestLimitSettingsAreChecked(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(doc map[string]any)
		want string
	}{
		{"http typo", func(doc map[string]any) { doc["http"] = map[string]any{"bodyTimout": "1s"} }, "bodyTimout"},
		{"negative body timeout", func(doc map[string]any) { doc["http"] = map[string]any{"bodyTimeout": "-1s"} }, "bodyTimeout"},
		{"negative body rate", func(doc map[string]any) { doc["http"] = map[string]any{"minBodyRate": -1} }, "minBodyRate"},
		{"verify typo", func(doc map[string]any) { doc["verify"] = map[string]any{"maxDocSize": 1} }, "maxDocSize"},
		{"negative verify size", func(doc map[string]any) { doc["verify"] = map[string]any{"maxDocumentSize": -1} }, "verify"},
		{"negative temp space", func(doc map[string]any) { doc["seal"].(map[string]any)["maxTempSpace"] = -1 }, "maxTempSpace"},
		{"metrics typo", func(doc map[string]any) { doc["metrics"] = map[string]any{"address": "127.0.0.1:9090"} }, "address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, cfg := nodeConfig(t, tt.edit)
			srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				srv.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %q", err, tt.want)
			}
		})
	}
}
