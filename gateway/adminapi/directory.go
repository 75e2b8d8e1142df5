package adminapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/ldapsync"
)

// Directory is the directory sync the admin API runs and reports on;
// ldapsync.Syncer implements it.
type Directory interface {
	Run(ctx context.Context, opts ldapsync.SyncOptions) (*ldapsync.Report, error)
	Health() ldapsync.Health
	Runs(ctx context.Context, limit int) ([]ldapsync.Run, error)
}

// CodeNoDirectory is returned by the directory routes when no ldap section is configured.
const CodeNoDirectory fault.Code = "directory_not_configured"

func (a *api) directory() (Directory, error) {
	if a.dir == nil {
		return nil, fault.New(fault.NotFound, CodeNoDirectory, "no directory is configured (ldap section of sealgate.yaml)")
	}
	return a.dir, nil
}

// getDirectory reports the sync's health and its last runs.
func (a *api) getDirectory(w http.ResponseWriter, r *http.Request, _ access.Principal) error {
	d, err := a.directory()
	if err != nil {
		return err
	}
	runs, err := d.Runs(r.Context(), 20)
	if err != nil {
		return err
	}
	h := d.Health()
	return writeJSON(w, http.StatusOK, struct {
		Source      string         `json:"source"`
		OK          bool           `json:"ok"`
		LastSuccess time.Time      `json:"lastSuccess,omitzero"`
		Runs        []ldapsync.Run `json:"runs"`
	}{h.Source, h.OK(), h.LastSuccess, runs})
}

// syncDirectory runs a sync now: ?dryRun=true shows the diff without
// applying it, ?full=true reads every user, ?force=true overrides the
// removal guard after a dry run was checked.
func (a *api) syncDirectory(w http.ResponseWriter, r *http.Request, p access.Principal) error {
	d, err := a.directory()
	if err != nil {
		return err
	}
	opts := ldapsync.SyncOptions{Actor: p.String()}
	q := r.URL.Query()
	for name, dst := range map[string]*bool{"dryRun": &opts.DryRun, "full": &opts.Full, "force": &opts.Force} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fault.New(fault.Invalid, CodeBadRequest, "%s=%q is not true or false", name, v)
			}
			*dst = b
		}
	}
	rep, err := d.Run(r.Context(), opts)
	switch {
	case err == nil:
		if !opts.DryRun {
			a.changed(p, "directory sync", "directory")
		}
		return writeJSON(w, http.StatusOK, rep)
	case rep != nil && fault.CodeOf(err) == ldapsync.CodeGuardTripped:
		// A tripped guard is an answer: the report shows what would have gone.
		return writeJSON(w, http.StatusConflict, rep)
	}
	return err
}
