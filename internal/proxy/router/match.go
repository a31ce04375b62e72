package router

import (
	"fmt"
	"regexp"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// StringMatch is a compiled envoy.type.matcher.v3.StringMatcher.
type StringMatch struct {
	kind       stringKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

type stringKind uint8

const (
	matchExact stringKind = iota
	matchPrefix
	matchSuffix
	matchContains
	matchRegex
)

// CompileStringMatcher compiles m; field names the field for errors.
func CompileStringMatcher(field string, m *matcherv3.StringMatcher) (*StringMatch, error) {
	sm := &StringMatch{ignoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		sm.kind, sm.value = matchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		sm.kind, sm.value = matchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.kind, sm.value = matchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.kind, sm.value = matchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(field+".safe_regex", p.SafeRegex.GetRegex(), sm.ignoreCase)
		if err != nil {
			return nil, err
		}
		sm.kind, sm.re = matchRegex, re
	default:
		return nil, fmt.Errorf("%s: unsupported string matcher %T", field, p)
	}
	if sm.ignoreCase && sm.kind != matchRegex {
		sm.value = strings.ToLower(sm.value)
	}
	return sm, nil
}

// compileRegex compiles an RE2 pattern for a full match, as Envoy does.
func compileRegex(field, pattern string, ignoreCase bool) (*regexp.Regexp, error) {
	p := `^(?:` + pattern + `)$`
	if ignoreCase {
		p = `(?i)` + p
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid regex %q: %v", field, pattern, err)
	}
	return re, nil
}

// Match reports whether s matches.
func (m *StringMatch) Match(s string) bool {
	if m.kind == matchRegex {
		return m.re.MatchString(s)
	}
	if m.ignoreCase {
		switch m.kind {
		case matchExact:
			return strings.EqualFold(s, m.value)
		case matchPrefix:
			return len(s) >= len(m.value) && strings.EqualFold(s[:len(m.value)], m.value)
		case matchSuffix:
			return len(s) >= len(m.value) && strings.EqualFold(s[len(s)-len(m.value):], m.value)
		}
		s = strings.ToLower(s)
	}
	switch m.kind {
	case matchExact:
		return s == m.value
	case matchPrefix:
		return strings.HasPrefix(s, m.value)
	case matchSuffix:
		return strings.HasSuffix(s, m.value)
	case matchContains:
		return strings.Contains(s, m.value)
	}
	return false
}

// Fraction is a compiled FractionalPercent as parts per million.
type Fraction uint32

// CompileFraction converts numerator/denominator to parts per million.
func CompileFraction(p *typev3.FractionalPercent) Fraction {
	if p == nil {
		return 0
	}
	n := uint64(p.GetNumerator())
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		n *= 10000
	case typev3.FractionalPercent_TEN_THOUSAND:
		n *= 100
	}
	if n > 1e6 {
		n = 1e6
	}
	return Fraction(n)
}

// Percent converts a 0-100 percentage to parts per million.
func Percent(v float64) Fraction {
	if v <= 0 {
		return 0
	}
	if v >= 100 {
		return 1e6
	}
	return Fraction(v * 1e4)
}
