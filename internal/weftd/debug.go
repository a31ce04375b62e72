package weftd

import (
	"encoding/json"
	"io"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/model"
)

// configDump is the JSON shape of /debug/config.
type configDump struct {
	Version     uint64            `json:"version"`
	Synced      bool              `json:"synced"`
	Objects     []objectDump      `json:"objects"`
	Diagnostics model.Diagnostics `json:"diagnostics"`
}

// objectDump is one served object with the problems reported for it. An
// object whose latest input is broken is shown in its last good version,
// with the errors of the broken one.
type objectDump struct {
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

// dumpConfig renders a snapshot for /debug/config.
func dumpConfig(snap *model.Snapshot) configDump {
	type objID struct {
		kind      model.Kind
		namespace string
		name      string
	}
	byObj := map[objID][]string{}
	for _, d := range snap.Diagnostics() {
		id := objID{d.Kind, d.Namespace, d.Name}
		byObj[id] = append(byObj[id], d.String())
	}
	out := configDump{Version: snap.Version, Synced: snap.Synced(), Objects: []objectDump{}, Diagnostics: snap.Diagnostics()}
	if out.Diagnostics == nil {
		out.Diagnostics = model.Diagnostics{}
	}
	for _, c := range snap.Configs() {
		spec, err := protojson.Marshal(c.Spec)
		if err != nil {
			spec, _ = json.Marshal(map[string]string{"error": err.Error()})
		}
		out.Objects = append(out.Objects, objectDump{
			Kind: c.Kind, Namespace: c.Namespace, Name: c.Name, Source: c.Source,
			Origin: c.Origin.String(), Revision: c.Revision, Labels: c.Labels, Spec: spec,
			Diagnostics: byObj[objID{c.Kind, c.Namespace, c.Name}],
		})
	}
	return out
}

// registryDump is the JSON shape of /debug/registry: services and their
// endpoints as the model sees them.
type registryDump struct {
	Version  uint64        `json:"version"`
	Services []serviceDump `json:"services"`
}

type serviceDump struct {
	*model.Service
	Endpoints []*model.Endpoint `json:"endpoints"`
}

func dumpRegistry(snap *model.Snapshot) registryDump {
	out := registryDump{Version: snap.Version, Services: []serviceDump{}}
	for _, svc := range snap.Services() {
		eps := snap.Endpoints(svc.Hostname)
		if eps == nil {
			eps = []*model.Endpoint{}
		}
		out.Services = append(out.Services, serviceDump{Service: svc, Endpoints: eps})
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = newJSONEncoder(w).Encode(v)
}

func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc
}
