package trust

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sealgate/sealgate/devpki"
)

// Level is a qualification verdict (ETSI TS 119 172-4's names).
type Level string

// The verdicts.
const (
	// QESeal: a qualified electronic seal — a qualified certificate for
	// seals, the key on a QSCD, the issuer granted at the signing time.
	QESeal Level = "QESeal"
	// QESig: the same for a natural person's signature.
	QESig Level = "QESig"
	// AdESealQC: an advanced seal with a qualified certificate, key not on a QSCD.
	AdESealQC Level = "AdESeal-QC"
	// AdESigQC: the same for a signature.
	AdESigQC Level = "AdESig-QC"
	// AdESeal: an advanced seal; its certificate is not qualified.
	AdESeal Level = "AdESeal"
	// AdESig: an advanced signature; its certificate is not qualified.
	AdESig Level = "AdESig"
	// NotQualified: the signature is not valid, or its certificate claims a
	// qualification the trusted lists do not back.
	NotQualified Level = "not qualified"
	// Development: a seal of sealgate's development PKI.
	Development Level = "development"
	// Indeterminate: the trusted lists needed to decide could not be used.
	Indeterminate Level = "indeterminate"
)

var levelWords = map[Level]string{
	QESeal:        "qualified electronic seal (eIDAS art. 35: presumed integrity and origin in every member state)",
	QESig:         "qualified electronic signature (eIDAS art. 25: the equivalent of a handwritten signature)",
	AdESealQC:     "advanced electronic seal based on a qualified certificate (the key is not on a qualified seal creation device)",
	AdESigQC:      "advanced electronic signature based on a qualified certificate (the key is not on a qualified signature creation device)",
	AdESeal:       "advanced electronic seal (the certificate is not qualified)",
	AdESig:        "advanced electronic signature (the certificate is not qualified)",
	NotQualified:  "not qualified",
	Development:   "development seal — not qualified",
	Indeterminate: "the qualification could not be determined",
}

// rank orders verdicts from several services: the best one found counts.
var rank = map[Level]int{NotQualified: 0, AdESig: 1, AdESeal: 1, AdESigQC: 2, AdESealQC: 2, QESig: 3, QESeal: 3}

// ServiceRef names the trusted-list service a verdict rests on.
type ServiceRef struct {
	Territory string `json:"territory"`
	List      string `json:"list"`
	Sequence  int    `json:"sequence"`
	Provider  string `json:"provider"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	// Status and StatusSince are the service's status at the evaluation time.
	Status         string    `json:"status"`
	StatusSince    time.Time `json:"statusSince"`
	AdditionalInfo []string  `json:"additionalInfo,omitempty"`
	Qualifiers     []string  `json:"qualifiers,omitempty"`
}

// Qualification is the verdict on one seal or signature.
type Qualification struct {
	Level Level `json:"level"`
	// Words is Level for people.
	Words string `json:"words"`
	// At is the time the verdict holds for; AtSource says what it is:
	// "signatureTimestamp" (the seal existed then) or "verificationTime".
	At       time.Time `json:"at"`
	AtSource string    `json:"atSource"`
	// Reasons are the findings the verdict rests on, in order.
	Reasons []string `json:"reasons"`
	// Service is the trusted-list service that backs the verdict, if any.
	Service *ServiceRef `json:"service,omitempty"`
	// Certificate is what the signer's certificate says of itself.
	Certificate *CertificateClaims `json:"certificate,omitempty"`
}

// Input is a seal or signature to qualify.
type Input struct {
	// Chain is the signer's certificate first, then its verified chain
	// (just the signer's certificate when the chain did not verify).
	Chain []*x509.Certificate
	// Valid is true when the signature verified (it is an AdES).
	Valid bool
	// At is the best signature time; Timestamped says it comes from a
	// verified signature timestamp.
	At          time.Time
	Timestamped bool
}

// Qualify decides the qualification of a seal or signature per TS 119 615
// (certificate qualification at issuance and at in.At, from the QC
// statements as the trusted list's qualifiers amend them) and TS 119 172-4
// (the signature's level). l may be nil: no trusted lists are configured.
func (l *Lists) Qualify(in Input) Qualification {
	q := l.qualify(in)
	q.Words = levelWords[q.Level]
	return q
}

func (l *Lists) qualify(in Input) Qualification {
	q := Qualification{At: in.At.UTC(), AtSource: "verificationTime"}
	if in.Timestamped {
		q.AtSource = "signatureTimestamp"
	}
	if len(in.Chain) == 0 || in.Chain[0] == nil {
		q.Level, q.Reasons = NotQualified, []string{"the signature carries no signer certificate"}
		return q
	}
	leaf := in.Chain[0]
	claims := ReadClaims(leaf)
	q.Certificate = &claims
	if !in.Valid {
		q.Level, q.Reasons = NotQualified, []string{"the signature is not valid, so it is no advanced seal or signature"}
		return q
	}
	if slices.Contains(leaf.Subject.OrganizationalUnit, devpki.NotQualified) {
		q.Level, q.Reasons = Development, []string{"the certificate is from sealgate's development PKI (" + devpki.NotQualified + ")"}
		return q
	}
	q.Reasons = claims.describe()
	if l == nil {
		q.unbacked(&claims, Indeterminate, "no trusted lists are configured (trustedLists), so the issuer's qualified status cannot be checked",
			"the certificate does not claim to be qualified; no trusted lists are configured to say otherwise")
		return q
	}
	s := l.current.Load()
	best := (*evaluation)(nil)
	for _, m := range s.services(in.Chain) {
		e := evaluate(m, leaf, &claims, in.At)
		if best == nil || rank[e.level] > rank[best.level] {
			best = e
		}
	}
	if best == nil {
		if missing := s.unusable(); len(missing) > 0 {
			q.Level = Indeterminate
			q.Reasons = append(q.Reasons, "no trusted list held names the issuer, and these lists could not be used: "+strings.Join(missing, "; "))
			return q
		}
		q.unbacked(&claims, NotQualified, "the certificate claims to be qualified, but no CA/QC service on the trusted lists issued it",
			"no CA/QC service on the trusted lists issued the certificate; it does not claim to be qualified")
		return q
	}
	q.Level, q.Service = best.level, best.ref
	q.Reasons = append(q.Reasons, best.reasons...)
	return q
}

// unbacked is the verdict when no trusted-list service speaks for the
// certificate: a claimed qualification gets level, an unclaimed one leaves
// an advanced seal or signature.
func (q *Qualification) unbacked(c *CertificateClaims, level Level, ifClaimed, ifNot string) {
	if c.QcCompliance {
		q.Level, q.Reasons = level, append(q.Reasons, ifClaimed)
		return
	}
	q.Level, q.Reasons = advanced(c.sealOrSig(nil)), append(q.Reasons, ifNot)
}

// describe says what the certificate claims, as reasons.
func (c *CertificateClaims) describe() []string {
	var r []string
	var qc []string
	if c.QcCompliance {
		qc = append(qc, "QcCompliance")
	}
	if c.QcSSCD {
		qc = append(qc, "QcSSCD")
	}
	if len(c.QcTypes) > 0 {
		qc = append(qc, "QcType "+strings.Join(c.QcTypes, ","))
	}
	if len(qc) > 0 {
		r = append(r, "the certificate states "+strings.Join(qc, ", "))
	} else {
		r = append(r, "the certificate has no QC statements")
	}
	if len(c.Policies) > 0 {
		r = append(r, "certificate policies "+strings.Join(c.Policies, ", "))
	}
	if c.LegalPerson {
		r = append(r, "issued to a legal person (organizationIdentifier "+c.OrganizationIdentifier+")")
	}
	for _, p := range c.Problems {
		r = append(r, "ignored: "+p)
	}
	return r
}

// sealOrSig is the certificate's type (TS 119 615 §4.3.x): the trusted
// list's qualifiers overrule the certificate; a certificate without QcType
// is for signatures (EN 319 412-5 §4.2.3) unless it is a legal person's.
func (c *CertificateClaims) sealOrSig(qualifiers []string) string {
	switch {
	case slices.Contains(qualifiers, qualifierPrefix+"QCForESeal"), slices.Contains(qualifiers, qualifierPrefix+"QCForLegalPerson"):
		return QcTypeESeal
	case slices.Contains(qualifiers, qualifierPrefix+"QCForESig"):
		return QcTypeESign
	case slices.Contains(qualifiers, qualifierPrefix+"QCForWSA"):
		return QcTypeWeb
	case len(c.QcTypes) == 1:
		return c.QcTypes[0]
	case len(c.QcTypes) > 1:
		return "" // ambiguous: EN 319 412-5 allows one type
	case !c.QcCompliance && c.LegalPerson:
		return QcTypeESeal
	}
	return QcTypeESign
}

func advanced(typ string) Level {
	if typ == QcTypeESeal {
		return AdESeal
	}
	return AdESig
}

// match is a service whose identity is one of the signer's issuers.
type match struct {
	list     *held
	provider string
	svc      *Service
}

// services finds the CA/QC services (at any time in their history) whose
// identity matches a certificate above the signer in its chain, by the
// same subject and public key, or by subject key identifier.
func (s *snapshot) services(chain []*x509.Certificate) []match {
	var out []match
	for _, h := range s.lists[1:] {
		if h.list == nil {
			continue
		}
		for _, p := range h.list.Providers {
			for i := range p.Services {
				svc := &p.Services[i]
				if svc.isCAQC() && svc.identifies(chain) {
					out = append(out, match{list: h, provider: p.Name, svc: svc})
				}
			}
		}
	}
	return out
}

func (svc *Service) isCAQC() bool {
	return slices.ContainsFunc(svc.Periods, func(p Period) bool { return p.Type == ServiceTypeCAQC })
}

func (svc *Service) identifies(chain []*x509.Certificate) bool {
	leaf := chain[0]
	for _, id := range svc.Identities {
		if bytes.Equal(id.RawSubject, leaf.RawIssuer) && leaf.CheckSignatureFrom(id) == nil {
			return true
		}
		for _, c := range chain[1:] {
			if bytes.Equal(id.RawSubject, c.RawSubject) && bytes.Equal(id.RawSubjectPublicKeyInfo, c.RawSubjectPublicKeyInfo) {
				return true
			}
		}
	}
	for _, ski := range svc.SKIs {
		for _, c := range chain[1:] {
			if len(c.SubjectKeyId) > 0 && bytes.Equal(ski, c.SubjectKeyId) {
				return true
			}
		}
	}
	return false
}

// unusable names the lists no verified version of is held.
func (s *snapshot) unusable() []string {
	var out []string
	for _, h := range s.lists {
		if h.list == nil && h.status.Error != nil {
			out = append(out, fmt.Sprintf("%s (%s: %s)", h.status.Location, h.status.Error.Code, h.status.Error.Message))
		}
	}
	return out
}

type evaluation struct {
	level   Level
	ref     *ServiceRef
	reasons []string
}

// evaluate qualifies the certificate through one service: the service must
// be a granted CA/QC when the certificate was issued and at the signing
// time; its qualifiers at the signing time amend what the certificate says.
func evaluate(m match, leaf *x509.Certificate, c *CertificateClaims, at time.Time) *evaluation {
	e := &evaluation{}
	period, ok := m.svc.at(at)
	e.ref = &ServiceRef{Territory: m.list.status.Territory, List: m.list.status.Location, Sequence: m.list.status.Sequence, Provider: m.provider, Name: m.svc.Name}
	name := fmt.Sprintf("service %q of %s (%s list, sequence %d)", m.svc.Name, m.provider, m.list.status.Territory, m.list.status.Sequence)
	claimed := c.QcCompliance
	notQC := func(why string) *evaluation {
		e.reasons = append(e.reasons, why)
		if claimed {
			e.level = NotQualified
		} else {
			e.level = advanced(c.sealOrSig(nil))
		}
		return e
	}
	if !ok {
		return notQC(name + " did not exist at " + at.UTC().Format(time.RFC3339))
	}
	e.ref.Type, e.ref.Status, e.ref.StatusSince, e.ref.AdditionalInfo = period.Type, period.Status, period.Start, period.AdditionalInfo
	if period.Type != ServiceTypeCAQC {
		return notQC(fmt.Sprintf("%s was of type %s at the signing time, not CA/QC", name, period.Type))
	}
	if !period.granted(at) {
		return notQC(fmt.Sprintf("%s was %s at the signing time (since %s), not granted", name, ShortName(period.Status), period.Start.Format(time.RFC3339)))
	}
	if issued, ok := m.svc.at(leaf.NotBefore); !ok || !issued.granted(leaf.NotBefore) || issued.Type != ServiceTypeCAQC {
		return notQC(fmt.Sprintf("%s was not a granted CA/QC when the certificate was issued (%s)", name, leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	e.reasons = append(e.reasons, fmt.Sprintf("%s is a granted CA/QC since %s", name, period.Start.Format(time.RFC3339)))
	if next := m.list.list.NextUpdate; !next.IsZero() && time.Now().After(next) {
		e.reasons = append(e.reasons, fmt.Sprintf("the %s list is past its next update (%s): no newer list could be loaded", m.list.status.Territory, next.Format(time.RFC3339)))
	}

	var qualifiers []string
	for _, qual := range period.Qualifications {
		if qual.Criteria.matches(leaf) {
			qualifiers = append(qualifiers, qual.Qualifiers...)
		}
	}
	e.ref.Qualifiers = qualifiers
	has := func(name string) bool { return slices.Contains(qualifiers, qualifierPrefix+name) }
	qc := c.QcCompliance
	switch {
	case has("NotQualified"):
		qc = false
		e.reasons = append(e.reasons, "the trusted list's qualifier NotQualified applies to this certificate")
	case has("QCStatement"):
		qc = true
		e.reasons = append(e.reasons, "the trusted list's qualifier QCStatement makes it a qualified certificate")
	}
	if !qc {
		return notQC("the certificate is not a qualified certificate")
	}
	claimed = true
	typ := c.sealOrSig(qualifiers)
	asi := map[string]string{QcTypeESeal: asiForeSeals, QcTypeESign: asiForeSignatures, QcTypeWeb: asiForWebSiteAuth}
	switch {
	case typ == "":
		return notQC("the certificate states more than one QcType")
	case typ == QcTypeWeb:
		return notQC("the certificate is for website authentication, not for seals or signatures")
	case len(period.AdditionalInfo) > 0 && !slices.Contains(period.AdditionalInfo, asi[typ]):
		return notQC(fmt.Sprintf("the certificate is for %s, but the service issues qualified certificates only for %s", typ, strings.Join(shortNames(period.AdditionalInfo), ", ")))
	}
	qscd := c.QcSSCD
	switch {
	case has("QCWithSSCD"), has("QCWithQSCD"), has("QCQSCDManagedOnBehalf"):
		qscd = true
	case has("QCNoSSCD"), has("QCNoQSCD"):
		qscd = false
	}
	seal := typ == QcTypeESeal
	if seal {
		e.reasons = append(e.reasons, "a qualified certificate for electronic seals")
	} else {
		e.reasons = append(e.reasons, "a qualified certificate for electronic signatures")
	}
	switch {
	case qscd && seal:
		e.level = QESeal
	case qscd:
		e.level = QESig
	case seal:
		e.level = AdESealQC
	default:
		e.level = AdESigQC
	}
	if qscd {
		e.reasons = append(e.reasons, "the private key is on a qualified creation device (QSCD)")
	} else {
		e.reasons = append(e.reasons, "the private key is not stated to be on a qualified creation device (no QcSSCD)")
	}
	return e
}

// ShortName is a TS 119 612 URI's last segment: "granted" for a status,
// "ForeSeals" for additional service information.
func ShortName(uri string) string { return uri[strings.LastIndex(uri, "/")+1:] }

func shortNames(uris []string) []string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = ShortName(u)
	}
	return out
}

// keyUsageBits names the key usage bits as TS 119 612 §5.5.9.2.2.1 spells them.
var keyUsageBits = map[string]x509.KeyUsage{
	"digitalSignature": x509.KeyUsageDigitalSignature, "nonRepudiation": x509.KeyUsageContentCommitment,
	"keyEncipherment": x509.KeyUsageKeyEncipherment, "dataEncipherment": x509.KeyUsageDataEncipherment,
	"keyAgreement": x509.KeyUsageKeyAgreement, "keyCertSign": x509.KeyUsageCertSign, "crlSign": x509.KeyUsageCRLSign,
	"encipherOnly": x509.KeyUsageEncipherOnly, "decipherOnly": x509.KeyUsageDecipherOnly,
}

// matches evaluates a CriteriaList against cert.
func (c Criteria) matches(cert *x509.Certificate) bool {
	if c.Unsupported > 0 {
		return false
	}
	var results []bool
	for _, ku := range c.KeyUsage {
		ok := true
		for name, want := range ku {
			bit, known := keyUsageBits[name]
			if !known || (cert.KeyUsage&bit != 0) != want {
				ok = false
			}
		}
		results = append(results, ok)
	}
	policies := map[string]bool{}
	for _, p := range cert.Policies {
		policies[p.String()] = true
	}
	for _, set := range c.PolicySets {
		results = append(results, len(set) > 0 && !slices.ContainsFunc(set, func(oid string) bool { return !policies[oid] }))
	}
	for _, n := range c.Nested {
		results = append(results, n.matches(cert))
	}
	if len(results) == 0 {
		return false
	}
	switch c.Assert {
	case "all":
		return !slices.Contains(results, false)
	case "atLeastOne":
		return slices.Contains(results, true)
	case "none":
		return !slices.Contains(results, true)
	}
	return false
}
