package httpauth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
)

// Error codes for forwarding headers a trusted proxy got wrong.
const (
	CodeForwardedInvalid        fault.Code = "forwarded_invalid"
	CodeClientCertHeaderInvalid fault.Code = "client_cert_header_invalid"
)

// client is who sent a request, as resolved once by Proxies.Handler.
type client struct {
	addr netip.Addr
	// cert is the client certificate a trusted proxy passed on, if any;
	// verified says the proxy verified its chain.
	cert     *x509.Certificate
	verified bool
}

type clientKey struct{}

// Proxies resolves the client of requests that come through trusted
// reverse proxies: its address from the configured forwarding header, and
// its certificate from the configured certificate header. From any other
// peer those headers are ignored, since anyone can send them.
type Proxies struct {
	settings access.ProxySettings
	log      *slog.Logger
}

// NewProxies returns the resolver for settings (from access.LoadOptions).
func NewProxies(settings access.ProxySettings, log *slog.Logger) *Proxies {
	if settings.ForwardedHeader == "" {
		settings.ForwardedHeader = access.HeaderXForwardedFor
	}
	if log == nil {
		log = slog.Default()
	}
	return &Proxies{settings: settings, log: log}
}

// Handler resolves each request's client before next sees it, so
// RemoteAddr and the authenticator agree on who it is everywhere. A
// trusted proxy's malformed header is a 400: guessing would count the
// client's failures against the proxy and lock out everyone behind it.
func (px *Proxies) Handler(next http.Handler) http.Handler {
	if len(px.settings.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := px.resolve(r)
		if err != nil {
			problem.Write(w, r, px.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientKey{}, c)))
	})
}

func (px *Proxies) trusted(a netip.Addr) bool {
	for _, p := range px.settings.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (px *Proxies) resolve(r *http.Request) (client, error) {
	peer := peerAddr(r)
	c := client{addr: peer}
	if !peer.IsValid() || !px.trusted(peer) {
		return c, nil
	}
	var hops []string
	var err error
	name := px.settings.ForwardedHeader
	if name == access.HeaderForwarded {
		hops, err = forwardedFor(r.Header.Values(name))
	} else {
		hops = listValues(r.Header.Values(name))
	}
	if err != nil {
		return client{}, err
	}
	// The right-most hop is what the proxy next to sealgate saw; further
	// left, only hops added by trusted proxies are believed. The first
	// untrusted one is the client.
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := parseHop(hops[i])
		if err != nil {
			return client{}, fault.Wrap(err, fault.Invalid, CodeForwardedInvalid, "the %s header from proxy %s names no client address at hop %q", name, peer, hops[i])
		}
		c.addr = a
		if !px.trusted(a) {
			break
		}
	}
	if h := px.settings.ClientCertHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			if c.cert, err = parseCertHeader(v); err != nil {
				return client{}, fault.Wrap(err, fault.Invalid, CodeClientCertHeaderInvalid, "the %s header from proxy %s is not a URL-encoded PEM certificate", h, peer)
			}
			c.verified = px.settings.ClientCertVerified
		}
	}
	return c, nil
}

// listValues splits comma-separated header values into trimmed elements.
func listValues(values []string) []string {
	var out []string
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			out = append(out, strings.TrimSpace(e))
		}
	}
	return out
}

// forwardedFor returns the for= value of each element of RFC 7239
// Forwarded headers, in order. Quoted strings may hold any separator, so
// the values are split outside quotes only.
func forwardedFor(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, elem := range splitOutsideQuotes(v, ',') {
			found := false
			for _, pair := range splitOutsideQuotes(elem, ';') {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					val = strings.ReplaceAll(val[1:len(val)-1], `\`, "")
				}
				out = append(out, val)
				found = true
			}
			if !found {
				return nil, fault.New(fault.Invalid, CodeForwardedInvalid, "the Forwarded element %q has no for= parameter", strings.TrimSpace(elem))
			}
		}
	}
	return out, nil
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseHop reads one hop: an address, with or without a port, IPv6 in
// brackets or bare. Obfuscated identifiers and "unknown" (RFC 7239 §6)
// name no address.
func parseHop(h string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(h); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap(), nil
}

// parseCertHeader decodes a certificate as nginx's $ssl_client_escaped_cert
// sends it: PEM, URL-encoded.
func parseCertHeader(v string) (*x509.Certificate, error) {
	text, err := url.PathUnescape(v)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fault.New(fault.Invalid, CodeClientCertHeaderInvalid, "no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// peerAddr is the address of the connection's other end.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// RemoteAddr is the caller's address: the connection's peer, or, for a
// request through a trusted proxy (Proxies.Handler), the client the proxy
// names. Anyone else's forwarding headers are their claim, not a fact.
func RemoteAddr(r *http.Request) netip.Addr {
	if c, ok := r.Context().Value(clientKey{}).(client); ok {
		return c.addr
	}
	return peerAddr(r)
}

// clientCert returns the caller's certificate: the one a trusted proxy
// passed on (verified as the proxy settings say), else the TLS
// connection's own (verified when the listener verified its chain).
func clientCert(r *http.Request) (*x509.Certificate, bool) {
	if c, ok := r.Context().Value(clientKey{}).(client); ok && c.cert != nil {
		return c.cert, c.verified
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, false
	}
	return r.TLS.PeerCertificates[0], len(r.TLS.VerifiedChains) > 0
}
