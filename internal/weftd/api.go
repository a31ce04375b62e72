package weftd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// APISourceName is the source of objects applied through the admin API
// (`weft apply`).
const APISourceName = "api"

// maxApplyBody bounds the size of one apply or delete request.
const maxApplyBody = 8 << 20

// ApplyResult is the JSON body answered by /api/v1/apply and
// /api/v1/delete.
type ApplyResult struct {
	// Applied lists the objects created, changed or deleted.
	Applied []model.Key `json:"applied"`
	// Diagnostics lists the problems found; with any error, nothing was
	// applied.
	Diagnostics model.Diagnostics `json:"diagnostics"`
	// Error summarises why the request was refused, if it was.
	Error string `json:"error,omitempty"`
}

// handleApply applies a multi-document YAML body atomically. The query
// parameter "file" names the input in diagnostics.
func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	file, data, ok := readManifest(w, r)
	if !ok {
		return
	}
	cfgs, diags := manifest.Decode(file, data, APISourceName)
	res := ApplyResult{Applied: []model.Key{}, Diagnostics: diags}
	if !diags.HasErrors() {
		var more model.Diagnostics
		var err error
		more, err = s.api.Set(cfgs...)
		res.Diagnostics = append(res.Diagnostics, more...)
		if err != nil && !res.Diagnostics.HasErrors() {
			res.Diagnostics = append(res.Diagnostics, model.Diagnostic{Origin: model.Origin{File: file}, Message: err.Error()})
		}
	}
	if res.Diagnostics.HasErrors() {
		res.Error = "rejected: nothing applied"
		writeJSONStatus(w, http.StatusUnprocessableEntity, res)
		return
	}
	for _, c := range cfgs {
		res.Applied = append(res.Applied, c.Key())
	}
	writeJSONStatus(w, http.StatusOK, res)
}

// handleDelete deletes the objects a YAML body names (by kind, namespace
// and name; specs are ignored), from the API source only.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	file, data, ok := readManifest(w, r)
	if !ok {
		return
	}
	res := ApplyResult{Applied: []model.Key{}, Diagnostics: model.Diagnostics{}}
	keys, diags := objectKeys(file, data)
	res.Diagnostics = append(res.Diagnostics, diags...)
	if diags.HasErrors() {
		res.Error = "rejected: nothing deleted"
		writeJSONStatus(w, http.StatusUnprocessableEntity, res)
		return
	}
	var present []model.Key
	for _, k := range keys {
		if s.api.Get(k) != nil {
			present = append(present, k)
		} else {
			res.Diagnostics = append(res.Diagnostics, model.Diagnostic{Severity: model.SeverityWarning, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name,
				Message: "not found among objects applied through the API (objects from files are deleted by editing the files)"})
		}
	}
	s.api.Delete(present...)
	res.Applied = append(res.Applied, present...)
	writeJSONStatus(w, http.StatusOK, res)
}

func readManifest(w http.ResponseWriter, r *http.Request) (string, []byte, bool) {
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "<request>"
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxApplyBody))
	if err != nil {
		writeJSONStatus(w, http.StatusRequestEntityTooLarge, ApplyResult{Error: fmt.Sprintf("reading body: %v", err)})
		return "", nil, false
	}
	return file, data, true
}

// objectKeys reads the kind, namespace and name of every document.
func objectKeys(file string, data []byte) ([]model.Key, model.Diagnostics) {
	var keys []model.Key
	var diags model.Diagnostics
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var head struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			diags = append(diags, model.Diagnostic{Origin: model.Origin{File: file}, Message: "invalid YAML: " + err.Error()})
			break
		}
		if err := node.Decode(&head); err != nil || head.Kind == "" {
			if len(node.Content) == 0 { // empty document
				continue
			}
			diags = append(diags, model.Diagnostic{Origin: model.Origin{File: file, Line: node.Line}, Field: "kind", Message: "each document needs kind and metadata.name"})
			continue
		}
		ki, ok := model.LookupKind(model.Kind(head.Kind))
		if !ok {
			diags = append(diags, model.Diagnostic{Origin: model.Origin{File: file, Line: node.Line}, Field: "kind", Message: fmt.Sprintf("unknown kind %q", head.Kind)})
			continue
		}
		ns := head.Metadata.Namespace
		if ns == "" {
			ns = manifest.DefaultNamespace
		}
		keys = append(keys, model.Key{Source: APISourceName, Kind: ki.Kind, Namespace: ns, Name: head.Metadata.Name})
	}
	return keys, diags
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := newJSONEncoder(w)
	_ = enc.Encode(v)
}
