package ldapsync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/sealgate/sealgate/fault"
)

// directory connects to the configured servers.
type directory struct {
	cfg Config
	tls *tls.Config
}

func newDirectory(cfg Config) (*directory, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pemBytes, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "ldap.caFile %q cannot be read", cfg.CAFile)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fault.New(fault.Invalid, CodeConfigInvalid, "ldap.caFile %q holds no PEM certificate", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return &directory{cfg: cfg, tls: tc}, nil
}

// conn is a connection that closes itself when its context ends, so a
// cancelled sync never waits out a request timeout.
type conn struct {
	*ldap.Conn
	url  string
	stop func() bool
}

func (c *conn) close() {
	c.stop()
	c.Conn.Close()
}

// dial connects to the first URL that answers, upgrading ldap:// with
// StartTLS unless plaintext is allowed, and binds with bind (when not nil).
// A server that cannot be reached, or accepts the connection and then does
// not answer in time, is skipped for the next; a server that answers with a
// refusal ends the search with that refusal. Each failure is kept so the
// error says why every server was skipped.
func (d *directory) dial(ctx context.Context, bind func(*conn) error) (*conn, error) {
	var errs []error
	for _, u := range d.cfg.URLs {
		if err := ctx.Err(); err != nil {
			return nil, unavailable(err, "connect to the directory")
		}
		c, err := d.dialOne(ctx, u)
		if err == nil && bind != nil {
			if err = bind(c); err != nil {
				c.close()
				if !isNetwork(err) || ctx.Err() != nil {
					return nil, err
				}
			}
		}
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, unavailable(errors.Join(errs...), "no directory server in ldap.urls %v answered", d.cfg.URLs)
}

func (d *directory) dialOne(ctx context.Context, rawURL string) (*conn, error) {
	tc := d.tls.Clone()
	if pu, err := url.Parse(rawURL); err == nil {
		tc.ServerName = pu.Hostname()
	}
	dialer := &net.Dialer{Timeout: d.cfg.DialTimeout}
	lc, err := ldap.DialURL(rawURL, ldap.DialWithDialer(dialer), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	lc.SetTimeout(d.cfg.RequestTimeout)
	c := &conn{Conn: lc, url: rawURL, stop: context.AfterFunc(ctx, func() { lc.Close() })}
	if !d.cfg.Plaintext && strings.HasPrefix(strings.ToLower(rawURL), "ldap://") {
		// The TLS handshake after the StartTLS answer has no deadline of
		// its own; closing the connection ends a server that stalls in it.
		watchdog := time.AfterFunc(d.cfg.DialTimeout+d.cfg.RequestTimeout, func() { lc.Close() })
		err := lc.StartTLS(tc)
		watchdog.Stop()
		if err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// serviceConn connects and binds as the service account (anonymously when
// no bind DN is configured).
func (d *directory) serviceConn(ctx context.Context) (*conn, error) {
	if d.cfg.BindDN == "" {
		return d.dial(ctx, nil)
	}
	pw, err := d.cfg.BindPassword.Value()
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "ldap.bindPassword (%s) cannot be read", d.cfg.BindPassword)
	}
	return d.dial(ctx, func(c *conn) error {
		if err := c.Bind(d.cfg.BindDN, string(pw)); err != nil {
			if isNetwork(err) {
				return err
			}
			return fault.Wrap(err, fault.Internal, CodeDirectoryError, "the directory at %s refused the service account %q", c.url, d.cfg.BindDN)
		}
		return nil
	})
}

// search runs req page by page (RFC 2696) and hands each entry to fn, so at
// most one page of entries is held at a time whatever the directory's size.
func (c *conn) search(ctx context.Context, req *ldap.SearchRequest, pageSize int, fn func(*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(uint32(pageSize))
	req.Controls = append(req.Controls, paging)
	for {
		res, err := c.Search(req)
		if err != nil {
			return searchError(ctx, err, req, c.url)
		}
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				c.abandon(req, paging)
				return err
			}
		}
		ctl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctl == nil || len(ctl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctl.Cookie)
	}
}

// abandon tells the server to drop a paged search's state (RFC 2696: a
// request with size 0 and the last cookie).
func (c *conn) abandon(req *ldap.SearchRequest, paging *ldap.ControlPaging) {
	if len(paging.Cookie) == 0 {
		return
	}
	paging.PagingSize = 0
	_, _ = c.Search(req)
}

func searchError(ctx context.Context, err error, req *ldap.SearchRequest, url string) error {
	if ctx.Err() != nil {
		return unavailable(ctx.Err(), "search %q under %q at %s", req.Filter, req.BaseDN, url)
	}
	if isNetwork(err) {
		return unavailable(err, "search %q under %q at %s", req.Filter, req.BaseDN, url)
	}
	return fault.Wrap(err, fault.Internal, CodeDirectoryError, "search %q under %q at %s failed", req.Filter, req.BaseDN, url)
}

func unavailable(err error, format string, args ...any) error {
	return fault.Wrap(err, fault.Unavailable, CodeDirectoryUnavailable, format, args...)
}

// isNetwork reports whether err means the server could not be reached or
// went away, as opposed to an answer refusing the request. A connection
// that drops mid-response surfaces as a plain error, not an *ldap.Error.
func isNetwork(err error) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return true
	}
	switch le.ResultCode {
	case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultUnavailable, ldap.LDAPResultBusy,
		ldap.LDAPResultTimeout, ldap.LDAPResultConnectError:
		return true
	}
	return false
}
