package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	dpdf "github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devsetup"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
)

// openSealKey opens the node's seal the way the node does: its signing
// section, its cards with the configured sessions, the seal's pooled key.
func openSealKey(ctx context.Context, data, sealID string) (*signing.Pool, signing.Key, error) {
	cfg, err := config.Load("", data)
	if err != nil {
		return nil, nil, err
	}
	// The development token lives in the data directory (as for sealgate).
	if conf := (devsetup.Layout{Dir: cfg.Data}).SoftHSMConf(); os.Getenv("SOFTHSM2_CONF") == "" {
		if _, err := os.Stat(conf); err == nil {
			os.Setenv("SOFTHSM2_CONF", conf)
		}
	}
	pc, ok, err := signing.LoadPoolConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	if !ok || len(pc.Seals) == 0 {
		return nil, nil, fmt.Errorf("%s configures no seal", data)
	}
	if sealID == "" {
		sealID = pc.Seals[0].ID
	}
	pool, err := signing.NewPool(ctx, pc, nil, pkcs11.Backend{}, softkey.Backend{})
	if err != nil {
		return nil, nil, err
	}
	key, err := pool.Key(sealID)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return pool, key, nil
}

// floorCallers is how many callers the in-process measurements use: enough
// to keep every session and core busy.
func floorCallers() int { return 2 * runtime.NumCPU() }

// rateOf runs op from callers goroutines for d and returns operations per
// second; the first error stops it.
func rateOf(callers int, d time.Duration, op func() error) (float64, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for time.Now().Before(end) {
				if err := op(); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), firstErr
}

// floorRates measures the raw token rate (one signature over a fixed
// digest) and the hash-and-sign floor (SHA-256 of doc, then one signature
// over it) on key, alternating in rounds so both see the same machine.
func floorRates(ctx context.Context, key signing.Key, doc []byte, d time.Duration) (raw, floor float64, err error) {
	digest := sha256.Sum256([]byte("sealbench"))
	rawOp := func() error {
		_, err := signing.SignContext(ctx, key, digest[:], crypto.SHA256)
		return err
	}
	floorOp := func() error {
		sum := sha256.Sum256(doc)
		_, err := signing.SignContext(ctx, key, sum[:], crypto.SHA256)
		return err
	}
	const rounds = 4
	var rawSum, floorSum float64
	for range rounds {
		r, err := rateOf(floorCallers(), d/(2*rounds), rawOp)
		if err != nil {
			return 0, 0, fmt.Errorf("raw signature: %w", err)
		}
		f, err := rateOf(floorCallers(), d/(2*rounds), floorOp)
		if err != nil {
			return 0, 0, fmt.Errorf("hash and sign: %w", err)
		}
		rawSum, floorSum = rawSum+r, floorSum+f
	}
	return rawSum / rounds, floorSum / rounds, nil
}

// pdfsignRate signs doc with digitorus/pdfsign in process with key, as
// another PAdES producer would (approval signature, no timestamp).
func pdfsignRate(key signing.Key, doc []byte, d time.Duration) (float64, error) {
	chain := key.Chain()
	return rateOf(floorCallers(), d, func() error {
		in := bytes.NewReader(doc)
		rdr, err := dpdf.NewReader(in, int64(len(doc)))
		if err != nil {
			return err
		}
		var out bytes.Buffer
		return sign.Sign(in, &out, rdr, int64(len(doc)), sign.SignData{
			Signature: sign.SignDataSignature{
				CertType: sign.ApprovalSignature,
				Info:     sign.SignDataSignatureInfo{Name: "sealbench", Date: time.Now()},
			},
			Signer:            key,
			DigestAlgorithm:   crypto.SHA256,
			Certificate:       chain[0],
			CertificateChains: [][]*x509.Certificate{chain},
		})
	})
}
