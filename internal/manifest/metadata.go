package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/model"
)

// metadataFields lists the ObjectMeta fields accepted in input and whether
// Weft reads them. The rest of ObjectMeta is server-populated bookkeeping
// that kubectl output carries; it is accepted and ignored.
var metadataFields = map[string]yaml.Kind{
	"name":                       yaml.ScalarNode,
	"namespace":                  yaml.ScalarNode,
	"labels":                     yaml.MappingNode,
	"annotations":                yaml.MappingNode,
	"generateName":               yaml.ScalarNode,
	"uid":                        yaml.ScalarNode,
	"resourceVersion":            yaml.ScalarNode,
	"generation":                 yaml.ScalarNode,
	"creationTimestamp":          yaml.ScalarNode,
	"deletionTimestamp":          yaml.ScalarNode,
	"deletionGracePeriodSeconds": yaml.ScalarNode,
	"selfLink":                   yaml.ScalarNode,
	"ownerReferences":            yaml.SequenceNode,
	"finalizers":                 yaml.SequenceNode,
	"managedFields":              yaml.SequenceNode,
}

// metadata reads and checks an object's metadata into meta.
func (w *walker) metadata(n *yaml.Node, meta *model.Meta) {
	n = w.resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		w.errorAt(lineOf(n, meta.Origin.Line), "metadata", "expected a mapping, got %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := w.resolve(n.Content[i]), w.resolve(n.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		path := "metadata." + k.Value
		want, known := metadataFields[k.Value]
		if !known {
			w.errorAt(k.Line, path, "unknown field %q in metadata", k.Value)
			continue
		}
		if seen[k.Value] {
			w.errorAt(k.Line, path, "duplicate field %q", k.Value)
			continue
		}
		seen[k.Value] = true
		w.lines[path] = k.Line
		if isNull(v) {
			continue
		}
		if v.Kind != want {
			w.errorAt(v.Line, path, "expected %s, got %s", kindWord(want), describe(v))
			continue
		}
		switch k.Value {
		case "name":
			meta.Name = w.metaString(v, path)
		case "namespace":
			if ns := w.metaString(v, path); ns != "" {
				meta.Namespace = ns
				if err := CheckDNS1123Label(ns); err != nil {
					w.errorAt(v.Line, path, "invalid namespace %q: %v", ns, err)
				}
			}
		case "labels":
			meta.Labels = w.stringMap(v, path, true)
		case "annotations":
			meta.Annotations = w.stringMap(v, path, false)
		}
	}
	switch {
	case meta.Name == "":
		w.errorAt(lineOf(n, meta.Origin.Line), "metadata.name", "required field missing")
	default:
		if err := CheckDNS1123Subdomain(meta.Name); err != nil {
			w.errorAt(w.lines.Line("metadata.name"), "metadata.name", "invalid name %q: %v", meta.Name, err)
		}
	}
}

func lineOf(n *yaml.Node, def int) int {
	if n != nil && n.Line > 0 {
		return n.Line
	}
	return def
}

func kindWord(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return "a string"
}

func (w *walker) metaString(v *yaml.Node, path string) string {
	if v.ShortTag() != "!!str" {
		w.errorAt(v.Line, path, "expected string, got %s", describe(v))
		return ""
	}
	return v.Value
}

// stringMap reads labels or annotations, checking keys (and, for labels,
// values) as Kubernetes does.
func (w *walker) stringMap(v *yaml.Node, path string, labels bool) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := w.resolve(v.Content[i]), w.resolve(v.Content[i+1])
		if k == nil || val == nil {
			continue
		}
		kp := keyPath(path, k.Value)
		w.lines[kp] = k.Line
		if _, dup := out[k.Value]; dup {
			w.errorAt(k.Line, kp, "duplicate key %q", k.Value)
			continue
		}
		if err := CheckQualifiedName(k.Value); err != nil {
			w.errorAt(k.Line, kp, "invalid key %q: %v", k.Value, err)
			continue
		}
		if val.Kind != yaml.ScalarNode || (val.ShortTag() != "!!str" && !isNull(val)) {
			w.errorAt(val.Line, kp, "expected string, got %s (quote it)", describe(val))
			continue
		}
		if labels {
			if err := CheckLabelValue(val.Value); err != nil {
				w.errorAt(val.Line, kp, "invalid label value %q: %v", val.Value, err)
				continue
			}
		}
		out[k.Value] = val.Value
	}
	return out
}

var (
	dns1123LabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	qualifiedRE    = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// CheckDNS1123Label reports whether s is a DNS-1123 label as Kubernetes
// requires for namespaces: at most 63 lower-case alphanumerics or '-',
// starting and ending with an alphanumeric.
func CheckDNS1123Label(s string) error {
	if len(s) > 63 {
		return fmt.Errorf("must be no more than 63 characters")
	}
	if !dns1123LabelRE.MatchString(s) {
		return fmt.Errorf("must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit")
	}
	return nil
}

// CheckDNS1123Subdomain reports whether s is a DNS-1123 subdomain as
// Kubernetes requires for object names: dot-separated DNS-1123 labels, at
// most 253 characters.
func CheckDNS1123Subdomain(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("must be no more than 253 characters")
	}
	for _, l := range strings.Split(s, ".") {
		if !dns1123LabelRE.MatchString(l) {
			return fmt.Errorf("must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
		}
	}
	return nil
}

// CheckQualifiedName checks a label or annotation key: an optional DNS
// subdomain prefix and '/', then a name of at most 63 characters of
// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
func CheckQualifiedName(s string) error {
	name := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		prefix := s[:i]
		name = s[i+1:]
		if prefix == "" {
			return fmt.Errorf("prefix part must not be empty")
		}
		if err := CheckDNS1123Subdomain(prefix); err != nil {
			return fmt.Errorf("prefix part %v", err)
		}
	}
	if name == "" {
		return fmt.Errorf("name part must not be empty")
	}
	if len(name) > 63 {
		return fmt.Errorf("name part must be no more than 63 characters")
	}
	if !qualifiedRE.MatchString(name) {
		return fmt.Errorf("name part must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric")
	}
	return nil
}

// CheckLabelValue checks a label value: empty, or at most 63 characters of
// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
func CheckLabelValue(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > 63 {
		return fmt.Errorf("must be no more than 63 characters")
	}
	if !qualifiedRE.MatchString(s) {
		return fmt.Errorf("must consist of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric")
	}
	return nil
}

// revision hashes an object's normalized content: its identity, labels,
// annotations and the deterministic encoding of its spec. Formatting,
// comments, field order and JSON-vs-proto field names do not change it.
func revision(meta *model.Meta, spec proto.Message) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", meta.APIVersion, meta.Kind, meta.Namespace, meta.Name)
	for _, m := range []map[string]string{meta.Labels, meta.Annotations} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(h, "%s=%s\x00", k, m[k])
		}
		h.Write([]byte{1})
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(spec)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
