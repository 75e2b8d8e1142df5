package access

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/fault"
)

// SubjectKind says what a rule's subject is.
type SubjectKind string

// Subject kinds.
const (
	SubjectUser    SubjectKind = "user"
	SubjectGroup   SubjectKind = "group"
	SubjectProcess SubjectKind = "process"
)

// Subject names who a rule grants to: a user login, group name or process client id.
type Subject struct {
	Kind SubjectKind `json:"kind"`
	Name string      `json:"name"`
}

// Strength is the authentication a rule requires.
type Strength string

// Strengths. The empty strength accepts any successful authentication.
const (
	StrengthPassword     Strength = "password"
	StrengthPasswordTOTP Strength = "password+totp"
	StrengthClientCert   Strength = "client_cert"
	StrengthClientSecret Strength = "client_secret"
)

// ApprovalMode says whether a person must approve with a fresh TOTP.
type ApprovalMode string

// Approval modes.
const (
	// ApprovalNone needs no approval.
	ApprovalNone ApprovalMode = ""
	// ApprovalDocument needs one approval per document: batches of one only.
	ApprovalDocument ApprovalMode = "document"
	// ApprovalBatch needs one approval per batch.
	ApprovalBatch ApprovalMode = "batch"
)

// AnySeal in Rule.Seals grants every seal.
const AnySeal = "*"

// Rule grants a subject the use of seals under conditions. Everything not
// granted by a rule is denied.
type Rule struct {
	ID      int64    `json:"id"`
	Name    string   `json:"name"`
	Subject Subject  `json:"subject"`
	Seals   []string `json:"seals"`
	// Formats (pades, cades) and Levels (B-B, B-T, B-LT, B-LTA) allowed; empty means any.
	Formats []string `json:"formats,omitempty"`
	Levels  []string `json:"levels,omitempty"`
	// Strength is the authentication required.
	Strength Strength `json:"strength,omitempty"`
	// Approval requires a fresh TOTP approval, at most ApprovalMinutes
	// old (default 5), consumed by the decision.
	Approval        ApprovalMode `json:"approval,omitempty"`
	ApprovalMinutes int          `json:"approvalMinutes,omitempty"`
	// NotBefore and NotAfter bound when the rule applies.
	NotBefore *time.Time `json:"notBefore,omitempty"`
	NotAfter  *time.Time `json:"notAfter,omitempty"`
	// Networks are the CIDRs callers must come from; empty means any.
	Networks []string `json:"networks,omitempty"`
	// DailyQuota caps the documents sealed under this rule per UTC day; 0 means no cap.
	DailyQuota int `json:"dailyQuota,omitempty"`
}

// conditions is the stored JSON of a rule: every field but id, name and
// subject, which have columns of their own. The shallower fields shadow the
// rule's own in encoding/json and, being nil, are left out.
type conditions struct {
	*Rule
	ID      *struct{} `json:"id,omitempty"`
	Name    *struct{} `json:"name,omitempty"`
	Subject *struct{} `json:"subject,omitempty"`
}

func ruleInvalid(r Rule, format string, args ...any) error {
	return fault.New(fault.Invalid, CodeRuleInvalid, "rule %q: "+format, append([]any{r.Name}, args...)...)
}

// validate checks a rule before it is stored.
func (r *Rule) validate() error {
	if err := validName("rule name", r.Name); err != nil {
		return err
	}
	if len(r.Seals) == 0 {
		return ruleInvalid(*r, "names no seal (use %q for every seal)", AnySeal)
	}
	for _, f := range r.Formats {
		if f != "pades" && f != "cades" {
			return ruleInvalid(*r, "format %q is not pades or cades", f)
		}
	}
	for _, l := range r.Levels {
		if !slices.Contains([]string{"B-B", "B-T", "B-LT", "B-LTA"}, l) {
			return ruleInvalid(*r, "level %q is not B-B, B-T, B-LT or B-LTA", l)
		}
	}
	userSubject := r.Subject.Kind == SubjectUser || r.Subject.Kind == SubjectGroup
	switch r.Subject.Kind {
	case SubjectUser, SubjectGroup, SubjectProcess:
	default:
		return ruleInvalid(*r, "subject kind %q is not user, group or process", r.Subject.Kind)
	}
	switch r.Strength {
	case "":
	case StrengthPassword, StrengthPasswordTOTP:
		if !userSubject {
			return ruleInvalid(*r, "strength %q applies to users, not to process %q", r.Strength, r.Subject.Name)
		}
	case StrengthClientCert, StrengthClientSecret:
		if userSubject {
			return ruleInvalid(*r, "strength %q applies to processes, not to %s %q", r.Strength, r.Subject.Kind, r.Subject.Name)
		}
	default:
		return ruleInvalid(*r, "strength %q is not password, password+totp, client_cert or client_secret", r.Strength)
	}
	switch r.Approval {
	case ApprovalNone:
	case ApprovalDocument, ApprovalBatch:
		if !userSubject {
			return ruleInvalid(*r, "approval needs a person; process %q cannot approve", r.Subject.Name)
		}
		if r.ApprovalMinutes == 0 {
			r.ApprovalMinutes = 5
		}
		if r.ApprovalMinutes < 0 {
			return ruleInvalid(*r, "approval age of %d minutes is negative", r.ApprovalMinutes)
		}
	default:
		return ruleInvalid(*r, "approval %q is not document or batch", r.Approval)
	}
	for _, n := range r.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return ruleInvalid(*r, "network %q is not a CIDR", n)
		}
	}
	if r.NotBefore != nil && r.NotAfter != nil && !r.NotAfter.After(*r.NotBefore) {
		return ruleInvalid(*r, "notAfter %s is not after notBefore %s", r.NotAfter, r.NotBefore)
	}
	if r.DailyQuota < 0 {
		return ruleInvalid(*r, "daily quota %d is negative", r.DailyQuota)
	}
	return nil
}

func subjectID(ctx context.Context, q queryer, sub Subject) (int64, error) {
	switch sub.Kind {
	case SubjectUser:
		return lookupUserID(ctx, q, sub.Name)
	case SubjectGroup:
		return lookupGroupID(ctx, q, sub.Name)
	default:
		return lookupProcessID(ctx, q, sub.Name)
	}
}

// AddRule stores a rule; it takes effect on the next decision of every
// sealgate process on this database.
func (s *Service) AddRule(ctx context.Context, r Rule, actor string) (Rule, error) {
	if err := r.validate(); err != nil {
		return Rule{}, err
	}
	if err := s.checkRuleSeals(r); err != nil {
		return Rule{}, err
	}
	cond, err := json.Marshal(conditions{Rule: &r})
	if err != nil {
		return Rule{}, internal(err, "encode rule")
	}
	err = s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		sid, err := subjectID(ctx, tx, r.Subject)
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM access_rules WHERE name = ?`, r.Name).Scan(&n); err != nil {
			return internal(err, "check rule name")
		}
		if n > 0 {
			return fault.New(fault.Conflict, CodeRuleInvalid, "rule %q already exists", r.Name)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO access_rules (name, subject_kind, subject_id, conditions, created_at) VALUES (?, ?, ?, ?, ?)`,
			r.Name, string(r.Subject.Kind), sid, string(cond), s.nowMS())
		if err != nil {
			return internal(err, "add rule")
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return internal(err, "add rule")
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "rule.add", Actor: actor, Subject: "rule:" + r.Name, Detail: map[string]string{
			"subject": string(r.Subject.Kind) + ":" + r.Subject.Name, "conditions": string(cond)}})
	})
	if err != nil {
		return Rule{}, err
	}
	return r, nil
}

// checkRuleSeals refuses a rule naming a seal the node does not have, when
// its seals are known: a typo would otherwise grant nothing, silently.
func (s *Service) checkRuleSeals(r Rule) error {
	if s.opts.Seals == nil {
		return nil
	}
	for _, id := range r.Seals {
		if id == AnySeal || slices.Contains(s.opts.Seals, id) {
			continue
		}
		if len(s.opts.Seals) == 0 {
			return ruleInvalid(r, "seal %q is not configured: no seal is", id)
		}
		return ruleInvalid(r, "seal %q is not configured; the configured seals are %s", id, strings.Join(s.opts.Seals, ", "))
	}
	return nil
}

// RemoveRule deletes a rule by name; the next decision no longer sees it.
func (s *Service) RemoveRule(ctx context.Context, name, actor string) error {
	return s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM access_rules WHERE name = ?`, name)
		if err != nil {
			return internal(err, "remove rule")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fault.New(fault.NotFound, CodeRuleUnknown, "rule %q does not exist", name)
		}
		if err := bumpGeneration(ctx, tx); err != nil {
			return err
		}
		return audit(Event{Type: "rule.remove", Actor: actor, Subject: "rule:" + name})
	})
}

// Rules lists all rules by id.
func (s *Service) Rules(ctx context.Context) ([]Rule, error) {
	rules, _, err := loadRules(ctx, s.db.Read())
	return rules, err
}

// loadRules returns the rules with subject names, and their subject ids.
func loadRules(ctx context.Context, q queryer) ([]Rule, []int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT r.id, r.name, r.subject_kind, r.subject_id, r.conditions,
		COALESCE(u.login, g.name, p.client_id, '')
		FROM access_rules r
		LEFT JOIN access_users u ON r.subject_kind = 'user' AND u.id = r.subject_id
		LEFT JOIN access_groups g ON r.subject_kind = 'group' AND g.id = r.subject_id
		LEFT JOIN access_processes p ON r.subject_kind = 'process' AND p.id = r.subject_id
		ORDER BY r.id`)
	if err != nil {
		return nil, nil, internal(err, "read rules")
	}
	defer rows.Close()
	rules := []Rule{}
	var ids []int64
	for rows.Next() {
		var r Rule
		var sid int64
		var cond string
		if err := rows.Scan(&r.ID, &r.Name, &r.Subject.Kind, &sid, &cond, &r.Subject.Name); err != nil {
			return nil, nil, internal(err, "read rule")
		}
		if err := json.Unmarshal([]byte(cond), &conditions{Rule: &r}); err != nil {
			return nil, nil, internal(err, "decode rule "+r.Name)
		}
		rules = append(rules, r)
		ids = append(ids, sid)
	}
	return rules, ids, rows.Err()
}

// Operation is what a principal wants to do.
type Operation string

// Operations.
const (
	OpSeal       Operation = "seal"
	OpVerify     Operation = "verify"
	OpAdminRead  Operation = "admin-read"
	OpAdminWrite Operation = "admin-write"
	OpAuditRead  Operation = "audit-read"
	// OpMonitor reads the node's metrics and detailed readiness (card
	// serials, signature counts): the auditor and admin roles.
	OpMonitor Operation = "monitor"
)

// Action is one request to authorize.
type Action struct {
	Operation Operation
	// Seal, Format and Level describe a seal operation.
	Seal   string
	Format string
	Level  string
	// Documents is the number of documents in the batch (at least 1 for seal).
	Documents int
}

// Decision is the outcome of Decide.
type Decision struct {
	Allowed bool `json:"allowed"`
	// Rule names what allowed it: a rule name, "role admin", "public verification".
	Rule   string `json:"rule,omitempty"`
	RuleID int64  `json:"ruleId,omitempty"`
	// Reason says why nothing allowed it.
	Reason string `json:"reason,omitempty"`
}

// compiledRule is a rule prepared for fast evaluation.
type compiledRule struct {
	Rule
	networks []netip.Prefix
}

type subjectKey struct {
	kind SubjectKind
	id   int64
}

// sealKey finds a subject's rules for one seal (or for AnySeal).
type sealKey struct {
	subjectKey
	seal string
}

type principalState struct {
	disabled bool
	roles    []string
	groups   []int64
}

// index is the in-memory view of rules, memberships and account states
// that Decide reads; it is rebuilt when the database generation moves.
type index struct {
	generation int64
	rules      map[subjectKey][]*compiledRule // by subject, oldest first
	bySeal     map[sealKey][]*compiledRule    // by subject and seal, oldest first
	users      map[int64]principalState
	processes  map[int64]principalState
}

func buildIndex(ctx context.Context, q queryer, gen int64) (*index, error) {
	idx := &index{generation: gen, rules: map[subjectKey][]*compiledRule{}, bySeal: map[sealKey][]*compiledRule{},
		users: map[int64]principalState{}, processes: map[int64]principalState{}}
	rules, sids, err := loadRules(ctx, q)
	if err != nil {
		return nil, err
	}
	for i, r := range rules {
		c := &compiledRule{Rule: r}
		for _, n := range r.Networks {
			c.networks = append(c.networks, netip.MustParsePrefix(n)) // validated when stored
		}
		k := subjectKey{r.Subject.Kind, sids[i]}
		idx.rules[k] = append(idx.rules[k], c)
		for _, seal := range r.Seals {
			sk := sealKey{k, seal}
			idx.bySeal[sk] = append(idx.bySeal[sk], c)
		}
	}
	rows, err := q.QueryContext(ctx, `SELECT id, disabled, roles FROM access_users`)
	if err != nil {
		return nil, internal(err, "index users")
	}
	for rows.Next() {
		var id int64
		var st principalState
		var roles string
		if err := rows.Scan(&id, &st.disabled, &roles); err != nil {
			rows.Close()
			return nil, internal(err, "index user")
		}
		st.roles = splitList(roles)
		idx.users[id] = st
	}
	rows.Close()
	if rows, err = q.QueryContext(ctx, `SELECT user_id, group_id FROM access_members ORDER BY group_id`); err != nil {
		return nil, internal(err, "index members")
	}
	for rows.Next() {
		var uid, gid int64
		if err := rows.Scan(&uid, &gid); err != nil {
			rows.Close()
			return nil, internal(err, "index member")
		}
		st := idx.users[uid]
		st.groups = append(st.groups, gid)
		idx.users[uid] = st
	}
	rows.Close()
	if rows, err = q.QueryContext(ctx, `SELECT id, revoked, roles FROM access_processes`); err != nil {
		return nil, internal(err, "index processes")
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st principalState
		var roles string
		if err := rows.Scan(&id, &st.disabled, &roles); err != nil {
			return nil, internal(err, "index process")
		}
		st.roles = splitList(roles)
		idx.processes[id] = st
	}
	return idx, rows.Err()
}

// current returns the index for the database's present generation. The
// generation is one indexed row read per decision, so a change committed
// by any process (the CLI, another node) is seen by the next decision.
func (s *Service) current(ctx context.Context) (*index, error) {
	gen, err := s.generation(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	idx := s.idx
	s.mu.RUnlock()
	if idx != nil && idx.generation == gen {
		return idx, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil && s.idx.generation >= gen {
		return s.idx, nil
	}
	// Read the rules in one transaction with the generation they belong to.
	tx, err := s.db.Read().BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, internal(err, "index rules")
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT value FROM access_state WHERE name = 'generation'`).Scan(&gen); err != nil {
		return nil, internal(err, "read generation")
	}
	idx, err = buildIndex(ctx, tx, gen)
	if err != nil {
		return nil, err
	}
	s.log.Debug("access rules indexed", "generation", gen, "subjects", len(idx.rules))
	s.idx = idx
	return idx, nil
}

// Decide is sealgate's one authorization decision point. It allows an
// action only when a rule (seal operations) or a role (administration and
// audit) grants it to this principal with the factors it proved; it
// refuses otherwise with seal_not_permitted or operation_not_permitted,
// naming the seal or operation and the reason. Verification is public.
//
// Rules that need an approval or count a quota consume the approval and
// count the documents in the same transaction that audits the decision;
// other allowed decisions touch the database only to read the generation.
func (s *Service) Decide(ctx context.Context, p Principal, a Action) (Decision, error) {
	if a.Operation == OpVerify {
		return Decision{Allowed: true, Rule: "public verification"}, nil
	}
	if p.Kind == KindAnonymous {
		return Decision{Reason: "no credentials"}, fault.New(fault.Unauthenticated, CodeUnauthenticated, "%s needs an authenticated caller", a.Operation)
	}
	idx, err := s.current(ctx)
	if err != nil {
		return Decision{}, err
	}
	st, known := idx.users[p.ID]
	if p.Kind == KindProcess {
		st, known = idx.processes[p.ID]
	}
	if !known || st.disabled {
		return s.deny(ctx, p, a, "the account is disabled, revoked or removed")
	}
	switch a.Operation {
	case OpSeal:
		return s.decideSeal(ctx, idx, st, p, a)
	case OpAdminRead, OpAdminWrite:
		if !slices.Contains(st.roles, RoleAdmin) {
			return s.deny(ctx, p, a, "the admin role is required")
		}
		if p.Kind == KindUser && !p.Has(FactorTOTP) {
			return s.deny(ctx, p, a, "administrators must log in with password and TOTP")
		}
		return Decision{Allowed: true, Rule: "role " + RoleAdmin}, nil
	case OpAuditRead, OpMonitor:
		for _, r := range []string{RoleAuditor, RoleAdmin} {
			if slices.Contains(st.roles, r) {
				return Decision{Allowed: true, Rule: "role " + r}, nil
			}
		}
		return s.deny(ctx, p, a, "the auditor or admin role is required")
	}
	return Decision{}, fault.New(fault.Invalid, CodeInvalidInput, "unknown operation %q", a.Operation)
}

func (s *Service) decideSeal(ctx context.Context, idx *index, st principalState, p Principal, a Action) (Decision, error) {
	if a.Documents < 1 {
		a.Documents = 1
	}
	var subjBuf [8]subjectKey
	var okBuf [4]*compiledRule
	subjects := append(subjBuf[:0], subjectKey{SubjectProcess, p.ID})
	if p.Kind == KindUser {
		subjects = append(subjects[:0], subjectKey{SubjectUser, p.ID})
		for _, g := range st.groups {
			subjects = append(subjects, subjectKey{SubjectGroup, g})
		}
	}
	// Rules whose static conditions hold, oldest first: the oldest names
	// the decision, whichever subject (user or one of its groups) it grants.
	now := s.now()
	reason := ""
	var reasonID int64
	// perDocument: the reason is a per-document approval asked of a batch,
	// refused with its own code so a batch's caller knows to send one at a time.
	perDocument := false
	ok := okBuf[:0]
	for _, k := range subjects {
		for _, seal := range [2]string{a.Seal, AnySeal} {
			for _, r := range idx.bySeal[sealKey{k, seal}] {
				if why := r.check(p, a, now); why == "" {
					ok = append(ok, r)
				} else if reason == "" || r.ID < reasonID {
					reason, reasonID = "rule "+r.Name+": "+why, r.ID
					perDocument = why == reasonPerDocument
				}
			}
		}
	}
	if len(ok) > 1 {
		sort.Slice(ok, func(i, j int) bool { return ok[i].ID < ok[j].ID })
	}
	for _, r := range ok {
		why := ""
		if r.Approval != ApprovalNone || r.DailyQuota > 0 {
			var err error
			if why, err = s.consume(ctx, r, p, a, now); err != nil {
				return Decision{}, err
			}
		}
		if why == "" {
			return Decision{Allowed: true, Rule: r.Name, RuleID: r.ID}, nil
		}
		reason, perDocument = "rule "+r.Name+": "+why, false
	}
	if reason == "" {
		reason = "no rule grants it"
	}
	if perDocument {
		return s.denyWith(ctx, p, a, reason, CodeApprovalPerDocument)
	}
	return s.deny(ctx, p, a, reason)
}

// reasonPerDocument is check's reason when a rule approving each document
// is asked for a batch.
const reasonPerDocument = "approval is per document, so batches must hold one document"

// check evaluates the conditions that need no database; "" means they hold.
func (r *compiledRule) check(p Principal, a Action, now time.Time) string {
	switch {
	case len(r.Formats) > 0 && !slices.Contains(r.Formats, a.Format):
		return "format " + strconv.Quote(a.Format) + " is not allowed"
	case len(r.Levels) > 0 && !slices.Contains(r.Levels, a.Level):
		return "level " + strconv.Quote(a.Level) + " is not allowed"
	case r.NotBefore != nil && now.Before(*r.NotBefore):
		return "not valid before " + r.NotBefore.UTC().Format(time.RFC3339)
	case r.NotAfter != nil && !now.Before(*r.NotAfter):
		return "expired at " + r.NotAfter.UTC().Format(time.RFC3339)
	case !strongEnough(r.Strength, p):
		return "authentication " + string(r.Strength) + " is required"
	case len(r.networks) > 0 && !inNetworks(r.networks, p.Source):
		return "source address " + strconv.Quote(addrString(p.Source)) + " is not in an allowed network"
	case r.Approval == ApprovalDocument && a.Documents != 1:
		return reasonPerDocument
	case r.Approval != ApprovalNone && (p.Approval == nil || p.Approval.ID == 0):
		return "a fresh TOTP approval is required"
	case r.Approval != ApprovalNone && now.Sub(p.Approval.At) > time.Duration(r.ApprovalMinutes)*time.Minute:
		return "the TOTP approval is older than " + strconv.Itoa(r.ApprovalMinutes) + " minutes"
	}
	return ""
}

func strongEnough(want Strength, p Principal) bool {
	switch want {
	case StrengthPassword:
		return p.Has(FactorPassword)
	case StrengthPasswordTOTP:
		return p.Has(FactorPassword) && p.Has(FactorTOTP)
	case StrengthClientCert:
		return p.Has(FactorClientCert)
	case StrengthClientSecret:
		return p.Has(FactorClientSecret)
	}
	return true
}

func inNetworks(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// consume uses up the approval and counts the documents against the daily
// quota, atomically, and audits the decision; it returns why not if the
// approval was already used or cancelled, or the quota is exhausted.
func (s *Service) consume(ctx context.Context, r *compiledRule, p Principal, a Action, now time.Time) (string, error) {
	why := ""
	errDenied := errors.New("denied")
	err := s.write(ctx, func(tx *sql.Tx, audit func(Event) error) error {
		if r.Approval != ApprovalNone {
			res, err := tx.ExecContext(ctx, `UPDATE access_approvals SET used_at = ? WHERE id = ? AND user_id = ? AND used_at IS NULL`,
				now.UnixMilli(), p.Approval.ID, p.ID)
			if err != nil {
				return internal(err, "use approval")
			}
			if n, _ := res.RowsAffected(); n != 1 {
				why = "the TOTP approval was already used or was cancelled"
				return errDenied
			}
		}
		if r.DailyQuota > 0 {
			day := now.UTC().Format(time.DateOnly)
			var used int
			err := tx.QueryRowContext(ctx, `SELECT documents FROM access_usage WHERE rule_id = ? AND day = ?`, r.ID, day).Scan(&used)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return internal(err, "read quota")
			}
			if used+a.Documents > r.DailyQuota {
				why = "the daily quota of " + strconv.Itoa(r.DailyQuota) + " documents is used up (" + strconv.Itoa(used) + " sealed today)"
				return errDenied
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO access_usage (rule_id, day, documents) VALUES (?, ?, ?)
				ON CONFLICT (rule_id, day) DO UPDATE SET documents = access_usage.documents + excluded.documents`, r.ID, day, a.Documents); err != nil {
				return internal(err, "count quota")
			}
		}
		return audit(Event{Type: "decision", Actor: p.String(), Subject: "seal:" + a.Seal, Source: addrString(p.Source),
			Detail: map[string]string{"rule": r.Name, "documents": strconv.Itoa(a.Documents), "format": a.Format, "level": a.Level}})
	})
	if errors.Is(err, errDenied) {
		return why, nil
	}
	return "", err
}

// deny audits a refusal and returns it as an error naming the seal or
// operation and the reason.
func (s *Service) deny(ctx context.Context, p Principal, a Action, reason string) (Decision, error) {
	return s.denyWith(ctx, p, a, reason, "")
}

// denyWith is deny with the refusal's code; "" is the operation's usual one.
func (s *Service) denyWith(ctx context.Context, p Principal, a Action, reason string, code fault.Code) (Decision, error) {
	subject := "operation:" + string(a.Operation)
	msg := fault.New(fault.Forbidden, CodeOperationNotPermitted, "%s is not permitted for %s: %s", a.Operation, p.String(), reason)
	if a.Operation == OpSeal {
		subject = "seal:" + a.Seal
		msg = fault.New(fault.Forbidden, CodeSealNotPermitted, "seal %q is not permitted for %s: %s", a.Seal, p.String(), reason)
	}
	if code != "" {
		msg.Code = code
	}
	err := s.Audit(ctx, Event{Type: "decision", Actor: p.String(), Subject: subject, Source: addrString(p.Source),
		Outcome: OutcomeDenied, Detail: map[string]string{"reason": reason}})
	if err != nil {
		return Decision{}, err
	}
	s.log.Info("decision denied", "principal", p.String(), "operation", string(a.Operation), "seal", a.Seal, "reason", reason)
	return Decision{Reason: reason}, msg
}

// PermittedSeals lists the seals some rule grants the principal (AnySeal
// when one grants every seal), ignoring per-request conditions; it is what
// a client may try, not a promise.
func (s *Service) PermittedSeals(ctx context.Context, p Principal) ([]string, error) {
	if p.Kind == KindAnonymous {
		return nil, fault.New(fault.Unauthenticated, CodeUnauthenticated, "listing the seals one may use needs an authenticated caller")
	}
	idx, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	keys := []subjectKey{{SubjectProcess, p.ID}}
	st, known := idx.processes[p.ID]
	if p.Kind == KindUser {
		st, known = idx.users[p.ID]
		keys = []subjectKey{{SubjectUser, p.ID}}
		for _, g := range st.groups {
			keys = append(keys, subjectKey{SubjectGroup, g})
		}
	}
	out := []string{}
	if !known || st.disabled {
		return out, nil
	}
	for _, k := range keys {
		for _, r := range idx.rules[k] {
			for _, seal := range r.Seals {
				if !slices.Contains(out, seal) {
					out = append(out, seal)
				}
			}
		}
	}
	sort.Strings(out)
	return out, nil
}
