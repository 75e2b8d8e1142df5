package pdf_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/signing/pdf"
)

// objStmFile describes a file whose objects live partly in object streams,
// listed by a cross-reference stream, to build hostile structures with.
type objStmFile struct {
	// plain are objects stored at their own offsets, by number.
	plain map[uint32]string
	// streams are object streams by number: their members and the extra
	// entries of their dictionary (/Length among them).
	streams map[uint32]objStmSpec
}

// objStmSpec is one object stream. Its dictionary gets /Type, /N and /First
// (unless dict sets them) and a direct /Length, unless dict sets /Length or
// lengthIn names a plain object to write it into.
type objStmSpec struct {
	dict     string
	members  map[uint32]string
	lengthIn uint32
}

// bytes writes the file: plain objects, then object streams (their data
// uncompressed), then a cross-reference stream with rows of type 1 and 2.
func (f objStmFile) bytes() []byte {
	type row struct {
		kind     byte
		off, idx uint32
	}
	rows := map[uint32]row{}
	plain := maps.Clone(f.plain)
	if plain == nil {
		plain = map[uint32]string{}
	}
	var streams bytes.Buffer
	for _, n := range sortedNums(f.streams) {
		s := f.streams[n]
		var hdr, body strings.Builder
		for i, m := range sortedNums(s.members) {
			rows[m] = row{2, n, uint32(i)}
			fmt.Fprintf(&hdr, "%d %d ", m, body.Len())
			body.WriteString(s.members[m] + "\n")
		}
		data := hdr.String() + body.String()
		dict := "/Type /ObjStm " + s.dict
		if !strings.Contains(s.dict, "/N ") {
			dict += fmt.Sprintf(" /N %d", len(s.members))
		}
		if !strings.Contains(s.dict, "/First ") {
			dict += fmt.Sprintf(" /First %d", hdr.Len())
		}
		switch {
		case s.lengthIn != 0:
			dict += fmt.Sprintf(" /Length %d 0 R", s.lengthIn)
			plain[s.lengthIn] = fmt.Sprint(len(data))
		case !strings.Contains(s.dict, "/Length "):
			dict += fmt.Sprintf(" /Length %d", len(data))
		}
		rows[n] = row{1, uint32(streams.Len()), 0} // moved past the plain objects below
		fmt.Fprintf(&streams, "%d 0 obj\n<< %s >>\nstream\n%s\nendstream\nendobj\n", n, dict, data)
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	for _, n := range sortedNums(plain) {
		rows[n] = row{1, uint32(b.Len()), 0}
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", n, plain[n])
	}
	for n := range f.streams {
		rows[n] = row{1, uint32(b.Len()) + rows[n].off, 0}
	}
	b.Write(streams.Bytes())
	xref := uint32(b.Len())
	size := uint32(0)
	for n := range rows {
		size = max(size, n+1)
	}
	rows[size] = row{1, xref, 0}
	size++
	var data []byte
	for n := uint32(0); n < size; n++ {
		r := rows[n]
		data = append(data, r.kind)
		data = binary.BigEndian.AppendUint32(data, r.off)
		data = binary.BigEndian.AppendUint16(data, uint16(r.idx))
	}
	fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n",
		size-1, size, len(data), data, xref)
	return b.Bytes()
}

func sortedNums[V any](m map[uint32]V) []uint32 {
	nums := make([]uint32, 0, len(m))
	for n := range m {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums
}

// A one-page file whose page tree root (object 2) is in object stream 5 and
// whose page (object 4) is a plain object; objects 1–4 are the catalog, the
// page tree, a spare number and the page.
func onePage(streams map[uint32]objStmSpec) objStmFile {
	return objStmFile{
		plain: map[uint32]string{
			1: "<< /Type /Catalog /Pages 2 0 R >>",
			4: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
		},
		streams: streams,
	}
}

const pagesRoot = "<< /Type /Pages /Count 1 /Kids [4 0 R] >>"

// The file builder writes object streams the reader reads: the page tree
// root comes out of object stream 5, whose /Length is a plain object.
func TestObjStmFileReads(t *testing.T) {
	f := onePage(map[uint32]objStmSpec{5: {lengthIn: 3, members: map[uint32]string{2: pagesRoot}}})
	r := open(t, f.bytes())
	if n, err := r.PageCount(); err != nil || n != 1 {
		t.Fatalf("PageCount = %d, %v", n, err)
	}
	if p, err := r.Page(1); err != nil || p.Ref.Num != 4 {
		t.Fatalf("Page(1) = %v, %v", p, err)
	}
}

// Object streams that must be loaded to read themselves, directly or through
// each other, are refused as malformed instead of recursing until the stack
// runs out; so is a chain of distinct object streams nested too deeply.
func TestObjStmCycles(t *testing.T) {
	chain := map[uint32]objStmSpec{}
	const first, links = 10, 40
	for i := uint32(0); i < links; i++ {
		// Stream 10+i holds the /Length of stream 10+i-1; stream 10 holds 2.
		members := map[uint32]string{100 + i: "7"}
		if i == 0 {
			members[2] = pagesRoot
		}
		chain[first+i] = objStmSpec{dict: fmt.Sprintf("/Length %d 0 R", 100+i+1), members: members}
	}
	tests := []struct {
		name string
		file objStmFile
		stm  uint32 // the object stream holding object 2
		want string // what the error of Get(2 0 R) says
		// dataReads tells that the object stream's data reads even though
		// its members do not.
		dataReads bool
	}{
		{"own /Length", onePage(map[uint32]objStmSpec{
			5: {dict: "/Length 3 0 R", members: map[uint32]string{2: pagesRoot, 3: "40"}},
		}), 5, "object stream 5 is needed to read itself", false},
		{"/Length in each other", onePage(map[uint32]objStmSpec{
			5: {dict: "/Length 3 0 R", members: map[uint32]string{2: pagesRoot, 7: "40"}},
			6: {dict: "/Length 7 0 R", members: map[uint32]string{3: "40"}},
		}), 5, "object stream 5 is needed to read itself", false},
		{"own /N", onePage(map[uint32]objStmSpec{
			5: {dict: "/N 3 0 R", members: map[uint32]string{2: pagesRoot, 3: "2"}},
		}), 5, "object stream 5 is needed to read itself", true},
		{"own /Filter", onePage(map[uint32]objStmSpec{
			5: {dict: "/Filter 3 0 R", members: map[uint32]string{2: pagesRoot, 3: "/FlateDecode"}},
		}), 5, "object stream 5 is needed to read itself", false},
		{"a chain of 40 object streams", onePage(chain), first, "more than 16 nested object streams", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.file.bytes()
			r, err := pdf.Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err = r.Get(pdf.Ref{Num: 2})
			if fault.CodeOf(err) != pdf.CodeMalformed || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Get(2 0 R) error %v, want code %s saying %q", err, pdf.CodeMalformed, tt.want)
			}
			if _, err := r.PageCount(); fault.CodeOf(err) != pdf.CodeMalformed {
				t.Errorf("PageCount error %v, want code %s", err, pdf.CodeMalformed)
			}
			o, err := r.Get(pdf.Ref{Num: tt.stm})
			s, ok := o.(*pdf.Stream)
			if err != nil || !ok {
				t.Fatalf("Get(%d 0 R) = %T, %v; want the object stream", tt.stm, o, err)
			}
			_, err = r.StreamData(s)
			if tt.dataReads && err != nil {
				t.Errorf("StreamData: %v", err)
			}
			if !tt.dataReads && fault.CodeOf(err) != pdf.CodeMalformed {
				t.Errorf("StreamData error %v, want code %s", err, pdf.CodeMalformed)
			}
		})
	}
}

// An /Extends cycle between object streams is harmless: the reader finds an
// object's stream through the cross-reference stream and never follows
// /Extends, so the objects of both streams read normally.
func TestObjStmExtendsCycle(t *testing.T) {
	f := onePage(map[uint32]objStmSpec{
		5: {dict: "/Extends 6 0 R", lengthIn: 3, members: map[uint32]string{2: pagesRoot}},
		6: {dict: "/Extends 5 0 R", lengthIn: 7, members: map[uint32]string{8: "(in six)"}},
	})
	r := open(t, f.bytes())
	if n, err := r.PageCount(); err != nil || n != 1 {
		t.Errorf("PageCount = %d, %v", n, err)
	}
	if o, err := r.Get(pdf.Ref{Num: 8}); err != nil || string(o.(pdf.String)) != "in six" {
		t.Errorf("Get(8 0 R) = %v, %v", o, err)
	}
}

// A cross-reference stream whose /Length is a reference is refused: the
// table that would resolve it is the one being read.
func TestXrefStreamIndirectLength(t *testing.T) {
	good := onePage(map[uint32]objStmSpec{5: {members: map[uint32]string{2: pagesRoot}}}).bytes()
	open(t, good) // the file as written reads
	i := bytes.LastIndex(good, []byte("/Type /XRef"))
	j := bytes.Index(good[i:], []byte("/Length "))
	k := bytes.Index(good[i+j:], []byte(" >>"))
	bad := slices.Concat(good[:i+j], []byte("/Length 3 0 R"), good[i+j+k:])
	_, err := pdf.Open(bytes.NewReader(bad), int64(len(bad)))
	if fault.CodeOf(err) != pdf.CodeMalformed {
		t.Fatalf("Open: %v, want %s", err, pdf.CodeMalformed)
	}
}

// A cross-reference stream entry of a type other than 0, 1 and 2 is
// refused: viewers rebuild their table from the file on meeting one.
func TestXrefStreamUnknownEntryType(t *testing.T) {
	good := onePage(map[uint32]objStmSpec{5: {members: map[uint32]string{2: pagesRoot}}}).bytes()
	i := bytes.LastIndex(good, []byte("/Type /XRef"))
	j := bytes.Index(good[i:], []byte("stream\n"))
	bad := bytes.Clone(good)
	bad[i+j+len("stream\n")] = 3 // object 0's row, type 0 → 3
	_, err := pdf.Open(bytes.NewReader(bad), int64(len(bad)))
	if fault.CodeOf(err) != pdf.CodeMalformed {
		t.Fatalf("Open: %v, want %s", err, pdf.CodeMalformed)
	}
}
