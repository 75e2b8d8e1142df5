package seal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
)

// SpoolPrefix begins the name of every temporary file the sealing and
// verification paths write, so a restart can remove what a crashed run
// left behind (RemoveSpool) and nothing else.
const SpoolPrefix = "sealgate-spool-"

// Codes of the temporary space's budget.
const (
	// CodeTempSpaceFull: the documents in flight fill the temporary space
	// (seal.maxTempSpace); retry after Retry-After.
	CodeTempSpaceFull fault.Code = "temp_space_full"
)

// NewSpoolBudget returns the budget of max bytes (0: unbounded) that
// spooled documents share; a document that alone exceeds it is
// document_too_large.
func NewSpoolBudget(max int64) *limit.Budget {
	return limit.NewBudget(max, func(tooLarge bool) *fault.Error {
		if tooLarge {
			return fault.New(fault.TooLarge, CodeDocumentTooLarge, "the document needs more temporary space than the %d bytes configured", max)
		}
		return fault.New(fault.Unavailable, CodeTempSpaceFull, "the temporary space for documents in progress is full; try again shortly")
	})
}

// spoolFile is a temporary file whose bytes count against a budget. It
// does not embed *os.File, so that io.Copy cannot bypass Write.
type spoolFile struct {
	f    *os.File
	held *limit.Held
}

// newSpool creates a spool file in dir; kind ("in", "sealed", "verify")
// goes into its name.
func newSpool(dir, kind string, b *limit.Budget) (*spoolFile, error) {
	f, err := os.CreateTemp(dir, SpoolPrefix+kind+"-*")
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &spoolFile{f: f, held: b.Writer(f)}, nil
}

// Write counts p against the budget, then writes it.
func (s *spoolFile) Write(p []byte) (int, error) { return s.held.Write(p) }

// refusal is the budget's error when a write was refused for lack of
// space; nil otherwise.
func (s *spoolFile) refusal() error { return s.held.Refused }

// remove closes and deletes the file and gives its bytes back.
func (s *spoolFile) remove() error {
	name := s.f.Name()
	err := s.f.Close()
	if rerr := os.Remove(name); err == nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	s.held.Release()
	return err
}

// RemoveSpool deletes the spool files in dir (default os.TempDir()) and
// returns how many it removed. Call it when a node starts serving: no
// request of this process is in flight yet, and on Linux a file another
// process still has open stays readable to it after removal.
func RemoveSpool(dir string) (int, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("seal: temporary directory: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), SpoolPrefix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// TempFile is a temporary file in the sealing path's TempDir whose bytes
// count against the spool budget, for a transport that needs random access
// to a request body (a ZIP archive's directory is at its end).
type TempFile struct{ s *spoolFile }

// NewTempFile creates a TempFile; kind goes into its name, after
// SpoolPrefix, so a restart removes what a crash left behind.
func (s *Service) NewTempFile(kind string) (*TempFile, error) {
	f, err := newSpool(s.opts.TempDir, kind, s.opts.Spool)
	if err != nil {
		return nil, err
	}
	return &TempFile{s: f}, nil
}

// Write counts p against the budget, then writes it.
func (t *TempFile) Write(p []byte) (int, error) { return t.s.Write(p) }

// ReadAt reads what was written.
func (t *TempFile) ReadAt(p []byte, off int64) (int, error) { return t.s.f.ReadAt(p, off) }

// Refused is the budget's error (temp_space_full, document_too_large) when
// a write was refused for lack of space; nil otherwise.
func (t *TempFile) Refused() error { return t.s.refusal() }

// Remove closes and deletes the file and gives its bytes back.
func (t *TempFile) Remove() error { return t.s.remove() }
