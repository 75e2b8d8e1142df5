// Package fault defines sealgate's errors with stable codes.
//
// Every package reports failures a caller can act on as a *fault.Error whose
// Code is a stable, documented string (seal_unknown, pdf_encrypted, ...).
// Transports (REST, SOAP, portal, CLI) map codes to their own dialect through
// one table, so the same failure looks the same everywhere. Messages name the
// input that was wrong and never contain secrets.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Code is a stable, machine-readable error code such as "seal_unknown".
type Code string

// Kind groups codes by who is at fault; transports map a Kind to a status
// (HTTP 400, 403, 404, 409, 503, 500, ...).
type Kind int

// Kinds of failure.
const (
	// Internal is a failure of sealgate itself; details stay in the log.
	Internal Kind = iota
	// Invalid means the caller's input was wrong.
	Invalid
	// Unauthenticated means the caller did not prove who it is.
	Unauthenticated
	// Forbidden means the caller is known but not allowed.
	Forbidden
	// NotFound means the named thing does not exist.
	NotFound
	// Conflict means the request clashes with the current state.
	Conflict
	// Unavailable means a dependency (card, TSA, directory) is down; retrying may help.
	Unavailable
	// TooLarge means the input exceeds a configured limit.
	TooLarge
	// TooMany means a rate limit or lockout applies.
	TooMany
	// Timeout means the caller was too slow (a request body that did not
	// arrive in time).
	Timeout
	// MethodNotAllowed means the resource exists but not with this method.
	MethodNotAllowed
	// UnsupportedMediaType means the body's content type is not one the
	// request takes.
	UnsupportedMediaType
)

// Error is an error with a stable code.
type Error struct {
	Code Code
	Kind Kind
	// Msg is safe to show to the caller.
	Msg string
	// Err is the underlying cause, for logs and errors.Is; it is not shown to callers.
	Err error
	// RetryAfter, when positive, is how long the caller should wait before
	// trying again (busy, rate limited, locked); transports announce it
	// (HTTP Retry-After).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an Error with a formatted message.
func New(kind Kind, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error with a formatted message and a cause.
func Wrap(err error, kind Kind, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Retry returns e with RetryAfter set to d, for errors built with New or Wrap.
func (e *Error) Retry(d time.Duration) *Error {
	e.RetryAfter = d
	return e
}

// As returns the first *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// RetryAfterOf returns how long err asks the caller to wait, zero when it
// does not say.
func RetryAfterOf(err error) time.Duration {
	if e := As(err); e != nil {
		return e.RetryAfter
	}
	return 0
}

// CodeOf returns err's code, "internal" for errors without one and "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if e := As(err); e != nil {
		return e.Code
	}
	return CodeInternal
}

// CodeInternal is the code of errors that carry none.
const CodeInternal Code = "internal"
