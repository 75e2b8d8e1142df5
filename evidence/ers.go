package evidence

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
)

// RFC 4998 (Evidence Record Syntax) hash trees differ from the log's RFC 6962
// tree: there are no domain-separation prefixes, and a parent is the hash of
// its children's hashes sorted in binary ascending order and concatenated
// (RFC 4998 §4.2 step 4), so a verifier needs no left/right flags.
//
// This package builds binary trees level by level: level 0 is the data
// objects' hashes sorted in ascending order; node i of level k+1 is
//
//	H(sort(n[2i], n[2i+1]))             when level k has a node 2i+1,
//	n[2i]                               otherwise (a lone last node is promoted unhashed).
//
// The reduced hash tree of a leaf (RFC 4998 §4.2 step 5) lists, for each
// level where its path node has a sibling, that sibling; the first list also
// holds the path node itself (the leaf, or the leaf promoted upwards).
// This is the construction of Bouncy Castle's ERSArchiveTimeStampGenerator,
// so both produce the same root for the same data objects.

// ersParent is RFC 4998's node hash: H of the sorted concatenation.
func ersParent(h crypto.Hash, children ...[]byte) []byte {
	children = slices.Clone(children)
	slices.SortFunc(children, bytes.Compare)
	d := h.New()
	for _, c := range children {
		d.Write(c)
	}
	return d.Sum(nil)
}

// ersTree returns every level of the tree over leaves, sorted leaves
// first, root last.
func ersTree(h crypto.Hash, leaves [][]byte) [][][]byte {
	leaves = sortedHashes(slices.Clone(leaves)...)
	levels := [][][]byte{leaves}
	for cur := leaves; len(cur) > 1; {
		next := make([][]byte, 0, (len(cur)+1)/2)
		for i := 0; i < len(cur); i += 2 {
			if i+1 < len(cur) {
				next = append(next, ersParent(h, cur[i], cur[i+1]))
			} else {
				next = append(next, cur[i])
			}
		}
		levels = append(levels, next)
		cur = next
	}
	return levels
}

// ersReduced returns the reduced hash tree of leaf (RFC 4998 §4.2): the
// sequence of PartialHashtrees a verifier folds into the root. It is empty
// when the tree has one leaf (the root is the leaf), and nil when leaf is
// not in the tree.
func ersReduced(levels [][][]byte, leaf []byte) [][][]byte {
	i, found := slices.BinarySearchFunc(levels[0], leaf, bytes.Compare)
	if !found {
		return nil
	}
	out := [][][]byte{}
	for _, lv := range levels[:len(levels)-1] {
		sib := i ^ 1
		if sib < len(lv) {
			if len(out) == 0 {
				out = append(out, sortedHashes(lv[i], lv[sib]))
			} else {
				out = append(out, [][]byte{lv[sib]})
			}
		}
		i /= 2
	}
	return out
}

func sortedHashes(hs ...[]byte) [][]byte {
	slices.SortFunc(hs, bytes.Compare)
	return hs
}

// ersRootFromReduced folds a reduced hash tree as RFC 4998 §4.3 step 2–3
// prescribes: leaf must be in the first list; each list, with the previous
// result added, is sorted, concatenated and hashed. An empty tree's root is
// the leaf itself.
func ersRootFromReduced(h crypto.Hash, leaf []byte, tree [][][]byte) ([]byte, error) {
	if len(tree) == 0 {
		return leaf, nil
	}
	if !slices.ContainsFunc(tree[0], func(x []byte) bool { return bytes.Equal(x, leaf) }) {
		return nil, fault.New(fault.Invalid, CodeRecordInvalid, "the hash %x is not in the first partial hash tree", leaf)
	}
	cur := ersParent(h, tree[0]...)
	for _, list := range tree[1:] {
		cur = ersParent(h, append(slices.Clone(list), cur)...)
	}
	return cur, nil
}

// RFC 4998 §3 ASN.1 (module ERS, IMPLICIT TAGS).

// evidenceRecord is EvidenceRecord; cryptoInfos and encryptionInfo are not used.
type evidenceRecord struct {
	Version                  int
	DigestAlgorithms         []pkix.AlgorithmIdentifier
	ArchiveTimeStampSequence [][]archiveTimeStamp
}

// archiveTimeStamp is ArchiveTimeStamp; attributes are not used.
type archiveTimeStamp struct {
	DigestAlgorithm pkix.AlgorithmIdentifier `asn1:"optional,tag:0"`
	ReducedHashtree [][][]byte               `asn1:"optional,tag:2"`
	TimeStamp       asn1.RawValue
}

var hashOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
	crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
	crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
	crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
}

func hashOfOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for h, o := range hashOIDs {
		if o.Equal(oid) {
			return h, true
		}
	}
	return 0, false
}

// storedATS is one archive timestamp as the database keeps it.
type storedATS struct {
	hash    crypto.Hash
	reduced [][][]byte // nil for the first timestamp of a chain (per document, computed on request)
	token   []byte
}

// marshalRecord assembles a DER EvidenceRecord (RFC 4998 §3) from chains of
// archive timestamps, the first ATS of the first chain carrying first (the
// document's reduced hash tree).
func marshalRecord(chains [][]storedATS, first [][][]byte) ([]byte, error) {
	rec := evidenceRecord{Version: 1}
	seen := map[crypto.Hash]bool{}
	for c, chain := range chains {
		var out []archiveTimeStamp
		for s, a := range chain {
			if !seen[a.hash] {
				seen[a.hash] = true
				rec.DigestAlgorithms = append(rec.DigestAlgorithms, pkix.AlgorithmIdentifier{Algorithm: hashOIDs[a.hash]})
			}
			ats := archiveTimeStamp{
				DigestAlgorithm: pkix.AlgorithmIdentifier{Algorithm: hashOIDs[a.hash]},
				ReducedHashtree: a.reduced,
				TimeStamp:       asn1.RawValue{FullBytes: a.token},
			}
			if c == 0 && s == 0 {
				ats.ReducedHashtree = first
			}
			if len(ats.ReducedHashtree) == 0 { // one-leaf tree: the field is omitted
				ats.ReducedHashtree = nil
			}
			out = append(out, ats)
		}
		rec.ArchiveTimeStampSequence = append(rec.ArchiveTimeStampSequence, out)
	}
	return asn1.Marshal(rec)
}

// RecordReport is the outcome of VerifyEvidenceRecord.
type RecordReport struct {
	// OK is true when every check passed.
	OK bool `json:"ok"`
	// Chains is the number of ArchiveTimeStampChains (1 + hash-tree renewals).
	Chains int `json:"chains"`
	// Timestamps lists each archive timestamp's time, oldest first.
	Timestamps []time.Time `json:"timestamps"`
	// Problems lists what failed.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one failed check, with a stable code.
type Problem struct {
	Code    fault.Code `json:"code"`
	Message string     `json:"message"`
}

// VerifyEvidenceRecord checks a DER evidence record (RFC 4998 §5.3) for a
// document. digests gives the document's digest under each algorithm the
// record uses (SHA-256 for the records this package issues).
// verifyTimestamp, when not nil, checks each timestamp token's signature and
// certificate (for example with the tsa package or openssl); the message
// imprint is checked here.
//
// The first ATS's reduced tree must fold from the document digest to its
// timestamp's imprint; every later ATS of the chain, from the hash of the
// previous ATS's timeStamp (§5.2, timestamp renewal); the first ATS of a
// later chain (hash-tree renewal), from the hash of the document's digest and
// the earlier chains' encoding, under that chain's algorithm (§5.3). The
// error is non-nil only when record cannot be parsed.
func VerifyEvidenceRecord(record []byte, digests map[crypto.Hash][]byte, verifyTimestamp func(token []byte) error) (*RecordReport, error) {
	var rec evidenceRecord
	rest, err := asn1.Unmarshal(record, &rec)
	if err != nil || len(rest) != 0 {
		return nil, fault.Wrap(err, fault.Invalid, CodeRecordInvalid, "the evidence record (%d bytes) is not DER EvidenceRecord", len(record))
	}
	rep := &RecordReport{Chains: len(rec.ArchiveTimeStampSequence)}
	fail := func(format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Code: CodeRecordInvalid, Message: fmt.Sprintf(format, args...)})
	}
	if rec.Version != 1 {
		fail("version %d, want 1", rec.Version)
	}
	if len(rec.ArchiveTimeStampSequence) == 0 {
		fail("no archive timestamp chain")
	}
	for c, chain := range rec.ArchiveTimeStampSequence {
		if len(chain) == 0 {
			fail("chain %d is empty", c)
			continue
		}
		for s, ats := range chain {
			h, ok := hashOfOID(ats.DigestAlgorithm.Algorithm)
			if !ok {
				fail("chain %d timestamp %d: unsupported digest algorithm %v", c, s, ats.DigestAlgorithm.Algorithm)
				continue
			}
			var leaf []byte
			switch {
			case s > 0:
				leaf = digest(h, chain[s-1].TimeStamp.FullBytes)
			case c == 0:
				leaf = digests[h]
			case len(digests[h]) > 0:
				// Hash-tree renewal (§5.3 step 4): the first timestamp of a
				// later chain covers the document and every earlier chain.
				atsc, err := asn1.Marshal(rec.ArchiveTimeStampSequence[:c])
				if err != nil {
					fail("chain %d: the earlier chains do not re-encode: %v", c, err)
					continue
				}
				leaf = ersParent(h, digests[h], digest(h, atsc))
			}
			if len(leaf) == 0 {
				fail("chain %d timestamp %d: no %s digest of the document given", c, s, cms.HashName(h))
				continue
			}
			root, err := ersRootFromReduced(h, leaf, ats.ReducedHashtree)
			if err != nil {
				fail("chain %d timestamp %d: %s", c, s, fault.As(err).Msg)
				continue
			}
			t, err := checkToken(ats.TimeStamp.FullBytes, h, root, verifyTimestamp)
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Code: CodeTimestampInvalid,
					Message: fmt.Sprintf("chain %d timestamp %d: %v", c, s, err)})
				continue
			}
			rep.Timestamps = append(rep.Timestamps, t)
		}
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// marshalReduced encodes a reduced hash tree (SEQUENCE OF PartialHashtree)
// for storage.
func marshalReduced(t [][][]byte) ([]byte, error) { return asn1.Marshal(t) }

func unmarshalReduced(b []byte) ([][][]byte, error) {
	var t [][][]byte
	rest, err := asn1.Unmarshal(b, &t)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes", len(rest))
	}
	return t, err
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}

// RenewRecordHashTree renews an evidence record's hash tree with algorithm h
// (RFC 4998 §5.2), as the holder of the document does before the record's
// algorithm weakens: it hashes the document and the record's archive
// timestamp chains with h, has a TSA timestamp the combination, and returns
// the record with that new chain appended. Only the document's holder can do
// this, since sealgate does not keep documents. doc is read once.
func RenewRecordHashTree(ctx context.Context, record []byte, doc io.Reader, h crypto.Hash, ts signing.Timestamper) ([]byte, error) {
	var rec evidenceRecord
	if rest, err := asn1.Unmarshal(record, &rec); err != nil || len(rest) != 0 {
		return nil, fault.Wrap(err, fault.Invalid, CodeRecordInvalid, "the evidence record (%d bytes) is not DER EvidenceRecord", len(record))
	}
	oid, ok := hashOIDs[h]
	if !ok {
		return nil, fault.New(fault.Invalid, CodeRecordInvalid, "hash-tree renewal with %v: use sha256, sha384 or sha512", h)
	}
	if ts == nil {
		return nil, fault.New(fault.Unavailable, CodeRecordUnavailable, "hash-tree renewal needs a timestamp authority (tsa section)")
	}
	d := h.New()
	if _, err := io.Copy(d, doc); err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeRecordInvalid, "the document could not be read")
	}
	atsc, err := asn1.Marshal(rec.ArchiveTimeStampSequence)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeRecordInvalid, "the record's chains do not re-encode")
	}
	// A one-leaf tree: its root is the leaf, and the reduced tree is omitted.
	root := ersParent(h, d.Sum(nil), digest(h, atsc))
	token, err := ts.Timestamp(ctx, root, h)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(rec.DigestAlgorithms, func(a pkix.AlgorithmIdentifier) bool { return a.Algorithm.Equal(oid) }) {
		rec.DigestAlgorithms = append(rec.DigestAlgorithms, pkix.AlgorithmIdentifier{Algorithm: oid})
	}
	rec.ArchiveTimeStampSequence = append(rec.ArchiveTimeStampSequence, []archiveTimeStamp{{
		DigestAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oid},
		TimeStamp:       asn1.RawValue{FullBytes: token},
	}})
	return asn1.Marshal(rec)
}
