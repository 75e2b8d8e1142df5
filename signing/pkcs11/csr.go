package pkcs11

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing"
)

// Error codes of card administration.
const (
	// CodeSubjectInvalid: a certificate subject could not be parsed.
	CodeSubjectInvalid fault.Code = "subject_invalid"
	// CodeChainInvalid: an issued chain is unreadable, out of order or has a
	// key type seals cannot use.
	CodeChainInvalid fault.Code = "certificate_chain_invalid"
)

// TokenKey is one private key on a card, opened directly (not through a
// pool) so that a key without a certificate yet can sign a certificate
// request, and an issued certificate can be checked against it. It is meant
// for one administrative task: a pool in the same process that re-initialises
// the library to find a re-inserted card ends its session.
type TokenKey struct {
	mod   *module
	token string
	pub   crypto.PublicKey

	mu      sync.Mutex // a PKCS#11 session serves one call at a time
	session pkcs11.SessionHandle
	handle  pkcs11.ObjectHandle
}

// OpenTokenKey logs in to the token ref.Token as cfg configures it (module,
// PIN) and opens the private key ref.Label / ref.ID. Its public key comes from
// the card's public key object (or certificate). Close it when done.
func OpenTokenKey(cfg *signing.PoolConfig, ref signing.KeyRef) (*TokenKey, error) {
	tc, ok := cfg.Token(ref.Token)
	if !ok {
		return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "token %q is not in the signing configuration", ref.Token)
	}
	mc, ok := cfg.Module(tc.Module)
	if !ok {
		return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "token %q names unknown module %q", tc.Label, tc.Module)
	}
	id, err := hex.DecodeString(ref.ID)
	if err != nil {
		return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "key id %q is not hex", ref.ID)
	}
	if ref.Label == "" && len(id) == 0 {
		return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "key on token %q needs a label or an id", tc.Label)
	}
	m, err := openModule(mc.Path)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "module %s cannot be used", tc.Module)
	}
	k, err := openTokenKey(m, tc, ref.Label, id)
	if err != nil {
		m.release()
		return nil, err
	}
	return k, nil
}

func openTokenKey(m *module, tc signing.TokenConfig, label string, id []byte) (*TokenKey, error) {
	m.op.RLock()
	defer m.op.RUnlock()
	p := m.ctx
	slot, _, err := findToken(p, tc.Label)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "token %q is not present", tc.Label)
	}
	s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "token %q: cannot open a session", tc.Label)
	}
	fail := func(err error) (*TokenKey, error) {
		p.CloseSession(s)
		return nil, err
	}
	if err := login(p, s, tc); err != nil {
		var fe fatalError
		if errors.As(err, &fe) {
			err = fe.error
		}
		return fail(err)
	}
	h, err := findPrivateKey(p, s, label, id)
	if err != nil {
		return fail(fault.Wrap(err, fault.NotFound, signing.CodeSealUnknown, "token %q: no private key with label %q and id %x", tc.Label, label, id))
	}
	pub, err := publicKey(p, s, h)
	if err != nil {
		return fail(fault.Wrap(err, fault.NotFound, signing.CodeSealUnknown, "token %q: no public key for the key with label %q and id %x", tc.Label, label, id))
	}
	return &TokenKey{mod: m, token: tc.Label, pub: pub, session: s, handle: h}, nil
}

// Public returns the key's public half as the card holds it.
func (k *TokenKey) Public() crypto.PublicKey { return k.pub }

// Sign signs a digest on the card, like SealKey.Sign; rand is ignored.
func (k *TokenKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkDigest(k.pub, digest, opts); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.mod.op.RLock()
	defer k.mod.op.RUnlock()
	sig, err := signDigest(k.mod.ctx, k.session, k.handle, k.pub, digest, opts)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, signing.CodeTokenUnavailable, "token %q could not sign", k.token)
	}
	return sig, nil
}

// Close ends the session and releases the module.
func (k *TokenKey) Close() error {
	k.mod.op.RLock()
	err := k.mod.ctx.CloseSession(k.session)
	k.mod.op.RUnlock()
	k.mod.release()
	return err
}

// CreateCSR makes a PKCS#10 certificate request (DER) for key's public key,
// signed with key, for subject.
func CreateCSR(key crypto.Signer, subject pkix.Name) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
	if fault.As(err) != nil {
		return nil, err // the card's own failure, already coded
	}
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeSubjectInvalid, "certificate request for %q", subject.String())
	}
	return der, nil
}

var oidOrganizationIdentifier = asn1.ObjectIdentifier{2, 5, 4, 97}

// ParseSubject reads a subject written as comma-separated attributes, e.g.
// "CN=Example Seal,O=Example GmbH,organizationIdentifier=VATDE-123456789,C=DE".
// Attributes: CN, O, OU, C, L, ST, STREET, SERIALNUMBER and
// organizationIdentifier (2.5.4.97, which eIDAS seal certificates carry).
// A comma inside a value is written "\,".
func ParseSubject(s string) (pkix.Name, error) {
	var n pkix.Name
	parts := splitUnescaped(s)
	for _, part := range parts {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(strings.ReplaceAll(v, `\,`, ","))
		if !ok || v == "" {
			return pkix.Name{}, fault.New(fault.Invalid, CodeSubjectInvalid, "subject %q: %q is not attribute=value", s, part)
		}
		switch strings.ToUpper(k) {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "C":
			if len(v) != 2 {
				return pkix.Name{}, fault.New(fault.Invalid, CodeSubjectInvalid, "subject %q: country %q is not a two-letter code", s, v)
			}
			n.Country = append(n.Country, strings.ToUpper(v))
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST":
			n.Province = append(n.Province, v)
		case "STREET":
			n.StreetAddress = append(n.StreetAddress, v)
		case "SERIALNUMBER":
			n.SerialNumber = v
		case "ORGANIZATIONIDENTIFIER", "2.5.4.97":
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidOrganizationIdentifier, Value: v})
		default:
			return pkix.Name{}, fault.New(fault.Invalid, CodeSubjectInvalid, "subject %q: attribute %q is not supported", s, k)
		}
	}
	if n.CommonName == "" {
		return pkix.Name{}, fault.New(fault.Invalid, CodeSubjectInvalid, "subject %q has no CN", s)
	}
	return n, nil
}

// splitUnescaped splits s at commas not preceded by a backslash.
func splitUnescaped(s string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ',' && (i == 0 || s[i-1] != '\\') {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// ImportChain checks an issued seal certificate chain (PEM, seal certificate
// first, each certificate signed by the next) against the card keys that
// will hold the seal, and writes it to path, the file the seal's
// configuration names. Each key must make a signature the seal certificate
// verifies; otherwise nothing is written and the error has code
// key_certificate_mismatch.
func ImportChain(chainPEM []byte, path string, keys ...crypto.Signer) ([]*x509.Certificate, error) {
	chain, err := devpki.ParseCertsPEM(chainPEM)
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeChainInvalid, "the certificate chain is unreadable")
	}
	leaf := chain[0]
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeChainInvalid,
				"certificate %d (%q) is not issued by the next one (%q): give the seal certificate first, then its issuers",
				i+1, chain[i].Subject.CommonName, chain[i+1].Subject.CommonName)
		}
	}
	if err := signing.CheckSealKeyType(leaf); err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeChainInvalid, "seal certificate %q", leaf.Subject.CommonName)
	}
	if len(keys) == 0 {
		return nil, fault.New(fault.Invalid, signing.CodeConfigInvalid, "no card key to check certificate %q against", leaf.Subject.CommonName)
	}
	for _, k := range keys {
		if err := signing.CheckKeyMatches(k.Public(), leaf); err != nil {
			return nil, err
		}
		if err := probeKey(func(d []byte, o crypto.SignerOpts) ([]byte, error) { return k.Sign(rand.Reader, d, o) }, leaf); err != nil {
			return nil, err
		}
	}
	if err := writeFileAtomic(path, chainPEM, 0o644); err != nil {
		return nil, fault.Wrap(err, fault.Internal, signing.CodeConfigInvalid, "writing the seal chain to %s", path)
	}
	return chain, nil
}

// writeFileAtomic replaces path in one step, so a running server that reads
// it never sees half a chain.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
