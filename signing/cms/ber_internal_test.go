package cms

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BERToDER gives DER lengths and primitive strings, and keeps the bytes
// after the first element apart.
func TestBERToDER(t *testing.T) {
	for _, tc := range []struct{ name, ber, der, rest string }{
		{"indefinite SEQUENCE", "30 80 02 01 05 00 00", "30 03 02 01 05", ""},
		{"nested indefinite, then padding", "30 80 a0 80 04 01 aa 00 00 00 00 00 00 00", "30 05 a0 03 04 01 aa", "00 00 00"},
		{"long form for a short length", "30 81 04 02 81 01 05", "30 03 02 01 05", ""},
		{"four length octets", "04 84 00 00 00 02 aa bb", "04 02 aa bb", ""},
		{"constructed OCTET STRING", "24 80 04 02 aa bb 24 80 04 01 cc 00 00 04 00 00 00", "04 03 aa bb cc", ""},
		{"empty constructed OCTET STRING", "24 00", "04 00", ""},
		{"constructed BIT STRING", "23 09 03 02 00 aa 03 03 04 bb c0", "03 04 04 aa bb c0", ""},
		{"empty constructed BIT STRING", "23 80 00 00", "03 01 00", ""},
		{"high tag number kept", "bf 81 00 80 05 00 00 00", "bf 81 00 02 05 00", ""},
		{"context-specific constructed string kept", "a4 80 04 01 aa 00 00", "a4 03 04 01 aa", ""},
		{"long content", "30 80 04 81 80 " + strings.Repeat("ab ", 128) + "00 00", "30 81 83 04 81 80 " + strings.Repeat("ab ", 128), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, rest, err := BERToDER(unhex(t, tc.ber))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(der, unhex(t, tc.der)) || !bytes.Equal(rest, unhex(t, tc.rest)) {
				t.Errorf("got % x + % x, want %s + %s", der, rest, tc.der, tc.rest)
			}
		})
	}

	// DER comes back as the very same bytes: nothing is copied.
	der := unhex(t, "30 08 02 01 05 a0 03 04 01 aa 00 00")
	got, rest, err := BERToDER(der)
	if err != nil || &got[0] != &der[0] || len(got) != 10 || len(rest) != 2 {
		t.Errorf("DER input: got % x rest % x err %v, want the input's first 10 bytes themselves", got, rest, err)
	}
}

// Hostile or broken encodings are errors, never panics, deep recursion or
// large allocations.
func TestBERToDERRefuses(t *testing.T) {
	for _, tc := range []struct{ name, ber string }{
		{"empty", ""},
		{"one byte", "30"},
		{"no end-of-contents", "30 80 02 01 05"},
		{"end-of-contents cut", "30 80 02 01 05 00"},
		{"length past the end", "30 05 02 01"},
		{"long length past the end", "04 84 7f ff ff ff 00"},
		{"eight length octets", "04 88 00 00 00 00 00 00 00 01 aa"},
		{"reserved length octet", "04 ff"},
		{"child longer than its parent", "30 03 04 05 aa bb cc dd ee"},
		{"zero padding taken into a definite length", "30 07 02 01 05 00 00 00 00"},
		{"end-of-contents as the element", "00 00"},
		{"indefinite primitive", "04 80 aa 00 00"},
		{"high tag number too large", "bf ff ff ff ff 7f 00"},
		{"high tag number cut", "bf 81"},
		{"SEQUENCE in a constructed OCTET STRING", "24 80 30 00 00 00"},
		{"unused bits in a middle BIT STRING segment", "23 08 03 02 04 aa 03 02 00 bb"},
		{"BIT STRING segment without its unused-bits octet", "23 02 03 00"},
		{"deep indefinite nesting", strings.Repeat("30 80 ", 100) + strings.Repeat("00 00 ", 100)},
		{"deep definite nesting", nested(200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if der, _, err := BERToDER(unhex(t, tc.ber)); err == nil {
				t.Errorf("accepted, giving % x", der)
			}
		})
	}
	if _, _, err := BERToDER(make([]byte, maxBERSize+1)); err == nil {
		t.Errorf("accepted %d bytes", maxBERSize+1)
	}
}

// nested returns depth SEQUENCEs inside one another, in hex.
func nested(depth int) string {
	b := []byte{0x05, 0x00}
	for range depth {
		b = derEncode([]byte{0x30}, b)
	}
	return hex.EncodeToString(b)
}

// Whatever BERToDER accepts is DER it then returns unchanged.
func FuzzBERToDER(f *testing.F) {
	for _, s := range []string{
		"30 80 02 01 05 00 00",
		"30 80 a0 80 24 80 04 02 aa bb 04 01 cc 00 00 00 00 00 00 00 00",
		"23 09 03 02 00 aa 03 03 04 bb c0",
		"bf 81 00 80 05 00 00 00",
		"30 81 04 02 81 01 05",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		der, rest, err := BERToDER(b)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(b, rest) || len(rest) == len(b) {
			t.Fatalf("the bytes after the element (% x) are not the tail of % x", rest, b)
		}
		again, rest2, err := BERToDER(der)
		if err != nil || len(rest2) != 0 || &again[0] != &der[0] || len(again) != len(der) {
			t.Fatalf("DER % x from % x does not come back unchanged: % x, % x, %v", der, b, again, rest2, err)
		}
	})
}
