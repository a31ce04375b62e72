package cli

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/validate"
)

func init() { register(newValidateCommand) }

// stdinName names standard input in diagnostics.
const stdinName = "<stdin>"

func newValidateCommand(env *Env) *cobra.Command {
	var paths []string
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Check Istio configuration files",
		Long: `Validate decodes Istio configuration strictly (unknown fields, wrong types,
unknown enum values and bad durations are errors) and checks it with Istio's
semantic rules, object by object and as a whole (for example, a route to a
subset no DestinationRule defines).

PATH is a file, a directory (searched recursively for *.yaml and *.yml) or
- for standard input. Diagnostics are printed one per line, sorted by file
and line, followed by a summary. The exit status is 1 if there is any error;
warnings alone exit 0.`,
		Example: `  weft validate -f samples/bookinfo/networking/
  weft validate -f virtual-service-all-v1.yaml -f destination-rule-all.yaml
  kubectl get vs -o yaml | weft validate -f -`,
		RunE: func(cmd *cobra.Command, args []string) error {
			all := append(append([]string(nil), paths...), args...)
			if len(all) == 0 {
				return &usageError{msg: "validate: no input; give files or directories with -f (or -f - for standard input)"}
			}
			inputs, readDiags := readInputs(all, env.In)
			rep := validate.Check(inputs)
			rep.Diagnostics = append(readDiags, rep.Diagnostics...)
			validate.Sort(rep.Diagnostics)
			if err := rep.Write(env.Out); err != nil {
				return err
			}
			if rep.Errors() > 0 {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&paths, "filename", "f", nil, "file or directory to validate (repeatable; - for standard input)")
	return cmd
}

// readInputs reads the named files, directories (recursively, *.yaml and
// *.yml) and standard input ("-"). Unreadable paths become diagnostics.
func readInputs(paths []string, stdin io.Reader) ([]validate.Input, model.Diagnostics) {
	var inputs []validate.Input
	var diags model.Diagnostics
	seen := map[string]bool{}
	add := func(name string, data []byte) {
		if seen[name] {
			return
		}
		seen[name] = true
		inputs = append(inputs, validate.Input{Name: name, Data: data})
	}
	fail := func(name string, err error) {
		diags = append(diags, model.Diagnostic{Origin: model.Origin{File: name}, Message: "cannot read: " + err.Error()})
	}
	for _, p := range paths {
		if p == "-" {
			if seen[stdinName] {
				continue
			}
			data, err := io.ReadAll(stdin)
			if err != nil {
				fail(stdinName, err)
				continue
			}
			add(stdinName, data)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			fail(p, unwrapPathError(err))
			continue
		}
		if !info.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				fail(p, unwrapPathError(err))
				continue
			}
			add(p, data)
			continue
		}
		var files []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fail(path, unwrapPathError(err))
				return nil
			}
			if d.IsDir() {
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			fail(p, err)
		}
		sort.Strings(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				fail(f, unwrapPathError(err))
				continue
			}
			add(f, data)
		}
	}
	return inputs, diags
}

// unwrapPathError drops the path from *fs.PathError, which diagnostics
// already name.
func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
