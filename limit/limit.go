// Package limit bounds the work anonymous callers can make sealgate do:
// a Gate admits a fixed number of concurrent tasks with a short queue, a
// Buckets limits the rate per source address, and a Budget bounds the bytes
// held in temporary files. Each refuses with a *fault.Error that carries
// RetryAfter, so every transport can tell the caller when to come back.
package limit

import (
	"context"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// GateSettings configure a Gate (a yaml mapping in the sections that use one).
type GateSettings struct {
	// Concurrency is how many tasks run at once. Default: the number of
	// CPUs Go uses (GOMAXPROCS), unless the owner sets another default.
	Concurrency int `yaml:"concurrency"`
	// Queue is how many tasks may wait for a slot; beyond it they are
	// refused at once. Default 4 × Concurrency.
	Queue int `yaml:"queue"`
	// MaxWait is how long a queued task waits before it is refused. Default 2s.
	MaxWait time.Duration `yaml:"maxWait"`
}

// WithDefaults fills zero fields; concurrency is the default Concurrency.
func (s GateSettings) WithDefaults(concurrency int) GateSettings {
	if s.Concurrency <= 0 {
		s.Concurrency = concurrency
	}
	if s.Concurrency <= 0 {
		s.Concurrency = runtime.GOMAXPROCS(0)
	}
	if s.Queue <= 0 {
		s.Queue = 4 * s.Concurrency
	}
	if s.MaxWait <= 0 {
		s.MaxWait = 2 * time.Second
	}
	return s
}

// Gate admits at most Concurrency tasks at once and lets at most Queue more
// wait, each for at most MaxWait. A refused task has done no work, so an
// overload costs the server nothing but the refusal.
type Gate struct {
	slots   chan struct{}
	waiting atomic.Int64
	s       GateSettings
	busy    func() *fault.Error
}

// NewGate returns a Gate for s (after WithDefaults); busy makes the error a
// refused task gets (its RetryAfter is set by the Gate).
func NewGate(s GateSettings, busy func() *fault.Error) *Gate {
	s = s.WithDefaults(0)
	return &Gate{slots: make(chan struct{}, s.Concurrency), s: s, busy: busy}
}

// Settings returns the gate's settings with defaults applied.
func (g *Gate) Settings() GateSettings { return g.s }

// Enter waits for a slot and returns the function that frees it; it fails
// at once when the queue is full, and after MaxWait or when ctx ends.
func (g *Gate) Enter(ctx context.Context) (func(), error) {
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	default:
	}
	if g.waiting.Add(1) > int64(g.s.Queue) {
		g.waiting.Add(-1)
		return nil, g.refuse()
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.s.MaxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	case <-t.C:
		return nil, g.refuse()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (g *Gate) leave() { <-g.slots }

// Load reports how many tasks hold a turn and how many wait for one.
func (g *Gate) Load() (running, waiting int) {
	return len(g.slots), int(g.waiting.Load())
}

// refuse suggests retrying after the longest a queued task waits: by then
// the queue has turned over at least once.
func (g *Gate) refuse() error {
	return g.busy().Retry(max(g.s.MaxWait, time.Second))
}

// RateSettings configure per-source token buckets.
type RateSettings struct {
	// Rate is the sustained number of requests per second from one source.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests one source may make at once.
	Burst int `yaml:"burst"`
}

// maxSources bounds the sources a Buckets remembers: past it, sources
// whose bucket is full again are forgotten (they lose nothing by it).
const maxSources = 1 << 16

// Buckets is a token bucket per source: IPv4 addresses, and IPv6 prefixes
// of IPv6Prefix bits (a client usually holds a whole /64).
type Buckets struct {
	rate, burst float64
	ipv6Prefix  int
	limited     func() *fault.Error
	now         func() time.Time

	mu      sync.Mutex
	sources map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBuckets returns per-source buckets; limited makes the error a refused
// request gets. A zero rate or burst disables the limit (Take always allows).
func NewBuckets(s RateSettings, ipv6Prefix int, limited func() *fault.Error) *Buckets {
	if ipv6Prefix == 0 {
		ipv6Prefix = 64
	}
	return &Buckets{rate: s.Rate, burst: float64(s.Burst), ipv6Prefix: ipv6Prefix, limited: limited, now: time.Now,
		sources: map[netip.Prefix]*bucket{}}
}

// Take spends one token of src's bucket, or refuses with the time until
// the next token. An unknown source (not from the network) is not limited.
func (b *Buckets) Take(src netip.Addr) error {
	if b.rate <= 0 || b.burst < 1 || !src.IsValid() {
		return nil
	}
	src = src.Unmap()
	bits := 32
	if src.Is6() {
		bits = b.ipv6Prefix
	}
	key, _ := src.Prefix(bits)
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.sources[key]
	if bk == nil {
		if len(b.sources) >= maxSources {
			b.forgetFull(now)
		}
		bk = &bucket{tokens: b.burst, at: now}
		b.sources[key] = bk
	}
	bk.tokens = min(b.burst, bk.tokens+now.Sub(bk.at).Seconds()*b.rate)
	bk.at = now
	if bk.tokens < 1 {
		wait := time.Duration((1 - bk.tokens) / b.rate * float64(time.Second))
		return b.limited().Retry(max(wait, time.Second))
	}
	bk.tokens--
	return nil
}

// forgetFull drops the sources whose buckets have refilled.
func (b *Buckets) forgetFull(now time.Time) {
	for k, bk := range b.sources {
		if bk.tokens+now.Sub(bk.at).Seconds()*b.rate >= b.burst {
			delete(b.sources, k)
		}
	}
}

// Budget bounds the bytes in flight across holders (temporary files being
// written and not yet removed). The zero Budget, and a nil one, is unbounded.
type Budget struct {
	max  int64
	used atomic.Int64
	full func(tooLarge bool) *fault.Error
}

// NewBudget returns a Budget of max bytes (0: unbounded). full makes the
// error of a refused write: tooLarge when the holder alone would exceed the
// whole budget, so waiting would not help.
func NewBudget(max int64, full func(tooLarge bool) *fault.Error) *Budget {
	return &Budget{max: max, full: full}
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Writer returns w with every byte written counted against the budget
// until Release.
func (b *Budget) Writer(w io.Writer) *Held {
	return &Held{w: w, b: b}
}

// Held is a writer whose bytes count against a Budget.
type Held struct {
	w    io.Writer
	b    *Budget
	held int64
	// Refused is the error of the last write the budget refused, if any.
	Refused error
}

// Write reserves len(p) bytes, then writes them.
func (h *Held) Write(p []byte) (int, error) {
	if err := h.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	return h.w.Write(p)
}

func (h *Held) reserve(n int64) error {
	b := h.b
	if b == nil || b.max <= 0 {
		return nil
	}
	if used := b.used.Add(n); used > b.max {
		b.used.Add(-n)
		tooLarge := h.held+n > b.max
		f := b.full(tooLarge)
		if !tooLarge {
			// Space frees as documents in flight finish.
			f = f.Retry(5 * time.Second)
		}
		h.Refused = f
		return f
	}
	h.held += n
	return nil
}

// Release returns the held bytes to the budget (the file is gone).
func (h *Held) Release() {
	if h.b != nil && h.held > 0 {
		h.b.used.Add(-h.held)
	}
	h.held = 0
}
