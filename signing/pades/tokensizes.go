package pades

import (
	"context"
	"crypto"
	"sync"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
)

// TokenSizes is a Timestamper that remembers the largest token its
// authority returned for each imprint hash. Seal sizes a B-T signature's
// placeholder from it instead of asking the authority for a sample token
// first, which halves the requests per seal. A token larger than any before
// still seals (see Seal) and raises the size for the next seals.
type TokenSizes struct {
	ts    signing.Timestamper
	mu    sync.Mutex
	sizes map[crypto.Hash]int
}

// RememberTokenSizes wraps ts; wrap a node's Timestamper once and use the
// result for every seal.
func RememberTokenSizes(ts signing.Timestamper) *TokenSizes {
	return &TokenSizes{ts: ts, sizes: map[crypto.Hash]int{}}
}

// Timestamp asks the authority and notes the token's size.
func (t *TokenSizes) Timestamp(ctx context.Context, digest []byte, h crypto.Hash) ([]byte, error) {
	tok, err := t.ts.Timestamp(ctx, digest, h)
	if err == nil {
		t.mu.Lock()
		t.sizes[h] = max(t.sizes[h], len(tok))
		t.mu.Unlock()
	}
	return tok, err
}

// TimestampHash is the imprint hash the wrapped authority wants (0: any).
func (t *TokenSizes) TimestampHash() crypto.Hash {
	if th, ok := t.ts.(cms.TimestampHasher); ok {
		return th.TimestampHash()
	}
	return 0
}

// Largest is the size of the largest token returned for hash h so far
// (0 before the first).
func (t *TokenSizes) Largest(h crypto.Hash) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sizes[h]
}
