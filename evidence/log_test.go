package evidence

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/sealgate/sealgate/fault"
)

// The stored-hash layout (one row per leaf holding the subtrees it
// completes) must yield RFC 6962 roots and proofs: checked against the
// reference vectors and reference tree of transparency-dev/merkle.
func TestStoredHashesMatchRFC6962Vectors(t *testing.T) {
	inputs := testonly.LeafInputs()
	rows := map[int64][]byte{}
	var f frontier
	for i, in := range inputs {
		rows[int64(i)] = f.add(LeafHash(in))
		// Every complete subtree's hash is where hashOwner says.
		nodes := testonly.NodeHashes()
		for lv := range nodes {
			for n := range nodes[lv] {
				if leaf, off := hashOwner(lv, int64(n)); leaf == int64(i) {
					if got := rows[leaf][off : off+32]; !bytes.Equal(got, nodes[lv][n]) {
						t.Errorf("stored hash (%d, %d) = %x, want %x", lv, n, got, nodes[lv][n])
					}
				}
			}
		}
	}
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return pickHashes(rows, idx) })
	ref := testonly.New(rfc6962.DefaultHasher)
	ref.AppendData(inputs...)
	for size := 1; size <= len(inputs); size++ {
		root, err := tlog.TreeHash(int64(size), reader)
		if err != nil {
			t.Fatal(err)
		}
		if want := testonly.RootHashes()[size]; !bytes.Equal(root[:], want) {
			t.Errorf("root of %d leaves = %x, want %x", size, root, want)
		}
		for i := 0; i < size; i++ {
			p, err := tlog.ProveRecord(int64(size), int64(i), reader)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.InclusionProof(uint64(i), uint64(size))
			if !equalProofs(hashSlices(p), want) {
				t.Errorf("inclusion proof of leaf %d in %d differs from the reference", i, size)
			}
		}
		for from := 1; from < size; from++ {
			p, err := tlog.ProveTree(int64(size), int64(from), reader)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := ref.ConsistencyProof(uint64(from), uint64(size))
			if !equalProofs(hashSlices(p), want) {
				t.Errorf("consistency proof %d→%d differs from the reference", from, size)
			}
		}
	}
	f2 := frontier{}
	for _, in := range inputs {
		f2.add(LeafHash(in))
	}
	if r := f2.root(); !bytes.Equal(r[:], testonly.RootHashes()[len(inputs)]) {
		t.Errorf("root from the right edge = %x", r)
	}
}

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// The entry encoding is pinned by a golden vector: a change to it would
// make old leaves unverifiable.
func TestEntryEncodingIsCanonical(t *testing.T) {
	e := testEntry(1)
	got, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "entry-v1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(golden)); hex.EncodeToString(got) != want {
		t.Fatalf("encoding of testEntry(1) =\n%x\nwant (testdata/entry-v1.hex)\n%s", got, want)
	}
	var back Entry
	if err := back.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	e.Version = EntryVersion
	if back != e {
		t.Fatalf("round trip: %+v, want %+v", back, e)
	}

	bad := []struct {
		name   string
		mutate func(e *Entry)
	}{
		{"unknown format", func(e *Entry) { e.Format = "xades" }},
		{"unknown level", func(e *Entry) { e.Level = "B-X" }},
		{"no seal id", func(e *Entry) { e.SealID = "" }},
		{"long seal id", func(e *Entry) { e.SealID = strings.Repeat("s", 256) }},
		{"no time", func(e *Entry) { e.Time = time.Time{} }},
		{"future version", func(e *Entry) { e.Version = 2 }},
	}
	for _, tc := range bad {
		e := testEntry(1)
		tc.mutate(&e)
		if _, err := e.MarshalBinary(); fault.CodeOf(err) != CodeBadEntry {
			t.Errorf("%s: MarshalBinary error %v, want %s", tc.name, err, CodeBadEntry)
		}
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"trailing byte", append(bytes.Clone(got), 0)},
		{"truncated", got[:len(got)-1]},
		{"version 2", append([]byte{2}, got[1:]...)},
		{"format 3", func() []byte { b := bytes.Clone(got); b[137] = 3; return b }()},
	} {
		if err := new(Entry).UnmarshalBinary(tc.b); fault.CodeOf(err) != CodeBadEntry {
			t.Errorf("%s: UnmarshalBinary error %v, want %s", tc.name, err, CodeBadEntry)
		}
	}
}

// After N appends, every leaf has an inclusion proof that verifies against
// the published checkpoint, every pair of checkpoints a consistency proof,
// and roots and proofs equal those of the reference tree.
func TestEveryLeafProvesAndCheckpointsAreConsistent(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), Options{Origin: "test.example/log"})
	ref := testonly.New(rfc6962.DefaultHasher)
	var cps []*Checkpoint
	n := 0
	for _, batch := range []int{1, 2, 5, 64, 1, 200, 37} {
		first, err := l.AppendBatch(ctx, testEntries(n, batch))
		if err != nil {
			t.Fatal(err)
		}
		if first != uint64(n) {
			t.Fatalf("batch of %d got first index %d, want %d", batch, first, n)
		}
		for _, e := range testEntries(n, batch) {
			data, _ := e.MarshalBinary()
			ref.AppendData(data)
		}
		n += batch
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != uint64(n) || !bytes.Equal(cp.Root, ref.Hash()) {
			t.Fatalf("checkpoint size %d root %x, want %d %x", cp.Size, cp.Root, n, ref.Hash())
		}
		cps = append(cps, cp)
	}
	again, err := l.Checkpoint(ctx)
	if err != nil || again.Size != uint64(n) || again.Note != cps[len(cps)-1].Note {
		t.Fatalf("checkpoint without new leaves must return the latest, got %+v, %v", again, err)
	}
	for i := 0; i < n; i++ {
		doc := testEntry(i).SealedSHA256
		ev, err := l.Prove(ctx, doc)
		if err != nil {
			t.Fatalf("prove leaf %d: %v", i, err)
		}
		if rep := VerifyEvidence(ev, doc, VerifyOptions{LogKey: l.VerifierKey()}); !rep.OK || rep.Index != uint64(i) {
			t.Fatalf("leaf %d: %+v", i, rep)
		}
		want, _ := ref.InclusionProof(uint64(i), uint64(n))
		if !equalProofs(ev.InclusionProof, want) {
			t.Fatalf("leaf %d: proof differs from the reference tree's", i)
		}
		// The original document's hash finds the same entry.
		if ev2, err := l.Prove(ctx, testEntry(i).OriginalSHA256); err != nil || ev2.Index != uint64(i) {
			t.Fatalf("prove original of leaf %d: %v", i, err)
		}
	}
	for a := range cps {
		for b := a; b < len(cps); b++ {
			p, err := l.Consistency(ctx, cps[a].Size, cps[b].Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistency(cps[a], cps[b], p, l.VerifierKey()); err != nil {
				t.Errorf("consistency %d→%d: %v", cps[a].Size, cps[b].Size, err)
			}
			if a != b {
				if err := VerifyConsistency(cps[b], cps[a], p, l.VerifierKey()); fault.CodeOf(err) != CodeProofInvalid {
					t.Errorf("reversed consistency %d→%d: %v, want %s", cps[b].Size, cps[a].Size, err, CodeProofInvalid)
				}
			}
		}
	}
	if err := l.Audit(ctx); err != nil {
		t.Fatal(err)
	}
	sizes, _ := l.Checkpoints(ctx)
	for i, s := range sizes {
		cp, err := l.CheckpointAt(ctx, s)
		if err != nil || cp.Note != cps[i].Note {
			t.Fatalf("CheckpointAt(%d) = %v, %v", s, cp, err)
		}
	}
}

func TestProveAndConsistencyErrors(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), Options{})
	// An empty log publishes the empty tree (RFC 6962 §2.1: the root is the
	// hash of the empty string), which later checkpoints extend.
	empty, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatalf("checkpoint of an empty log: %v", err)
	}
	if h := sha256.Sum256(nil); empty.Size != 0 || !bytes.Equal(empty.Root, h[:]) {
		t.Fatalf("empty log's checkpoint: size %d root %x, want 0 and %x", empty.Size, empty.Root, h)
	}
	if _, err := ParseCheckpoint([]byte(empty.Note), l.VerifierKey()); err != nil {
		t.Fatalf("empty log's checkpoint note: %v", err)
	}
	if _, err := l.AppendBatch(ctx, testEntries(0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Prove(ctx, testEntry(3).SealedSHA256); fault.CodeOf(err) != CodePending {
		t.Fatalf("prove before any checkpoint: %v, want %s", err, CodePending)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, testEntry(10)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		doc  SHA256
		code fault.Code
	}{
		{"checkpointed", testEntry(3).SealedSHA256, ""},
		{"appended after the checkpoint", testEntry(10).SealedSHA256, CodePending},
		{"never sealed", testEntry(11).SealedSHA256, CodeNotFound},
	} {
		if _, err := l.Prove(ctx, tc.doc); fault.CodeOf(err) != tc.code {
			t.Errorf("%s: Prove error %v, want code %q", tc.name, err, tc.code)
		}
	}
	for _, r := range [][2]uint64{{0, 5}, {6, 5}, {5, 12}} {
		if _, err := l.Consistency(ctx, r[0], r[1]); fault.CodeOf(err) != CodeBadRange {
			t.Errorf("Consistency(%d, %d): %v, want %s", r[0], r[1], err, CodeBadRange)
		}
	}
	if p, err := l.Consistency(ctx, 11, 11); err != nil || len(p) != 0 {
		t.Errorf("Consistency(11, 11) = %v, %v; want an empty proof", p, err)
	}
	if _, err := ParseSHA256("abc"); fault.CodeOf(err) != CodeBadDigest {
		t.Errorf("ParseSHA256(abc): %v", err)
	}
}

// Changing one stored byte — in a stored hash, a leaf or a checkpoint — is
// caught: by the audit, and by verifying the published evidence.
func TestTamperingIsDetected(t *testing.T) {
	const n = 50
	cases := []struct {
		name   string
		tamper string // SQL run on the database after the checkpoint
	}{
		{"stored hash", `UPDATE evidence_leaves SET hashes = CAST(X'00' || substr(hashes, 2) AS BLOB) WHERE idx = 31`},
		{"stored node hash", `UPDATE evidence_leaves SET hashes = CAST(substr(hashes, 1, 40) || X'00' || substr(hashes, 42) AS BLOB) WHERE idx = 15`},
		{"leaf", `UPDATE evidence_leaves SET entry = CAST(substr(entry, 1, 140) || X'41' || substr(entry, 142) AS BLOB) WHERE idx = 7`},
		{"checkpoint note", `UPDATE evidence_checkpoints SET note = CAST(replace(CAST(note AS TEXT), '` + "\n50\n" + `', '` + "\n49\n" + `') AS BLOB)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := openLog(t, t.TempDir(), Options{})
			if _, err := l.AppendBatch(ctx, testEntries(0, n)); err != nil {
				t.Fatal(err)
			}
			published, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Audit(ctx); err != nil {
				t.Fatalf("audit before tampering: %v", err)
			}
			res, err := l.db.Read().Exec(tc.tamper)
			if err != nil {
				t.Fatal(err)
			}
			if k, _ := res.RowsAffected(); k != 1 {
				t.Fatalf("tampering changed %d rows", k)
			}
			if err := l.Audit(ctx); fault.CodeOf(err) != CodeCorrupt {
				t.Errorf("audit after tampering: %v, want %s", err, CodeCorrupt)
			}
			// A verifier holding the checkpoint published before the
			// tampering rejects some leaf's evidence.
			caught := false
			for i := 0; i < n; i++ {
				doc := testEntry(i).OriginalSHA256
				ev, err := l.Prove(ctx, doc)
				if err != nil {
					caught = true
					continue
				}
				ev.Checkpoint = published
				if rep := VerifyEvidence(ev, doc, VerifyOptions{LogKey: l.VerifierKey()}); !rep.OK {
					caught = true
				}
			}
			if !caught {
				t.Error("every leaf still verified after tampering")
			}
		})
	}
}

// Appends that arrive while a transaction runs are committed together in
// the next one (group commit); from many goroutines they get distinct,
// gap-free indexes.
func TestConcurrentAppendsAreGroupCommitted(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), Options{})

	// Hold the database's single writer, so the committer's first
	// transaction waits while the other appends queue up behind it.
	release, holding := make(chan struct{}), make(chan struct{})
	go l.db.Write(ctx, func(*sql.Tx) error { close(holding); <-release; return nil })
	<-holding
	const waiting = 64
	var wg sync.WaitGroup
	for i := 0; i < waiting; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Append(ctx, testEntry(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	for l.waiting.Load() < waiting {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	// The committer may have taken some before the rest arrived; all the
	// others go into the next transaction.
	if c := l.commits.Load(); c > 2 {
		t.Fatalf("%d appends queued behind a transaction took %d transactions, want at most 2", waiting, c)
	}
	before := l.commits.Load()

	const workers, each = 64, 40
	var mu sync.Mutex
	seen := map[uint64]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < each; k++ {
				i := waiting + w*each + k
				idx, err := l.Append(ctx, testEntry(i))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[idx] = i
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each || l.Size() != waiting+workers*each {
		t.Fatalf("%d distinct indexes, size %d; want %d", len(seen), l.Size(), waiting+workers*each)
	}
	for idx, i := range seen {
		got, err := l.Lookup(ctx, testEntry(i).SealedSHA256)
		if err != nil || len(got) != 1 || got[0].Index != idx {
			t.Fatalf("entry %d: lookup %v, %v; want index %d", i, got, err, idx)
		}
	}
	t.Logf("%d appends from %d goroutines in %d transactions", workers*each, workers, l.commits.Load()-before)
	if err := l.Audit(ctx); err != nil {
		t.Fatal(err)
	}
}

// The principal pseudonym is keyed per installation: stable within one,
// different across installations, and never the id itself.
func TestPrincipalHashIsKeyedPerInstallation(t *testing.T) {
	dir := t.TempDir()
	a := openLog(t, dir, Options{})
	b := openLog(t, t.TempDir(), Options{})
	if a.PrincipalHash("user:42") != a.PrincipalHash("user:42") {
		t.Fatal("pseudonym not stable")
	}
	if a.PrincipalHash("user:42") == b.PrincipalHash("user:42") {
		t.Fatal("two installations give the same pseudonym")
	}
	for _, f := range []string{"evidence-log.key", "evidence-principal.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode())
		}
	}
}

// A sealed and timestamped checkpoint verifies with openssl as the
// independent CMS and RFC 3161 verifier; a wrong log key or a changed note
// is checkpoint_signature_invalid.
func TestCheckpointIsSealedAndTimestamped(t *testing.T) {
	ctx := context.Background()
	pki := newDevPKI(t)
	l := openLog(t, t.TempDir(), Options{Sealer: pki.Seal, Timestamper: pki.tsa})
	if _, err := l.AppendBatch(ctx, testEntries(0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	ev, err := l.Prove(ctx, testEntry(2).SealedSHA256)
	if err != nil {
		t.Fatal(err)
	}
	opts := VerifyOptions{LogKey: l.VerifierKey(), VerifySeal: pki.opensslSeal, VerifyTimestamp: pki.opensslToken}
	rep := VerifyEvidence(ev, testEntry(2).SealedSHA256, opts)
	if !rep.OK || !rep.SealChecked || rep.TimestampedAt == nil {
		t.Fatalf("report %+v", rep)
	}

	other := openLog(t, t.TempDir(), Options{})
	bad := []struct {
		name   string
		mutate func(ev *Evidence, o *VerifyOptions)
		code   fault.Code
	}{
		{"other log's key", func(ev *Evidence, o *VerifyOptions) { o.LogKey = other.VerifierKey() }, CodeSignatureInvalid},
		{"unsigned size", func(ev *Evidence, o *VerifyOptions) { ev.Checkpoint.Size++ }, CodeSignatureInvalid},
		{"changed note", func(ev *Evidence, o *VerifyOptions) {
			ev.Checkpoint.Note = strings.Replace(ev.Checkpoint.Note, "\n3\n", "\n4\n", 1)
		}, CodeSignatureInvalid},
		{"seal of other content", func(ev *Evidence, o *VerifyOptions) {
			ev.Checkpoint.Seal, _ = pki.Seal(ctx, []byte("something else"))
		}, CodeSealInvalid},
		{"timestamp of other content", func(ev *Evidence, o *VerifyOptions) {
			ev.Checkpoint.Timestamp, _ = pki.tsa.Timestamp(ctx, make([]byte, 32), crypto.SHA256)
		}, CodeTimestampInvalid},
		{"wrong index", func(ev *Evidence, o *VerifyOptions) { ev.Index = 1 }, CodeProofInvalid},
		{"proof hash changed", func(ev *Evidence, o *VerifyOptions) { ev.InclusionProof[0][0] ^= 1 }, CodeProofInvalid},
		{"other document", func(ev *Evidence, o *VerifyOptions) { ev.Data, _ = testEntry(1).MarshalBinary() }, CodeProofInvalid},
	}
	for _, tc := range bad {
		ev, _ := l.Prove(ctx, testEntry(2).SealedSHA256)
		o := opts
		tc.mutate(ev, &o)
		rep := VerifyEvidence(ev, testEntry(2).SealedSHA256, o)
		if rep.OK || len(rep.Problems) == 0 || rep.Problems[0].Code != tc.code {
			t.Errorf("%s: report %+v, want first problem %s", tc.name, rep, tc.code)
		}
	}
}

// The committed tree must verify with the independent implementation too.
func TestProofsVerifyWithTransparencyDevMerkle(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), Options{})
	if _, err := l.AppendBatch(ctx, testEntries(0, 1000)); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1, 511, 512, 998, 999} {
		ev, err := l.Prove(ctx, testEntry(i).SealedSHA256)
		if err != nil {
			t.Fatal(err)
		}
		lh := rfc6962.DefaultHasher.HashLeaf(ev.Data)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, cp.Size, lh, ev.InclusionProof, cp.Root); err != nil {
			t.Errorf("leaf %d: %v", i, err)
		}
	}
}

// Two processes appending to one database (here two store handles) take
// turns: each notices the other's leaves and continues the same tree.
func TestTwoWritersShareOneTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := openLog(t, dir, Options{})
	b := openLog(t, dir, Options{})
	seen := map[uint64]bool{}
	for i := 0; i < 40; i++ {
		l := a
		if i%3 == 0 {
			l = b
		}
		idx, err := l.Append(ctx, testEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		if seen[idx] || idx != uint64(i) {
			t.Fatalf("append %d got index %d", i, idx)
		}
		seen[idx] = true
	}
	if err := a.Audit(ctx); err != nil {
		t.Fatal(err)
	}
	cp, err := b.Checkpoint(ctx)
	if err != nil || cp.Size != 40 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
}

// Run publishes the empty tree at start, checkpoints new leaves on its own
// and stops with its context.
func TestRunMakesCheckpoints(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	l := openLog(t, t.TempDir(), Options{CheckpointInterval: 10 * time.Millisecond})
	done := make(chan error)
	go func() { done <- l.Run(ctx) }()
	for _, n := range []int{0, 3, 7} {
		if _, err := l.AppendBatch(ctx, testEntries(n*10, n)); err != nil {
			t.Fatal(err)
		}
		want := l.Size()
		deadline := time.Now().Add(5 * time.Second)
		for {
			cp, err := l.Latest(ctx)
			if err == nil && cp.Size == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size %d: %+v, %v", want, cp, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	if sizes, _ := l.Checkpoints(context.Background()); len(sizes) != 3 || sizes[0] != 0 {
		t.Fatalf("checkpoints %v: want one per growth, none while idle", sizes)
	}
}

// After Close, appends fail with evidence_log_closed instead of hanging.
func TestAppendAfterCloseFails(t *testing.T) {
	ctx := context.Background()
	l := openLog(t, t.TempDir(), Options{})
	if _, err := l.Append(ctx, testEntry(0)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for i := 0; i < 20; i++ {
		if _, err := l.Append(ctx, testEntry(i+1)); fault.CodeOf(err) != CodeClosed {
			t.Fatalf("append after close: %v, want %s", err, CodeClosed)
		}
	}
}
