// Package manifest decodes Istio configuration objects from multi-document
// YAML, strictly: unknown fields, wrong types and unknown kinds are
// reported as diagnostics naming the file, line, object and field.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/golang/protobuf/jsonpb"
	"google.golang.org/protobuf/protoadapt"
	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/model"
)

// DefaultNamespace is the namespace of objects whose metadata names none.
const DefaultNamespace = "default"

// Decode reads every document of a multi-document YAML stream. file names
// the input in diagnostics and origins; source is stored in each object's
// Meta.Source. Documents that fail to decode yield diagnostics and no
// object; the others decode regardless.
func Decode(file string, data []byte, source string) ([]*model.Config, model.Diagnostics) {
	var out []*model.Config
	var diags model.Diagnostics
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			diags = append(diags, model.Diagnostic{Origin: model.Origin{File: file}, Message: "invalid YAML: " + err.Error()})
			break
		}
		c, ds := decodeDocument(file, source, &doc)
		diags = append(diags, ds...)
		if c != nil {
			out = append(out, c)
		}
	}
	return out, diags
}

func decodeDocument(file, source string, doc *yaml.Node) (*model.Config, model.Diagnostics) {
	origin := model.Origin{File: file, Line: doc.Line}
	root := doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil // empty document
	}
	var head struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name        string            `yaml:"name"`
			Namespace   string            `yaml:"namespace"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec yaml.Node `yaml:"spec"`
	}
	if err := root.Decode(&head); err != nil {
		return nil, model.Diagnostics{{Origin: origin, Message: "invalid object: " + err.Error()}}
	}
	meta := model.Meta{
		Kind: model.Kind(head.Kind), APIVersion: head.APIVersion,
		Name: head.Metadata.Name, Namespace: head.Metadata.Namespace,
		Labels: head.Metadata.Labels, Annotations: head.Metadata.Annotations,
		Source: source, Origin: origin,
	}
	if meta.Namespace == "" {
		meta.Namespace = DefaultNamespace
	}
	ki, err := model.LookupAPIVersion(head.APIVersion, head.Kind)
	if err != nil {
		return nil, model.Diagnostics{model.Errorf(&meta, "kind", "%v", err)}
	}
	if meta.Name == "" {
		return nil, model.Diagnostics{model.Errorf(&meta, "metadata.name", "required")}
	}
	spec := ki.NewSpec()
	js := []byte("{}")
	if head.Spec.Kind != 0 {
		raw, err := yaml.Marshal(&head.Spec)
		if err == nil {
			js, err = sigsyaml.YAMLToJSON(raw)
		}
		if err != nil {
			return nil, model.Diagnostics{model.Errorf(&meta, "spec", "%v", err)}
		}
	}
	if err := (&jsonpb.Unmarshaler{}).Unmarshal(bytes.NewReader(js), protoadapt.MessageV1Of(spec)); err != nil {
		return nil, model.Diagnostics{model.Errorf(&meta, "spec", "%v", err)}
	}
	meta.Revision = fmt.Sprintf("%x", hash(js))
	return &model.Config{Meta: meta, Spec: spec}, nil
}

func hash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
