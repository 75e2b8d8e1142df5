package seal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

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

// memSpoolMax is how much of a spooled document stays in memory before it
// moves to a temporary file. Creating and removing two files per seal of a
// small PDF cost more than sealing it (ext4's inode allocation among freshly
// deleted files took 40 % of the CPU under PAdES load); documents in flight
// are bounded by the admission queue, so this bounds their memory too.
const memSpoolMax = 256 << 10

// spoolBuffers recycles the in-memory spools (cap memSpoolMax).
var spoolBuffers = sync.Pool{New: func() any { b := make([]byte, 0, memSpoolMax); return &b }}

// spoolFile holds a document (or a sealed output) while it is worked on:
// in memory up to memSpoolMax, then in a temporary file. Its bytes count
// against a budget either way. Write goes through the budget, so io.Copy
// cannot bypass it.
type spoolFile struct {
	dir, kind string
	memMax    int
	mem       *[]byte  // while in memory
	f         *os.File // once in a file
	size      int64
	held      *limit.Held
	// failed is why the temporary file could not be made or written.
	failed error
}

// newSpool returns an empty spool that keeps up to memMax bytes (at most
// memSpoolMax) in memory; its file, if it needs one, goes in dir with kind
// ("in", "sealed", "verify") in its name.
func newSpool(dir, kind string, memMax int, b *limit.Budget) (*spoolFile, error) {
	s := &spoolFile{dir: dir, kind: kind, memMax: min(memMax, memSpoolMax)}
	if s.memMax > 0 {
		s.mem = spoolBuffers.Get().(*[]byte)
	} else if err := s.toFile(); err != nil {
		return nil, err
	}
	s.held = b.Writer(spoolSink{s})
	return s, nil
}

// Write counts p against the budget, then stores it.
func (s *spoolFile) Write(p []byte) (int, error) { return s.held.Write(p) }

// spoolSink is where the budget's writer stores the bytes it let through.
type spoolSink struct{ s *spoolFile }

func (k spoolSink) Write(p []byte) (int, error) {
	s := k.s
	if s.f == nil && len(*s.mem)+len(p) <= s.memMax {
		*s.mem = append(*s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		if err := s.toFile(); err != nil {
			return 0, err
		}
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err != nil {
		s.failed = fmt.Errorf("seal: temporary file: %w", err)
	}
	return n, err
}

// toFile moves the bytes held in memory to a new temporary file.
func (s *spoolFile) toFile() error {
	f, err := os.CreateTemp(s.dir, SpoolPrefix+s.kind+"-*")
	if err == nil && s.mem != nil {
		if _, err = f.Write(*s.mem); err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	if err != nil {
		s.failed = fmt.Errorf("seal: temporary file: %w", err)
		return s.failed
	}
	s.f = f
	s.release()
	return nil
}

// ReadAt reads the spooled bytes.
func (s *spoolFile) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(*s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, (*s.mem)[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo writes everything spooled to w.
func (s *spoolFile) WriteTo(w io.Writer) (int64, error) {
	if s.f == nil {
		n, err := w.Write(*s.mem)
		return int64(n), err
	}
	return io.Copy(w, io.NewSectionReader(s.f, 0, s.size))
}

// refusal is why a write was refused: the budget had no space left, or the
// temporary file could not be written; nil otherwise.
func (s *spoolFile) refusal() error {
	if s.held.Refused != nil {
		return s.held.Refused
	}
	return s.failed
}

// release gives the memory buffer back for reuse.
func (s *spoolFile) release() {
	if s.mem != nil {
		*s.mem = (*s.mem)[:0]
		spoolBuffers.Put(s.mem)
		s.mem = nil
	}
}

// remove deletes the spool (its file, if any) and gives its bytes back.
func (s *spoolFile) remove() error {
	var err error
	if s.f != nil {
		name := s.f.Name()
		err = s.f.Close()
		if rerr := os.Remove(name); err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
		s.f = nil
	}
	s.release()
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
	f, err := newSpool(s.opts.TempDir, kind, 0, s.opts.Spool)
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
