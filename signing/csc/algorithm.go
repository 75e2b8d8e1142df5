package csc

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
)

// Signature algorithm OIDs as signatures/signHash takes them in signAlgo.
const (
	oidRSAEncryption = "1.2.840.113549.1.1.1"  // PKCS#1 v1.5; the hash is named by hashAlgorithmOID
	oidRSAPSS        = "1.2.840.113549.1.1.10" // parameters in signAlgoParams
)

// ecdsaOIDs are ecdsa-with-SHA256/384/512 (RFC 5758 §3.2).
var ecdsaOIDs = map[crypto.Hash]string{
	crypto.SHA256: "1.2.840.10045.4.3.2",
	crypto.SHA384: "1.2.840.10045.4.3.3",
	crypto.SHA512: "1.2.840.10045.4.3.4",
}

// algorithm is how one kind of signature is asked for at the provider.
type algorithm struct {
	hash     crypto.Hash
	hashOID  string
	signAlgo string
	params   string // base64 DER RSASSA-PSS-params, for PSS
	pss      *rsa.PSSOptions
}

// pssParams is RSASSA-PSS-params (RFC 8017 §A.2.3) with every field
// written out (trailerField keeps its default).
type pssParams struct {
	Hash       pkix.AlgorithmIdentifier `asn1:"explicit,tag:0"`
	MGF        pkix.AlgorithmIdentifier `asn1:"explicit,tag:1"`
	SaltLength int                      `asn1:"explicit,tag:2"`
}

var oidMGF1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}

// algorithmFor picks the signature algorithm for a seal key pub and the
// signer options the format gave: PKCS#1 v1.5 or PSS for RSA, ECDSA with
// the digest's hash.
func algorithmFor(pub crypto.PublicKey, opts crypto.SignerOpts) (algorithm, error) {
	h := opts.HashFunc()
	oid, err := cms.HashOID(h)
	if _, ecOK := ecdsaOIDs[h]; err != nil || !ecOK {
		return algorithm{}, fault.New(fault.Invalid, signing.CodeDigestInvalid, "hash %v is not supported for remote seals", h)
	}
	alg := algorithm{hash: h, hashOID: oid.String()}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		pss, ok := opts.(*rsa.PSSOptions)
		if !ok {
			alg.signAlgo = oidRSAEncryption
			return alg, nil
		}
		salt := signing.PSSSaltLength(pub, pss)
		hashAlg := pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1.NullRawValue}
		hashDER, err := asn1.Marshal(hashAlg)
		if err != nil {
			return algorithm{}, err
		}
		der, err := asn1.Marshal(pssParams{
			Hash:       hashAlg,
			MGF:        pkix.AlgorithmIdentifier{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: hashDER}},
			SaltLength: salt,
		})
		if err != nil {
			return algorithm{}, err
		}
		alg.signAlgo, alg.params = oidRSAPSS, base64.StdEncoding.EncodeToString(der)
		alg.pss = &rsa.PSSOptions{SaltLength: salt, Hash: h}
		return alg, nil
	case *ecdsa.PublicKey:
		alg.signAlgo = ecdsaOIDs[h]
		return alg, nil
	}
	return algorithm{}, fault.New(fault.Invalid, signing.CodeDigestInvalid, "key type %T cannot sign", pub)
}

// check verifies a signature the provider returned over digest, so a
// credential holding another key is caught at once. ECDSA signatures given
// as r||s are turned into the ASN.1 DER crypto/ecdsa makes.
func (a algorithm) check(pub crypto.PublicKey, digest, sig []byte) ([]byte, error) {
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		var err error
		if a.pss != nil {
			err = rsa.VerifyPSS(pub, a.hash, digest, sig, a.pss)
		} else {
			err = rsa.VerifyPKCS1v15(pub, a.hash, digest, sig)
		}
		if err != nil {
			return nil, errors.New("it does not verify with the seal certificate's key")
		}
		return sig, nil
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			n := (pub.Curve.Params().BitSize + 7) / 8
			if len(sig) != 2*n {
				return nil, errors.New("it does not verify with the seal certificate's key")
			}
			der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
			if err != nil || !ecdsa.VerifyASN1(pub, digest, der) {
				return nil, errors.New("it does not verify with the seal certificate's key")
			}
			return der, nil
		}
		return sig, nil
	}
	return nil, fmt.Errorf("key type %T", pub)
}
