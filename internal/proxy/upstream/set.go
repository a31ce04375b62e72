package upstream

import (
	"context"
	"fmt"
	"net"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/proxy/sds"
)

// Set is an immutable map of clusters by name.
type Set struct {
	clusters map[string]*Cluster
}

// Get returns the named cluster or nil.
func (s *Set) Get(name string) *Cluster {
	if s == nil {
		return nil
	}
	return s.clusters[name]
}

// Names returns the cluster names, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.clusters))
	for n := range s.clusters {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Build compiles clusters and their endpoints into a Set. Clusters whose
// config is unchanged from prev are kept (with their connections, stats
// and host state) and get their new endpoints. Nothing in prev changes
// unless the whole build succeeds; the returned commit function must then
// be called once the new Set is installed, and it returns the clusters
// that were dropped so the caller can Close them.
func Build(clusters map[string]*clusterv3.Cluster, endpoints map[string]*endpointv3.ClusterLoadAssignment, prev *Set) (*Set, func() []*Cluster, error) {
	return BuildWith(clusters, endpoints, prev, nil)
}

// BuildWith is Build with the proxy's SDS secrets (see CompileWith).
func BuildWith(clusters map[string]*clusterv3.Cluster, endpoints map[string]*endpointv3.ClusterLoadAssignment, prev *Set, sec *sds.Store) (*Set, func() []*Cluster, error) {
	next := &Set{clusters: make(map[string]*Cluster, len(clusters))}
	type pending struct {
		cl *Cluster
		hs *hostSet
	}
	var updates []pending
	for name, c := range clusters {
		var cla *endpointv3.ClusterLoadAssignment
		if c.GetType() == clusterv3.Cluster_EDS {
			n := c.GetEdsClusterConfig().GetServiceName()
			if n == "" {
				n = name
			}
			cla = endpoints[n]
		}
		if old := prev.Get(name); old != nil && proto.Equal(old.config, c) {
			if old.Kind == KindEDS {
				hosts, err := hostsFromCLA("cluster "+name, cla, old.hosts.Load())
				if err != nil {
					return nil, nil, err
				}
				updates = append(updates, pending{old, old.newHosts(hosts, cla)})
			}
			next.clusters[name] = old
			continue
		}
		cl, err := CompileWith(c, cla, sec)
		if err != nil {
			return nil, nil, err
		}
		next.clusters[name] = cl
	}
	commit := func() []*Cluster {
		for _, u := range updates {
			u.cl.hosts.Store(u.hs)
		}
		var dropped []*Cluster
		if prev != nil {
			for name, old := range prev.clusters {
				if next.clusters[name] != old {
					dropped = append(dropped, old)
				}
			}
		}
		return dropped
	}
	return next, commit, nil
}

// refreshDNS re-resolves a STRICT_DNS cluster when its refresh period has
// passed: synchronously the first time, in the background afterwards.
func (cl *Cluster) refreshDNS() {
	if cl.Kind != KindStrictDNS {
		return
	}
	now := time.Now().UnixNano()
	if now < cl.dnsNext.Load() {
		return
	}
	if !cl.dnsRefreshing.CompareAndSwap(false, true) {
		return
	}
	resolve := func() {
		defer cl.dnsRefreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var hosts []*Host
		old := map[string]*Host{}
		for _, h := range cl.hosts.Load().all {
			old[h.Addr] = h
		}
		for _, t := range cl.dnsNames {
			ips, err := net.DefaultResolver.LookupHost(ctx, t.host)
			if err != nil {
				continue
			}
			for _, ip := range ips {
				addr := net.JoinHostPort(ip, t.port)
				if h, ok := old[addr]; ok {
					hosts = append(hosts, h)
					continue
				}
				hosts = append(hosts, &Host{Addr: addr, Weight: max(t.weight, 1), healthy: true})
			}
		}
		cl.hosts.Store(newHostSet(hosts, cl.policy, cl.ringMin))
		cl.dnsNext.Store(time.Now().Add(cl.dnsRefresh).UnixNano())
	}
	if len(cl.hosts.Load().all) == 0 {
		resolve()
		return
	}
	go resolve()
}

// String describes the cluster for logs.
func (cl *Cluster) String() string {
	return fmt.Sprintf("cluster %s (%d hosts)", cl.Name, len(cl.hosts.Load().all))
}

// ValidateAssignment checks a ClusterLoadAssignment on its own.
func ValidateAssignment(cla *endpointv3.ClusterLoadAssignment) error {
	_, err := hostsFromCLA("endpoints "+cla.GetClusterName(), cla, nil)
	return err
}

// Validate checks that a cluster config can be served, without building
// transports.
func Validate(c *clusterv3.Cluster) error {
	cl, err := Compile(c, nil)
	if err == nil {
		cl.Close()
	}
	return err
}
