package access

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// secretPrefixes start every secret sealgate issues: client secrets,
// access tokens and session tokens.
var secretPrefixes = [...]string{ClientSecretPrefix, BearerTokenPrefix, SessionTokenPrefix}

// redacted replaces the random part of a secret, after its prefix.
const redacted = "[redacted]"

// Redact returns s with every sealgate secret in it — a prefix followed by
// the secret's base64url characters — replaced by its prefix and
// "[redacted]". Callers put secrets into every field, a client secret typed
// as a login included, so whatever is logged or audited passes through here.
func Redact(s string) string {
	if !hasSecretPrefix(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		prefix := ""
		for _, p := range secretPrefixes {
			if strings.HasPrefix(s[i:], p) {
				prefix = p
				break
			}
		}
		if prefix == "" {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := i + len(prefix)
		for end < len(s) && isSecretChar(s[end]) {
			end++
		}
		b.WriteString(prefix)
		if end > i+len(prefix) {
			b.WriteString(redacted)
		}
		i = end
	}
	return b.String()
}

func hasSecretPrefix(s string) bool {
	for _, p := range secretPrefixes {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// isSecretChar reports whether c is in the base64url alphabet secrets use.
func isSecretChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// RedactingHandler wraps h so that no record it writes holds a sealgate
// secret: the message and every attribute value (errors and other values by
// their text) go through Redact. The binary's logger is built with it.
func RedactingHandler(h slog.Handler) slog.Handler { return redactingHandler{h} }

type redactingHandler struct{ next slog.Handler }

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = redactAttr(a)
	}
	return redactingHandler{h.next.WithAttrs(clean)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]slog.Attr, len(group))
		for i, g := range group {
			clean[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}
	case slog.KindAny:
		// Errors, Stringers and other values are rewritten only when their
		// text holds a secret, so clean values keep their type for the handler.
		text := fmt.Sprint(v.Any())
		if hasSecretPrefix(text) {
			return slog.String(a.Key, Redact(text))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
