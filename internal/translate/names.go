package translate

import (
	"strconv"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of Istio's special clusters.
const (
	// PassthroughCluster forwards to the original destination.
	PassthroughCluster = "PassthroughCluster"
	// BlackHoleCluster has no endpoints: traffic to it fails.
	BlackHoleCluster = "BlackHoleCluster"
	// InboundPassthroughCluster forwards inbound traffic for ports no
	// service declares to the original destination on the workload.
	InboundPassthroughCluster = "InboundPassthroughCluster"
)

// Ports of the sidecar's virtual listeners.
const (
	// OutboundPort is where iptables redirects outbound connections.
	OutboundPort = 15001
	// InboundPort is where iptables redirects inbound connections.
	InboundPort = 15006
)

// Names of the sidecar's virtual listeners.
const (
	VirtualOutboundListener = "virtualOutbound"
	VirtualInboundListener  = "virtualInbound"
)

// defaultConnectTimeout is Istio's default upstream connect timeout.
const defaultConnectTimeout = 10 * time.Second

// OutboundClusterName returns Istio's name of an outbound cluster:
// "outbound|PORT|SUBSET|HOST", SUBSET empty for the whole service.
func OutboundClusterName(port uint32, subset, host string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + host
}

// InboundClusterName returns Istio's name of the inbound cluster for a
// workload port: "inbound|PORT||".
func InboundClusterName(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// istioSNI returns the SNI Istio clients send to mesh servers:
// "outbound_.PORT_.SUBSET_.HOST".
func istioSNI(port uint32, subset, host string) string {
	return "outbound_." + strconv.FormatUint(uint64(port), 10) + "_." + subset + "_." + host
}

func portString(p uint32) string { return strconv.FormatUint(uint64(p), 10) }

// adsSource is the config source of resources served on the ADS stream.
func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
		ResourceApiVersion:    core.ApiVersion_V3,
	}
}

// toAny packs m. Marshalling a well-formed message cannot fail; a failure
// is a programming error.
func toAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic("translate: cannot pack " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return a
}

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func socketAddress(addr string, port uint32) *core.Address {
	if len(addr) > 7 && addr[:7] == "unix://" {
		return &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: addr[7:]}}}
	}
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       addr,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
