// Package pdf reads the structure of a PDF file lazily and appends
// incremental updates to it. It is the PDF layer of sealgate's PAdES writer
// and verifier: it never loads a whole document into memory, reads only the
// objects it is asked for, and leaves every earlier revision byte-for-byte as
// it was (ISO 32000-1 §7.5.6).
package pdf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/sealgate/sealgate/fault"
)

// Error codes reported by this package. They are the same strings as the
// signing package's CodePDFEncrypted and CodePDFMalformed, so callers see one
// code whichever layer found the problem.
const (
	CodeEncrypted fault.Code = "pdf_encrypted"
	CodeMalformed fault.Code = "pdf_malformed"
)

// Object is a PDF object: Null, Bool, Integer, Real, Name, String, Array,
// Dict, Ref or *Stream.
type Object any

// Null is the PDF null object.
type Null struct{}

// Bool is a PDF boolean.
type Bool bool

// Integer is a PDF integer.
type Integer int64

// Real is a PDF real number.
type Real float64

// Name is a PDF name, without the leading slash.
type Name string

// String is a PDF string (literal or hexadecimal; the difference carries no meaning).
type String []byte

// Array is a PDF array.
type Array []Object

// Dict is a PDF dictionary.
type Dict map[Name]Object

// Ref is an indirect reference "Num Gen R".
type Ref struct {
	Num uint32
	Gen uint16
}

// Stream is a stream object. A stream read from a file keeps only where its
// data starts; a stream made for writing holds its (already encoded) Data.
type Stream struct {
	Dict Dict
	// Offset is the file offset of the first data byte of a stream read from a file.
	Offset int64
	// Data is the encoded data of a stream made for writing.
	Data []byte
}

// Raw is written verbatim. The writer uses it for placeholders whose bytes
// are filled in after the update has been laid out.
type Raw []byte

// Int returns o as an integer and whether it is one (a whole Real counts).
func Int(o Object) (int64, bool) {
	switch v := o.(type) {
	case Integer:
		return int64(v), true
	case Real:
		if float64(int64(v)) == float64(v) {
			return int64(v), true
		}
	}
	return 0, false
}

// Number returns o as a float and whether it is a number.
func Number(o Object) (float64, bool) {
	switch v := o.(type) {
	case Integer:
		return float64(v), true
	case Real:
		return float64(v), true
	}
	return 0, false
}

// Clone returns a shallow copy of d that can be changed without touching d.
func (d Dict) Clone() Dict {
	c := make(Dict, len(d)+2)
	for k, v := range d {
		c[k] = v
	}
	return c
}

// Name returns d[key] when it is a name.
func (d Dict) Name(key Name) Name {
	n, _ := d[key].(Name)
	return n
}

func malformed(format string, args ...any) error {
	return fault.New(fault.Invalid, CodeMalformed, format, args...)
}

// AppendObject appends the serialization of o to b.
func AppendObject(b []byte, o Object) []byte {
	switch v := o.(type) {
	case nil, Null:
		return append(b, "null"...)
	case Bool:
		return strconv.AppendBool(b, bool(v))
	case Integer:
		return strconv.AppendInt(b, int64(v), 10)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case Real:
		return appendReal(b, float64(v))
	case float64:
		return appendReal(b, v)
	case Name:
		return appendName(b, v)
	case String:
		return appendString(b, v)
	case Ref:
		return fmt.Appendf(b, "%d %d R", v.Num, v.Gen)
	case Raw:
		return append(b, v...)
	case Array:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ' ')
			}
			b = AppendObject(b, e)
		}
		return append(b, ']')
	case Dict:
		b = append(b, "<<"...)
		for _, k := range sortedKeys(v) {
			b = appendName(b, k)
			b = append(b, ' ')
			b = AppendObject(b, v[k])
		}
		return append(b, ">>"...)
	case *Stream:
		d := v.Dict.Clone()
		d["Length"] = Integer(len(v.Data))
		b = AppendObject(b, d)
		b = append(b, "\nstream\n"...)
		b = append(b, v.Data...)
		return append(b, "\nendstream"...)
	}
	panic(fmt.Sprintf("pdf: cannot serialize %T", o))
}

func appendReal(b []byte, f float64) []byte {
	s := strings.TrimRight(strconv.FormatFloat(f, 'f', 4, 64), "0")
	s = strings.TrimSuffix(s, ".")
	if s == "-0" || s == "" {
		s = "0"
	}
	return append(b, s...)
}

// sortedKeys orders keys with /Type first so written dictionaries read naturally.
func sortedKeys(d Dict) []Name {
	keys := make([]Name, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "Type") != (keys[j] == "Type") {
			return keys[i] == "Type"
		}
		return keys[i] < keys[j]
	})
	return keys
}

func appendName(b []byte, n Name) []byte {
	b = append(b, '/')
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c <= ' ' || c >= 0x7f || c == '#' || isDelim(c) {
			b = fmt.Appendf(b, "#%02X", c)
			continue
		}
		b = append(b, c)
	}
	return b
}

func appendString(b []byte, s String) []byte {
	b = append(b, '(')
	for _, c := range []byte(s) {
		switch c {
		case '(', ')', '\\':
			b = append(b, '\\', c)
		case '\r':
			b = append(b, '\\', 'r')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, ')')
}

// TextString encodes s as a PDF text string: PDFDocEncoding-compatible ASCII
// as is, anything else as UTF-16BE with a byte order mark (§7.9.2.2).
func TextString(s string) String {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return String(s)
	}
	out := []byte{0xfe, 0xff}
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
			out = append(out, byte(hi>>8), byte(hi), byte(lo>>8), byte(lo))
			continue
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return String(out)
}

// DecodeText decodes a PDF text string (UTF-16BE with BOM, UTF-8 with BOM, or
// PDFDocEncoding treated as Latin-1).
func DecodeText(s String) string {
	switch {
	case len(s) >= 2 && s[0] == 0xfe && s[1] == 0xff:
		var rs []rune
		for i := 2; i+1 < len(s); i += 2 {
			u := rune(s[i])<<8 | rune(s[i+1])
			if u >= 0xd800 && u < 0xdc00 && i+3 < len(s) {
				l := rune(s[i+2])<<8 | rune(s[i+3])
				u = 0x10000 + (u-0xd800)<<10 + (l - 0xdc00)
				i += 2
			}
			rs = append(rs, u)
		}
		return string(rs)
	case len(s) >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf:
		return string(s[3:])
	}
	rs := make([]rune, len(s))
	for i, c := range s {
		rs[i] = rune(c)
	}
	return string(rs)
}
