package rest

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sealgate/sealgate/fault"
	"github.com/sealgate/sealgate/seal"
)

// A job's ZIP body from anyone: the directory is read within its bound,
// each entry is checked and read to its end, and whatever the bytes, the
// answer is a list of files or a coded error — never a panic, never more
// data than the entries declare.
func FuzzZipFiles(f *testing.F) {
	var good bytes.Buffer
	zw := zip.NewWriter(&good)
	for _, name := range []string{"a.txt", "dir/", "dir/b.pdf", "../x"} {
		w, _ := zw.Create(name)
		io.WriteString(w, strings.Repeat(name, 40))
	}
	zw.Close()
	f.Add(good.Bytes())
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Add([]byte("not a zip"))
	lim := seal.JobsConfig{MaxDocuments: 8, MaxTotalSize: 1 << 20}
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := zipFiles(bytes.NewReader(b), int64(len(b)), lim)
		if err != nil {
			if fault.As(err) == nil {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		if len(files) > lim.MaxDocuments {
			t.Fatalf("%d files past the limit of %d", len(files), lim.MaxDocuments)
		}
		for _, zf := range files {
			rc, err := zf.Open()
			if err != nil {
				continue
			}
			n, err := io.Copy(io.Discard, &zipEntry{r: rc, name: zf.Name})
			rc.Close()
			if err == nil && uint64(n) != zf.UncompressedSize64 {
				t.Fatalf("entry %q gave %d bytes, declares %d", zf.Name, n, zf.UncompressedSize64)
			}
		}
	})
}

// A multipart body from anyone: options are read within their limits and
// the document part is handed on, or the body is refused with a code.
func FuzzReadUpload(f *testing.F) {
	f.Add("--b\r\nContent-Disposition: form-data; name=\"reason\"\r\n\r\nInvoice\r\n--b\r\nContent-Disposition: form-data; name=\"document\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7\r\n--b--\r\n")
	f.Add("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nx\r\n--b--\r\n")
	f.Add("--b\r\n\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		r, err := http.NewRequest(http.MethodPost, "/api/v1/seals", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Content-Type", `multipart/form-data; boundary="b"`)
		u, err := readUpload(r, sealFields)
		if err != nil {
			if fault.As(err) == nil {
				t.Fatalf("uncoded error %v", err)
			}
			return
		}
		for name, vs := range u.fields {
			if _, ok := sealFields[name]; !ok {
				t.Fatalf("field %q is no seal option", name)
			}
			for _, v := range vs {
				if len(v) > seal.MaxTextLength {
					t.Fatalf("field %q of %d bytes past the limit", name, len(v))
				}
			}
		}
		if u.document != nil {
			io.Copy(io.Discard, u.document)
		}
	})
}
