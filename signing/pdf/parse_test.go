package pdf

import (
	"bytes"
	"compress/zlib"
	"reflect"
	"testing"
)

// The lexer reads every kind of object ISO 32000-1 §7.3 defines.
func TestParseObjects(t *testing.T) {
	tests := []struct {
		in   string
		want Object
	}{
		{"null", Null{}},
		{"true", Bool(true)},
		{"-42", Integer(-42)},
		{"+17", Integer(17)},
		{"3.25", Real(3.25)},
		{"-.5", Real(-0.5)},
		{"/Name", Name("Name")},
		{"/A#20B#2f", Name("A B/")},
		{"(a (nested) string)", String("a (nested) string")},
		{`(esc\n\r\t\(\)\\\101\0)`, String("esc\n\r\t()\\A\x00")},
		{"(line \\\ncontinued)", String("line continued")},
		{"<48 65 6c6C6f>", String("Hello")},
		{"<4>", String("\x40")},
		{"12 0 R", Ref{Num: 12}},
		{"[1 2 0 R 3]", Array{Integer(1), Ref{Num: 2}, Integer(3)}},
		{"[1 2 3]", Array{Integer(1), Integer(2), Integer(3)}},
		{"<</Type/Page/Kids[1 0 R]/Null null>>", Dict{"Type": Name("Page"), "Kids": Array{Ref{Num: 1}}}},
		{"% comment\n<< /A 1 % more\n >>", Dict{"A": Integer(1)}},
	}
	for _, tt := range tests {
		l := &lexer{b: []byte(tt.in), eof: true}
		got, err := l.object(0)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: got %#v, %v; want %#v", tt.in, got, err, tt.want)
		}
	}
}

// Objects written by AppendObject read back as themselves.
func TestAppendObjectRoundTrip(t *testing.T) {
	objs := []Object{
		Dict{"Type": Name("Sig"), "Name With Space": String("x(y)\\z\r\n"), "R": Real(0.125), "Neg": Real(-3), "A": Array{Ref{Num: 7, Gen: 2}, Bool(false), Null{}}},
		TextString("Müller & Söhne — 北京"),
		Name("a#b/c"),
	}
	for _, o := range objs {
		b := AppendObject(nil, o)
		got, err := (&lexer{b: b, eof: true}).object(0)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		want := o
		if d, ok := o.(Dict); ok {
			// A whole real is written without a fraction and reads back as an integer.
			want = d.Clone()
			want.(Dict)["Neg"] = Integer(-3)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s read back as %#v, want %#v", b, got, want)
		}
	}
	if s := DecodeText(TextString("Müller & Söhne — 北京")); s != "Müller & Söhne — 北京" {
		t.Errorf("text string round trip gave %q", s)
	}
}

// Truncated input in a window is errShort (read more), at end of file malformed.
func TestParseShortInput(t *testing.T) {
	for _, in := range []string{"<< /A 1", "(unterminated", "[1 2", "<4142", "12 0"} {
		if _, err := (&lexer{b: []byte(in)}).object(0); err != errShort && in != "12 0" {
			t.Errorf("%q in a window: %v, want errShort", in, err)
		}
		if _, err := (&lexer{b: []byte(in), eof: true}).object(0); err == errShort {
			t.Errorf("%q at end of file: errShort", in)
		}
	}
}

// PNG predictors (Up, Sub, Average, Paeth) are undone row by row.
func TestUnpredictPNG(t *testing.T) {
	rows := [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 9, 9, 9}, {0, 255, 1, 2}}
	var enc []byte
	prev := make([]byte, 4)
	for i, r := range rows {
		ft := byte(i%4 + 1)
		enc = append(enc, ft)
		for j := range r {
			var a, b, c byte
			if j > 0 {
				a, c = r[j-1], prev[j-1]
			}
			b = prev[j]
			p := map[byte]byte{1: a, 2: b, 3: byte((int(a) + int(b)) / 2), 4: paeth(a, b, c)}[ft]
			enc = append(enc, r[j]-p)
		}
		prev = r
	}
	got, err := unpredict(enc, Dict{"Predictor": Integer(12), "Columns": Integer(4)})
	if err != nil || !bytes.Equal(got, bytes.Join(rows, nil)) {
		t.Errorf("unpredict = %v, %v", got, err)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write(enc)
	zw.Close()
	r := &Reader{}
	data, err := r.StreamData(&Stream{Dict: Dict{"Filter": Name("FlateDecode"), "DecodeParms": Dict{"Predictor": Integer(15), "Columns": Integer(4)}}, Data: z.Bytes()})
	if err != nil || !bytes.Equal(data, bytes.Join(rows, nil)) {
		t.Errorf("StreamData = %v, %v", data, err)
	}
}
