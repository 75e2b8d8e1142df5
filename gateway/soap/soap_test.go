package soap

import (
	"net/http"
	"testing"

	"github.com/sealgate/sealgate/fault"
)

// TestClassify: the SOAP version, MTOM and the action as each kind of
// client sends them.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, contentType, soapAction string
		version                       version
		mtom                          bool
		action                        string
		code                          fault.Code
	}{
		{"SOAP 1.1, quoted action (zeep, JAX-WS)", `text/xml; charset=utf-8`, `"urn:sealgate:v1/ListSeals"`, soap11, false, "urn:sealgate:v1/ListSeals", ""},
		{"SOAP 1.1, bare action (gowsdl)", `text/xml; charset="utf-8"`, `urn:sealgate:v1/ListSeals`, soap11, false, "urn:sealgate:v1/ListSeals", ""},
		{"SOAP 1.1, empty action", `text/xml`, `""`, soap11, false, "", ""},
		{"SOAP 1.2, action parameter", `application/soap+xml; charset=utf-8; action="urn:sealgate:v1/SealDocument"`, "", soap12, false, "urn:sealgate:v1/SealDocument", ""},
		{"MTOM, SOAP 1.1", `multipart/related; type="application/xop+xml"; boundary=b; start="<r>"; start-info="text/xml"`, `"urn:sealgate:v1/SealDocument"`, soap11, true, "urn:sealgate:v1/SealDocument", ""},
		{"MTOM, SOAP 1.2, action in start-info (JAX-WS)", `multipart/related;start="<r>";type="application/xop+xml";boundary="uuid:1";start-info="application/soap+xml;action=\"urn:sealgate:v1/SealDocument\""`, "", soap12, true, "urn:sealgate:v1/SealDocument", ""},
		{"multipart that is not MTOM", `multipart/related; type="text/xml"; boundary=b`, "", soap11, false, "", CodeContentType},
		{"JSON", `application/json`, "", soap11, false, "", CodeContentType},
		{"no Content-Type", ``, "", soap11, false, "", CodeContentType},
	} {
		h := http.Header{}
		h.Set("Content-Type", tc.contentType)
		if tc.soapAction != "" {
			h.Set("SOAPAction", tc.soapAction)
		}
		v, mtom, action, err := classify(h)
		if fault.CodeOf(err) != tc.code {
			t.Errorf("%s: error %v, want code %q", tc.name, err, tc.code)
			continue
		}
		if err == nil && (v != tc.version || (mtom != nil) != tc.mtom || action != tc.action) {
			t.Errorf("%s: SOAP %s, MTOM %v, action %q; want SOAP %s, MTOM %v, action %q", tc.name, v, mtom != nil, action, tc.version, tc.mtom, tc.action)
		}
	}
}
