package rest

import (
	"encoding/hex"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/seal"
)

// maxSignatureSize bounds an uploaded detached signature: a CAdES .p7s with
// chain, timestamp and revocation data is far below this.
const maxSignatureSize = 1 << 20

// postVerification verifies a document: the raw body (a sealed PDF), or
// multipart with parts "document" and optionally "signature" (a .p7s, which
// must come first). Verification is public: no credentials needed, so the
// Verifier is a public one (seal.Verifier.Public), bounded per client address.
func (a *REST) postVerification(w http.ResponseWriter, r *http.Request) {
	u, err := readUpload(r, map[string]int{"signature": maxSignatureSize})
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	req := seal.VerifyRequest{Document: u.document, Signature: []byte(u.fields.Get("signature")), Size: u.size, Source: httpauth.RemoteAddr(r)}
	rep, err := a.Verifier.Verify(r.Context(), req)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, rep)
}

func (a *REST) pathDigest(r *http.Request) (evidence.SHA256, error) {
	return evidence.ParseSHA256(r.PathValue("sha256"))
}

// getEvidence returns the entries naming a document by role, each with its
// inclusion proof to the newest checkpoint; with ?index=N (the link a seal
// hands out), the entry of leaf N alone, which must name the document.
func (a *REST) getEvidence(w http.ResponseWriter, r *http.Request) {
	h, err := a.pathDigest(r)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	var ev any
	if s := r.URL.Query().Get("index"); s != "" {
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil {
			problem.Write(w, r, a.Log, fault.New(fault.Invalid, CodeBadRequest, "index %q is not a leaf index", s))
			return
		}
		ev, err = a.Evidence.ProveLeaf(r.Context(), h, n)
	} else {
		ev, err = a.Evidence.ProveDocument(r.Context(), h)
	}
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, ev)
}

// getEvidenceRecord returns the RFC 4998 evidence record (DER) for a document.
func (a *REST) getEvidenceRecord(w http.ResponseWriter, r *http.Request) {
	h, err := a.pathDigest(r)
	if err == nil {
		var der []byte
		if der, err = a.Evidence.EvidenceRecord(r.Context(), h); err == nil {
			w.Header().Set("Content-Type", "application/vnd.sealgate.ers")
			w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": hex.EncodeToString(h[:]) + ".ers"}))
			_, _ = w.Write(der)
			return
		}
	}
	problem.Write(w, r, a.Log, err)
}

// getCheckpoint returns the newest checkpoint, or the one of tree size ?size=.
func (a *REST) getCheckpoint(w http.ResponseWriter, r *http.Request) {
	var cp *evidence.Checkpoint
	var err error
	if s := r.URL.Query().Get("size"); s != "" {
		n, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil {
			problem.Write(w, r, a.Log, fault.New(fault.Invalid, CodeBadRequest, "size %q is not a tree size", s))
			return
		}
		cp, err = a.Evidence.CheckpointAt(r.Context(), n)
	} else {
		cp, err = a.Evidence.Latest(r.Context())
	}
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	if r.Header.Get("Accept") == "text/plain" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, cp.Note)
		return
	}
	problem.WriteJSON(w, http.StatusOK, cp)
}

// getConsistency returns the consistency proof between two tree sizes.
func (a *REST) getConsistency(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err1 := strconv.ParseUint(q.Get("from"), 10, 64)
	to, err2 := strconv.ParseUint(q.Get("to"), 10, 64)
	if err1 != nil || err2 != nil {
		problem.Write(w, r, a.Log, fault.New(fault.Invalid, CodeBadRequest, "from %q and to %q must be tree sizes", q.Get("from"), q.Get("to")))
		return
	}
	proof, err := a.Evidence.Consistency(r.Context(), from, to)
	if err != nil {
		problem.Write(w, r, a.Log, err)
		return
	}
	problem.WriteJSON(w, http.StatusOK, struct {
		From  uint64   `json:"from"`
		To    uint64   `json:"to"`
		Proof [][]byte `json:"proof"`
	}{from, to, proof})
}

// getLogKey returns the log's note verifier key, with which anyone checks
// checkpoint signatures offline (golang.org/x/mod/sumdb/note format).
func (a *REST) getLogKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, a.Evidence.VerifierKey()+"\n")
}
