// Package seal is sealgate's one sealing path: request → authorize → pick the
// seal → sign → record evidence and the seal event → result. Every transport
// (REST, SOAP, hot folder, portal, CLI) is a thin adapter onto Service.
package seal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/signing"
	"github.com/sealgate/sealgate/signing/cms"
	"github.com/sealgate/sealgate/signing/pades"
	"github.com/sealgate/sealgate/signing/stamp"
	"github.com/sealgate/sealgate/store"
)

// Format is the kind of seal produced.
type Format string

// Formats.
const (
	// PAdES embeds the seal in the PDF (ETSI EN 319 142-1).
	PAdES Format = "pades"
	// CAdES produces a detached CMS signature (ETSI EN 319 122-1).
	CAdES Format = "cades"
)

// Level is the ETSI baseline level.
type Level string

// Levels.
const (
	LevelBB   Level = "B-B"
	LevelBT   Level = "B-T"
	LevelBLT  Level = "B-LT"
	LevelBLTA Level = "B-LTA"
)

// Error codes of the sealing path (the signing and access packages add theirs).
const (
	CodeFormatUnsupported fault.Code = "format_unsupported"
	CodeLevelUnsupported  fault.Code = "level_unsupported"
	CodeSealRequired      fault.Code = "seal_required"
	CodeDocumentEmpty     fault.Code = cms.CodeDocumentEmpty
	CodeDocumentTooLarge  fault.Code = "document_too_large"
	CodeInputUnreadable   fault.Code = signing.CodeInputUnreadable
)

// Keys gives a seal's signing key; signing.Pool implements it.
type Keys interface {
	Key(sealID string) (signing.Key, error)
}

// Authorizer is the one authorization decision point and keeper of the audit
// trail; access.Service implements it.
type Authorizer interface {
	Decide(ctx context.Context, p access.Principal, a access.Action) (access.Decision, error)
	// AuditTx appends to the audit trail inside a store.DB.Write transaction.
	AuditTx(ctx context.Context, tx *sql.Tx, e access.Event) error
	// Approve checks a fresh TOTP code of a user and returns p carrying the
	// approval (a job's per-batch approval).
	Approve(ctx context.Context, p access.Principal, code string) (access.Principal, error)
}

// Recorder appends evidence of a seal; evidence.Log implements it. Append
// returns once the entry is durable.
type Recorder interface {
	Append(ctx context.Context, e evidence.Entry) (uint64, error)
	// PrincipalHash is the pseudonym recorded instead of the caller's identity.
	PrincipalHash(id string) evidence.SHA256
	// Lookup finds the entries naming a document digest (a job's recovery
	// looks for the leaf of a result kept before a crash).
	Lookup(ctx context.Context, h evidence.SHA256) ([]evidence.Leaf, error)
}

// Options configure a Service.
type Options struct {
	DB         *store.DB
	Keys       Keys
	Authorizer Authorizer
	Evidence   Recorder
	// Timestamper is the TSA used for B-T and higher; nil limits levels to B-B.
	Timestamper signing.Timestamper
	// DefaultSeal is used when a request names none.
	DefaultSeal string
	// TempDir holds spooled inputs and outputs; default os.TempDir().
	TempDir string
	// MaxDocumentSize bounds an input; default 100 MiB.
	MaxDocumentSize int64
	// Spool bounds the bytes of spooled inputs and outputs in TempDir
	// (NewSpoolBudget); nil is unbounded.
	Spool *limit.Budget
	// Observe, when set, is told the outcome of every seal request (for
	// metrics): the format, "sealed" or "failed", the error code, the time taken.
	Observe func(f Format, outcome string, code fault.Code, took time.Duration)
	// Revocation tells B-LT where to find revocation data.
	Revocation pades.RevocationOptions
	// IdempotencyDir keeps the outputs of requests with an idempotency key
	// for their replays; without it such requests fail.
	IdempotencyDir string
	// IdempotencyWindow is how long the answer to an idempotency key is
	// kept; default DefaultIdempotencyWindow.
	IdempotencyWindow time.Duration
	// Stamps is the look of visible stamps by seal id; the entry "" is for
	// seals not named. A request that brings its own stamp options keeps them.
	Stamps map[string]stamp.Options
	// Queue bounds the seals in progress and waiting, per seal.
	Queue QueueSettings
	Log   *slog.Logger
}

// Service seals documents. It is safe for concurrent use.
type Service struct {
	opts  Options
	log   *slog.Logger
	admit *admission
}

// New returns a Service and applies its schema migrations.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.DB == nil || opts.Keys == nil || opts.Authorizer == nil || opts.Evidence == nil {
		return nil, errors.New("seal: DB, Keys, Authorizer and Evidence are required")
	}
	if opts.MaxDocumentSize == 0 {
		opts.MaxDocumentSize = 100 << 20
	}
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.IdempotencyWindow <= 0 {
		opts.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if opts.IdempotencyDir != "" {
		if err := os.MkdirAll(opts.IdempotencyDir, 0o700); err != nil {
			return nil, fmt.Errorf("seal: idempotency directory: %w", err)
		}
	}
	if err := opts.DB.Migrate(ctx, "seal", migrations); err != nil {
		return nil, err
	}
	return &Service{opts: opts, log: opts.Log, admit: newAdmission(opts.Queue, opts.Keys)}, nil
}

// Request asks for one document to be sealed.
type Request struct {
	Principal access.Principal
	// Seal is the seal id; empty means the configured default seal.
	Seal   string
	Format Format
	// Level defaults to B-B, or B-T when a TSA is configured.
	Level Level
	// Document is read once. A PDF for PAdES is spooled to a temporary file
	// unless Document is already an io.ReaderAt with a known Size.
	Document io.Reader
	// Size is the document size when known (-1 or 0 when not).
	Size int64
	// Name is the document's file name, for the event record only.
	Name string
	// PDF holds placement and stamp options for PAdES.
	PDF pades.Options
	// BatchSize is the number of documents in the batch this request belongs to (≥1).
	BatchSize int
	// IdempotencyKey, when set, makes the request idempotent for its
	// principal: a retry with the same key, options and document within the
	// idempotency window gets the first request's result (Replayed) and
	// seals nothing; the same key with another request is refused with
	// idempotency_key_reused, and while the first is still at work with
	// idempotency_key_in_progress. CheckIdempotencyKey gives its syntax.
	IdempotencyKey string

	// claim is the idempotency key this request holds while it is sealed.
	claim *idemClaim
}

// Result is a sealed document. Close it to free its temporary file.
type Result struct {
	// EventID identifies the seal event.
	EventID string
	Seal    string
	Format  Format
	Level   Level
	// OriginalSHA256 and SealedSHA256 are the digests of the input and of
	// the output (the sealed PDF, or the .p7s for CAdES).
	OriginalSHA256 []byte
	SealedSHA256   []byte
	// EvidenceIndex is the leaf index of the evidence entry.
	EvidenceIndex uint64
	// Rule is the access rule that allowed the seal.
	Rule string
	// Card is the label of the card (token) that signed.
	Card string
	// ContentType is the MIME type of the output.
	ContentType string
	// Size is the output's size in bytes.
	Size int64
	// Time is when the seal was made.
	Time time.Time
	// RevocationUnavailable names the certificates (B-LT and B-LTA) for
	// which no OCSP response or CRL could be embedded: a validator will
	// have to find that data itself.
	RevocationUnavailable []string
	// Replayed reports a stored result: the answer to an earlier request
	// with the same idempotency key.
	Replayed bool

	data   []byte     // CAdES output
	file   *spoolFile // PAdES output
	stored *os.File   // a job's result, kept in its directory
}

// WriteTo writes the sealed output (the PDF, or the detached signature).
func (r *Result) WriteTo(w io.Writer) (int64, error) {
	switch {
	case r.file != nil:
		return r.file.WriteTo(w)
	case r.stored != nil:
		if _, err := r.stored.Seek(0, io.SeekStart); err != nil {
			return 0, err
		}
		return io.Copy(w, r.stored)
	}
	n, err := w.Write(r.data)
	return int64(n), err
}

// Close releases the result's temporary file (a job's result stays stored).
func (r *Result) Close() error {
	if r.stored != nil {
		err := r.stored.Close()
		r.stored = nil
		return err
	}
	if r.file == nil {
		return nil
	}
	err := r.file.remove()
	r.file = nil
	return err
}

// Load reports the single seals of sealID holding a turn (being sealed,
// or their documents still arriving) and those waiting for one (seal.queue).
func (s *Service) Load(sealID string) (inProgress, waiting int) {
	return s.admit.load(sealID)
}

// Seal seals one document. Nothing is recorded as sealed unless the output
// exists and its evidence entry is durable; every failure after the request
// was understood is recorded as a failed seal event with its code.
func (s *Service) Seal(ctx context.Context, req Request) (*Result, error) {
	return s.sealOne(ctx, req, nil, nil)
}

// sealOne is the one sealing path, for a request on its own (doc nil) and
// for a job's document. A job's document was authorized with its job; its
// output is kept in the job's directory before its evidence is appended, and
// its seal event names it, so that a crash at any point leaves it
// recognisably sealed or not (see Jobs.settle). A failure that may pass
// (a card or TSA unavailable) is not recorded for a job's document: it is
// tried again. key signs, when given (a job's batch of the seal's key);
// nil is the seal's key from Keys.
func (s *Service) sealOne(ctx context.Context, req Request, doc *jobDoc, key signing.Key) (_ *Result, err error) {
	started := time.Now()
	req, err = s.normalize(req)
	if err != nil {
		s.observe(req.Format, "failed", fault.CodeOf(err), started)
		return nil, err
	}
	// A seal refused for want of a turn did no work and, like one refused
	// for its options, leaves no event: an overload costs no writes. A
	// job's documents need no turn: the job's workers are bounded already.
	if doc == nil {
		leave, err := s.admit.enter(ctx, req.Seal)
		if err != nil {
			s.observe(req.Format, "failed", fault.CodeOf(err), started)
			return nil, err
		}
		defer leave()
	}
	var res *Result
	if req.IdempotencyKey != "" && doc == nil {
		if res, err = s.claimRequest(ctx, &req); res != nil {
			s.log.Info("idempotent seal replayed", "event", res.EventID, "principal", req.Principal.Name)
			return res, nil
		}
		if c := req.claim; c != nil {
			defer func() {
				c.in.remove()
				if err != nil {
					s.settleClaim(context.WithoutCancel(ctx), c)
				}
			}()
		}
	}
	if err == nil {
		res, err = s.seal(ctx, req, doc, key)
	}
	ev := event{req: req, started: started, doc: doc}
	if err != nil {
		if doc != nil && transient(err) {
			return nil, err
		}
		ev.code = string(fault.CodeOf(err))
		if e := fault.As(err); e != nil && e.Kind != fault.Internal {
			ev.msg = e.Msg
		}
		if rerr := s.record(context.WithoutCancel(ctx), &ev, nil); rerr != nil {
			s.log.Error("seal event not recorded", "err", rerr)
		}
		s.observe(req.Format, "failed", fault.Code(ev.code), started)
		s.log.Info("seal refused", "principal", req.Principal.Name, "seal", req.Seal, "format", req.Format, "code", ev.code)
		return nil, err
	}
	if err := s.record(ctx, &ev, res); err != nil {
		res.Close()
		return nil, err
	}
	res.EventID = ev.id
	s.observe(req.Format, "sealed", "", started)
	s.log.Info("sealed", "event", ev.id, "principal", req.Principal.Name, "seal", req.Seal, "format", req.Format,
		"level", res.Level, "card", res.Card, "leaf", res.EvidenceIndex, "ms", time.Since(started).Milliseconds())
	return res, nil
}

// transient reports whether err may pass by itself: a card, the TSA or the
// evidence log unavailable, or the work interrupted.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	e := fault.As(err)
	return e != nil && e.Kind == fault.Unavailable
}

func (s *Service) observe(f Format, outcome string, code fault.Code, started time.Time) {
	if s.opts.Observe != nil {
		s.opts.Observe(f, outcome, code, time.Since(started))
	}
}

func (s *Service) normalize(req Request) (Request, error) {
	req, err := s.normalizeOptions(req)
	if err != nil {
		return req, err
	}
	if req.Document == nil {
		return req, fault.New(fault.Invalid, CodeDocumentEmpty, "no document given")
	}
	if req.Size > s.opts.MaxDocumentSize {
		return req, fault.New(fault.TooLarge, CodeDocumentTooLarge, "document of %d bytes exceeds the limit of %d bytes", req.Size, s.opts.MaxDocumentSize)
	}
	if req.BatchSize < 1 {
		req.BatchSize = 1
	}
	return req, nil
}

// normalizeOptions checks req's options and fills in the default seal,
// format and level: all of a request but its document.
func (s *Service) normalizeOptions(req Request) (Request, error) {
	if err := req.CheckOptions(); err != nil {
		return req, err
	}
	if req.Seal == "" {
		if s.opts.DefaultSeal == "" {
			return req, fault.New(fault.Invalid, CodeSealRequired, "no seal named and no default seal configured")
		}
		req.Seal = s.opts.DefaultSeal
	}
	switch req.Format {
	case "":
		req.Format = PAdES
	case PAdES, CAdES:
	default:
		return req, fault.New(fault.Invalid, CodeFormatUnsupported, "format %q is not supported: use pades or cades", req.Format)
	}
	if req.Level == "" {
		req.Level = LevelBB
		if s.opts.Timestamper != nil {
			req.Level = LevelBT
		}
	}
	switch req.Level {
	case LevelBB, LevelBT:
	case LevelBLT, LevelBLTA:
		if req.Format == CAdES {
			return req, fault.New(fault.Invalid, CodeLevelUnsupported, "level %s is offered for pades only; cades supports B-B and B-T", req.Level)
		}
	default:
		return req, fault.New(fault.Invalid, CodeLevelUnsupported, "level %q is not one of B-B, B-T, B-LT, B-LTA", req.Level)
	}
	if req.Level != LevelBB && s.opts.Timestamper == nil {
		return req, fault.New(fault.Invalid, CodeLevelUnsupported, "level %s needs a timestamp authority and none is configured", req.Level)
	}
	return req, nil
}

// action is what Decide is asked for req.
func (req Request) action() access.Action {
	return access.Action{
		Operation: access.OpSeal,
		Seal:      req.Seal,
		Format:    string(req.Format),
		Level:     string(req.Level),
		Documents: req.BatchSize,
	}
}

func (s *Service) seal(ctx context.Context, req Request, job *jobDoc, key signing.Key) (*Result, error) {
	var rule string
	var err error
	if job == nil {
		dec, err := s.opts.Authorizer.Decide(ctx, req.Principal, req.action())
		if err != nil {
			return nil, err
		}
		rule = dec.Rule
	} else {
		rule = job.rule()
	}
	if key == nil {
		if key, err = s.opts.Keys.Key(req.Seal); err != nil {
			return nil, err
		}
	}
	ctx, signedBy := signing.WithSignedBy(ctx)
	var ts signing.Timestamper
	if req.Level != LevelBB {
		ts = s.opts.Timestamper
	}
	doc := newLimitedReader(req.Document, s.opts.MaxDocumentSize)
	var res *Result
	switch req.Format {
	case CAdES:
		res, err = s.cades(ctx, key, doc, ts)
	case PAdES:
		res, err = s.pades(ctx, key, req, doc, ts)
	}
	if err != nil {
		return nil, doc.cause(err)
	}
	res.Seal, res.Format, res.Rule, res.Card = req.Seal, req.Format, rule, signedBy.Card
	if res.Level == "" {
		res.Level = req.Level
	}
	// A job's result, and an idempotent request's, is kept durably before
	// its evidence is appended, so that a crash cannot lose a recorded seal.
	kept := ""
	switch {
	case job != nil:
		kept = job.outPath()
	case req.claim != nil:
		kept = req.claim.outPath()
	}
	if kept != "" {
		if err := keepResult(kept, res); err != nil {
			res.Close()
			return nil, err
		}
	}
	idx, err := s.opts.Evidence.Append(ctx, evidence.Entry{
		Version:          evidence.EntryVersion,
		SealedSHA256:     evidence.SHA256(res.SealedSHA256),
		OriginalSHA256:   evidence.SHA256(res.OriginalSHA256),
		SealID:           req.Seal,
		SignerCertSHA256: certHash(key),
		Format:           string(req.Format),
		Level:            string(res.Level),
		Time:             res.Time,
		PrincipalHash:    s.opts.Evidence.PrincipalHash(string(req.Principal.Kind) + ":" + strconv.FormatInt(req.Principal.ID, 10)),
	})
	if err != nil {
		res.Close()
		return nil, fmt.Errorf("seal: record evidence: %w", err)
	}
	res.EvidenceIndex = idx
	return res, nil
}

func (s *Service) cades(ctx context.Context, key signing.Key, doc io.Reader, ts signing.Timestamper) (*Result, error) {
	now := time.Now().UTC()
	out, err := cms.CAdES(ctx, key, doc, cms.CAdESOptions{SigningTime: now, Timestamper: ts})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(out.Signature)
	return &Result{
		Level:          Level(out.Level),
		OriginalSHA256: out.SHA256,
		SealedSHA256:   sum[:],
		ContentType:    contentType(CAdES),
		Size:           int64(len(out.Signature)),
		Time:           now,
		data:           out.Signature,
	}, nil
}

func (s *Service) pades(ctx context.Context, key signing.Key, req Request, doc *limitedReader, ts signing.Timestamper) (*Result, error) {
	in, size, cleanup, err := s.spool(doc, req)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if size == 0 {
		return nil, fault.New(fault.Invalid, CodeDocumentEmpty, "the document is empty")
	}
	out, err := newSpool(s.opts.TempDir, "sealed", memSpoolMax, s.opts.Spool)
	if err != nil {
		return nil, err
	}
	res := &Result{ContentType: contentType(PAdES), Time: time.Now().UTC(), file: out}
	opts := req.PDF
	opts.Level = signing.Level(req.Level)
	opts.Timestamper = ts
	opts.Time = res.Time
	opts.Revocation = s.opts.Revocation
	if st := opts.Stamp; st.Logo == nil && st.LogoPosition == "" && st.FontSize == 0 {
		var ok bool
		if opts.Stamp, ok = s.opts.Stamps[req.Seal]; !ok {
			opts.Stamp = s.opts.Stamps[""]
		}
	}
	pr, err := pades.Seal(ctx, key, in, size, out, opts)
	if err != nil {
		res.Close()
		if refused := out.refusal(); refused != nil {
			return nil, refused
		}
		return nil, err
	}
	res.OriginalSHA256 = pr.OriginalSHA256
	res.SealedSHA256 = pr.SHA256
	res.Size = pr.Size
	res.Level = Level(pr.Level)
	res.RevocationUnavailable = pr.RevocationUnavailable
	if len(pr.RevocationUnavailable) > 0 {
		s.log.Info("sealed without revocation data for some certificates", "seal", req.Seal, "level", pr.Level, "certificates", pr.RevocationUnavailable)
	}
	return res, nil
}

// spool gives random access to the document: a file the caller passed is
// read in place, anything else is copied to a temporary file.
func (s *Service) spool(doc *limitedReader, req Request) (io.ReaderAt, int64, func(), error) {
	if ra, ok := req.Document.(io.ReaderAt); ok && req.Size > 0 {
		return ra, req.Size, func() {}, nil
	}
	f, n, _, err := s.spoolCopy(doc, false)
	if err != nil {
		return nil, 0, nil, err
	}
	return f, n, func() { f.remove() }, nil
}

// spoolCopy copies doc to a new spool, and returns it with its size and,
// when digest is set, its SHA-256.
func (s *Service) spoolCopy(doc *limitedReader, digest bool) (*spoolFile, int64, []byte, error) {
	f, err := newSpool(s.opts.TempDir, "in", memSpoolMax, s.opts.Spool)
	if err != nil {
		return nil, 0, nil, err
	}
	var w io.Writer = f
	h := sha256.New()
	if digest {
		w = io.MultiWriter(f, h)
	}
	n, err := io.Copy(w, doc)
	if err != nil {
		f.remove()
		return nil, 0, nil, spoolError(err, f, doc)
	}
	var sum []byte
	if digest {
		sum = h.Sum(nil)
	}
	return f, n, sum, nil
}

// contentType is the MIME type of a format's output.
func contentType(f Format) string {
	if f == CAdES {
		return "application/pkcs7-signature"
	}
	return "application/pdf"
}

func certHash(k signing.Key) evidence.SHA256 {
	chain := k.Chain()
	if len(chain) == 0 {
		return evidence.SHA256{}
	}
	return sha256.Sum256(chain[0].Raw)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// spoolError says why copying doc into f failed: the document was too
// large, the temporary space was full, or the input could not be read.
func spoolError(err error, f *spoolFile, doc *limitedReader) error {
	if cause := doc.cause(err); cause != err {
		return cause
	}
	if refused := f.refusal(); refused != nil {
		return refused
	}
	return fault.Wrap(err, fault.Invalid, CodeInputUnreadable, "the document could not be read")
}

// limitedReader fails a read past n bytes, so an oversized upload is refused
// instead of filling the disk. It also keeps a coded error of the reader it
// wraps (a transport's, such as a multipart body that goes on after the
// document), so that error reaches the caller rather than a generic one.
type limitedReader struct {
	r        io.Reader
	n        int64
	limit    int64
	exceeded bool
	failed   *fault.Error
}

// cause is the error to report for err, which reading through l led to.
func (l *limitedReader) cause(err error) error {
	switch {
	case l.exceeded:
		return fault.New(fault.TooLarge, CodeDocumentTooLarge, "document exceeds the limit of %d bytes", l.limit)
	case l.failed != nil:
		return l.failed
	}
	return err
}

func newLimitedReader(r io.Reader, limit int64) *limitedReader {
	return &limitedReader{r: r, n: limit, limit: limit}
}

func (l *limitedReader) Read(p []byte) (int, error) {
	k, err := l.read(p)
	if e := fault.As(err); e != nil && l.failed == nil {
		l.failed = e
	}
	return k, err
}

func (l *limitedReader) read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			l.exceeded = true
			return 0, errors.New("document too large")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}
