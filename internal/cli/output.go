package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// writeStructured writes v as indented JSON or as YAML.
func writeStructured(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	switch format {
	case "json":
		_, err = fmt.Fprintf(w, "%s\n", b)
	case "yaml":
		b, err = yaml.JSONToYAML(b)
		if err == nil {
			_, err = w.Write(b)
		}
	default:
		return &usageError{msg: fmt.Sprintf("unknown output format %q: want table, json or yaml", format)}
	}
	return err
}
