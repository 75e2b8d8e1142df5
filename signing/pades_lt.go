package signing

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/crypto/ocsp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pdf"
)

// maxRevocationFetch bounds an OCSP response or CRL fetched for B-LT.
const maxRevocationFetch = 16 << 20

// addDSS lays out the B-LT update: a document security store (ETSI EN 319
// 142-1 §5.4.2) holding the certificates of the signature and of its
// timestamp, and whatever OCSP responses and CRLs can be had for them. It
// returns the update and the subjects of certificates left without
// revocation data.
func addDSS(ctx context.Context, cur *pdf.Appended, cms []byte, ro RevocationOptions) ([]byte, []string, error) {
	certs, err := validationCertificates(cms)
	if err != nil {
		return nil, nil, err
	}
	r, err := pdf.Open(cur, cur.Len())
	if err != nil {
		return nil, nil, err
	}
	u := pdf.NewUpdate(r)
	var certRefs, ocspRefs, crlRefs pdf.Array
	_, cat, err := r.Catalog()
	if err != nil {
		return nil, nil, err
	}
	// An earlier seal's store is kept and extended.
	if old, err := r.Dict(cat["DSS"]); err == nil && old != nil {
		certRefs, _ = r.Array(old["Certs"])
		ocspRefs, _ = r.Array(old["OCSPs"])
		crlRefs, _ = r.Array(old["CRLs"])
		certRefs, ocspRefs, crlRefs = append(pdf.Array{}, certRefs...), append(pdf.Array{}, ocspRefs...), append(pdf.Array{}, crlRefs...)
	}
	stream := func(der []byte) pdf.Ref {
		return u.Add(&pdf.Stream{Dict: pdf.Dict{"Filter": pdf.Name("FlateDecode")}, Data: pdf.Deflate(der)})
	}
	for _, c := range certs {
		certRefs = append(certRefs, stream(c.Raw))
	}
	var unavailable []string
	for i, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			continue // a root is trusted as it is, not checked for revocation
		}
		issuer := findIssuer(c, certs[i+1:], certs)
		if issuer == nil {
			unavailable = append(unavailable, c.Subject.String())
			continue
		}
		ocspDER, crlDER := revocationFor(ctx, c, issuer, ro)
		if ocspDER != nil {
			ocspRefs = append(ocspRefs, stream(ocspDER))
		}
		if crlDER != nil {
			crlRefs = append(crlRefs, stream(crlDER))
		}
		if ocspDER == nil && crlDER == nil {
			unavailable = append(unavailable, c.Subject.String())
		}
	}
	dss := pdf.Dict{"Type": pdf.Name("DSS"), "Certs": certRefs}
	if len(ocspRefs) > 0 {
		dss["OCSPs"] = ocspRefs
	}
	if len(crlRefs) > 0 {
		dss["CRLs"] = crlRefs
	}
	if err := updateCatalog(u, pdf.Dict{"DSS": u.Add(dss)}); err != nil {
		return nil, nil, err
	}
	laid, err := u.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return laid.Bytes, unavailable, nil
}

// validationCertificates returns the signature's certificates followed by
// those of its signature timestamp, without duplicates.
func validationCertificates(cms []byte) ([]*x509.Certificate, error) {
	p, err := parseCMS(cms)
	if err != nil {
		return nil, err
	}
	certs := append([]*x509.Certificate{}, p.certs...)
	if v, ok := findAttr(p.unsigned, oidAttrTimestampToken); ok {
		tp, err := parseCMS(v.FullBytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, tp.certs...)
	}
	var out []*x509.Certificate
	for _, c := range certs {
		dup := false
		for _, o := range out {
			dup = dup || o.Equal(c)
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out, nil
}

func findIssuer(c *x509.Certificate, prefer, all []*x509.Certificate) *x509.Certificate {
	for _, set := range [][]*x509.Certificate{prefer, all} {
		for _, i := range set {
			if bytes.Equal(i.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(i) == nil {
				return i
			}
		}
	}
	return nil
}

// revocationFor finds an OCSP response or a CRL for c: from the configured
// ones first, then from c's OCSP responder and CRL distribution points.
func revocationFor(ctx context.Context, c, issuer *x509.Certificate, ro RevocationOptions) (ocspDER, crlDER []byte) {
	for _, der := range ro.OCSPs {
		if _, err := ocsp.ParseResponseForCert(der, c, issuer); err == nil {
			return der, nil
		}
	}
	for _, der := range ro.CRLs {
		if crlCovers(der, issuer) {
			return nil, der
		}
	}
	if ro.HTTPClient == nil {
		return nil, nil
	}
	if req, err := ocsp.CreateRequest(c, issuer, &ocsp.RequestOptions{Hash: crypto.SHA256}); err == nil {
		for _, url := range c.OCSPServer {
			der, err := httpFetch(ctx, ro.HTTPClient, http.MethodPost, url, req)
			if err != nil {
				continue
			}
			if resp, err := ocsp.ParseResponseForCert(der, c, issuer); err == nil && resp.Status != ocsp.ServerFailed {
				return der, nil
			}
		}
	}
	for _, url := range c.CRLDistributionPoints {
		der, err := httpFetch(ctx, ro.HTTPClient, http.MethodGet, url, nil)
		if err == nil && crlCovers(der, issuer) {
			return nil, der
		}
	}
	return nil, nil
}

func crlCovers(der []byte, issuer *x509.Certificate) bool {
	crl, err := x509.ParseRevocationList(der)
	return err == nil && crl.CheckSignatureFrom(issuer) == nil
}

func httpFetch(ctx context.Context, client *http.Client, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/ocsp-request")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxRevocationFetch))
}

// addDocTimestamp lays out the B-LTA update: a document timestamp
// (/SubFilter /ETSI.RFC3161) whose /Contents is an RFC 3161 token over the
// digest of everything before it but the token itself.
func addDocTimestamp(ctx context.Context, cur *pdf.Appended, ts Timestamper, h crypto.Hash, tokenSize int) ([]byte, error) {
	if th, ok := ts.(TimestampHasher); ok && th.TimestampHash() != 0 {
		h = th.TimestampHash()
	}
	r, err := pdf.Open(cur, cur.Len())
	if err != nil {
		return nil, err
	}
	sig, err := prepareSignature(r, signatureSpec{
		dict: pdf.Dict{
			"Type":      pdf.Name("DocTimeStamp"),
			"Filter":    pdf.Name("Adobe.PPKLite"),
			"SubFilter": pdf.Name("ETSI.RFC3161"),
		},
		contentsLen: tokenSize + tokenSize/8 + 256,
	})
	if err != nil {
		return nil, err
	}
	digest, err := sig.digest(cur, cur.Len(), h)
	if err != nil {
		return nil, err
	}
	token, err := ts.Timestamp(ctx, digest, h)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTimestampFailed, "the timestamp authority did not answer the document timestamp request")
	}
	if err := sig.fill(token); err != nil {
		return nil, err
	}
	return sig.laid.Bytes, nil
}
