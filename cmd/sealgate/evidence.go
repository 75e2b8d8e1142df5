package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/evidence"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
	"github.com/sealgate/sealgate/server"
	"github.com/sealgate/sealgate/signing/cms"
)

func init() { register(newEvidenceCmd) }

// newEvidenceCmd is `sealgate evidence`: the evidence log.
func newEvidenceCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "the evidence log: checkpoints, evidence records and their renewal (evidence section of sealgate.yaml)",
	}
	cmd.AddCommand(newEvidenceCheckpointCmd(a), newEvidenceRenewCmd(a), newEvidenceShowCmd(a))
	return cmd
}

// openEvidence opens the log exactly as the server does (server.New): the
// same seal on checkpoints and the same TSA, including a development setup's
// in-process development TSA. The returned function releases the node.
func openEvidence(ctx context.Context, a *app) (*evidence.Log, func(), error) {
	cfg, err := a.config()
	if err != nil {
		return nil, nil, err
	}
	srv, err := server.New(ctx, cfg, a.logger())
	if err != nil {
		return nil, nil, err
	}
	return srv.Evidence, func() { srv.Close() }, nil
}

// newEvidenceCheckpointCmd is `sealgate evidence checkpoint`.
func newEvidenceCheckpointCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "make a checkpoint of the log now (if it has new leaves) and print the latest",
		Long: `checkpoint signs the current tree size and root hash with the log key, seals
the note when evidence.seal is configured, and timestamps it (and issues the
RFC 4998 archive timestamp of its new documents) when a tsa section is
configured. Without new leaves it prints the latest checkpoint unchanged.
The log's public key, needed to verify checkpoints, is printed on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := openEvidence(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer done()
			cp, err := l.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "log key: %s\n", l.VerifierKey())
			if asJSON {
				return evidenceJSON(cmd.OutOrStdout(), cp)
			}
			_, err = io.WriteString(cmd.OutOrStdout(), cp.Note)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checkpoint as JSON (with seal and timestamp)")
	return cmd
}

// newEvidenceRenewCmd is `sealgate evidence renew`.
func newEvidenceRenewCmd(a *app) *cobra.Command {
	var (
		olderThan                   time.Duration
		hashName, record, doc, outF string
	)
	cmd := &cobra.Command{
		Use:   "renew",
		Short: "renew archive timestamps (RFC 4998 §5.2), or an evidence record's hash tree with --hash",
		Long: `Without --record, renew has the archive timestamps of all checkpoints whose
newest timestamp is older than --older-than (default: the configuration's
evidence.renewAfter) timestamped again, in one request
to the configured TSA, and gives checkpoints made without a TSA their first one.

With --record FILE.ers --document FILE --hash sha512 it performs hash-tree
renewal (a new hash algorithm) of that evidence record, as the document's
holder must: sealgate does not keep documents. The renewed record is written
to -o (default: FILE.ers, replaced atomically).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, done, err := openEvidence(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer done()
			if record == "" {
				if !cmd.Flags().Changed("older-than") {
					if olderThan = l.RenewAfter(); olderThan == 0 {
						return fault.New(fault.Invalid, seal.CodeBadRequest, "evidence.renewAfter is not configured: give --older-than (0s renews every checkpoint)")
					}
				}
				n, err := l.Renew(cmd.Context(), time.Now().Add(-olderThan))
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "renewed the archive timestamps of %d checkpoints\n", n)
				return nil
			}
			return renewRecordHashTree(cmd, l, record, doc, hashName, outF)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&olderThan, "older-than", 0, "renew only timestamps older than this (default: evidence.renewAfter; 0s: all)")
	f.StringVar(&record, "record", "", "hash-tree renewal of this evidence record (.ers)")
	f.StringVar(&doc, "document", "", "the document the record is for (with --record)")
	f.StringVar(&hashName, "hash", "sha512", "the new hash algorithm: sha256, sha384 or sha512 (with --record)")
	f.StringVarP(&outF, "output", "o", "", "where to write the renewed record (default: replace --record)")
	return cmd
}

// renewRecordHashTree is `evidence renew --record`: RFC 4998 hash-tree renewal.
func renewRecordHashTree(cmd *cobra.Command, l *evidence.Log, record, docFile, hashName, out string) error {
	h, ok := cms.HashByName(hashName)
	if !ok {
		return fault.New(fault.Invalid, "bad_request", "--hash %q: use sha256, sha384 or sha512", hashName)
	}
	if docFile == "" {
		return fault.New(fault.Invalid, "bad_request", "--record needs --document: the new hash tree covers the document itself")
	}
	der, err := os.ReadFile(record)
	if err != nil {
		return err
	}
	f, err := os.Open(docFile)
	if err != nil {
		return err
	}
	defer f.Close()
	renewed, err := evidence.RenewRecordHashTree(cmd.Context(), der, f, h, l.Timestamper())
	if err != nil {
		return err
	}
	if out == "" {
		out = record
	}
	if err := writeFileAtomic(out, bytes.NewReader(renewed)); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "renewed the hash tree of %s with %s → %s\n", record, hashName, out)
	return nil
}

// newEvidenceShowCmd is `sealgate evidence show SHA256`.
func newEvidenceShowCmd(a *app) *cobra.Command {
	var recordFile string
	cmd := &cobra.Command{
		Use:   "show SHA256",
		Short: "print the evidence (entry, inclusion proof, checkpoint) for a document digest",
		Long: `show looks the document up by its SHA-256 (sealed or original document) and
prints the newest entry naming it with its inclusion proof to the latest
checkpoint, as JSON. With --record it also writes the RFC 4998 evidence
record (DER) to a file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := evidence.ParseSHA256(args[0])
			if err != nil {
				return err
			}
			l, done, err := openEvidence(cmd.Context(), a)
			if err != nil {
				return err
			}
			defer done()
			ev, err := l.Prove(cmd.Context(), h)
			if err != nil {
				return err
			}
			if recordFile != "" {
				rec, err := l.EvidenceRecord(cmd.Context(), h)
				if err != nil {
					return err
				}
				if err := os.WriteFile(recordFile, rec, 0o644); err != nil {
					return err
				}
			}
			return evidenceJSON(cmd.OutOrStdout(), struct {
				*evidence.Evidence
				LogKey string `json:"logKey"`
			}{ev, l.VerifierKey()})
		},
	}
	cmd.Flags().StringVar(&recordFile, "record", "", "also write the RFC 4998 evidence record (DER) to this file")
	return cmd
}

func evidenceJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
