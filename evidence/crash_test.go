package evidence

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashDirEnv makes TestCrashHelper the child process of
// TestAppendSurvivesSIGKILL, appending in that directory until killed.
const crashDirEnv = "SEALGATE_EVIDENCE_CRASH_DIR"

// TestCrashHelper is not a test on its own: run as a child process, it
// appends from 16 goroutines and prints "leaf <index> <entry number>" after
// each Append returns, and "checkpoint <base64 note>" after each checkpoint.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestAppendSurvivesSIGKILL")
	}
	ctx := context.Background()
	l := openLog(t, dir, Options{})
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format, args...)
		out.Unlock()
	}
	var next atomic.Int64
	for w := 0; w < 16; w++ {
		go func() {
			for {
				i := int(next.Add(1))
				idx, err := l.Append(ctx, testEntry(i))
				if err != nil {
					say("error %v\n", err)
					return
				}
				say("leaf %d %d\n", idx, i)
			}
		}()
	}
	for {
		time.Sleep(20 * time.Millisecond)
		if cp, err := l.Checkpoint(ctx); err == nil {
			say("checkpoint %s\n", base64.StdEncoding.EncodeToString([]byte(cp.Note)))
		}
	}
}

// A process killed with SIGKILL in the middle of appending loses nothing it
// confirmed: after reopening, every leaf whose index was printed is there
// with its entry, no entry is stored twice, the stored hashes recompute from
// the leaves, and a new checkpoint is consistent with the last one made
// before the crash.
func TestAppendSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	confirmed := map[uint64]int{}
	var lastNote string
	r := bufio.NewReader(stdout)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a line cut by the kill has no newline and is not counted
		}
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "leaf":
			var idx uint64
			var i int
			fmt.Sscan(f[1], &idx)
			fmt.Sscan(f[2], &i)
			if prev, dup := confirmed[idx]; dup {
				t.Fatalf("index %d confirmed for entries %d and %d", idx, prev, i)
			}
			confirmed[idx] = i
		case len(f) == 2 && f[0] == "checkpoint":
			b, _ := base64.StdEncoding.DecodeString(f[1])
			lastNote = string(b)
		case len(f) > 0 && f[0] == "error":
			t.Fatalf("child: %s", line)
		}
		if !killed && len(confirmed) >= 5000 && lastNote != "" {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child ended by itself after %d leaves", len(confirmed))
	}

	ctx := context.Background()
	l := openLog(t, dir, Options{})
	t.Logf("%d leaves confirmed before SIGKILL, %d stored", len(confirmed), l.Size())
	if l.Size() < uint64(len(confirmed)) {
		t.Fatalf("size %d after reopening, %d confirmed", l.Size(), len(confirmed))
	}
	for idx, i := range confirmed {
		got, err := l.Lookup(ctx, testEntry(i).SealedSHA256)
		if err != nil || len(got) != 1 || got[0].Index != idx {
			t.Fatalf("entry %d (confirmed at %d): %v, %v", i, idx, got, err)
		}
	}
	var leaves, distinct int
	if err := l.db.Read().QueryRow(`SELECT COUNT(*), COUNT(DISTINCT substr(entry, 2, 32)) FROM evidence_leaves`).Scan(&leaves, &distinct); err != nil {
		t.Fatal(err)
	}
	if leaves != distinct || uint64(leaves) != l.Size() {
		t.Fatalf("%d leaves, %d distinct entries, size %d", leaves, distinct, l.Size())
	}
	if err := l.Audit(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := ParseCheckpoint([]byte(lastNote), l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEntry(0)); err != nil {
		t.Fatal(err)
	}
	after, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Consistency(ctx, before.Size, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(before, after, p, l.VerifierKey()); err != nil {
		t.Fatalf("checkpoint after the crash does not extend the one before: %v", err)
	}
}
