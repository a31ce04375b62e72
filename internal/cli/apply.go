package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/validate"
)

func init() {
	register(func(env *Env) *cobra.Command { return newApplyCommand(env, false) })
	register(func(env *Env) *cobra.Command { return newApplyCommand(env, true) })
}

// applyResult is weftd's answer to an apply or delete request.
type applyResult struct {
	Applied     []model.Key       `json:"applied"`
	Diagnostics model.Diagnostics `json:"diagnostics"`
	Error       string            `json:"error"`
}

func newApplyCommand(env *Env, del bool) *cobra.Command {
	var paths []string
	var admin *adminClient
	verb, done, short := "apply", "configured", "Apply Istio configuration to a running weftd"
	long := `Apply sends Istio configuration to weftd's admin API, which adds the objects
(or replaces those with the same kind, namespace and name) in one atomic
step: either every object is applied or, if any is rejected, none is.

The input is checked locally first (strict decoding and each object's
semantic rules), so mistakes are reported with file, line, object and field
before anything is sent. Objects applied this way live in weftd's "api"
source; "weft delete -f" with the same files removes them. Several files are
sent as one request so that they apply atomically; weftd then records their
origin as "weft-apply" and the line in the joined input (diagnostics are
mapped back to each file and line).

PATH is a file, a directory (searched recursively for *.yaml and *.yml) or
- for standard input. The exit status is 1 if anything was rejected.`
	example := `  weft apply -f examples/bookinfo/tasks/virtual-service-all-v1.yaml
  weft apply -f my-routes/ --weftd 127.0.0.1:25014`
	if del {
		verb, done, short = "delete", "deleted", "Delete objects applied with weft apply"
		long = `Delete removes from weftd the objects the files name (by kind, namespace and
name; specs are ignored), in one atomic step. Only objects applied through
"weft apply" can be deleted; objects from weftd's configuration directory
are removed by editing those files.

The exit status is 1 if the input is rejected; objects not found are
warnings.`
		example = `  weft delete -f examples/bookinfo/tasks/virtual-service-all-v1.yaml`
	}
	cmd := &cobra.Command{
		Use:     verb + " -f PATH...",
		Short:   short,
		Long:    long,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			all := append(append([]string(nil), paths...), args...)
			if len(all) == 0 {
				return &usageError{msg: verb + ": no input; give files or directories with -f (or -f - for standard input)"}
			}
			inputs, diags := readInputs(all, env.In)
			if !del {
				diags = append(diags, checkObjects(inputs)...)
			}
			if diags.HasErrors() {
				validate.Sort(diags)
				writeDiagnostics(env.Err, diags)
				fmt.Fprintf(env.Err, "weft %s: rejected before sending, nothing was %s\n", verb, done)
				return &ExitError{Code: 1}
			}
			body, names := joinInputs(inputs)
			res, err := postManifest(cmd.Context(), admin, verb, names.label(), body)
			if err != nil {
				return err
			}
			for i := range res.Diagnostics {
				res.Diagnostics[i].Origin = names.locate(res.Diagnostics[i].Origin)
			}
			diags = append(diags, res.Diagnostics...)
			validate.Sort(diags)
			writeDiagnostics(env.Err, diags)
			if res.Error != "" || diags.HasErrors() {
				msg := res.Error
				if msg == "" {
					msg = "rejected"
				}
				fmt.Fprintf(env.Err, "weft %s: %s\n", verb, msg)
				return &ExitError{Code: 1}
			}
			sort.Slice(res.Applied, func(i, j int) bool { return keyLess(res.Applied[i], res.Applied[j]) })
			for i, k := range res.Applied {
				if i > 0 && k == res.Applied[i-1] {
					continue // the same object twice: the later replaced the earlier
				}
				fmt.Fprintf(env.Out, "%s %s/%s %s\n", k.Kind, k.Namespace, k.Name, done)
			}
			if len(res.Applied) == 0 {
				fmt.Fprintf(env.Out, "nothing %s\n", done)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&paths, "filename", "f", nil, "file or directory to "+verb+" (repeatable; - for standard input)")
	admin = addWeftdFlag(cmd)
	return cmd
}

func keyLess(a, b model.Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// checkObjects decodes the inputs strictly and validates each object on
// its own. Cross-object checks are left to weftd, which sees the whole
// configuration (a route's subset may be defined by a DestinationRule
// applied earlier).
func checkObjects(inputs []validate.Input) model.Diagnostics {
	var diags model.Diagnostics
	for _, in := range inputs {
		for _, doc := range manifest.DecodeDocuments(in.Name, in.Data, "api") {
			diags = append(diags, doc.Diagnostics...)
			if doc.Config == nil || doc.Diagnostics.HasErrors() {
				continue
			}
			for _, d := range validate.Object(doc.Config) {
				if d.Field != "" {
					if n := doc.Lines.Line(d.Field); n > 0 {
						d.Origin.Line = n
					}
				}
				diags = append(diags, d)
			}
		}
	}
	return diags
}

func writeDiagnostics(w io.Writer, diags model.Diagnostics) {
	for _, d := range diags {
		fmt.Fprintln(w, d.String())
	}
}

// joinedNames maps lines of the joined request body back to the files.
type joinedNames struct {
	files []string
	start []int // first line of each file in the body (1-based)
}

// label names the request body in weftd's diagnostics.
func (j joinedNames) label() string {
	if len(j.files) == 1 {
		return j.files[0]
	}
	return "weft-apply"
}

// locate turns an origin in the joined body into one in its file.
func (j joinedNames) locate(o model.Origin) model.Origin {
	if len(j.files) <= 1 || o.File != j.label() {
		return o
	}
	i := sort.Search(len(j.start), func(i int) bool { return j.start[i] > o.Line }) - 1
	if i < 0 || o.Line == 0 {
		return model.Origin{File: strings.Join(j.files, ", ")}
	}
	return model.Origin{File: j.files[i], Line: o.Line - j.start[i] + 1}
}

// joinInputs concatenates the inputs into one multi-document YAML body, so
// that weftd applies them all in one step.
func joinInputs(inputs []validate.Input) ([]byte, joinedNames) {
	var b bytes.Buffer
	var names joinedNames
	line := 1
	for i, in := range inputs {
		if i > 0 {
			b.WriteString("---\n")
			line++
		}
		names.files = append(names.files, in.Name)
		names.start = append(names.start, line)
		b.Write(in.Data)
		line += bytes.Count(in.Data, []byte("\n"))
		if len(in.Data) > 0 && in.Data[len(in.Data)-1] != '\n' {
			b.WriteByte('\n')
			line++
		}
	}
	return b.Bytes(), names
}

// postManifest sends body to weftd's apply or delete endpoint.
func postManifest(ctx context.Context, admin *adminClient, verb, file string, body []byte) (*applyResult, error) {
	code, data, err := admin.do(ctx, http.MethodPost, "/api/v1/"+verb+"?file="+url.QueryEscape(file), "application/yaml", body)
	if err != nil {
		return nil, err
	}
	var res applyResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("weftd at %s answered %d to %s, not an apply result: %.200s", admin.addr, code, verb, data)
	}
	if code != http.StatusOK && res.Error == "" {
		res.Error = http.StatusText(code)
	}
	return &res, nil
}
