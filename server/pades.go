package server

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/stamp"
)

// StampSettings is the look of visible PAdES stamps.
type StampSettings struct {
	// Logo is a PNG or JPEG file drawn in the stamp.
	Logo string `yaml:"logo"`
	// LogoPosition is "left" (default) or "top" of the text.
	LogoPosition string `yaml:"logoPosition"`
	// FontSize is the text size in points; 0 fits the text into the rectangle.
	FontSize float64 `yaml:"fontSize"`
	// Font is a TrueType font file for text beyond Latin, Greek and
	// Cyrillic; default Go Regular.
	Font string `yaml:"font"`
	// Language is the stamp's wording: "en" (default) or "de".
	Language string `yaml:"language"`
	// TimeZone is the IANA zone the sealing time is shown in; default UTC.
	TimeZone string `yaml:"timeZone"`
	// Background is the stamp's fill, "#RRGGBB"; default a very light
	// blue-grey.
	Background string `yaml:"background"`
	// VerifyURL is shown as a verification hint, e.g. the portal's URL.
	VerifyURL string `yaml:"verifyURL"`
	// QR adds a QR code of VerifyURL.
	QR bool `yaml:"qr"`
}

// RevocationSettings say where B-LT and B-LTA find revocation data.
type RevocationSettings struct {
	// Fetch asks the OCSP responders and CRL distribution points named in
	// the certificates (AIA, CDP). Default true.
	Fetch *bool `yaml:"fetch"`
	// Timeout bounds each fetch. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// OCSP are files of DER OCSP responses to embed as they are.
	OCSP []string `yaml:"ocsp"`
	// CRL are files of CRLs (DER or PEM) to embed as they are.
	CRL []string `yaml:"crl"`
}

// stamps reads the stamp settings: the entry "" is the default for every
// seal, the others replace it for the seal they name. Logos and fonts are
// read and checked now, so that a bad file stops the start, not every
// visible seal.
func (s SealSettings) stamps() (map[string]stamp.Options, error) {
	out := map[string]stamp.Options{}
	add := func(id, where string, st StampSettings) error {
		o := stamp.Options{
			FontSize: st.FontSize, LogoPosition: stamp.LogoPosition(st.LogoPosition), Language: stamp.Language(st.Language),
			Background: st.Background, VerifyURL: st.VerifyURL, QR: st.QR,
		}
		if st.Logo != "" {
			b, err := os.ReadFile(st.Logo)
			if err != nil {
				return fmt.Errorf("%s.logo: %w", where, err)
			}
			o.Logo = b
		}
		if st.Font != "" {
			b, err := os.ReadFile(st.Font)
			if err != nil {
				return fmt.Errorf("%s.font: %w", where, err)
			}
			if o.Font, err = stamp.ParseFont(b); err != nil {
				return fmt.Errorf("%s.%s (%s)", where, fault.As(err).Msg, st.Font)
			}
		}
		if st.TimeZone != "" {
			zone, err := time.LoadLocation(st.TimeZone)
			if err != nil {
				return fmt.Errorf("%s.timeZone: %q is not an IANA time zone: %w", where, st.TimeZone, err)
			}
			o.TimeZone = zone
		}
		// The messages start with the option's name: "logo: ...".
		if err := o.Validate(); err != nil {
			return fmt.Errorf("%s.%s", where, fault.As(err).Msg)
		}
		out[id] = o
		return nil
	}
	if err := add("", "seal.stamp", s.Stamp); err != nil {
		return nil, err
	}
	for id, st := range s.Stamps {
		if err := add(id, "seal.stamps."+id, st); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// revocation reads the configured revocation files and sets up fetching.
func (s SealSettings) revocation() (pades.RevocationOptions, error) {
	r := s.Revocation
	var o pades.RevocationOptions
	if r.Fetch == nil || *r.Fetch {
		timeout := r.Timeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		o.HTTPClient = &http.Client{Timeout: timeout}
	}
	for _, f := range r.OCSP {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("seal.revocation.ocsp: %w", err)
		}
		if _, err := ocsp.ParseResponse(b, nil); err != nil {
			return o, fmt.Errorf("seal.revocation.ocsp: %s is not a DER OCSP response: %w", f, err)
		}
		o.OCSPs = append(o.OCSPs, b)
	}
	for _, f := range r.CRL {
		b, err := os.ReadFile(f)
		if err != nil {
			return o, fmt.Errorf("seal.revocation.crl: %w", err)
		}
		if blk, _ := pem.Decode(b); blk != nil {
			if blk.Type != "X509 CRL" {
				return o, fmt.Errorf("seal.revocation.crl: %s holds a %s, not an X509 CRL", f, blk.Type)
			}
			b = blk.Bytes
		}
		if _, err := x509.ParseRevocationList(b); err != nil {
			return o, fmt.Errorf("seal.revocation.crl: %s: %w", f, err)
		}
		o.CRLs = append(o.CRLs, b)
	}
	return o, nil
}
