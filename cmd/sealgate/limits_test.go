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
)

// TestAnonymousPasswordBurstKeepsMemoryBounded runs the real binary with its
// development defaults and sends 200 parallel requests with wrong Basic
// passwords (argon2id, 64 MiB each). Every answer must be 401, or 429 with
// Retry-After, and the process's peak RSS must stay under 400 MB.
func TestAnonymousPasswordBurstKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	data := filepath.Join(t.TempDir(), "data")
	d := startServe(t, data, freeAddr(t))
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
	peak, after := procKiB(t, pid, "VmHWM"), procKiB(t, pid, "VmRSS")
	t.Logf("answers %v; RSS before %d MB, peak %d MB, after %d MB", counts, before/1024, peak/1024, after/1024)
	if peak > 400*1000 {
		t.Errorf("peak RSS %d MB, want under 400 MB", peak/1024)
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
