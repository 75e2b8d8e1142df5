package evidence

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/sealgate/sealgate/fault"
)

// Offline verification: everything below works from the published data
// alone (evidence JSON, checkpoints, the log's verifier key), so
// `sealgate verify`, the portal and third parties reach the same verdict.
// Proofs are checked with github.com/transparency-dev/merkle, an
// implementation independent of the one that made them.

// VerifyOptions say what to trust when verifying offline.
type VerifyOptions struct {
	// LogKey is the log's note verifier key (Log.VerifierKey). Required.
	LogKey string
	// VerifySeal checks a detached CAdES signature over content, including
	// its certificate chain. When nil, a checkpoint's seal is not checked
	// (Report.SealChecked stays false).
	VerifySeal func(content, p7s []byte) error
	// VerifyTimestamp checks an RFC 3161 token's signature and certificate.
	// The message imprint is checked here either way.
	VerifyTimestamp func(token []byte) error
}

// Report is the verdict on a piece of evidence.
type Report struct {
	// OK is true when every check that ran passed.
	OK bool `json:"ok"`
	// Index and Size place the entry: leaf Index of a tree of Size leaves.
	Index uint64 `json:"index"`
	Size  uint64 `json:"size"`
	// Entry is the verified entry, when the leaf decoded.
	Entry *Entry `json:"entry,omitempty"`
	// SealChecked is true when the checkpoint's seal was verified.
	SealChecked bool `json:"sealChecked"`
	// TimestampedAt is the checkpoint's timestamp time, when it has one.
	TimestampedAt *time.Time `json:"timestampedAt,omitempty"`
	// Problems lists failed checks.
	Problems []Problem `json:"problems,omitempty"`
}

func (r *Report) fail(code fault.Code, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Code: code, Message: fmt.Sprintf(format, args...)})
}

// VerifyEvidence checks evidence for document doc: the checkpoint's note
// signature (checkpoint_signature_invalid), that the leaf names doc and its
// inclusion proof leads to the signed root (proof_invalid), the checkpoint's
// seal (checkpoint_seal_invalid) and timestamp (timestamp_invalid).
func VerifyEvidence(ev *Evidence, doc SHA256, opts VerifyOptions) *Report {
	r := &Report{Index: ev.Index}
	if ev.Checkpoint == nil {
		r.fail(CodeSignatureInvalid, "the evidence carries no checkpoint")
		return r
	}
	cp, err := verifyCheckpoint(ev.Checkpoint, opts, r)
	if err != nil {
		r.fail(CodeSignatureInvalid, "%s", fault.As(err).Msg)
		return r
	}
	r.Size = cp.Size
	var e Entry
	if err := e.UnmarshalBinary(ev.Data); err != nil {
		r.fail(CodeProofInvalid, "the leaf does not decode: %s", fault.As(err).Msg)
	} else {
		r.Entry = &e
		if e.SealedSHA256 != doc && e.OriginalSHA256 != doc {
			r.fail(CodeProofInvalid, "the entry at leaf %d does not name document %s", ev.Index, doc)
		}
	}
	leaf := LeafHash(ev.Data)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, ev.Index, cp.Size, leaf[:], ev.InclusionProof, cp.Root); err != nil {
		r.fail(CodeProofInvalid, "leaf %d is not proven in the tree of %d leaves: %v", ev.Index, cp.Size, err)
	}
	r.OK = len(r.Problems) == 0
	return r
}

// verifyCheckpoint opens a checkpoint's note with the log key and checks its
// seal and timestamp into r. The returned checkpoint holds the signed
// fields, never the unsigned JSON ones; those must agree with it.
func verifyCheckpoint(c *Checkpoint, opts VerifyOptions, r *Report) (*Checkpoint, error) {
	cp, err := ParseCheckpoint([]byte(c.Note), opts.LogKey)
	if err != nil {
		return nil, err
	}
	if c.Size != cp.Size || !bytes.Equal(c.Root, cp.Root) || c.Origin != cp.Origin {
		return nil, fault.New(fault.Invalid, CodeSignatureInvalid,
			"the checkpoint fields (size %d) differ from its signed note (size %d)", c.Size, cp.Size)
	}
	if len(c.Seal) > 0 && opts.VerifySeal != nil {
		if err := opts.VerifySeal([]byte(c.Note), c.Seal); err != nil {
			r.fail(CodeSealInvalid, "the seal on checkpoint %d does not verify: %v", cp.Size, err)
		} else {
			r.SealChecked = true
		}
	}
	if len(c.Timestamp) > 0 {
		sum := sha256.Sum256([]byte(c.Note))
		if t, err := checkToken(c.Timestamp, crypto.SHA256, sum[:], opts.VerifyTimestamp); err != nil {
			r.fail(CodeTimestampInvalid, "the timestamp on checkpoint %d: %v", cp.Size, err)
		} else {
			r.TimestampedAt = &t
		}
	}
	return cp, nil
}

// checkToken parses an RFC 3161 token, checks that its imprint is d under h,
// and runs verify on it when given. It returns the token's time.
func checkToken(token []byte, h crypto.Hash, d []byte, verify func([]byte) error) (time.Time, error) {
	tst, err := timestamp.Parse(token)
	if err != nil {
		return time.Time{}, fmt.Errorf("the token does not parse or its signature is wrong: %v", err)
	}
	if tst.HashAlgorithm != h || !bytes.Equal(tst.HashedMessage, d) {
		return time.Time{}, fmt.Errorf("the token's message imprint is not %x", d)
	}
	if verify != nil {
		if err := verify(token); err != nil {
			return time.Time{}, err
		}
	}
	return tst.Time, nil
}

// VerifyConsistency checks that checkpoint newer extends checkpoint older,
// both signed by the log key, with an RFC 9162 §2.1.4 consistency proof
// (Log.Consistency(older.Size, newer.Size)). It returns a fault with code
// checkpoint_signature_invalid or proof_invalid.
func VerifyConsistency(older, newer *Checkpoint, consistency [][]byte, logKey string) error {
	opts := VerifyOptions{LogKey: logKey}
	var cps [2]*Checkpoint
	for i, c := range []*Checkpoint{older, newer} {
		cp, err := verifyCheckpoint(c, opts, &Report{})
		if err != nil {
			return err
		}
		cps[i] = cp
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cps[0].Size, cps[1].Size, consistency, cps[0].Root, cps[1].Root); err != nil {
		return fault.Wrap(err, fault.Invalid, CodeProofInvalid,
			"the checkpoint of %d leaves is not proven a prefix of the one of %d", cps[0].Size, cps[1].Size)
	}
	return nil
}
