package pdf

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"

	"github.com/sealgate/sealgate/fault"
)

// Limits that keep hostile or broken files from costing unbounded memory.
const (
	maxObjectWindow = 16 << 20 // largest direct object read in one piece
	maxDecoded      = 64 << 20 // largest decoded xref or object stream: bounds memory
	maxSections     = 10000    // longest /Prev chain
	// maxObjStmNesting bounds how many object streams one read may have to
	// load inside each other (an object stream's indirect /Length found in
	// another object stream, and so on); conforming files rarely need two.
	maxObjStmNesting = 16
)

// entry is one cross-reference entry.
type entry struct {
	kind   byte   // 0 free, 1 at offset, 2 in an object stream
	offset int64  // kind 1: file offset; kind 2: number of the object stream
	index  uint32 // kind 2: index within the object stream
	gen    uint16
}

// Section is one cross-reference section of the file: a table or a stream.
type Section struct {
	// Offset is where the section starts (the startxref or /Prev value).
	Offset int64
	// Stream tells whether it is a cross-reference stream rather than a table.
	Stream bool
	// Trailer is the trailer dictionary (the stream dictionary for a stream).
	Trailer Dict
	// Objects lists the in-use object numbers this section defines.
	Objects []uint32
}

// Reader gives access to a PDF file's objects without reading the whole file.
type Reader struct {
	r    io.ReaderAt
	size int64

	xref map[uint32]entry
	// Trailer is the newest trailer (for a cross-reference stream, its dictionary).
	Trailer Dict
	// Sections are the cross-reference sections, newest first.
	Sections []Section
	// StartXref is the offset named by the file's last startxref.
	StartXref int64

	objStms map[uint32]*objStm
	cache   map[Ref]Object
}

// objStm is a loaded object stream: its decoded data and, by index, the
// number of each object it holds and where that object starts in data.
type objStm struct {
	data    []byte
	nums    []uint32
	offsets []int
}

// Open reads the cross-reference chain of the PDF file r of size bytes. A file
// that is not a PDF, is truncated or has a broken cross-reference is reported
// with code pdf_malformed; an encrypted file with pdf_encrypted.
func Open(r io.ReaderAt, size int64) (rd *Reader, err error) {
	defer func() {
		// The parser checks its input; this only turns an overlooked case into
		// a malformed-input error instead of taking the process down.
		if p := recover(); p != nil {
			rd, err = nil, malformed("unreadable PDF structure")
		}
	}()
	rd = &Reader{r: r, size: size, xref: map[uint32]entry{}, objStms: map[uint32]*objStm{}, cache: map[Ref]Object{}}
	head := make([]byte, min(size, 1024))
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fault.Wrap(err, fault.Invalid, CodeMalformed, "cannot read the document")
	}
	if !bytes.Contains(head, []byte("%PDF-")) {
		return nil, malformed("the document is not a PDF (no %%PDF- header)")
	}
	start, err := rd.findStartXref()
	if err != nil {
		return nil, err
	}
	rd.StartXref = start
	seen := map[int64]bool{}
	for off := start; ; {
		if seen[off] {
			return nil, malformed("cross-reference chain loops at offset %d", off)
		}
		if len(seen) > maxSections {
			return nil, malformed("more than %d cross-reference sections", maxSections)
		}
		seen[off] = true
		sec, err := rd.readSection(off)
		if err != nil {
			return nil, err
		}
		rd.Sections = append(rd.Sections, sec)
		prev, ok := Int(sec.Trailer["Prev"])
		if !ok {
			break
		}
		off = prev
	}
	rd.Trailer = rd.Sections[0].Trailer
	if _, enc := rd.Trailer["Encrypt"]; enc {
		return nil, fault.New(fault.Invalid, CodeEncrypted, "the document is encrypted; remove the password protection before sealing")
	}
	if _, ok := rd.Trailer["Root"].(Ref); !ok {
		return nil, malformed("the trailer has no /Root catalog reference")
	}
	return rd, nil
}

// Size returns the file size given to Open.
func (r *Reader) Size() int64 { return r.size }

func (r *Reader) findStartXref() (int64, error) {
	n := min(r.size, 2048)
	tail := make([]byte, n)
	if _, err := r.r.ReadAt(tail, r.size-n); err != nil && !errors.Is(err, io.EOF) {
		return 0, fault.Wrap(err, fault.Invalid, CodeMalformed, "cannot read the document")
	}
	i := bytes.LastIndex(tail, []byte("startxref"))
	if i < 0 {
		return 0, r.noStartXref()
	}
	l := &lexer{b: tail[i+len("startxref"):], eof: true}
	o, err := l.object(0)
	if err != nil {
		return 0, err
	}
	off, ok := o.(Integer)
	if !ok || off < 0 || int64(off) >= r.size {
		return 0, malformed("startxref points outside the document")
	}
	return int64(off), nil
}

// noStartXref says why the document's end has no startxref: bytes after
// its last %%EOF marker (which readers that rebuild the cross-reference
// table skip, qpdf calling the file damaged), or a document cut short.
func (r *Reader) noStartXref() error {
	n := min(r.size, 1<<20)
	b := make([]byte, n)
	if _, err := r.r.ReadAt(b, r.size-n); err != nil && !errors.Is(err, io.EOF) {
		return fault.Wrap(err, fault.Invalid, CodeMalformed, "cannot read the document")
	}
	if i := bytes.LastIndex(b, []byte("%%EOF")); i >= 0 && bytes.Contains(b[:i], []byte("startxref")) {
		rest := bytes.TrimLeft(b[i+len("%%EOF"):], "\x00\t\n\x0c\r ")
		return malformed("the document goes on for %d bytes after its last %%%%EOF marker: remove what follows it", len(rest))
	}
	return malformed("no startxref at the end of the document (truncated?)")
}

// window reads up to n bytes at off.
func (r *Reader) window(off int64, n int) ([]byte, bool, error) {
	if off < 0 || off >= r.size {
		return nil, false, malformed("offset %d lies outside the document", off)
	}
	eof := false
	if int64(n) >= r.size-off {
		n = int(r.size - off)
		eof = true
	}
	b := make([]byte, n)
	if _, err := r.r.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fault.Wrap(err, fault.Invalid, CodeMalformed, "cannot read the document at offset %d", off)
	}
	return b, eof, nil
}

// parseAt runs parse over a growing window at off until it fits.
func (r *Reader) parseAt(off int64, parse func(l *lexer) error) error {
	for n := 4096; ; n *= 4 {
		b, eof, err := r.window(off, n)
		if err != nil {
			return err
		}
		err = parse(&lexer{b: b, eof: eof})
		if !errors.Is(err, errShort) {
			return err
		}
		if n >= maxObjectWindow {
			return malformed("object at offset %d is larger than %d bytes", off, maxObjectWindow)
		}
	}
}

func (r *Reader) readSection(off int64) (Section, error) {
	sec := Section{Offset: off}
	var isTable bool
	err := r.parseAt(off, func(l *lexer) error {
		l.skipSpace()
		isTable = bytes.HasPrefix(l.b[l.pos:], []byte("xref"))
		if !isTable {
			return nil
		}
		l.pos += 4
		var entries []numbered
		for {
			l.skipSpace()
			if l.pos >= len(l.b) {
				return l.short()
			}
			if l.b[l.pos] == 't' {
				break
			}
			first, err1 := l.number()
			l.skipSpace()
			count, err2 := l.number()
			if err1 != nil || err2 != nil {
				return errors.Join(err1, err2)
			}
			f, ok1 := first.(Integer)
			c, ok2 := count.(Integer)
			if !ok1 || !ok2 || f < 0 || c < 0 || f+c > 1<<32-1 {
				return malformed("bad cross-reference subsection header at offset %d", off)
			}
			for i := int64(0); i < int64(c); i++ {
				l.skipSpace()
				o := l.word()
				l.skipSpace()
				g := l.word()
				l.skipSpace()
				t := l.word()
				if l.pos >= len(l.b) {
					return l.short()
				}
				ofs, err1 := strconv.ParseInt(string(o), 10, 64)
				gen, err2 := strconv.ParseUint(string(g), 10, 16)
				if err1 != nil || err2 != nil || (string(t) != "n" && string(t) != "f") {
					return malformed("bad cross-reference entry at offset %d", off)
				}
				e := entry{gen: uint16(gen)}
				if string(t) == "n" {
					e.kind, e.offset = 1, ofs
				}
				entries = append(entries, numbered{uint32(int64(f) + i), e})
			}
		}
		if err := l.expect("trailer"); err != nil {
			return err
		}
		t, err := l.object(0)
		if err != nil {
			return err
		}
		d, ok := t.(Dict)
		if !ok {
			return malformed("trailer at offset %d is not a dictionary", off)
		}
		sec.Trailer = d
		if xs, ok := Int(d["XRefStm"]); ok {
			hidden, err := r.readXrefStream(xs)
			if err != nil {
				return err
			}
			if entries, err = withHidden(entries, hidden.entries, off); err != nil {
				return err
			}
		}
		sec.Objects = r.merge(entries)
		return nil
	})
	if err != nil || isTable {
		return sec, err
	}
	xs, err := r.readXrefStream(off)
	if err != nil {
		return sec, err
	}
	sec.Stream = true
	sec.Trailer = xs.dict
	sec.Objects = r.merge(xs.entries)
	return sec, nil
}

type numbered struct {
	num uint32
	e   entry
}

type xrefStream struct {
	dict    Dict
	entries []numbered
}

// withHidden returns the entries of a hybrid-reference section: those of its
// table, and those of its hidden cross-reference stream (/XRefStm) for objects
// the table does not list or lists as free. The table's in-use entries take
// precedence (ISO 32000-1 §7.5.8.4), as in poppler and qpdf; an object that
// both place, in different places, is refused, since readers that follow
// either one show what the other hides. A free table entry is filled from the
// stream, as qpdf does and as some writers (sealgate's test corpus among
// them) expect; poppler instead rebuilds its table from the file's object
// headers when it meets such an entry.
func withHidden(table, hidden []numbered, off int64) ([]numbered, error) {
	listed := make(map[uint32]entry, len(table))
	for _, t := range table {
		if _, dup := listed[t.num]; !dup {
			listed[t.num] = t.e
		}
	}
	var filled []numbered
	for _, h := range hidden {
		t, ok := listed[h.num]
		switch {
		case !ok || t.kind == 0:
			filled = append(filled, h)
		case h.e.kind != 0 && h.e != t:
			return nil, malformed("the cross-reference section at offset %d and its hidden cross-reference stream place object %d differently", off, h.num)
		}
	}
	// merge keeps the first entry of a number: the stream's for the
	// numbers it fills, the table's for the others.
	return append(filled, table...), nil
}

// merge records entries not already defined by a newer section and returns
// the in-use numbers it recorded.
func (r *Reader) merge(entries []numbered) []uint32 {
	var nums []uint32
	for _, e := range entries {
		if _, set := r.xref[e.num]; set {
			continue
		}
		r.xref[e.num] = e.e
		if e.e.kind != 0 {
			nums = append(nums, e.num)
		}
	}
	return nums
}

func (r *Reader) readXrefStream(off int64) (*xrefStream, error) {
	_, o, err := r.readIndirect(off)
	if err != nil {
		return nil, err
	}
	s, ok := o.(*Stream)
	if !ok || s.Dict.Name("Type") != "XRef" {
		return nil, malformed("no cross-reference table or stream at offset %d", off)
	}
	// Its entries must be direct (ISO 32000-1 §7.5.8.2): the table that
	// would resolve a reference is what is being read.
	if _, ok := Int(s.Dict["Length"]); !ok {
		return nil, malformed("cross-reference stream at offset %d has no direct /Length", off)
	}
	data, err := r.StreamData(s)
	if err != nil {
		return nil, err
	}
	w, ok := s.Dict["W"].(Array)
	if !ok || len(w) != 3 {
		return nil, malformed("cross-reference stream at offset %d has a bad /W", off)
	}
	var widths [3]int
	rowLen := 0
	for i, x := range w {
		v, ok := Int(x)
		if !ok || v < 0 || v > 8 {
			return nil, malformed("cross-reference stream at offset %d has a bad /W", off)
		}
		widths[i] = int(v)
		rowLen += int(v)
	}
	if rowLen == 0 {
		return nil, malformed("cross-reference stream at offset %d has a bad /W", off)
	}
	size, _ := Int(s.Dict["Size"])
	index := Array{Integer(0), Integer(size)}
	if ix, ok := s.Dict["Index"].(Array); ok {
		index = ix
	}
	xs := &xrefStream{dict: s.Dict}
	pos := 0
	for i := 0; i+1 < len(index); i += 2 {
		first, ok1 := Int(index[i])
		count, ok2 := Int(index[i+1])
		if !ok1 || !ok2 || first < 0 || count < 0 || first+count > 1<<32-1 {
			return nil, malformed("cross-reference stream at offset %d has a bad /Index", off)
		}
		for j := int64(0); j < count; j++ {
			if pos+rowLen > len(data) {
				return nil, malformed("cross-reference stream at offset %d is shorter than its /Index", off)
			}
			var f [3]uint64
			for k := 0; k < 3; k++ {
				for _, c := range data[pos : pos+widths[k]] {
					f[k] = f[k]<<8 | uint64(c)
				}
				pos += widths[k]
			}
			if widths[0] == 0 {
				f[0] = 1 // the type defaults to 1 (§7.5.8.3)
			}
			e := entry{}
			// Viewers rebuild their table from the file when they meet an
			// entry type they do not know or a generation out of range, and
			// may then see other objects than sealgate: such files are
			// refused rather than read one way here and another there.
			switch f[0] {
			case 0:
			case 1:
				if f[2] > 65535 {
					return nil, malformed("cross-reference stream at offset %d gives object %d generation %d", off, first+j, f[2])
				}
				e = entry{kind: 1, offset: int64(f[1]), gen: uint16(f[2])}
			case 2:
				e = entry{kind: 2, offset: int64(f[1]), index: uint32(f[2])}
			default:
				return nil, malformed("cross-reference stream at offset %d has an entry of unknown type %d", off, f[0])
			}
			xs.entries = append(xs.entries, numbered{uint32(first + j), e})
		}
	}
	return xs, nil
}

// readIndirect parses the indirect object at off.
func (r *Reader) readIndirect(off int64) (Ref, Object, error) {
	var ref Ref
	var obj Object
	err := r.parseAt(off, func(l *lexer) error {
		var dataPos int
		var err error
		ref, obj, dataPos, err = l.indirect()
		if s, ok := obj.(*Stream); ok && err == nil {
			s.Offset = off + int64(dataPos)
		}
		return err
	})
	return ref, obj, err
}

// Get returns the object ref names, or Null if its number is free or not
// defined. A reference whose generation is not that of the object's
// cross-reference entry (0 for an object in an object stream), and an entry
// that leads to an object header of another number or generation, are refused
// as pdf_malformed. ISO 32000-1 §7.3.10 makes such a reference null, but
// viewers disagree on it: qpdf reads null, poppler rebuilds its cross-reference
// table from the object headers it finds in the file and reads whatever that
// table names, so the object sealgate read need not be the one shown.
func (r *Reader) Get(ref Ref) (Object, error) { return r.get(ref, nil) }

// Reference returns the reference to object num as the cross-reference table
// defines it (with its generation), and whether num is in use.
func (r *Reader) Reference(num uint32) (Ref, bool) {
	e, ok := r.xref[num]
	return Ref{Num: num, Gen: e.gen}, ok && e.kind != 0
}

// loading lists the object streams being loaded on one call chain, innermost
// first. Reading an object stream resolves its /Length (and /Filter,
// /DecodeParms, /N, /First), which may lead to objects in other object
// streams; the list stops a stream that leads back to itself, and a chain of
// them nested too deeply, before the recursion exhausts the stack. It lives on
// the call chain rather than in the Reader, so it holds no shared state.
type loading struct {
	num   uint32
	depth int
	up    *loading
}

// enter returns the chain with object stream num loaded inside it.
func (c *loading) enter(num uint32) (*loading, error) {
	depth := 1
	if c != nil {
		depth = c.depth + 1
	}
	for p := c; p != nil; p = p.up {
		if p.num == num {
			return nil, malformed("object stream %d is needed to read itself", num)
		}
	}
	if depth > maxObjStmNesting {
		return nil, malformed("reading an object needs more than %d nested object streams", maxObjStmNesting)
	}
	return &loading{num: num, depth: depth, up: c}, nil
}

func (r *Reader) get(ref Ref, chain *loading) (Object, error) {
	if o, ok := r.cache[ref]; ok {
		return o, nil
	}
	e, ok := r.xref[ref.Num]
	if ok && e.kind != 0 && ref.Gen != e.gen {
		return nil, malformed("reference %d %d R: the cross-reference table gives object %d generation %d", ref.Num, ref.Gen, ref.Num, e.gen)
	}
	var o Object = Null{}
	switch {
	case !ok || e.kind == 0:
	case e.kind == 1:
		got, obj, err := r.readIndirect(e.offset)
		if err != nil {
			return nil, err
		}
		if got != ref {
			return nil, malformed("cross-reference entry for object %d %d points to object %d %d", ref.Num, ref.Gen, got.Num, got.Gen)
		}
		o = obj
	case e.kind == 2:
		obj, err := r.fromObjStm(uint32(e.offset), ref.Num, e.index, chain)
		if err != nil {
			return nil, err
		}
		o = obj
	}
	r.cache[ref] = o
	return o, nil
}

// fromObjStm reads object num, which the cross-reference table places at
// index in object stream stmNum. The index decides, as in poppler: the object
// number the stream lists there must be num, and a stream listing a number
// twice is refused, since a reader looking the number up (as qpdf does) could
// take the other copy.
func (r *Reader) fromObjStm(stmNum, num, index uint32, chain *loading) (Object, error) {
	os, ok := r.objStms[stmNum]
	if !ok {
		if e := r.xref[stmNum]; e.kind != 1 {
			return nil, malformed("object stream %d is missing", stmNum)
		}
		chain, err := chain.enter(stmNum)
		if err != nil {
			return nil, err
		}
		o, err := r.get(Ref{Num: stmNum}, chain)
		if err != nil {
			return nil, err
		}
		s, ok := o.(*Stream)
		if !ok {
			return nil, malformed("object %d is not an object stream", stmNum)
		}
		data, err := r.streamData(s, chain)
		if err != nil {
			return nil, err
		}
		no, err := r.resolve(s.Dict["N"], chain)
		if err != nil {
			return nil, err
		}
		fo, err := r.resolve(s.Dict["First"], chain)
		if err != nil {
			return nil, err
		}
		n, ok1 := Int(no)
		first, ok2 := Int(fo)
		if !ok1 || !ok2 || n < 0 || first < 0 || first > int64(len(data)) {
			return nil, malformed("object stream %d has a bad header", stmNum)
		}
		os = &objStm{data: data}
		listed := map[uint32]bool{}
		l := &lexer{b: data[:first], eof: true}
		for i := int64(0); i < n; i++ {
			a, err1 := l.objectNoRef()
			b, err2 := l.objectNoRef()
			an, ok1 := a.(Integer)
			bn, ok2 := b.(Integer)
			if err1 != nil || err2 != nil || !ok1 || !ok2 || an < 0 || an > 1<<32-1 || bn < 0 || first+int64(bn) > int64(len(data)) {
				return nil, malformed("object stream %d has a bad header", stmNum)
			}
			if listed[uint32(an)] {
				return nil, malformed("object stream %d lists object %d twice", stmNum, an)
			}
			listed[uint32(an)] = true
			os.nums = append(os.nums, uint32(an))
			os.offsets = append(os.offsets, int(first+int64(bn)))
		}
		r.objStms[stmNum] = os
	}
	if int64(index) >= int64(len(os.nums)) || os.nums[index] != num {
		return nil, malformed("cross-reference entry for object %d names index %d of object stream %d, which does not hold that object there", num, index, stmNum)
	}
	l := &lexer{b: os.data[os.offsets[index]:], eof: true}
	return l.object(0)
}

// objectNoRef reads a plain number, not mistaking "a b" pairs for references.
func (l *lexer) objectNoRef() (Object, error) {
	l.skipSpace()
	w := l.word()
	n, err := strconv.ParseInt(string(w), 10, 64)
	if err != nil {
		return nil, malformed("bad number %q", truncate(w))
	}
	return Integer(n), nil
}

// Resolve follows o if it is a reference.
func (r *Reader) Resolve(o Object) (Object, error) { return r.resolve(o, nil) }

func (r *Reader) resolve(o Object, chain *loading) (Object, error) {
	for i := 0; i < 32; i++ {
		ref, ok := o.(Ref)
		if !ok {
			return o, nil
		}
		var err error
		if o, err = r.get(ref, chain); err != nil {
			return nil, err
		}
	}
	return nil, malformed("reference chain too long")
}

// Dict resolves o and returns it as a dictionary (a stream's dictionary
// included); a missing object gives nil.
func (r *Reader) Dict(o Object) (Dict, error) {
	o, err := r.Resolve(o)
	if err != nil {
		return nil, err
	}
	switch v := o.(type) {
	case Dict:
		return v, nil
	case *Stream:
		return v.Dict, nil
	case Null, nil:
		return nil, nil
	}
	return nil, malformed("expected a dictionary, found %T", o)
}

// Array resolves o and returns it as an array; a missing object gives nil.
func (r *Reader) Array(o Object) (Array, error) {
	o, err := r.Resolve(o)
	if err != nil {
		return nil, err
	}
	switch v := o.(type) {
	case Array:
		return v, nil
	case Null, nil:
		return nil, nil
	}
	return nil, malformed("expected an array, found %T", o)
}

// Exists tells whether object num is in use in the file.
func (r *Reader) Exists(num uint32) bool {
	e, ok := r.xref[num]
	return ok && e.kind != 0
}

// NextNumber returns the first object number above every number in use.
func (r *Reader) NextNumber() uint32 {
	next := uint32(1)
	if s, ok := Int(r.Trailer["Size"]); ok && s > 0 && s < 1<<32 {
		next = uint32(s)
	}
	for n := range r.xref {
		if n >= next {
			next = n + 1
		}
	}
	return next
}

// ObjectStreams lists the object streams objects are stored in.
func (r *Reader) ObjectStreams() []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, e := range r.xref {
		if n := uint32(e.offset); e.kind == 2 && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// ObjectOffset returns where object num's current definition starts: its own
// offset, or for an object in an object stream, the offset of that stream.
func (r *Reader) ObjectOffset(num uint32) (int64, bool) {
	e, ok := r.xref[num]
	switch {
	case !ok || e.kind == 0:
		return 0, false
	case e.kind == 2:
		s, ok := r.xref[uint32(e.offset)]
		return s.offset, ok && s.kind == 1
	}
	return e.offset, true
}
