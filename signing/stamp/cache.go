package stamp

import "sync"

// boundedCache keeps results that many seals share — the stamp's font
// subsets and logo images — so that they are made once, not for every
// seal. It holds at most max entries and forgets an arbitrary one when
// full. Safe for concurrent use; two callers missing the same key at once
// may both make the value.
type boundedCache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[string]V
}

func newBoundedCache[V any](max int) *boundedCache[V] {
	return &boundedCache[V]{max: max, m: map[string]V{}}
}

// get returns the value for key, made by build when it is not cached.
// Errors are not cached.
func (c *boundedCache[V]) get(key string, build func() (V, error)) (V, error) {
	c.mu.Lock()
	v, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := build()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = v
	c.mu.Unlock()
	return v, nil
}
