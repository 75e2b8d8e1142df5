package cms

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/sealgate/sealgate/fault"
)

// RSASSA-PSS parameters are read with RFC 4055's defaults, and only those
// crypto/rsa can check with SHA-256 are taken.
func TestPSSParameters(t *testing.T) {
	sha256, sha512 := asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
	mgf1 := func(h asn1.ObjectIdentifier) pkix.AlgorithmIdentifier {
		der, err := asn1.Marshal(pkix.AlgorithmIdentifier{Algorithm: h})
		if err != nil {
			t.Fatal(err)
		}
		return pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: der}}
	}
	params := func(hash asn1.ObjectIdentifier, mgf pkix.AlgorithmIdentifier, salt, trailer int) asn1.RawValue {
		der, err := asn1.Marshal(pssParamsASN{Hash: pkix.AlgorithmIdentifier{Algorithm: hash}, MGF: mgf, SaltLength: salt, Trailer: trailer})
		if err != nil {
			t.Fatal(err)
		}
		return asn1.RawValue{FullBytes: der}
	}
	d, err := digestAlgorithmFor(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		params asn1.RawValue
		salt   int
		want   fault.Code
	}{
		{"SHA-256, MGF1-SHA-256, 222-byte salt", params(sha256, mgf1(sha256), 222, 1), 222, ""},
		{"salt left out: 20 bytes", params(sha256, mgf1(sha256), 20, 1), 20, ""},
		{"everything left out: SHA-1", asn1.RawValue{FullBytes: []byte{0x30, 0x00}}, 0, CodeAlgorithmUnsupported},
		{"hash other than the digest algorithm", params(sha512, mgf1(sha512), 64, 1), 0, CodeAlgorithmUnsupported},
		{"MGF1 with another hash", params(sha256, mgf1(sha512), 32, 1), 0, CodeAlgorithmUnsupported},
		{"MGF1 with the default SHA-1", params(sha256, pkix.AlgorithmIdentifier{}, 32, 1), 0, CodeAlgorithmUnsupported},
		{"another mask generation function", params(sha256, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 3}}, 32, 1), 0, CodeAlgorithmUnsupported},
		{"trailer field 2", params(sha256, mgf1(sha256), 32, 2), 0, CodeAlgorithmUnsupported},
		{"no salt", params(sha256, mgf1(sha256), 0, 1), 0, CodeAlgorithmUnsupported},
		{"negative salt", params(sha256, mgf1(sha256), -1, 1), 0, CodeMalformed},
		{"MGF1 without its hash", params(sha256, pkix.AlgorithmIdentifier{Algorithm: oidMGF1}, 32, 1), 0, CodeMalformed},
		{"no parameters", asn1.RawValue{}, 0, CodeMalformed},
		{"bytes after the parameters", asn1.RawValue{FullBytes: append(params(sha256, mgf1(sha256), 32, 1).FullBytes, 0x05, 0x00)}, 0, CodeMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			salt, err := pssSaltLength(tc.params, d)
			if fault.CodeOf(err) != tc.want || salt != tc.salt {
				t.Errorf("got salt %d, %v; want %d, %q", salt, err, tc.salt, tc.want)
			}
		})
	}
}
