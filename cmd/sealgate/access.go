package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/devpki"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/secret"
	"github.com/sealgate/sealgate/server"
)

func init() {
	register(newUserCmd)
	register(newGroupCmd)
	register(newProcessCmd)
	register(newRuleCmd)
	register(newAuditCmd)
}

// CodeAuditTampered is the CLI's answer when the audit trail does not verify.
const CodeAuditTampered fault.Code = "audit_tampered"

// withAccess opens the access service on the configured database for one
// command. Changes made here reach a running server's next decision.
func withAccess(cmd *cobra.Command, a *app, fn func(ctx context.Context, svc *access.Service) error) error {
	ctx := cmd.Context()
	cfg, err := a.config()
	if err != nil {
		return err
	}
	opts, err := server.AccessOptions(cfg)
	if err != nil {
		return err
	}
	opts.Logger = a.logger()
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	svc, err := access.Open(ctx, db, opts)
	if err != nil {
		return err
	}
	defer svc.Close()
	return fn(ctx, svc)
}

// cliActor names the operator in the audit trail.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}

// printJSONOr prints v as JSON when asJSON, else through table.
func printJSONOr(w io.Writer, asJSON bool, v any, table func(*tabwriter.Writer)) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// passwordFlags read a new password from a file or environment variable,
// never from the command line (where ps and shell history would show it).
type passwordFlags struct{ ref secret.Ref }

func (p *passwordFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.ref.File, "password-file", "", "read the new password from this file")
	cmd.Flags().StringVar(&p.ref.Env, "password-env", "", "read the new password from this environment variable")
}

// value returns the given password, or a generated one and true when none was given.
func (p *passwordFlags) value() (string, bool, error) {
	if p.ref.IsZero() {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return "", false, err
		}
		return hex.EncodeToString(b), true, nil
	}
	v, err := p.ref.Value()
	return string(v), false, err
}

func newUserCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "people who log in: local users and directory users"}

	var nu access.NewUser
	var pw passwordFlags
	add := &cobra.Command{
		Use:   "add LOGIN",
		Short: "add a local user (the password is generated and printed once unless --password-file or --password-env)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				nu.Login = args[0]
				var generated bool
				var err error
				if nu.Password, generated, err = pw.value(); err != nil {
					return err
				}
				if _, err := svc.AddUser(ctx, nu, cliActor()); err != nil {
					return err
				}
				if generated {
					fmt.Fprintf(cmd.OutOrStdout(), "user %s added; one-time password (shown once): %s\n", nu.Login, nu.Password)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "user %s added\n", nu.Login)
				}
				return nil
			})
		},
	}
	add.Flags().StringVar(&nu.DisplayName, "display-name", "", "full name")
	add.Flags().StringVar(&nu.Mail, "mail", "", "e-mail address")
	add.Flags().StringSliceVar(&nu.Roles, "role", nil, "administrative role: admin or auditor (repeatable)")
	pw.add(add)

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "list users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				us, err := svc.Users(ctx)
				if err != nil {
					return err
				}
				return printJSONOr(cmd.OutOrStdout(), asJSON, us, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "LOGIN\tSOURCE\tSTATE\tTOTP\tLOCKED\tROLES\tGROUPS")
					for _, u := range us {
						src, state, totp := "local", "enabled", "no"
						if u.Source != "" {
							src = u.Source
						}
						if u.Disabled {
							state = "disabled"
						}
						if u.TOTP {
							totp = "yes"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Login, src, state, totp, lockState(u.Locks), strings.Join(u.Roles, ","), strings.Join(u.Groups, ","))
					}
				})
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var enable bool
	disable := &cobra.Command{
		Use:   "disable LOGIN",
		Short: "disable a user at once: sessions end, approvals are cancelled (--enable reverses)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.SetUserDisabled(ctx, args[0], !enable, cliActor())
			})
		},
	}
	disable.Flags().BoolVar(&enable, "enable", false, "enable the user again")

	var npw passwordFlags
	passwd := &cobra.Command{
		Use:   "passwd LOGIN",
		Short: "set a local user's password (generated and printed once unless --password-file or --password-env)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				v, generated, err := npw.value()
				if err != nil {
					return err
				}
				if err := svc.SetPassword(ctx, args[0], v, cliActor()); err != nil {
					return err
				}
				if generated {
					fmt.Fprintf(cmd.OutOrStdout(), "one-time password for %s (shown once): %s\n", args[0], v)
				}
				return nil
			})
		},
	}
	npw.add(passwd)

	var qrFile string
	enroll := &cobra.Command{
		Use:   "totp-enroll LOGIN",
		Short: "start TOTP enrollment: prints the otpauth:// URL (and writes its QR code with --qr); finish with totp-confirm",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				en, err := svc.EnrollTOTP(ctx, args[0], cliActor())
				if err != nil {
					return err
				}
				if qrFile != "" {
					if err := os.WriteFile(qrFile, en.QRCode, 0o600); err != nil {
						return err
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), en.URL)
				return nil
			})
		},
	}
	enroll.Flags().StringVar(&qrFile, "qr", "", "write the QR code PNG to this file")

	confirm := &cobra.Command{
		Use:   "totp-confirm LOGIN CODE",
		Short: "finish TOTP enrollment with a code from the app; prints one-time recovery codes once",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				codes, err := svc.ConfirmTOTP(ctx, args[0], args[1], cliActor())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "TOTP active for %s; recovery codes (each works once, shown once):\n", args[0])
				for _, c := range codes {
					fmt.Fprintln(cmd.OutOrStdout(), c)
				}
				return nil
			})
		},
	}

	var roles []string
	setRoles := &cobra.Command{
		Use:   "roles LOGIN",
		Short: "set a user's administrative roles (--role admin, --role auditor; none clears them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.SetRoles(ctx, args[0], roles, cliActor())
			})
		},
	}
	setRoles.Flags().StringSliceVar(&roles, "role", nil, "role: admin or auditor (repeatable)")

	reset := &cobra.Command{
		Use:   "totp-reset LOGIN",
		Short: "remove a user's TOTP key and recovery codes (a lost phone); enroll again afterwards",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.ResetTOTP(ctx, args[0], cliActor())
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove LOGIN",
		Short: "delete a user with its memberships, credentials and the rules naming it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.DeprovisionUser(ctx, args[0], cliActor())
			})
		},
	}
	cmd.AddCommand(add, list, disable, passwd, enroll, confirm, reset, setRoles, remove, unlockCmd(a, access.KindUser, "LOGIN"))
	return cmd
}

func newGroupCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "groups of users; rules granted to a group apply to its members"}
	var requireTOTP bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "add a group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				_, err := svc.AddGroup(ctx, args[0], requireTOTP, cliActor())
				return err
			})
		},
	}
	add.Flags().BoolVar(&requireTOTP, "require-totp", false, "members must log in with TOTP")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "list groups and their members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				gs, err := svc.Groups(ctx)
				if err != nil {
					return err
				}
				return printJSONOr(cmd.OutOrStdout(), asJSON, gs, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "GROUP\tSOURCE\tTOTP\tMEMBERS")
					for _, g := range gs {
						src, totp := "local", "optional"
						if g.Source != "" {
							src = g.Source
						}
						if g.RequireTOTP {
							totp = "required"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, src, totp, strings.Join(g.Members, ","))
					}
				})
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	member := func(use, short string, change func(*access.Service) func(context.Context, string, string, string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " GROUP LOGIN",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
					return change(svc)(ctx, args[0], args[1], cliActor())
				})
			},
		}
	}
	var off bool
	setTOTP := &cobra.Command{
		Use:   "require-totp NAME",
		Short: "make members log in with TOTP (--off lifts it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.SetGroupTOTP(ctx, args[0], !off, cliActor())
			})
		},
	}
	setTOTP.Flags().BoolVar(&off, "off", false, "no longer require TOTP")
	cmd.AddCommand(add, list, setTOTP,
		member("add-member", "put a local user into a group", func(s *access.Service) func(context.Context, string, string, string) error { return s.AddMember }),
		member("remove-member", "take a local user out of a group", func(s *access.Service) func(context.Context, string, string, string) error { return s.RemoveMember }))
	return cmd
}

func newProcessCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "process", Short: "machine clients: client secrets, certificates, revocation"}
	var desc string
	var roles []string
	add := &cobra.Command{
		Use:   "add CLIENT_ID",
		Short: "add a process; its client secret is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				_, sec, err := svc.AddProcess(ctx, args[0], desc, roles, cliActor())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "clientId: %s\nclientSecret: %s\n(the secret is shown once)\n", args[0], sec)
				return nil
			})
		},
	}
	add.Flags().StringVar(&desc, "description", "", "what the process is")
	add.Flags().StringSliceVar(&roles, "role", nil, "administrative role: admin or auditor (repeatable)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "list processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				ps, err := svc.Processes(ctx)
				if err != nil {
					return err
				}
				return printJSONOr(cmd.OutOrStdout(), asJSON, ps, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "CLIENT ID\tSTATE\tSECRETS\tCERTIFICATES\tLOCKED\tROLES\tDESCRIPTION")
					for _, p := range ps {
						state := "active"
						if p.Revoked {
							state = "revoked"
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", p.ClientID, state, p.Secrets, len(p.Certs), lockState(p.Locks), strings.Join(p.Roles, ","), p.Description)
					}
				})
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var overlap time.Duration
	rotate := &cobra.Command{
		Use:   "rotate-secret CLIENT_ID",
		Short: "issue a new client secret; the old one stops at once, or after --overlap",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				sec, err := svc.RotateSecret(ctx, args[0], overlap, cliActor())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "clientSecret: %s\n(the secret is shown once)\n", sec)
				return nil
			})
		},
	}
	rotate.Flags().DurationVar(&overlap, "overlap", 0, "keep the old secrets working this long (e.g. 24h)")

	revoke := &cobra.Command{
		Use:   "revoke CLIENT_ID",
		Short: "revoke a process: secrets, certificates and tokens stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.RevokeProcess(ctx, args[0], cliActor())
			})
		},
	}

	var pc access.ProcessCert
	var certFile string
	addCert := &cobra.Command{
		Use:   "add-cert CLIENT_ID",
		Short: "map TLS client certificates to a process: --cert FILE.pem or --fingerprint (pins one certificate), or --subject DN",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if certFile != "" {
				certs, err := devpki.ReadCertsPEM(certFile)
				if err != nil {
					return fault.Wrap(err, fault.Invalid, access.CodeInvalidInput, "certificate file %q could not be read", certFile)
				}
				if len(certs) == 0 {
					return fault.New(fault.Invalid, access.CodeInvalidInput, "certificate file %q holds no certificate", certFile)
				}
				sum := sha256.Sum256(certs[0].Raw)
				pc.Fingerprint = hex.EncodeToString(sum[:])
			}
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.AddProcessCert(ctx, args[0], pc, cliActor())
			})
		},
	}
	addCert.Flags().StringVar(&certFile, "cert", "", "PEM file whose first certificate is pinned by its SHA-256 fingerprint")
	addCert.Flags().StringVar(&pc.Fingerprint, "fingerprint", "", "SHA-256 fingerprint of the DER certificate (hex, colons allowed)")
	addCert.Flags().StringVar(&pc.Subject, "subject", "", "subject DN, matched when the TLS listener verified the chain")

	cmd.AddCommand(add, list, rotate, revoke, addCert, unlockCmd(a, access.KindProcess, "CLIENT_ID"))
	return cmd
}

// unlockCmd is `user unlock` / `process unlock`: lift an account's locks
// at once, from every source (a running server sees it on the next attempt).
func unlockCmd(a *app, kind access.Kind, arg string) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock " + arg,
		Short: "lift the lockouts of a " + string(kind) + " after failed logins, from every source, at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				n, err := svc.Unlock(ctx, kind, args[0], cliActor())
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s unlocked (%d locks lifted)\n", kind, args[0], n)
				return nil
			})
		},
	}
}

// lockState says in a list column whether and until when an account is
// locked: for everyone, or for how many sources.
func lockState(locks []access.Lock) string {
	if len(locks) == 0 {
		return "no"
	}
	var until time.Time
	everyone := false
	for _, l := range locks {
		if l.Until.After(until) {
			until = l.Until
		}
		everyone = everyone || l.Source == ""
	}
	who := fmt.Sprintf("%d sources", len(locks))
	switch {
	case everyone:
		who = "all sources"
	case len(locks) == 1:
		who = locks[0].Source
	}
	return fmt.Sprintf("until %s (%s)", until.UTC().Format(time.RFC3339), who)
}

func newRuleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "rule", Short: "rules granting seals to users, groups and processes (everything else is denied)"}
	var r access.Rule
	var user, group, process, notBefore, notAfter, strength, approval string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "add a rule: one of --user, --group, --process, and --seal (or --seal '*')",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Name = args[0]
			r.Strength, r.Approval = access.Strength(strength), access.ApprovalMode(approval)
			switch {
			case user != "" && group == "" && process == "":
				r.Subject = access.Subject{Kind: access.SubjectUser, Name: user}
			case group != "" && user == "" && process == "":
				r.Subject = access.Subject{Kind: access.SubjectGroup, Name: group}
			case process != "" && user == "" && group == "":
				r.Subject = access.Subject{Kind: access.SubjectProcess, Name: process}
			default:
				return fault.New(fault.Invalid, access.CodeRuleInvalid, "rule %q: give exactly one of --user, --group and --process", r.Name)
			}
			for _, tv := range []struct {
				flag string
				v    string
				dst  **time.Time
			}{{"not-before", notBefore, &r.NotBefore}, {"not-after", notAfter, &r.NotAfter}} {
				if tv.v == "" {
					continue
				}
				t, err := time.Parse(time.RFC3339, tv.v)
				if err != nil {
					return fault.New(fault.Invalid, access.CodeRuleInvalid, "rule %q: --%s %q is not an RFC 3339 time", r.Name, tv.flag, tv.v)
				}
				*tv.dst = &t
			}
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				_, err := svc.AddRule(ctx, r, cliActor())
				return err
			})
		},
	}
	f := add.Flags()
	f.StringVar(&user, "user", "", "grant to this user login")
	f.StringVar(&group, "group", "", "grant to this group")
	f.StringVar(&process, "process", "", "grant to this process client id")
	f.StringSliceVar(&r.Seals, "seal", nil, "seal id, or '*' for every seal (repeatable)")
	f.StringSliceVar(&r.Formats, "format", nil, "allowed format: pades, cades (repeatable; default any)")
	f.StringSliceVar(&r.Levels, "level", nil, "allowed level: B-B, B-T, B-LT, B-LTA (repeatable; default any)")
	f.StringVar(&strength, "strength", "", "required authentication: password, password+totp, client_cert, client_secret")
	f.StringVar(&approval, "approval", "", "require a fresh TOTP approval per document or per batch")
	f.IntVar(&r.ApprovalMinutes, "approval-minutes", 0, "how old an approval may be (default 5)")
	f.StringVar(&notBefore, "not-before", "", "rule applies from this RFC 3339 time")
	f.StringVar(&notAfter, "not-after", "", "rule applies until this RFC 3339 time")
	f.StringSliceVar(&r.Networks, "network", nil, "allowed source network CIDR (repeatable; default any)")
	f.IntVar(&r.DailyQuota, "daily-quota", 0, "documents per UTC day (default unlimited)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "list rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				rs, err := svc.Rules(ctx)
				if err != nil {
					return err
				}
				return printJSONOr(cmd.OutOrStdout(), asJSON, rs, func(tw *tabwriter.Writer) {
					fmt.Fprintln(tw, "RULE\tSUBJECT\tSEALS\tCONDITIONS")
					for _, r := range rs {
						fmt.Fprintf(tw, "%s\t%s:%s\t%s\t%s\n", r.Name, r.Subject.Kind, r.Subject.Name, strings.Join(r.Seals, ","), ruleConditions(r))
					}
				})
			})
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "remove a rule; running servers stop applying it on their next decision",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				return svc.RemoveRule(ctx, args[0], cliActor())
			})
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

// ruleConditions renders a rule's conditions on one line.
func ruleConditions(r access.Rule) string {
	var c []string
	add := func(name string, v []string) {
		if len(v) > 0 {
			c = append(c, name+"="+strings.Join(v, ","))
		}
	}
	add("formats", r.Formats)
	add("levels", r.Levels)
	add("networks", r.Networks)
	if r.Strength != "" {
		c = append(c, "strength="+string(r.Strength))
	}
	if r.Approval != access.ApprovalNone {
		c = append(c, fmt.Sprintf("approval=%s(%dmin)", r.Approval, r.ApprovalMinutes))
	}
	if r.NotBefore != nil {
		c = append(c, "from="+r.NotBefore.Format(time.RFC3339))
	}
	if r.NotAfter != nil {
		c = append(c, "until="+r.NotAfter.Format(time.RFC3339))
	}
	if r.DailyQuota > 0 {
		c = append(c, fmt.Sprintf("quota=%d/day", r.DailyQuota))
	}
	if len(c) == 0 {
		return "-"
	}
	return strings.Join(c, " ")
}

func newAuditCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "the tamper-evident audit trail"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "recompute the hash chain and check it against its anchor in the evidence log; fails with audit_tampered naming the first changed or missing event",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			srv, err := server.New(cmd.Context(), cfg, a.logger())
			if err != nil {
				return err
			}
			defer srv.Close()
			rep, err := srv.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if !rep.OK {
				return fault.New(fault.Conflict, CodeAuditTampered, "audit trail broken at event %d: %s", rep.FirstBad, rep.Problem)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit trail intact: %d events, head %s", rep.Count, hex.EncodeToString(rep.Head))
			if rep.AnchorCount > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; first %d events anchored at evidence leaf %d", rep.AnchorCount, rep.AnchorLeaf)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	var after int64
	var out string
	export := &cobra.Command{
		Use:   "export",
		Short: "write the audit trail as JSON lines (to standard output, or -o FILE)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAccess(cmd, a, func(ctx context.Context, svc *access.Service) error {
				if out == "" {
					return svc.ExportAudit(ctx, cmd.OutOrStdout(), after)
				}
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				return errors.Join(svc.ExportAudit(ctx, f, after), f.Close())
			})
		},
	}
	export.Flags().Int64Var(&after, "after", 0, "only events with a larger id")
	export.Flags().StringVarP(&out, "output", "o", "", "write to this file")
	cmd.AddCommand(verify, export)
	return cmd
}
