package cms

import (
	"errors"
	"fmt"
)

// CMS allows BER (X.690 §8) everywhere but in signed attributes (RFC 5652
// §2), and streaming signers use it: NSS (pdfsig -add-signature) wraps the
// SignedData in indefinite lengths, others split OCTET STRINGs into
// constructed chunks. encoding/asn1 reads DER only, so signatures are first
// re-encoded here with DER's lengths. Nothing else is changed: tags are
// copied, SET OF members keep their order and primitive contents are not
// looked into (a certificate or TSTInfo in BER stays unparseable).

const (
	// maxBERSize is the largest signature re-encoded, as large as a PDF
	// string object sealgate reads; the output is about as large as the input.
	maxBERSize = 16 << 20
	// maxBERDepth bounds nesting; a CMS signature with a timestamp token
	// carrying certificates is about 20 deep.
	maxBERDepth = 64
)

// Universal tags of the string types BER may split into constructed chunks.
const (
	berBitString   = 0x03
	berOctetString = 0x04
	berConstructed = 0x20
)

var errBERTruncated = errors.New("the encoding ends inside an element")

// BERToDER reads the first BER element of b and returns it with DER's
// lengths — definite, in the fewest octets — and constructed BIT and OCTET
// STRINGs made primitive, followed by the bytes after it. An element that
// already has that form is returned as the very slice of b, without copying,
// so this is also the check whether b needs re-encoding at all.
func BERToDER(b []byte) (der, rest []byte, err error) {
	if len(b) > maxBERSize {
		return nil, nil, fmt.Errorf("the encoding has %d bytes, more than the %d accepted", len(b), maxBERSize)
	}
	der, n, err := derElement(b, 0)
	if err != nil {
		return nil, nil, err
	}
	return der, b[n:], nil
}

// berHeader is an element's identifier and length octets.
type berHeader struct {
	tag         []byte // identifier octets, as encoded
	constructed bool
	indefinite  bool
	length      int  // content length, when definite
	minimal     bool // the length is definite and in DER's form
	size        int  // octets of identifier and length
}

func readBERHeader(b []byte) (berHeader, error) {
	var h berHeader
	if len(b) < 2 {
		return h, errBERTruncated
	}
	h.constructed = b[0]&0x20 != 0
	i := 1
	if b[0]&0x1f == 0x1f { // high tag number: base-128 octets, the last without bit 8
		for ; i < len(b) && b[i]&0x80 != 0; i++ {
			if i == 4 {
				return h, errors.New("a tag number is too large")
			}
		}
		i++
	}
	if i >= len(b) {
		return h, errBERTruncated
	}
	h.tag = b[:i]
	l := b[i]
	i++
	switch {
	case l == 0x80:
		if !h.constructed {
			return h, errors.New("a primitive element has an indefinite length")
		}
		h.indefinite = true
	case l < 0x80:
		h.length, h.minimal = int(l), true
	default:
		n := int(l & 0x7f)
		if n > 4 {
			return h, fmt.Errorf("a length takes %d octets", n)
		}
		if i+n > len(b) {
			return h, errBERTruncated
		}
		var v uint64
		for _, c := range b[i : i+n] {
			v = v<<8 | uint64(c)
		}
		i += n
		if v > uint64(len(b)) {
			return h, fmt.Errorf("a length of %d exceeds the input", v)
		}
		h.length, h.minimal = int(v), v >= 0x80 && b[i-n] != 0
	}
	if h.length > len(b)-i {
		return h, fmt.Errorf("a length of %d exceeds the %d bytes left", h.length, len(b)-i)
	}
	h.size = i
	return h, nil
}

// derElement re-encodes the first element of b (see BERToDER), found at
// the given nesting depth, and returns it with the number of bytes of b it
// took.
func derElement(b []byte, depth int) ([]byte, int, error) {
	if depth > maxBERDepth {
		return nil, 0, fmt.Errorf("elements are nested more than %d deep", maxBERDepth)
	}
	if len(b) > 0 && b[0] == 0 {
		// Tag 0 is end-of-contents, which ends an indefinite length and is
		// no element: zero padding taken into a longer length is not data.
		return nil, 0, errors.New("an end-of-contents marker where an element is expected")
	}
	h, err := readBERHeader(b)
	if err != nil {
		return nil, 0, err
	}
	content := b[h.size:]
	if !h.indefinite {
		content = content[:h.length]
	}
	if !h.constructed {
		n := h.size + h.length
		if h.minimal {
			return b[:n], n, nil
		}
		return derEncode(h.tag, content), n, nil
	}

	// The children are copied into out from the first change on, which is
	// at once when the header itself needs re-encoding.
	changed := !h.minimal
	var out []byte
	off := 0
	for {
		if h.indefinite && len(content)-off >= 2 && content[off] == 0 && content[off+1] == 0 {
			off += 2 // end-of-contents
			break
		}
		if !h.indefinite && off == len(content) {
			break
		}
		child, n, err := derElement(content[off:], depth+1)
		if err != nil {
			return nil, 0, err
		}
		if !changed && (len(child) != n || &child[0] != &content[off]) {
			changed = true
			out = append(out, content[:off]...)
		}
		if changed {
			out = append(out, child...)
		}
		off += n
	}
	n := h.size + off
	if !changed {
		out = content[:off]
	}
	tag := h.tag
	if len(tag) == 1 && (tag[0] == berConstructed|berBitString || tag[0] == berConstructed|berOctetString) {
		prim := tag[0] &^ berConstructed
		if out, err = flattenString(prim, out); err != nil {
			return nil, 0, err
		}
		tag, changed = []byte{prim}, true
	}
	if !changed {
		return b[:n], n, nil
	}
	return derEncode(tag, out), n, nil
}

// derEncode returns the element of identifier octets tag and content, with
// a DER length.
func derEncode(tag, content []byte) []byte {
	var length []byte
	for v := len(content); v > 0; v >>= 8 {
		length = append([]byte{byte(v)}, length...)
	}
	if len(content) < 0x80 {
		length = []byte{byte(len(content))}
	} else {
		length = append([]byte{0x80 | byte(len(length))}, length...)
	}
	out := make([]byte, 0, len(tag)+len(length)+len(content))
	return append(append(append(out, tag...), length...), content...)
}

// flattenString joins the DER segments of a constructed BIT or OCTET STRING
// (tag is the primitive one) into the contents of the primitive string. A
// BIT STRING segment starts with its count of unused bits, which only the
// last may have.
func flattenString(tag byte, segments []byte) ([]byte, error) {
	var out []byte
	if tag == berBitString {
		out = []byte{0}
	}
	for len(segments) > 0 {
		h, err := readBERHeader(segments)
		if err != nil {
			return nil, err
		}
		if len(h.tag) != 1 || h.tag[0] != tag {
			return nil, fmt.Errorf("a constructed string of tag %d holds an element of tag %#x", tag, h.tag[0])
		}
		seg := segments[h.size : h.size+h.length]
		segments = segments[h.size+h.length:]
		if tag == berOctetString {
			out = append(out, seg...)
			continue
		}
		if len(seg) == 0 || seg[0] > 7 || out[0] != 0 || (len(seg) == 1 && seg[0] != 0) {
			return nil, errors.New("a segment of a constructed BIT STRING has a bad count of unused bits")
		}
		out[0] = seg[0]
		out = append(out, seg[1:]...)
	}
	return out, nil
}
