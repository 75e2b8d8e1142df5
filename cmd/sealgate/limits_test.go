package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/loopback"
)

// TestAnonymousPasswordBurstKeepsMemoryBounded runs the real binary with its
// development defaults and sends 200 parallel requests with wrong Basic
// passwords (argon2id, 64 MiB each). Every answer must be 401, or 429 with
// Retry-After; the process's peak RSS must stay under 400 MB and fall back
// under 100 MB once the burst is over.
func TestAnonymousPasswordBurstKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := startServe(t, data, loopback.FreeAddr(t))
	pid := d.cmd.Process.Pid
	before := procKiB(t, pid, "VmRSS")

	const callers = 200
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: callers, MaxIdleConnsPerHost: callers}, Timeout: time.Minute}
	statuses := make([]int, callers)
	retry := make([]string, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, d.url+"/api/v1/seals?format=cades", strings.NewReader("order 4711"))
			if err != nil {
				errs[i] = err
				return
			}
			req.SetBasicAuth(fmt.Sprintf("alice-%d", i%7), fmt.Sprintf("wrong-%d", i))
			<-start
			resp, err := client.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i], retry[i] = resp.StatusCode, resp.Header.Get("Retry-After")
		})
	}
	close(start)
	wg.Wait()
	counts := map[int]int{}
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		counts[statuses[i]]++
		switch {
		case statuses[i] == http.StatusUnauthorized:
		case statuses[i] == http.StatusTooManyRequests:
			if n, err := strconv.Atoi(retry[i]); err != nil || n < 1 {
				t.Errorf("request %d: 429 with Retry-After %q", i, retry[i])
			}
		default:
			t.Errorf("request %d: status %d, want 401 or 429", i, statuses[i])
		}
	}
	peak, end := procKiB(t, pid, "VmHWM"), procKiB(t, pid, "VmRSS")
	// Once no check has run for a second, their memory goes back: what
	// stays is less than two checks take (the server idles near 35 MB).
	const residue = 100 << 10
	after := end
	for deadline := time.Now().Add(10 * time.Second); after > residue && time.Now().Before(deadline); after = procKiB(t, pid, "VmRSS") {
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("answers %v; RSS before %d MB, peak %d MB, at the end of the burst %d MB, a little later %d MB", counts, before>>10, peak>>10, end>>10, after>>10)
	if peak > 400*1000 {
		t.Errorf("peak RSS %d MB, want under 400 MB", peak>>10)
	}
	if after > residue {
		t.Errorf("RSS stays at %d MB after the burst, want under %d MB", after>>10, residue>>10)
	}
	if counts[http.StatusUnauthorized] == 0 {
		t.Error("no password was checked at all")
	}
}

// procKiB reads a field (VmRSS, VmHWM) of /proc/PID/status, in KiB.
func procKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
