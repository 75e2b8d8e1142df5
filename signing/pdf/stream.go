package pdf

import (
	"bytes"
	"compress/zlib"
	"errors"
	"io"
)

// StreamLength returns the length of a stream read from the file.
func (r *Reader) StreamLength(s *Stream) (int64, error) { return r.streamLength(s, nil) }

func (r *Reader) streamLength(s *Stream, chain *loading) (int64, error) {
	lo, err := r.resolve(s.Dict["Length"], chain)
	if err != nil {
		return 0, err
	}
	n, ok := Int(lo)
	if !ok || n < 0 || s.Offset+n > r.size {
		return 0, malformed("stream has a bad /Length")
	}
	return n, nil
}

// RawStream returns a stream's encoded data. It is meant for the small
// streams the signing layer reads (cross-reference and object streams, DSS
// entries); page content is never read.
func (r *Reader) RawStream(s *Stream) ([]byte, error) { return r.rawStream(s, nil) }

func (r *Reader) rawStream(s *Stream, chain *loading) ([]byte, error) {
	if s.Data != nil {
		return s.Data, nil
	}
	n, err := r.streamLength(s, chain)
	if err != nil {
		return nil, err
	}
	if n > maxDecoded {
		return nil, malformed("stream of %d bytes is too large", n)
	}
	b := make([]byte, n)
	if _, err := r.r.ReadAt(b, s.Offset); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, malformed("stream data is truncated")
	}
	return b, nil
}

// StreamData returns a stream's decoded data. FlateDecode (with PNG or TIFF
// predictors) is the only filter supported: it is what cross-reference and
// object streams use.
func (r *Reader) StreamData(s *Stream) ([]byte, error) { return r.streamData(s, nil) }

func (r *Reader) streamData(s *Stream, chain *loading) ([]byte, error) {
	data, err := r.rawStream(s, chain)
	if err != nil {
		return nil, err
	}
	f, err := r.resolve(s.Dict["Filter"], chain)
	if err != nil {
		return nil, err
	}
	var filters []Object
	switch v := f.(type) {
	case Name:
		filters = []Object{v}
	case Array:
		filters = v
	}
	p, err := r.resolve(s.Dict["DecodeParms"], chain)
	if err != nil {
		return nil, err
	}
	for i, fo := range filters {
		name, _ := fo.(Name)
		var parms Dict
		switch v := p.(type) {
		case Dict:
			parms = v
		case Array:
			if i < len(v) {
				parms, _ = v[i].(Dict)
			}
		}
		switch name {
		case "FlateDecode", "Fl":
			if data, err = inflate(data); err != nil {
				return nil, err
			}
			if data, err = unpredict(data, parms); err != nil {
				return nil, err
			}
		default:
			return nil, malformed("unsupported stream filter %q", name)
		}
	}
	return data, nil
}

func inflate(data []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, malformed("bad FlateDecode stream: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxDecoded+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, malformed("bad FlateDecode stream: %v", err)
	}
	if len(out) > maxDecoded {
		return nil, malformed("decoded stream exceeds %d bytes", maxDecoded)
	}
	return out, nil
}

// unpredict undoes a PNG (10–15) or TIFF (2, 8-bit) predictor (§7.4.4.4).
func unpredict(data []byte, parms Dict) ([]byte, error) {
	pred, _ := Int(parms["Predictor"])
	if pred <= 1 {
		return data, nil
	}
	colors, bits, columns := int64(1), int64(8), int64(1)
	if v, ok := Int(parms["Colors"]); ok {
		colors = v
	}
	if v, ok := Int(parms["BitsPerComponent"]); ok {
		bits = v
	}
	if v, ok := Int(parms["Columns"]); ok {
		columns = v
	}
	if colors < 1 || colors > 32 || bits < 1 || bits > 16 || columns < 1 || columns > 1<<20 {
		return nil, malformed("bad predictor parameters")
	}
	bpp := int((colors*bits + 7) / 8)
	row := int((colors*bits*columns + 7) / 8)
	if pred == 2 {
		if bits != 8 {
			return nil, malformed("unsupported TIFF predictor with %d bits", bits)
		}
		out := append([]byte(nil), data...)
		for start := 0; start+row <= len(out); start += row {
			for i := start + bpp; i < start+row; i++ {
				out[i] += out[i-bpp]
			}
		}
		return out, nil
	}
	if pred < 10 {
		return nil, malformed("unsupported predictor %d", pred)
	}
	out := make([]byte, 0, len(data)/(row+1)*row)
	prev := make([]byte, row)
	for pos := 0; pos < len(data); pos += row + 1 {
		if pos+row+1 > len(data) {
			return nil, malformed("predicted stream has a partial row")
		}
		ft := data[pos]
		cur := append([]byte(nil), data[pos+1:pos+1+row]...)
		for i := range cur {
			var a, b, c byte
			if i >= bpp {
				a, c = cur[i-bpp], prev[i-bpp]
			}
			b = prev[i]
			switch ft {
			case 0:
			case 1:
				cur[i] += a
			case 2:
				cur[i] += b
			case 3:
				cur[i] += byte((int(a) + int(b)) / 2)
			case 4:
				cur[i] += paeth(a, b, c)
			default:
				return nil, malformed("bad PNG predictor row type %d", ft)
			}
		}
		out = append(out, cur...)
		prev = cur
	}
	return out, nil
}

func paeth(a, b, c byte) byte {
	p := int(a) + int(b) - int(c)
	pa, pb, pc := abs(p-int(a)), abs(p-int(b)), abs(p-int(c))
	switch {
	case pa <= pb && pa <= pc:
		return a
	case pb <= pc:
		return b
	}
	return c
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
