package pades

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
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pdf"
)

// maxRevocationFetch bounds an OCSP response or CRL fetched for B-LT.
const maxRevocationFetch = 16 << 20

// validationData is what a document security store holds.
type validationData struct {
	certs       []*x509.Certificate
	ocsps, crls [][]byte
}

// collectValidationData finds an OCSP response or CRL for every certificate
// that is not a root, and returns the subjects of those it found none for.
func collectValidationData(ctx context.Context, certs []*x509.Certificate, ro RevocationOptions) (validationData, []string) {
	data := validationData{certs: certs}
	var unavailable []string
	for i, c := range certs {
		if bytes.Equal(c.RawIssuer, c.RawSubject) {
			continue // a root is trusted as it is, not checked for revocation
		}
		issuer := findIssuer(c, certs[i+1:], certs)
		var ocspDER, crlDER []byte
		if issuer != nil {
			ocspDER, crlDER = revocationFor(ctx, c, issuer, ro)
		}
		// One CRL often covers several certificates of the same issuer.
		if ocspDER != nil && !containsBytes(data.ocsps, ocspDER) {
			data.ocsps = append(data.ocsps, ocspDER)
		}
		if crlDER != nil && !containsBytes(data.crls, crlDER) {
			data.crls = append(data.crls, crlDER)
		}
		if ocspDER == nil && crlDER == nil {
			unavailable = append(unavailable, c.Subject.String())
		}
	}
	return data, unavailable
}

func containsBytes(set [][]byte, b []byte) bool {
	for _, x := range set {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// addDSS adds a document security store (ETSI EN 319 142-1 §5.4.2) to the
// update. A store an earlier seal left is extended, not copied (ISO 32000-2
// §12.8.4.3): its entries keep their streams, its /VRI stays, and only data
// it does not hold yet is added — nothing at all when it holds everything.
func addDSS(u *pdf.Update, data validationData) error {
	r := u.Reader()
	_, cat, err := r.Catalog()
	if err != nil {
		return err
	}
	dss := pdf.Dict{"Type": pdf.Name("DSS")}
	if old, err := r.Dict(cat["DSS"]); err == nil && old != nil {
		dss = old.Clone()
	}
	added := false
	for _, k := range []struct {
		key  pdf.Name
		ders [][]byte
	}{
		{"Certs", certificatesDER(data.certs)}, {"OCSPs", data.ocsps}, {"CRLs", data.crls},
	} {
		refs, held, err := dssEntries(r, dss, k.key)
		if err != nil {
			return err
		}
		for _, der := range k.ders {
			if containsBytes(held, der) {
				continue
			}
			held = append(held, der)
			refs = append(refs, u.Add(&pdf.Stream{Dict: pdf.Dict{"Filter": pdf.Name("FlateDecode")}, Data: pdf.Deflate(der)}))
			added = true
		}
		if len(refs) > 0 {
			dss[k.key] = refs
		}
	}
	if !added {
		return nil
	}
	return updateCatalog(u, pdf.Dict{"DSS": u.Add(dss)})
}

// dssEntries returns the entries of a document security store's array key
// as they are, with the data of each (nil where an entry cannot be read).
func dssEntries(doc *pdf.Reader, dss pdf.Dict, key pdf.Name) (pdf.Array, [][]byte, error) {
	arr, err := doc.Array(dss[key])
	if err != nil {
		return nil, nil, err
	}
	ders := make([][]byte, len(arr))
	for i, o := range arr {
		so, err := doc.Resolve(o)
		if err != nil {
			continue
		}
		if st, ok := so.(*pdf.Stream); ok {
			ders[i], _ = doc.StreamData(st)
		}
	}
	return append(pdf.Array{}, arr...), ders, nil
}

func certificatesDER(certs []*x509.Certificate) [][]byte {
	ders := make([][]byte, len(certs))
	for i, c := range certs {
		ders[i] = c.Raw
	}
	return ders
}

// validationCertificates returns the seal's chain followed by the
// certificates of a token from its timestamp authority, without duplicates.
func validationCertificates(chain []*x509.Certificate, token []byte) ([]*x509.Certificate, error) {
	certs := append([]*x509.Certificate{}, chain...)
	if token != nil {
		tc, err := cms.Certificates(token)
		if err != nil {
			return nil, err
		}
		certs = append(certs, tc...)
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
func addDocTimestamp(ctx context.Context, cur *pdf.Appended, prefix prefixHashes, ts signing.Timestamper, h crypto.Hash, tokenSize int) ([]byte, error) {
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
	digest := sig.digest(prefix, h, cur.Tail)
	token, err := ts.Timestamp(ctx, digest, h)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTimestampFailed, "the timestamp authority did not answer the document timestamp request")
	}
	if err := sig.fill(token); err != nil {
		return nil, err
	}
	return sig.laid.Bytes, nil
}
