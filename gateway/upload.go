package gateway

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path/filepath"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
)

// maxFieldSize bounds a multipart form field other than those given limits.
const maxFieldSize = 4 << 10

// upload is a request body that carries one document: the raw body, or the
// multipart part "document", with the form fields sent before it.
type upload struct {
	document io.Reader
	// name is the multipart part's file name ("" for a raw body).
	name string
	// size is the document's length, -1 when not announced.
	size   int64
	fields map[string][]byte
}

// readUpload finds the document in r. Multipart fields before the part
// "document" are read whole, each up to its entry in limits (default 4 KiB);
// parts after the document are never read, since the document is streamed.
func readUpload(r *http.Request, limits map[string]int) (*upload, error) {
	u := &upload{document: r.Body, size: r.ContentLength, fields: map[string][]byte{}}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return u, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read")
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, fault.New(fault.Invalid, seal.CodeDocumentEmpty, "the multipart body has no part named \"document\"")
		}
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read")
		}
		name := part.FormName()
		if name == "document" {
			u.document, u.name, u.size = part, filepath.Base(part.FileName()), -1
			return u, nil
		}
		limit, ok := limits[name]
		if !ok {
			limit = maxFieldSize
		}
		v, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
		if err != nil {
			return nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart field %q could not be read", name)
		}
		if len(v) > limit {
			return nil, fault.New(fault.Invalid, CodeBadRequest, "the multipart field %q is larger than %s", name, sizeString(limit))
		}
		u.fields[name] = v
	}
}

func sizeString(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
