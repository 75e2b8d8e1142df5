package pades

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pdf"
)

// Finding codes of the PDF verifier.
const (
	CodeByteRangeInvalid  fault.Code = "pdf_byte_range_invalid"
	CodeContentsPadding   fault.Code = "pdf_contents_padding_modified"
	CodeModifiedAfterSign fault.Code = "pdf_modified_after_signing"
	CodeSubFilterUnknown  fault.Code = "pdf_subfilter_unsupported"
	CodeNoSignature       fault.Code = "pdf_not_signed"
	CodeEmbeddedCert                 = cms.CodeEmbeddedCert
	// CodeCertificateRevoked: the document's own revocation data shows a
	// certificate of the chain revoked before the signature was made.
	CodeCertificateRevoked fault.Code = "certificate_revoked"
)

// VerifyOptions controls Verify.
type VerifyOptions struct {
	// Roots are the trusted roots for signers; nil means the system roots.
	Roots *x509.CertPool
	// Intermediates help build chains besides those embedded.
	Intermediates *x509.CertPool
	// TSARoots are the trusted roots for timestamps; nil means Roots.
	TSARoots *x509.CertPool
	// At is the time certificate chains are checked at; zero means now.
	At time.Time
}

// Report is the verification report of a signed PDF. It marshals to the
// camelCase JSON shared by the REST, portal and CLI verification reports.
type Report struct {
	// Valid is true when the document has at least one signature, every
	// signature and document timestamp is valid, and nothing was changed
	// after a signature beyond what may follow one.
	Valid bool `json:"valid"`
	// Revisions is the number of incremental revisions (%%EOF markers).
	Revisions int `json:"revisions"`
	// Signatures lists signatures and document timestamps, oldest first.
	Signatures []Signature `json:"signatures"`
	// Errors lists document-level findings.
	Errors []cms.Finding `json:"errors,omitempty"`
}

// Signature reports one signature or document timestamp.
type Signature struct {
	// Field is the signature field's fully qualified name.
	Field string `json:"field"`
	// Type is "signature" or "documentTimestamp".
	Type string `json:"type"`
	// SubFilter is the signature format, e.g. "ETSI.CAdES.detached".
	SubFilter string `json:"subFilter"`
	// Valid is true when the byte range, the signature (or token) and the
	// changes made after it all check out.
	Valid bool `json:"valid"`
	// ByteRange is the signed range as the dictionary states it.
	ByteRange []int64 `json:"byteRange"`
	// ByteRangeValid tells whether the range covers a whole revision but
	// exactly this signature's /Contents.
	ByteRangeValid bool `json:"byteRangeValid"`
	// CoversWholeDocument is true for the signature whose range ends at the
	// end of the file ("total document signed").
	CoversWholeDocument bool `json:"coversWholeDocument"`
	// Level is the PAdES baseline level the signature reaches in this file.
	Level signing.Level `json:"level,omitempty"`
	// Certification is the DocMDP permission of a certification signature.
	Certification Permission `json:"certification,omitempty"`
	// ClaimedTime is the signature dictionary's /M.
	ClaimedTime *time.Time `json:"claimedTime,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Location    string     `json:"location,omitempty"`
	// CMS is the CMS verification of a signature.
	CMS *cms.Report `json:"cms,omitempty"`
	// Timestamp is the verified token of a document timestamp.
	Timestamp *cms.TimestampInfo `json:"timestamp,omitempty"`
	// MissingRevocation names the certificates of the signer's and the
	// timestamp authority's chains for which the document holds no OCSP
	// response or CRL; while any is missing the level stays B-T.
	MissingRevocation []string `json:"missingRevocation,omitempty"`
	// LaterChanges describes changes made after this signature that an
	// incremental signature, validation data or timestamp does not explain.
	LaterChanges []string `json:"laterChanges,omitempty"`
	// Errors lists why the signature is not valid.
	Errors []cms.Finding `json:"errors,omitempty"`

	end      int64 // where the signed revision ends
	contents []byte
}

func (s *Signature) fail(err error) {
	if e := fault.As(err); e != nil {
		s.Errors = append(s.Errors, cms.Finding{Code: e.Code, Message: e.Msg})
		return
	}
	s.Errors = append(s.Errors, cms.Finding{Code: fault.CodeInternal, Message: err.Error()})
}

// Verify verifies every signature and document timestamp of the PDF in
// r (size bytes): that each byte range covers a whole revision but exactly
// its /Contents, that the CMS signature (via cms.Verify) or RFC 3161 token
// verifies over that range, which baseline level each signature reaches,
// and that revisions added after a signature only add signatures, their
// fields and appearances, validation data and timestamps. It returns a
// report whenever the document can be read; when the report is not valid
// the error is its first finding. Unreadable documents give pdf_malformed
// or pdf_encrypted.
func Verify(ctx context.Context, r io.ReaderAt, size int64, opts VerifyOptions) (*Report, error) {
	doc, err := pdf.Open(r, size)
	if err != nil {
		return nil, err
	}
	ends, err := revisionEnds(ctx, r, size)
	if err != nil {
		return nil, err
	}
	rep := &Report{Revisions: len(ends), Signatures: []Signature{}}
	fields, err := signatureFields(doc)
	if err != nil {
		return nil, err
	}
	_, cat, err := doc.Catalog()
	if err != nil {
		return nil, err
	}
	perms, _ := doc.Dict(cat["Perms"])
	var docMDP pdf.Object
	if perms != nil {
		docMDP = perms["DocMDP"]
	}
	sigRefs := map[uint32]bool{}
	for _, f := range fields {
		if ref, ok := f.dict["V"].(pdf.Ref); ok {
			if sigRefs[ref.Num] {
				rep.Errors = append(rep.Errors, cms.Finding{Code: CodeByteRangeInvalid,
					Message: fmt.Sprintf("signature dictionary %d is the value of more than one field", ref.Num)})
			}
			sigRefs[ref.Num] = true
		}
	}
	// covers maps each signature that verifies to where its signed bytes
	// end: a field or appearance added later may show only if the
	// signature it holds covers it.
	covers := map[uint32]int64{}
	for _, f := range fields {
		if !f.signed {
			continue
		}
		s := verifyField(ctx, doc, r, size, f, ends, opts)
		ref, _ := f.dict["V"].(pdf.Ref)
		if docMDP == ref {
			s.Certification = docMDPPermission(doc, perms)
		}
		if s.ByteRangeValid {
			// A signature must cover its own dictionary: one whose
			// dictionary lies after its signed bytes reuses another's
			// /ByteRange and /Contents to claim its own reason and time.
			if off, ok := doc.ObjectOffset(ref.Num); !ok || off >= s.end {
				s.fail(fault.New(fault.Invalid, CodeByteRangeInvalid, "the signature dictionary lies outside the bytes its signature covers"))
			}
		}
		if len(s.Errors) == 0 {
			covers[ref.Num] = s.end
		}
		rep.Signatures = append(rep.Signatures, s)
	}
	sort.SliceStable(rep.Signatures, func(i, j int) bool { return rep.Signatures[i].end < rep.Signatures[j].end })
	revs := newRevisions(r, size, ends)
	for i := range rep.Signatures {
		s := &rep.Signatures[i]
		if s.end < size && s.ByteRangeValid {
			s.LaterChanges = laterChanges(doc, revs, s.end, sigRefs, covers)
		}
		// A certification allowing no changes still allows validation data
		// and document timestamps (ETSI EN 319 142-1 §5.4), not signatures.
		for _, later := range rep.Signatures[i+1:] {
			if s.Certification == NoChangesAllowed && later.Type == "signature" {
				s.LaterChanges = append(s.LaterChanges, fmt.Sprintf("signature %q was added although the certification allows no changes", later.Field))
			}
		}
		for _, c := range s.LaterChanges {
			s.Errors = append(s.Errors, cms.Finding{Code: CodeModifiedAfterSign, Message: c})
		}
		s.Valid = len(s.Errors) == 0
	}
	assignLevels(doc, rep.Signatures)
	if len(ends) > 0 {
		if n, err := trailingBytes(r, ends[len(ends)-1], size); err != nil {
			return nil, err
		} else if n > 0 {
			rep.Errors = append(rep.Errors, cms.Finding{Code: CodeModifiedAfterSign,
				Message: fmt.Sprintf("%d bytes after the last revision's %%%%EOF are no revision of the document", n)})
		}
	}
	if len(rep.Signatures) == 0 {
		rep.Errors = append(rep.Errors, cms.Finding{Code: CodeNoSignature, Message: "the document carries no signature"})
	}
	rep.Valid = len(rep.Errors) == 0
	for _, s := range rep.Signatures {
		rep.Valid = rep.Valid && s.Valid
	}
	if !rep.Valid {
		first := firstFinding(rep)
		return rep, fault.New(fault.Invalid, first.Code, "%s", first.Message)
	}
	return rep, nil
}

func firstFinding(rep *Report) cms.Finding {
	if len(rep.Errors) > 0 {
		return rep.Errors[0]
	}
	for _, s := range rep.Signatures {
		if len(s.Errors) > 0 {
			return cms.Finding{Code: s.Errors[0].Code, Message: fmt.Sprintf("signature %q: %s", s.Field, s.Errors[0].Message)}
		}
	}
	return cms.Finding{Code: fault.CodeInternal, Message: "invalid"}
}

// revisionEnds returns the end of every revision: the offsets just past each
// %%EOF marker and the end-of-line after it.
func revisionEnds(ctx context.Context, r io.ReaderAt, size int64) ([]int64, error) {
	const marker = "%%EOF"
	var ends []int64
	buf := make([]byte, 1<<16)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := r.ReadAt(buf, off)
		if n == 0 && err != nil {
			return nil, fault.Wrap(err, fault.Invalid, signing.CodePDFMalformed, "reading the document failed")
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], []byte(marker))
			if j < 0 {
				break
			}
			end := off + int64(i+j+len(marker))
			// The end of line after %%EOF belongs to the revision; a marker
			// too close to the chunk's end is left to the next, overlapping read.
			tail := chunk[i+j+len(marker):]
			if len(tail) < 2 && n == len(buf) {
				break
			}
			if len(tail) > 0 && tail[0] == '\r' {
				end++
				tail = tail[1:]
			}
			if len(tail) > 0 && tail[0] == '\n' {
				end++
			}
			ends = append(ends, end)
			i += j + len(marker)
		}
		if int64(n) < int64(len(buf)) {
			break
		}
		off += int64(n - len(marker) - 2) // overlap so a marker across chunks is found once
	}
	// Overlapping reads can see a marker twice.
	ends = dedupe(ends)
	return ends, nil
}

// trailingBytes counts the bytes after the last revision's end that are
// not white space (ISO 32000-1 §7.2.2), which some producers pad files
// with: anything else there was added to the file outside any revision.
func trailingBytes(r io.ReaderAt, end, size int64) (int64, error) {
	var n int64
	buf := make([]byte, 1<<16)
	for off := end; off < size; {
		k, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if k == 0 && err != nil {
			return 0, fault.Wrap(err, fault.Invalid, signing.CodePDFMalformed, "reading the document failed")
		}
		for _, c := range buf[:k] {
			switch c {
			case 0, '\t', '\n', '\f', '\r', ' ':
			default:
				n++
			}
		}
		off += int64(k)
	}
	return n, nil
}

func dedupe(v []int64) []int64 {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	out := v[:0]
	for i, x := range v {
		if i == 0 || x != v[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func verifyField(ctx context.Context, doc *pdf.Reader, r io.ReaderAt, size int64, f sigField, ends []int64, opts VerifyOptions) Signature {
	s := Signature{Field: f.name, Type: "signature"}
	sig, err := doc.Dict(f.dict["V"])
	if err != nil || sig == nil {
		s.fail(fault.New(fault.Invalid, signing.CodePDFMalformed, "the signature dictionary of field %q cannot be read", f.name))
		return s
	}
	if sig.Name("Type") == "DocTimeStamp" {
		s.Type = "documentTimestamp"
	}
	s.SubFilter = string(sig.Name("SubFilter"))
	if t, ok := sig["M"].(pdf.String); ok {
		if tm, err := parsePDFDate(string(t)); err == nil {
			s.ClaimedTime = &tm
		}
	}
	if v, ok := sig["Reason"].(pdf.String); ok {
		s.Reason = pdf.DecodeText(v)
	}
	if v, ok := sig["Location"].(pdf.String); ok {
		s.Location = pdf.DecodeText(v)
	}
	contents, _ := sig["Contents"].(pdf.String)
	s.contents = contents
	br, err := checkByteRange(doc, r, size, sig, contents, ends)
	s.ByteRange = br
	if err != nil {
		s.fail(err)
		return s
	}
	s.ByteRangeValid = true
	s.end = br[2] + br[3]
	s.CoversWholeDocument = s.end == size
	der, err := trimDER(contents)
	if err != nil {
		s.fail(err)
		return s
	}
	signed := func() io.Reader {
		return io.MultiReader(io.NewSectionReader(r, br[0], br[1]), io.NewSectionReader(r, br[2], br[3]))
	}
	switch s.SubFilter {
	case "ETSI.CAdES.detached", "adbe.pkcs7.detached":
		cmsOpts := cms.VerifyOptions{Roots: opts.Roots, Intermediates: opts.Intermediates, TSARoots: opts.TSARoots, At: opts.At}
		rep, err := cms.Verify(ctx, der, cms.SignedContent{Reader: signed()}, cmsOpts)
		s.CMS = rep
		if err != nil {
			s.fail(err)
		} else if err := cms.CheckContainer(der, rep, cmsOpts); err != nil {
			s.fail(err)
		}
	case "ETSI.RFC3161":
		t, err := cms.ParseTimestampToken(der)
		if err != nil {
			s.fail(err)
			return s
		}
		d := t.HashFunc().New()
		if _, err := io.Copy(d, signed()); err != nil {
			s.fail(fault.Wrap(err, fault.Invalid, signing.CodeInputUnreadable, "reading the signed range failed"))
			return s
		}
		roots := opts.TSARoots
		if roots == nil {
			roots = opts.Roots
		}
		info, err := cms.VerifyTimestampToken(der, d.Sum(nil), t.HashFunc(), cms.TimestampVerifyOptions{Roots: roots, Intermediates: opts.Intermediates, At: opts.At})
		if err != nil {
			s.fail(err)
		}
		s.Timestamp = info
	default:
		s.fail(fault.New(fault.Invalid, CodeSubFilterUnknown, "signature format %q is not supported", s.SubFilter))
	}
	return s
}

// checkByteRange checks that the range is [0 a b c] with the gap [a, b)
// holding exactly this signature's hex /Contents, and that it ends where a
// revision ends.
func checkByteRange(doc *pdf.Reader, r io.ReaderAt, size int64, sig pdf.Dict, contents []byte, ends []int64) ([]int64, error) {
	a, err := doc.Array(sig["ByteRange"])
	if err != nil || len(a) != 4 {
		return nil, fault.New(fault.Invalid, CodeByteRangeInvalid, "the /ByteRange is not four numbers")
	}
	br := make([]int64, 4)
	for i, o := range a {
		v, ok := pdf.Int(o)
		if !ok || v < 0 {
			return nil, fault.New(fault.Invalid, CodeByteRangeInvalid, "the /ByteRange is not four numbers")
		}
		br[i] = v
	}
	if br[0] != 0 || br[1] >= br[2] || br[2]+br[3] > size || br[2]-br[1] != int64(2*len(contents)+2) {
		return br, fault.New(fault.Invalid, CodeByteRangeInvalid, "/ByteRange %v does not exclude exactly the /Contents", br)
	}
	gap := make([]byte, br[2]-br[1])
	if _, err := r.ReadAt(gap, br[1]); err != nil {
		return br, fault.Wrap(err, fault.Invalid, CodeByteRangeInvalid, "the /ByteRange gap cannot be read")
	}
	if gap[0] != '<' || gap[len(gap)-1] != '>' || !hexEqual(gap[1:len(gap)-1], contents) {
		return br, fault.New(fault.Invalid, CodeByteRangeInvalid, "/ByteRange %v leaves out something other than this signature's /Contents", br)
	}
	end := br[2] + br[3]
	i := sort.Search(len(ends), func(i int) bool { return ends[i] >= end })
	if i == len(ends) || ends[i] != end {
		return br, fault.New(fault.Invalid, CodeByteRangeInvalid, "/ByteRange %v does not end where a revision ends", br)
	}
	return br, nil
}

func hexEqual(h, b []byte) bool {
	const digits = "0123456789abcdef"
	if len(h) != 2*len(b) {
		return false
	}
	for i, c := range b {
		if lower(h[2*i]) != digits[c>>4] || lower(h[2*i+1]) != digits[c&15] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// trimDER cuts the zero padding after the signature in /Contents and
// returns it in DER (producers such as NSS write BER, which RFC 5652
// allows); anything but zeros after it is a modification the signature
// does not cover.
func trimDER(contents []byte) ([]byte, error) {
	der, rest, err := cms.BERToDER(contents)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, cms.CodeMalformed, "/Contents does not hold a CMS signature")
	}
	for _, c := range rest {
		if c != 0 {
			return nil, fault.New(fault.Invalid, CodeContentsPadding, "the padding after the signature in /Contents was changed")
		}
	}
	return der, nil
}

// parsePDFDate reads "D:YYYYMMDDHHmmSSOHH'mm'" with the optional parts §7.9.4 allows.
func parsePDFDate(s string) (time.Time, error) {
	s = strings.TrimPrefix(s, "D:")
	s = strings.ReplaceAll(s, "'", "")
	layouts := []string{"20060102150405-0700", "20060102150405Z", "20060102150405", "200601021504-0700", "20060102"}
	if strings.HasSuffix(s, "Z00") || strings.HasSuffix(s, "Z0000") {
		s = s[:strings.IndexByte(s, 'Z')+1]
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad PDF date %q", s)
}

// assignLevels works out each valid signature's baseline level from the
// rest of the file. B-LT needs a signature timestamp and, in the document
// security store, the certificates of the signer's and the timestamp
// authority's chains with revocation data (an OCSP response or a CRL) for
// each one but the roots; B-LTA needs a valid document timestamp covering
// the signature and the store. Stored revocation data that shows a
// certificate revoked before the signature's time makes it invalid.
func assignLevels(doc *pdf.Reader, sigs []Signature) {
	store := readDSS(doc)
	for i := range sigs {
		s := &sigs[i]
		if s.Type != "signature" || !s.Valid || s.CMS == nil {
			continue
		}
		s.Level = s.CMS.Level
		if s.Level == signing.LevelBB && coveredByDocTimestamp(sigs, s.end) {
			// A document timestamp over the signature gives it its time
			// as a signature timestamp would (ETSI EN 319 142-1 §5.4).
			s.Level = signing.LevelBT
			continue
		}
		if len(s.CMS.Chain) == 0 {
			continue
		}
		at := time.Now()
		chains := [][]cms.CertificateInfo{s.CMS.Chain}
		if ts := s.CMS.Timestamp; ts != nil {
			at = ts.GenTime
			chains = append(chains, ts.Chain)
		}
		complete := true
		for _, chain := range chains {
			for j, c := range chain {
				complete = complete && store.certs[c.SHA256]
				if j == len(chain)-1 || c.Certificate() == nil || chain[j+1].Certificate() == nil {
					continue // the root is trusted as it is
				}
				found, revoked, when := store.revocation(c.Certificate(), chain[j+1].Certificate())
				switch {
				case revoked && when.Before(at):
					s.Errors = append(s.Errors, cms.Finding{Code: CodeCertificateRevoked,
						Message: fmt.Sprintf("%s was revoked at %s, before the signature's time %s", c.Subject, when.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))})
					s.Valid = false
				case !found:
					complete = false
					if s.Level == signing.LevelBT {
						s.MissingRevocation = append(s.MissingRevocation, c.Subject)
					}
				}
			}
		}
		if !s.Valid {
			s.Level = ""
			continue
		}
		if s.Level != signing.LevelBT || !complete {
			continue
		}
		s.Level = signing.LevelBLT
		for _, t := range sigs {
			if t.Type == "documentTimestamp" && t.Valid && t.end > s.end && t.end > store.at {
				s.Level = signing.LevelBLTA
			}
		}
	}
}

// coveredByDocTimestamp reports whether a valid document timestamp covers
// the bytes up to end.
func coveredByDocTimestamp(sigs []Signature, end int64) bool {
	for _, t := range sigs {
		if t.Type == "documentTimestamp" && t.Valid && t.end > end {
			return true
		}
	}
	return false
}

// dssStore is what a document security store holds.
type dssStore struct {
	certs map[string]bool // fingerprints
	ocsps [][]byte
	crls  [][]byte
	at    int64 // where the store's dictionary is defined
}

// readDSS reads the document security store; entries that cannot be read
// are left out.
func readDSS(doc *pdf.Reader) dssStore {
	out := dssStore{certs: map[string]bool{}}
	_, cat, err := doc.Catalog()
	if err != nil {
		return out
	}
	ref, _ := cat["DSS"].(pdf.Ref)
	dss, err := doc.Dict(cat["DSS"])
	if err != nil || dss == nil {
		return out
	}
	out.at, _ = doc.ObjectOffset(ref.Num)
	streams := func(key pdf.Name) [][]byte {
		_, ders, _ := dssEntries(doc, dss, key)
		return slices.DeleteFunc(ders, func(der []byte) bool { return der == nil })
	}
	for _, der := range streams("Certs") {
		if c, err := x509.ParseCertificate(der); err == nil {
			out.certs[cms.Fingerprint(c)] = true
		}
	}
	out.ocsps, out.crls = streams("OCSPs"), streams("CRLs")
	return out
}

// revocation looks for c's status, issued by issuer, among all the stored
// OCSP responses and CRLs: whether any speaks of it, and whether any shows
// it revoked, and since when (the earliest). A revocation wins over any
// number of answers saying good, whatever their order in the store.
func (d dssStore) revocation(c, issuer *x509.Certificate) (found, revoked bool, at time.Time) {
	revokedAt := func(t time.Time) {
		if !revoked || t.Before(at) {
			at = t
		}
		found, revoked = true, true
	}
	for _, der := range d.ocsps {
		resp, err := ocsp.ParseResponseForCert(der, c, issuer)
		if err != nil || resp.Status == ocsp.Unknown || resp.Status == ocsp.ServerFailed {
			continue
		}
		found = true
		if resp.Status == ocsp.Revoked {
			revokedAt(resp.RevokedAt)
		}
	}
	for _, der := range d.crls {
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(issuer) != nil {
			continue
		}
		found = true
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				revokedAt(e.RevocationTime)
			}
		}
	}
	return found, revoked, at
}
