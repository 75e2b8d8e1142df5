package evidence

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchLeaves is the log size BenchmarkEvidenceProve builds:
// SEALGATE_BENCH_LEAVES, default 1,000,000 (the target is 10,000,000).
func benchLeaves(b *testing.B) int {
	if s := os.Getenv("SEALGATE_BENCH_LEAVES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SEALGATE_BENCH_LEAVES=%q is not a positive number", s)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkEvidenceAppend measures append throughput in leaves/s: bulk
// through AppendBatch, and one leaf per Append from many goroutines as the
// sealing service calls it (group commit).
func BenchmarkEvidenceAppend(b *testing.B) {
	ctx := context.Background()
	b.Run("batch", func(b *testing.B) {
		l := openLog(b, b.TempDir(), Options{})
		const per = 1000
		batch := testEntries(0, per)
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if _, err := l.AppendBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*per)/time.Since(start).Seconds(), "leaves/s")
	})
	b.Run("concurrent", func(b *testing.B) {
		l := openLog(b, b.TempDir(), Options{})
		entries := testEntries(0, 4096)
		b.SetParallelism(256) // many sealing requests in flight
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := l.Append(ctx, entries[i%len(entries)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "leaves/s")
		b.ReportMetric(float64(b.N)/float64(l.commits.Load()), "leaves/commit")
	})
}

// BenchmarkEvidenceProve measures Prove (look-up by document hash, newest
// checkpoint, inclusion proof) on a log of SEALGATE_BENCH_LEAVES leaves, and
// reports the database bytes per leaf and the bulk load rate.
func BenchmarkEvidenceProve(b *testing.B) {
	ctx := context.Background()
	n := benchLeaves(b)
	dir := b.TempDir()
	l := openLog(b, dir, Options{})
	start := time.Now()
	const per = 10_000
	var wg sync.WaitGroup
	for from := 0; from < n; from += per {
		k := min(per, n-from)
		if _, err := l.AppendBatch(ctx, testEntries(from, k)); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	load := float64(n) / time.Since(start).Seconds()
	if _, err := l.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := l.db.Read().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, f := range []string{"sealgate.db", "sealgate.db-wal"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			bytes += st.Size()
		}
	}
	docs := make([]SHA256, 1024)
	for i := range docs {
		docs[i] = testEntry(int(uint64(i) * 2654435761 % uint64(n))).SealedSHA256
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Prove(ctx, docs[i%len(docs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "leaves")
	b.ReportMetric(float64(bytes)/float64(n), "bytes/leaf")
	b.ReportMetric(load, "load-leaves/s")
}
