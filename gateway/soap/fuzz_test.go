package soap

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/wsdl"
)

// fuzzLimits are small, so the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxEnvelopeSize: 64 << 10, MaxDepth: 16, MaxElements: 200, MaxAttributes: 8, MaxParts: 4, MaxPartSize: 16 << 10}

// parse reads an envelope and its operation as the endpoint does; every
// failure must be a fault with a code, never a panic or a bare error.
func parse(t *testing.T, env *envelope, err error) {
	t.Helper()
	if err != nil {
		if fault.As(err) == nil {
			t.Fatalf("not a fault: %v", err)
		}
		return
	}
	var req any
	switch env.op.Name.Local {
	case "SealDocument":
		req = new(wsdl.SealDocument)
	case "VerifyDocument":
		req = new(wsdl.VerifyDocument)
	default:
		req = new(wsdl.ListSeals)
	}
	if err := env.dec.DecodeElement(req, &env.op); err != nil {
		if fault.As(decodeError(err, "op")) == nil {
			t.Fatalf("not a fault: %v", err)
		}
		return
	}
	if err := env.finish(); err != nil && fault.As(err) == nil {
		t.Fatalf("not a fault: %v", err)
	}
}

var seeds = []string{
	`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ListSeals xmlns="urn:sealgate:v1"/></s:Body></s:Envelope>`,
	`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken><wsse:Username>erp</wsse:Username><wsse:Password>p</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header><s:Body><SealDocument xmlns="urn:sealgate:v1"><page>1</page><x>0</x><document>JVBERi0=</document></SealDocument></s:Body></s:Envelope>`,
	`<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><VerifyDocument xmlns="urn:sealgate:v1"><document><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:a"/></document></VerifyDocument></e:Body></e:Envelope>`,
	`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`,
}

// FuzzEnvelope feeds arbitrary bytes to the envelope reader, as SOAP 1.1
// and as SOAP 1.2.
func FuzzEnvelope(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, v12 bool) {
		v := soap11
		if v12 {
			v = soap12
		}
		env, err := readEnvelope(bytes.NewReader(body), v, fuzzLimits)
		parse(t, env, err)
	})
}

// FuzzMTOM feeds arbitrary MTOM packages (boundary "b") to the package
// reader: the root part's envelope, then the attachments spooled to disk;
// nothing may be left behind.
func FuzzMTOM(f *testing.F) {
	part := func(id, body string) string {
		return "--b\r\nContent-Type: application/xop+xml\r\nContent-ID: <" + id + ">\r\n\r\n" + body + "\r\n"
	}
	f.Add([]byte(part("root", seeds[2]) + "--b\r\nContent-ID: <a>\r\n\r\n%PDF-1.7\r\n--b--\r\n"))
	f.Add([]byte(part("root", seeds[0]) + "--b--"))
	f.Add([]byte(part("root", seeds[0]) + "--b\r\nContent-ID: <a>\r\n\r\nxx"))
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		pkg, root, err := openPackage(bytes.NewReader(body), map[string]string{"boundary": "b", "start": "<root>"}, fuzzLimits, dir, seal.NewSpoolBudget(1<<20))
		if err != nil {
			if fault.As(err) == nil {
				t.Fatalf("not a fault: %v", err)
			}
			return
		}
		defer func() {
			pkg.close()
			if left, _ := seal.RemoveSpool(dir); left != 0 {
				t.Fatalf("%d spool files left behind", left)
			}
		}()
		env, err := readEnvelope(root, soap11, fuzzLimits)
		parse(t, env, err)
		if err := pkg.readAttachments(); err != nil && fault.As(err) == nil {
			t.Fatalf("not a fault: %v", err)
		}
		for id := range pkg.parts {
			if _, err := pkg.attachment("cid:" + strings.ReplaceAll(id, "%", "%25")); err != nil {
				t.Fatalf("part %q not found by its cid: %v", id, err)
			}
		}
	})
}
