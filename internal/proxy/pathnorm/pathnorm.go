// Package pathnorm normalizes request paths the way Envoy's HTTP
// connection manager does before routing and authorization: escaped
// slash handling (path_with_escaped_slashes_action), RFC 3986
// normalization (normalize_path: percent-decoding of unreserved
// characters, backslashes as slashes, dot-segment removal) and
// merge_slashes, in that order. The query string is left untouched.
package pathnorm

import (
	"errors"
	"strings"
)

// SlashAction is what to do with %2F, %2f, %5C and %5c in a path
// (Envoy's PathWithEscapedSlashesAction).
type SlashAction int

// Escaped slash actions.
const (
	// Keep leaves escaped slashes unchanged (Envoy's default).
	Keep SlashAction = iota
	// Reject answers 400.
	Reject
	// UnescapeAndRedirect answers a redirect to the unescaped path.
	UnescapeAndRedirect
	// UnescapeAndForward unescapes them and continues.
	UnescapeAndForward
)

// Options selects the normalizations to apply.
type Options struct {
	// Normalize applies RFC 3986 normalization (normalize_path).
	Normalize bool
	// MergeSlashes collapses runs of slashes into one (merge_slashes).
	MergeSlashes bool
	// EscapedSlashes says what to do with encoded slashes and backslashes.
	EscapedSlashes SlashAction
}

// Enabled reports whether o changes anything at all.
func (o Options) Enabled() bool {
	return o.Normalize || o.MergeSlashes || o.EscapedSlashes != Keep
}

// Result is the outcome of normalizing one path.
type Result int

// Results.
const (
	// Continue: the request goes on with the normalized path.
	Continue Result = iota
	// Redirect: answer a redirect to the normalized path.
	Redirect
)

// Errors for paths that are rejected with 400.
var (
	ErrFragment      = errors.New("path contains a fragment")
	ErrBadEscape     = errors.New("path contains an invalid percent-encoding")
	ErrEscapedSlash  = errors.New("path contains an escaped slash")
	ErrNotOriginForm = errors.New("path does not start with a slash")
)

// Path normalizes the path part of a request target (its query, if any,
// is kept as is) and returns the new target. A request whose path is
// rejected gets an error; Redirect asks for a redirect to the result.
func Path(target string, o Options) (string, Result, error) {
	path, query, hasQuery := strings.Cut(target, "?")
	if strings.IndexByte(path, '#') >= 0 || strings.IndexByte(query, '#') >= 0 {
		return "", Continue, ErrFragment
	}
	if !strings.HasPrefix(path, "/") {
		return "", Continue, ErrNotOriginForm
	}
	if err := checkEscapes(path); err != nil {
		return "", Continue, err
	}
	res := Continue
	if o.EscapedSlashes != Keep && hasEscapedSlash(path) {
		switch o.EscapedSlashes {
		case Reject:
			return "", Continue, ErrEscapedSlash
		case UnescapeAndRedirect:
			res = Redirect
		}
		path = unescapeSlashes(path)
	}
	if o.Normalize {
		path = canonical(path)
	}
	if o.MergeSlashes {
		path = mergeSlashes(path)
	}
	if hasQuery {
		return path + "?" + query, res, nil
	}
	return path, res, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// checkEscapes rejects a '%' not followed by two hex digits (RFC 3986;
// Go's HTTP server rejects them too, so they never reach a route).
func checkEscapes(p string) error {
	for i := 0; i < len(p); i++ {
		if p[i] == '%' {
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return ErrBadEscape
			}
			i += 2
		}
	}
	return nil
}

func escapedSlashAt(p string, i int) bool {
	if i+2 >= len(p) || p[i] != '%' {
		return false
	}
	a, b := p[i+1], p[i+2]|0x20
	return a == '2' && b == 'f' || a == '5' && b == 'c'
}

func hasEscapedSlash(p string) bool {
	for i := 0; i < len(p); i++ {
		if escapedSlashAt(p, i) {
			return true
		}
	}
	return false
}

// unescapeSlashes replaces %2F and %5C (any case) by / and \.
func unescapeSlashes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if escapedSlashAt(p, i) {
			if p[i+1] == '2' {
				b.WriteByte('/')
			} else {
				b.WriteByte('\\')
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// unreserved reports RFC 3986 unreserved characters, which are decoded.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// pathChar reports bytes kept literally in a canonical path; others are
// percent-encoded (as Chromium's URL canonicalizer, which Envoy uses).
func pathChar(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '/', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '%':
		return true
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

// canonical is Envoy's normalize_path: unreserved characters are decoded,
// other escapes are kept with upper-case hex digits, backslashes become
// slashes, characters not allowed in a path are escaped, and dot segments
// are removed (RFC 3986 section 5.2.4).
func canonical(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if unreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(hexDigits[v>>4])
				b.WriteByte(hexDigits[v&15])
			}
			i += 2
		case c == '\\':
			b.WriteByte('/')
		case pathChar(c):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return removeDotSegments(b.String())
}

// removeDotSegments is RFC 3986 section 5.2.4 for an absolute path.
func removeDotSegments(p string) string {
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// mergeSlashes collapses runs of '/'.
func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
