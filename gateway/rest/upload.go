package rest

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
)

// upload is a request body that carries one document: the raw body, or the
// multipart part "document", with the form fields sent before it.
type upload struct {
	document io.Reader
	// name is the multipart part's file name ("" for a raw body).
	name string
	// size is the document's length, -1 when not announced.
	size   int64
	fields url.Values
}

// readUpload finds the document in r. Multipart fields before the part
// "document" are read whole (readFields). The document is streamed, so what
// follows it is found only at its end: a later part makes reading the
// document fail with an error naming it, before anything is signed.
func readUpload(r *http.Request, fields map[string]int) (*upload, error) {
	u := &upload{document: r.Body, size: r.ContentLength, fields: url.Values{}}
	if !isMultipart(r) {
		return u, nil
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read")
	}
	var part *multipart.Part
	if u.fields, part, err = readFields(mr, fields); err != nil {
		return nil, err
	}
	if part == nil {
		return nil, fault.New(fault.Invalid, seal.CodeDocumentEmpty, "the multipart body has no part named \"document\"")
	}
	u.document, u.name, u.size = &documentPart{part: part, body: mr}, filepath.Base(part.FileName()), -1
	return u, nil
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// readFields reads the multipart fields up to the first part "document",
// which it returns (nil when the body ends first). fields names each field
// the request takes with its size limit; any other part is refused by name,
// as is a field given twice.
func readFields(mr *multipart.Reader, fields map[string]int) (url.Values, *multipart.Part, error) {
	values := url.Values{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return values, nil, nil
		}
		if err != nil {
			return nil, nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read")
		}
		name := part.FormName()
		if name == "document" {
			return values, part, nil
		}
		limit, ok := fields[name]
		if !ok {
			return nil, nil, fault.New(fault.Invalid, CodeBadRequest, "the multipart part %q is not one this request takes: the fields are %s, then the part \"document\"",
				name, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		}
		if values.Has(name) {
			return nil, nil, fault.New(fault.Invalid, CodeBadRequest, "the multipart field %q is given twice: give it once", name)
		}
		v, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
		if err != nil {
			return nil, nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart field %q could not be read", name)
		}
		if len(v) > limit {
			return nil, nil, fault.New(fault.Invalid, CodeBadRequest, "%s: longer than the limit of %s", name, sizeString(limit))
		}
		values.Set(name, string(v))
	}
}

// documentPart reads the part "document" and, at its end, makes sure no
// part follows: an option after the document would come too late to apply,
// and a second document would go unsealed.
type documentPart struct {
	part *multipart.Part
	body *multipart.Reader
	// end is what every read returns once the part is read: io.EOF, or why
	// the body is wrong after the document.
	end error
}

func (d *documentPart) Read(p []byte) (int, error) {
	if d.end != nil {
		return 0, d.end
	}
	n, err := d.part.Read(p)
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	next, err := d.body.NextPart()
	switch {
	case err == io.EOF:
		d.end = io.EOF
	case err != nil:
		d.end = fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read after the document")
	case next.FormName() == "document":
		d.end = fault.New(fault.Invalid, CodeBadRequest, "the multipart body has a second part \"document\": send one document per request")
	default:
		d.end = fault.New(fault.Invalid, CodeBadRequest, "the multipart part %q comes after the document: fields must come before the part \"document\"", next.FormName())
	}
	return n, d.end
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
