package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/xds"
)

func init() { register(newProxyStatusCommand) }

// proxyStatusTypes are the columns of the proxy-status table, in order.
var proxyStatusTypes = []string{"cds", "lds", "eds", "rds", "sds"}

func newProxyStatusCommand(env *Env) *cobra.Command {
	var output string
	var admin *adminClient
	cmd := &cobra.Command{
		Use:   "proxy-status [PROXY]",
		Short: "Show whether each proxy has the configuration weftd last computed for it",
		Long: `proxy-status lists every proxy connected to weftd with, per xDS type, whether
it is SYNCED (the proxy acknowledged the current configuration), STALE (a newer
version was sent and not yet acknowledged), NACKED (the proxy rejected it) or
NOT SENT, as istioctl proxy-status does. With PROXY (a node id, or
workload.namespace, or a unique part of the id) it shows that proxy's versions,
nonces and its last rejection in detail.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var status []xds.ProxyStatus
			if err := admin.getJSON(cmd.Context(), "/debug/syncz", &status); err != nil {
				return err
			}
			if len(args) == 1 {
				p, err := findProxy(status, args[0])
				if err != nil {
					return err
				}
				status = []xds.ProxyStatus{p}
				if output == "" {
					return writeProxyDetail(env.Out, p)
				}
			}
			switch output {
			case "", "table":
				return writeProxyStatus(env.Out, status)
			default:
				return writeStructured(env.Out, output, status)
			}
		},
	}
	admin = addWeftdFlag(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table, json or yaml")
	return cmd
}

// findProxy picks the proxy named by query: an exact node id, then
// workload.namespace, then a unique substring of the id.
func findProxy(status []xds.ProxyStatus, query string) (xds.ProxyStatus, error) {
	for _, p := range status {
		if p.Proxy.ID == query {
			return p, nil
		}
	}
	var matches []xds.ProxyStatus
	for _, p := range status {
		if p.Proxy.Workload+"."+p.Proxy.Namespace == query || strings.Contains(p.Proxy.ID, query) {
			matches = append(matches, p)
		}
	}
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return xds.ProxyStatus{}, fmt.Errorf("no connected proxy matches %q (see weft proxy-status)", query)
	}
	var ids []string
	for _, m := range matches {
		ids = append(ids, m.Proxy.ID)
	}
	return xds.ProxyStatus{}, fmt.Errorf("%q matches %d proxies: %s", query, len(matches), strings.Join(ids, ", "))
}

// proxyName is the short name shown for a proxy: workload.namespace when
// known, else its node id.
func proxyName(p xds.ProxyStatus) string {
	if p.Proxy.Workload != "" && p.Proxy.Namespace != "" {
		return p.Proxy.Workload + "." + p.Proxy.Namespace
	}
	return p.Proxy.ID
}

func writeProxyStatus(w io.Writer, status []xds.ProxyStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tCDS\tLDS\tEDS\tRDS\tSDS\tMODEL VERSION\tID")
	for _, p := range status {
		states := map[string]string{}
		for _, t := range p.Types {
			states[t.Type] = t.State
		}
		row := []string{proxyName(p), string(p.Proxy.Type)}
		for _, t := range proxyStatusTypes {
			s := states[t]
			if s == "" {
				s = "IGNORED" // the proxy did not subscribe to this type
			}
			row = append(row, s)
		}
		row = append(row, fmt.Sprint(p.ModelVersion), p.Proxy.ID)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func writeProxyDetail(w io.Writer, p xds.ProxyStatus) error {
	fmt.Fprintf(w, "Proxy:      %s\nNode id:    %s\nNamespace:  %s\nConnected:  %s (%d stream(s))\nModel:      version %d\n\n",
		proxyName(p), p.Proxy.ID, p.Proxy.Namespace, p.ConnectedAt.Format("2006-01-02T15:04:05Z07:00"), p.Streams, p.ModelVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSTATE\tCURRENT\tSENT (NONCE)\tACKED (NONCE)")
	for _, t := range p.Types {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s (%s)\n", strings.ToUpper(t.Type), t.State, t.Current, t.Sent, t.SentNonce, t.Acked, t.AckedNonce)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range p.Types {
		if t.LastNACK != nil {
			fmt.Fprintf(w, "\nLast %s rejection (version %s, nonce %s, at %s):\n  %s\n", strings.ToUpper(t.Type),
				t.LastNACK.Version, t.LastNACK.Nonce, t.LastNACK.Time.Format("15:04:05"), t.LastNACK.Message)
		}
	}
	return nil
}
