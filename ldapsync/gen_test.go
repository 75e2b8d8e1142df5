package ldapsync

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/ldapsync/ldaptest"
)

// genDirectory writes an LDIF of users people in groups groups for slapadd
// and returns its path. User i is a direct member of groups i%groups and
// (7i)%groups; group j>0 is a member of group (j-1)/5, so nesting is a few
// levels deep and every user ends up in several sealgate groups.
func genDirectory(t testing.TB, people, groups int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "generated.ldif")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range people {
		fmt.Fprintf(w, "dn: uid=user%05d,ou=people,%s\nobjectClass: inetOrgPerson\nuid: user%05d\ncn: User %d\nsn: %d\nmail: user%05d@example.test\nuserPassword: pw%05d\n\n",
			i, ldaptest.Suffix, i, i, i, i, i)
	}
	members := make([][]int, groups)
	for i := range people {
		members[i%groups] = append(members[i%groups], i)
		if j := (7 * i) % groups; j != i%groups {
			members[j] = append(members[j], i)
		}
	}
	for j := range groups {
		fmt.Fprintf(w, "dn: cn=group%03d,ou=groups,%s\nobjectClass: groupOfNames\ncn: group%03d\n", j, ldaptest.Suffix, j)
		for _, i := range members[j] {
			fmt.Fprintf(w, "member: uid=user%05d,ou=people,%s\n", i, ldaptest.Suffix)
		}
		for k := 5*j + 1; k <= 5*j+5 && k < groups; k++ {
			fmt.Fprintf(w, "member: cn=group%03d,ou=groups,%s\n", k, ldaptest.Suffix)
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
