package signing

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"io"
	"sync"
	"time"
)

// Batch gathers the signatures of sealing runs that go on at the same time
// (the documents of one job) into SealKey.SignBatch calls, so that a remote
// credential authorizes them once and signs many per request. Each run
// seals with the Batch as its Key (pades.Seal, cms.CAdES, ... unchanged);
// its Sign waits until every expected run has asked for its signature, or
// until linger has passed since the first one asked, then one SignBatch
// signs them all. A Batch is for one job: make a new one per job.
type Batch struct {
	key    *SealKey
	linger time.Duration

	mu      sync.Mutex
	expect  int // runs that may still ask for a signature
	pending []*batchRequest
	timer   *time.Timer
}

// batchRequest is one run's digest waiting for its signature.
type batchRequest struct {
	ctx    context.Context
	digest []byte
	opts   crypto.SignerOpts
	sig    []byte
	err    error
	done   chan struct{}
}

// NewBatch returns a Batch for runs concurrent sealing runs of seal k.
// linger bounds how long a run waits for the others (a run that fails
// before signing should call Leave so that nobody waits for it).
func (k *SealKey) NewBatch(runs int, linger time.Duration) *Batch {
	return &Batch{key: k, linger: linger, expect: runs}
}

// Public returns the seal's public key.
func (b *Batch) Public() crypto.PublicKey { return b.key.Public() }

// Chain returns the seal certificate first, then its issuers.
func (b *Batch) Chain() []*x509.Certificate { return b.key.Chain() }

// Sign is SignContext without a bound; rand is ignored.
func (b *Batch) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return b.SignContext(context.Background(), digest, opts)
}

// SignContext queues digest and returns its signature once its batch was
// signed. ctx bounds this run's wait; the batch goes on for the others.
func (b *Batch) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	r := &batchRequest{ctx: ctx, digest: digest, opts: opts, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	b.flushLocked(false)
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.sig, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Leave tells the batch that one run will not ask for a signature (it
// failed before), so the others do not wait for it.
func (b *Batch) Leave() {
	b.mu.Lock()
	b.expect--
	b.flushLocked(false)
	b.mu.Unlock()
}

// flushLocked signs the pending requests when every expected run is in
// (or force is set), else makes sure the linger timer runs. b.mu is held.
func (b *Batch) flushLocked(force bool) {
	if len(b.pending) == 0 {
		return
	}
	if !force && len(b.pending) < b.expect {
		if b.timer == nil {
			b.timer = time.AfterFunc(b.linger, func() {
				b.mu.Lock()
				b.flushLocked(true)
				b.mu.Unlock()
			})
		}
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	reqs := b.pending
	b.pending = nil
	b.expect -= len(reqs)
	go b.sign(reqs)
}

// signKind tells apart the signer options one SignBatch call can share.
type signKind struct {
	hash crypto.Hash
	pss  bool
	salt int
}

func kindOf(opts crypto.SignerOpts) signKind {
	if p, ok := opts.(*rsa.PSSOptions); ok {
		return signKind{hash: p.HashFunc(), pss: true, salt: p.SaltLength}
	}
	return signKind{hash: opts.HashFunc()}
}

// sign signs reqs with one SignBatch per kind of signer options. The call
// lasts while any of the waiting runs still waits.
func (b *Batch) sign(reqs []*batchRequest) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waiting sync.WaitGroup
	waiting.Add(len(reqs))
	for _, r := range reqs {
		stop := context.AfterFunc(r.ctx, waiting.Done)
		defer func() {
			if stop() {
				waiting.Done()
			}
		}()
	}
	go func() { waiting.Wait(); cancel() }()

	groups := map[signKind][]*batchRequest{}
	var order []signKind
	for _, r := range reqs {
		k := kindOf(r.opts)
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		group := groups[k]
		digests := make([][]byte, len(group))
		for i, r := range group {
			digests[i] = r.digest
		}
		signCtx, by := WithSignedBy(ctx)
		sigs, err := b.key.SignBatch(signCtx, digests, group[0].opts)
		for i, r := range group {
			if err == nil {
				r.sig = sigs[i]
				reportCard(r.ctx, by.Card) // each run records the card that signed its batch
			}
			r.err = err
			close(r.done)
		}
	}
}
