package server

import (
	"net/http"
	"net/http/pprof"

	"github.com/gin-gonic/gin"

	"github.com/sealgate/sealgate/access"
	"github.com/sealgate/sealgate/gateway/engine"
	"github.com/sealgate/sealgate/gateway/problem"
)

// DebugSettings is the "debug" section of sealgate.yaml.
type DebugSettings struct {
	// PProf serves Go's profiles (net/http/pprof) under /debug/pprof/ to
	// the admin role. Off by default: a profile shows the node's code
	// paths and costs CPU while it runs.
	PProf bool `yaml:"pprof"`
}

// registerPProf serves net/http/pprof under /debug/pprof/ to admins only.
func (s *Server) registerPProf(e *gin.Engine) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also the named profiles: heap, goroutine, allocs, …
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r)
		if err == nil {
			_, err = s.Access.Decide(r.Context(), p, access.Action{Operation: access.OpAdminRead})
		}
		if err != nil {
			problem.Write(w, r, s.log, err)
			return
		}
		mux.ServeHTTP(w, r)
	})
	e.GET("/debug/pprof/*profile", engine.Std(admin))
	e.POST("/debug/pprof/symbol", engine.Std(admin))
}
