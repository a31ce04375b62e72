package manifest

import (
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/model"
)

const (
	// maxNodes bounds the YAML nodes visited per document, so that alias
	// bombs ("billion laughs") cannot exhaust memory or time. Kubernetes
	// objects are limited to about 1.5 MB, far fewer nodes than this.
	maxNodes = 100_000
	// maxDepth bounds nesting (free-form Struct values may nest arbitrarily).
	maxDepth = 64
)

// walker decodes the YAML nodes of one document into protobuf messages,
// collecting diagnostics and field lines. It is used by one goroutine.
type walker struct {
	file   string
	meta   *model.Meta
	diags  model.Diagnostics
	lines  Lines
	budget int
	broke  bool // budget exhausted: stop reporting
}

func newWalker(file string) *walker {
	return &walker{file: file, budget: maxNodes}
}

// resolve follows aliases.
func (w *walker) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// errorAt records an error diagnostic at line about field path.
func (w *walker) errorAt(line int, path, format string, args ...any) {
	if w.broke {
		return
	}
	d := model.Errorf(w.meta, path, format, args...)
	d.Origin = model.Origin{File: w.file, Line: line}
	w.diags = append(w.diags, d)
}

// spend counts one visited node and reports whether the budget allows more.
func (w *walker) spend(line int, path string) bool {
	if w.broke {
		return false
	}
	w.budget--
	if w.budget < 0 {
		w.errorAt(line, path, "document too large (more than %d YAML nodes after alias expansion)", maxNodes)
		w.broke = true
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int", "!!float":
			return "number " + n.Value
		case "!!bool":
			return "boolean " + n.Value
		case "!!null":
			return "null"
		default:
			return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
		}
	}
	return "an alias"
}

// JoinField appends a field name to a field path: "spec" + "http" →
// "spec.http".
func JoinField(p, name string) string { return fieldPath(p, name) }

// JoinIndex appends a list index to a field path: "spec.http" + 0 →
// "spec.http[0]".
func JoinIndex(p string, i int) string { return indexPath(p, i) }

// JoinKey appends a map key to a field path: "labels" + "app" →
// "labels[app]"; keys containing brackets, dots, quotes or spaces are
// quoted: labels["a.b/c"].
func JoinKey(p, key string) string { return keyPath(p, key) }

// fieldPath appends a field name to a path.
func fieldPath(p, name string) string {
	if p == "" {
		return name
	}
	return p + "." + name
}

// indexPath appends a list index to a path.
func indexPath(p string, i int) string { return p + "[" + strconv.Itoa(i) + "]" }

// keyPath appends a map key to a path; keys that would be ambiguous are
// quoted.
func keyPath(p, key string) string {
	if key == "" || strings.ContainsAny(key, "[]. \"'") {
		return p + "[" + strconv.Quote(key) + "]"
	}
	return p + "[" + key + "]"
}

// message decodes mapping n into m. path names m.
func (w *walker) message(n *yaml.Node, m protoreflect.Message, path string, depth int) {
	n = w.resolve(n)
	if n == nil || !w.spend(n.Line, path) {
		return
	}
	if depth > maxDepth {
		w.errorAt(n.Line, path, "nesting deeper than %d levels", maxDepth)
		return
	}
	if isNull(n) {
		return
	}
	if w.wellKnown(n, m, path, depth) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.errorAt(n.Line, path, "expected a mapping (%s), got %s", m.Descriptor().Name(), describe(n))
		return
	}
	fields := m.Descriptor().Fields()
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := w.resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			w.errorAt(n.Line, path, "field names must be strings, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			w.errorAt(k.Line, path, "YAML merge keys (<<) are not supported")
			continue
		}
		fd := fields.ByJSONName(k.Value)
		if fd == nil {
			fd = fields.ByTextName(k.Value)
		}
		if fd == nil {
			msg := fmt.Sprintf("unknown field %q in %s", k.Value, m.Descriptor().FullName())
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			w.errorAt(k.Line, fieldPath(path, k.Value), "%s", msg)
			continue
		}
		fp := fieldPath(path, fd.JSONName())
		if prev, dup := seen[fd.Number()]; dup {
			w.errorAt(k.Line, fp, "duplicate field %q (already given as %q)", k.Value, prev)
			continue
		}
		seen[fd.Number()] = k.Value
		w.lines[fp] = k.Line
		vr := w.resolve(v)
		if vr == nil || isNull(vr) {
			continue // null means unset, as in JSON
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, ok := oneofs[od.FullName()]; ok {
				w.errorAt(k.Line, fp, "only one of %s may be set (%q is already set)", oneofNames(od), other)
				continue
			}
			oneofs[od.FullName()] = fd.JSONName()
		}
		w.field(vr, m, fd, fp, depth)
	}
}

// oneofNames lists a oneof's field names: "exact, prefix, regex".
func oneofNames(od protoreflect.OneofDescriptor) string {
	var names []string
	for i := 0; i < od.Fields().Len(); i++ {
		names = append(names, od.Fields().Get(i).JSONName())
	}
	return strings.Join(names, ", ")
}

// field decodes the value node v of field fd of m.
func (w *walker) field(v *yaml.Node, m protoreflect.Message, fd protoreflect.FieldDescriptor, path string, depth int) {
	switch {
	case fd.IsMap():
		if v.Kind != yaml.MappingNode {
			w.errorAt(v.Line, path, "expected a mapping, got %s", describe(v))
			return
		}
		mp := m.Mutable(fd).Map()
		seen := map[string]bool{}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := w.resolve(v.Content[i]), w.resolve(v.Content[i+1])
			if k == nil || val == nil || !w.spend(k.Line, path) {
				return
			}
			if k.Kind != yaml.ScalarNode {
				w.errorAt(k.Line, path, "map keys must be scalars, got %s", describe(k))
				continue
			}
			kp := keyPath(path, k.Value)
			if seen[k.Value] {
				w.errorAt(k.Line, kp, "duplicate key %q", k.Value)
				continue
			}
			seen[k.Value] = true
			w.lines[kp] = k.Line
			key, ok := w.mapKey(k, fd.MapKey(), kp)
			if !ok {
				continue
			}
			if isNull(val) {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					mp.Set(key, mp.NewValue()) // "name: {}" and "name:" alike
				} else {
					w.errorAt(k.Line, kp, "null value not allowed")
				}
				continue
			}
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				mv := mp.NewValue()
				w.message(val, mv.Message(), kp, depth+1)
				mp.Set(key, mv)
			} else if sv, ok := w.scalar(val, fd.MapValue(), kp); ok {
				mp.Set(key, sv)
			}
		}
	case fd.IsList():
		if v.Kind != yaml.SequenceNode {
			w.errorAt(v.Line, path, "expected a list, got %s", describe(v))
			return
		}
		l := m.Mutable(fd).List()
		for i, e := range v.Content {
			ep := indexPath(path, i)
			e = w.resolve(e)
			if e == nil || !w.spend(v.Line, ep) {
				return
			}
			w.lines[ep] = e.Line
			if fd.Kind() == protoreflect.MessageKind {
				ev := l.NewElement()
				w.message(e, ev.Message(), ep, depth+1)
				l.Append(ev)
			} else if isNull(e) {
				w.errorAt(e.Line, ep, "null list element not allowed")
			} else if sv, ok := w.scalar(e, fd, ep); ok {
				l.Append(sv)
			}
		}
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		w.message(v, m.Mutable(fd).Message(), path, depth+1)
	default:
		if sv, ok := w.scalar(v, fd, path); ok {
			m.Set(fd, sv)
		}
	}
}

// mapKey converts a map key node to the key kind of a map field.
func (w *walker) mapKey(k *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.MapKey, bool) {
	if fd.Kind() == protoreflect.StringKind {
		return protoreflect.ValueOfString(k.Value).MapKey(), true
	}
	// Numeric and boolean keys may be written bare or quoted.
	kk := *k
	kk.Tag = ""
	switch fd.Kind() {
	case protoreflect.BoolKind:
		kk.Tag = "!!bool"
	default:
		kk.Tag = "!!int"
	}
	v, ok := w.scalar(&kk, fd, path)
	if !ok {
		return protoreflect.MapKey{}, false
	}
	return v.MapKey(), true
}

// scalar converts a scalar node to the value of a non-message field.
func (w *walker) scalar(n *yaml.Node, fd protoreflect.FieldDescriptor, path string) (protoreflect.Value, bool) {
	bad := func(want string) (protoreflect.Value, bool) {
		w.errorAt(n.Line, path, "expected %s, got %s", want, describe(n))
		return protoreflect.Value{}, false
	}
	if n.Kind != yaml.ScalarNode {
		return bad(kindName(fd))
	}
	tag := n.ShortTag()
	switch fd.Kind() {
	case protoreflect.StringKind:
		if tag != "!!str" && tag != "!!timestamp" {
			if tag == "!!int" || tag == "!!float" || tag == "!!bool" {
				w.errorAt(n.Line, path, "expected string, got %s (quote it: \"%s\")", describe(n), n.Value)
				return protoreflect.Value{}, false
			}
			return bad("string")
		}
		return protoreflect.ValueOfString(n.Value), true
	case protoreflect.BoolKind:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			return bad("boolean")
		}
		return protoreflect.ValueOfBool(b), true
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return protoreflect.ValueOfEnum(0), true
		}
		if tag != "!!str" {
			return bad("one of " + enumNames(ed))
		}
		ev := ed.Values().ByName(protoreflect.Name(n.Value))
		if ev == nil {
			w.errorAt(n.Line, path, "unknown value %q (want one of %s)", n.Value, enumNames(ed))
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfEnum(ev.Number()), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		is64 := fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Sint64Kind || fd.Kind() == protoreflect.Sfixed64Kind
		if tag != "!!int" && !(is64 && tag == "!!str") {
			return bad("integer")
		}
		i, err := parseInt(n)
		if err != nil || (!is64 && (i < math.MinInt32 || i > math.MaxInt32)) {
			w.errorAt(n.Line, path, "integer %s out of range or malformed", n.Value)
			return protoreflect.Value{}, false
		}
		if is64 {
			return protoreflect.ValueOfInt64(i), true
		}
		return protoreflect.ValueOfInt32(int32(i)), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		is64 := fd.Kind() == protoreflect.Uint64Kind || fd.Kind() == protoreflect.Fixed64Kind
		if tag != "!!int" && !(is64 && tag == "!!str") {
			return bad("non-negative integer")
		}
		if strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
			w.errorAt(n.Line, path, "must be non-negative, got %s", n.Value)
			return protoreflect.Value{}, false
		}
		u, err := parseUint(n)
		if err != nil || (!is64 && u > math.MaxUint32) {
			w.errorAt(n.Line, path, "integer %s out of range or malformed", n.Value)
			return protoreflect.Value{}, false
		}
		if is64 {
			return protoreflect.ValueOfUint64(u), true
		}
		return protoreflect.ValueOfUint32(uint32(u)), true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if tag != "!!int" && tag != "!!float" {
			return bad("number")
		}
		f, err := strconv.ParseFloat(cleanFloat(n.Value), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			w.errorAt(n.Line, path, "number %s is malformed or not finite", n.Value)
			return protoreflect.Value{}, false
		}
		if fd.Kind() == protoreflect.FloatKind {
			if math.Abs(f) > math.MaxFloat32 {
				w.errorAt(n.Line, path, "number %s out of range", n.Value)
				return protoreflect.Value{}, false
			}
			return protoreflect.ValueOfFloat32(float32(f)), true
		}
		return protoreflect.ValueOfFloat64(f), true
	case protoreflect.BytesKind:
		if tag != "!!str" && tag != "!!binary" {
			return bad("base64 string")
		}
		b, err := base64.StdEncoding.DecodeString(n.Value)
		if err != nil {
			b, err = base64.URLEncoding.DecodeString(n.Value)
		}
		if err != nil {
			w.errorAt(n.Line, path, "invalid base64: %v", err)
			return protoreflect.Value{}, false
		}
		return protoreflect.ValueOfBytes(b), true
	}
	return bad(kindName(fd))
}

// parseInt reads an integer node: YAML's own reading for !!int, base 10
// for quoted strings (int64 fields only).
func parseInt(n *yaml.Node) (int64, error) {
	if n.ShortTag() == "!!str" {
		return strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64)
	}
	var i int64
	err := n.Decode(&i)
	return i, err
}

// parseUint is parseInt for unsigned fields.
func parseUint(n *yaml.Node) (uint64, error) {
	if n.ShortTag() == "!!str" {
		return strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(n.Value), "+"), 10, 64)
	}
	var u uint64
	err := n.Decode(&u)
	return u, err
}

// cleanFloat normalises YAML float spellings for strconv.
func cleanFloat(s string) string { return strings.ReplaceAll(s, "_", "") }

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "string"
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.EnumKind:
		return "one of " + enumNames(fd.Enum())
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "number"
	case protoreflect.BytesKind:
		return "base64 string"
	}
	return "integer"
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	var names []string
	for i := 0; i < ed.Values().Len(); i++ {
		names = append(names, string(ed.Values().Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// wellKnown decodes Google's well-known types the way protojson does, with
// durations in Go syntax as well. It reports false for other messages.
func (w *walker) wellKnown(n *yaml.Node, m protoreflect.Message, path string, depth int) bool {
	md := m.Descriptor()
	switch md.FullName() {
	case "google.protobuf.Duration":
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			w.errorAt(n.Line, path, "expected a duration such as \"30ms\", \"1.5s\" or \"1h\", got %s", describe(n))
			return true
		}
		d, err := time.ParseDuration(n.Value)
		if err != nil {
			w.errorAt(n.Line, path, "invalid duration %q (want a number with a unit, such as \"30ms\", \"1.5s\" or \"1h\")", n.Value)
			return true
		}
		m.Set(md.Fields().ByName("seconds"), protoreflect.ValueOfInt64(int64(d/time.Second)))
		m.Set(md.Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(d%time.Second)))
		return true
	case "google.protobuf.Timestamp":
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!str" && n.ShortTag() != "!!timestamp") {
			w.errorAt(n.Line, path, "expected an RFC 3339 timestamp, got %s", describe(n))
			return true
		}
		t, err := time.Parse(time.RFC3339Nano, n.Value)
		if err != nil {
			w.errorAt(n.Line, path, "invalid timestamp %q (want RFC 3339)", n.Value)
			return true
		}
		m.Set(md.Fields().ByName("seconds"), protoreflect.ValueOfInt64(t.Unix()))
		m.Set(md.Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(t.Nanosecond())))
		return true
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int64Value", "google.protobuf.UInt64Value",
		"google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		fd := md.Fields().ByName("value")
		if v, ok := w.scalar(n, fd, path); ok {
			m.Set(fd, v)
		}
		return true
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		v, ok := w.structValue(n, path, depth)
		if !ok {
			return true
		}
		var src protoreflect.Message
		switch md.FullName() {
		case "google.protobuf.Struct":
			if v.GetStructValue() == nil {
				w.errorAt(n.Line, path, "expected a mapping, got %s", describe(n))
				return true
			}
			src = v.GetStructValue().ProtoReflect()
		case "google.protobuf.ListValue":
			if v.GetListValue() == nil {
				w.errorAt(n.Line, path, "expected a list, got %s", describe(n))
				return true
			}
			src = v.GetListValue().ProtoReflect()
		default:
			src = v.ProtoReflect()
		}
		src.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
			m.Set(fd, val)
			return true
		})
		return true
	case "google.protobuf.Any":
		w.errorAt(n.Line, path, "google.protobuf.Any fields are not supported")
		return true
	}
	return false
}

// structValue converts free-form YAML into a structpb.Value.
func (w *walker) structValue(n *yaml.Node, path string, depth int) (*structpb.Value, bool) {
	n = w.resolve(n)
	if n == nil || !w.spend(0, path) {
		return nil, false
	}
	if depth > maxDepth {
		w.errorAt(n.Line, path, "nesting deeper than %d levels", maxDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := w.resolve(n.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode {
				w.errorAt(n.Line, path, "keys must be strings")
				return nil, false
			}
			v, ok := w.structValue(n.Content[i+1], keyPath(path, k.Value), depth+1)
			if !ok {
				return nil, false
			}
			s.Fields[k.Value] = v
		}
		return structpb.NewStructValue(s), true
	case yaml.SequenceNode:
		l := &structpb.ListValue{}
		for i, e := range n.Content {
			v, ok := w.structValue(e, indexPath(path, i), depth+1)
			if !ok {
				return nil, false
			}
			l.Values = append(l.Values, v)
		}
		return structpb.NewListValue(l), true
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return structpb.NewNullValue(), true
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return structpb.NewBoolValue(b), true
			}
		case "!!int", "!!float":
			f, err := strconv.ParseFloat(cleanFloat(n.Value), 64)
			if err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return structpb.NewNumberValue(f), true
			}
			if i, err := parseInt(n); err == nil {
				return structpb.NewNumberValue(float64(i)), true
			}
		default:
			return structpb.NewStringValue(n.Value), true
		}
	}
	w.errorAt(n.Line, path, "unsupported value %s", describe(n))
	return nil, false
}

// suggest returns the field name closest to name, if close enough to be a
// likely typo.
func suggest(name string, fields protoreflect.FieldDescriptors) string {
	best, bestD := "", 3
	var names []string
	for i := 0; i < fields.Len(); i++ {
		names = append(names, fields.Get(i).JSONName())
	}
	sort.Strings(names)
	for _, c := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
