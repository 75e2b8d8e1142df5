package rest

import (
	"archive/zip"
	"fmt"
	"io"
	"iter"
	"maps"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/seal"
)

// CodeUnsupportedMediaType: the body's Content-Type is not one the route
// takes.
const CodeUnsupportedMediaType fault.Code = "unsupported_media_type"

// maxTOTPLength bounds the totp field: a TOTP code has 6 to 8 digits.
const maxTOTPLength = 64

// jobFields are the multipart fields POST /jobs takes: the seal options
// and totp, the code that approves the whole job.
var jobFields = func() map[string]int {
	m := maps.Clone(sealFields)
	m["totp"] = maxTOTPLength
	return m
}()

// postJob submits a batch: multipart with the options first and one or
// more parts "document", or a ZIP archive with the options in the query.
// It answers 202 once the job and its documents are durable.
func (a *REST) postJob(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	jr, done, err := a.jobRequest(r, p)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	defer done()
	st, err := a.Jobs.Submit(r.Context(), jr)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	writeJobAccepted(w, st)
}

// authenticate returns r's caller, or answers the refusal.
func (a *REST) authenticate(w http.ResponseWriter, r *http.Request) (access.Principal, bool) {
	p, err := a.Auth.Authenticate(r)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return p, false
	}
	return p, true
}

// jobRequest turns r into the job p asks for: its options (query, and for
// multipart the fields before the first document), its approval code, and
// its documents streamed from the body. done frees what reading the body
// holds (a ZIP's temporary file); call it once the job is submitted.
func (a *REST) jobRequest(r *http.Request, p access.Principal) (seal.JobRequest, func(), error) {
	key, err := idempotencyKey(r)
	if err != nil {
		return seal.JobRequest{}, nil, err
	}
	jr := seal.JobRequest{Request: seal.Request{Principal: p}, IdempotencyKey: key}
	var fields url.Values
	var mr *multipart.Reader
	var first *multipart.Part
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		var err error
		if mr, err = r.MultipartReader(); err != nil {
			return jr, nil, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read")
		}
		if fields, first, err = readFields(mr, jobFields); err != nil {
			return jr, nil, err
		}
		if first == nil {
			return jr, nil, fault.New(fault.Invalid, seal.CodeJobEmpty, "the multipart body has no part named \"document\"")
		}
	case "application/zip":
	default:
		return jr, nil, fault.New(fault.UnsupportedMediaType, CodeUnsupportedMediaType,
			"a job's body is multipart/form-data (fields, then parts \"document\") or application/zip, not %q", r.Header.Get("Content-Type"))
	}
	fields = withQuery(r, fields)
	if n := len(fields["totp"]); n > 1 {
		return jr, nil, fault.New(fault.Invalid, CodeBadRequest, "option \"totp\" is given %d times: give it once", n)
	}
	jr.TOTP = fields.Get("totp")
	delete(fields, "totp")
	if err := seal.ParseOptions(&jr.Request, fields); err != nil {
		return jr, nil, err
	}
	if mr != nil {
		jr.Documents = multipartDocuments(mr, first)
		return jr, func() {}, nil
	}
	docs, done, err := a.zipDocuments(r)
	if err != nil {
		return jr, nil, err
	}
	jr.Documents = docs
	return jr, done, nil
}

// withQuery adds r's query parameters to fields (which may be nil): an
// option given in both counts as given twice.
func withQuery(r *http.Request, fields url.Values) url.Values {
	all := r.URL.Query()
	for k, v := range fields {
		all[k] = append(all[k], v...)
	}
	return all
}

// multipartDocuments yields the part first and every part after it, each
// of which must be a document: a field after a document would come too
// late to apply to the documents before it.
func multipartDocuments(mr *multipart.Reader, first *multipart.Part) iter.Seq2[seal.JobInput, error] {
	return func(yield func(seal.JobInput, error) bool) {
		for part := first; ; {
			if !yield(seal.JobInput{Name: part.FileName(), Reader: part}, nil) {
				return
			}
			next, err := mr.NextPart()
			switch {
			case err == io.EOF:
				return
			case err != nil:
				yield(seal.JobInput{}, fault.Wrap(err, fault.Invalid, CodeBadRequest, "the multipart body could not be read after a document"))
				return
			case next.FormName() != "document":
				yield(seal.JobInput{}, fault.New(fault.Invalid, CodeBadRequest, "the multipart part %q comes after a document: fields must come before the first part \"document\"", next.FormName()))
				return
			}
			part = next
		}
	}
}

// jobLocation is the URL of job id's status.
func jobLocation(id string) string { return "/api/v1/jobs/" + url.PathEscape(id) }

// writeJobAccepted answers a submitted job: 202, its status, and where to
// follow it.
func writeJobAccepted(w http.ResponseWriter, st seal.JobStatus) {
	w.Header().Set("Location", jobLocation(st.ID))
	problem.WriteJSON(w, http.StatusAccepted, st)
}

// getJob returns a job's status.
func (a *REST) getJob(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	st, err := a.Jobs.Status(r.Context(), p, r.PathValue("id"))
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, st)
}

// getJobDocument returns one sealed document of a job with the evidence
// headers of POST /seals; its ETag is the sealed document's digest, so
// If-None-Match spares sending it again.
func (a *REST) getJobDocument(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		problem.Write(w, r, a.Log, fault.New(fault.Invalid, CodeBadRequest, "document number %q is not 1, 2, ...", r.PathValue("n")))
		return
	}
	res, err := a.Jobs.Result(r.Context(), p, r.PathValue("id"), n)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	defer res.Close()
	h := w.Header()
	etag := strconv.Quote(fmt.Sprintf("%x", res.SealedSHA256))
	h.Set("ETag", etag)
	setResultHeaders(h, res.Result)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", res.ContentType)
	h.Set("Content-Length", strconv.FormatInt(res.Size, 10))
	h.Set("Content-Disposition", contentDisposition(res.Name, res.Format))
	w.WriteHeader(http.StatusOK)
	if _, err := res.WriteTo(w); err != nil {
		a.Log.Warn("sending a job's sealed document failed", "event", res.EventID, "err", err)
	}
}

// etagMatches reports whether an If-None-Match header names etag (RFC 9110
// §13.1.2: weak comparison, a list, or "*").
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}

// getJobResults streams a finished job's sealed documents as one ZIP
// archive, each entry named after its document (resultName), made unique.
// Once the archive has begun, a failure can only cut the connection, so
// that a client never takes a truncated archive for a whole one.
func (a *REST) getJobResults(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	results, err := a.Jobs.Results(r.Context(), p, id)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	var zw *zip.Writer
	begin := func() {
		h := w.Header()
		h.Set("Content-Type", "application/zip")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "job-" + id + ".zip"}))
		w.WriteHeader(http.StatusOK)
		zw = zip.NewWriter(w)
	}
	names := map[string]bool{}
	for res, err := range results {
		if err == nil && zw == nil {
			begin()
		}
		if err == nil {
			err = writeZipEntry(zw, uniqueName(names, resultName(res.Name, res.Format)), res)
		}
		if err != nil {
			if zw == nil {
				problem.Write(w, r, a.Log, err)
				return
			}
			a.Log.Warn("sending a job's results failed", "job", id, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	if zw == nil {
		// No document was sealed: an empty archive.
		begin()
	}
	if err := zw.Close(); err != nil {
		a.Log.Warn("sending a job's results failed", "job", id, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// writeZipEntry stores one result: sealed PDFs and signatures do not
// compress, so the archive costs no CPU beyond its checksums.
func writeZipEntry(zw *zip.Writer, name string, res *seal.JobResult) error {
	ew, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: res.Time})
	if err == nil {
		_, err = res.WriteTo(ew)
	}
	return err
}

// uniqueName returns name, or name with " (2)", " (3)", ... before its
// extension when taken already, and marks it taken.
func uniqueName(taken map[string]bool, name string) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i:]
	}
	for k := 2; taken[name]; k++ {
		name = fmt.Sprintf("%s (%d)%s", base, k, ext)
	}
	taken[name] = true
	return name
}

// deleteJob cancels a job and purges its results.
func (a *REST) deleteJob(w http.ResponseWriter, r *http.Request) {
	p, ok := a.authenticate(w, r)
	if !ok {
		return
	}
	if err := a.Jobs.Cancel(r.Context(), p, r.PathValue("id")); err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
