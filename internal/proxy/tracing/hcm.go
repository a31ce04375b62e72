package tracing

import (
	"fmt"
	"math/rand/v2"
	"net/http"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/weftmesh/weft/internal/proxy/httpproxy"
)

// DefaultMaxPathTagLength is Envoy's default length limit of the
// http.url tag.
const DefaultMaxPathTagLength = 256

// HeaderClientTraceID is the header with which a client asks for its
// request to be traced (subject to client_sampling).
const HeaderClientTraceID = "X-Client-Trace-Id"

// hcmSettings are an HTTP connection manager's tracing settings (Envoy's
// HttpConnectionManager.Tracing). Sampling rates are fractions in [0, 1].
type hcmSettings struct {
	client, random, overall float64
	maxPath                 int
	tags                    []customTag
}

// customTag is a literal tag or one read from a request header.
type customTag struct {
	tag, literal, header, def string
}

// ForHCM implements httpproxy.HCMTracer: a tracer that exports through t
// but samples, tags and truncates as the connection manager's tracing
// settings say (random_sampling, client_sampling, overall_sampling,
// max_path_tag_length, literal and request_header custom_tags;
// environment tags take their default_value, as weft-proxy reads no
// environment variables), instead
// of the proxy-wide sampling flag. A decision carried by the request
// (traceparent, B3) still wins, as in Envoy's OpenTelemetry tracer.
func (t *Tracer) ForHCM(c *hcmv3.HttpConnectionManager_Tracing) (httpproxy.Tracer, error) {
	s := &hcmSettings{client: 1, random: 1, overall: 1, maxPath: DefaultMaxPathTagLength}
	var err error
	if s.client, err = percent("client_sampling", c.GetClientSampling()); err != nil {
		return nil, err
	}
	if s.random, err = percent("random_sampling", c.GetRandomSampling()); err != nil {
		return nil, err
	}
	if s.overall, err = percent("overall_sampling", c.GetOverallSampling()); err != nil {
		return nil, err
	}
	if v := c.GetMaxPathTagLength(); v != nil {
		s.maxPath = int(v.GetValue())
	}
	for i, ct := range c.GetCustomTags() {
		f := fmt.Sprintf("custom_tags[%d] (%s)", i, ct.GetTag())
		if ct.GetTag() == "" {
			return nil, fmt.Errorf("custom_tags[%d].tag: empty", i)
		}
		switch {
		case ct.GetLiteral() != nil:
			s.tags = append(s.tags, customTag{tag: ct.GetTag(), literal: ct.GetLiteral().GetValue()})
		case ct.GetRequestHeader() != nil:
			h := ct.GetRequestHeader()
			if h.GetName() == "" {
				return nil, fmt.Errorf("%s.request_header.name: empty", f)
			}
			s.tags = append(s.tags, customTag{tag: ct.GetTag(), header: http.CanonicalHeaderKey(h.GetName()), def: h.GetDefaultValue()})
		case ct.GetEnvironment() != nil:
			// weft-proxy reads no environment variables (its
			// configuration is its bootstrap): the tag has its default.
			if v := ct.GetEnvironment().GetDefaultValue(); v != "" {
				s.tags = append(s.tags, customTag{tag: ct.GetTag(), literal: v})
			}
		default:
			return nil, fmt.Errorf("%s: only literal and request_header custom tags are supported", f)
		}
	}
	if c.GetProvider() != nil {
		return nil, fmt.Errorf("provider: not supported (spans go to the collector of --tracing-otlp-url)")
	}
	nt := *t
	nt.hcm = s
	return &nt, nil
}

// percent reads an Envoy Percent (default 100%) as a fraction.
func percent(field string, p *typev3.Percent) (float64, error) {
	if p == nil {
		return 1, nil
	}
	v := p.GetValue()
	if v < 0 || v > 100 || v != v {
		return 0, fmt.Errorf("%s: %v is not a percentage in [0, 100]", field, v)
	}
	return v / 100, nil
}

func hit(rate float64) bool {
	switch {
	case rate >= 1:
		return true
	case rate <= 0:
		return false
	}
	return rand.Float64() < rate
}

// decide is Envoy's sampling decision for a request without one: traced
// at client_sampling when the client sent x-client-trace-id, else at
// random_sampling, and in both cases within overall_sampling.
func (s *hcmSettings) decide(r *http.Request) bool {
	rate := s.random
	if r.Header.Get(HeaderClientTraceID) != "" {
		rate = s.client
	}
	return hit(rate) && hit(s.overall)
}
