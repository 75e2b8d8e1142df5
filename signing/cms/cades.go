package cms

import (
	"context"
	"crypto"
	"crypto/sha256"
	"hash"
	"io"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// CodeDocumentEmpty: an empty document was given to seal.
const CodeDocumentEmpty fault.Code = "document_empty"

// CAdESOptions controls CAdES.
type CAdESOptions struct {
	// Hash is the document and signature hash; default SHA-256.
	Hash crypto.Hash
	// PSS selects RSASSA-PSS for RSA keys.
	PSS bool
	// Timestamper, when set, makes a B-T signature; without it the signature is B-B.
	Timestamper signing.Timestamper
	// SigningTime is the claimed signing time; zero means now.
	SigningTime time.Time
}

// CAdESResult is a detached CAdES signature and what the evidence log
// records about the document it covers.
type CAdESResult struct {
	// Signature is the DER CMS ContentInfo (a .p7s file).
	Signature []byte
	// Level is B-B, or B-T when timestamped.
	Level signing.Level
	// Hash and Digest are the signature's document hash.
	Hash   crypto.Hash
	Digest []byte
	// SHA256 is the document's SHA-256, whatever Hash is: evidence entries are keyed by it.
	SHA256 []byte
	// Size is the document's length in bytes.
	Size int64
}

// CAdES makes a detached CAdES baseline signature (ETSI EN 319 122-1) over
// doc, read once as a stream so that documents of any size need only a
// small buffer: B-B (content-type, message-digest, signing-time,
// signing-certificate-v2, full chain), or B-T with opts.Timestamper.
// An empty document gives document_empty, a failing reader
// input_unreadable, a failing timestamp authority timestamp_failed.
func CAdES(ctx context.Context, key signing.Key, doc io.Reader, opts CAdESOptions) (*CAdESResult, error) {
	h := opts.Hash
	if h == 0 {
		h = crypto.SHA256
	}
	if _, err := digestAlgorithmFor(h); err != nil {
		return nil, err
	}
	sha := sha256.New()
	var w io.Writer = sha
	var docHash hash.Hash = sha
	if h != crypto.SHA256 {
		docHash = h.New()
		w = io.MultiWriter(sha, docHash)
	}
	n, err := signing.CopyContext(ctx, w, doc)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, fault.New(fault.Invalid, CodeDocumentEmpty, "the document is empty (0 bytes)")
	}
	digest := docHash.Sum(nil)
	sig, err := Sign(ctx, key, digest, h, Options{
		SigningTime: opts.SigningTime,
		PSS:         opts.PSS,
		Timestamper: opts.Timestamper,
	})
	if err != nil {
		return nil, err
	}
	level := signing.LevelBB
	if opts.Timestamper != nil {
		level = signing.LevelBT
	}
	return &CAdESResult{Signature: sig, Level: level, Hash: h, Digest: digest, SHA256: sha.Sum(nil), Size: n}, nil
}
