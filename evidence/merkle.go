package evidence

import (
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// The log is an RFC 6962 / RFC 9162 Merkle tree:
//
//	leaf hash  = SHA-256(0x00 ‖ entry encoding)          (RFC 9162 §2.1.1)
//	node hash  = SHA-256(0x01 ‖ left ‖ right)             (RFC 9162 §2.1.1)
//	MTH(D[n])  = node hash of MTH(D[0:k]) and MTH(D[k:n]), k the largest power of two < n
//
// golang.org/x/mod/sumdb/tlog implements exactly this hashing (RecordHash,
// NodeHash) and the proof algorithms of RFC 9162 §2.1.3 and §2.1.4 over
// "stored hashes": the hashes of complete subtrees, addressed as (level, n)
// = the subtree covering leaves [n·2^level, (n+1)·2^level). This file decides
// where those hashes live.
//
// Appending leaf i completes exactly the subtrees (l, i>>l) for
// l = 0 … t, where t is the number of trailing one bits of i: the leaf itself
// and every subtree whose last leaf is i. All of them are stored in leaf i's
// row, level l at byte offset 32·l. So the subtree (level, n) is in the row of
// leaf ((n+1)<<level) − 1, and an append writes one row whatever the size.

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 ‖ data).
func LeafHash(data []byte) tlog.Hash { return tlog.RecordHash(data) }

// hashOwner returns the leaf whose row holds the stored hash (level, n) and
// the byte offset of that hash within the row.
func hashOwner(level int, n int64) (leaf int64, offset int) {
	return (n+1)<<uint(level) - 1, tlog.HashSize * level
}

// frontier is the right edge of a tree: for each set bit l of size, the hash
// of the complete subtree (l, size>>l − 1), which is the left sibling the
// next subtrees of that height will be joined with.
type frontier struct {
	size   int64
	hashes [64]tlog.Hash
}

// add appends a leaf with hash h and returns the stored hashes leaf size
// completes, concatenated level 0 first: the row content described above.
//
// For i = size: hash(0, i) = h, and for l < t, hash(l+1, i>>(l+1)) =
// NodeHash(hash(l, (i>>l)−1), hash(l, i>>l)), the left operand being
// frontier level l because bit l of i is set.
func (f *frontier) add(h tlog.Hash) []byte {
	i := f.size
	t := bits.TrailingZeros64(^uint64(i))
	row := make([]byte, 0, tlog.HashSize*(t+1))
	row = append(row, h[:]...)
	for l := 0; l < t; l++ {
		h = tlog.NodeHash(f.hashes[l], h)
		row = append(row, h[:]...)
	}
	f.hashes[t] = h
	f.size++
	return row
}

// frontierLevels lists the stored hashes a frontier of size needs, as
// (level, n) pairs: one per set bit of size.
func frontierLevels(size int64) (levels []int, ns []int64) {
	for l := 0; l < 64; l++ {
		if size>>uint(l)&1 == 1 {
			levels = append(levels, l)
			ns = append(ns, size>>uint(l)-1)
		}
	}
	return levels, ns
}
