package soap

import (
	"bufio"
	"encoding/xml"
	"io"
	"log/slog"
	"math"
	"net/http"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/gateway/problem"
	"github.com/sealgate/sealgate/wsdl"
)

// version is a SOAP version.
type version int

const (
	soap11 version = 11
	soap12 version = 12
)

func (v version) String() string {
	if v == soap12 {
		return "1.2"
	}
	return "1.1"
}

// ns is the envelope namespace of v.
func (v version) ns() string {
	if v == soap12 {
		return nsSOAP12
	}
	return nsSOAP11
}

// mediaType is the Content-Type of v's envelopes.
func (v version) mediaType() string {
	if v == soap12 {
		return "application/soap+xml"
	}
	return "text/xml"
}

// faultCode is the SOAP fault code for err (1.1 names, 1.2 names): the
// caller's input is Client/Sender, sealgate's own trouble Server/Receiver.
func faultCode(err error, v version) string {
	switch fault.CodeOf(err) {
	case CodeVersionMismatch:
		return "VersionMismatch"
	case CodeMustUnderstand:
		return "MustUnderstand"
	}
	receiver := true
	if e := fault.As(err); e != nil {
		receiver = e.Kind == fault.Internal || e.Kind == fault.Unavailable
	}
	switch {
	case receiver && v == soap12:
		return "Receiver"
	case receiver:
		return "Server"
	case v == soap12:
		return "Sender"
	}
	return "Client"
}

// writeFault answers err as a SOAP fault of version v, with the stable
// code (and when to retry) in its detail. SOAP 1.1 faults are HTTP 500 (WS-I
// Basic Profile R1126); SOAP 1.2 Sender faults 400, the others 500.
// Internal errors show no details: they go to the log only.
func writeFault(w http.ResponseWriter, r *http.Request, log *slog.Logger, v version, err error) {
	p := problem.Of(err)
	if p.Status >= 500 {
		log.Error("SOAP request failed", "path", r.URL.Path, "code", p.Code, "err", err)
	}
	code := faultCode(err, v)
	status := http.StatusInternalServerError
	if code == "Sender" {
		status = http.StatusBadRequest
	}
	problem.SetRetryAfter(w.Header(), err)
	detail := wsdl.SealgateFault{Code: p.Code, Message: p.Detail}
	if d := fault.RetryAfterOf(err); d > 0 {
		secs := int32(math.Ceil(d.Seconds()))
		detail.RetryAfter = &secs
	}
	w.Header().Set("Content-Type", v.mediaType()+"; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	bw := bufio.NewWriter(w)
	_ = encodeFault(bw, v, code, detail)
	_ = bw.Flush()
}

// encodeFault writes the fault envelope.
func encodeFault(w io.Writer, v version, code string, detail wsdl.SealgateFault) error {
	if _, err := io.WriteString(w, xml.Header+`<soap:Envelope xmlns:soap="`+v.ns()+`"><soap:Body><soap:Fault>`); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	el := func(name string) xml.StartElement { return xml.StartElement{Name: xml.Name{Local: name}} }
	var err error
	if v == soap12 {
		_, err = io.WriteString(w, `<soap:Code><soap:Value>soap:`+code+`</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang="en">`)
		if err == nil {
			err = xml.EscapeText(w, []byte(detail.Message))
		}
		if err == nil {
			_, err = io.WriteString(w, `</soap:Text></soap:Reason><soap:Detail>`)
		}
	} else {
		_, err = io.WriteString(w, `<faultcode>soap:`+code+`</faultcode>`)
		if err == nil {
			err = enc.EncodeElement(detail.Message, el("faultstring"))
		}
		if err == nil {
			err = enc.Flush()
		}
		if err == nil {
			_, err = io.WriteString(w, `<detail>`)
		}
	}
	if err != nil {
		return err
	}
	if err := writeElement(enc, detail); err != nil {
		return err
	}
	end := `</detail>`
	if v == soap12 {
		end = `</soap:Detail>`
	}
	_, err = io.WriteString(w, end+`</soap:Fault></soap:Body></soap:Envelope>`)
	return err
}
