package pdf

import (
	"bytes"
	"compress/zlib"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Update is an incremental update being built on top of a file: new and
// replaced objects, laid out by Bytes after the file's last byte with a
// cross-reference section of the same kind as the file's newest one.
type Update struct {
	r    *Reader
	next uint32
	objs map[uint32]Object
	refs map[uint32]Ref
}

// NewUpdate starts an update of r's file.
func NewUpdate(r *Reader) *Update {
	return &Update{r: r, next: r.NextNumber(), objs: map[uint32]Object{}, refs: map[uint32]Ref{}}
}

// Reader returns the file being updated.
func (u *Update) Reader() *Reader { return u.r }

// Add adds a new object and returns its reference.
func (u *Update) Add(o Object) Ref {
	ref := Ref{Num: u.next}
	u.next++
	u.Set(ref, o)
	return ref
}

// Set writes o as the new value of ref.
func (u *Update) Set(ref Ref, o Object) {
	u.objs[ref.Num] = o
	u.refs[ref.Num] = ref
}

// Get returns ref's object as this update leaves it.
func (u *Update) Get(ref Ref) (Object, error) {
	if o, ok := u.objs[ref.Num]; ok {
		return o, nil
	}
	return u.r.Get(ref)
}

// Laid is an update laid out as bytes.
type Laid struct {
	// Bytes is the update, to be appended to the file.
	Bytes []byte
	// Base is the file offset of Bytes[0] (the original file's size).
	Base int64
	// Spans gives the position of every object in Bytes, by object number.
	Spans map[uint32][2]int
}

// Bytes lays the update out after the file's last byte.
func (u *Update) Bytes() (*Laid, error) {
	base := u.r.Size()
	var b []byte
	// Earlier revisions stay untouched; the update only needs to start on a
	// new line.
	last := make([]byte, 1)
	if _, err := u.r.r.ReadAt(last, base-1); err != nil && err != io.EOF {
		return nil, malformed("cannot read the document's last byte")
	}
	if last[0] != '\n' && last[0] != '\r' {
		b = append(b, '\n')
	}
	nums := make([]uint32, 0, len(u.objs))
	for n := range u.objs {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	laid := &Laid{Base: base, Spans: map[uint32][2]int{}}
	offsets := map[uint32]int64{}
	for _, n := range nums {
		ref := u.refs[n]
		start := len(b)
		offsets[n] = base + int64(start)
		b = fmt.Appendf(b, "%d %d obj\n", ref.Num, ref.Gen)
		b = AppendObject(b, u.objs[n])
		b = append(b, "\nendobj\n"...)
		laid.Spans[n] = [2]int{start, len(b)}
	}
	trailer := Dict{"Prev": Integer(u.r.StartXref), "ID": u.fileID()}
	for _, k := range []Name{"Root", "Info"} {
		if v, ok := u.r.Trailer[k]; ok {
			trailer[k] = v
		}
	}
	xrefAt := base + int64(len(b))
	if u.r.Sections[0].Stream {
		self := u.next
		nums = append(nums, self)
		offsets[self] = xrefAt
		trailer["Type"] = Name("XRef")
		trailer["Size"] = Integer(self + 1)
		width := 1
		for xrefAt>>(8*width) > 0 {
			width++
		}
		trailer["W"] = Array{Integer(1), Integer(width), Integer(2)}
		var index Array
		var rows []byte
		for _, sub := range subsections(nums) {
			index = append(index, Integer(sub[0]), Integer(len(sub)))
			for _, n := range sub {
				rows = append(rows, 1)
				var off [8]byte
				binary.BigEndian.PutUint64(off[:], uint64(offsets[n]))
				rows = append(rows, off[8-width:]...)
				rows = binary.BigEndian.AppendUint16(rows, u.refs[n].Gen)
			}
		}
		trailer["Index"] = index
		trailer["Filter"] = Name("FlateDecode")
		b = fmt.Appendf(b, "%d 0 obj\n", self)
		b = AppendObject(b, &Stream{Dict: trailer, Data: Deflate(rows)})
		b = append(b, "\nendobj\n"...)
	} else {
		trailer["Size"] = Integer(u.next)
		b = append(b, "xref\n"...)
		for _, sub := range subsections(nums) {
			b = fmt.Appendf(b, "%d %d\n", sub[0], len(sub))
			for _, n := range sub {
				b = fmt.Appendf(b, "%010d %05d n\r\n", offsets[n], u.refs[n].Gen)
			}
		}
		b = append(b, "trailer\n"...)
		b = AppendObject(b, trailer)
		b = append(b, '\n')
	}
	b = fmt.Appendf(b, "startxref\n%d\n%%%%EOF\n", xrefAt)
	laid.Bytes = b
	return laid, nil
}

// fileID returns the /ID of the update's trailer (ISO 32000-2 §14.4): first
// the file's permanent identifier, as the newest trailer that has one gives
// it, then a new identifier for this revision. A file without one gets a new
// permanent identifier too. New identifiers are 16 bytes from crypto/rand;
// both are written as hexadecimal strings.
func (u *Update) fileID() Raw {
	var permanent []byte
	for _, sec := range u.r.Sections {
		id, _ := sec.Trailer["ID"].(Array)
		if len(id) != 2 {
			continue
		}
		if s, ok := id[0].(String); ok && len(s) > 0 {
			permanent = s
			break
		}
	}
	if permanent == nil {
		permanent = newID()
	}
	return Raw(fmt.Sprintf("[<%X> <%X>]", permanent, newID()))
}

func newID() []byte {
	id := make([]byte, 16)
	rand.Read(id) // crypto/rand.Read never fails
	return id
}

// subsections splits sorted numbers into runs of consecutive numbers.
func subsections(nums []uint32) [][]uint32 {
	var out [][]uint32
	for i, n := range nums {
		if i == 0 || n != nums[i-1]+1 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], n)
	}
	return out
}

// zlibWriters are reused: a new zlib writer allocates some 800 KB of
// compressor state, more than most streams it writes.
var zlibWriters = sync.Pool{New: func() any { return zlib.NewWriter(nil) }}

// Deflate compresses data for a FlateDecode stream.
func Deflate(data []byte) []byte {
	var buf bytes.Buffer
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(&buf)
	zw.Write(data) // writes to a bytes.Buffer do not fail
	zw.Close()
	zlibWriters.Put(zw)
	return buf.Bytes()
}

// Appended is a file followed by bytes appended to it, as one io.ReaderAt:
// it lets an update be read back (for a following update) before anything
// has been written out.
type Appended struct {
	R    io.ReaderAt
	Size int64
	Tail []byte
}

// ReadAt implements io.ReaderAt.
func (a *Appended) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < a.Size {
		k := int(min(int64(len(p)), a.Size-off))
		m, err := a.R.ReadAt(p[:k], off)
		n += m
		if err != nil && !(err == io.EOF && m == k) {
			return n, err
		}
		off += int64(m)
	}
	if n < len(p) {
		t := off - a.Size
		if t >= int64(len(a.Tail)) {
			return n, io.EOF
		}
		m := copy(p[n:], a.Tail[t:])
		n += m
		if n < len(p) {
			return n, io.EOF
		}
	}
	return n, nil
}

// Len returns the total size.
func (a *Appended) Len() int64 { return a.Size + int64(len(a.Tail)) }
