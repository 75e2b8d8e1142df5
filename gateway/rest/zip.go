package rest

import (
	"archive/zip"
	"errors"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
)

// Codes of ZIP bodies.
const (
	// CodeZipMalformed: the body is not a ZIP archive sealgate can read
	// (no central directory, a corrupt or lying entry, a bad checksum).
	CodeZipMalformed fault.Code = "zip_malformed"
	// CodeZipEntryInvalid: an entry's name is absolute, has a ".." element
	// or a backslash, or the entry is encrypted, a link, or compressed with
	// a method other than store and deflate.
	CodeZipEntryInvalid fault.Code = "zip_entry_invalid"
	// CodeZipTooLarge: the archive, its directory or its declared expanded
	// size exceeds the job's limits.
	CodeZipTooLarge fault.Code = "zip_too_large"
	// CodeZipRatioExceeded: an entry expands more than maxZipRatio-fold.
	CodeZipRatioExceeded fault.Code = "zip_ratio_exceeded"
)

const (
	// maxZipRatio bounds how many times an entry may expand: PDFs and
	// office files stay far below it, a zip bomb is far above.
	maxZipRatio = 100
	// zipRatioFloor exempts small entries from the ratio: a highly
	// repetitive 1 MiB file does no harm, and the expanded total is bounded
	// anyway.
	zipRatioFloor = 1 << 20
	// zipRecordBytes is the central directory allowed per entry: its fixed
	// 46 bytes, a name and the usual extra fields.
	zipRecordBytes = 512
)

// zipDocuments spools the ZIP body of r to a temporary file within the
// spool budget, checks every entry before anything is handed to the job
// (names, methods, count, declared sizes and ratios), and yields the
// files' entries in order, directories skipped. An archive's directory is
// at its end, so it needs random access: its local headers alone, read as
// a stream, may leave sizes out (data descriptors) or disagree with the
// directory. Entry names are the documents' names for the records only;
// they never become paths. remove deletes the temporary file; call it once
// the job is submitted.
func (a *REST) zipDocuments(r *http.Request) (docs iter.Seq2[seal.JobInput, error], remove func(), err error) {
	lim := a.Jobs.Limits()
	if r.ContentLength > lim.MaxTotalSize {
		return nil, nil, fault.New(fault.TooLarge, CodeZipTooLarge, "the ZIP archive's %d bytes exceed %d (jobs.maxTotalSize)", r.ContentLength, lim.MaxTotalSize)
	}
	tmp, err := a.Seal.NewTempFile("zip")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		if err := tmp.Remove(); err != nil {
			a.Log.Warn("temporary ZIP file not removed", "err", err)
		}
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	size, err := io.Copy(tmp, io.LimitReader(r.Body, lim.MaxTotalSize+1))
	switch {
	case tmp.Refused() != nil:
		return nil, nil, tmp.Refused()
	case fault.As(err) != nil:
		return nil, nil, err
	case err != nil:
		return nil, nil, fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "the ZIP body could not be read")
	case size > lim.MaxTotalSize:
		return nil, nil, fault.New(fault.TooLarge, CodeZipTooLarge, "the ZIP archive exceeds %d bytes (jobs.maxTotalSize)", lim.MaxTotalSize)
	}
	files, err := zipFiles(tmp, size, lim)
	if err != nil {
		return nil, nil, err
	}
	return func(yield func(seal.JobInput, error) bool) {
		for _, f := range files {
			rc, err := f.Open()
			if err != nil {
				yield(seal.JobInput{}, fault.Wrap(err, fault.Invalid, CodeZipMalformed, "ZIP entry %q could not be opened", f.Name))
				return
			}
			// Names without the UTF-8 flag are often in a DOS code page:
			// kept readable for the records rather than refused.
			name := strings.ToValidUTF8(f.Name, "_")
			more := yield(seal.JobInput{Name: name, Reader: &zipEntry{r: rc, name: name}}, nil)
			rc.Close()
			if !more {
				return
			}
		}
	}, cleanup, nil
}

// zipFiles reads the archive's directory, bounded so that an archive
// naming millions of entries is refused before they fill memory, and
// returns its files after checking each.
func zipFiles(ra io.ReaderAt, size int64, lim seal.JobsConfig) ([]*zip.File, error) {
	// The directory and the end records; the reads of the end record's
	// search (up to 65 KiB) count too.
	guard := &directoryGuard{r: ra, left: int64(2*lim.MaxDocuments)*zipRecordBytes + 128<<10}
	zr, err := zip.NewReader(guard, size)
	switch {
	case guard.left < 0:
		return nil, fault.New(fault.TooLarge, CodeZipTooLarge, "the ZIP archive's directory names more entries than a job may hold (%d, jobs.maxDocuments)", lim.MaxDocuments)
	case err != nil && !errors.Is(err, zip.ErrInsecurePath):
		return nil, fault.Wrap(err, fault.Invalid, CodeZipMalformed, "the body is not a readable ZIP archive")
	}
	guard.off = true
	var files []*zip.File
	var total uint64
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		if err := checkZipEntry(f); err != nil {
			return nil, err
		}
		if len(files) == lim.MaxDocuments {
			return nil, fault.New(fault.TooLarge, seal.CodeJobTooLarge, "the ZIP archive holds more than %d documents (jobs.maxDocuments)", lim.MaxDocuments)
		}
		if total += f.UncompressedSize64; total > uint64(lim.MaxTotalSize) {
			return nil, fault.New(fault.TooLarge, CodeZipTooLarge, "the ZIP archive's entries expand to more than %d bytes (jobs.maxTotalSize)", lim.MaxTotalSize)
		}
		if f.UncompressedSize64 > zipRatioFloor && f.UncompressedSize64 > maxZipRatio*f.CompressedSize64 {
			return nil, fault.New(fault.Invalid, CodeZipRatioExceeded, "ZIP entry %q expands from %d to %d bytes, more than %d-fold", f.Name, f.CompressedSize64, f.UncompressedSize64, maxZipRatio)
		}
		files = append(files, f)
	}
	return files, nil
}

// checkZipEntry refuses an entry whose name could mean a path outside a
// folder, were it ever extracted, and entries sealgate cannot read as a
// plain document.
func checkZipEntry(f *zip.File) error {
	name := f.Name
	invalid := func(why string) error {
		return fault.New(fault.Invalid, CodeZipEntryInvalid, "ZIP entry %q: %s", strings.ToValidUTF8(name, "_"), why)
	}
	switch {
	case name == "":
		return invalid("the name is empty")
	case strings.Contains(name, `\`):
		return invalid("the name has a backslash")
	case strings.HasPrefix(name, "/"):
		return invalid("the name is an absolute path")
	case len(name) > 1 && name[1] == ':' && (name[0]|0x20 >= 'a' && name[0]|0x20 <= 'z'):
		return invalid("the name begins with a drive letter")
	case !f.Mode().IsRegular():
		return invalid("not a regular file (a link or a device)")
	case f.Flags&0x1 != 0:
		return invalid("the entry is encrypted")
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return invalid("compression method not supported (store and deflate are)")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return invalid(`the name has a ".." element`)
		}
	}
	return nil
}

// directoryGuard fails reads beyond left bytes while zip.NewReader reads
// the archive's directory; off lifts the bound for the entries' data.
type directoryGuard struct {
	r    io.ReaderAt
	left int64
	off  bool
}

func (g *directoryGuard) ReadAt(p []byte, off int64) (int, error) {
	if !g.off {
		if g.left -= int64(len(p)); g.left < 0 {
			return 0, errors.New("zip directory too large")
		}
	}
	return g.r.ReadAt(p, off)
}

// zipEntry reads one entry; archive/zip already refuses an entry that
// expands beyond its declared size or fails its checksum, and such an
// error becomes zip_malformed naming the entry.
type zipEntry struct {
	r    io.Reader
	name string
}

func (e *zipEntry) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = fault.Wrap(err, fault.Invalid, CodeZipMalformed, "ZIP entry %q could not be read: it is corrupt or larger than it declares", e.name)
	}
	return n, err
}
