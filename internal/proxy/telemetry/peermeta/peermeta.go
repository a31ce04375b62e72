// Package peermeta is Istio's HTTP peer metadata exchange (the
// istio.metadata_exchange filter, io.istio.http.peer_metadata): a client
// sidecar sends its workload metadata to a mesh upstream in the
// x-envoy-peer-metadata-id and x-envoy-peer-metadata request headers; the
// server sidecar reads and removes them, reports them as the source
// labels of its metrics and answers with its own metadata in the same
// response headers, which the client reads and removes to fill the
// destination labels. The metadata value is the base64 of a
// deterministically serialized google.protobuf.Struct holding Istio's
// node metadata keys, so Envoy sidecars and weft-proxy understand each
// other.
package peermeta

import (
	"encoding/base64"
	"net/http"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// Header names, in Go's canonical form.
const (
	HeaderID       = "X-Envoy-Peer-Metadata-Id"
	HeaderMetadata = "X-Envoy-Peer-Metadata"
)

// Istio's node metadata keys carried in the exchange.
const (
	KeyName             = "NAME"
	KeyNamespace        = "NAMESPACE"
	KeyWorkloadName     = "WORKLOAD_NAME"
	KeyLabels           = "LABELS"
	KeyServiceAccount   = "SERVICE_ACCOUNT"
	KeyClusterID        = "CLUSTER_ID"
	KeyMeshID           = "MESH_ID"
	KeyAppContainers    = "APP_CONTAINERS"
	KeyInstanceIPs      = "INSTANCE_IPS"
	KeyPlatformMetadata = "PLATFORM_METADATA"
	KeyOwner            = "OWNER"
)

// ExchangedKeys are the node metadata keys a proxy sends (Istio's
// metadata_exchange list).
var ExchangedKeys = []string{KeyName, KeyNamespace, KeyWorkloadName, KeyLabels, KeyServiceAccount, KeyClusterID,
	KeyMeshID, KeyAppContainers, KeyInstanceIPs, KeyPlatformMetadata, KeyOwner}

// Label keys Istio reads from LABELS.
const (
	LabelCanonicalName     = "service.istio.io/canonical-name"
	LabelCanonicalRevision = "service.istio.io/canonical-revision"
)

// Peer is what telemetry learns about the workload at the other end of a
// request. It is comparable, so it can be part of a metric series key.
type Peer struct {
	Name, Namespace, Workload, ServiceAccount, Cluster string
	App, Version, CanonicalService, CanonicalRevision  string
}

// exchanged returns the ExchangedKeys of md.
func exchanged(md *structpb.Struct) *structpb.Struct {
	out := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, k := range ExchangedKeys {
		if v, ok := md.GetFields()[k]; ok {
			out.Fields[k] = v
		}
	}
	return out
}

// Encode returns the x-envoy-peer-metadata value for node metadata md:
// the base64 (standard, padded, as Envoy's Base64::encode) of the
// deterministic serialization of the ExchangedKeys of md.
func Encode(md *structpb.Struct) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(exchanged(md))
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Decode parses an x-envoy-peer-metadata value (padded or not).
func Decode(value string) (Peer, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(value, "="))
	if err != nil {
		return Peer{}, err
	}
	var md structpb.Struct
	if err := proto.Unmarshal(b, &md); err != nil {
		return Peer{}, err
	}
	return fromStruct(&md), nil
}

// fromStruct reads Istio's node metadata keys.
func fromStruct(md *structpb.Struct) Peer {
	f := md.GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	labels := f[KeyLabels].GetStructValue().GetFields()
	label := func(k string) string { return labels[k].GetStringValue() }
	p := Peer{
		Name: str(KeyName), Namespace: str(KeyNamespace), Workload: str(KeyWorkloadName),
		ServiceAccount: str(KeyServiceAccount), Cluster: str(KeyClusterID),
		App:               firstOf(label("app"), label("app.kubernetes.io/name")),
		Version:           firstOf(label("version"), label("app.kubernetes.io/version")),
		CanonicalService:  label(LabelCanonicalName),
		CanonicalRevision: label(LabelCanonicalRevision),
	}
	// Istio derives the canonical labels when a pod has none.
	p.CanonicalService = firstOf(p.CanonicalService, p.App, p.Workload)
	p.CanonicalRevision = firstOf(p.CanonicalRevision, p.Version, "latest")
	return p
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// maxCache bounds the decoded-peer cache (Istio's max_peer_cache_size).
const maxCache = 1024

// Exchange holds one proxy's own metadata headers and a cache of decoded
// peers. It is safe for concurrent use; its headers never change.
type Exchange struct {
	id, value []string // header values, shared by every request
	frame     []byte   // the TCP exchange frame (see tcp.go)

	mu    sync.RWMutex // guards cache
	cache map[string]*Peer
}

// New returns the exchange of a proxy whose node id is id and node
// metadata md (Istio's keys, see ExchangedKeys).
func New(id string, md *structpb.Struct) (*Exchange, error) {
	v, err := Encode(md)
	if err != nil {
		return nil, err
	}
	frame, err := tcpFrame(id, exchanged(md))
	if err != nil {
		return nil, err
	}
	return &Exchange{id: []string{id}, value: []string{v}, frame: frame, cache: map[string]*Peer{}}, nil
}

// Value is this proxy's x-envoy-peer-metadata value.
func (x *Exchange) Value() string { return x.value[0] }

// lookup decodes value, through the cache. An undecodable value gives nil.
func (x *Exchange) lookup(value string) *Peer {
	x.mu.RLock()
	p, ok := x.cache[value]
	x.mu.RUnlock()
	if ok {
		return p
	}
	if d, err := Decode(value); err == nil {
		p = &d
	}
	x.mu.Lock()
	if len(x.cache) >= maxCache {
		clear(x.cache)
	}
	x.cache[value] = p
	x.mu.Unlock()
	return p
}

// read decodes and removes the peer headers of h; it reports whether the
// peer sent them.
func (x *Exchange) read(h http.Header) (*Peer, bool) {
	vs, ok := h[HeaderMetadata]
	_, idOK := h[HeaderID]
	if !ok && !idOK {
		return nil, false
	}
	delete(h, HeaderMetadata)
	delete(h, HeaderID)
	if len(vs) == 0 || vs[0] == "" {
		return nil, true
	}
	return x.lookup(vs[0]), true
}

// Downstream is the inbound side on a request: it reads and removes the
// client's headers (so the application never sees them) and reports the
// client and whether it sent metadata, in which case the response gets
// ours (Respond).
func (x *Exchange) Downstream(h http.Header) (peer *Peer, respond bool) {
	return x.read(h)
}

// Respond adds this proxy's metadata to an inbound response.
func (x *Exchange) Respond(h http.Header) {
	h[HeaderID] = x.id
	h[HeaderMetadata] = x.value
}

// Propagate is the outbound side on a request attempt to host of cl: it
// adds this proxy's metadata when the host is in the mesh (see InMesh),
// and removes what an earlier attempt added otherwise.
func (x *Exchange) Propagate(h http.Header, cl *upstream.Cluster, host *upstream.Host) {
	if InMesh(cl, host) {
		h[HeaderID] = x.id
		h[HeaderMetadata] = x.value
		return
	}
	if vs := h[HeaderMetadata]; len(vs) == 1 && vs[0] == x.value[0] {
		delete(h, HeaderMetadata)
		delete(h, HeaderID)
	}
}

// Upstream is the outbound side on a response: it reads and removes the
// server's headers (so the application never sees them) and returns the
// server's metadata, nil if it sent none.
func (x *Exchange) Upstream(h http.Header) *Peer {
	p, _ := x.read(h)
	return p
}

// InMesh reports whether Istio would exchange metadata with host: the
// endpoint is labelled tlsMode istio or carries Istio workload metadata,
// and the cluster does not set istio.disable_mx (nor istio.external).
func InMesh(cl *upstream.Cluster, host *upstream.Host) bool {
	if host == nil {
		return false
	}
	if cl != nil {
		if c := cl.Config(); c != nil {
			f := c.GetMetadata().GetFilterMetadata()["istio"].GetFields()
			if f["disable_mx"].GetBoolValue() || f["external"].GetBoolValue() {
				return false
			}
		}
	}
	if host.SocketMatch["tlsMode"] == "istio" {
		return true
	}
	w := host.Labels["workload"]
	if i := strings.IndexByte(w, ';'); i >= 0 {
		w = w[:i] // Istio's compact form: name;namespace;service;revision;cluster
	}
	return w != ""
}

// NodeMetadata returns a copy of the node metadata md as Istio's sidecar
// injector would have it: CLUSTER_ID set (to clusterID when md has none)
// and the canonical service labels present in LABELS (derived from app,
// version or the workload name, as Istio does for pods without them).
func NodeMetadata(md *structpb.Struct, clusterID string) *structpb.Struct {
	out := proto.Clone(md).(*structpb.Struct)
	if out == nil || out.Fields == nil {
		out = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	f := out.Fields
	if f[KeyClusterID].GetStringValue() == "" && clusterID != "" {
		f[KeyClusterID] = structpb.NewStringValue(clusterID)
	}
	labels := f[KeyLabels].GetStructValue()
	if labels == nil {
		labels = &structpb.Struct{}
	}
	if labels.Fields == nil {
		labels.Fields = map[string]*structpb.Value{}
	}
	l := func(k string) string { return labels.Fields[k].GetStringValue() }
	if l(LabelCanonicalName) == "" {
		if v := firstOf(l("app.kubernetes.io/name"), l("app"), f[KeyWorkloadName].GetStringValue()); v != "" {
			labels.Fields[LabelCanonicalName] = structpb.NewStringValue(v)
		}
	}
	if l(LabelCanonicalRevision) == "" {
		labels.Fields[LabelCanonicalRevision] = structpb.NewStringValue(firstOf(l("app.kubernetes.io/version"), l("version"), "latest"))
	}
	f[KeyLabels] = structpb.NewStructValue(labels)
	return out
}
