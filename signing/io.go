package signing

import (
	"context"
	"io"

	"github.com/sealgate/sealgate/fault"
)

// CopyContext copies src to dst until EOF, stopping when ctx is done. A
// failing src gives input_unreadable.
func CopyContext(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	n, err := io.CopyBuffer(dst, contextReader{ctx, src}, make([]byte, 64<<10))
	if ctxErr := ctx.Err(); ctxErr != nil {
		return n, ctxErr
	}
	if err != nil {
		return n, fault.Wrap(err, fault.Invalid, CodeInputUnreadable, "the document could not be read after %d bytes", n)
	}
	return n, nil
}

// contextReader ends a read loop once its context is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
