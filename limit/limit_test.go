package limit

import (
	"bytes"
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/fault"
)

func busy() *fault.Error { return fault.New(fault.TooMany, "test_busy", "busy") }

// TestGate: Concurrency tasks run, Queue more wait, the rest are refused at
// once with RetryAfter; a queued task gets the slot when one is freed, or is
// refused after MaxWait.
func TestGate(t *testing.T) {
	g := NewGate(GateSettings{Concurrency: 2, Queue: 1, MaxWait: 200 * time.Millisecond}, busy)
	ctx := context.Background()
	var leave []func()
	for range 2 {
		l, err := g.Enter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leave = append(leave, l)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var queuedErr error
	go func() {
		defer wg.Done()
		var l func()
		if l, queuedErr = g.Enter(ctx); queuedErr == nil {
			l()
		}
	}()
	for g.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err := g.Enter(ctx)
	if f := fault.As(err); f == nil || f.Code != "test_busy" || f.RetryAfter < time.Second {
		t.Fatalf("beyond the queue: %v, want test_busy with RetryAfter", err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("refusal beyond the queue took %s, want at once", d)
	}
	leave[0]()
	wg.Wait()
	if queuedErr != nil {
		t.Errorf("queued task: %v, want the freed slot", queuedErr)
	}
	// Both slots taken again: a queued task waits MaxWait, then is refused.
	l, err := g.Enter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l()
	defer leave[1]()
	start = time.Now()
	if _, err := g.Enter(ctx); fault.CodeOf(err) != "test_busy" {
		t.Errorf("after MaxWait: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("refused after %s, before MaxWait", d)
	}
}

// TestBuckets: a source gets Burst requests, then one per 1/Rate; other
// sources and IPv6 prefixes count apart; addresses of one /64 count together.
func TestBuckets(t *testing.T) {
	now := time.Unix(1e9, 0)
	b := NewBuckets(RateSettings{Rate: 2, Burst: 3}, 64, func() *fault.Error { return fault.New(fault.TooMany, "test_rate", "slow down") })
	b.now = func() time.Time { return now }
	a := netip.MustParseAddr("192.0.2.1")
	for i := range 3 {
		if err := b.Take(a); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	err := b.Take(a)
	if f := fault.As(err); f == nil || f.Code != "test_rate" || f.RetryAfter <= 0 {
		t.Fatalf("past the burst: %v", err)
	}
	if err := b.Take(netip.MustParseAddr("192.0.2.2")); err != nil {
		t.Errorf("another source: %v", err)
	}
	now = now.Add(500 * time.Millisecond)
	if err := b.Take(a); err != nil {
		t.Errorf("after 1/rate: %v", err)
	}
	v6 := netip.MustParseAddr("2001:db8:1:2::1")
	for range 3 {
		if err := b.Take(v6); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Take(netip.MustParseAddr("2001:db8:1:2::ffff")); err == nil {
		t.Error("another address of the same /64 got its own bucket")
	}
	if err := b.Take(netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Errorf("another /64: %v", err)
	}
	if err := b.Take(netip.Addr{}); err != nil {
		t.Errorf("no source address: %v", err)
	}
}

// TestBudget: writes count until released; past the budget a write fails
// (too large when the holder alone exceeds it).
func TestBudget(t *testing.T) {
	b := NewBudget(100, func(tooLarge bool) *fault.Error {
		if tooLarge {
			return fault.New(fault.TooLarge, "test_too_large", "too large")
		}
		return fault.New(fault.Unavailable, "test_full", "full")
	})
	var buf bytes.Buffer
	h1 := b.Writer(&buf)
	if _, err := h1.Write(make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	h2 := b.Writer(&buf)
	_, err := h2.Write(make([]byte, 50))
	if f := fault.As(err); f == nil || f.Code != "test_full" || f.RetryAfter <= 0 || h2.Refused == nil {
		t.Fatalf("second holder past the budget: %v", err)
	}
	if b.Used() != 60 {
		t.Errorf("used %d, want 60", b.Used())
	}
	h1.Release()
	if _, err := h2.Write(make([]byte, 50)); err != nil {
		t.Errorf("after release: %v", err)
	}
	if _, err := h2.Write(make([]byte, 51)); fault.CodeOf(err) != "test_too_large" {
		t.Errorf("holder alone past the budget: %v", err)
	}
	h2.Release()
	if b.Used() != 0 || buf.Len() != 110 {
		t.Errorf("used %d, written %d", b.Used(), buf.Len())
	}
}
