package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/model"
)

func init() { register(newGetCommand) }

// kindAbbreviations are kubectl's short names for Istio's kinds.
var kindAbbreviations = map[string]model.Kind{
	"vs": model.KindVirtualService, "dr": model.KindDestinationRule, "gw": model.KindGateway,
	"se": model.KindServiceEntry, "we": model.KindWorkloadEntry, "pa": model.KindPeerAuthentication,
	"ra": model.KindRequestAuthentication, "ap": model.KindAuthorizationPolicy,
}

// servedObject is one object of weftd's /debug/config.
type servedObject struct {
	Kind        model.Kind        `json:"kind"`
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	Source      string            `json:"source"`
	Origin      string            `json:"origin,omitempty"`
	Revision    string            `json:"revision,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Spec        json.RawMessage   `json:"spec"`
	Diagnostics []string          `json:"diagnostics,omitempty"`
}

// resolveKind reads a user-typed kind: the kind, its plural, lower case,
// kubectl's abbreviation, or "all".
func resolveKind(s string) (model.KindInfo, bool) {
	if k, ok := kindAbbreviations[strings.ToLower(s)]; ok {
		return model.LookupKind(k)
	}
	if ki, ok := model.ParseKind(s); ok {
		return ki, true
	}
	// Plural in any case, or singular lower case of a plural-only match.
	for _, ki := range model.Kinds() {
		if strings.EqualFold(s, ki.Plural) {
			return ki, true
		}
	}
	return model.KindInfo{}, false
}

func newGetCommand(env *Env) *cobra.Command {
	var output, namespace string
	var admin *adminClient
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List the configuration objects weftd serves",
		Long: `Get lists the Istio objects weftd currently serves (from its configuration
directory and from "weft apply"), read from its /debug/config page.

KIND is a kind (VirtualService), its plural (virtualservices), kubectl's
short name (vs, dr, gw, se, we, pa, ra, ap) or "all". With NAME, only that
object is shown. The table shows each object's source (file or api), where
it came from and how many problems weftd reports for it; -o yaml prints the
objects as Istio YAML and -o json as JSON.`,
		Example: `  weft get vs
  weft get destinationrule reviews -o yaml
  weft get all -n istio-system`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var kind model.Kind
			if !strings.EqualFold(args[0], "all") {
				ki, ok := resolveKind(args[0])
				if !ok {
					var names []string
					for _, k := range model.Kinds() {
						names = append(names, string(k.Kind))
					}
					return &usageError{msg: fmt.Sprintf("get: unknown kind %q; want one of %s (or their plurals, short names, or all)", args[0], strings.Join(names, ", "))}
				}
				kind = ki.Kind
			}
			switch output {
			case "", "table", "wide", "json", "yaml":
			default:
				return &usageError{msg: fmt.Sprintf("get: -o %q: want table, json or yaml", output)}
			}
			objs, err := fetchObjects(cmd.Context(), admin)
			if err != nil {
				return err
			}
			var sel []servedObject
			for _, o := range objs {
				if kind != "" && o.Kind != kind {
					continue
				}
				if namespace != "" && o.Namespace != namespace {
					continue
				}
				if len(args) == 2 && o.Name != args[1] {
					continue
				}
				sel = append(sel, o)
			}
			sort.Slice(sel, func(i, j int) bool {
				a, b := sel[i], sel[j]
				if a.Kind != b.Kind {
					return a.Kind < b.Kind
				}
				if a.Namespace != b.Namespace {
					return a.Namespace < b.Namespace
				}
				if a.Name != b.Name {
					return a.Name < b.Name
				}
				return a.Source < b.Source
			})
			if len(sel) == 0 && len(args) == 2 {
				fmt.Fprintf(env.Err, "weft get: %s %q not found\n", args[0], args[1])
				return &ExitError{Code: 1}
			}
			switch output {
			case "json":
				if sel == nil {
					sel = []servedObject{}
				}
				enc := json.NewEncoder(env.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(sel)
			case "yaml":
				return writeObjectsYAML(env.Out, sel)
			}
			if len(sel) == 0 {
				fmt.Fprintln(env.Err, "No objects found.")
				return nil
			}
			tw := tabwriter.NewWriter(env.Out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tSOURCE\tORIGIN\tPROBLEMS")
			for _, o := range sel {
				origin := o.Origin
				if origin == "" {
					origin = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", o.Kind, o.Namespace, o.Name, o.Source, origin, len(o.Diagnostics))
			}
			return tw.Flush()
		},
	}
	admin = addWeftdFlag(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: table (default), json or yaml")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "only objects in this namespace (default: all)")
	return cmd
}

// fetchObjects reads weftd's served objects.
func fetchObjects(ctx context.Context, admin *adminClient) ([]servedObject, error) {
	var dump struct {
		Objects []servedObject `json:"objects"`
	}
	if err := admin.getJSON(ctx, "/debug/config", &dump); err != nil {
		return nil, err
	}
	return dump.Objects, nil
}

// writeObjectsYAML prints the objects as Istio YAML documents.
func writeObjectsYAML(w io.Writer, objs []servedObject) error {
	for i, o := range objs {
		ki, _ := model.LookupKind(o.Kind)
		apiVersion := ""
		if len(ki.Versions) > 0 {
			apiVersion = ki.Group + "/" + ki.Versions[0]
		}
		meta := map[string]any{"name": o.Name, "namespace": o.Namespace}
		if len(o.Labels) > 0 {
			meta["labels"] = o.Labels
		}
		ann := map[string]string{"weft.io/source": o.Source}
		if o.Origin != "" {
			ann["weft.io/origin"] = o.Origin
		}
		meta["annotations"] = ann
		doc := map[string]any{"apiVersion": apiVersion, "kind": o.Kind, "metadata": meta, "spec": o.Spec}
		js, err := json.Marshal(doc)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return err
		}
		if i > 0 {
			io.WriteString(w, "---\n")
		}
		if _, err := w.Write(y); err != nil {
			return err
		}
	}
	return nil
}
