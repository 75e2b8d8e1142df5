package tsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/signing/cms"
)

// Error codes of the client.
const (
	// CodeConfigInvalid: the "tsa" section cannot make a client.
	CodeConfigInvalid fault.Code = "tsa_config_invalid"
	// CodeTSARejected: the authority answered with a rejection status.
	CodeTSARejected fault.Code = "timestamp_rejected"
	// CodeTSAUnreachable: the authority could not be asked or answered nonsense.
	CodeTSAUnreachable fault.Code = "timestamp_unavailable"
)

// ClientConfig is the "tsa" section of sealgate.yaml:
//
//	tsa:
//	  url: https://tsa.example.com/tsr
//	  username: sealgate              # optional HTTP Basic authentication
//	  password: {env: TSA_PASSWORD}
//	  caFile: /etc/sealgate/tsa-ca.pem            # optional roots for the TSA's HTTPS certificate
//	  clientCert: /etc/sealgate/tsa-client.pem   # optional TLS client certificate
//	  clientKey: /etc/sealgate/tsa-client.key
//	  hash: sha256                    # sha256 (default), sha384 or sha512
//	  timeout: 10s
type ClientConfig struct {
	URL        string        `yaml:"url"`
	Username   string        `yaml:"username"`
	Password   secret.Ref    `yaml:"password"`
	CAFile     string        `yaml:"caFile"`
	ClientCert string        `yaml:"clientCert"`
	ClientKey  string        `yaml:"clientKey"`
	Hash       string        `yaml:"hash"`
	Timeout    time.Duration `yaml:"timeout"`
}

// DefaultTimeout bounds one timestamp request when the configuration does not.
const DefaultTimeout = 10 * time.Second

// Client asks an RFC 3161 authority for timestamp tokens over HTTP. It is
// a signing.Timestamper. Every token is checked before it is returned:
// status granted, the nonce sent, the imprint asked for, and a signer
// certificate with a critical timeStamping extended key usage.
type Client struct {
	// URL is the authority's endpoint.
	URL string
	// Username and Password, when Username is set, authenticate with HTTP Basic.
	Username string
	Password secret.Ref
	// Hash is the imprint algorithm this authority is asked for (TimestampHash).
	Hash crypto.Hash
	// HTTPClient sends the requests; it carries TLS client certificates.
	HTTPClient *http.Client
	// Timeout bounds one request.
	Timeout time.Duration
}

// NewClient makes a client from its configuration, loading the TLS client
// certificate if one is named. The password is read at each request, so a
// rotated secret file takes effect without a restart.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.URL == "" || !(strings.HasPrefix(cfg.URL, "http://") || strings.HasPrefix(cfg.URL, "https://")) {
		return nil, fault.New(fault.Invalid, CodeConfigInvalid, "tsa url %q is not an http(s) URL", cfg.URL)
	}
	h, ok := crypto.SHA256, true
	if cfg.Hash != "" {
		h, ok = cms.HashByName(cfg.Hash)
	}
	if !ok {
		return nil, fault.New(fault.Invalid, CodeConfigInvalid, "tsa hash %q is not one of sha256, sha384, sha512", cfg.Hash)
	}
	if cfg.Username != "" && cfg.Password.IsZero() {
		return nil, fault.New(fault.Invalid, CodeConfigInvalid, "tsa username %q is set without a password source", cfg.Username)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		certs, err := devpki.ReadCertsPEM(cfg.CAFile)
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "tsa caFile %q cannot be read", cfg.CAFile)
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			tlsConfig.RootCAs.AddCert(c)
		}
	}
	if cfg.ClientCert != "" || cfg.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.ClientCert, cfg.ClientKey)
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "tsa client certificate %q / key %q cannot be loaded", cfg.ClientCert, cfg.ClientKey)
		}
		tlsConfig.Certificates = []tls.Certificate{cert}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{
		URL:        cfg.URL,
		Username:   cfg.Username,
		Password:   cfg.Password,
		Hash:       h,
		HTTPClient: &http.Client{Transport: transport},
		Timeout:    timeout,
	}, nil
}

// TimestampHash tells signing which hash to make imprints with.
func (c *Client) TimestampHash() crypto.Hash { return c.Hash }

// Timestamp asks the authority for a token over digest (made with hash)
// and returns the DER TimeStampToken.
func (c *Client) Timestamp(ctx context.Context, digest []byte, hash crypto.Hash) ([]byte, error) {
	return exchange(ctx, c.URL, digest, hash, c.post)
}

// Local is the node's own development authority asked in process, with
// every check a Client makes of its tokens but no HTTP in between. It is a
// signing.Timestamper.
type Local struct {
	Responder *Responder
	// Hash is the imprint algorithm asked for (TimestampHash).
	Hash crypto.Hash
}

// TimestampHash tells signing which hash to make imprints with.
func (l Local) TimestampHash() crypto.Hash { return l.Hash }

// Timestamp asks the responder for a token over digest (made with hash).
func (l Local) Timestamp(ctx context.Context, digest []byte, hash crypto.Hash) ([]byte, error) {
	return exchange(ctx, "the development TSA", digest, hash, func(ctx context.Context, query []byte) ([]byte, error) {
		return l.Responder.Respond(ctx, query), nil
	})
}

// exchange sends one query through post and checks the token answered:
// status granted, the nonce sent, the imprint asked for, and a signer
// certificate with a critical timeStamping extended key usage. name says
// which authority in errors.
func exchange(ctx context.Context, name string, digest []byte, hash crypto.Hash, post func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	if hash.Available() && len(digest) != hash.Size() {
		return nil, fault.New(fault.Invalid, cms.CodeDigestMismatch, "a %s digest has %d bytes, not %d", hash, hash.Size(), len(digest))
	}
	nonce, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	query, err := Request(digest, hash, nonce)
	if err != nil {
		return nil, err
	}
	reply, err := post(ctx, query)
	if err != nil {
		return nil, err
	}
	token, err := ParseResponse(reply)
	if err != nil {
		return nil, err
	}
	info, err := cms.ParseTimestampToken(token)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTSAUnreachable, "%s returned a token that cannot be decoded", name)
	}
	switch {
	case info.Nonce == nil || info.Nonce.Cmp(nonce) != 0:
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "%s returned a token for another request (nonce mismatch)", name)
	case info.Hash != hash.String() || !bytes.Equal(info.Imprint, digest):
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "%s returned a token over another imprint", name)
	case info.Certificate == nil:
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "%s returned a token without its certificate although certReq was set", name)
	}
	if err := cms.CheckTimestampingEKU(info.Certificate); err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTSAUnreachable, "%s signs with an unsuitable certificate", name)
	}
	return token, nil
}

func (c *Client) post(ctx context.Context, query []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(query))
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "tsa url %q", c.URL)
	}
	req.Header.Set("Content-Type", QueryMediaType)
	req.Header.Set("Accept", ReplyMediaType)
	if c.Username != "" {
		pw, err := c.Password.Value()
		if err != nil {
			return nil, fault.Wrap(err, fault.Internal, CodeConfigInvalid, "the tsa password (%s) cannot be read", c.Password)
		}
		req.SetBasicAuth(c.Username, string(pw))
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTSAUnreachable, "timestamp authority %s cannot be reached", c.URL)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTSAUnreachable, "timestamp authority %s: reading the reply failed", c.URL)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "timestamp authority %s answered HTTP %d", c.URL, resp.StatusCode)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != ReplyMediaType {
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "timestamp authority %s answered %q, not %s", c.URL, mt, ReplyMediaType)
	}
	return body, nil
}

// Request returns a DER TimeStampReq (RFC 3161 §2.4.1) for digest made with
// hash, with the nonce (if not nil) and certReq set.
func Request(digest []byte, hash crypto.Hash, nonce *big.Int) ([]byte, error) {
	oid, err := cms.HashOID(hash)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // MessageImprint
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(oid)
			})
			b.AddASN1OctetString(digest)
		})
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
		b.AddASN1Boolean(true) // certReq: the token must carry the TSA certificate
	})
	return b.Bytes()
}

// timeStampResp is RFC 3161 §2.4.2 TimeStampResp.
type timeStampResp struct {
	Status pkiStatusInfo
	Token  asn1.RawValue `asn1:"optional"`
}

type pkiStatusInfo struct {
	Status       int
	StatusString []string       `asn1:"optional,utf8"`
	FailInfo     asn1.BitString `asn1:"optional"`
}

// ParseResponse returns the token of a DER TimeStampResp, or a
// timestamp_rejected error carrying the authority's status text and failure bits.
func ParseResponse(der []byte) ([]byte, error) {
	var r timeStampResp
	if rest, err := asn1.Unmarshal(der, &r); err != nil || len(rest) > 0 {
		return nil, fault.Wrap(err, fault.Unavailable, CodeTSAUnreachable, "the reply is not a DER TimeStampResp")
	}
	if r.Status.Status != 0 && r.Status.Status != 1 { // granted, grantedWithMods
		var fails []string
		for bit := 0; bit < r.Status.FailInfo.BitLength; bit++ {
			if r.Status.FailInfo.At(bit) == 1 {
				fails = append(fails, failureName(FailureInfo(bit)))
			}
		}
		return nil, fault.New(fault.Unavailable, CodeTSARejected, "the authority refused the request: status %d %s (%s)",
			r.Status.Status, strings.Join(fails, ","), strings.Join(r.Status.StatusString, "; "))
	}
	if len(r.Token.FullBytes) == 0 {
		return nil, fault.New(fault.Unavailable, CodeTSAUnreachable, "the authority granted the request without a token")
	}
	return r.Token.FullBytes, nil
}

func failureName(f FailureInfo) string {
	switch f {
	case FailBadAlg:
		return "badAlg"
	case FailBadRequest:
		return "badRequest"
	case FailBadDataFormat:
		return "badDataFormat"
	case FailUnacceptedPolicy:
		return "unacceptedPolicy"
	case FailUnacceptedExtension:
		return "unacceptedExtension"
	case FailSystemFailure:
		return "systemFailure"
	}
	return fmt.Sprintf("failInfo bit %d", int(f))
}

// TokenInfo describes a verified token.
type TokenInfo = cms.TimestampInfo

// VerifyOptions controls Verify.
type VerifyOptions = cms.TimestampVerifyOptions

// Verify checks token over digest (made with hash): imprint, signature,
// the authority's critical timeStamping key usage and its chain to
// opts.Roots. See cms.VerifyTimestampToken.
func Verify(token, digest []byte, hash crypto.Hash, opts VerifyOptions) (*TokenInfo, error) {
	return cms.VerifyTimestampToken(token, digest, hash, opts)
}
