package ldaptest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStartServesBaseTree proves a started server answers the service
// account with the base containers, refuses anonymous reads, and survives a
// restart with its data.
func TestStartServesBaseTree(t *testing.T) {
	s := Start(t, Options{LDIF: "dn: uid=ann,ou=people," + Suffix + "\nobjectClass: inetOrgPerson\nuid: ann\ncn: Ann\nsn: A\n"})
	search := func(bindDN, pw string) (string, error) {
		args := []string{"-x", "-LLL", "-H", s.URL, "-b", Suffix, "(uid=ann)", "dn"}
		if bindDN != "" {
			args = append(args, "-D", bindDN, "-w", pw)
		}
		out, err := exec.Command("ldapsearch", args...).CombinedOutput()
		return string(out), err
	}
	if got, err := search(ServiceDN, ServicePassword); err != nil || !strings.Contains(got, "uid=ann,ou=people") {
		t.Fatalf("service account search: %v %q", err, got)
	}
	if got, err := search("", ""); err == nil || strings.Contains(got, "uid=ann") {
		t.Fatalf("anonymous search must be refused, got %v %q", err, got)
	}
	s.Restart(t)
	if got, err := search(ServiceDN, ServicePassword); err != nil || !strings.Contains(got, "uid=ann,ou=people") {
		t.Fatalf("after restart: %v %q", err, got)
	}
}
