package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
)

// auditAnchorPrefix starts the SealID of audit anchors: "audit-trail/<count>".
const auditAnchorPrefix = "audit-trail/"

// AnchorAudit records the audit trail's head in the evidence log when the
// trail has grown since the last anchor. The anchor is a leaf like a seal's,
// covered by the next published checkpoint, so events deleted or rewritten
// in the database afterwards no longer match it. Events written by other
// processes (the CLI) are covered too: the head is read from the database.
func (s *Server) AnchorAudit(ctx context.Context) error {
	s.anchorMu.Lock()
	defer s.anchorMu.Unlock()
	count, head, err := s.Access.AuditHead(ctx)
	if err != nil || count == 0 {
		return err
	}
	if s.anchored == 0 {
		if a, err := s.latestAuditAnchor(ctx); err == nil {
			s.anchored = a.count
		} else if fault.CodeOf(err) != evidence.CodeNotFound {
			return err
		}
	}
	if count <= s.anchored {
		return nil
	}
	if _, err := s.Evidence.Append(ctx, evidence.Entry{
		Format:       evidence.FormatAuditHead,
		SealedSHA256: evidence.SHA256(head),
		SealID:       auditAnchorPrefix + strconv.FormatUint(count, 10),
		Time:         time.Now(),
	}); err != nil {
		return err
	}
	s.anchored = count
	return nil
}

type auditAnchor struct {
	leaf  uint64
	count uint64
	head  evidence.SHA256
}

func (s *Server) latestAuditAnchor(ctx context.Context) (auditAnchor, error) {
	leaf, err := s.Evidence.LatestOfFormat(ctx, evidence.FormatAuditHead)
	if err != nil {
		return auditAnchor{}, err
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(leaf.Entry.SealID, auditAnchorPrefix), 10, 64)
	if err != nil {
		return auditAnchor{}, fault.New(fault.Invalid, evidence.CodeBadEntry, "audit anchor at leaf %d names %q, not %s<count>", leaf.Index, leaf.Entry.SealID, auditAnchorPrefix)
	}
	return auditAnchor{leaf: leaf.Index, count: n, head: leaf.Entry.SealedSHA256}, nil
}

// AuditVerification is the audit trail's own hash-chain check together
// with the check against its newest anchor in the evidence log.
type AuditVerification struct {
	*access.AuditReport
	// AnchorLeaf and AnchorCount locate the newest anchor (zero when none).
	AnchorLeaf  uint64 `json:"anchorLeaf,omitempty"`
	AnchorCount uint64 `json:"anchorCount,omitempty"`
	// AnchorOK is true when the trail still holds the anchored event
	// unchanged.
	AnchorOK bool `json:"anchorOk"`
}

// VerifyAudit checks the audit trail's hash chain and that the event the
// evidence log anchored last is still there, unchanged: a trail whose tail
// was deleted (with its recorded head) passes its own chain check, but not
// this one.
func (s *Server) VerifyAudit(ctx context.Context) (*AuditVerification, error) {
	rep, err := s.Access.VerifyAudit(ctx)
	if err != nil {
		return nil, err
	}
	v := &AuditVerification{AuditReport: rep}
	a, err := s.latestAuditAnchor(ctx)
	switch {
	case fault.CodeOf(err) == evidence.CodeNotFound:
		v.AnchorOK = true // nothing anchored yet
		return v, nil
	case err != nil:
		return nil, err
	}
	v.AnchorLeaf, v.AnchorCount = a.leaf, a.count
	events, err := s.Access.AuditEvents(ctx, int64(a.count)-1, 1)
	if err != nil {
		return nil, err
	}
	switch {
	case len(events) == 0 || events[0].ID != int64(a.count):
		v.Problem = fmt.Sprintf("the evidence log anchored %d audit events at leaf %d, but event %d is missing: events were deleted", a.count, a.leaf, a.count)
	case !bytes.Equal(events[0].Hash, a.head[:]):
		v.Problem = fmt.Sprintf("audit event %d no longer hashes to %s, anchored at evidence leaf %d", a.count, hex.EncodeToString(a.head[:]), a.leaf)
	default:
		v.AnchorOK = true
		return v, nil
	}
	v.OK = false
	if v.FirstBad == 0 || v.FirstBad > int64(a.count) {
		v.FirstBad = int64(a.count)
	}
	return v, nil
}
