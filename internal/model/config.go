package model

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Key identifies one configuration object. Source qualifies the name by the
// source that produced it, so that two sources may hold objects of the same
// kind, namespace and name without one hiding the other.
type Key struct {
	Source    string `json:"source"`
	Kind      Kind   `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String formats the key as "Kind namespace/name (source)".
func (k Key) String() string {
	s := string(k.Kind) + " " + k.Namespace + "/" + k.Name
	if k.Source != "" {
		s += " (" + k.Source + ")"
	}
	return s
}

// Origin says where an object was read: a file and the line its document
// starts on, or another place (an API server, a test).
type Origin struct {
	// File is the path of the file, for objects read from files.
	File string `json:"file,omitempty"`
	// Line is the 1-based line where the object's document starts; 0 if unknown.
	Line int `json:"line,omitempty"`
}

// String formats the origin as "file:line", "file", or "".
func (o Origin) String() string {
	switch {
	case o.File == "":
		return ""
	case o.Line > 0:
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	default:
		return o.File
	}
}

// Meta is the metadata of a configuration object, in the shape Kubernetes
// gives it.
type Meta struct {
	Kind        Kind              `json:"kind"`
	APIVersion  string            `json:"apiVersion"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Source names the source the object came from ("file", "kube", ...).
	Source string `json:"source"`
	// Origin is where in the source the object was read.
	Origin Origin `json:"origin"`
	// Revision changes whenever the object's content changes; sources set it
	// (a content hash for files, resourceVersion for Kubernetes).
	Revision string `json:"revision,omitempty"`
}

// Key returns the key of the object the metadata belongs to.
func (m *Meta) Key() Key {
	return Key{Source: m.Source, Kind: m.Kind, Namespace: m.Namespace, Name: m.Name}
}

// Config is one Istio configuration object: metadata plus a spec message
// from istio.io/api whose type is given by Meta.Kind (for example
// *v1alpha3.VirtualService for KindVirtualService).
type Config struct {
	Meta
	Spec proto.Message `json:"spec"`
}

// Severity grades a diagnostic.
type Severity int

const (
	// SeverityError marks input that is rejected.
	SeverityError Severity = iota
	// SeverityWarning marks input that is accepted but probably wrong.
	SeverityWarning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// MarshalText implements encoding.TextMarshaler.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Severity) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*s = SeverityError
	case "warning":
		*s = SeverityWarning
	default:
		return fmt.Errorf("unknown severity %q", b)
	}
	return nil
}

// Diagnostic is one problem found in configuration input. It names the
// file and line, the object, and the field, so a user can find it.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	Origin   Origin   `json:"origin"`
	// Kind, Namespace and Name identify the object; empty when the problem
	// prevented reading them (a YAML syntax error, say).
	Kind      Kind   `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Field is the path of the offending field, such as
	// "spec.http[0].route[1].weight"; empty for whole-object problems.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String formats the diagnostic on one line:
//
//	file.yaml:12: error: VirtualService default/reviews: spec.http[0].timeout: invalid duration "3x"
func (d Diagnostic) String() string {
	var b strings.Builder
	if o := d.Origin.String(); o != "" {
		b.WriteString(o)
		b.WriteString(": ")
	}
	b.WriteString(d.Severity.String())
	b.WriteString(": ")
	if d.Kind != "" || d.Name != "" {
		if d.Kind != "" {
			b.WriteString(string(d.Kind))
			b.WriteString(" ")
		}
		if d.Namespace != "" {
			b.WriteString(d.Namespace)
			b.WriteString("/")
		}
		b.WriteString(d.Name)
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is a list of diagnostics.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errorf builds an error diagnostic about the object m at field.
func Errorf(m *Meta, field, format string, args ...any) Diagnostic {
	return newDiag(SeverityError, m, field, fmt.Sprintf(format, args...))
}

// Warningf builds a warning diagnostic about the object m at field.
func Warningf(m *Meta, field, format string, args ...any) Diagnostic {
	return newDiag(SeverityWarning, m, field, fmt.Sprintf(format, args...))
}

func newDiag(sev Severity, m *Meta, field, msg string) Diagnostic {
	d := Diagnostic{Severity: sev, Field: field, Message: msg}
	if m != nil {
		d.Origin, d.Kind, d.Namespace, d.Name = m.Origin, m.Kind, m.Namespace, m.Name
	}
	return d
}
