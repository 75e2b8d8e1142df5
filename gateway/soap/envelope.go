package soap

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"github.com/sealgate/sealgate/fault"
)

// Namespaces of the envelopes and headers sealgate reads and writes.
const (
	nsSOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
	nsSOAP12 = "http://www.w3.org/2003/05/soap-envelope"
	nsXOP    = "http://www.w3.org/2004/08/xop/include"
	nsWSSE   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	// nsSealgate is the contract's target namespace (wsdl/sealgate.wsdl).
	nsSealgate = "urn:sealgate:v1"
)

// Codes of the SOAP endpoint (SOAP faults carry them in their detail).
const (
	// CodeMalformed: the body is not a well-formed SOAP envelope, or is cut short.
	CodeMalformed fault.Code = "soap_malformed"
	// CodeDTDForbidden: the envelope has a DOCTYPE or entity declaration.
	CodeDTDForbidden fault.Code = "soap_dtd_forbidden"
	// CodeLimitExceeded: the envelope or MTOM package passes one of the
	// soap section's limits (size, depth, elements, attributes, parts).
	CodeLimitExceeded fault.Code = "soap_limit_exceeded"
	// CodeVersionMismatch: the envelope's namespace is not the SOAP
	// version the Content-Type announces.
	CodeVersionMismatch fault.Code = "soap_version_mismatch"
	// CodeMustUnderstand: a header marked mustUnderstand that sealgate does not process.
	CodeMustUnderstand fault.Code = "soap_must_understand"
	// CodeOperationUnknown: the body's element or the SOAP action names no operation.
	CodeOperationUnknown fault.Code = "soap_operation_unknown"
	// CodeContentType: the request is neither SOAP 1.1, SOAP 1.2 nor MTOM.
	CodeContentType fault.Code = "soap_content_type_unsupported"
	// CodeMTOMMalformed: the MTOM/XOP package cannot be read, or an
	// xop:Include names no part of it.
	CodeMTOMMalformed fault.Code = "mtom_malformed"
)

// Limits bound what one request may make the endpoint parse: the "soap"
// section's limits. Zero fields take the defaults.
type Limits struct {
	// MaxEnvelopeSize bounds the XML envelope in bytes (with inline
	// base64 documents). Default 32 MiB; larger documents go as MTOM.
	MaxEnvelopeSize int64 `yaml:"maxEnvelopeSize"`
	// MaxDepth bounds element nesting. Default 64.
	MaxDepth int `yaml:"maxDepth"`
	// MaxElements bounds the elements of one envelope. Default 10,000.
	MaxElements int `yaml:"maxElements"`
	// MaxAttributes bounds the attributes of one element. Default 64.
	MaxAttributes int `yaml:"maxAttributes"`
	// MaxParts bounds the MIME parts of an MTOM package (a SealBatch has
	// one per document). Default 1,000.
	MaxParts int `yaml:"maxParts"`
	// MaxPartSize bounds one MTOM attachment in bytes. Default: the
	// seal section's maxDocumentSize, else 2 GiB.
	MaxPartSize int64 `yaml:"maxPartSize"`
}

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxEnvelopeSize <= 0 {
		l.MaxEnvelopeSize = 32 << 20
	}
	if l.MaxPartSize <= 0 {
		l.MaxPartSize = 2 << 30
	}
	def(&l.MaxDepth, 64)
	def(&l.MaxElements, 10000)
	def(&l.MaxAttributes, 64)
	def(&l.MaxParts, 1000)
	return l
}

// cappedReader fails once more than n bytes are read, with a fault
// naming the limit, so a long body is refused rather than cut short.
type cappedReader struct {
	r    io.Reader
	n    int64
	what string
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n < 0 {
		return 0, c.refusal()
	}
	if int64(len(p)) > c.n+1 {
		p = p[:c.n+1]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	if c.n < 0 {
		return k, c.refusal()
	}
	return k, err
}

func (c *cappedReader) refusal() error {
	return fault.New(fault.TooLarge, CodeLimitExceeded, "the %s is larger than the limit", c.what)
}

// guardedTokens is the token stream of an envelope under the limits: it
// refuses DTDs (so no entity is ever declared or expanded) and processing
// instructions, and bounds depth, element count and attributes per element.
// It also hands an xop:Include to the decoder as the text of its parent
// element, "cid:…": base64 has no colon, so an attachment reference cannot
// be mistaken for inline content.
type guardedTokens struct {
	d        *xml.Decoder
	lim      Limits
	depth    int
	elements int
}

// newDecoder returns a decoder of r's envelope under lim.
func newDecoder(r io.Reader, lim Limits) *xml.Decoder {
	inner := xml.NewDecoder(r)
	inner.Strict = true
	return xml.NewTokenDecoder(&guardedTokens{d: inner, lim: lim})
}

func (g *guardedTokens) Token() (xml.Token, error) {
	tok, err := g.d.Token()
	if err != nil {
		return nil, g.readError(err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		g.depth++
		g.elements++
		switch {
		case g.depth > g.lim.MaxDepth:
			return nil, fault.New(fault.TooLarge, CodeLimitExceeded, "the envelope nests elements deeper than %d", g.lim.MaxDepth)
		case g.elements > g.lim.MaxElements:
			return nil, fault.New(fault.TooLarge, CodeLimitExceeded, "the envelope has more than %d elements", g.lim.MaxElements)
		case len(t.Attr) > g.lim.MaxAttributes:
			return nil, fault.New(fault.TooLarge, CodeLimitExceeded, "element %s has more than %d attributes", t.Name.Local, g.lim.MaxAttributes)
		}
		if t.Name.Space == nsXOP && t.Name.Local == "Include" {
			return g.include(t)
		}
	case xml.EndElement:
		g.depth--
	case xml.Directive:
		return nil, fault.New(fault.Invalid, CodeDTDForbidden, "the envelope has a DOCTYPE or entity declaration; SOAP messages may not")
	case xml.ProcInst:
		if t.Target != "xml" {
			return nil, fault.New(fault.Invalid, CodeMalformed, "the envelope has the processing instruction %q; SOAP messages may not", t.Target)
		}
	}
	return tok, nil
}

// include turns <xop:Include href="cid:…"/> into the text "cid:…".
func (g *guardedTokens) include(t xml.StartElement) (xml.Token, error) {
	var href string
	for _, a := range t.Attr {
		if a.Name.Local == "href" && a.Name.Space == "" {
			href = a.Value
		}
	}
	if !strings.HasPrefix(href, "cid:") {
		return nil, fault.New(fault.Invalid, CodeMTOMMalformed, "xop:Include needs href=\"cid:…\", not %q", href)
	}
	next, err := g.d.Token()
	if err != nil {
		return nil, g.readError(err)
	}
	if _, ok := next.(xml.EndElement); !ok {
		return nil, fault.New(fault.Invalid, CodeMTOMMalformed, "xop:Include must be empty")
	}
	g.depth--
	return xml.CharData(href), nil
}

// readError keeps a limit's or the body's own fault and calls anything
// else the decoder reports a malformed envelope.
func (g *guardedTokens) readError(err error) error {
	if err == io.EOF || fault.As(err) != nil {
		return err
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fault.Wrap(err, fault.Invalid, CodeMalformed, "the envelope is not well-formed XML (line %d): %s", se.Line, se.Msg)
	}
	return fault.Wrap(err, fault.Invalid, CodeMalformed, "the envelope could not be read")
}

// envelope is a request's envelope read up to its operation: the SOAP
// version, the WS-Security header if any, and the decoder positioned at
// the body's first element.
type envelope struct {
	version  version
	security *security
	op       xml.StartElement
	dec      *xml.Decoder
}

// readEnvelope reads the envelope of r as SOAP version v up to the body's
// operation element. Headers other than wsse:Security are ignored unless
// marked mustUnderstand.
func readEnvelope(r io.Reader, v version, lim Limits) (*envelope, error) {
	dec := newDecoder(&cappedReader{r: r, n: lim.MaxEnvelopeSize, what: "envelope"}, lim)
	env := &envelope{version: v, dec: dec}
	start, err := nextStart(dec)
	if err != nil {
		return nil, err
	}
	if start.Name.Local != "Envelope" || (start.Name.Space != nsSOAP11 && start.Name.Space != nsSOAP12) {
		return nil, fault.New(fault.Invalid, CodeMalformed, "the body is not a SOAP envelope but the element %s", start.Name.Local)
	}
	if start.Name.Space != v.ns() {
		return nil, fault.New(fault.Invalid, CodeVersionMismatch, "the envelope is in the namespace %s, but the Content-Type announces SOAP %s (%s)", start.Name.Space, v, v.ns())
	}
	for {
		el, err := nextStart(dec)
		if err != nil {
			return nil, err
		}
		switch {
		case el.Name.Space == v.ns() && el.Name.Local == "Header" && env.op.Name.Local == "":
			if env.security, err = readHeader(dec, v); err != nil {
				return nil, err
			}
		case el.Name.Space == v.ns() && el.Name.Local == "Body":
			op, err := nextStart(dec)
			if err != nil {
				return nil, err
			}
			env.op = op
			return env, nil
		default:
			return nil, fault.New(fault.Invalid, CodeMalformed, "the envelope has the element %s where Header or Body belongs", el.Name.Local)
		}
	}
}

// nextStart returns the next element's start, skipping text and
// comments; an end tag or the end of input first is malformed.
func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return xml.StartElement{}, fault.New(fault.Invalid, CodeMalformed, "the envelope ends early")
		}
		if err != nil {
			return xml.StartElement{}, decodeError(err, "the envelope")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fault.New(fault.Invalid, CodeMalformed, "the envelope has no element where one belongs (</%s> comes first)", t.Name.Local)
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) > 0 {
				return xml.StartElement{}, fault.New(fault.Invalid, CodeMalformed, "the envelope has text where an element belongs")
			}
		}
	}
}

// readHeader reads the Header's entries: the wsse:Security header, and
// refuses any other entry marked mustUnderstand.
func readHeader(dec *xml.Decoder, v version) (*security, error) {
	var sec *security
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, decodeError(err, "the Header")
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return sec, nil
		case xml.StartElement:
			if t.Name.Space == nsWSSE && t.Name.Local == "Security" {
				if sec != nil {
					return nil, fault.New(fault.Invalid, CodeWSSecurityMalformed, "the Header has more than one wsse:Security")
				}
				sec = new(security)
				if err := dec.DecodeElement(sec, &t); err != nil {
					return nil, decodeError(err, "wsse:Security")
				}
				continue
			}
			if mustUnderstand(t, v) {
				return nil, fault.New(fault.Invalid, CodeMustUnderstand, "the header %s {%s} is marked mustUnderstand, and sealgate does not process it", t.Name.Local, t.Name.Space)
			}
			if err := dec.Skip(); err != nil {
				return nil, decodeError(err, "the Header")
			}
		}
	}
}

func mustUnderstand(t xml.StartElement, v version) bool {
	for _, a := range t.Attr {
		if a.Name.Space == v.ns() && a.Name.Local == "mustUnderstand" {
			return a.Value == "1" || a.Value == "true"
		}
	}
	return false
}

// decodeError keeps the faults of the token stream, and calls the rest
// (a value that is not of its schema type) malformed.
func decodeError(err error, what string) error {
	if fault.As(err) != nil {
		return err
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return fault.New(fault.Invalid, CodeMalformed, "the envelope ends inside %s", what)
	}
	return fault.Wrap(err, fault.Invalid, CodeMalformed, "%s does not match the contract: %v", what, err)
}

// finish reads the rest of the envelope after the operation's element:
// nothing but the ends of Body and Envelope may follow.
func (env *envelope) finish() error {
	for {
		tok, err := env.dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return decodeError(err, "the envelope")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return fault.New(fault.Invalid, CodeMalformed, "the Body has a second element %s: send one operation per request", t.Name.Local)
		case xml.CharData:
			if len(strings.TrimSpace(string(t))) > 0 {
				return fault.New(fault.Invalid, CodeMalformed, "the envelope has text after its Body's operation")
			}
		}
	}
}
