package seal

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
)

// CodeSealBusy: the seal's cards have as many seals in progress and waiting
// as the queue allows; retry after Retry-After.
const CodeSealBusy fault.Code = "seal_busy"

// QueueSettings bound the seals in progress per seal: the "queue" mapping of
// the "seal" section of sealgate.yaml.
type QueueSettings struct {
	// PerSession is how many seals may be in progress per session open on
	// the cards holding the seal: one signing while others are read,
	// hashed, laid out and recorded. Default 4.
	PerSession int `yaml:"perSession"`
	// Length is how many more may wait for their turn. Default 4 × the
	// number in progress.
	Length int `yaml:"length"`
	// MaxWait is how long one waits before it is refused. Default 1s.
	MaxWait time.Duration `yaml:"maxWait"`
}

// SessionCounter tells how many signing sessions serve a seal;
// signing.Pool implements it.
type SessionCounter interface {
	Sessions(sealID string) int
}

// admission holds one gate per seal, made on the seal's first request.
type admission struct {
	settings QueueSettings
	keys     Keys
	sessions func(sealID string) int
	mu       sync.Mutex
	gates    map[string]*limit.Gate
}

func newAdmission(q QueueSettings, keys Keys) *admission {
	if q.PerSession <= 0 {
		q.PerSession = 4
	}
	if q.MaxWait <= 0 {
		q.MaxWait = time.Second
	}
	a := &admission{settings: q, keys: keys, gates: map[string]*limit.Gate{}, sessions: func(string) int { return runtime.GOMAXPROCS(0) }}
	if sc, ok := keys.(SessionCounter); ok {
		a.sessions = sc.Sessions
	}
	return a
}

// enter waits for a turn to seal with sealID; it fails with seal_busy when
// the queue is full or the wait exceeds MaxWait.
func (a *admission) enter(ctx context.Context, sealID string) (func(), error) {
	// Names no seal has share one gate, so a caller cannot grow the map;
	// authorization refuses them later like any seal they may not use.
	if _, err := a.keys.Key(sealID); err != nil {
		sealID = ""
	}
	a.mu.Lock()
	g := a.gates[sealID]
	if g == nil {
		g = limit.NewGate(limit.GateSettings{
			Concurrency: a.settings.PerSession * max(a.sessions(sealID), 1),
			Queue:       a.settings.Length,
			MaxWait:     a.settings.MaxWait,
		}, func() *fault.Error {
			return fault.New(fault.TooMany, CodeSealBusy, "seal %q has as many documents in progress and waiting as it takes; try again shortly", sealID)
		})
		a.gates[sealID] = g
	}
	a.mu.Unlock()
	return g.Enter(ctx)
}

// load reports the seals of sealID in progress and waiting for a turn.
func (a *admission) load(sealID string) (inProgress, waiting int) {
	a.mu.Lock()
	g := a.gates[sealID]
	a.mu.Unlock()
	if g == nil {
		return 0, 0
	}
	return g.Load()
}
