package soap

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"os"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/limit"
	"github.com/sealgate/sealgate/seal"
)

// mtomPackage is an MTOM/XOP request (multipart/related): the root part
// holding the envelope comes first, then the attachments, each streamed
// to a spool file as it arrives.
type mtomPackage struct {
	mr    *multipart.Reader
	lim   Limits
	dir   string
	spool *limit.Budget
	// parts maps a Content-ID (without <>) to its spooled attachment.
	parts map[string]*attachment
}

// attachment is one spooled MTOM part.
type attachment struct {
	f    *os.File
	held *limit.Held
	size int64
}

// openPackage reads an MTOM body up to its root part, which it returns.
func openPackage(body io.Reader, params map[string]string, lim Limits, dir string, spool *limit.Budget) (*mtomPackage, io.Reader, error) {
	if params["boundary"] == "" {
		return nil, nil, fault.New(fault.Invalid, CodeMTOMMalformed, "the multipart/related Content-Type has no boundary")
	}
	pkg := &mtomPackage{mr: multipart.NewReader(body, params["boundary"]), lim: lim, dir: dir, spool: spool, parts: map[string]*attachment{}}
	root, err := pkg.mr.NextPart()
	if err != nil {
		return nil, nil, mtomError(err, "its root part")
	}
	if start := params["start"]; start != "" && contentID(root.Header) != strings.Trim(start, "<>") {
		return nil, nil, fault.New(fault.Invalid, CodeMTOMMalformed, "the MTOM package's first part is not its start part %s: the envelope must come first", start)
	}
	if mt, _, _ := mime.ParseMediaType(root.Header.Get("Content-Type")); mt != "application/xop+xml" {
		return nil, nil, fault.New(fault.Invalid, CodeMTOMMalformed, "the MTOM root part is %q, not application/xop+xml", mt)
	}
	return pkg, &partReader{p: root}, nil
}

// partReader calls a broken MIME part malformed, not the envelope in it.
type partReader struct{ p *multipart.Part }

func (r *partReader) Read(b []byte) (int, error) {
	n, err := r.p.Read(b)
	if err != nil && err != io.EOF {
		return n, mtomError(err, "its root part")
	}
	return n, err
}

func contentID(h textproto.MIMEHeader) string {
	return strings.Trim(strings.TrimSpace(h.Get("Content-Id")), "<>")
}

// readAttachments spools every part after the root, under the limits on
// part count and size and the node's temporary space.
func (pkg *mtomPackage) readAttachments() error {
	for n := 1; ; n++ {
		part, err := pkg.mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return mtomError(err, "its parts")
		}
		if n >= pkg.lim.MaxParts {
			return fault.New(fault.TooLarge, CodeLimitExceeded, "the MTOM package has more than %d parts", pkg.lim.MaxParts)
		}
		id := contentID(part.Header)
		if id == "" {
			return fault.New(fault.Invalid, CodeMTOMMalformed, "MTOM part %d has no Content-ID", n+1)
		}
		if _, dup := pkg.parts[id]; dup {
			return fault.New(fault.Invalid, CodeMTOMMalformed, "MTOM parts %d and an earlier one share the Content-ID %q", n+1, id)
		}
		switch cte := strings.ToLower(part.Header.Get("Content-Transfer-Encoding")); cte {
		case "", "binary", "8bit", "7bit":
		default:
			return fault.New(fault.Invalid, CodeMTOMMalformed, "MTOM part %q has the Content-Transfer-Encoding %q; send it binary", id, cte)
		}
		a, err := pkg.spoolPart(part, id)
		if err != nil {
			return err
		}
		pkg.parts[id] = a
	}
}

func (pkg *mtomPackage) spoolPart(part *multipart.Part, id string) (*attachment, error) {
	f, err := os.CreateTemp(pkg.dir, seal.SpoolPrefix+"soap-*")
	if err != nil {
		return nil, fmt.Errorf("soap: %w", err)
	}
	a := &attachment{f: f, held: pkg.spool.Writer(f)}
	// Registered before it is filled, so close removes it on every failure.
	pkg.parts[id] = a
	a.size, err = io.Copy(a.held, &cappedReader{r: part, n: pkg.lim.MaxPartSize, what: "MTOM part " + id})
	switch {
	case a.held.Refused != nil:
		return nil, a.held.Refused
	case fault.As(err) != nil:
		return nil, err
	case err != nil:
		return nil, mtomError(err, "part "+id)
	}
	return a, nil
}

// attachment returns the part an xop:Include's href "cid:…" names.
func (pkg *mtomPackage) attachment(href string) (*attachment, error) {
	id, err := url.PathUnescape(strings.TrimPrefix(href, "cid:"))
	if err != nil {
		id = strings.TrimPrefix(href, "cid:")
	}
	if pkg != nil {
		if a, ok := pkg.parts[id]; ok {
			return a, nil
		}
	}
	return nil, fault.New(fault.Invalid, CodeMTOMMalformed, "xop:Include names the part %q, which the request does not have", id)
}

// close removes the spooled attachments.
func (pkg *mtomPackage) close() {
	if pkg == nil {
		return
	}
	for _, a := range pkg.parts {
		name := a.f.Name()
		a.f.Close()
		os.Remove(name)
		a.held.Release()
	}
}

// mtomError calls a package that cannot be read malformed, keeping the
// body's own faults (too slow, too large).
func mtomError(err error, where string) error {
	if fault.As(err) != nil {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fault.New(fault.Invalid, CodeMTOMMalformed, "the MTOM package ends early, in %s", where)
	}
	return fault.Wrap(err, fault.Invalid, CodeMTOMMalformed, "the MTOM package cannot be read at %s", where)
}

// mtomWriter writes an MTOM response: the envelope as the root part, then
// one attachment.
type mtomWriter struct {
	mw     *multipart.Writer
	suffix string
}

// Content-IDs of the response's parts.
const (
	rootID     = "root.message@sealgate"
	documentID = "document@sealgate"
)

func newMTOMWriter(w io.Writer) *mtomWriter {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary("MIMEBoundary_" + hex.EncodeToString(b))
	return &mtomWriter{mw: mw}
}

// contentType is the response's Content-Type for SOAP version v.
func (m *mtomWriter) contentType(v version) string {
	return mime.FormatMediaType("multipart/related", map[string]string{
		"type": "application/xop+xml", "start": "<" + rootID + ">", "start-info": v.mediaType(), "boundary": m.mw.Boundary(),
	})
}

func (m *mtomWriter) root(v version) (io.Writer, error) {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", mime.FormatMediaType("application/xop+xml", map[string]string{"charset": "UTF-8", "type": v.mediaType()}))
	h.Set("Content-ID", "<"+rootID+">")
	return m.mw.CreatePart(h)
}

func (m *mtomWriter) attachment(contentType string) (io.Writer, error) {
	h := textproto.MIMEHeader{}
	// No Content-Transfer-Encoding: HTTP does not use it (RFC 9110
	// Appendix), and zeep strips line breaks from both ends of a "binary"
	// part, which would cut a PDF's last newline.
	h.Set("Content-Type", contentType)
	h.Set("Content-ID", "<"+documentID+">")
	return m.mw.CreatePart(h)
}

func (m *mtomWriter) close() error { return m.mw.Close() }
