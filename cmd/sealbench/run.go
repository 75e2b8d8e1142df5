package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/devsetup"
)

// run measures the floor (when asked), then every load step, and prints
// one table.
func run(ctx context.Context, o options, out io.Writer) error {
	doc, err := os.ReadFile(o.Doc)
	if err != nil {
		return err
	}
	id, secret, sealID := o.ClientID, o.Secret(), ""
	if id == "" || secret == "" {
		creds, err := readCredentials(o.Data)
		if err != nil {
			return err
		}
		id, secret, sealID = creds.ClientID, creds.ClientSecret, creds.Seal
	}
	level := o.Level
	if level == "" {
		level = "node's default"
	}
	fmt.Fprintf(out, "sealbench: %s of %s (%.1f KiB) at %s, %s\n", o.Format, o.Doc, float64(len(doc))/1024, level, o.URL)

	var floor float64
	if o.Floor || o.Pdfsign {
		pool, key, err := openSealKey(ctx, o.Data, sealID)
		if err != nil {
			return fmt.Errorf("opening the node's seal for the floor: %w", err)
		}
		raw, f, err := floorRates(ctx, key, doc, max(o.Duration, time.Second))
		if err != nil {
			pool.Close()
			return err
		}
		floor = f
		fmt.Fprintf(out, "token, %d callers: %.0f raw signatures/s; hash-and-sign floor of this document: %.0f/s (×%.2f of raw)\n",
			floorCallers(), raw, floor, floor/raw)
		if o.Pdfsign {
			r, err := pdfsignRate(key, doc, o.Duration)
			if err != nil {
				pool.Close()
				return fmt.Errorf("pdfsign: %w", err)
			}
			fmt.Fprintf(out, "digitorus/pdfsign in process, same key, B-B: %.0f/s (×%.2f of floor)\n", r, r/floor)
		}
		pool.Close()
	}

	maxC := 0
	for _, c := range o.Concurrency {
		maxC = max(maxC, c)
	}
	if o.Overload {
		maxC *= 4
	}
	t := newTarget(strings.TrimRight(o.URL, "/"), id, secret, o.Format, o.Level, doc, maxC)
	const rowFormat = "%-22s %8s %7s %8s %8s %8s %7s %6s  %s\n"
	fmt.Fprintf(out, rowFormat, "step", "seals/s", "×floor", "p50 ms", "p99 ms", "p999 ms", "2xx", "429", "other")
	row := func(r *stepResult) {
		busy, other := r.failures()
		ratio := "-"
		if floor > 0 {
			ratio = strconv.FormatFloat(r.rate()/floor, 'f', 2, 64)
		}
		fmt.Fprintf(out, rowFormat, r.name, strconv.FormatFloat(r.rate(), 'f', 0, 64), ratio,
			ms(r.quantile(0.50)), ms(r.quantile(0.99)), ms(r.quantile(0.999)), strconv.Itoa(r.ok), strconv.Itoa(busy), otherStatuses(r, other))
	}
	var best *stepResult
	bestC := 0
	for _, c := range o.Concurrency {
		r := t.closedLoop(ctx, c, o.Warmup, o.Duration)
		row(r)
		if best == nil || r.rate() > best.rate() {
			best, bestC = r, c
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if best == nil || best.ok == 0 {
		return fmt.Errorf("no seal succeeded: answers by status %v", best.statuses)
	}
	if o.Overload {
		r := t.closedLoop(ctx, 4*bestC, o.Warmup, o.Duration)
		r.name = fmt.Sprintf("c=%d (4×best)", 4*bestC)
		row(r)
		row(t.paced(ctx, best.rate()/2, 4*bestC, o.Duration))
	}
	if o.Job > 0 {
		j, err := t.job(ctx, o.Job, o.PID, o.Format, o.Level)
		if err != nil {
			return fmt.Errorf("batch job: %w", err)
		}
		rate := float64(j.done) / j.took.Seconds()
		fmt.Fprintf(out, "batch job of %d documents: %s, %d sealed in %s: %.0f documents/s = ×%.2f of the best single-request rate (%.0f seals/s at c=%d)",
			j.docs, j.state, j.done, j.took.Round(time.Millisecond), rate, rate/best.rate(), best.rate(), bestC)
		if floor > 0 {
			fmt.Fprintf(out, ", ×%.2f of floor", rate/floor)
		}
		if j.peakRSS > 0 {
			fmt.Fprintf(out, "; node peak RSS during the job %.1f MiB", mib(j.peakRSS))
		}
		fmt.Fprintln(out)
	}
	if o.Soak > 0 {
		if err := soak(ctx, t, bestC, o, row, out); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// soak loads the node at concurrency c for o.Soak and reports its resident
// memory after the first minute (or a third of the run, when shorter) and
// at the end.
func soak(ctx context.Context, t *target, c int, o options, row func(*stepResult), out io.Writer) error {
	early := min(time.Minute, o.Soak/3)
	first := t.closedLoop(ctx, c, 0, early)
	rssEarly, err := rssOf(o.PID)
	if err != nil {
		return err
	}
	rest := t.closedLoop(ctx, c, 0, o.Soak-early)
	rssEnd, err := rssOf(o.PID)
	if err != nil {
		return err
	}
	first.name = fmt.Sprintf("soak c=%d first %s", c, early)
	rest.name = fmt.Sprintf("soak c=%d rest %s", c, o.Soak-early)
	row(first)
	row(rest)
	fmt.Fprintf(out, "node RSS after %s: %.1f MiB; after %s: %.1f MiB (%+.1f %%)\n", early, mib(rssEarly), o.Soak, mib(rssEnd),
		100*(float64(rssEnd)/float64(rssEarly)-1))
	return nil
}

func readCredentials(data string) (*devsetup.Credentials, error) {
	if data == "" {
		return nil, fmt.Errorf("give -data (dev-credentials.json) or -id and -secret-env")
	}
	b, err := os.ReadFile(devsetup.Layout{Dir: data}.CredentialsFile())
	if err != nil {
		return nil, err
	}
	var c devsetup.Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", devsetup.Layout{Dir: data}.CredentialsFile(), err)
	}
	return &c, nil
}

// rssOf reads a process's resident set size in bytes from /proc.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// otherStatuses lists failures other than 429 by status ("0" is no answer).
func otherStatuses(r *stepResult, n int) string {
	if n == 0 {
		return "0"
	}
	var parts []string
	for st, k := range r.statuses {
		if st != 429 && (st < 200 || st > 299) {
			parts = append(parts, fmt.Sprintf("%d×%d", k, st))
		}
	}
	return strconv.Itoa(n) + " (" + strings.Join(parts, " ") + ")"
}
