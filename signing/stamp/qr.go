package stamp

import (
	"bytes"
	"fmt"

	"github.com/boombuler/barcode/qr"
)

// qrPath is a QR code (ISO/IEC 18004) as a PDF path of filled rectangles,
// one per horizontal run of dark modules, one unit per module: drawn under
// a "cm" that scales it, it needs no image, stays sharp at any zoom and
// keeps to the stamp's colour space.
type qrPath struct {
	modules int    // modules per side, without the quiet zone
	path    []byte // "x y w h re" operators, then "f"
}

// qrCache keeps the QR paths of the configured verification URLs: the same
// on every stamp.
var qrCache = newBoundedCache[*qrPath](16)

// verifyQR returns the QR code of url at error correction level M, which
// survives a smudged print.
func verifyQR(url string) (*qrPath, error) {
	return qrCache.get(url, func() (*qrPath, error) {
		code, err := qr.Encode(url, qr.M, qr.Auto)
		if err != nil {
			return nil, fmt.Errorf("verifyURL: %q cannot be made into a QR code: %w", url, err)
		}
		n := code.Bounds().Dx()
		var b bytes.Buffer
		for y := 0; y < n; y++ {
			for x := 0; x < n; {
				if !dark(code.At(x, y)) {
					x++
					continue
				}
				start := x
				for x < n && dark(code.At(x, y)) {
					x++
				}
				// Image rows run top down, PDF's y axis up.
				fmt.Fprintf(&b, "%d %d %d 1 re\n", start, n-1-y, x-start)
			}
		}
		b.WriteString("f\n")
		return &qrPath{modules: n, path: b.Bytes()}, nil
	})
}

func dark(c interface{ RGBA() (r, g, b, a uint32) }) bool {
	r, _, _, _ := c.RGBA()
	return r < 0x8000
}
