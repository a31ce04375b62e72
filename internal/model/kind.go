package model

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

// Kind names an Istio configuration kind, such as "VirtualService".
type Kind string

// The configuration kinds Weft understands.
const (
	KindVirtualService        Kind = "VirtualService"
	KindDestinationRule       Kind = "DestinationRule"
	KindGateway               Kind = "Gateway"
	KindServiceEntry          Kind = "ServiceEntry"
	KindWorkloadEntry         Kind = "WorkloadEntry"
	KindSidecar               Kind = "Sidecar"
	KindPeerAuthentication    Kind = "PeerAuthentication"
	KindRequestAuthentication Kind = "RequestAuthentication"
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"
)

// KindInfo describes a configuration kind: its API group, the versions Weft
// accepts, and how to make an empty spec message.
type KindInfo struct {
	Kind     Kind
	Group    string
	Versions []string
	// Plural is the lower-case plural used by Kubernetes and the CLI.
	Plural string
	// NewSpec returns an empty spec message of the kind's type.
	NewSpec func() proto.Message
}

var kinds = []KindInfo{
	{KindVirtualService, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "virtualservices", func() proto.Message { return &networking.VirtualService{} }},
	{KindDestinationRule, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "destinationrules", func() proto.Message { return &networking.DestinationRule{} }},
	{KindGateway, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "gateways", func() proto.Message { return &networking.Gateway{} }},
	{KindServiceEntry, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "serviceentries", func() proto.Message { return &networking.ServiceEntry{} }},
	{KindWorkloadEntry, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "workloadentries", func() proto.Message { return &networking.WorkloadEntry{} }},
	{KindSidecar, "networking.istio.io", []string{"v1", "v1beta1", "v1alpha3"}, "sidecars", func() proto.Message { return &networking.Sidecar{} }},
	{KindPeerAuthentication, "security.istio.io", []string{"v1", "v1beta1"}, "peerauthentications", func() proto.Message { return &security.PeerAuthentication{} }},
	{KindRequestAuthentication, "security.istio.io", []string{"v1", "v1beta1"}, "requestauthentications", func() proto.Message { return &security.RequestAuthentication{} }},
	{KindAuthorizationPolicy, "security.istio.io", []string{"v1", "v1beta1"}, "authorizationpolicies", func() proto.Message { return &security.AuthorizationPolicy{} }},
}

// Kinds returns every kind Weft understands, sorted by name.
func Kinds() []KindInfo {
	out := append([]KindInfo(nil), kinds...)
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// LookupKind returns the description of kind k.
func LookupKind(k Kind) (KindInfo, bool) {
	for _, ki := range kinds {
		if ki.Kind == k {
			return ki, true
		}
	}
	return KindInfo{}, false
}

// LookupAPIVersion finds the kind for an apiVersion ("group/version") and kind
// name as written in a manifest. The error says what was wrong.
func LookupAPIVersion(apiVersion string, kind string) (KindInfo, error) {
	ki, ok := LookupKind(Kind(kind))
	if !ok {
		return KindInfo{}, fmt.Errorf("unknown kind %q", kind)
	}
	for _, v := range ki.Versions {
		if apiVersion == ki.Group+"/"+v {
			return ki, nil
		}
	}
	return KindInfo{}, fmt.Errorf("kind %s does not exist in apiVersion %q (want %s/%s)", kind, apiVersion, ki.Group, ki.Versions[0])
}

// ParseKind resolves a user-typed kind name: the kind itself, its plural, or
// either in lower case ("vs" style abbreviations are the CLI's business).
func ParseKind(s string) (KindInfo, bool) {
	for _, ki := range kinds {
		if s == string(ki.Kind) || s == ki.Plural || equalFold(s, string(ki.Kind)) {
			return ki, true
		}
	}
	return KindInfo{}, false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
