// Package manifest decodes Istio configuration objects from multi-document
// YAML, strictly: unknown fields, wrong types, unknown enum values, bad
// durations and unknown kinds are reported as diagnostics naming the file,
// line, object and field path.
//
// Specs are decoded by walking the YAML node tree against the protobuf
// descriptor of the kind's istio.io/api message, accepting what Istio
// accepts: JSON (camelCase) and proto (snake_case) field names, enum names,
// Go-syntax durations ("30ms", "1.5s", "1h"), wrapper types as plain values
// and 64-bit integers as numbers or strings.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/model"
)

// DefaultNamespace is the namespace of objects whose metadata names none.
const DefaultNamespace = "default"

// Document is one decoded object together with what is needed to point at
// its fields: the line of every field path that was present in the input.
type Document struct {
	// Config is the decoded object; nil when the document was empty or its
	// kind, apiVersion or metadata could not be read.
	Config *model.Config
	// Diagnostics are the problems found while decoding this document.
	Diagnostics model.Diagnostics
	// Lines maps field paths ("spec.http[0].route[1].weight") to the
	// 1-based line where they appear in the input.
	Lines Lines
}

// Lines maps field paths to input lines.
type Lines map[string]int

// Line returns the line of path, or of its nearest enclosing path that is
// known ("spec.http[0].timeout" falls back to "spec.http[0]"), or 0.
func (l Lines) Line(path string) int {
	for path != "" {
		if n, ok := l[path]; ok {
			return n
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last element of a field path: "a.b[2]" → "a.b",
// "a.b" → "a", "a" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		depth := 0
		for i := len(p) - 1; i >= 0; i-- {
			switch p[i] {
			case ']':
				depth++
			case '[':
				depth--
				if depth == 0 {
					return p[:i]
				}
			}
		}
		return ""
	}
	// Skip dots inside brackets, e.g. headers["x.y"].
	depth := 0
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case ']':
			depth++
		case '[':
			depth--
		case '.':
			if depth == 0 {
				return p[:i]
			}
		}
	}
	return ""
}

// Decode reads every document of a multi-document YAML stream. file names
// the input in diagnostics and origins; source is stored in each object's
// Meta.Source. Documents with errors yield diagnostics and no object; the
// others decode regardless.
func Decode(file string, data []byte, source string) ([]*model.Config, model.Diagnostics) {
	docs := DecodeDocuments(file, data, source)
	var out []*model.Config
	var diags model.Diagnostics
	for _, d := range docs {
		diags = append(diags, d.Diagnostics...)
		if d.Config != nil && !d.Diagnostics.HasErrors() {
			out = append(out, d.Config)
		}
	}
	return out, diags
}

// DecodeDocuments is Decode keeping each document's diagnostics and field
// lines. A Document's Config is set whenever its metadata could be read,
// even if its spec has errors (so that callers can name the object); such a
// Config's Spec holds whatever decoded cleanly and must not be used as
// configuration. Documents that are empty are skipped; a "kind: List"
// document yields one Document per item.
func DecodeDocuments(file string, data []byte, source string) []*Document {
	var docs []*Document
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			docs = append(docs, &Document{Diagnostics: model.Diagnostics{yamlError(file, err)}})
			break
		}
		docs = append(docs, decodeNode(file, source, &node)...)
	}
	return docs
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlError turns a yaml.v3 syntax error into a diagnostic with its line.
func yamlError(file string, err error) model.Diagnostic {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return model.Diagnostic{Origin: model.Origin{File: file, Line: line}, Message: "invalid YAML: " + msg}
}

// decodeNode decodes one YAML document (or, for a List, its items).
func decodeNode(file, source string, doc *yaml.Node) []*Document {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	w := newWalker(file)
	root = w.resolve(root)
	if root == nil || isNull(root) {
		return nil // empty document
	}
	if root.Kind != yaml.MappingNode {
		d := &Document{}
		d.Diagnostics = model.Diagnostics{{Origin: model.Origin{File: file, Line: root.Line},
			Message: fmt.Sprintf("invalid object: expected a mapping with apiVersion, kind, metadata and spec, got %s", describe(root))}}
		return []*Document{d}
	}
	if items := listItems(w, root); items != nil {
		var out []*Document
		for _, it := range items {
			out = append(out, decodeNode(file, source, it)...)
		}
		return out
	}
	return []*Document{decodeObject(w, source, root)}
}

// listItems returns the items of a "kind: List" (apiVersion v1) mapping, or
// nil if root is not a list.
func listItems(w *walker, root *yaml.Node) []*yaml.Node {
	var kind, apiVersion string
	var items *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], w.resolve(root.Content[i+1])
		switch k.Value {
		case "kind":
			kind = v.Value
		case "apiVersion":
			apiVersion = v.Value
		case "items":
			items = v
		}
	}
	if kind != "List" || apiVersion != "v1" || items == nil || items.Kind != yaml.SequenceNode {
		return nil
	}
	return items.Content
}

// decodeObject decodes one object mapping.
func decodeObject(w *walker, source string, root *yaml.Node) *Document {
	doc := &Document{Lines: Lines{}}
	w.lines = doc.Lines
	meta := model.Meta{Source: source, Origin: model.Origin{File: w.file, Line: firstKeyLine(root)}}
	w.meta = &meta

	fields := map[string]*yaml.Node{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := w.resolve(root.Content[i]), root.Content[i+1]
		name := k.Value
		if _, dup := fields[name]; dup {
			w.errorAt(k.Line, name, "duplicate field %q", name)
			continue
		}
		switch name {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			w.errorAt(k.Line, name, "unknown field %q (want apiVersion, kind, metadata, spec)", name)
			continue
		}
		fields[name] = v
		keyLines[name] = k.Line
		doc.Lines[name] = k.Line
	}

	peekIdentity(w, fields["metadata"], &meta)
	apiVersion, ok1 := w.topString(fields, keyLines, "apiVersion", meta.Origin.Line)
	kind, ok2 := w.topString(fields, keyLines, "kind", meta.Origin.Line)
	meta.APIVersion, meta.Kind = apiVersion, model.Kind(kind)
	if !ok1 || !ok2 {
		doc.Diagnostics = w.diags
		return doc
	}
	ki, err := model.LookupAPIVersion(apiVersion, kind)
	if err != nil {
		line := keyLines["kind"]
		if _, known := model.LookupKind(model.Kind(kind)); !known {
			w.errorAt(line, "kind", "unknown kind: apiVersion %q kind %q is not an Istio configuration kind Weft understands", apiVersion, kind)
		} else {
			w.errorAt(keyLines["apiVersion"], "apiVersion", "%v", err)
		}
		doc.Diagnostics = w.diags
		return doc
	}

	md, ok := fields["metadata"]
	if !ok {
		w.errorAt(meta.Origin.Line, "metadata", "required field missing (metadata.name is required)")
		doc.Diagnostics = w.diags
		return doc
	}
	w.metadata(md, &meta)

	spec := ki.NewSpec()
	if sn, ok := fields["spec"]; ok {
		w.message(sn, spec.ProtoReflect(), "spec", 0)
	} else {
		w.errorAt(meta.Origin.Line, "spec", "required field missing")
	}
	meta.Revision = revision(&meta, spec)
	doc.Config = &model.Config{Meta: meta, Spec: spec}
	doc.Diagnostics = w.diags
	return doc
}

// topString reads a required top-level string field such as kind.
func (w *walker) topString(fields map[string]*yaml.Node, keyLines map[string]int, name string, objLine int) (string, bool) {
	n, ok := fields[name]
	if !ok {
		w.errorAt(objLine, name, "required field missing")
		return "", false
	}
	n = w.resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value == "" {
		w.errorAt(keyLines[name], name, "expected a non-empty string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// peekIdentity reads metadata.name and namespace without checking them, so
// that every diagnostic about the object, even one found before metadata
// is checked, names it.
func peekIdentity(w *walker, md *yaml.Node, meta *model.Meta) {
	meta.Namespace = DefaultNamespace
	md = w.resolve(md)
	if md == nil || md.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(md.Content); i += 2 {
		k, v := w.resolve(md.Content[i]), w.resolve(md.Content[i+1])
		if k == nil || v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			continue
		}
		switch k.Value {
		case "name":
			meta.Name = v.Value
		case "namespace":
			if v.Value != "" {
				meta.Namespace = v.Value
			}
		}
	}
}

func firstKeyLine(m *yaml.Node) int {
	if len(m.Content) > 0 {
		return m.Content[0].Line
	}
	return m.Line
}
