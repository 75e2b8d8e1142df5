package tsa_test

import (
	"context"
	"crypto"
	"testing"

	"github.com/sealgate/sealgate/tsa"
)

// BenchmarkTSATimestamp obtains tokens from the development responder over
// loopback HTTP, checked by the client as in sealing (B-T).
func BenchmarkTSATimestamp(b *testing.B) {
	a := newAuthority(b, tsa.ResponderOptions{})
	c, err := tsa.NewClient(tsa.ClientConfig{URL: a.server.URL})
	if err != nil {
		b.Fatal(err)
	}
	d := sum(crypto.SHA256, []byte("signature value"))
	for b.Loop() {
		if _, err := c.Timestamp(context.Background(), d, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}
