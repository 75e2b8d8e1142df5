// Package server assembles a sealgate node from its configuration: the
// database, the seal pool, access control, the evidence log, the sealing
// service, and the HTTP routes of every transport. It is the only place that
// knows all the parts; each part knows only what it uses.
package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/gateway/adminapi"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/gateway/rest"
	"github.com/sealgate/sealgate/gateway/soap"
	"github.com/sealgate/sealgate/ldapsync"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/csc"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/pkcs11"
	"github.com/sealgate/sealgate/signing/softkey"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/trust"
	"github.com/sealgate/sealgate/tsa"
)

// SealSettings is the "seal" section of sealgate.yaml.
type SealSettings struct {
	// DefaultSeal is used when a request names no seal.
	DefaultSeal string `yaml:"defaultSeal"`
	// MaxDocumentSize bounds one document, in bytes. Default 100 MiB
	// (larger: 413 document_too_large).
	MaxDocumentSize int64 `yaml:"maxDocumentSize"`
	// TempDir holds documents while they are sealed or verified. Default:
	// the system's. Files named seal.SpoolPrefix* in it are removed when
	// the node starts serving.
	TempDir string `yaml:"tempDir"`
	// MaxTempSpace bounds the bytes of all documents spooled in TempDir at
	// once (sealing and verification). Default 8 GiB.
	MaxTempSpace int64 `yaml:"maxTempSpace"`
	// IdempotencyWindow is how long the answer to an Idempotency-Key is
	// kept (default 24h); sealed outputs are kept for it under
	// <data>/idempotency.
	IdempotencyWindow time.Duration `yaml:"idempotencyWindow"`
	// TrustRoots is a PEM file of the roots sealgate's verifier trusts for
	// seals and timestamps (besides the system roots).
	TrustRoots string `yaml:"trustRoots"`
	// Stamp is the look of visible stamps; Stamps replaces it for the
	// seals it names.
	Stamp  StampSettings            `yaml:"stamp"`
	Stamps map[string]StampSettings `yaml:"stamps"`
	// Revocation says where B-LT finds revocation data.
	Revocation RevocationSettings `yaml:"revocation"`
	// Queue bounds the seals in progress and waiting per seal.
	Queue seal.QueueSettings `yaml:"queue"`
}

// DevTSASettings is the "devTSA" section: the development RFC 3161
// authority served at /tsa. Its certificate is marked not qualified.
type DevTSASettings struct {
	Key         string `yaml:"key"`
	Certificate string `yaml:"certificate"`
}

// Server is one sealgate node.
type Server struct {
	Config   *config.File
	DB       *store.DB
	Pool     *signing.Pool
	Access   *access.Service
	Evidence *evidence.Log
	Seal     *seal.Service
	// Jobs seals batches; Serve recovers and runs it.
	Jobs     *seal.Jobs
	Verifier *seal.Verifier
	// Directory syncs users and groups from LDAP; nil without an ldap section.
	Directory *ldapsync.Syncer
	// Trust holds the EU trusted lists; nil without a trustedLists section.
	Trust *trust.Lists

	directoryInterval time.Duration
	// anchorInterval is how often the audit trail's head is anchored in the
	// evidence log; anchored is the event count anchored last.
	anchorInterval time.Duration
	anchorMu       sync.Mutex
	anchored       uint64

	settings      SealSettings
	debug         DebugSettings
	http          HTTPSettings
	verify        seal.VerifyLimits
	metricsListen MetricsSettings
	soap          soap.Settings
	// spool is the temporary space documents in progress share.
	spool *limit.Budget
	// proxy names the reverse proxies whose forwarding headers are believed.
	proxy    access.ProxySettings
	auth     *httpauth.Authenticator
	metrics  *metrics
	devTSA   *tsa.Responder
	devTSACA *x509.Certificate
	// tls is the listener's configuration with the "tls" section, else nil;
	// certs keeps its certificate in step with the files.
	tls     *tls.Config
	certs   *certReloader
	log     *slog.Logger
	engine  *gin.Engine
	handler http.Handler
	closers []func() error
}

// AccessOptions are the options access is opened with, by the node and by
// the command line alike: the access section, and the configured seal ids,
// so a rule can only name a seal the node has.
func AccessOptions(cfg *config.File) (access.Options, error) {
	opts, err := access.LoadOptions(cfg)
	if err != nil {
		return opts, err
	}
	poolCfg, ok, err := signing.LoadPoolConfig(cfg)
	if err != nil || !ok {
		return opts, err
	}
	opts.Seals = []string{}
	for _, sc := range poolCfg.Seals {
		opts.Seals = append(opts.Seals, sc.ID)
	}
	return opts, nil
}

// New builds a node from cfg. It fails only on configuration errors; a card
// that cannot be reached is reported and retried by the pool.
func New(ctx context.Context, cfg *config.File, log *slog.Logger) (_ *Server, err error) {
	s := &Server{Config: cfg, log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if _, err := cfg.Section("seal", &s.settings); err != nil {
		return nil, err
	}
	var tlsSettings TLSSettings
	if ok, err := cfg.Section("tls", &tlsSettings); err != nil {
		return nil, err
	} else if ok {
		if s.tls, s.certs, err = tlsSettings.tlsConfig(log); err != nil {
			return nil, err
		}
		// The default public URL names the scheme the node now serves.
		if cfg.PublicURL == "http://"+cfg.Listen {
			cfg.PublicURL = "https://" + cfg.Listen
		}
	}
	if s.settings.MaxTempSpace < 0 {
		return nil, fmt.Errorf("config section seal: maxTempSpace is negative (%d)", s.settings.MaxTempSpace)
	}
	if q := s.settings.Queue; q.PerSession < 0 || q.Length < 0 || q.MaxWait < 0 {
		return nil, fmt.Errorf("config section seal: queue perSession, length and maxWait must not be negative")
	}
	if s.settings.MaxTempSpace == 0 {
		s.settings.MaxTempSpace = 8 << 30
	}
	if s.settings.MaxDocumentSize == 0 {
		// One default for every transport (REST, SOAP parts, jobs).
		s.settings.MaxDocumentSize = 100 << 20
	}
	if s.settings.IdempotencyWindow < 0 {
		return nil, fmt.Errorf("config section seal: idempotencyWindow is negative (%s)", s.settings.IdempotencyWindow)
	}
	if s.http, err = loadHTTP(cfg); err != nil {
		return nil, err
	}
	if s.verify, err = loadVerify(cfg); err != nil {
		return nil, err
	}
	if _, err := cfg.Section("metrics", &s.metricsListen); err != nil {
		return nil, err
	}
	if _, err := cfg.Section("debug", &s.debug); err != nil {
		return nil, err
	}
	if s.soap, err = soap.LoadSettings(cfg); err != nil {
		return nil, err
	}
	evCfg, err := evidence.LoadConfig(cfg)
	if err != nil {
		return nil, err
	}
	if s.DB, err = store.Open(ctx, cfg.Database, store.Options{Durability: cfg.Durability}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.DB.Close)

	poolCfg, _, err := signing.LoadPoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	if s.Pool, err = signing.NewPool(ctx, poolCfg, log, pkcs11.Backend{}, softkey.Backend{}, csc.Backend{}); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Pool.Close)
	if s.settings.DefaultSeal == "" && len(poolCfg.Seals) == 1 {
		s.settings.DefaultSeal = poolCfg.Seals[0].ID
	}

	ts, err := s.timestamper(cfg)
	if err != nil {
		return nil, err
	}
	if ts != nil {
		// PAdES sizes its placeholders from the authority's earlier tokens.
		ts = pades.RememberTokenSizes(ts)
	}
	accOpts, err := AccessOptions(cfg)
	if err != nil {
		return nil, err
	}
	accOpts.Logger = log
	s.proxy = accOpts.Proxy
	ldapCfg, hasLDAP, err := ldapsync.LoadConfig(cfg)
	if err != nil {
		return nil, err
	}
	if hasLDAP {
		if ldapCfg, err = ldapCfg.WithDefaults(); err != nil {
			return nil, err
		}
		dirAuth, err := ldapsync.NewAuthenticator(ldapCfg, log)
		if err != nil {
			return nil, err
		}
		accOpts.Directories = map[string]access.PasswordVerifier{ldapCfg.Source: dirAuth}
	}
	if s.Access, err = access.Open(ctx, s.DB, accOpts); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Access.Close)
	if hasLDAP {
		if s.Directory, err = ldapsync.NewSyncer(ctx, ldapCfg, s.DB, s.Access, log); err != nil {
			return nil, err
		}
		s.directoryInterval = ldapCfg.Interval
	}

	evOpts := evCfg.Options()
	s.anchorInterval = evOpts.CheckpointInterval
	if s.anchorInterval <= 0 {
		s.anchorInterval = 10 * time.Second
	}
	evOpts.Timestamper, evOpts.Logger = ts, log
	if evCfg.Seal == "" {
		evCfg.Seal = s.settings.DefaultSeal
	}
	if evCfg.Seal != "" {
		evOpts.Sealer = s.checkpointSealer(evCfg.Seal)
	}
	if s.Evidence, err = evidence.Open(ctx, s.DB, evOpts); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.Evidence.Close)

	stamps, err := s.settings.stamps()
	if err != nil {
		return nil, err
	}
	revocation, err := s.settings.revocation()
	if err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s)
	spool := seal.NewSpoolBudget(s.settings.MaxTempSpace)
	s.spool = spool
	if s.Seal, err = seal.New(ctx, seal.Options{
		Observe:           s.metrics.observe,
		DB:                s.DB,
		Keys:              s.Pool,
		Authorizer:        s.Access,
		Evidence:          s.Evidence,
		Timestamper:       ts,
		DefaultSeal:       s.settings.DefaultSeal,
		TempDir:           s.settings.TempDir,
		MaxDocumentSize:   s.settings.MaxDocumentSize,
		Spool:             spool,
		IdempotencyDir:    filepath.Join(cfg.Data, "idempotency"),
		IdempotencyWindow: s.settings.IdempotencyWindow,
		Revocation:        revocation,
		Stamps:            stamps,
		Queue:             s.settings.Queue,
		Log:               log,
	}); err != nil {
		return nil, err
	}
	jobsCfg, err := seal.LoadJobsConfig(cfg)
	if err != nil {
		return nil, err
	}
	if jobsCfg.Workers == 0 {
		jobsCfg.Workers = max(s.jobWorkers(), jobsCfg.BatchSize)
	}
	if s.Jobs, err = seal.NewJobs(s.Seal, seal.JobsOptions{JobsConfig: jobsCfg,
		ObserveDocument: s.metrics.observeJobDocument, ObserveJob: s.metrics.observeJob}); err != nil {
		return nil, err
	}
	roots, err := s.trustRoots(poolCfg)
	if err != nil {
		return nil, err
	}
	if tlCfg, ok, err := trust.LoadConfig(cfg); err != nil {
		return nil, err
	} else if ok {
		if s.Trust, err = trust.Open(ctx, tlCfg, log); err != nil {
			return nil, err
		}
	}
	s.Verifier = &seal.Verifier{Evidence: s.Evidence, Roots: roots, Trust: s.Trust, TempDir: s.settings.TempDir, Spool: spool}
	s.handler = s.routes()
	return s, nil
}

// jobWorkers is the default number of job workers: sixteen per signing
// session of the cards in service (a software seal counts as one per CPU).
// A worker spends most of its time waiting for flushes to disk (its output
// file, the evidence leaf, the seal event), not signing; many workers
// overlap those waits and let the grouped commits gather more seals.
func (s *Server) jobWorkers() int {
	sessions := 0
	for _, c := range s.Pool.Status() {
		if c.Healthy {
			sessions += c.Sessions
		}
	}
	for _, st := range s.Pool.Seals() {
		if st.Software {
			sessions += runtime.NumCPU()
		}
	}
	return 16 * max(sessions, runtime.NumCPU())
}

// timestamper returns the configured TSA client, or nil without one; it also
// loads the development TSA when configured.
func (s *Server) timestamper(cfg *config.File) (signing.Timestamper, error) {
	var dev DevTSASettings
	if ok, err := cfg.Section("devTSA", &dev); err != nil {
		return nil, err
	} else if ok {
		key, err := devpki.ReadKeyPEM(dev.Key)
		if err != nil {
			return nil, fmt.Errorf("devTSA: %w", err)
		}
		chain, err := devpki.ReadCertsPEM(dev.Certificate)
		if err != nil {
			return nil, fmt.Errorf("devTSA certificate: %w", err)
		}
		if s.devTSA, err = tsa.NewResponder(key, chain, tsa.ResponderOptions{}); err != nil {
			return nil, err
		}
		s.devTSACA = chain[len(chain)-1]
		s.log.Info("development timestamp authority at /tsa — development, not qualified")
	}
	var tc tsa.ClientConfig
	ok, err := cfg.Section("tsa", &tc)
	switch {
	case err != nil:
		return nil, err
	case ok && tc.URL != "":
		return tsa.NewClient(tc)
	case s.devTSA != nil:
		// The node's own development TSA, called in process so it works
		// whatever address the node listens on; its tokens still get the
		// client's checks.
		return tsa.Local{Responder: s.devTSA, Hash: crypto.SHA256}, nil
	}
	return nil, nil
}

// checkpointSealer seals evidence checkpoints with the organisation's seal
// (CAdES B-B over the checkpoint note). It signs directly with the pool: a
// checkpoint is not a document and is not itself recorded in the log.
func (s *Server) checkpointSealer(sealID string) func(context.Context, []byte) ([]byte, error) {
	return func(ctx context.Context, text []byte) ([]byte, error) {
		key, err := s.Pool.Key(sealID)
		if err != nil {
			return nil, err
		}
		res, err := cms.CAdES(ctx, key, bytes.NewReader(text), cms.CAdESOptions{})
		if err != nil {
			return nil, err
		}
		return res.Signature, nil
	}
}

// trustRoots are the roots the verifier trusts: the configured file, plus
// the roots at the top of every configured seal's chain (sealgate trusts its
// own seals' issuers; for anything else configure trustRoots).
func (s *Server) trustRoots(poolCfg signing.PoolConfig) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if s.settings.TrustRoots != "" {
		certs, err := devpki.ReadCertsPEM(s.settings.TrustRoots)
		if err != nil {
			return nil, fmt.Errorf("seal.trustRoots: %w", err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	for _, st := range s.Pool.Seals() {
		if n := len(st.Chain); n > 0 {
			pool.AddCert(st.Chain[n-1])
		}
	}
	if s.devTSACA != nil {
		pool.AddCert(s.devTSACA)
	}
	return pool, nil
}

func (s *Server) routes() http.Handler {
	e := engine.New(s.log)
	s.engine = e
	auth := httpauth.New(s.Access, httpauth.Options{Logger: s.log})
	s.auth = auth
	api := &rest.REST{Seal: s.Seal, Jobs: s.Jobs, Verifier: s.Verifier.Public(s.verify), Evidence: s.Evidence, Access: s.Access, Auth: auth, Log: s.log}
	api.Register(e)
	ws := soap.New(soap.Options{Settings: s.soap, TempDir: s.settings.TempDir, Spool: s.spool, MaxDocumentSize: s.settings.MaxDocumentSize})
	ws.Seal, ws.Jobs, ws.Verifier, ws.Access, ws.Auth, ws.Log = s.Seal, s.Jobs, api.Verifier, s.Access, auth, s.log
	ws.Register(e)
	e.POST("/api/v1/oauth/token", engine.Std(auth.TokenHandler()))
	e.POST("/api/v1/sessions", engine.Std(auth.LoginHandler()))
	e.DELETE("/api/v1/sessions/current", engine.Std(auth.LogoutHandler()))
	adminOpts := adminapi.Options{Logger: s.log}
	if s.Directory != nil {
		adminOpts.Directory = s.Directory
	}
	adminapi.Register(e, s.Access, auth, adminOpts)
	if s.devTSA != nil {
		e.POST("/tsa", engine.Std(s.devTSA))
	}
	e.GET("/healthz", engine.Std(http.HandlerFunc(healthz)))
	e.GET("/readyz", engine.Std(http.HandlerFunc(s.readyz)))
	e.GET("/metrics", engine.Std(s.monitoring(s.metrics.handler())))
	if s.debug.PProf {
		s.registerPProf(e)
	}
	return httpauth.NewProxies(s.proxy, s.log).Handler(s.http.guardBodies(engine.HeadAsGet(e), s.log))
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, "ok")
}

// Handler returns the node's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes lists the method and path of every route the node's engine
// serves, so tests can hold them against the OpenAPI document.
func (s *Server) Routes() gin.RoutesInfo { return s.engine.Routes() }

// readyz reports ready when every seal has a healthy card: to anonymous
// callers only whether (200 or 503); to the admin and auditor roles the
// details, which name cards and seals.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	switch anonymous, err := s.monitor(r); {
	case anonymous:
		s.readyPublic(w)
	case err != nil:
		problem.Write(w, r, s.log, err)
	default:
		s.readyDetails(w)
	}
}

// readyPublic answers whether the node is ready, and nothing else.
func (s *Server) readyPublic(w http.ResponseWriter) {
	ready := s.ready()
	w.Header().Set("Cache-Control", "no-store")
	problem.WriteJSON(w, readyStatus(ready), struct {
		Ready bool `json:"ready"`
	}{ready})
}

// ready reports whether every seal has a card in service and the directory
// (if any) synced last time.
func (s *Server) ready() bool {
	// A failed sync leaves the last known users in place: sealing goes
	// on, but the node reports it is not in step with the directory.
	if s.Directory != nil && !s.Directory.Health().OK() {
		return false
	}
	for _, st := range s.Pool.Seals() {
		if st.HealthyCards == 0 {
			return false
		}
	}
	return true
}

// readyDetails is the readiness report for operators.
func (s *Server) readyDetails(w http.ResponseWriter) {
	type sealReady struct {
		ID           string   `json:"id"`
		HealthyCards int      `json:"healthyCards"`
		Cards        []string `json:"cards"`
		ExpiresSoon  bool     `json:"expiresSoon"`
	}
	type directory struct {
		OK          bool      `json:"ok"`
		Outcome     string    `json:"outcome,omitempty"`
		Error       string    `json:"error,omitempty"`
		LastSuccess time.Time `json:"lastSuccess,omitzero"`
	}
	out := struct {
		Ready     bool                 `json:"ready"`
		Seals     []sealReady          `json:"seals"`
		Cards     []signing.CardStatus `json:"cards"`
		Directory *directory           `json:"directory,omitempty"`
	}{Ready: s.ready(), Cards: s.Pool.Status()}
	if s.Directory != nil {
		h := s.Directory.Health()
		out.Directory = &directory{OK: h.OK(), Outcome: string(h.Last.Outcome), Error: h.Last.Error, LastSuccess: h.LastSuccess}
	}
	for _, st := range s.Pool.Seals() {
		out.Seals = append(out.Seals, sealReady{ID: st.ID, HealthyCards: st.HealthyCards, Cards: st.Cards, ExpiresSoon: st.ExpiresSoon})
	}
	w.Header().Set("Cache-Control", "no-store")
	problem.WriteJSON(w, readyStatus(out.Ready), out)
}

func readyStatus(ready bool) int {
	if ready {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// ReloadTLS reads the TLS certificate and key again (sealgate serve calls
// it on SIGHUP); new handshakes get them, open connections keep theirs.
// Without a tls section it does nothing.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// Run serves HTTP (HTTPS with a tls section) on the configured address
// until ctx ends, and runs the evidence log's checkpoint loop.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.Config.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on an existing listener.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// Jobs a previous run left unfinished resume; this must be done before
	// the first submission.
	if err := s.Jobs.Recover(ctx); err != nil {
		return err
	}
	// So do idempotent seals a previous run left at work.
	if err := s.Seal.Recover(ctx); err != nil {
		return err
	}
	srv := s.httpServer(s.handler)
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if addr := s.metricsListen.Listen; addr != "" {
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("metrics.listen %s: %w", addr, err)
		}
		msrv := s.httpServer(s.monitorHandler())
		servers = append(servers, msrv)
		go func() { errc <- msrv.Serve(mln) }()
		s.log.Info("metrics and readiness details served", "addr", mln.Addr().String())
	}
	// No request is in flight yet: spool files in the temporary directory
	// are a previous run's leftovers.
	if n, err := seal.RemoveSpool(s.settings.TempDir); err != nil {
		s.log.Warn("leftover spool files not all removed", "err", err)
	} else if n > 0 {
		s.log.Info("removed leftover spool files of a previous run", "files", n)
	}
	// The log publishes a checkpoint (of the empty tree, when fresh) before
	// the first request: GET /log/checkpoint answers from the start.
	if _, err := s.Evidence.Checkpoint(ctx); err != nil {
		s.log.Error("evidence checkpoint failed", "err", err)
	}
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	go func() {
		if err := s.Evidence.Run(loopCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("evidence checkpoint loop stopped", "err", err)
		}
	}()
	if s.Directory != nil && s.directoryInterval > 0 {
		go s.Directory.Loop(loopCtx, s.directoryInterval)
	}
	go s.anchorLoop(loopCtx)
	go s.Seal.Run(loopCtx)
	if s.Trust != nil {
		go s.Trust.Run(loopCtx)
	}
	jobsDone := make(chan struct{})
	go func() {
		defer close(jobsDone)
		s.Jobs.Run(loopCtx)
	}()
	go func() {
		if s.tls != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for _, hs := range servers {
		errs = append(errs, hs.Shutdown(shutdown))
	}
	err := errors.Join(errs...)
	stopLoop()
	<-jobsDone // documents being sealed are finished and recorded
	if aerr := s.AnchorAudit(shutdown); aerr != nil {
		s.log.Warn("final audit anchor failed", "err", aerr)
	}
	// A last checkpoint so every seal answered is covered by a published tree head.
	if _, cerr := s.Evidence.Checkpoint(shutdown); cerr != nil {
		s.log.Warn("final checkpoint failed", "err", cerr)
	}
	return err
}

// httpServer serves h with the http section's timeouts.
func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.http.ReadHeaderTimeout,
		IdleTimeout:       s.http.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// ServeTLS adds HTTP/2 to a copy; a plain HTTP request on the TLS
		// port gets net/http's 400 "Client sent an HTTP request to an HTTPS
		// server" and the connection is closed.
		TLSConfig: s.tls,
	}
}

// anchorLoop anchors the audit trail's head every anchorInterval.
func (s *Server) anchorLoop(ctx context.Context) {
	t := time.NewTicker(s.anchorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.AnchorAudit(ctx); err != nil {
				s.log.Error("audit trail head not anchored in the evidence log", "err", err)
			}
		}
	}
}

// Close releases everything New opened, in reverse order.
func (s *Server) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}
