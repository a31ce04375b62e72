package jwt

import (
	"fmt"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// requirement is a compiled JwtRequirement.
type requirement interface {
	// check returns nil when the request satisfies it, StatusMissing when
	// no token was found, another Status when a token failed.
	check(ev *evaluation) error
}

type providerReq struct {
	p         *provider
	audiences []string
}

func (r providerReq) check(ev *evaluation) error { return ev.verify(r.p, r.audiences).err }

type anyReq struct {
	reqs         []requirement
	allowMissing bool
}

// check succeeds when any alternative does; an allow_missing alternative
// succeeds only when every other alternative found no token.
func (r anyReq) check(ev *evaluation) error {
	var firstErr error
	for _, x := range r.reqs {
		err := x.check(ev)
		if err == nil {
			return nil
		}
		if firstErr == nil || firstErr == StatusMissing && err != StatusMissing {
			firstErr = err
		}
	}
	if r.allowMissing && firstErr == StatusMissing {
		return nil
	}
	if firstErr == nil {
		return StatusMissing
	}
	return firstErr
}

type allReq []requirement

func (r allReq) check(ev *evaluation) error {
	for _, x := range r {
		if err := x.check(ev); err != nil {
			return err
		}
	}
	return nil
}

// allowMissingReq fails only on a present, invalid token of any provider.
type allowMissingReq struct{ f *Filter }

func (r allowMissingReq) check(ev *evaluation) error {
	for _, p := range sortedProviders(r.f) {
		if err := ev.verify(p, nil).err; err != nil && err != StatusMissing && err != StatusUnknownIssuer {
			return err
		}
	}
	return nil
}

// allowAll verifies tokens for metadata but never fails.
type allowAll struct{}

func (allowAll) check(*evaluation) error { return nil }

func sortedProviders(f *Filter) []*provider {
	out := make([]*provider, 0, len(f.providers))
	for _, p := range f.providers {
		out = append(out, p)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].name < out[j-1].name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (f *Filter) compileRequirement(field string, r *jwtv3.JwtRequirement) (requirement, error) {
	switch t := r.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		p, ok := f.providers[t.ProviderName]
		if !ok {
			return nil, fmt.Errorf("%s.provider_name: unknown provider %q", field, t.ProviderName)
		}
		return providerReq{p: p}, nil
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		p, ok := f.providers[t.ProviderAndAudiences.GetProviderName()]
		if !ok {
			return nil, fmt.Errorf("%s.provider_and_audiences: unknown provider %q", field, t.ProviderAndAudiences.GetProviderName())
		}
		return providerReq{p: p, audiences: append([]string{}, t.ProviderAndAudiences.GetAudiences()...)}, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		out := anyReq{}
		for i, x := range t.RequiresAny.GetRequirements() {
			if x.GetAllowMissing() != nil {
				out.allowMissing = true
				continue
			}
			if x.GetAllowMissingOrFailed() != nil {
				return allowAll{}, nil
			}
			req, err := f.compileRequirement(fmt.Sprintf("%s.requires_any[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out.reqs = append(out.reqs, req)
		}
		return out, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		var out allReq
		for i, x := range t.RequiresAll.GetRequirements() {
			req, err := f.compileRequirement(fmt.Sprintf("%s.requires_all[%d]", field, i), x)
			if err != nil {
				return nil, err
			}
			out = append(out, req)
		}
		return out, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return allowAll{}, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return allowMissingReq{f: f}, nil
	}
	return nil, fmt.Errorf("%s: unsupported requirement %T", field, r.GetRequiresType())
}
