package soap

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"io"
	"reflect"
	"strconv"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/httpauth"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/wsdl"
)

// maxSignatureSize bounds a detached signature to verify, as REST does.
const maxSignatureSize = 1 << 20

// document is a response's binary element: base64 inline, or with MTOM
// an xop:Include of the package's one attachment.
type document struct {
	src         io.WriterTo
	contentType string
	mtom        bool
}

// write writes the element <name> holding d.
func (d *document) write(w io.Writer, enc *xml.Encoder, name string) error {
	if err := enc.Flush(); err != nil {
		return err
	}
	if d.mtom {
		_, err := io.WriteString(w, `<`+name+`><xop:Include xmlns:xop="`+nsXOP+`" href="cid:`+documentID+`"/></`+name+`>`)
		return err
	}
	if _, err := io.WriteString(w, "<"+name+">"); err != nil {
		return err
	}
	b64 := base64.NewEncoder(base64.StdEncoding, w)
	if _, err := d.src.WriteTo(b64); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "</"+name+">")
	return err
}

// content resolves a request's binary element: "cid:…" (an xop:Include)
// names an MTOM attachment, anything else is base64.
func (c *call) content(raw []byte, what string) (io.Reader, int64, error) {
	if bytes.HasPrefix(raw, []byte("cid:")) {
		a, err := c.pkg.attachment(string(raw))
		if err != nil {
			return nil, 0, err
		}
		return io.NewSectionReader(a.f, 0, a.size), a.size, nil
	}
	// Line breaks are skipped by the decoder itself; spaces and tabs
	// (pretty-printed XML) are taken out first, which most senders never need.
	if bytes.IndexAny(raw, " \t") >= 0 {
		raw = bytes.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, raw)
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(b, raw)
	if err != nil {
		return nil, 0, fault.New(fault.Invalid, seal.CodeBadRequest, "%s: not base64 (%v)", what, err)
	}
	return bytes.NewReader(b[:n]), int64(n), nil
}

// optionFields are a request's seal options as seal.ParseOptions takes
// them, so SOAP refuses what REST refuses, with the same codes.
func optionFields(o *wsdl.SealOptions) map[string][]string {
	fields := map[string][]string{}
	if o == nil {
		return fields
	}
	for name, v := range map[string]string{"seal": o.Seal, "format": o.Format, "level": o.Level, "name": o.Name,
		"field": o.Field, "reason": o.Reason, "location": o.Location, "certify": o.Certify} {
		if v != "" {
			fields[name] = []string{v}
		}
	}
	if o.Page != nil {
		fields["page"] = []string{strconv.Itoa(int(*o.Page))}
	}
	rect := []*float64{o.X, o.Y, o.Width, o.Height}
	for i, name := range seal.RectNames() {
		if rect[i] != nil {
			fields[name] = []string{strconv.FormatFloat(*rect[i], 'g', -1, 64)}
		}
	}
	return fields
}

// sealDocument seals one document.
func (c *call) sealDocument() error {
	var req wsdl.SealDocument
	if err := prepare(c, &req); err != nil {
		return err
	}
	doc, size, err := c.content(req.Document, "document")
	if err != nil {
		return err
	}
	req.Document = nil
	sr := seal.Request{Principal: c.p, Document: doc, Size: size}
	if err := seal.ParseOptions(&sr, optionFields(req.SealOptions)); err != nil {
		return err
	}
	res, err := c.e.Seal.Seal(c.r.Context(), sr)
	if err != nil {
		return err
	}
	defer res.Close()
	c.respondSealed("SealDocumentResponse", "", res)
	return nil
}

// respondSealed answers with the element local holding the document's
// name (when not ""), its result and the sealed document.
func (c *call) respondSealed(local, name string, res *seal.Result) {
	out := &document{src: res, contentType: res.ContentType}
	c.respond(c.env.version, func(w io.Writer, enc *xml.Encoder) error {
		start := xml.StartElement{Name: xml.Name{Space: nsSealgate, Local: local}}
		if err := enc.EncodeToken(start); err != nil {
			return err
		}
		if name != "" {
			if err := enc.EncodeElement(name, xml.StartElement{Name: xml.Name{Local: "name"}}); err != nil {
				return err
			}
		}
		if err := writeField(enc, reflect.ValueOf(sealResult(res)), xml.StartElement{Name: xml.Name{Local: "result"}}); err != nil {
			return err
		}
		if err := out.write(w, enc, "sealedDocument"); err != nil {
			return err
		}
		if err := enc.EncodeToken(start.End()); err != nil {
			return err
		}
		return enc.Flush()
	}, out)
}

func sealResult(res *seal.Result) *wsdl.SealResult {
	return &wsdl.SealResult{
		EventId: res.EventID, Seal: res.Seal, Format: string(res.Format), Level: string(res.Level),
		OriginalSha256: hex.EncodeToString(res.OriginalSHA256), SealedSha256: hex.EncodeToString(res.SealedSHA256),
		EvidenceIndex: res.EvidenceIndex, ContentType: res.ContentType, Size: res.Size, Time: dateTime(res.Time),
		RevocationUnavailable: res.RevocationUnavailable,
	}
}

// verifyDocument verifies a document (and a detached signature) on the
// one verification path, bounded as for any caller from the network.
func (c *call) verifyDocument() error {
	var req wsdl.VerifyDocument
	if err := prepare(c, &req); err != nil {
		return err
	}
	doc, size, err := c.content(req.Document, "document")
	if err != nil {
		return err
	}
	vr := seal.VerifyRequest{Document: doc, Size: size, Source: httpauth.RemoteAddr(c.r)}
	if len(req.Signature) > 0 {
		sig, n, err := c.content(req.Signature, "signature")
		if err != nil {
			return err
		}
		if n > maxSignatureSize {
			return fault.New(fault.TooLarge, seal.CodeDocumentTooLarge, "the signature of %d bytes is larger than the limit of %d bytes", n, maxSignatureSize)
		}
		if vr.Signature, err = io.ReadAll(sig); err != nil {
			return fault.Wrap(err, fault.Unavailable, seal.CodeInputUnreadable, "the signature's attachment could not be read")
		}
	}
	req.Document, req.Signature = nil, nil
	rep, err := c.e.Verifier.Verify(c.r.Context(), vr)
	if err != nil {
		return err
	}
	c.respondElement(&wsdl.VerifyDocumentResponse{Report: verificationReport(rep)})
	return nil
}

// listSeals answers the seals the caller may use.
func (c *call) listSeals() error {
	var req wsdl.ListSeals
	if err := prepare(c, &req); err != nil {
		return err
	}
	ids, err := c.e.Access.PermittedSeals(c.r.Context(), c.p)
	if err != nil {
		return err
	}
	c.respondElement(&wsdl.ListSealsResponse{Seal: ids})
	return nil
}

// respondElement answers with v, a generated response type.
func (c *call) respondElement(v any) {
	c.respond(c.env.version, func(_ io.Writer, enc *xml.Encoder) error { return writeElement(enc, v) }, nil)
}
