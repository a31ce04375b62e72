package cli

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftmesh/weft/internal/xds"

	// The typed configs weftd emits, so their JSON decodes here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

func init() { register(newProxyConfigCommand) }

// proxyConfigKinds maps each proxy-config subcommand to its xDS type's
// short name in /debug/config_dump.
var proxyConfigKinds = []struct{ cmd, typ, short string }{
	{"clusters", "cds", "Clusters (CDS) sent to a proxy"},
	{"listeners", "lds", "Listeners (LDS) sent to a proxy"},
	{"routes", "rds", "Route configurations (RDS) sent to a proxy"},
	{"endpoints", "eds", "Endpoints (EDS) sent to a proxy"},
	{"secret", "sds", "Secrets (SDS) sent to a proxy: certificate chains, SPIFFE IDs, expiry"},
}

func newProxyConfigCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "proxy-config TYPE PROXY",
		Aliases: []string{"pc"},
		Short:   "Show the xDS configuration weftd sent to a proxy",
		Long: `proxy-config shows the resources weftd last sent to one proxy, as tables in
the shape of istioctl proxy-config, or in full with -o json|yaml. PROXY is a
node id, workload.namespace, or a unique part of the id (see weft proxy-status).`,
	}
	for _, k := range proxyConfigKinds {
		cmd.AddCommand(newProxyConfigKind(env, k.cmd, k.typ, k.short))
	}
	return cmd
}

func newProxyConfigKind(env *Env, name, typ, short string) *cobra.Command {
	var output string
	var admin *adminClient
	var proxyAdmin *string
	c := &cobra.Command{
		Use:   name + " PROXY",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if proxyAdmin != nil && *proxyAdmin != "" { // secrets from the proxy itself (secret_proxyadmin.go)
				raw, err := proxyAdminSecrets(*proxyAdmin)
				if err != nil {
					return err
				}
				return writeResources(env.Out, output, typ, raw)
			}
			var status []xds.ProxyStatus
			if err := admin.getJSON(cmd.Context(), "/debug/syncz", &status); err != nil {
				return err
			}
			p, err := findProxy(status, args[0])
			if err != nil {
				return err
			}
			var dump xds.ConfigDump
			if err := admin.getJSON(cmd.Context(), "/debug/config_dump?proxy="+url.QueryEscape(p.Proxy.ID), &dump); err != nil {
				return err
			}
			raw := dump.Resources[typ]
			if typ == "sds" && len(raw) == 0 && output != "json" && output != "yaml" {
				fmt.Fprintln(env.Err, "weftd sent this proxy no secrets: workload certificates live in the proxy; read them with --proxy-admin ADDR")
			}
			if output == "json" || output == "yaml" {
				list := make([]json.RawMessage, len(raw))
				copy(list, raw)
				return writeStructured(env.Out, output, list)
			}
			if output != "" && output != "table" {
				return &usageError{msg: fmt.Sprintf("unknown output format %q: want table, json or yaml", output)}
			}
			return writeConfigTable(env.Out, typ, raw)
		},
	}
	admin = addWeftdFlag(c)
	c.Flags().StringVarP(&output, "output", "o", "", "output format: table, json or yaml")
	if typ == "sds" {
		proxyAdmin = addProxyAdminFlag(c)
	}
	return c
}

// decodeAll decodes protojson resources (each with "@type") into messages
// made by newMsg.
func decodeAll[T proto.Message](raw []json.RawMessage, newMsg func() T) ([]T, error) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(r, &probe); err != nil {
			return nil, err
		}
		delete(probe, "@type")
		b, _ := json.Marshal(probe)
		m := newMsg()
		if err := opts.Unmarshal(b, m); err != nil {
			return nil, fmt.Errorf("decoding resource: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}

func writeConfigTable(w io.Writer, typ string, raw []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	switch typ {
	case "cds":
		cs, err := decodeAll(raw, func() *cluster.Cluster { return &cluster.Cluster{} })
		if err != nil {
			return err
		}
		sort.Slice(cs, func(i, j int) bool {
			fi, pi, si, _ := splitClusterName(cs[i].Name)
			fj, pj, sj, _ := splitClusterName(cs[j].Name)
			return fi+" "+pi+" "+si < fj+" "+pj+" "+sj
		})
		fmt.Fprintln(tw, "SERVICE FQDN\tPORT\tSUBSET\tDIRECTION\tTYPE\tNAME")
		for _, c := range cs {
			fqdn, port, subset, dir := splitClusterName(c.Name)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", dash(fqdn), dash(port), dash(subset), dash(dir), clusterType(c), c.Name)
		}
	case "lds":
		ls, err := decodeAll(raw, func() *listener.Listener { return &listener.Listener{} })
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tADDRESS\tPORT\tMATCH\tDESTINATION")
		for _, l := range ls {
			addr, port := listenerAddress(l)
			for _, fc := range l.FilterChains {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Name, addr, port, chainMatch(fc.FilterChainMatch), chainDestination(fc))
			}
			if len(l.FilterChains) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Name, addr, port, "-", "-")
			}
		}
	case "rds":
		rs, err := decodeAll(raw, func() *route.RouteConfiguration { return &route.RouteConfiguration{} })
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tVHOST NAME\tDOMAINS\tMATCH\tDESTINATION")
		for _, rc := range rs {
			for _, vh := range rc.VirtualHosts {
				for _, r := range vh.Routes {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rc.Name, vh.Name, domains(vh.Domains), routeMatch(r.Match), routeDestination(r))
				}
			}
		}
	case "eds":
		es, err := decodeAll(raw, func() *endpoint.ClusterLoadAssignment { return &endpoint.ClusterLoadAssignment{} })
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tLOCALITY\tWEIGHT\tCLUSTER")
		for _, e := range es {
			for _, le := range e.Endpoints {
				loc := strings.Trim(strings.Join([]string{le.GetLocality().GetRegion(), le.GetLocality().GetZone(), le.GetLocality().GetSubZone()}, "/"), "/")
				for _, lb := range le.LbEndpoints {
					weight := lb.GetLoadBalancingWeight().GetValue()
					if weight == 0 {
						weight = 1
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", addressString(lb.GetEndpoint().GetAddress()), lb.HealthStatus.String(), dash(loc), weight, e.ClusterName)
				}
			}
		}
	case "sds":
		ss, err := decodeAll(raw, func() *tlsv3.Secret { return &tlsv3.Secret{} })
		if err != nil {
			return err
		}
		if err := writeSecretTable(tw, ss); err != nil {
			return err
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// splitClusterName parses Istio's "DIRECTION|PORT|SUBSET|HOST" names.
func splitClusterName(name string) (fqdn, port, subset, direction string) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return name, "", "", ""
	}
	return parts[3], parts[1], parts[2], strings.ToUpper(parts[0])
}

func clusterType(c *cluster.Cluster) string {
	if t, ok := c.ClusterDiscoveryType.(*cluster.Cluster_Type); ok {
		return t.Type.String()
	}
	return "-"
}

func addressString(a *core.Address) string {
	if p := a.GetPipe(); p != nil {
		return "unix://" + p.Path
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return "-"
	}
	return net.JoinHostPort(sa.Address, fmt.Sprint(sa.GetPortValue()))
}

func listenerAddress(l *listener.Listener) (string, string) {
	if p := l.Address.GetPipe(); p != nil {
		return "unix://" + p.Path, "-"
	}
	sa := l.Address.GetSocketAddress()
	return sa.GetAddress(), fmt.Sprint(sa.GetPortValue())
}

func chainMatch(m *listener.FilterChainMatch) string {
	if m == nil {
		return "ALL"
	}
	var parts []string
	if m.DestinationPort != nil {
		parts = append(parts, fmt.Sprintf("port %d", m.DestinationPort.Value))
	}
	if len(m.ServerNames) > 0 {
		parts = append(parts, "SNI "+strings.Join(m.ServerNames, ","))
	}
	if len(m.ApplicationProtocols) > 0 {
		parts = append(parts, "ALPN "+strings.Join(m.ApplicationProtocols, ","))
	}
	if m.TransportProtocol != "" {
		parts = append(parts, "transport "+m.TransportProtocol)
	}
	for _, r := range m.PrefixRanges {
		parts = append(parts, fmt.Sprintf("dst %s/%d", r.AddressPrefix, r.GetPrefixLen().GetValue()))
	}
	if len(parts) == 0 {
		return "ALL"
	}
	return strings.Join(parts, "; ")
}

func chainDestination(fc *listener.FilterChain) string {
	for _, f := range fc.Filters {
		tc := f.GetTypedConfig()
		if tc == nil {
			continue
		}
		msg, err := tc.UnmarshalNew()
		if err != nil {
			continue
		}
		switch m := msg.(type) {
		case *hcm.HttpConnectionManager:
			if rds := m.GetRds(); rds != nil {
				return "Route: " + rds.RouteConfigName
			}
			if rc := m.GetRouteConfig(); rc != nil {
				return "Inline Route: " + rc.Name
			}
		case *tcpproxy.TcpProxy:
			if c := m.GetCluster(); c != "" {
				return "Cluster: " + c
			}
			if wc := m.GetWeightedClusters(); wc != nil {
				var names []string
				for _, c := range wc.Clusters {
					names = append(names, fmt.Sprintf("%s (%d)", c.Name, c.Weight))
				}
				return "Clusters: " + strings.Join(names, ", ")
			}
		}
	}
	return "-"
}

func domains(ds []string) string {
	sorted := append([]string(nil), ds...)
	sort.Strings(sorted)
	if len(sorted) > 2 {
		return fmt.Sprintf("%s + %d more...", strings.Join(sorted[:2], ", "), len(sorted)-2)
	}
	return strings.Join(sorted, ", ")
}

func routeMatch(m *route.RouteMatch) string {
	var s string
	switch p := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		s = p.Prefix + "*"
	case *route.RouteMatch_Path:
		s = p.Path
	case *route.RouteMatch_SafeRegex:
		s = "regex " + p.SafeRegex.GetRegex()
	case *route.RouteMatch_PathSeparatedPrefix:
		s = p.PathSeparatedPrefix + "/*"
	default:
		s = "*"
	}
	if len(m.GetHeaders()) > 0 {
		var hs []string
		for _, h := range m.Headers {
			hs = append(hs, h.Name)
		}
		s += " (headers " + strings.Join(hs, ",") + ")"
	}
	return s
}

func routeDestination(r *route.Route) string {
	switch a := r.Action.(type) {
	case *route.Route_Route:
		if c := a.Route.GetCluster(); c != "" {
			return c
		}
		if wc := a.Route.GetWeightedClusters(); wc != nil {
			var parts []string
			for _, c := range wc.Clusters {
				parts = append(parts, fmt.Sprintf("%s %d%%", c.Name, c.GetWeight().GetValue()))
			}
			return strings.Join(parts, ", ")
		}
	case *route.Route_Redirect:
		return "redirect"
	case *route.Route_DirectResponse:
		return fmt.Sprintf("direct response %d", a.DirectResponse.Status)
	}
	return "-"
}

// writeSecretTable shows each secret's certificate: subject SPIFFE ID,
// serial, validity.
func writeSecretTable(w io.Writer, ss []*tlsv3.Secret) error {
	fmt.Fprintln(w, "RESOURCE NAME\tTYPE\tSPIFFE ID / SUBJECT\tSERIAL NUMBER\tNOT BEFORE\tNOT AFTER")
	for _, s := range ss {
		var kind, pemData string
		switch t := s.Type.(type) {
		case *tlsv3.Secret_TlsCertificate:
			kind, pemData = "Cert Chain", dataSource(t.TlsCertificate.GetCertificateChain())
		case *tlsv3.Secret_ValidationContext:
			kind, pemData = "CA", dataSource(t.ValidationContext.GetTrustedCa())
		default:
			fmt.Fprintf(w, "%s\tother\t-\t-\t-\t-\n", s.Name)
			continue
		}
		certs := parseCerts([]byte(pemData))
		if len(certs) == 0 {
			fmt.Fprintf(w, "%s\t%s\t(no inline certificate)\t-\t-\t-\n", s.Name, kind)
			continue
		}
		c := certs[0]
		id := c.Subject.String()
		for _, u := range c.URIs {
			if u.Scheme == "spiffe" {
				id = u.String()
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%x\t%s\t%s\n", s.Name, kind, dash(id), c.SerialNumber, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// dataSource returns the inline content of an Envoy data source.
func dataSource(d *core.DataSource) string {
	if b := d.GetInlineBytes(); len(b) > 0 {
		return string(b)
	}
	return d.GetInlineString()
}

func parseCerts(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
