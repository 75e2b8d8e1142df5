package soap

import (
	"strconv"

	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/wsdl"
)

// sealBatch submits a job of the request's documents, sealed alike with
// its options; it answers once the job is durable.
func (c *call) sealBatch() error {
	var req wsdl.SealBatch
	if err := prepare(c, &req); err != nil {
		return err
	}
	fields := optionFields(req.SealOptions)
	jr := seal.JobRequest{Request: seal.Request{Principal: c.p}, TOTP: req.Totp}
	if err := seal.ParseOptions(&jr.Request, fields); err != nil {
		return err
	}
	if len(req.Document) > 0 {
		jr.Documents = func(yield func(seal.JobInput, error) bool) {
			for i, d := range req.Document {
				var raw []byte
				var name string
				if d != nil {
					raw, name = d.Content, d.Name
				}
				doc, _, err := c.content(raw, "document "+strconv.Itoa(i+1))
				if !yield(seal.JobInput{Name: name, Reader: doc}, err) || err != nil {
					return
				}
				// The document is spooled by now: its text may go.
				req.Document[i] = nil
			}
		}
	}
	st, err := c.e.Jobs.Submit(c.r.Context(), jr)
	if err != nil {
		return err
	}
	c.respondElement(&wsdl.SealBatchResponse{Job: jobStatus(st)})
	return nil
}

// getJobStatus answers a job's state and its documents'.
func (c *call) getJobStatus() error {
	var req wsdl.GetJobStatus
	if err := prepare(c, &req); err != nil {
		return err
	}
	st, err := c.e.Jobs.Status(c.r.Context(), c.p, req.JobId)
	if err != nil {
		return err
	}
	c.respondElement(&wsdl.GetJobStatusResponse{Job: jobStatus(st)})
	return nil
}

// getSealedDocument answers document n of a finished job, sealed.
func (c *call) getSealedDocument() error {
	var req wsdl.GetSealedDocument
	if err := prepare(c, &req); err != nil {
		return err
	}
	res, err := c.e.Jobs.Result(c.r.Context(), c.p, req.JobId, int(req.N))
	if err != nil {
		return err
	}
	defer res.Close()
	c.respondSealed("GetSealedDocumentResponse", res.Name, res.Result)
	return nil
}

func jobStatus(st seal.JobStatus) *wsdl.JobStatus {
	out := &wsdl.JobStatus{Id: st.ID, State: string(st.State), Seal: st.Seal, Format: string(st.Format), Level: string(st.Level),
		Created: dateTime(st.Created), Counts: &wsdl.JobCounts{Queued: int32(st.Counts.Queued), Running: int32(st.Counts.Running),
			Done: int32(st.Counts.Done), Failed: int32(st.Counts.Failed), Cancelled: int32(st.Counts.Cancelled)}}
	if !st.Finished.IsZero() {
		out.Finished = dateTime(st.Finished)
	}
	if !st.Expires.IsZero() {
		out.Expires = dateTime(st.Expires)
	}
	for _, d := range st.Documents {
		out.Document = append(out.Document, &wsdl.JobDocument{N: int32(d.N), Name: d.Name, Size: d.Size, State: string(d.State),
			Code: string(d.Code), Message: d.Message, EventId: d.EventID, EvidenceIndex: d.EvidenceIndex})
	}
	return out
}
