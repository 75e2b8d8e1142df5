// Package trust answers eIDAS's question about a seal or signature: is it
// qualified? It reads what the signer's certificate says of itself (the QC
// statements of ETSI EN 319 412-5 / RFC 3739, certificate policies, the
// legal person's identifier), what the EU trusted lists say of its issuer
// (ETSI TS 119 612: the List of the Trusted Lists and the national lists,
// their XML signatures checked), and combines both into a verdict following
// ETSI TS 119 615 and TS 119 172-4.
package trust

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// OIDs of RFC 3739 and ETSI EN 319 412-5.
var (
	oidQCStatements         = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 3}
	oidQcCompliance         = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 1}
	oidQcRetentionPeriod    = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 3}
	oidQcSSCD               = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 4}
	oidQcPDS                = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 5}
	oidQcType               = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 6}
	oidQcCClegislation      = asn1.ObjectIdentifier{0, 4, 0, 1862, 1, 7}
	oidPKIXQCSyntaxV2       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 11, 2}
	oidSemanticsNatural     = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 1}
	oidSemanticsLegal       = asn1.ObjectIdentifier{0, 4, 0, 194121, 1, 2}
	oidOrganizationIdentity = asn1.ObjectIdentifier{2, 5, 4, 97}
)

// QcType values of EN 319 412-5 §4.2.3 (id-etsi-qct-*), by their last arc.
var qcTypeNames = map[int]string{1: QcTypeESign, 2: QcTypeESeal, 3: QcTypeWeb}

// The certificate types EN 319 412-5 names.
const (
	QcTypeESign = "esign"
	QcTypeESeal = "eseal"
	QcTypeWeb   = "web"
)

// Certificate policies of ETSI EN 319 411-2 for EU qualified certificates.
var qcPolicies = map[string]string{
	"0.4.0.194112.1.0": "QCP-n",
	"0.4.0.194112.1.1": "QCP-l",
	"0.4.0.194112.1.2": "QCP-n-qscd",
	"0.4.0.194112.1.3": "QCP-l-qscd",
	"0.4.0.194112.1.4": "QCP-w",
}

// PDS is one PKI disclosure statement location (QcPDS).
type PDS struct {
	URL      string `json:"url"`
	Language string `json:"language"`
}

// CertificateClaims is what a certificate says of its own qualification.
type CertificateClaims struct {
	// QcCompliance: issued as an EU qualified certificate.
	QcCompliance bool `json:"qcCompliance"`
	// QcSSCD: the private key sits on a qualified (seal or signature)
	// creation device.
	QcSSCD bool `json:"qcSSCD"`
	// QcTypes are "esign", "eseal", "web" or an unknown type's OID.
	QcTypes []string `json:"qcTypes,omitempty"`
	// QcCClegislation names the countries (ISO 3166) under whose law a
	// non-EU qualified certificate is issued.
	QcCClegislation []string `json:"qcCClegislation,omitempty"`
	// QcPDS lists the PKI disclosure statements.
	QcPDS []PDS `json:"qcPDS,omitempty"`
	// QcRetentionPeriod is how many years after expiry the registration
	// information is kept; 0 when not stated.
	QcRetentionPeriod int `json:"qcRetentionPeriod,omitempty"`
	// Policies are the certificate policy OIDs, with the EN 319 411-2 name
	// in brackets where there is one, e.g. "0.4.0.194112.1.3 (QCP-l-qscd)".
	Policies []string `json:"policies,omitempty"`
	// LegalPerson is true when the semantics identifier says so
	// (id-etsi-qcs-semanticsId-Legal) or the subject carries an
	// organizationIdentifier (2.5.4.97) and names no person.
	LegalPerson bool `json:"legalPerson"`
	// OrganizationIdentifier is the subject's 2.5.4.97, e.g. "VATDE-123456789".
	OrganizationIdentifier string `json:"organizationIdentifier,omitempty"`
	// Problems lists statements that could not be read; they count as absent.
	Problems []string `json:"problems,omitempty"`
}

// policy reports whether the certificate names the EN 319 411-2 policy.
func (c *CertificateClaims) policy(name string) bool {
	return slices.ContainsFunc(c.Policies, func(p string) bool { return strings.HasSuffix(p, "("+name+")") })
}

// hasType reports whether QcType names t.
func (c *CertificateClaims) hasType(t string) bool { return slices.Contains(c.QcTypes, t) }

type qcStatement struct {
	ID   asn1.ObjectIdentifier
	Info asn1.RawValue `asn1:"optional"`
}

// ReadClaims reads the QC statements, policies and legal-person fields of
// cert. A statement that does not decode is listed in Problems and left
// out: a certificate never gains qualification from what cannot be read.
func ReadClaims(cert *x509.Certificate) CertificateClaims {
	var c CertificateClaims
	for _, p := range cert.Policies {
		s := p.String()
		if name, ok := qcPolicies[s]; ok {
			s += " (" + name + ")"
		}
		c.Policies = append(c.Policies, s)
	}
	natural := len(cert.Subject.Names) > 0 && slices.ContainsFunc(cert.Subject.Names, func(a pkix.AttributeTypeAndValue) bool {
		// givenName, surname, pseudonym name a natural person.
		return a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 42}) || a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 4}) || a.Type.Equal(asn1.ObjectIdentifier{2, 5, 4, 65})
	})
	for _, a := range cert.Subject.Names {
		if a.Type.Equal(oidOrganizationIdentity) {
			if s, ok := a.Value.(string); ok {
				c.OrganizationIdentifier = s
			}
		}
	}
	c.LegalPerson = c.OrganizationIdentifier != "" && !natural
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(oidQCStatements) {
			c.readStatements(ext.Value)
		}
	}
	return c
}

func (c *CertificateClaims) readStatements(der []byte) {
	var stmts []qcStatement
	if rest, err := asn1.Unmarshal(der, &stmts); err != nil || len(rest) > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("the qcStatements extension does not decode: %v", errOrTrailing(err)))
		return
	}
	for _, s := range stmts {
		if err := c.readStatement(s); err != nil {
			c.Problems = append(c.Problems, fmt.Sprintf("QC statement %s: %v", s.ID, err))
		}
	}
}

func (c *CertificateClaims) readStatement(s qcStatement) error {
	info := s.Info.FullBytes
	switch {
	case s.ID.Equal(oidQcCompliance):
		c.QcCompliance = true
	case s.ID.Equal(oidQcSSCD):
		c.QcSSCD = true
	case s.ID.Equal(oidQcType):
		var types []asn1.ObjectIdentifier
		if err := unmarshalAll(info, &types); err != nil {
			return err
		}
		for _, t := range types {
			name := t.String()
			if len(t) == 7 && t[:6].Equal(oidQcType) {
				if n, ok := qcTypeNames[t[6]]; ok {
					name = n
				}
			}
			c.QcTypes = append(c.QcTypes, name)
		}
	case s.ID.Equal(oidQcCClegislation):
		var countries []string
		if err := unmarshalAll(info, &countries); err != nil {
			return err
		}
		c.QcCClegislation = countries
	case s.ID.Equal(oidQcPDS):
		var pds []struct {
			URL      string `asn1:"ia5"`
			Language string `asn1:"printable"`
		}
		if err := unmarshalAll(info, &pds); err != nil {
			return err
		}
		for _, p := range pds {
			c.QcPDS = append(c.QcPDS, PDS(p))
		}
	case s.ID.Equal(oidQcRetentionPeriod):
		var years int
		if err := unmarshalAll(info, &years); err != nil {
			return err
		}
		c.QcRetentionPeriod = years
	case s.ID.Equal(oidPKIXQCSyntaxV2):
		// SemanticsInformation ::= SEQUENCE { semanticsIdentifier OID OPTIONAL, nameRegistrationAuthorities OPTIONAL }
		var sem struct {
			ID   asn1.ObjectIdentifier `asn1:"optional"`
			Rest asn1.RawValue         `asn1:"optional"`
		}
		if err := unmarshalAll(info, &sem); err != nil {
			return err
		}
		switch {
		case sem.ID.Equal(oidSemanticsLegal):
			c.LegalPerson = true
		case sem.ID.Equal(oidSemanticsNatural):
			c.LegalPerson = false
		}
	}
	return nil
}

func unmarshalAll(der []byte, v any) error {
	if len(der) == 0 {
		return fmt.Errorf("statement information missing")
	}
	rest, err := asn1.Unmarshal(der, v)
	if err != nil || len(rest) > 0 {
		return errOrTrailing(err)
	}
	return nil
}

func errOrTrailing(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("trailing data")
}

// Extension encodes the QC statements of c (QcCompliance, QcSSCD, QcType,
// QcCClegislation, QcPDS, QcRetentionPeriod and, for a legal person, the
// legal-person semantics identifier) as a qcStatements extension, for
// certificate profiles and test certificates. Policies and the
// organizationIdentifier belong elsewhere in a certificate and are ignored.
func (c CertificateClaims) Extension() (pkix.Extension, error) {
	var stmts []qcStatement
	add := func(id asn1.ObjectIdentifier, info any) error {
		s := qcStatement{ID: id}
		if info != nil {
			der, err := asn1.Marshal(info)
			if err != nil {
				return err
			}
			s.Info = asn1.RawValue{FullBytes: der}
		}
		stmts = append(stmts, s)
		return nil
	}
	var errs []error
	if c.LegalPerson {
		errs = append(errs, add(oidPKIXQCSyntaxV2, struct{ ID asn1.ObjectIdentifier }{oidSemanticsLegal}))
	}
	if c.QcCompliance {
		errs = append(errs, add(oidQcCompliance, nil))
	}
	if c.QcSSCD {
		errs = append(errs, add(oidQcSSCD, nil))
	}
	if len(c.QcTypes) > 0 {
		var types []asn1.ObjectIdentifier
		for _, t := range c.QcTypes {
			for arc, name := range qcTypeNames {
				if name == t {
					types = append(types, append(slices.Clone(oidQcType), arc))
				}
			}
		}
		if len(types) != len(c.QcTypes) {
			return pkix.Extension{}, fmt.Errorf("trust: unknown QcType in %v", c.QcTypes)
		}
		errs = append(errs, add(oidQcType, types))
	}
	if len(c.QcCClegislation) > 0 {
		errs = append(errs, add(oidQcCClegislation, c.QcCClegislation))
	}
	if len(c.QcPDS) > 0 {
		type pds struct {
			URL      string `asn1:"ia5"`
			Language string `asn1:"printable"`
		}
		var list []pds
		for _, p := range c.QcPDS {
			list = append(list, pds(p))
		}
		errs = append(errs, add(oidQcPDS, list))
	}
	if c.QcRetentionPeriod > 0 {
		errs = append(errs, add(oidQcRetentionPeriod, c.QcRetentionPeriod))
	}
	for _, err := range errs {
		if err != nil {
			return pkix.Extension{}, err
		}
	}
	der, err := asn1.Marshal(stmts)
	return pkix.Extension{Id: oidQCStatements, Value: der}, err
}
