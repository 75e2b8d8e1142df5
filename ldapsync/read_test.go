package ldapsync

import "testing"

// TestNormDN: DNs that name the same entry compare equal, whatever their
// case, spacing or escaping; different entries do not.
func TestNormDN(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"uid=ann,ou=people,dc=example,dc=test", "UID=Ann,OU=People,DC=example,DC=test", true},
		{"uid=ann,ou=people,dc=example,dc=test", "uid=ann, ou=people, dc=example, dc=test", true},
		{"cn=Smith\\, John,ou=people,dc=example,dc=test", "CN=smith\\2C john,ou=people,dc=example,dc=test", true},
		{"cn=a+sn=b,dc=test", "CN=A+SN=B,dc=test", true},
		{"uid=ann,ou=people,dc=example,dc=test", "uid=anna,ou=people,dc=example,dc=test", false},
		{"cn=Smith\\, John,dc=test", "cn=Smith,cn=John,dc=test", false},
	}
	for _, tc := range tests {
		if got := normDN(tc.a) == normDN(tc.b); got != tc.same {
			t.Errorf("normDN(%q) == normDN(%q) is %v (%q, %q)", tc.a, tc.b, got, normDN(tc.a), normDN(tc.b))
		}
	}
}

// TestGUIDString checks the objectGUID byte layout: the first three fields
// are stored little-endian, the last two as they are written.
func TestGUIDString(t *testing.T) {
	raw := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	got, err := guidString(raw)
	if err != nil || got != "12345678-1234-5678-1234-56789abcdef0" {
		t.Fatalf("guidString = %q, %v", got, err)
	}
	if _, err := guidString(raw[:15]); err == nil {
		t.Fatal("a 15-byte GUID was accepted")
	}
}
