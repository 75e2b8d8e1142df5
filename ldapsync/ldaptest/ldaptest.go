// Package ldaptest starts a real OpenLDAP slapd for tests: mdb backend,
// memberof, refint and ppolicy overlays, listening on a free loopback port,
// with its database in the test's temporary directory.
//
// It needs slapd and ldap-utils (Debian packages slapd, ldap-utils). A test
// that cannot find them fails: a directory test that silently skipped would
// let the sync go untested.
package ldaptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// Suffix, AdminDN and AdminPassword are the directory's root naming context
// and its root account, the same for every server this package starts.
const (
	Suffix        = "dc=example,dc=test"
	AdminDN       = "cn=admin," + Suffix
	AdminPassword = "adminpw"
)

// ServiceDN and ServicePassword name the read-only service account every
// server starts with; sealgate binds as it to search.
const (
	ServiceDN       = "cn=sealgate,ou=services," + Suffix
	ServicePassword = "service-secret"
)

// PolicyDN is the default password policy (ppolicy). It does not exist
// until a test adds it, so by default no policy applies.
const PolicyDN = "cn=default,ou=services," + Suffix

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:<port>.
	URL string
	// LDAPSURL is ldaps://127.0.0.1:<port> when started with TLS.
	LDAPSURL string
	// CAFile is the PEM file of the CA that issued the server's TLS
	// certificate (for 127.0.0.1), when started with TLS.
	CAFile string

	dir  string
	conf string
	tls  bool
	cmd  *exec.Cmd
	done chan struct{}
}

// Options shape a server. The zero value is an empty tree with the service
// account and the ou=people, ou=groups containers.
type Options struct {
	// LDIF is loaded with slapadd before slapd starts, after the base
	// entries: much faster than ldapadd for large trees. slapadd bypasses
	// overlays, so memberOf is not maintained for these entries.
	LDIF string
	// LDIFFile is like LDIF but read from a file (for large generated trees).
	LDIFFile string
	// Snapshot replaces the base tree with an export of another server
	// (Export), so both hold the same entries with the same entryUUIDs and
	// timestamps, as replicas would.
	Snapshot string
	// Schemas are extra schema files (slapd.conf syntax) to include.
	Schemas []string
	// TLS makes slapd offer StartTLS on URL and listen on LDAPSURL too,
	// with a certificate from a CA made for this server (CAFile).
	TLS bool
}

const confTemplate = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
{{range .Schemas}}include {{.}}
{{end}}modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
{{if .TLS}}TLSCACertificateFile {{.Dir}}/ca.pem
TLSCertificateFile {{.Dir}}/server.pem
TLSCertificateKeyFile {{.Dir}}/server.key
{{end}}pidfile {{.Dir}}/slapd.pid
argsfile {{.Dir}}/slapd.args
sizelimit unlimited
database mdb
maxsize 4294967296
suffix "{{.Suffix}}"
rootdn "{{.AdminDN}}"
rootpw {{.AdminPassword}}
directory {{.Dir}}/db
index objectClass eq
index uid,cn eq
index entryUUID eq
index member,uniqueMember,memberUid eq
limits dn.exact="{{.ServiceDN}}" size=unlimited size.pr=unlimited size.prtotal=unlimited
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
overlay memberof
overlay refint
refint_attributes member uniqueMember
overlay ppolicy
ppolicy_default "` + PolicyDN + `"
`

// baseLDIF is the tree every server starts with.
const baseLDIF = `dn: ` + Suffix + `
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=services,` + Suffix + `
objectClass: organizationalUnit
ou: services

dn: ` + ServiceDN + `
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: sealgate
userPassword: ` + ServicePassword + `

dn: ou=people,` + Suffix + `
objectClass: organizationalUnit
ou: people

dn: ou=groups,` + Suffix + `
objectClass: organizationalUnit
ou: groups
`

// Start starts a slapd for t and stops it when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	for _, tool := range []string{"slapd", "slapadd", "slapcat", "ldapmodify", "ldapsearch"} {
		if _, err := lookPath(tool); err != nil {
			t.Fatalf("ldaptest: %s not installed (Debian packages slapd, ldap-utils)", tool)
		}
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: dir, conf: filepath.Join(dir, "slapd.conf"), tls: opts.TLS}
	if opts.TLS {
		if err := writeTLSFiles(dir); err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		s.CAFile = filepath.Join(dir, "ca.pem")
	}
	var schemas []string
	for _, f := range opts.Schemas {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		schemas = append(schemas, abs)
	}
	var conf bytes.Buffer
	err := template.Must(template.New("conf").Parse(confTemplate)).Execute(&conf, map[string]any{
		"Dir": dir, "Suffix": Suffix, "AdminDN": AdminDN, "AdminPassword": AdminPassword, "ServiceDN": ServiceDN, "TLS": opts.TLS,
		"Schemas": schemas,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.conf, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts.Snapshot != "" {
		s.slapadd(t, strings.NewReader(opts.Snapshot))
	} else {
		s.slapadd(t, strings.NewReader(baseLDIF))
	}
	if opts.LDIF != "" {
		s.slapadd(t, strings.NewReader(opts.LDIF))
	}
	if opts.LDIFFile != "" {
		f, err := os.Open(opts.LDIFFile)
		if err != nil {
			t.Fatal(err)
		}
		s.slapadd(t, f)
		f.Close()
	}
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

func lookPath(tool string) (string, error) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, nil
	}
	// slapd and slapadd live in /usr/sbin, which is not on every PATH.
	return exec.LookPath(filepath.Join("/usr/sbin", tool))
}

func (s *Server) slapadd(t testing.TB, ldif io.Reader) {
	t.Helper()
	bin, _ := lookPath("slapadd")
	cmd := exec.Command(bin, "-q", "-f", s.conf)
	cmd.Stdin = ldif
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldaptest: slapadd: %v\n%s", err, out)
	}
}

// start runs slapd in the foreground on a free port and waits until it
// accepts connections. A port taken between choosing and binding is retried.
func (s *Server) start(t testing.TB) {
	t.Helper()
	bin, _ := lookPath("slapd")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("ldap://127.0.0.1:%d", port)
		listen, ldapsURL := url+"/", ""
		if s.tls {
			tlsPort, err := freePort()
			if err != nil {
				t.Fatal(err)
			}
			ldapsURL = fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort)
			listen += " " + ldapsURL + "/"
		}
		var logBuf bytes.Buffer
		cmd := exec.Command(bin, "-d", "0", "-f", s.conf, "-h", listen)
		cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
		if err := cmd.Start(); err != nil {
			t.Fatalf("ldaptest: slapd: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		if err := waitListening(fmt.Sprintf("127.0.0.1:%d", port), done); err != nil {
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("%v\n%s", err, logBuf.String())
			continue
		}
		s.URL, s.LDAPSURL, s.cmd, s.done = url, ldapsURL, cmd, done
		return
	}
	t.Fatalf("ldaptest: slapd did not start: %v", lastErr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("slapd exited")
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("slapd not listening on %s after 10s", addr)
}

// Stop stops slapd and waits for it to exit. It is safe to call twice.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	// SIGTERM lets slapd close its database cleanly, so Restart finds it intact.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts a stopped server again with the same data (on a new port:
// URL changes).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Apply runs ldapmodify as the root account on an LDIF of change records;
// records without a changetype are adds.
func (s *Server) Apply(t testing.TB, ldif string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ldapmodify", "-a", "-x", "-H", s.URL, "-D", AdminDN, "-w", AdminPassword)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldaptest: ldapmodify: %v\n%s\nLDIF:\n%s", err, out, ldif)
	}
}

// Search runs ldapsearch as the root account and returns its LDIF output
// (without line wrapping).
func (s *Server) Search(t testing.TB, base, filter string, attrs ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-x", "-LLL", "-o", "ldif-wrap=no", "-H", s.URL, "-D", AdminDN, "-w", AdminPassword, "-b", base, filter}, attrs...)
	out, err := exec.CommandContext(ctx, "ldapsearch", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ldaptest: ldapsearch %s: %v\n%s", filter, err, out)
	}
	return string(out)
}

// WaitRefint waits until no entry's member or uniqueMember still names dn:
// the refint overlay rewrites references after a rename or delete in the
// background, a moment after the operation returned.
func (s *Server) WaitRefint(t testing.TB, dn string) {
	t.Helper()
	filter := "(|(member=" + dn + ")(uniqueMember=" + dn + "))"
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(s.Search(t, Suffix, filter, "1.1")) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("ldaptest: references to %s remain after 10s", dn)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Export returns the whole database as LDIF (slapcat), operational
// attributes included, for Options.Snapshot.
func (s *Server) Export(t testing.TB) string {
	t.Helper()
	bin, _ := lookPath("slapcat")
	out, err := exec.Command(bin, "-f", s.conf).Output()
	if err != nil {
		t.Fatalf("ldaptest: slapcat: %v", err)
	}
	return string(out)
}
