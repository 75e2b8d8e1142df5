package trust

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// URIs of ETSI TS 119 612 this package acts on.
const (
	tslNamespace       = "http://uri.etsi.org/02231/v2#"
	TypeLOTL           = "http://uri.etsi.org/TrstSvc/TrustedList/TSLType/EUlistofthelists"
	ServiceTypeCAQC    = "http://uri.etsi.org/TrstSvc/Svctype/CA/QC"
	statusPrefix       = "http://uri.etsi.org/TrstSvc/TrustedList/Svcstatus/"
	statusGranted      = statusPrefix + "granted"
	qualifierPrefix    = "http://uri.etsi.org/TrstSvc/TrustedList/SvcInfoExt/"
	asiForeSeals       = qualifierPrefix + "ForeSeals"
	asiForeSignatures  = qualifierPrefix + "ForeSignatures"
	asiForWebSiteAuth  = qualifierPrefix + "ForWebSiteAuthentication"
	xmlMimeTypeTSL     = "application/vnd.etsi.tsl+xml"
	maxListSize        = 64 << 20 // the EU's largest national lists are a few MB
	eidasApplicability = "2016-07-01T00:00:00Z"
)

// eIDAS applies from this day; before it, the statuses of Directive 1999/93/EC count.
var eidasStart, _ = time.Parse(time.RFC3339, eidasApplicability)

// List is a parsed trusted list (TS 119 612 TrustServiceStatusList): the
// List of the Trusted Lists or a national list.
type List struct {
	// Type is the TSLType URI, e.g. TypeLOTL or .../TSLType/EUgeneric.
	Type string
	// Territory is the scheme territory: "EU" for the LOTL, else a country.
	Territory string
	// Operator is the scheme operator's name (English where given).
	Operator string
	// Sequence is the TSLSequenceNumber; a newer list has a higher one.
	Sequence int
	// Issued and NextUpdate come from the scheme information; NextUpdate is
	// zero for a list that is closed.
	Issued, NextUpdate time.Time
	// Pointers are the other lists it names (the LOTL: every national list).
	Pointers []Pointer
	// Providers are the trust service providers and their services.
	Providers []Provider
}

// Pointer names another trusted list and the certificates that may sign it.
type Pointer struct {
	Location  string
	Type      string
	Territory string
	MimeType  string
	Signers   []*x509.Certificate
}

// Provider is a trust service provider.
type Provider struct {
	Name     string
	Services []Service
}

// Service is one trust service with its history: Periods runs from the
// current status backwards, each period starting at its Start.
type Service struct {
	Name string
	// Identities are the certificates naming the service (its CA's
	// certificates); SKIs the subject key identifiers it is named by.
	Identities []*x509.Certificate
	SKIs       [][]byte
	Periods    []Period
}

// Period is the service as it stood from Start until the next newer period.
type Period struct {
	Type   string
	Status string
	Start  time.Time
	// AdditionalInfo holds the AdditionalServiceInformation URIs
	// (ForeSeals, ForeSignatures, ForWebSiteAuthentication, ...).
	AdditionalInfo []string
	// Qualifications are the qualifier extensions (TS 119 612 §5.5.9.2).
	Qualifications []QualificationElement
}

// QualificationElement says: for certificates meeting Criteria, Qualifiers apply.
type QualificationElement struct {
	Qualifiers []string
	Criteria   Criteria
}

// Criteria is a CriteriaList: Assert is "all", "atLeastOne" or "none" over
// the key usages, policy sets and nested lists it holds. Unsupported counts
// criteria of kinds this package does not evaluate; a list holding one
// never matches, so an unknown condition never widens a qualification.
type Criteria struct {
	Assert      string
	KeyUsage    []map[string]bool // each: bit name → required value
	PolicySets  [][]string        // each: OIDs that must all be present
	Nested      []Criteria
	Unsupported int
}

// at returns the period in force at t, or false before the first.
func (s *Service) at(t time.Time) (Period, bool) {
	for _, p := range s.Periods {
		if !p.Start.After(t) {
			return p, true
		}
	}
	return Period{}, false
}

// granted reports whether the status counts as qualified at time t: granted
// under eIDAS, or before eIDAS applied the statuses of Directive 1999/93/EC
// that TS 119 612 v1 used (under supervision, accredited, supervision in
// cessation).
func (p Period) granted(t time.Time) bool {
	if p.Status == statusGranted {
		return true
	}
	if t.Before(eidasStart) {
		switch strings.TrimPrefix(p.Status, "http://uri.etsi.org/TrstSvc/eSigDir-1999-93-EC-TrustedList/Svcstatus/") {
		case "undersupervision", "accredited", "supervisionincessation":
			return true
		}
	}
	return false
}

// ParseList parses a trusted list's XML without checking its signature (see
// VerifyList). Input is untrusted: anything malformed is an error, never a
// panic; the size is bounded by the caller.
func ParseList(b []byte) (*List, error) {
	var x xmlTSL
	dec := xml.NewDecoder(bytes.NewReader(b))
	// Trusted lists are UTF-8; anything else is refused rather than guessed.
	dec.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("charset %q is not supported", label)
	}
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("not a trusted list: %w", err)
	}
	if x.XMLName.Space != tslNamespace || x.XMLName.Local != "TrustServiceStatusList" {
		return nil, fmt.Errorf("not a trusted list: root element {%s}%s", x.XMLName.Space, x.XMLName.Local)
	}
	si := x.SchemeInformation
	l := &List{Type: strings.TrimSpace(si.TSLType), Territory: strings.TrimSpace(si.SchemeTerritory), Operator: si.SchemeOperatorName.pick()}
	var err error
	if l.Sequence, err = parseSequence(si.TSLSequenceNumber); err != nil {
		return nil, err
	}
	if l.Issued, err = parseTime("ListIssueDateTime", si.ListIssueDateTime); err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(si.NextUpdate.DateTime); s != "" {
		if l.NextUpdate, err = parseTime("NextUpdate", s); err != nil {
			return nil, err
		}
	}
	for _, p := range si.Pointers {
		ptr := Pointer{Location: strings.TrimSpace(p.Location)}
		for _, oi := range p.AdditionalInformation {
			switch {
			case oi.TSLType != "":
				ptr.Type = strings.TrimSpace(oi.TSLType)
			case oi.SchemeTerritory != "":
				ptr.Territory = strings.TrimSpace(oi.SchemeTerritory)
			case oi.MimeType != "":
				ptr.MimeType = strings.TrimSpace(oi.MimeType)
			}
		}
		for _, sdi := range p.Identities {
			certs, _, err := sdi.identities()
			if err != nil {
				return nil, fmt.Errorf("pointer to %s: %w", ptr.Location, err)
			}
			ptr.Signers = append(ptr.Signers, certs...)
		}
		l.Pointers = append(l.Pointers, ptr)
	}
	for _, tsp := range x.Providers {
		prov := Provider{Name: tsp.Name.pick()}
		for _, svc := range tsp.Services {
			s, err := svc.service()
			if err != nil {
				return nil, fmt.Errorf("provider %q: %w", prov.Name, err)
			}
			prov.Services = append(prov.Services, s)
		}
		l.Providers = append(l.Providers, prov)
	}
	return l, nil
}

func parseSequence(s string) (int, error) {
	var n int
	if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 0 {
		return 0, fmt.Errorf("TSLSequenceNumber %q is not a number", s)
	}
	return n, nil
}

func parseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an xsd:dateTime with a zone", what, s)
	}
	return t.UTC(), nil
}

// The XML of TS 119 612 (namespace tslNamespace; the qualification
// extension in its own). Elements are matched by local name: the schema's
// names do not clash across its namespaces.
type xmlTSL struct {
	XMLName           xml.Name
	SchemeInformation struct {
		TSLSequenceNumber  string   `xml:"TSLSequenceNumber"`
		TSLType            string   `xml:"TSLType"`
		SchemeOperatorName xmlNames `xml:"SchemeOperatorName"`
		SchemeTerritory    string   `xml:"SchemeTerritory"`
		ListIssueDateTime  string   `xml:"ListIssueDateTime"`
		NextUpdate         struct {
			DateTime string `xml:"dateTime"`
		} `xml:"NextUpdate"`
		Pointers []struct {
			Identities            []xmlDigitalIdentity `xml:"ServiceDigitalIdentities>ServiceDigitalIdentity"`
			Location              string               `xml:"TSLLocation"`
			AdditionalInformation []struct {
				TSLType         string `xml:"TSLType"`
				SchemeTerritory string `xml:"SchemeTerritory"`
				MimeType        string `xml:"MimeType"`
			} `xml:"AdditionalInformation>OtherInformation"`
		} `xml:"PointersToOtherTSL>OtherTSLPointer"`
	} `xml:"SchemeInformation"`
	Providers []struct {
		Name     xmlNames     `xml:"TSPInformation>TSPName"`
		Services []xmlService `xml:"TSPServices>TSPService"`
	} `xml:"TrustServiceProviderList>TrustServiceProvider"`
}

type xmlService struct {
	Info    xmlServiceInfo   `xml:"ServiceInformation"`
	History []xmlServiceInfo `xml:"ServiceHistory>ServiceHistoryInstance"`
}

type xmlNames struct {
	Names []struct {
		Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
		Text string `xml:",chardata"`
	} `xml:"Name"`
}

// pick returns the English name, else the first.
func (n xmlNames) pick() string {
	for _, x := range n.Names {
		if strings.EqualFold(x.Lang, "en") {
			return strings.TrimSpace(x.Text)
		}
	}
	if len(n.Names) > 0 {
		return strings.TrimSpace(n.Names[0].Text)
	}
	return ""
}

type xmlDigitalIdentity struct {
	IDs []struct {
		Certificate string `xml:"X509Certificate"`
		SKI         string `xml:"X509SKI"`
	} `xml:"DigitalId"`
}

// identities decodes the certificates and SKIs of a ServiceDigitalIdentity.
func (d xmlDigitalIdentity) identities() ([]*x509.Certificate, [][]byte, error) {
	var certs []*x509.Certificate
	var skis [][]byte
	for _, id := range d.IDs {
		if s := stripSpace(id.Certificate); s != "" {
			der, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, nil, fmt.Errorf("X509Certificate is not base64: %w", err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, nil, fmt.Errorf("X509Certificate: %w", err)
			}
			certs = append(certs, c)
		}
		if s := stripSpace(id.SKI); s != "" {
			ski, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, nil, fmt.Errorf("X509SKI is not base64: %w", err)
			}
			skis = append(skis, ski)
		}
	}
	return certs, skis, nil
}

func stripSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

type xmlServiceInfo struct {
	Type       string             `xml:"ServiceTypeIdentifier"`
	Name       xmlNames           `xml:"ServiceName"`
	Identity   xmlDigitalIdentity `xml:"ServiceDigitalIdentity"`
	Status     string             `xml:"ServiceStatus"`
	Start      string             `xml:"StatusStartingTime"`
	Extensions []struct {
		ASI            []string           `xml:"AdditionalServiceInformation>URI"`
		Qualifications []xmlQualification `xml:"Qualifications>QualificationElement"`
	} `xml:"ServiceInformationExtensions>Extension"`
}

type xmlQualification struct {
	Qualifiers []struct {
		URI string `xml:"uri,attr"`
	} `xml:"Qualifiers>Qualifier"`
	Criteria xmlCriteria `xml:"CriteriaList"`
}

type xmlCriteria struct {
	Assert   string `xml:"assert,attr"`
	KeyUsage []struct {
		Bits []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:",chardata"`
		} `xml:"KeyUsageBit"`
	} `xml:"KeyUsage"`
	PolicySets []struct {
		Identifiers []string `xml:"PolicyIdentifier>Identifier"`
	} `xml:"PolicySet"`
	Nested []xmlCriteria `xml:"CriteriaList"`
	Other  []struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"otherCriteriaList"`
}

// maxCriteriaDepth bounds nested CriteriaLists (untrusted input).
const maxCriteriaDepth = 8

func (x xmlCriteria) criteria(depth int) (Criteria, error) {
	if depth > maxCriteriaDepth {
		return Criteria{}, errors.New("CriteriaList nested too deeply")
	}
	c := Criteria{Assert: x.Assert, Unsupported: len(x.Other)}
	switch c.Assert {
	case "all", "atLeastOne", "none":
	default:
		return c, fmt.Errorf("CriteriaList assert %q is not all, atLeastOne or none", x.Assert)
	}
	for _, ku := range x.KeyUsage {
		m := map[string]bool{}
		for _, b := range ku.Bits {
			v, ok := map[string]bool{"true": true, "false": false}[strings.TrimSpace(b.Value)]
			if !ok {
				return c, fmt.Errorf("KeyUsageBit %s value %q is not true or false", b.Name, b.Value)
			}
			m[b.Name] = v
		}
		c.KeyUsage = append(c.KeyUsage, m)
	}
	for _, ps := range x.PolicySets {
		var oids []string
		for _, id := range ps.Identifiers {
			oids = append(oids, strings.TrimPrefix(strings.TrimSpace(id), "urn:oid:"))
		}
		c.PolicySets = append(c.PolicySets, oids)
	}
	for _, n := range x.Nested {
		nc, err := n.criteria(depth + 1)
		if err != nil {
			return c, err
		}
		c.Nested = append(c.Nested, nc)
	}
	return c, nil
}

func (x xmlServiceInfo) period() (Period, error) {
	p := Period{Type: strings.TrimSpace(x.Type), Status: strings.TrimSpace(x.Status)}
	var err error
	if p.Start, err = parseTime("StatusStartingTime", x.Start); err != nil {
		return p, err
	}
	for _, ext := range x.Extensions {
		for _, u := range ext.ASI {
			p.AdditionalInfo = append(p.AdditionalInfo, strings.TrimSpace(u))
		}
		for _, q := range ext.Qualifications {
			var qual QualificationElement
			for _, u := range q.Qualifiers {
				qual.Qualifiers = append(qual.Qualifiers, strings.TrimSpace(u.URI))
			}
			if qual.Criteria, err = q.Criteria.criteria(0); err != nil {
				return p, err
			}
			p.Qualifications = append(p.Qualifications, qual)
		}
	}
	return p, nil
}

func (x xmlService) service() (Service, error) {
	s := Service{Name: x.Info.Name.pick()}
	var err error
	if s.Identities, s.SKIs, err = x.Info.Identity.identities(); err != nil {
		return s, fmt.Errorf("service %q: %w", s.Name, err)
	}
	for _, info := range append([]xmlServiceInfo{x.Info}, x.History...) {
		p, err := info.period()
		if err != nil {
			return s, fmt.Errorf("service %q: %w", s.Name, err)
		}
		s.Periods = append(s.Periods, p)
	}
	// Newest first, whatever order the list wrote its history in.
	slices.SortStableFunc(s.Periods, func(a, b Period) int { return b.Start.Compare(a.Start) })
	return s, nil
}
