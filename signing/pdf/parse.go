package pdf

import (
	"bytes"
	"errors"
	"strconv"
)

// errShort means the buffer ended inside an object: the caller reads a
// larger window and tries again.
var errShort = errors.New("pdf: object extends past the read window")

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == 0
}

func isDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

// lexer reads PDF tokens from a buffer. eof tells whether the buffer ends
// where the file does; if not, running off its end is errShort.
type lexer struct {
	b   []byte
	pos int
	eof bool
}

func (l *lexer) short() error {
	if l.eof {
		return malformed("unexpected end of file")
	}
	return errShort
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		if isSpace(c) {
			l.pos++
			continue
		}
		if c == '%' {
			for l.pos < len(l.b) && l.b[l.pos] != '\n' && l.b[l.pos] != '\r' {
				l.pos++
			}
			continue
		}
		return
	}
}

// keyword reads a run of regular characters (a number, keyword or bare word).
func (l *lexer) word() []byte {
	start := l.pos
	for l.pos < len(l.b) && !isSpace(l.b[l.pos]) && !isDelim(l.b[l.pos]) {
		l.pos++
	}
	return l.b[start:l.pos]
}

// expect consumes keyword kw (after whitespace) or fails.
func (l *lexer) expect(kw string) error {
	l.skipSpace()
	if l.pos >= len(l.b) {
		return l.short()
	}
	w := l.word()
	if string(w) != kw {
		if l.pos >= len(l.b) && !l.eof {
			return errShort
		}
		return malformed("expected %q, found %q", kw, truncate(w))
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 20 {
		return string(b[:20]) + "..."
	}
	return string(b)
}

// object parses one direct object (a reference "n g R" included).
func (l *lexer) object(depth int) (Object, error) {
	if depth > maxDepth {
		return nil, malformed("objects nested deeper than %d", maxDepth)
	}
	l.skipSpace()
	if l.pos >= len(l.b) {
		return nil, l.short()
	}
	c := l.b[l.pos]
	switch {
	case c == '/':
		l.pos++
		return l.name()
	case c == '(':
		l.pos++
		return l.literal()
	case c == '<':
		if l.pos+1 >= len(l.b) {
			return nil, l.short()
		}
		if l.b[l.pos+1] == '<' {
			l.pos += 2
			return l.dict(depth)
		}
		l.pos++
		return l.hex()
	case c == '[':
		l.pos++
		var a Array
		for {
			l.skipSpace()
			if l.pos >= len(l.b) {
				return nil, l.short()
			}
			if l.b[l.pos] == ']' {
				l.pos++
				return a, nil
			}
			o, err := l.object(depth + 1)
			if err != nil {
				return nil, err
			}
			a = append(a, o)
		}
	case c == '+' || c == '-' || c == '.' || (c >= '0' && c <= '9'):
		return l.number()
	case isDelim(c):
		return nil, malformed("unexpected %q", c)
	}
	w := l.word()
	if l.pos >= len(l.b) && !l.eof {
		return nil, errShort
	}
	switch string(w) {
	case "true":
		return Bool(true), nil
	case "false":
		return Bool(false), nil
	case "null":
		return Null{}, nil
	}
	return nil, malformed("unexpected keyword %q", truncate(w))
}

func (l *lexer) number() (Object, error) {
	w := l.word()
	if l.pos >= len(l.b) && !l.eof {
		return nil, errShort
	}
	if bytes.ContainsAny(w, ".") {
		f, err := strconv.ParseFloat(string(w), 64)
		if err != nil {
			return nil, malformed("bad number %q", truncate(w))
		}
		return Real(f), nil
	}
	n, err := strconv.ParseInt(string(w), 10, 64)
	if err != nil {
		return nil, malformed("bad number %q", truncate(w))
	}
	// An unsigned integer may start "num gen R".
	if w[0] >= '0' && w[0] <= '9' && n <= 1<<32-1 {
		save := l.pos
		l.skipSpace()
		g := l.word()
		if len(g) > 0 && allDigits(g) {
			l.skipSpace()
			if l.pos < len(l.b) && l.b[l.pos] == 'R' && (l.pos+1 == len(l.b) || isSpace(l.b[l.pos+1]) || isDelim(l.b[l.pos+1])) {
				if l.pos+1 == len(l.b) && !l.eof {
					return nil, errShort
				}
				l.pos++
				gen, err := strconv.ParseUint(string(g), 10, 16)
				if err != nil {
					return nil, malformed("bad generation %q", truncate(g))
				}
				return Ref{Num: uint32(n), Gen: uint16(gen)}, nil
			}
		}
		if l.pos >= len(l.b) && !l.eof {
			return nil, errShort
		}
		l.pos = save
	}
	return Integer(n), nil
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (l *lexer) name() (Object, error) {
	w := l.word()
	if l.pos >= len(l.b) && !l.eof {
		return nil, errShort
	}
	if bytes.IndexByte(w, '#') < 0 {
		return Name(w), nil
	}
	out := make([]byte, 0, len(w))
	for i := 0; i < len(w); i++ {
		if w[i] == '#' && i+2 < len(w) {
			h, ok1 := unhex(w[i+1])
			lo, ok2 := unhex(w[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, w[i])
	}
	return Name(out), nil
}

func (l *lexer) literal() (Object, error) {
	var out []byte
	depth := 1
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		l.pos++
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return String(out), nil
			}
		case '\\':
			if l.pos >= len(l.b) {
				return nil, l.short()
			}
			e := l.b[l.pos]
			l.pos++
			switch e {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case '\r':
				if l.pos < len(l.b) && l.b[l.pos] == '\n' {
					l.pos++
				}
				continue
			case '\n':
				continue
			default:
				if e >= '0' && e <= '7' {
					v := int(e - '0')
					for k := 0; k < 2 && l.pos < len(l.b) && l.b[l.pos] >= '0' && l.b[l.pos] <= '7'; k++ {
						v = v*8 + int(l.b[l.pos]-'0')
						l.pos++
					}
					c = byte(v)
				} else {
					c = e
				}
			}
		}
		out = append(out, c)
	}
	return nil, l.short()
}

func (l *lexer) hex() (Object, error) {
	var out []byte
	var hi byte
	half := false
	for l.pos < len(l.b) {
		c := l.b[l.pos]
		l.pos++
		if c == '>' {
			if half {
				out = append(out, hi<<4)
			}
			return String(out), nil
		}
		if isSpace(c) {
			continue
		}
		v, ok := unhex(c)
		if !ok {
			return nil, malformed("bad hex string digit %q", c)
		}
		if half {
			out = append(out, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	return nil, l.short()
}

func (l *lexer) dict(depth int) (Object, error) {
	d := Dict{}
	for {
		l.skipSpace()
		if l.pos+1 >= len(l.b) {
			return nil, l.short()
		}
		if l.b[l.pos] == '>' && l.b[l.pos+1] == '>' {
			l.pos += 2
			return d, nil
		}
		if l.b[l.pos] != '/' {
			return nil, malformed("dictionary key is not a name")
		}
		l.pos++
		k, err := l.name()
		if err != nil {
			return nil, err
		}
		v, err := l.object(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, null := v.(Null); !null {
			d[k.(Name)] = v
		}
	}
}

// indirect parses "num gen obj <object>" and, for a stream, the stream
// keyword; it returns the object and, for a stream, the buffer position of
// its first data byte.
func (l *lexer) indirect() (Ref, Object, int, error) {
	l.skipSpace()
	num, err := l.number()
	if err != nil {
		return Ref{}, nil, 0, err
	}
	n, ok := num.(Integer)
	if !ok || n < 0 || n > 1<<32-1 {
		return Ref{}, nil, 0, malformed("expected an object number")
	}
	l.skipSpace()
	g, err := l.number()
	if err != nil {
		return Ref{}, nil, 0, err
	}
	gen, ok := g.(Integer)
	if !ok || gen < 0 || gen > 65535 {
		return Ref{}, nil, 0, malformed("expected a generation number")
	}
	if err := l.expect("obj"); err != nil {
		return Ref{}, nil, 0, err
	}
	ref := Ref{Num: uint32(n), Gen: uint16(gen)}
	o, err := l.object(0)
	if err != nil {
		return ref, nil, 0, err
	}
	d, isDict := o.(Dict)
	if !isDict {
		return ref, o, 0, nil
	}
	save := l.pos
	l.skipSpace()
	if l.pos+6 > len(l.b) {
		if !l.eof {
			return ref, nil, 0, errShort
		}
		return ref, d, 0, nil
	}
	if !bytes.HasPrefix(l.b[l.pos:], []byte("stream")) {
		l.pos = save
		return ref, d, 0, nil
	}
	l.pos += len("stream")
	// The keyword is followed by CRLF or LF (§7.3.8.1); tolerate a lone CR.
	if l.pos < len(l.b) && l.b[l.pos] == '\r' {
		l.pos++
	}
	if l.pos < len(l.b) && l.b[l.pos] == '\n' {
		l.pos++
	}
	return ref, &Stream{Dict: d}, l.pos, nil
}
