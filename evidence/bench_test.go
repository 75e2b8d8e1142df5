package evidence

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
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

// proveLogs holds the logs BenchmarkEvidenceProve built, by size: the
// testing package calls a benchmark more than once (b.N = 1 first), and a
// log of millions of leaves is built only once per process.
var proveLogs = map[int]*proveLog{}

type proveLog struct {
	dir  string
	load float64 // leaves/s while building
}

// TestMain removes the benchmark logs, which outlive single benchmark runs.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, p := range proveLogs {
		os.RemoveAll(p.dir)
	}
	os.Exit(code)
}

// BenchmarkEvidenceProve measures Prove (look-up by document hash, newest
// checkpoint, inclusion proof) on a log of SEALGATE_BENCH_LEAVES leaves, and
// reports the database bytes per leaf and the rate the log was built at.
func BenchmarkEvidenceProve(b *testing.B) {
	ctx := context.Background()
	n := benchLeaves(b)
	p := proveLogs[n]
	if p == nil {
		dir, err := os.MkdirTemp("", "evidence-prove-bench")
		if err != nil {
			b.Fatal(err)
		}
		p = &proveLog{dir: dir}
		proveLogs[n] = p
	}
	l := openLog(b, p.dir, Options{})
	if l.Size() < uint64(n) {
		start := time.Now()
		const per = 10_000
		for from := int(l.Size()); from < n; from += per {
			if _, err := l.AppendBatch(ctx, testEntries(from, min(per, n-from))); err != nil {
				b.Fatal(err)
			}
		}
		p.load = float64(n) / time.Since(start).Seconds()
		if _, err := l.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := l.db.Read().Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, f := range []string{"sealgate.db", "sealgate.db-wal"} {
		if st, err := os.Stat(filepath.Join(p.dir, f)); err == nil {
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
	b.ReportMetric(p.load, "load-leaves/s")
}
