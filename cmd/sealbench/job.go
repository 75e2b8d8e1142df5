package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// jobResult is what one batch job measured.
type jobResult struct {
	docs    int
	took    time.Duration // from submission to the job's end
	state   string
	done    int
	peakRSS int64 // the node's peak resident set during the job (0 without a PID)
}

// job submits n copies of the target's document as one batch job (a ZIP of
// stored entries, so the archive costs no compression), polls it until it
// ends, and samples the node's resident memory meanwhile.
func (t *target) job(ctx context.Context, n, pid int, format, level string) (*jobResult, error) {
	var archive bytes.Buffer
	zw := zip.NewWriter(&archive)
	ext := ".bin"
	if format == "pades" {
		ext = ".pdf"
	}
	for i := range n {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("doc-%05d%s", i+1, ext), Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(t.doc); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	base := t.base
	q := url.Values{"format": {format}}
	if level != "" {
		q.Set("level", level)
	}
	res := &jobResult{docs: n}
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		for {
			if pid > 0 {
				if rss, err := rssOf(pid); err == nil {
					res.peakRSS = max(res.peakRSS, rss)
				}
			}
			select {
			case <-stopRSS:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stopRSS); <-rssDone }()

	start := time.Now()
	var st struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Counts struct {
			Done int `json:"done"`
		} `json:"counts"`
	}
	status, err := t.call(ctx, http.MethodPost, base+"/api/v1/jobs?"+q.Encode(), "application/zip", archive.Bytes(), &st)
	if err != nil {
		return nil, err
	}
	if status != http.StatusAccepted {
		return nil, fmt.Errorf("POST /api/v1/jobs answered %d", status)
	}
	for deadline := time.Now().Add(30 * time.Minute); ; {
		switch st.State {
		case "done", "failed", "cancelled":
			res.took, res.state, res.done = time.Since(start), st.State, st.Counts.Done
			_, _ = t.call(ctx, http.MethodDelete, base+"/api/v1/jobs/"+st.ID, "", nil, nil)
			return res, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("job %s did not end within 30 minutes (state %s)", st.ID, st.State)
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if status, err := t.call(ctx, http.MethodGet, base+"/api/v1/jobs/"+st.ID, "", nil, &st); err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("GET /api/v1/jobs/%s: %d %v", st.ID, status, err)
		}
	}
}

// call makes one authenticated request and decodes a JSON answer into v.
func (t *target) call(ctx context.Context, method, u, contentType string, body []byte, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(t.id, t.secret)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, err
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
