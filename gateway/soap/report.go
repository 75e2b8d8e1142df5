package soap

import (
	"encoding/hex"
	"time"

	xsd "github.com/hooklift/gowsdl/soap"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/wsdl"
)

// The report of POST /api/v1/verifications, in the contract's types.

func dateTime(t time.Time) xsd.XSDDateTime { return xsd.CreateXsdDateTime(t.UTC(), true) }

func dateTimePtr(t *time.Time) xsd.XSDDateTime {
	if t == nil {
		return xsd.XSDDateTime{}
	}
	return dateTime(*t)
}

func verificationReport(r *seal.Report) *wsdl.VerificationReport {
	out := &wsdl.VerificationReport{Valid: r.Valid, Verdict: r.Verdict, DocumentSha256: r.DocumentSHA256, Size: r.Size, Kind: r.Kind,
		Cms: cmsReport(r.CMS), Evidence: evidenceReport(r.Evidence), InLog: r.InLog, EvidencePending: r.EvidencePending}
	for _, q := range r.Qualifications {
		out.Qualification = append(out.Qualification, sealQualification(q))
	}
	if p := r.PDF; p != nil {
		out.Pdf = &wsdl.PdfReport{Valid: p.Valid, Revisions: int32(p.Revisions), Error: findings(p.Errors)}
		for _, s := range p.Signatures {
			out.Pdf.Signature = append(out.Pdf.Signature, pdfSignature(s))
		}
	}
	return out
}

func sealQualification(q seal.SealQualification) *wsdl.SealQualification {
	v := q.Qualification
	out := &wsdl.SealQualification{Field: q.Field, Signer: q.Signer, Level: string(v.Level), Words: v.Words, At: dateTime(v.At),
		AtSource: v.AtSource, Reason: v.Reasons}
	if sv := v.Service; sv != nil {
		out.Service = &wsdl.TrustService{Territory: sv.Territory, List: sv.List, Sequence: int32(sv.Sequence), Provider: sv.Provider,
			Name: sv.Name, Type_: sv.Type, Status: sv.Status, StatusSince: dateTime(sv.StatusSince), AdditionalInfo: sv.AdditionalInfo,
			Qualifier: sv.Qualifiers}
	}
	if c := v.Certificate; c != nil {
		out.Certificate = &wsdl.CertificateClaims{QcCompliance: c.QcCompliance, QcSSCD: c.QcSSCD, QcType: c.QcTypes,
			QcCClegislation: c.QcCClegislation, Policy: c.Policies, LegalPerson: c.LegalPerson,
			OrganizationIdentifier: c.OrganizationIdentifier, Problem: c.Problems}
		if c.QcRetentionPeriod != 0 {
			years := int32(c.QcRetentionPeriod)
			out.Certificate.QcRetentionPeriod = &years
		}
		for _, p := range c.QcPDS {
			out.Certificate.QcPDS = append(out.Certificate.QcPDS, &wsdl.PDS{Url: p.URL, Language: p.Language})
		}
	}
	return out
}

func pdfSignature(s pades.Signature) *wsdl.PdfSignature {
	return &wsdl.PdfSignature{Field: s.Field, Type_: s.Type, SubFilter: s.SubFilter, Valid: s.Valid, ByteRange: s.ByteRange,
		ByteRangeValid: s.ByteRangeValid, CoversWholeDocument: s.CoversWholeDocument, Level: string(s.Level),
		Certification: permission(s.Certification), ClaimedTime: dateTimePtr(s.ClaimedTime), Reason: s.Reason, Location: s.Location,
		Cms: cmsReport(s.CMS), Timestamp: timestampInfo(s.Timestamp), MissingRevocation: s.MissingRevocation,
		LaterChange: s.LaterChanges, Error: findings(s.Errors)}
}

// permission names a certification's permission; "" for none.
func permission(p pades.Permission) string {
	if p == 0 {
		return ""
	}
	name, _ := p.MarshalText()
	return string(name)
}

func cmsReport(r *cms.Report) *wsdl.CmsReport {
	if r == nil {
		return nil
	}
	out := &wsdl.CmsReport{Valid: r.Valid, Level: string(r.Level), Signer: r.Signer, ContentType: r.ContentType,
		DigestAlgorithm: r.DigestAlgorithm, SignatureAlgorithm: r.SignatureAlgorithm, SigningTime: dateTimePtr(r.SigningTime),
		SigningCertificateV2: r.SigningCertificateV2, SigningCertificateV2Matches: r.SigningCertificateV2Matches,
		Timestamp: timestampInfo(r.Timestamp), Error: findings(r.Errors)}
	if !r.ChainValidatedAt.IsZero() {
		out.ChainValidatedAt = dateTime(r.ChainValidatedAt)
	}
	for _, c := range r.Chain {
		out.Chain = append(out.Chain, &wsdl.CertificateInfo{Subject: c.Subject, Issuer: c.Issuer, SerialNumber: c.SerialNumber,
			NotBefore: dateTime(c.NotBefore), NotAfter: dateTime(c.NotAfter), Sha256: c.SHA256})
	}
	return out
}

func timestampInfo(t *cms.TimestampInfo) *wsdl.TimestampInfo {
	if t == nil {
		return nil
	}
	return &wsdl.TimestampInfo{GenTime: dateTime(t.GenTime), AccuracyNanos: int64(t.Accuracy), SerialNumber: t.SerialNumber,
		Policy: t.Policy, Hash: t.Hash, Imprint: hex.EncodeToString(t.Imprint)}
}

func evidenceReport(r *evidence.Report) *wsdl.EvidenceReport {
	if r == nil {
		return nil
	}
	out := &wsdl.EvidenceReport{Ok: r.OK, Index: r.Index, Size: r.Size, SealChecked: r.SealChecked, TimestampedAt: dateTimePtr(r.TimestampedAt)}
	for _, p := range r.Problems {
		out.Problem = append(out.Problem, &wsdl.Finding{Code: string(p.Code), Message: p.Message})
	}
	if e := r.Entry; e != nil {
		out.Entry = &wsdl.EvidenceEntry{Version: int32(e.Version), SealedSha256: hex.EncodeToString(e.SealedSHA256[:]),
			OriginalSha256: hex.EncodeToString(e.OriginalSHA256[:]), SealId: e.SealID, SignerCertSha256: hex.EncodeToString(e.SignerCertSHA256[:]),
			Format: e.Format, Level: e.Level, Time: dateTime(e.Time), PrincipalHash: hex.EncodeToString(e.PrincipalHash[:])}
	}
	return out
}

func findings(fs []cms.Finding) []*wsdl.Finding {
	var out []*wsdl.Finding
	for _, f := range fs {
		out = append(out, &wsdl.Finding{Code: string(f.Code), Message: f.Message})
	}
	return out
}
