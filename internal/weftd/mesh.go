package weftd

import (
	"maps"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/translate"
)

// generate translates snap for p with the mesh-wide options of weftd's
// configuration (path normalization), which override what the proxy sent.
func (s *Server) generate(snap *model.Snapshot, p *model.Proxy) *translate.Resources {
	if s.cfg.PathNormalization == "" {
		return translate.Generate(snap, p)
	}
	q := *p
	q.Metadata = maps.Clone(p.Metadata)
	if q.Metadata == nil {
		q.Metadata = map[string]string{}
	}
	q.Metadata[translate.MetadataPathNormalization] = s.cfg.PathNormalization
	return translate.Generate(snap, &q)
}
