"""Drives sealgate's SOAP endpoint with python3-zeep, as an integrator would.

usage: zeep_client.py URL CLIENT_ID SECRET PDF DOC OUTDIR

Reads the WSDL from URL/soap?wsdl, seals PDF (PAdES) and DOC (CAdES)
inline with a WS-Security UsernameToken, runs a batch job and fetches its
results, and seals again as MTOM with HTTP Basic
(zeep builds the envelope; the script packages it as MTOM/XOP, and zeep
reads the MTOM answer), verifies what it got, and writes the outputs to
OUTDIR for pdfsig and openssl. Prints one JSON line of findings.
"""
import json
import sys
import time
import uuid

import requests
from lxml import etree
from zeep import Client
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

url, client_id, secret, pdf_path, doc_path, out = sys.argv[1:]
pdf = open(pdf_path, "rb").read()
doc = open(doc_path, "rb").read()
found = {}

ws = Client(url + "/soap?wsdl", wsse=UsernameToken(client_id, secret))
found["seals"] = list(ws.service.ListSeals() or [])

r = ws.service.SealDocument(format="pades", reason="Invoice", document=pdf)
open(out + "/inline.pdf", "wb").write(r.sealedDocument)
found["inlinePades"] = {"level": r.result.level, "size": r.result.size, "prefix": r.sealedDocument.startswith(pdf)}

r = ws.service.SealDocument(format="cades", level="B-B", document=doc)
open(out + "/inline.p7s", "wb").write(r.sealedDocument)
found["inlineCades"] = r.result.format

rep = ws.service.VerifyDocument(document=open(out + "/inline.pdf", "rb").read())
found["verifyPades"] = {"valid": rep.valid, "kind": rep.kind, "signatures": len(rep.pdf.signature)}
rep = ws.service.VerifyDocument(document=doc, signature=open(out + "/inline.p7s", "rb").read())
found["verifyCades"] = {"valid": rep.valid, "kind": rep.kind}

# MTOM: zeep makes the envelope, the document goes as an XOP attachment.
session = requests.Session()
session.auth = (client_id, secret)
basic = Client(url + "/soap?wsdl", transport=Transport(session=session))


def mtom_call(operation, payload, **kw):
    envelope = basic.create_message(basic.service, operation, document=b"x", **kw)
    ns = {"s": "urn:sealgate:v1"}
    el = envelope.find(".//s:document", ns)
    el.text = None
    inc = etree.SubElement(el, "{http://www.w3.org/2004/08/xop/include}Include")
    inc.set("href", "cid:doc@zeep")
    boundary = "zeep-" + uuid.uuid4().hex
    body = (
        b"--" + boundary.encode() + b"\r\n"
        b'Content-Type: application/xop+xml; charset=UTF-8; type="text/xml"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\nContent-ID: <root@zeep>\r\n\r\n"
        + etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        + b"\r\n--" + boundary.encode() + b"\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <doc@zeep>\r\n\r\n"
        + payload + b"\r\n--" + boundary.encode() + b"--\r\n"
    )
    headers = {
        "Content-Type": 'multipart/related; type="application/xop+xml"; start="<root@zeep>"; start-info="text/xml"; boundary="%s"' % boundary,
        "SOAPAction": '"urn:sealgate:v1/%s"' % operation,
    }
    resp = session.post(url + "/soap", data=body, headers=headers)
    found.setdefault("mtomAnswers", []).append(resp.headers.get("Content-Type", "").split(";")[0])
    binding = basic.service._binding
    return binding.process_reply(basic, binding._operations[operation], resp)


r = mtom_call("SealDocument", pdf, format="pades")
open(out + "/mtom.pdf", "wb").write(r.sealedDocument)
found["mtomPades"] = r.result.level
r = mtom_call("SealDocument", doc, format="cades", level="B-B")
open(out + "/mtom.p7s", "wb").write(r.sealedDocument)
found["mtomCades"] = r.result.format
rep = mtom_call("VerifyDocument", open(out + "/mtom.pdf", "rb").read())
found["verifyMtom"] = rep.valid

# A batch: submitted, followed until done, each sealed document fetched and verified.
job = ws.service.SealBatch(format="pades", reason="Batch", document=[{"name": "a.pdf", "content": pdf}, {"name": "b.pdf", "content": pdf}])
found["batchSubmitted"] = {"state": job.state, "documents": len(job.document)}
for _ in range(300):
    job = ws.service.GetJobStatus(jobId=job.id)
    if job.state in ("done", "failed", "cancelled"):
        break
    time.sleep(0.1)
found["batchState"] = job.state
found["batchVerified"] = []
for d in job.document:
    r = ws.service.GetSealedDocument(jobId=job.id, n=d.n)
    open("%s/batch-%d.pdf" % (out, d.n), "wb").write(r.sealedDocument)
    found["batchVerified"].append([r.name, ws.service.VerifyDocument(document=r.sealedDocument).valid])

try:
    Client(url + "/soap?wsdl", wsse=UsernameToken(client_id, "sgp_wrong")).service.ListSeals()
except Exception as e:  # zeep.exceptions.Fault
    found["wrongPassword"] = {"code": getattr(e, "code", None), "detail": e.detail.findtext(".//{urn:sealgate:v1}code") if getattr(e, "detail", None) is not None else None}

print(json.dumps(found))
