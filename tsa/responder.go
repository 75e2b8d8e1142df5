// Package tsa speaks RFC 3161, the Time-Stamp Protocol: a Client that asks a
// timestamp authority for tokens (it is the signing.Timestamper seals use for
// level B-T), the development authority `sealgate serve` mounts at /tsa
// (Responder, its certificate marked "development — not qualified"), and
// Verify for tokens.
package tsa

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
)

// Media types of RFC 3161 §3.4.
const (
	QueryMediaType = "application/timestamp-query"
	ReplyMediaType = "application/timestamp-reply"
)

// DevelopmentPolicy is the TSA policy OID of the development responder, an
// arc under the example enterprise number (RFC 5612) so that it can never be
// mistaken for a qualified policy.
var DevelopmentPolicy = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 3161, 1}

// maxQuery bounds a TimeStampReq: a SHA-512 query with a nonce and a policy is under 150 bytes.
const maxQuery = 4 << 10

// PKIStatus values (RFC 3161 §2.4.2).
const (
	statusGranted   = 0
	statusRejection = 2
)

// FailureInfo is a PKIFailureInfo bit (RFC 3161 §2.4.2).
type FailureInfo int

// Failure reasons a responder reports.
const (
	FailBadAlg              FailureInfo = 0
	FailBadRequest          FailureInfo = 2
	FailBadDataFormat       FailureInfo = 5
	FailUnacceptedPolicy    FailureInfo = 15
	FailUnacceptedExtension FailureInfo = 16
	FailSystemFailure       FailureInfo = 25
)

// ResponderOptions configures a Responder.
type ResponderOptions struct {
	// Policy is the TSA policy OID put in every token; default DevelopmentPolicy.
	Policy asn1.ObjectIdentifier
	// Accuracy is the ± the authority vouches for; default one second (genTime has whole seconds).
	Accuracy time.Duration
	// Hash signs the tokens; default SHA-256.
	Hash crypto.Hash
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Responder is an RFC 3161 timestamp authority over HTTP: POST a
// TimeStampReq as application/timestamp-query, get a TimeStampResp as
// application/timestamp-reply. Malformed or unacceptable queries get a
// rejection response (PKIStatus rejection with a failInfo), not an HTTP error.
type Responder struct {
	key    tsaKey
	opts   ResponderOptions
	prefix uint64        // random per responder, so serials stay unique across restarts
	count  atomic.Uint64 // serials issued by this responder
}

// tsaKey pairs the authority's signer with its chain for cms.Sign.
type tsaKey struct {
	crypto.Signer
	chain []*x509.Certificate
}

func (k tsaKey) Chain() []*x509.Certificate { return k.chain }

// NewResponder makes a responder signing with key, whose certificate is
// chain[0] (from devpki.CA.IssueTSA: a critical timeStamping extended key usage).
func NewResponder(key crypto.Signer, chain []*x509.Certificate, opts ResponderOptions) (*Responder, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("tsa: responder without certificate")
	}
	if err := signing.CheckKeyMatches(key.Public(), chain[0]); err != nil {
		return nil, err
	}
	if err := cms.CheckTimestampingEKU(chain[0]); err != nil {
		return nil, err
	}
	if opts.Policy == nil {
		opts.Policy = DevelopmentPolicy
	}
	if opts.Accuracy == 0 {
		opts.Accuracy = time.Second
	}
	if opts.Hash == 0 {
		opts.Hash = crypto.SHA256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &Responder{key: tsaKey{key, chain}, opts: opts, prefix: binary.BigEndian.Uint64(b[:]) >> 1}, nil
}

// ServeHTTP answers one timestamp query.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST an RFC 3161 TimeStampReq as "+QueryMediaType, http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxQuery+1))
	if err != nil {
		http.Error(w, "the query could not be read", http.StatusBadRequest)
		return
	}
	var resp []byte
	if len(body) > maxQuery {
		resp = rejection(FailBadDataFormat, fmt.Sprintf("the query exceeds %d bytes", maxQuery))
	} else {
		resp = r.Respond(req.Context(), body)
	}
	w.Header().Set("Content-Type", ReplyMediaType)
	w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
	w.Write(resp)
}

// timeStampReq is RFC 3161 §2.4.1 TimeStampReq.
type timeStampReq struct {
	Version        int
	MessageImprint cms.MessageImprintASN
	ReqPolicy      asn1.ObjectIdentifier `asn1:"optional"`
	Nonce          *big.Int              `asn1:"optional"`
	CertReq        bool                  `asn1:"optional,default:false"`
	Extensions     []pkix.Extension      `asn1:"optional,tag:0"`
}

// Respond returns the DER TimeStampResp to a DER TimeStampReq: a token, or
// a rejection saying what was wrong with the query.
func (r *Responder) Respond(ctx context.Context, query []byte) []byte {
	var q timeStampReq
	if rest, err := asn1.Unmarshal(query, &q); err != nil || len(rest) > 0 {
		return rejection(FailBadDataFormat, "the query is not a DER TimeStampReq")
	}
	if q.Version != 1 {
		return rejection(FailBadDataFormat, fmt.Sprintf("TimeStampReq version %d is not 1", q.Version))
	}
	h, ok := cms.HashByOID(q.MessageImprint.HashAlgorithm.Algorithm)
	if !ok {
		return rejection(FailBadAlg, fmt.Sprintf("hash algorithm %s is not accepted (SHA-256, SHA-384, SHA-512 are)", q.MessageImprint.HashAlgorithm.Algorithm))
	}
	if len(q.MessageImprint.HashedMessage) != h.Size() {
		return rejection(FailBadDataFormat, fmt.Sprintf("a %s imprint has %d bytes, not %d", h, h.Size(), len(q.MessageImprint.HashedMessage)))
	}
	if q.ReqPolicy != nil && !q.ReqPolicy.Equal(r.opts.Policy) {
		return rejection(FailUnacceptedPolicy, fmt.Sprintf("policy %s is not offered (%s is)", q.ReqPolicy, r.opts.Policy))
	}
	if len(q.Extensions) > 0 {
		return rejection(FailUnacceptedExtension, fmt.Sprintf("extension %s is not supported", q.Extensions[0].Id))
	}
	token, err := r.token(ctx, q)
	if err != nil {
		return rejection(FailSystemFailure, "the authority could not sign the token")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(statusGranted) })
		b.AddBytes(token)
	})
	return b.BytesOrPanic()
}

// token builds and signs the TSTInfo (RFC 3161 §2.4.2) answering q.
func (r *Responder) token(ctx context.Context, q timeStampReq) ([]byte, error) {
	genTime := r.opts.Now().UTC().Truncate(time.Second)
	imprintAlg, err := asn1.Marshal(q.MessageImprint.HashAlgorithm)
	if err != nil {
		return nil, err
	}
	serial := new(big.Int).Lsh(new(big.Int).SetUint64(r.prefix), 64)
	serial.Or(serial, new(big.Int).SetUint64(r.count.Add(1)))
	acc := r.opts.Accuracy
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(r.opts.Policy)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(imprintAlg)
			b.AddASN1OctetString(q.MessageImprint.HashedMessage)
		})
		b.AddASN1BigInt(serial)
		b.AddASN1GeneralizedTime(genTime)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Accuracy
			if s := int64(acc / time.Second); s > 0 {
				b.AddASN1Int64(s)
			}
			if ms := int64(acc % time.Second / time.Millisecond); ms > 0 {
				b.AddASN1Int64WithTag(ms, cbasn1.Tag(0).ContextSpecific())
			}
			if us := int64(acc % time.Millisecond / time.Microsecond); us > 0 {
				b.AddASN1Int64WithTag(us, cbasn1.Tag(1).ContextSpecific())
			}
		})
		if q.Nonce != nil {
			b.AddASN1BigInt(q.Nonce)
		}
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // tsa
			b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { // directoryName
				b.AddBytes(r.key.chain[0].RawSubject)
			})
		})
	})
	tst, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return cms.Sign(ctx, r.key, nil, r.opts.Hash, cms.Options{
		ContentType:      cms.OIDTSTInfo,
		Content:          tst,
		SigningTime:      genTime,
		OmitCertificates: !q.CertReq,
	})
}

// rejection returns a TimeStampResp with status rejection, the reason as
// statusString and failInfo.
func rejection(fail FailureInfo, reason string) []byte {
	// failInfo is a DER named bit list: trailing zero bits are dropped.
	bits := make([]byte, int(fail)/8+1)
	bits[fail/8] = 0x80 >> (fail % 8)
	failInfo, err := asn1.Marshal(asn1.BitString{Bytes: bits, BitLength: int(fail) + 1})
	if err != nil {
		panic(err) // a BitString always marshals
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(statusRejection)
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(reason)) })
			})
			b.AddBytes(failInfo)
		})
	})
	return b.BytesOrPanic()
}
