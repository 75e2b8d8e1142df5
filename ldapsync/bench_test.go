package ldapsync

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

const benchUsers, benchGroups = 10000, 500

// peakMemory measures the peak heap in use (sampled) and the peak resident
// set size (the kernel's high-water mark) while a run goes, to show a
// sync's memory follows the diff it computes, not the directory's size or
// the page size.
type peakMemory struct {
	stop               chan struct{}
	wg                 sync.WaitGroup
	baseHeap, peakHeap uint64
	baseRSS, peakRSS   uint64
}

func startPeakMemory() *peakMemory {
	runtime.GC()
	// Writing 5 to clear_refs resets the kernel's peak RSS (VmHWM) to the
	// current RSS, so VmHWM then measures this run alone (Linux).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	p := &peakMemory{stop: make(chan struct{}), baseHeap: heapInUse(), baseRSS: procStatus("VmRSS:")}
	p.peakHeap = p.baseHeap
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			p.peakHeap = max(p.peakHeap, heapInUse())
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// report stops sampling and reports growth over the baseline in MiB.
func (p *peakMemory) report(b *testing.B) {
	close(p.stop)
	p.wg.Wait()
	p.peakRSS = max(procStatus("VmHWM:"), p.baseRSS)
	b.ReportMetric(float64(p.peakHeap-p.baseHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(p.peakRSS-p.baseRSS)/(1<<20), "peak-rss-MiB")
}

func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// procStatus reads a size field (VmRSS:, VmHWM:) of /proc/self/status in
// bytes (Linux); 0 elsewhere.
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkLDAPSyncFull reads 10,000 users in 500 nested groups from slapd.
// import: into an empty sealgate (every user and membership added);
// unchanged: a full re-read that finds nothing to change; both at the
// default page size, and unchanged again at page sizes 100 and 5000 to show
// memory does not follow the page size either.
func BenchmarkLDAPSyncFull(b *testing.B) {
	s := ldaptest.Start(b, ldaptest.Options{LDIFFile: genDirectory(b, benchUsers, benchGroups)})
	ctx := context.Background()
	b.Run("import", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			env := newSyncEnv(b, testConfig(b, s))
			mem := startPeakMemory()
			b.StartTimer()
			rep := env.run(b, SyncOptions{Full: true})
			b.StopTimer()
			mem.report(b)
			if rep.Added != benchUsers {
				b.Fatalf("added %d users, want %d", rep.Added, benchUsers)
			}
		}
		b.ReportMetric(float64(benchUsers*b.N)/b.Elapsed().Seconds(), "users/s")
	})
	// One import serves every page size: a sub-benchmark runs more than once.
	env := newSyncEnv(b, testConfig(b, s))
	env.run(b, SyncOptions{Full: true})
	for _, page := range []int{1000, 100, 5000} {
		b.Run(fmt.Sprintf("unchanged/page=%d", page), func(b *testing.B) {
			cfg := testConfig(b, s)
			cfg.PageSize = page
			syncer, err := NewSyncer(ctx, cfg, env.db, env.access, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				mem := startPeakMemory()
				rep, err := syncer.Run(ctx, SyncOptions{Full: true})
				mem.report(b)
				if err != nil || rep.Outcome != OutcomeUnchanged || rep.Seen != benchUsers {
					b.Fatalf("outcome %s seen %d: %v", rep.Outcome, rep.Seen, err)
				}
			}
			b.ReportMetric(float64(benchUsers*b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkLDAPSyncIncremental times incremental syncs that pick up 10
// directory changes among 10,000 users in 500 groups.
func BenchmarkLDAPSyncIncremental(b *testing.B) {
	s := ldaptest.Start(b, ldaptest.Options{LDIFFile: genDirectory(b, benchUsers, benchGroups)})
	env := newSyncEnv(b, testConfig(b, s))
	env.run(b, SyncOptions{Full: true})
	round := 0 // the sub-benchmark runs more than once; each round changes other entries
	b.Run("changes=10", func(b *testing.B) {
		for range b.N {
			round++
			benchIncrementalRound(b, s, env, round)
		}
	})
}

// benchIncrementalRound makes 10 changes (5 new mail addresses, 5 users
// joining another group) and times the sync that applies them. Round n
// touches entries no earlier round touched in the same way.
func benchIncrementalRound(b *testing.B, s *ldaptest.Server, env *syncEnv, n int) {
	b.StopTimer()
	var ldif strings.Builder
	for k := range 5 {
		fmt.Fprintf(&ldif, "dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: mail\nmail: run%d@example.test\n\n",
			100*k+n%100, ldaptest.Suffix, n)
	}
	for k := range 5 {
		u := 5000 + 100*k + n%100
		to := (u + n + 1) % benchGroups
		if to == u%benchGroups || to == (7*u)%benchGroups {
			to = (to + 1) % benchGroups
		}
		fmt.Fprintf(&ldif, "dn: cn=group%03d,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=user%05d,ou=people,%s\n\n",
			to, ldaptest.Suffix, u, ldaptest.Suffix)
	}
	s.Apply(b, ldif.String())
	mem := startPeakMemory()
	b.StartTimer()
	rep := env.run(b, SyncOptions{})
	b.StopTimer()
	mem.report(b)
	if rep.Full || rep.Changed != 5 || rep.Memberships == 0 {
		b.Fatalf("incremental sync: full %v changed %d memberships %d, want 5 changed users and new memberships",
			rep.Full, rep.Changed, rep.Memberships)
	}
	b.StartTimer()
}

// BenchmarkLDAPLogin times one directory login: a service-account search
// and a bind as the user, each on a new connection.
func BenchmarkLDAPLogin(b *testing.B) {
	s := startOrg(b)
	a, err := NewAuthenticator(testConfig(b, s), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, "ann", "ann-pw"); err != nil {
			b.Fatal(err)
		}
	}
}
