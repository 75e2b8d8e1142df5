package seal

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io"
	"math"
	"net/netip"
	"runtime"
	"time"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/trust"
)

// Prover finds a document's evidence in a role; evidence.Log implements it.
type Prover interface {
	ProveRole(ctx context.Context, h evidence.SHA256, role evidence.Role) (*evidence.Evidence, error)
	VerifierKey() string
}

// Verifier is sealgate's one verification path, shared by the REST API, the
// portal and the CLI: it checks a document's seals (PAdES inside a PDF, or a
// detached CAdES signature) and, when the evidence log knows the document,
// its inclusion in the published log.
type Verifier struct {
	// Evidence is the log to look documents up in; nil verifies signatures only.
	Evidence Prover
	// Roots are the trusted roots for seals, timestamps and checkpoint seals.
	Roots *x509.CertPool
	// Trust are the EU trusted lists: their CAs are trusted roots besides
	// Roots, and they decide each seal's qualification. Nil: no lists are
	// configured, and qualification rests on the certificates alone.
	Trust *trust.Lists
	// TempDir holds a spooled document while it is checked.
	TempDir string
	// Spool bounds the temporary space spooled documents take, shared with
	// the sealing path (NewSpoolBudget); nil is unbounded.
	Spool *limit.Budget

	// The bounds of public verification; see Public. Zero: unbounded.
	maxDocumentSize int64
	gate            *limit.Gate
	perSource       *limit.Buckets
}

// Codes of public verification's bounds (document_too_large is shared
// with the sealing path).
const (
	CodeVerificationBusy        fault.Code = "verification_busy"
	CodeVerificationRateLimited fault.Code = "verification_rate_limited"
)

// DefaultVerifyMaxDocumentSize bounds a document verified for a public caller.
const DefaultVerifyMaxDocumentSize = 100 << 20

// VerifyLimits bound verification for callers from the network, who need
// no credentials: the "verify" section of sealgate.yaml.
type VerifyLimits struct {
	// MaxDocumentSize bounds one document, in bytes. Default 100 MiB.
	MaxDocumentSize int64 `yaml:"maxDocumentSize"`
	// Concurrency, Queue and MaxWait bound verifications in progress.
	// Default: 2 × GOMAXPROCS at once, 4 × that waiting up to 2s.
	limit.GateSettings `yaml:",inline"`
	// PerSource limits the verifications one client address (IPv6: its
	// /64) may start. Default 1 per second, bursts of 20.
	PerSource limit.RateSettings `yaml:"perSource"`
}

// WithDefaults fills the zero fields.
func (l VerifyLimits) WithDefaults() VerifyLimits {
	if l.MaxDocumentSize <= 0 {
		l.MaxDocumentSize = DefaultVerifyMaxDocumentSize
	}
	l.GateSettings = l.GateSettings.WithDefaults(2 * runtime.GOMAXPROCS(0))
	if l.PerSource == (limit.RateSettings{}) {
		l.PerSource = limit.RateSettings{Rate: 1, Burst: 20}
	}
	return l
}

// Public returns a copy of v bounded by l (after WithDefaults), for
// callers from the network; v itself stays unbounded for local use (the
// CLI verifying a file).
func (v *Verifier) Public(l VerifyLimits) *Verifier {
	l = l.WithDefaults()
	p := *v
	p.maxDocumentSize = l.MaxDocumentSize
	p.gate = limit.NewGate(l.GateSettings, func() *fault.Error {
		return fault.New(fault.TooMany, CodeVerificationBusy, "too many verifications in progress; try again shortly")
	})
	p.perSource = limit.NewBuckets(l.PerSource, 0, func() *fault.Error {
		return fault.New(fault.TooMany, CodeVerificationRateLimited, "too many verifications from this address; slow down")
	})
	return &p
}

// VerifyRequest is a document to verify.
type VerifyRequest struct {
	Document io.Reader
	// Signature is a detached CAdES signature (.p7s) over Document, if any.
	Signature []byte
	// Size is Document's announced length; 0 or -1 when not announced.
	Size int64
	// Source is the caller's address, for the per-source limit of a
	// public Verifier; the zero Addr (a local caller) is not limited.
	Source netip.Addr
}

// Report is the verification report (JSON, camelCase).
type Report struct {
	// Valid is true when every signature found is valid and the log's
	// evidence, if any, verifies. A document with no seal is not valid.
	Valid bool `json:"valid"`
	// Verdict is a one-line summary for people.
	Verdict        string `json:"verdict"`
	DocumentSHA256 string `json:"documentSha256"`
	Size           int64  `json:"size"`
	// Kind is "pdf" (PAdES), "cades" (detached signature) or "document"
	// (neither: only the evidence log can speak for it).
	Kind     string           `json:"kind"`
	PDF      *pades.Report    `json:"pdf,omitempty"`
	CMS      *cms.Report      `json:"cms,omitempty"`
	Evidence *evidence.Report `json:"evidence,omitempty"`
	// InLog is true when the evidence log records this document.
	InLog bool `json:"inLog"`
	// EvidencePending is true when the document was recorded after the
	// newest checkpoint: its proof exists from the next checkpoint on.
	EvidencePending bool `json:"evidencePending,omitempty"`
	// Qualifications holds the eIDAS qualification of each seal: the
	// CAdES signature, or each signature (not document timestamp) of a PDF.
	Qualifications []SealQualification `json:"qualifications,omitempty"`
}

// SealQualification is the qualification of one seal of a report.
type SealQualification struct {
	// Field is the PDF signature field; empty for a CAdES signature.
	Field  string `json:"field,omitempty"`
	Signer string `json:"signer,omitempty"`
	// Qualification is the verdict, its reasons and the trusted-list
	// service it rests on, at the seal's best signature time.
	Qualification trust.Qualification `json:"qualification"`
}

// Verify checks req.Document.
func (v *Verifier) Verify(ctx context.Context, req VerifyRequest) (*Report, error) {
	if req.Document == nil {
		return nil, fault.New(fault.Invalid, CodeDocumentEmpty, "no document given")
	}
	if v.perSource != nil {
		if err := v.perSource.Take(req.Source); err != nil {
			return nil, err
		}
	}
	doc := newLimitedReader(req.Document, math.MaxInt64)
	if v.maxDocumentSize > 0 {
		if req.Size > v.maxDocumentSize {
			return nil, fault.New(fault.TooLarge, CodeDocumentTooLarge, "document of %d bytes exceeds the verification limit of %d bytes", req.Size, v.maxDocumentSize)
		}
		doc = newLimitedReader(req.Document, v.maxDocumentSize)
	}
	if v.gate != nil {
		leave, err := v.gate.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	sf, err := newSpool(v.TempDir, "verify", 0, v.Spool)
	if err != nil {
		return nil, err
	}
	defer sf.remove()
	f := sf
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(sf, h), doc)
	if err != nil {
		return nil, spoolError(err, sf, doc)
	}
	if size == 0 {
		return nil, fault.New(fault.Invalid, CodeDocumentEmpty, "the document is empty")
	}
	var sum evidence.SHA256
	copy(sum[:], h.Sum(nil))
	rep := &Report{DocumentSHA256: hex.EncodeToString(sum[:]), Size: size}
	roots := v.roots()
	opts := cms.VerifyOptions{Roots: roots}

	signed := true
	// A signed document is looked up as the output of its seal, not as the
	// original of a later one; a plain one as what a CAdES seal signed.
	lookup, role := sum, evidence.RoleSealed
	switch {
	case len(req.Signature) > 0:
		rep.Kind = "cades"
		// An invalid signature is a finding in the report, not a failure
		// to verify; only an unusable input ends verification.
		if rep.CMS, err = cms.Verify(ctx, req.Signature, cms.SignedContent{Reader: io.NewSectionReader(f, 0, size)}, opts); rep.CMS == nil {
			return nil, err
		}
		// CAdES evidence is keyed by the signature file, the sealed artefact.
		lookup = sha256.Sum256(req.Signature)
	case isPDF(f):
		rep.Kind = "pdf"
		if rep.PDF, err = pades.Verify(ctx, f, size, pades.VerifyOptions{Roots: roots}); rep.PDF == nil {
			return nil, err
		}
	default:
		rep.Kind = "document"
		signed, role = false, evidence.RoleOriginal
	}
	if v.Evidence != nil {
		ev, err := v.Evidence.ProveRole(ctx, lookup, role)
		switch {
		case fault.CodeOf(err) == evidence.CodePending:
			// Recorded, but the next checkpoint (seconds away) will cover it.
			rep.InLog, rep.EvidencePending = true, true
		case err == nil:
			rep.InLog = true
			rep.Evidence = evidence.VerifyEvidence(ev, lookup, evidence.VerifyOptions{
				LogKey:          v.Evidence.VerifierKey(),
				VerifySeal:      v.verifySeal,
				VerifyTimestamp: v.VerifyTimestamp,
			})
		case fault.CodeOf(err) != evidence.CodeNotFound:
			return nil, err
		}
	}
	rep.Qualifications = v.qualify(rep)
	rep.Valid, rep.Verdict = verdict(rep, signed)
	return rep, nil
}

// roots are the verifier's roots with the trusted lists' CAs.
func (v *Verifier) roots() *x509.CertPool { return v.Trust.Pool(v.Roots) }

// qualify decides each seal's qualification at its best signature time:
// the verified signature timestamp's, else now (when its chain was checked).
func (v *Verifier) qualify(rep *Report) []SealQualification {
	var out []SealQualification
	add := func(field string, c *cms.Report, valid bool) {
		if c == nil {
			return
		}
		in := trust.Input{Valid: valid, At: c.ChainValidatedAt, Timestamped: c.Timestamp != nil}
		if in.At.IsZero() {
			in.At = time.Now()
		}
		for _, ci := range c.Chain {
			if cert := ci.Certificate(); cert != nil {
				in.Chain = append(in.Chain, cert)
			}
		}
		if len(in.Chain) == 0 && c.SignerCertificate != nil {
			in.Chain = []*x509.Certificate{c.SignerCertificate}
		}
		out = append(out, SealQualification{Field: field, Signer: c.Signer, Qualification: v.Trust.Qualify(in)})
	}
	if rep.CMS != nil {
		add("", rep.CMS, rep.CMS.Valid)
	}
	if rep.PDF != nil {
		for _, s := range rep.PDF.Signatures {
			if s.Type == "signature" {
				add(s.Field, s.CMS, s.Valid)
			}
		}
	}
	return out
}

func verdict(rep *Report, signed bool) (bool, string) {
	sigValid := false
	switch {
	case rep.CMS != nil:
		sigValid = rep.CMS.Valid
	case rep.PDF != nil:
		sigValid = rep.PDF.Valid
	}
	evOK := rep.Evidence == nil || rep.Evidence.OK
	switch {
	case !signed && rep.InLog && evOK:
		return false, "this document is recorded in the evidence log as sealed with a detached signature; provide the signature to verify it"
	case !signed && rep.PDF == nil:
		return false, "no seal found: this is not a sealed PDF and no signature was given"
	case rep.PDF != nil && len(rep.PDF.Signatures) == 0:
		return false, "no seal found in this PDF"
	case !sigValid:
		return false, "the seal is NOT valid: the document was changed after sealing, or the seal is not trusted"
	case !evOK:
		return false, "the seal verifies, but the evidence log's proof for this document does not"
	case rep.EvidencePending:
		return true, "sealed and unchanged; recorded in the evidence log (its proof is published with the next checkpoint)"
	case rep.InLog:
		return true, "sealed and unchanged; recorded in the evidence log"
	}
	return true, "sealed and unchanged (the evidence log of this server does not record it)"
}

func isPDF(r io.ReaderAt) bool {
	head := make([]byte, 1024)
	n, _ := r.ReadAt(head, 0)
	return bytes.Contains(head[:n], []byte("%PDF-"))
}

func (v *Verifier) verifySeal(content, p7s []byte) error {
	rep, err := cms.Verify(context.Background(), p7s, cms.SignedContent{Reader: bytes.NewReader(content)}, cms.VerifyOptions{Roots: v.roots()})
	if err != nil {
		return err
	}
	if !rep.Valid {
		return fault.New(fault.Invalid, "checkpoint_seal_invalid", "the checkpoint's seal does not verify: %v", rep.Errors)
	}
	return nil
}

// VerifyTimestamp checks an RFC 3161 token's signature and certificate against
// the verifier's roots; the imprint is the caller's to check.
func (v *Verifier) VerifyTimestamp(token []byte) error {
	info, err := cms.ParseTimestampToken(token)
	if err != nil {
		return err
	}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		if h.String() == info.Hash {
			_, err := cms.VerifyTimestampToken(token, info.Imprint, h, cms.TimestampVerifyOptions{Roots: v.roots()})
			return err
		}
	}
	return fault.New(fault.Invalid, cms.CodeTimestampInvalid, "timestamp hash %s is not supported", info.Hash)
}
