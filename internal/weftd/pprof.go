package weftd

import (
	"net/http/pprof"
)

// profileRoutes serves Go's runtime profiles under /debug/pprof/ on the
// admin port, like istiod's monitoring port: heap, CPU, goroutines, for
// finding where a large mesh's memory and time go.
func (s *Server) profileRoutes() {
	s.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	s.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	s.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
