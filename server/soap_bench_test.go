package server_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/pdftest"
	"github.com/sealgate/sealgate/signing/signingtest"
)

// sealEnvelope is a SOAP 1.1 SealDocument request; doc is the document
// element's content (base64, or an xop:Include).
func sealEnvelope(doc string) string {
	return envelope11("", `<SealDocument xmlns="urn:sealgate:v1"><format>pades</format><level>B-B</level><document>`+doc+`</document></SealDocument>`)
}

const xopInclude = `<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:doc"/>`

// mtomType is the Content-Type of mtomRequest's packages.
const mtomType = `multipart/related; type="application/xop+xml"; start="<root>"; start-info="text/xml"; boundary=sealgate-test-boundary`

// mtomRequest writes an MTOM package of the envelope with doc as its
// attachment "doc".
func mtomRequest(w io.Writer, envelope string, doc func(io.Writer) error) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary("sealgate-test-boundary"); err != nil {
		return err
	}
	root, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {`application/xop+xml; charset=UTF-8; type="text/xml"`}, "Content-Id": {"<root>"}})
	if err != nil {
		return err
	}
	if _, err := io.WriteString(root, envelope); err != nil {
		return err
	}
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/pdf"}, "Content-Id": {"<doc>"}})
	if err != nil {
		return err
	}
	if err := doc(part); err != nil {
		return err
	}
	return mw.Close()
}

// BenchmarkSealSOAPVsREST seals the same 100 KB PDF (PAdES B-B) over
// REST, over SOAP with the document inline (base64) and over SOAP with
// MTOM, with HTTP Basic, from parallel callers on one node. Each caller
// takes the three in turn, so all three see the same load on a shared
// machine; the figures are each transport's seals per second of its own
// time, and SOAP's as a share of REST's ("of-REST").
func BenchmarkSealSOAPVsREST(b *testing.B) {
	n := newNode(b)
	pdf := pdftest.Bytes(pdftest.Spec{Pad: 100 << 10})
	var mtom bytes.Buffer
	if err := mtomRequest(&mtom, sealEnvelope(xopInclude), func(w io.Writer) error { _, err := w.Write(pdf); return err }); err != nil {
		b.Fatal(err)
	}
	transports := []struct {
		name, path, contentType string
		body                    []byte
	}{
		{"REST", "/api/v1/seals?format=pades&level=B-B", "application/pdf", pdf},
		{"SOAPInline", "/soap", "text/xml; charset=utf-8", []byte(sealEnvelope(base64.StdEncoding.EncodeToString(pdf)))},
		{"SOAPMTOM", "/soap", mtomType, mtom.Bytes()},
	}
	var busy [3]atomic.Int64 // nanoseconds spent in each transport's requests
	post := func(i int) {
		tr := transports[i]
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, n.URL+tr.path, bytes.NewReader(tr.body))
		req.SetBasicAuth(n.ERPID, n.ERPSecret)
		req.Header.Set("Content-Type", tr.contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("%s: %s", tr.name, resp.Status)
		}
		busy[i].Add(int64(time.Since(start)))
	}
	b.SetBytes(int64(3 * len(pdf)))
	b.SetParallelism(2) // 4 callers on 2 cores, as a server sees them
	b.RunParallel(func(pb *testing.PB) {
		for k := 0; pb.Next(); k++ {
			for j := range transports {
				post((j + k) % len(transports))
			}
		}
	})
	// Each transport ran b.N seals; busy/N is its mean latency under the
	// shared load, and callers/latency its throughput.
	callers := float64(2 * runtime.GOMAXPROCS(0))
	rate := func(i int) float64 { return callers * float64(b.N) / (float64(busy[i].Load()) / 1e9) }
	for i, tr := range transports {
		b.ReportMetric(rate(i), tr.name+"-seals/s")
	}
	b.ReportMetric(rate(1)/rate(0), "inline-of-REST")
	b.ReportMetric(rate(2)/rate(0), "MTOM-of-REST")
}

// BenchmarkSealSOAPMTOM100MBRSS seals a 100 MB PDF sent as an MTOM
// attachment and reads the MTOM answer, and reports how far the peak
// resident set grew above the idle one (client and server together); the
// target is at most 64 MB.
func BenchmarkSealSOAPMTOM100MBRSS(b *testing.B) {
	// 100 MiB of padding and the PDF around it exceed the default limit.
	n := newNode(b, func(doc map[string]any) { doc["seal"].(map[string]any)["maxDocumentSize"] = 200 << 20 })
	var growth int64
	for b.Loop() {
		growth = max(growth, signingtest.PeakRSSGrowth(b, func() {
			// The PDF is made while it is sent: it is never in memory whole.
			pr, pw := io.Pipe()
			go func() {
				bw := bufio.NewWriterSize(pw, 64<<10)
				err := mtomRequest(bw, sealEnvelope(xopInclude), func(w io.Writer) error { return pdftest.Write(w, pdftest.Spec{Pad: 100 << 20}) })
				if err == nil {
					err = bw.Flush()
				}
				pw.CloseWithError(err)
			}()
			req, _ := http.NewRequest(http.MethodPost, n.URL+"/soap", pr)
			req.SetBasicAuth(n.ERPID, n.ERPSecret)
			req.Header.Set("Content-Type", mtomType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			got, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || got < 100<<20 {
				b.Fatalf("%s, %d bytes", resp.Status, got)
			}
		}))
	}
	b.ReportMetric(float64(growth)/(1<<20), "MB-peak-RSS-growth")
}
