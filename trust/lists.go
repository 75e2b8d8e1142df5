package trust

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
)

// Codes of the trusted lists.
const (
	// CodeConfigInvalid: the trustedLists section of sealgate.yaml is wrong.
	CodeConfigInvalid fault.Code = "trust_config_invalid"
	// CodeListInvalid: a trusted list was refused (its signature does not
	// verify, it is not a trusted list, or it is older than the one held).
	CodeListInvalid fault.Code = "trusted_list_invalid"
	// CodeListUnavailable: a trusted list could not be fetched.
	CodeListUnavailable fault.Code = "trusted_list_unavailable"
)

// Config is the "trustedLists" section of sealgate.yaml:
//
//	trustedLists:
//	  lotl: https://ec.europa.eu/tools/lotl/eu-lotl.xml   # URL, file:// URL or path
//	  lotlCertificates: [/etc/sealgate/lotl-signers.pem]  # PEM: who may sign the LOTL
//	  territories: [DE, AT]        # national lists to load; default all the LOTL names
//	  refresh: 24h                 # how often the lists are fetched again
//	  timeout: 1m                  # per list
//	  cacheDir: /var/lib/sealgate/trusted-lists           # default <data>/trusted-lists
type Config struct {
	LOTL             string        `yaml:"lotl"`
	LOTLCertificates []string      `yaml:"lotlCertificates"`
	Territories      []string      `yaml:"territories"`
	Refresh          time.Duration `yaml:"refresh"`
	Timeout          time.Duration `yaml:"timeout"`
	CacheDir         string        `yaml:"cacheDir"`
}

// Defaults of the trustedLists section.
const (
	DefaultRefresh = 24 * time.Hour
	DefaultTimeout = time.Minute
)

// LoadConfig decodes the trustedLists section of f; ok is false without one.
// Relative paths are taken from the configuration file's directory.
func LoadConfig(f *config.File) (c Config, ok bool, err error) {
	if ok, err = f.Section("trustedLists", &c); err != nil {
		return c, ok, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "trustedLists section of %s", f.Path)
	}
	if !ok {
		return c, false, nil
	}
	rel := func(p string) string {
		if p != "" && !filepath.IsAbs(p) && f.Path != "" && !strings.Contains(p, "://") {
			return filepath.Join(filepath.Dir(f.Path), p)
		}
		return p
	}
	switch {
	case c.LOTL == "":
		return c, ok, fault.New(fault.Invalid, CodeConfigInvalid, "trustedLists: lotl (the List of the Trusted Lists' location) is missing")
	case len(c.LOTLCertificates) == 0:
		return c, ok, fault.New(fault.Invalid, CodeConfigInvalid, "trustedLists: lotlCertificates (PEM files of the certificates that may sign the LOTL) is missing")
	case c.Refresh < 0 || c.Timeout < 0:
		return c, ok, fault.New(fault.Invalid, CodeConfigInvalid, "trustedLists: refresh %s and timeout %s must not be negative", c.Refresh, c.Timeout)
	}
	c.LOTL = rel(c.LOTL)
	for i, p := range c.LOTLCertificates {
		c.LOTLCertificates[i] = rel(p)
	}
	for _, t := range c.Territories {
		if !territoryPattern.MatchString(t) {
			return c, ok, fault.New(fault.Invalid, CodeConfigInvalid, "trustedLists: territory %q is not a two-letter code", t)
		}
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(f.Data, "trusted-lists")
	}
	c.CacheDir = rel(c.CacheDir)
	return c, ok, nil
}

var territoryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// Finding is why a list could not be used, with a stable code.
type Finding struct {
	Code    fault.Code `json:"code"`
	Message string     `json:"message"`
}

// ListStatus describes one trusted list as held.
type ListStatus struct {
	Location  string `json:"location"`
	Territory string `json:"territory,omitempty"`
	Type      string `json:"type,omitempty"`
	Operator  string `json:"operator,omitempty"`
	// Sequence, Issued and NextUpdate are the held list's; zero when none is held.
	Sequence   int       `json:"sequence,omitempty"`
	Issued     time.Time `json:"issued,omitzero"`
	NextUpdate time.Time `json:"nextUpdate,omitzero"`
	// Signature is "valid" for a held list (it was checked when loaded),
	// else "none": no list that verifies is held.
	Signature string `json:"signature"`
	// Signer is the subject of the certificate that signed the held list.
	Signer string `json:"signer,omitempty"`
	// Source is "download" or "cache": where the held list came from.
	Source   string    `json:"source,omitempty"`
	LoadedAt time.Time `json:"loadedAt,omitzero"`
	// Expired is true when the held list is past its NextUpdate.
	Expired bool `json:"expired,omitempty"`
	// Services counts the trust services the list names.
	Services int `json:"services"`
	// Error is why the last attempt to load the list failed, if it did.
	Error *Finding `json:"error,omitempty"`
}

// Status is what `sealgate trust status` shows.
type Status struct {
	LastRefresh time.Time    `json:"lastRefresh,omitzero"`
	NextRefresh time.Time    `json:"nextRefresh,omitzero"`
	Lists       []ListStatus `json:"lists"`
}

// held is one list as loaded: its status, and the list when one verified.
type held struct {
	status ListStatus
	list   *List
}

// snapshot is the immutable state verifications read; a refresh replaces it.
type snapshot struct {
	lists       []*held // the LOTL first
	lastRefresh time.Time
	nextRefresh time.Time

	poolMu   sync.Mutex
	poolBase *x509.CertPool
	pool     *x509.CertPool
}

// Lists holds the EU trusted lists: the LOTL, verified against pinned
// certificates, and the national lists it points to, each verified against
// the certificates the LOTL names for it. Safe for concurrent use.
type Lists struct {
	cfg     Config
	pinned  []*x509.Certificate
	client  *http.Client
	log     *slog.Logger
	current atomic.Pointer[snapshot]
	// fresh is true when Open downloaded the lists (nothing was cached).
	fresh   bool
	refresh sync.Mutex
}

// Open loads the lists from the cache directory (checking every signature
// again: the cache is no more trusted than the network), and downloads them
// when a list is missing from the cache or refused there (a list that then
// fails to download keeps its cached version). A list that cannot be loaded is reported in
// Status and makes qualification indeterminate; only a configuration
// error (an unreadable pinned certificate, a cache directory that cannot be
// made) fails Open.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Lists, error) {
	l := &Lists{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, log: log}
	for _, p := range cfg.LOTLCertificates {
		certs, err := devpki.ReadCertsPEM(p)
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "trustedLists.lotlCertificates %s", p)
		}
		l.pinned = append(l.pinned, certs...)
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeConfigInvalid, "trustedLists.cacheDir %s", cfg.CacheDir)
	}
	s := l.load(ctx, fromCache, nil)
	if len(s.unusable()) > 0 {
		s = l.load(ctx, fillGaps, s)
		l.fresh = s.lists[0].status.Source == "download"
	}
	l.current.Store(s)
	return l, nil
}

// Refresh downloads every list again. A list that fails to download or to
// verify keeps its last good version, with the failure in its status.
func (l *Lists) Refresh(ctx context.Context) Status {
	l.refresh.Lock()
	defer l.refresh.Unlock()
	s := l.load(ctx, downloadAll, l.current.Load())
	l.current.Store(s)
	for _, h := range s.lists {
		if h.status.Error != nil {
			l.log.Warn("trusted list not updated", "location", h.status.Location, "code", h.status.Error.Code, "err", h.status.Error.Message)
		}
	}
	return l.Status()
}

// Run refreshes the lists every cfg.Refresh until ctx ends; at once when
// Open took them from the cache.
func (l *Lists) Run(ctx context.Context) {
	if !l.fresh {
		l.Refresh(ctx)
	}
	t := time.NewTicker(l.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Refresh(ctx)
		}
	}
}

// Status reports the lists held.
func (l *Lists) Status() Status {
	s := l.current.Load()
	st := Status{LastRefresh: s.lastRefresh, NextRefresh: s.nextRefresh}
	now := time.Now()
	for _, h := range s.lists {
		ls := h.status
		ls.Expired = h.list != nil && !h.list.NextUpdate.IsZero() && now.After(h.list.NextUpdate)
		st.Lists = append(st.Lists, ls)
	}
	return st
}

// How load obtains each list.
type loadMode int

const (
	fromCache   loadMode = iota // read every list from the cache directory
	fillGaps                    // download the lists prev holds no good version of
	downloadAll                 // download every list
)

// load builds a snapshot as mode says; a list that cannot be had keeps its
// version in prev, if any.
func (l *Lists) load(ctx context.Context, mode loadMode, prev *snapshot) *snapshot {
	old := map[string]*held{}
	if prev != nil {
		for _, h := range prev.lists {
			old[h.status.Location] = h
		}
	}
	s := &snapshot{}
	download := func(h *held) bool {
		return mode == downloadAll || mode == fillGaps && (h == nil || h.list == nil)
	}
	lotl := l.obtain(ctx, "lotl", l.cfg.LOTL, l.pinned, old[l.cfg.LOTL], download(old[l.cfg.LOTL]))
	s.lists = append(s.lists, lotl)
	if lotl.list != nil {
		for _, p := range lotl.list.Pointers {
			if !l.wanted(p) {
				continue
			}
			h := l.obtain(ctx, p.Territory, p.Location, p.Signers, old[p.Location], download(old[p.Location]))
			h.status.Territory = p.Territory
			s.lists = append(s.lists, h)
		}
	}
	if mode == downloadAll {
		s.lastRefresh = time.Now()
		s.nextRefresh = s.lastRefresh.Add(l.cfg.Refresh)
	} else if prev != nil {
		s.lastRefresh, s.nextRefresh = prev.lastRefresh, prev.nextRefresh
	}
	return s
}

// wanted reports whether a LOTL pointer names a national list in XML that
// the configuration asks for (the LOTL also points to itself and to the
// lists' human-readable PDF versions).
func (l *Lists) wanted(p Pointer) bool {
	if p.Type == TypeLOTL || strings.HasSuffix(p.Type, "listofthelists") {
		return false
	}
	if p.MimeType != "" && p.MimeType != xmlMimeTypeTSL {
		return false
	}
	return len(l.cfg.Territories) == 0 || slices.Contains(l.cfg.Territories, p.Territory)
}

// obtain loads one list from location (download) or from its cache file,
// verified against signers. A list older than the one held is refused, so
// a replayed old list cannot take back what a newer one says.
func (l *Lists) obtain(ctx context.Context, name, location string, signers []*x509.Certificate, prev *held, download bool) *held {
	fail := func(code fault.Code, err error) *held {
		f := &Finding{Code: code, Message: err.Error()}
		if prev != nil && prev.list != nil {
			h := *prev
			h.status.Error = f
			return &h
		}
		return &held{status: ListStatus{Location: location, Signature: "none", Error: f}}
	}
	var b []byte
	var err error
	source := "cache"
	if download {
		source = "download"
		b, err = l.fetch(ctx, location)
	} else {
		b, err = os.ReadFile(l.cachePath(name, location))
		if errors.Is(err, os.ErrNotExist) {
			err = errors.New("not in the cache yet")
		}
	}
	if err != nil {
		return fail(CodeListUnavailable, fmt.Errorf("%s: %w", location, err))
	}
	list, signer, err := VerifyList(b, signers)
	if err != nil {
		return fail(CodeListInvalid, fmt.Errorf("%s refused: %w", location, err))
	}
	if prev != nil && prev.list != nil && list.Sequence < prev.list.Sequence {
		return fail(CodeListInvalid, fmt.Errorf("%s refused: sequence number %d is older than the %d held", location, list.Sequence, prev.list.Sequence))
	}
	if download {
		if err := writeAtomic(l.cachePath(name, location), b); err != nil {
			l.log.Warn("trusted list not cached", "location", location, "err", err)
		}
	}
	h := &held{list: list, status: ListStatus{
		Location: location, Territory: list.Territory, Type: list.Type, Operator: list.Operator,
		Sequence: list.Sequence, Issued: list.Issued, NextUpdate: list.NextUpdate,
		Signature: "valid", Signer: signer.Subject.String(), Source: source, LoadedAt: time.Now().UTC(),
	}}
	for _, p := range list.Providers {
		h.status.Services += len(p.Services)
	}
	return h
}

// cachePath names a list's cache file by its territory (or "lotl") and a
// hash of its location, so a moved list never reads another's file.
func (l *Lists) cachePath(name, location string) string {
	if !territoryPattern.MatchString(name) && name != "lotl" {
		name = "list"
	}
	h := sha256.Sum256([]byte(location))
	return filepath.Join(l.cfg.CacheDir, name+"-"+hex.EncodeToString(h[:6])+".xml")
}

// fetch reads a list from an http(s) URL, a file:// URL or a path, bounded
// in size and time.
func (l *Lists) fetch(ctx context.Context, location string) ([]byte, error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || u.Scheme == "file" {
		path := location
		if err == nil && u.Scheme == "file" {
			path = u.Path
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readBounded(f)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not supported (http, https, file)", u.Scheme)
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	return readBounded(resp.Body)
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxListSize+1))
	if err == nil && len(b) > maxListSize {
		err = fmt.Errorf("larger than %d bytes", maxListSize)
	}
	return b, err
}

// writeAtomic replaces path with b, never leaving a half-written file.
func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tl-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Pool returns base with every trust service certificate of the national
// lists added, for chain validation: the lists' CAs are trust anchors
// (TS 119 615 §4.1). The pool is built once per loaded set of lists.
func (l *Lists) Pool(base *x509.CertPool) *x509.CertPool {
	if l == nil {
		return base
	}
	s := l.current.Load()
	s.poolMu.Lock()
	defer s.poolMu.Unlock()
	if s.pool != nil && s.poolBase == base {
		return s.pool
	}
	pool := x509.NewCertPool()
	if base != nil {
		pool = base.Clone()
	}
	for _, h := range s.lists[1:] {
		if h.list == nil {
			continue
		}
		for _, p := range h.list.Providers {
			for _, svc := range p.Services {
				for _, c := range svc.Identities {
					pool.AddCert(c)
				}
			}
		}
	}
	s.poolBase, s.pool = base, pool
	return pool
}
