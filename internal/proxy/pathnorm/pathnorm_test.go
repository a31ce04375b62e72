package pathnorm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var (
	base   = Options{Normalize: true}
	strict = Options{Normalize: true, MergeSlashes: true, EscapedSlashes: UnescapeAndForward}
)

func TestPath(t *testing.T) {
	cases := []struct {
		in   string
		o    Options
		want string
		res  Result
		err  error
	}{
		{"/a/b", base, "/a/b", Continue, nil},
		{"/a/./b", base, "/a/b", Continue, nil},
		{"/a/../b", base, "/b", Continue, nil},
		{"/../../b", base, "/b", Continue, nil},
		{"/a/..", base, "/", Continue, nil},
		{"/a/.", base, "/a/", Continue, nil},
		{"/a/%2e%2E/b", base, "/b", Continue, nil},
		{"/%61dmin", base, "/admin", Continue, nil},
		{"/a%2fb", base, "/a%2Fb", Continue, nil},
		{"/a%2fb", strict, "/a/b", Continue, nil},
		{"/a%5cb", strict, "/a/b", Continue, nil},
		{"/a%252Fb", strict, "/a%252Fb", Continue, nil},
		{"/a\\b", base, "/a/b", Continue, nil},
		{"/a//b", base, "/a//b", Continue, nil},
		{"/a//b", strict, "/a/b", Continue, nil},
		{"/a//../b", base, "/a/b", Continue, nil},
		{"/a b", base, "/a%20b", Continue, nil},
		{"/A/B", base, "/A/B", Continue, nil},
		{"/a;x=1/b", base, "/a;x=1/b", Continue, nil},
		{"/a/../b?x=/../..", base, "/b?x=/../..", Continue, nil},
		{"/a%2Fb", Options{Normalize: true, EscapedSlashes: UnescapeAndRedirect}, "/a/b", Redirect, nil},
		{"/a%2Fb", Options{EscapedSlashes: Reject}, "", Continue, ErrEscapedSlash},
		{"/a#frag", base, "", Continue, ErrFragment},
		{"/a%zz", base, "", Continue, ErrBadEscape},
		{"/a%2", base, "", Continue, ErrBadEscape},
		{"*", base, "", Continue, ErrNotOriginForm},
		{"/a/../b", Options{}, "/a/../b", Continue, nil},
	}
	for _, c := range cases {
		got, res, err := Path(c.in, c.o)
		if !errors.Is(err, c.err) || got != c.want || res != c.res {
			t.Errorf("Path(%q, %+v) = %q, %v, %v; want %q, %v, %v", c.in, c.o, got, res, err, c.want, c.res, c.err)
		}
	}
}

// encodings returns variants of p that a normalizing proxy must treat as p.
func encodings(p string, o Options) []string {
	out := []string{strings.ReplaceAll(p, "/", "/./"), strings.ReplaceAll(p, "/", "/x/../")}
	var enc strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if unreserved(c) {
			fmt.Fprintf(&enc, "%%%02x", c)
		} else {
			enc.WriteByte(c)
		}
	}
	// Inner slashes in other forms; the first one stays a slash.
	inner := func(repl string) string { return "/" + strings.ReplaceAll(p[1:], "/", repl) }
	out = append(out, enc.String(), inner("\\"))
	if o.MergeSlashes {
		out = append(out, strings.ReplaceAll(p, "/", "//"))
	}
	if o.EscapedSlashes == UnescapeAndForward {
		out = append(out, inner("%2f"), inner("%5C"))
	}
	return out
}

func TestEncodingsStayUnderPrefix(t *testing.T) {
	for _, o := range []Options{base, strict} {
		for _, v := range encodings("/admin/secret", o) {
			got, _, err := Path(v, o)
			if err != nil || !strings.HasPrefix(got, "/admin/") {
				t.Errorf("%+v: %q normalized to %q, %v; want under /admin/", o, v, got, err)
			}
		}
	}
}

// FuzzPath checks that normalization is idempotent, never panics, and that
// a path under a prefix stays under it in every encoding variant.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/a%2F..%2Fb", "/a//b/./c", "/%2e%2E/x", "/a\\..\\b", "/A%7e?q=1", "/a;b/c%252f"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, p string, mode uint8) {
		o := Options{Normalize: mode&1 != 0, MergeSlashes: mode&2 != 0, EscapedSlashes: SlashAction(mode >> 2 & 3)}
		got, _, err := Path(p, o)
		if err != nil {
			return
		}
		again, res, err := Path(got, o)
		if err != nil || again != got || res != Continue && o.EscapedSlashes != UnescapeAndRedirect {
			t.Fatalf("%+v: not idempotent: %q -> %q -> %q (%v)", o, p, got, again, err)
		}
		if !o.Normalize {
			return
		}
		seg, _, _ := strings.Cut(got, "?")
		if seg == "/" {
			return
		}
		// The normalized path is under its own first segment: so is every
		// encoding of it.
		prefix := seg
		if i := strings.IndexByte(seg[1:], '/'); i >= 0 {
			prefix = seg[:i+2]
		}
		if !strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "%") || strings.Contains(prefix, "?") {
			return
		}
		for _, v := range encodings(seg, o) {
			n, _, err := Path(v, o)
			if err != nil {
				continue
			}
			if !strings.HasPrefix(n, prefix) {
				t.Fatalf("%+v: %q is under %q but its variant %q normalizes to %q", o, seg, prefix, v, n)
			}
		}
	})
}
