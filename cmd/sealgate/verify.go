package main

import (
	"bytes"
	"crypto"
	_ "crypto/sha512" // SHA-384 and SHA-512 for renewed evidence records
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/trust"
)

// localAddr is the source address of command-line callers.
var localAddr = netip.MustParseAddr("127.0.0.1")

func init() { register(newVerifyCmd) }

// newVerifyCmd is `sealgate verify FILE`.
func newVerifyCmd(a *app) *cobra.Command {
	var sigFile, recordFile, serverURL string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify a sealed document: its seals, the evidence log's proof, an evidence record",
		Long: `Verify FILE: a sealed PDF, or any document with its detached signature
(--signature FILE.p7s). Without --server it checks offline against this
installation's data (trust roots, evidence log); with --server it asks a
sealgate server. --record checks an RFC 4998 evidence record for FILE.
Exit status 0 when valid, 1 when not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The document is streamed, never held in memory: it may be large.
			doc, err := os.Open(args[0])
			if err != nil {
				return fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "cannot read %s", args[0])
			}
			defer doc.Close()
			var sig []byte
			if sigFile != "" {
				if sig, err = os.ReadFile(sigFile); err != nil {
					return fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "cannot read %s", sigFile)
				}
			}
			var rep *seal.Report
			var roots func(token []byte) error
			if serverURL != "" {
				rep, err = verifyRemote(serverURL, doc, sig)
			} else {
				cfg, cerr := a.config()
				if cerr != nil {
					return cerr
				}
				srv, serr := server.New(cmd.Context(), cfg, a.logger())
				if serr != nil {
					return serr
				}
				defer srv.Close()
				rep, err = srv.Verifier.Verify(cmd.Context(), seal.VerifyRequest{Document: doc, Signature: sig})
				roots = srv.Verifier.VerifyTimestamp
			}
			if err != nil {
				return err
			}
			out := struct {
				*seal.Report
				Record *evidence.RecordReport `json:"record,omitempty"`
			}{Report: rep}
			valid := rep.Valid
			if recordFile != "" {
				der, err := os.ReadFile(recordFile)
				if err != nil {
					return fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "cannot read %s", recordFile)
				}
				// The record covers the sealed artefact: the PDF, or the .p7s.
				var object io.Reader = bytes.NewReader(sig)
				if sig == nil {
					if _, err := doc.Seek(0, io.SeekStart); err != nil {
						return err
					}
					object = doc
				}
				digests, err := recordDigests(object)
				if err != nil {
					return fault.Wrap(err, fault.Invalid, seal.CodeInputUnreadable, "cannot read %s", args[0])
				}
				if out.Record, err = evidence.VerifyEvidenceRecord(der, digests, roots); err != nil {
					return err
				}
				valid = valid && out.Record.OK
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				printReport(cmd.OutOrStdout(), rep, out.Record)
			}
			if !valid {
				return exitError(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sigFile, "signature", "", "detached CAdES signature (.p7s) over FILE")
	f.StringVar(&recordFile, "record", "", "RFC 4998 evidence record (.ers) for FILE")
	f.StringVar(&serverURL, "server", "", "verify with this sealgate server instead of offline")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// recordDigests hashes r once with every algorithm an evidence record may
// use (SHA-256, and SHA-384 or SHA-512 after hash-tree renewal).
func recordDigests(r io.Reader) (map[crypto.Hash][]byte, error) {
	hs := []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}
	ds := make([]hash.Hash, len(hs))
	ws := make([]io.Writer, len(hs))
	for i, h := range hs {
		ds[i] = h.New()
		ws[i] = ds[i]
	}
	if _, err := io.Copy(io.MultiWriter(ws...), r); err != nil {
		return nil, err
	}
	out := map[crypto.Hash][]byte{}
	for i, h := range hs {
		out[h] = ds[i].Sum(nil)
	}
	return out, nil
}

// verifyRemote posts the document (streamed) and its signature to a
// server's public verification endpoint.
func verifyRemote(base string, doc io.Reader, sig []byte) (*seal.Report, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if sig != nil {
				w, err := mw.CreateFormFile("signature", "signature.p7s")
				if err != nil {
					return err
				}
				if _, err := w.Write(sig); err != nil {
					return err
				}
			}
			w, err := mw.CreateFormFile("document", "document")
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, doc); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	resp, err := http.Post(strings.TrimRight(base, "/")+"/api/v1/verifications", mw.FormDataContentType(), pr)
	if err != nil {
		return nil, fault.Wrap(err, fault.Unavailable, "server_unreachable", "cannot reach %s", base)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fault.New(fault.Unavailable, "server_error", "%s answered %s: %s", base, resp.Status, bytes.TrimSpace(b))
	}
	var rep seal.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("verification report from %s: %w", base, err)
	}
	return &rep, nil
}

func printReport(w io.Writer, rep *seal.Report, rec *evidence.RecordReport) {
	mark := map[bool]string{true: "VALID", false: "NOT VALID"}
	fmt.Fprintf(w, "%s — %s\n", mark[rep.Valid], rep.Verdict)
	fmt.Fprintf(w, "document  sha256 %s, %d bytes (%s)\n", rep.DocumentSHA256, rep.Size, rep.Kind)
	if rep.PDF != nil {
		for i, s := range rep.PDF.Signatures {
			fmt.Fprintf(w, "seal %d    %s %s field %q: %s", i+1, s.Type, s.Level, s.Field, mark[s.Valid])
			if s.CoversWholeDocument {
				fmt.Fprint(w, ", covers the whole document")
			}
			fmt.Fprintln(w)
			if s.CMS != nil && s.CMS.Signer != "" {
				fmt.Fprintf(w, "          signer %s\n", s.CMS.Signer)
			}
			if s.Certification != 0 {
				text, _ := s.Certification.MarshalText()
				fmt.Fprintf(w, "          certification seal (DocMDP: %s)\n", text)
			}
			if s.CMS != nil && s.CMS.Timestamp != nil {
				fmt.Fprintf(w, "          timestamp %s by %s\n", s.CMS.Timestamp.GenTime.UTC().Format("2006-01-02 15:04:05Z"), s.CMS.Timestamp.TSA)
			}
			for _, e := range s.Errors {
				fmt.Fprintf(w, "          %s: %s\n", e.Code, e.Message)
			}
			for _, c := range s.MissingRevocation {
				fmt.Fprintf(w, "          no revocation data in the document for %s\n", c)
			}
			for _, c := range s.LaterChanges {
				fmt.Fprintf(w, "          changed later: %s\n", c)
			}
		}
		for _, e := range rep.PDF.Errors {
			fmt.Fprintf(w, "document  %s: %s\n", e.Code, e.Message)
		}
	}
	if c := rep.CMS; c != nil {
		fmt.Fprintf(w, "signature %s %s, signer %s\n", c.Level, mark[c.Valid], c.Signer)
		for _, e := range c.Errors {
			fmt.Fprintf(w, "          %s: %s\n", e.Code, e.Message)
		}
	}
	for _, q := range rep.Qualifications {
		printQualification(w, q)
	}
	if ev := rep.Evidence; ev != nil {
		fmt.Fprintf(w, "evidence  leaf %d of %d: %s (checkpoint seal checked: %v)\n", ev.Index, ev.Size, mark[ev.OK], ev.SealChecked)
		for _, p := range ev.Problems {
			fmt.Fprintf(w, "          %s: %s\n", p.Code, p.Message)
		}
	} else if rep.EvidencePending {
		fmt.Fprintln(w, "evidence  recorded; the proof is published with the next checkpoint")
	} else {
		fmt.Fprintln(w, "evidence  not recorded in this evidence log")
	}
	if rec != nil {
		fmt.Fprintf(w, "record    RFC 4998 evidence record: %s, %d archive timestamp(s)\n", mark[rec.OK], len(rec.Timestamps))
		for _, p := range rec.Problems {
			fmt.Fprintf(w, "          %s: %s\n", p.Code, p.Message)
		}
	}
}

// printQualification tells a seal's eIDAS qualification in words: the
// verdict, what it rests on, and the trusted-list service behind it.
func printQualification(w io.Writer, sq seal.SealQualification) {
	q := sq.Qualification
	what := "the signature"
	if sq.Field != "" {
		what = fmt.Sprintf("field %q", sq.Field)
	}
	when := "now"
	if q.AtSource == "signatureTimestamp" {
		when = "at the signature timestamp"
	}
	fmt.Fprintf(w, "eIDAS     %s: %s — %s (%s, %s)\n", what, q.Level, q.Words, when, q.At.Format("2006-01-02 15:04:05Z"))
	for _, r := range q.Reasons {
		fmt.Fprintf(w, "          %s\n", r)
	}
	if s := q.Service; s != nil {
		fmt.Fprintf(w, "          trusted list %s (sequence %d): %s, %s — %s since %s\n", s.Territory, s.Sequence, s.Provider, s.Name, trust.ShortName(s.Status), s.StatusSince.Format("2006-01-02 15:04:05Z"))
	}
}
