package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// target is the seal endpoint with the caller's credentials and document.
type target struct {
	base        string // the node's base URL
	url         string
	id, secret  string
	doc         []byte
	contentType string
	client      *http.Client
}

func newTarget(base, id, secret, format, level string, doc []byte, conns int) *target {
	q := url.Values{"format": {format}}
	if level != "" {
		q.Set("level", level)
	}
	ct := "application/octet-stream"
	if format == "pades" {
		ct = "application/pdf"
	}
	tr := &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
		// The development server's certificate is for loopback only,
		// which checkLoopback already insists on.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback benchmark target
	}
	return &target{
		base: base, url: base + "/api/v1/seals?" + q.Encode(), id: id, secret: secret, doc: doc, contentType: ct,
		client: &http.Client{Transport: tr, Timeout: time.Minute},
	}
}

// seal sends one request and returns its status (0 when no answer came)
// and, for a 429, the Retry-After it was told.
func (t *target) seal(ctx context.Context) (int, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(t.doc))
	if err != nil {
		return 0, 0
	}
	req.SetBasicAuth(t.id, t.secret)
	req.Header.Set("Content-Type", t.contentType)
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0
	}
	// Reading the body to the end keeps the connection alive.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var retry time.Duration
	if resp.StatusCode == http.StatusTooManyRequests {
		if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && sec > 0 {
			retry = time.Duration(sec) * time.Second
		}
	}
	return resp.StatusCode, retry
}

// stepResult is what one load step measured.
type stepResult struct {
	name     string
	took     time.Duration
	statuses map[int]int
	// latencies are those of the seals made (2xx), sorted.
	latencies []time.Duration
	ok        int
}

func (r *stepResult) rate() float64 { return float64(r.ok) / r.took.Seconds() }

// quantile returns the q-quantile of the seals' latencies.
func (r *stepResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)))
	return r.latencies[min(i, len(r.latencies)-1)]
}

// failures counts answers other than 2xx, 429 apart from the rest.
func (r *stepResult) failures() (busy, other int) {
	for st, n := range r.statuses {
		switch {
		case st == http.StatusTooManyRequests:
			busy += n
		case st < 200 || st > 299:
			other += n
		}
	}
	return busy, other
}

// sample is one request's outcome.
type sample struct {
	status int
	took   time.Duration
}

// collector gathers samples from the workers of one step.
type collector struct {
	mu      sync.Mutex
	samples []sample
}

func (c *collector) add(s []sample) {
	c.mu.Lock()
	c.samples = append(c.samples, s...)
	c.mu.Unlock()
}

func (c *collector) result(name string, took time.Duration) *stepResult {
	r := &stepResult{name: name, took: took, statuses: map[int]int{}}
	for _, s := range c.samples {
		r.statuses[s.status]++
		if s.status >= 200 && s.status <= 299 {
			r.ok++
			r.latencies = append(r.latencies, s.took)
		}
	}
	slices.Sort(r.latencies)
	return r
}

// closedLoop runs c callers, each sending its next request as soon as the
// last one was answered, for warmup (not measured) and then d. A caller told
// to retry later (429) waits as long as Retry-After says, as a client should.
func (t *target) closedLoop(ctx context.Context, c int, warmup, d time.Duration) *stepResult {
	var col collector
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			var mine []sample
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				st, retry := t.seal(ctx)
				if t0.After(measureFrom) {
					mine = append(mine, sample{st, time.Since(t0)})
				}
				if retry > 0 {
					sleepCtx(ctx, min(retry, time.Until(end)))
				}
			}
			col.add(mine)
		})
	}
	wg.Wait()
	return col.result(fmt.Sprintf("c=%d", c), time.Since(measureFrom))
}

// paced offers rate requests per second for d, from as many callers as it
// takes (up to maxCallers). A request's latency counts from when it was
// due, so time spent waiting for a free caller is not hidden.
func (t *target) paced(ctx context.Context, rate float64, maxCallers int, d time.Duration) *stepResult {
	var col collector
	due := make(chan time.Time, maxCallers)
	start := time.Now()
	var wg sync.WaitGroup
	for range maxCallers {
		wg.Go(func() {
			var mine []sample
			for at := range due {
				st, _ := t.seal(ctx)
				mine = append(mine, sample{st, time.Since(at)})
			}
			col.add(mine)
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	for next := start; next.Before(start.Add(d)) && ctx.Err() == nil; next = next.Add(interval) {
		if wait := time.Until(next); wait > 0 {
			time.Sleep(wait)
		}
		due <- next
	}
	close(due)
	wg.Wait()
	return col.result(fmt.Sprintf("%.0f/s paced", rate), time.Since(start))
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
