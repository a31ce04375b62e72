// Package bootstrap holds weft-proxy's startup configuration: where the
// control plane is, who this proxy is (the xDS node) and which local ports
// it serves. It is read from flags or from a JSON/YAML file and validated
// before anything starts.
package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"
)

// Node describes the workload this proxy fronts. Its fields become the xDS
// node id, cluster and Istio's metadata keys (NAMESPACE, WORKLOAD_NAME,
// LABELS, SERVICE_ACCOUNT, INSTANCE_IPS).
type Node struct {
	ID             string            `json:"id"`
	Cluster        string            `json:"cluster"`
	Namespace      string            `json:"namespace"`
	Workload       string            `json:"workload"`
	Labels         map[string]string `json:"labels"`
	ServiceAccount string            `json:"serviceAccount"`
	InstanceIPs    []string          `json:"instanceIPs"`
	// Metadata holds extra string metadata sent verbatim.
	Metadata map[string]string `json:"metadata"`
}

// Config is the complete, typed startup configuration of weft-proxy.
type Config struct {
	// XDSAddress is the control plane's host:port (ADS over plaintext gRPC).
	XDSAddress string `json:"xdsAddress"`
	// Delta selects incremental xDS instead of state of the world.
	Delta bool `json:"delta"`
	Node  Node `json:"node"`
	// AdminAddress is where the admin API listens (127.0.0.1:15000).
	AdminAddress string `json:"adminAddress"`
	// ReadyAddress serves /healthz/ready (0.0.0.0:15021); empty disables it.
	ReadyAddress string `json:"readyAddress"`
	// StatsAddress serves /stats/prometheus (0.0.0.0:15090); empty disables it.
	StatsAddress string `json:"statsAddress"`
	// ForwardProxyAddress, when set, serves an HTTP forward proxy
	// (HTTP_PROXY style) routing absolute-form requests by port and Host.
	ForwardProxyAddress string `json:"forwardProxyAddress"`
	// WarmingTimeout bounds how long an incomplete config waits for missing
	// resources before being applied anyway (Envoy's initial_fetch_timeout).
	WarmingTimeout Duration `json:"warmingTimeout"`
	// DrainTimeout bounds graceful shutdown and the draining of a
	// listener removed by xDS (Istio's terminationDrainDuration).
	DrainTimeout Duration `json:"drainTimeout"`
	// AccessLog is where JSON access logs go: a file path, "-" for
	// stdout, "" for none (Istio's accessLogFile, accessLogEncoding JSON).
	AccessLog string `json:"accessLog"`
	// CA, when its address is set, gives the proxy a workload identity
	// for mesh mTLS.
	CA CA `json:"ca"`
	// Tracing configures span export; off without a collector URL.
	Tracing Tracing `json:"tracing"`
}

// Duration is a time.Duration that reads "1.5s"-style strings.
type Duration time.Duration

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Default returns the Istio-conventional defaults.
func Default() Config {
	return Config{
		XDSAddress:     "127.0.0.1:15010",
		AdminAddress:   "127.0.0.1:15000",
		ReadyAddress:   "0.0.0.0:15021",
		StatsAddress:   "0.0.0.0:15090",
		WarmingTimeout: Duration(15 * time.Second),
		DrainTimeout:   Duration(5 * time.Second),
		Node:           Node{Cluster: "Kubernetes"},
		Tracing:        Tracing{Sampling: 1},
	}
}

// Load reads a JSON or YAML bootstrap file over the defaults in base.
func Load(file string, base Config) (Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return base, fmt.Errorf("bootstrap: %w", err)
	}
	return Parse(file, data, base)
}

// Parse decodes a JSON or YAML bootstrap document over base. Unknown
// fields are errors, so typos do not silently fall back to defaults.
func Parse(file string, data []byte, base Config) (Config, error) {
	// YAML is a superset of JSON: decode YAML generically, re-encode as
	// JSON and decode strictly into the typed struct.
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return base, fmt.Errorf("%s: bootstrap: %w", file, err)
	}
	if doc == nil {
		return base, nil
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return base, fmt.Errorf("%s: bootstrap: %w", file, err)
	}
	cfg := base
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return base, fmt.Errorf("%s: bootstrap: %w", file, err)
	}
	return cfg, nil
}

// ParseLabels reads "k=v,k2=v2".
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// Validate reports every problem in cfg, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	checkAddr := func(field, v string, required bool) {
		if v == "" {
			if required {
				errs = append(errs, fmt.Errorf("%s: required", field))
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port: %v", field, v, err))
		}
	}
	checkAddr("xdsAddress", c.XDSAddress, true)
	checkAddr("adminAddress", c.AdminAddress, false)
	checkAddr("readyAddress", c.ReadyAddress, false)
	checkAddr("statsAddress", c.StatsAddress, false)
	checkAddr("forwardProxyAddress", c.ForwardProxyAddress, false)
	if c.Node.ID == "" {
		errs = append(errs, errors.New("node.id: required"))
	}
	for i, ip := range c.Node.InstanceIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("node.instanceIPs[%d]: %q is not an IP address", i, ip))
		}
	}
	if c.WarmingTimeout < 0 {
		errs = append(errs, errors.New("warmingTimeout: must not be negative"))
	}
	errs = append(errs, c.CA.validate(c.Node)...)
	errs = append(errs, c.Tracing.validate()...)
	return errors.Join(errs...)
}

// XDSNode builds the Envoy node sent on every discovery request, with
// Istio's metadata key names.
func (c *Config) XDSNode() *corev3.Node {
	fields := map[string]*structpb.Value{}
	for k, v := range c.Node.Metadata {
		fields[k] = structpb.NewStringValue(v)
	}
	set := func(k, v string) {
		if v != "" {
			fields[k] = structpb.NewStringValue(v)
		}
	}
	set("NAMESPACE", c.Node.Namespace)
	set("WORKLOAD_NAME", c.Node.Workload)
	set("SERVICE_ACCOUNT", c.Node.ServiceAccount)
	set("INSTANCE_IPS", strings.Join(c.Node.InstanceIPs, ","))
	if len(c.Node.Labels) > 0 {
		keys := make([]string, 0, len(c.Node.Labels))
		for k := range c.Node.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		lf := map[string]*structpb.Value{}
		for _, k := range keys {
			lf[k] = structpb.NewStringValue(c.Node.Labels[k])
		}
		fields["LABELS"] = structpb.NewStructValue(&structpb.Struct{Fields: lf})
	}
	return &corev3.Node{
		Id:             c.Node.ID,
		Cluster:        c.Node.Cluster,
		Metadata:       &structpb.Struct{Fields: fields},
		UserAgentName:  "weft-proxy",
		ClientFeatures: []string{"envoy.lb.does_not_support_overprovisioning"},
	}
}
