// Package pades writes and verifies PDF signatures as PAdES baseline
// signatures (ETSI EN 319 142-1, levels B-B to B-LTA; ISO 32000-1 §12.8):
// the seal as an incremental update with its signature field and visible
// stamp, DocMDP certification, the document security store with validation
// data, and document timestamps. Its verifier checks every signature and
// document timestamp of a PDF and what each later revision changed.
package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"time"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pdf"
	"github.com/sealgate/sealgate/signing/stamp"
)

// Error codes of the PAdES writer.
const (
	CodeFieldUnknown     fault.Code = "pdf_field_unknown"
	CodeFieldSigned      fault.Code = "pdf_field_signed"
	CodePageOutOfRange              = pdf.CodePageOutOfRange
	CodeSigningForbidden fault.Code = "pdf_signing_forbidden"
)

// Placement is where a new visible signature field goes: a rectangle on
// page Page (1-based), in PDF units (1/72 inch) measured from the lower-left
// corner of the page as it is displayed — after its crop box and rotation.
type Placement struct {
	Page          int
	X, Y          float64
	Width, Height float64
}

// Permission is a certification signature's DocMDP permission (ISO 32000-1
// §12.8.2.2): which changes the document allows after it.
type Permission int

// DocMDP permissions; zero means an approval signature, not a certification.
const (
	NoChangesAllowed     Permission = 1
	FormFillingAllowed   Permission = 2
	AnnotationsAllowed   Permission = 3
	approvalNotCertified Permission = 0
)

// Options control Seal.
type Options struct {
	// Level is the baseline level to reach; default B-B.
	Level signing.Level
	// Timestamper provides signature and document timestamps (B-T and above).
	Timestamper signing.Timestamper
	// Hash is the digest algorithm; default SHA-256.
	Hash crypto.Hash
	// Field names an existing empty signature field to sign. When empty a
	// new field is made: visible at Placement, or invisible when
	// Placement.Page is 0.
	Field     string
	Placement Placement
	// Reason and Location go into the signature dictionary and the stamp.
	Reason, Location string
	// Stamp configures the visible appearance.
	Stamp stamp.Options
	// Certify, when not zero, makes a certification signature with this
	// DocMDP permission; it must be the document's first signature.
	Certify Permission
	// Revocation is where B-LT finds revocation data.
	Revocation RevocationOptions
	// Time is the claimed signing time written to /M and the stamp;
	// default now. (The CMS carries no signing-time: PAdES baseline.)
	Time time.Time
}

// RevocationOptions say where validation data for B-LT comes from.
type RevocationOptions struct {
	// HTTPClient fetches OCSP responses and CRLs from the certificates'
	// AIA and CRL distribution points; nil means no fetching.
	HTTPClient *http.Client
	// OCSPs and CRLs are DER responses and lists to embed as they are
	// (from configured files).
	OCSPs, CRLs [][]byte
}

// Result describes a sealed PDF.
type Result struct {
	// SHA256 is the digest of the whole signed output.
	SHA256 []byte `json:"sha256"`
	// OriginalSHA256 is the digest of the document as it was given.
	OriginalSHA256 []byte `json:"originalSha256"`
	// Size is the output's length in bytes.
	Size int64 `json:"size"`
	// Field is the signature field's name.
	Field string `json:"field"`
	// Level is the baseline level reached: B-T when B-LT or B-LTA was asked
	// for but revocation data is missing.
	Level signing.Level `json:"level"`
	// RevocationUnavailable names certificates for which no revocation data
	// could be embedded (B-LT and B-LTA).
	RevocationUnavailable []string `json:"revocationUnavailable,omitempty"`
}

// Seal seals the PDF in (size bytes) with key and writes the sealed file to
// out. The seal is an incremental update: the original bytes are copied
// unchanged and followed by the signature. From B-LT on, the same update
// carries a document security store with the validation data of the seal's
// and the timestamp authority's certificates, so the signature covers it
// and the whole file; B-LTA adds a document timestamp in a further update.
// Memory use does not grow with the document: the original is read twice,
// to hash and to copy it, and nothing is written to out before the
// signature exists.
func Seal(ctx context.Context, key signing.Key, in io.ReaderAt, size int64, out io.Writer, opts Options) (*Result, error) {
	if opts.Level == "" {
		opts.Level = signing.LevelBB
	}
	if opts.Hash == 0 {
		opts.Hash = crypto.SHA256
	}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	if opts.Level.Rank() < 0 {
		return nil, fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "unknown PAdES level %q (B-B, B-T, B-LT or B-LTA)", opts.Level)
	}
	if opts.Level.Rank() >= signing.LevelBT.Rank() && opts.Timestamper == nil {
		return nil, fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "level %s needs a timestamp authority", opts.Level)
	}
	if opts.Certify < approvalNotCertified || opts.Certify > AnnotationsAllowed {
		return nil, fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "DocMDP permission %d is not 1, 2 or 3", opts.Certify)
	}
	if !opts.Hash.Available() {
		return nil, fault.New(fault.Invalid, signing.CodePAdESOptionInvalid, "hash %v is not available", opts.Hash)
	}
	chain := key.Chain()
	if len(chain) == 0 {
		return nil, fault.New(fault.Internal, signing.CodeKeyMismatch, "the seal key has no certificate")
	}
	r, err := pdf.Open(in, size)
	if err != nil {
		return nil, err
	}
	if err := checkDocMDP(r, opts.Certify != approvalNotCertified); err != nil {
		return nil, err
	}
	// The stamp's text is checked before the timestamp authority is asked
	// or anything is signed.
	var look *stamp.Stamp
	if opts.Field != "" || opts.Placement.Page != 0 {
		if look, err = stamp.New(r, stamp.Content{Signer: chain[0], Time: opts.Time, Reason: opts.Reason, Location: opts.Location}, opts.Stamp); err != nil {
			return nil, err
		}
	}
	var sample []byte // a token from the authority, for its certificates
	tokenSize := 0    // what the signature-time-stamp token is expected to take
	if opts.Level.Rank() >= signing.LevelBT.Rank() {
		sizes, _ := opts.Timestamper.(*TokenSizes)
		if sizes != nil {
			tokenSize = sizes.Largest(timestampHash(opts.Timestamper, opts.Hash))
		}
		// B-LT and B-LTA need the authority's current certificates for
		// the validation data; B-T needs only a size, known after the
		// first token.
		if tokenSize == 0 || opts.Level.Rank() >= signing.LevelBLT.Rank() {
			if sample, err = sampleTimestamp(ctx, opts.Timestamper, opts.Hash); err != nil {
				return nil, err
			}
			tokenSize = max(tokenSize, len(sample))
		}
	}
	res := &Result{Level: opts.Level}
	var validation func(*pdf.Update) error
	if opts.Level.Rank() >= signing.LevelBLT.Rank() {
		certs, err := validationCertificates(chain, sample)
		if err != nil {
			return nil, err
		}
		data, unavailable := collectValidationData(ctx, certs, opts.Revocation)
		res.RevocationUnavailable = unavailable
		if len(unavailable) > 0 {
			// B-LT needs revocation data for the whole chain (ETSI EN
			// 319 142-1 §6.3): the store is still written, but the
			// document reaches B-T only.
			res.Level = signing.LevelBT
		}
		validation = func(u *pdf.Update) error { return addDSS(u, data) }
	}
	sigDict := pdf.Dict{
		"Type":      pdf.Name("Sig"),
		"Filter":    pdf.Name("Adobe.PPKLite"),
		"SubFilter": pdf.Name("ETSI.CAdES.detached"),
		"M":         pdfDate(opts.Time),
	}
	if opts.Reason != "" {
		sigDict["Reason"] = pdf.TextString(opts.Reason)
	}
	if opts.Location != "" {
		sigDict["Location"] = pdf.TextString(opts.Location)
	}
	sig, err := prepareSignature(r, signatureSpec{
		dict:        sigDict,
		contentsLen: estimateCMS(key, tokenSize),
		field:       opts.Field,
		placement:   opts.Placement,
		stamp:       look,
		certify:     opts.Certify,
		extra:       validation,
	})
	if err != nil {
		return nil, err
	}
	tsHash := opts.Hash
	if opts.Timestamper != nil {
		tsHash = timestampHash(opts.Timestamper, opts.Hash)
	}
	prefix, err := hashOriginal(ctx, in, size, crypto.SHA256, opts.Hash, tsHash)
	if err != nil {
		return nil, err
	}
	digest := sig.digest(prefix, opts.Hash, nil)
	signed, err := cms.SignValue(ctx, key, digest, opts.Hash, cms.Options{OmitSigningTime: true})
	if err != nil {
		return nil, err
	}
	docTimestamp := opts.Level == signing.LevelBLTA
	if grown, err := fillSignature(ctx, sig, signed, opts); errors.Is(err, errTokenOutgrew) {
		// The authority's token outgrew the placeholder sized from its
		// earlier ones (TokenSizes now knows the new size). The key is
		// not asked again: the signature goes in without the token and a
		// document timestamp over it gives the seal its time, which also
		// makes PAdES-B-T (ETSI EN 319 142-1 §5.4). The next seal fits.
		docTimestamp, tokenSize = true, grown
	} else if err != nil {
		return nil, err
	}
	res.Field = sig.field
	updates := [][]byte{sig.laid.Bytes}
	if docTimestamp {
		cur := &pdf.Appended{R: in, Size: size, Tail: sig.laid.Bytes}
		ts, err := addDocTimestamp(ctx, cur, prefix, opts.Timestamper, tsHash, tokenSize)
		if err != nil {
			return nil, err
		}
		updates = append(updates, ts)
	}
	// The output's digest continues from the original's, hashed above.
	h := prefix.resume(crypto.SHA256)
	res.OriginalSHA256 = h.Sum(nil)
	n, err := io.Copy(out, io.NewSectionReader(in, 0, size))
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeInputUnreadable, "copying the document to the output failed")
	}
	for _, u := range updates {
		h.Write(u)
		k, err := out.Write(u)
		n += int64(k)
		if err != nil {
			return nil, fault.Wrap(err, fault.Unavailable, signing.CodeInputUnreadable, "writing the sealed document failed")
		}
	}
	res.SHA256, res.Size = h.Sum(nil), n
	return res, nil
}

// errTokenOutgrew: the signature-time-stamp token does not fit the
// placeholder; the signature was filled in without it.
var errTokenOutgrew = errors.New("pades: the timestamp token outgrew its placeholder")

// fillSignature timestamps the signature (from B-T on) and writes it into
// the placeholder. When only the token makes it too large, the signature
// is written without it and errTokenOutgrew returned with the token's size.
func fillSignature(ctx context.Context, sig *preparedSignature, signed *cms.Signed, opts Options) (int, error) {
	var token []byte
	if opts.Level.Rank() >= signing.LevelBT.Rank() {
		var err error
		if token, err = signed.Timestamp(ctx, opts.Timestamper); err != nil {
			return 0, err
		}
	}
	der, err := signed.Encode(token)
	if err != nil {
		return 0, err
	}
	ferr := sig.fill(der)
	if ferr == nil || token == nil {
		return len(token), ferr
	}
	if der, err = signed.Encode(nil); err != nil {
		return 0, err
	}
	if err := sig.fill(der); err != nil {
		return 0, err
	}
	return len(token), errTokenOutgrew
}

// prefixHashes holds hash states after the original document, by
// algorithm, so that every digest over the original followed by updates
// (the signature's, the document timestamp's, the output's) hashes the
// original once.
type prefixHashes map[crypto.Hash][]byte

func hashOriginal(ctx context.Context, in io.ReaderAt, size int64, hs ...crypto.Hash) (prefixHashes, error) {
	ds := map[crypto.Hash]hash.Hash{}
	var ws []io.Writer
	for _, h := range hs {
		if _, ok := ds[h]; !ok {
			ds[h] = h.New()
			ws = append(ws, ds[h])
		}
	}
	if _, err := signing.CopyContext(ctx, io.MultiWriter(ws...), io.NewSectionReader(in, 0, size)); err != nil {
		return nil, err
	}
	p := prefixHashes{}
	for h, d := range ds {
		st, err := d.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, fault.Wrap(err, fault.Internal, cms.CodeAlgorithmUnsupported, "hash %v cannot be resumed", h)
		}
		p[h] = st
	}
	return p, nil
}

// resume returns a hash of algorithm h that has already read the original.
func (p prefixHashes) resume(h crypto.Hash) hash.Hash {
	d := h.New()
	if err := d.(encoding.BinaryUnmarshaler).UnmarshalBinary(p[h]); err != nil {
		panic(fmt.Sprintf("signing: resuming %v: %v", h, err)) // the state was made by the same hash
	}
	return d
}

// pdfDate formats t as a PDF date string (§7.9.4).
func pdfDate(t time.Time) pdf.String {
	_, off := t.Zone()
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	return pdf.String(fmt.Sprintf("D:%s%c%02d'%02d'", t.Format("20060102150405"), sign, off/3600, off%3600/60))
}

// sampleTimestamp asks the authority for one token over a dummy digest, so
// that the /Contents placeholder can be sized before the key signs (a key is
// never asked to sign twice because a guess was too small), and so that the
// authority's certificates can go into the validation data.
func sampleTimestamp(ctx context.Context, ts signing.Timestamper, h crypto.Hash) ([]byte, error) {
	h = timestampHash(ts, h)
	if !h.Available() {
		return nil, fault.New(fault.Invalid, cms.CodeAlgorithmUnsupported, "timestamp hash %v is not available", h)
	}
	d := h.New()
	d.Write([]byte("sealgate placeholder sizing"))
	tok, err := ts.Timestamp(ctx, d.Sum(nil), h)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTimestampFailed, "the timestamp authority did not answer")
	}
	return tok, nil
}

// timestampHash is the imprint hash the authority wants, else h.
func timestampHash(ts signing.Timestamper, h crypto.Hash) crypto.Hash {
	if th, ok := ts.(cms.TimestampHasher); ok && th.TimestampHash() != 0 {
		return th.TimestampHash()
	}
	return h
}

// estimateCMS bounds the DER size of the CMS SignedData cms.Sign will make:
// the chain, the signature value, the signed attributes (which name the
// issuer twice at most) and, at B-T, the timestamp token.
func estimateCMS(key signing.Key, tokenSize int) int {
	chain := key.Chain()
	n := 2048 + 2*len(chain[0].RawIssuer) + len(chain[0].SerialNumber.Bytes())
	for _, c := range chain {
		n += len(c.Raw) + 8
	}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		n += pub.Size()
	case *ecdsa.PublicKey:
		n += 2*((pub.Curve.Params().BitSize+7)/8) + 9
	case ed25519.PublicKey:
		n += ed25519.SignatureSize
	default:
		n += 1024
	}
	if tokenSize > 0 {
		n += tokenSize + tokenSize/8 + 64
	}
	return n
}

// signatureSpec describes a signature (or document timestamp) to add.
type signatureSpec struct {
	dict        pdf.Dict
	contentsLen int // bytes reserved for the DER in /Contents
	field       string
	placement   Placement
	stamp       *stamp.Stamp
	certify     Permission
	// extra adds objects to the same update (the B-LT validation data).
	extra func(*pdf.Update) error
}

// preparedSignature is an update laid out with its /Contents placeholder.
type preparedSignature struct {
	laid  *pdf.Laid
	field string
	// contents is [start, end) of the placeholder "<...>" in laid.Bytes.
	contents [2]int
}

// byteRangeWidth is the width of each number in the ByteRange placeholder:
// enough for files up to 1 TB.
const byteRangeWidth = 13

var byteRangePlaceholder = pdf.Raw("[0 " + string(bytes.Repeat([]byte{'*'}, 3*byteRangeWidth+2)) + "]")

func prepareSignature(r *pdf.Reader, spec signatureSpec) (*preparedSignature, error) {
	u := pdf.NewUpdate(r)
	dict := spec.dict.Clone()
	dict["ByteRange"] = byteRangePlaceholder
	placeholder := pdf.Raw("<" + string(bytes.Repeat([]byte{'0'}, 2*spec.contentsLen)) + ">")
	dict["Contents"] = placeholder
	if spec.certify != approvalNotCertified {
		dict["Reference"] = pdf.Array{pdf.Dict{
			"Type":            pdf.Name("SigRef"),
			"TransformMethod": pdf.Name("DocMDP"),
			"TransformParams": pdf.Dict{"Type": pdf.Name("TransformParams"), "P": pdf.Integer(spec.certify), "V": pdf.Name("1.2")},
		}}
	}
	sigRef := u.Add(dict)
	name, err := placeField(u, sigRef, spec)
	if err != nil {
		return nil, err
	}
	if spec.certify != approvalNotCertified {
		if err := updateCatalog(u, pdf.Dict{"Perms": pdf.Dict{"DocMDP": sigRef}}); err != nil {
			return nil, err
		}
	}
	if spec.extra != nil {
		if err := spec.extra(u); err != nil {
			return nil, err
		}
	}
	laid, err := u.Bytes()
	if err != nil {
		return nil, err
	}
	span := laid.Spans[sigRef.Num]
	obj := laid.Bytes[span[0]:span[1]]
	br := bytes.Index(obj, byteRangePlaceholder)
	ct := bytes.Index(obj, append([]byte("/Contents "), placeholder...))
	if br < 0 || ct < 0 {
		return nil, fault.New(fault.Internal, signing.CodePDFMalformed, "signature placeholders not found in the laid-out update")
	}
	p := &preparedSignature{laid: laid, field: name}
	p.contents[0] = span[0] + ct + len("/Contents ")
	p.contents[1] = p.contents[0] + 2*spec.contentsLen + 2
	base := laid.Base
	total := base + int64(len(laid.Bytes))
	start, end := base+int64(p.contents[0]), base+int64(p.contents[1])
	ranges := fmt.Sprintf("[0 %d %d %d", start, end, total-end)
	filled := append([]byte(ranges), bytes.Repeat([]byte{' '}, len(byteRangePlaceholder)-len(ranges)-1)...)
	copy(laid.Bytes[span[0]+br:], append(filled, ']'))
	return p, nil
}

// digest hashes the signed file but the /Contents placeholder: the
// original (resumed from prefix), the earlier updates between it and this
// one, and this update.
func (p *preparedSignature) digest(prefix prefixHashes, h crypto.Hash, between []byte) []byte {
	d := prefix.resume(h)
	d.Write(between)
	d.Write(p.laid.Bytes[:p.contents[0]])
	d.Write(p.laid.Bytes[p.contents[1]:])
	return d.Sum(nil)
}

// fill writes der into the /Contents placeholder.
func (p *preparedSignature) fill(der []byte) error {
	room := (p.contents[1] - p.contents[0] - 2) / 2
	if len(der) > room {
		return fault.New(fault.Internal, cms.CodeMalformed, "the signature (%d bytes) exceeds the %d bytes reserved for it", len(der), room)
	}
	hex.Encode(p.laid.Bytes[p.contents[0]+1:], der)
	return nil
}

// updateCatalog sets entries in the catalog as the update leaves it.
func updateCatalog(u *pdf.Update, entries pdf.Dict) error {
	ref, _, err := u.Reader().Catalog()
	if err != nil {
		return err
	}
	o, err := u.Get(ref)
	if err != nil {
		return err
	}
	cat, ok := o.(pdf.Dict)
	if !ok {
		return fault.New(fault.Invalid, signing.CodePDFMalformed, "the catalog is not a dictionary")
	}
	cat = cat.Clone()
	for k, v := range entries {
		cat[k] = v
	}
	u.Set(ref, cat)
	return nil
}

// checkDocMDP refuses documents certified with "no changes allowed", and a
// certification of a document that is already signed.
func checkDocMDP(r *pdf.Reader, certify bool) error {
	_, cat, err := r.Catalog()
	if err != nil {
		return err
	}
	perms, err := r.Dict(cat["Perms"])
	if err != nil {
		return err
	}
	if p := docMDPPermission(r, perms); p == NoChangesAllowed {
		return fault.New(fault.Forbidden, CodeSigningForbidden, "the document is certified with DocMDP permission 1: it allows no further signatures")
	} else if certify && p != approvalNotCertified {
		return fault.New(fault.Conflict, CodeSigningForbidden, "the document is already certified; a certification must be its first signature")
	}
	if certify {
		fields, err := signatureFields(r)
		if err != nil {
			return err
		}
		for _, f := range fields {
			if f.signed {
				return fault.New(fault.Conflict, CodeSigningForbidden, "the document is already signed (field %q); a certification must be its first signature", f.name)
			}
		}
	}
	return nil
}

// docMDPPermission returns the /P of the catalog's /Perms /DocMDP signature,
// or zero when the document is not certified.
func docMDPPermission(r *pdf.Reader, perms pdf.Dict) Permission {
	if perms == nil {
		return approvalNotCertified
	}
	sig, err := r.Dict(perms["DocMDP"])
	if err != nil || sig == nil {
		return approvalNotCertified
	}
	refs, _ := r.Array(sig["Reference"])
	for _, ro := range refs {
		ref, _ := r.Dict(ro)
		if ref.Name("TransformMethod") != "DocMDP" {
			continue
		}
		params, _ := r.Dict(ref["TransformParams"])
		p, ok := pdf.Int(params["P"])
		if !ok {
			return FormFillingAllowed // the default (§12.8.2.2.2)
		}
		return Permission(p)
	}
	return approvalNotCertified
}
