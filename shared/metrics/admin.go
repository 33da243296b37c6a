package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health reports the state of each dependency ("l1": "up", "l2": "down:
// connection refused", ...) and whether the process can serve at all.
type Health func() (ok bool, parts map[string]string)

// AdminMux serves /metrics (Prometheus text), /metrics.json, /healthz and
// /debug/pprof/ for one process.
func AdminMux(reg *prometheus.Registry, health Health) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/metrics.json", func(w http.ResponseWriter, r *http.Request) {
		mfs, err := reg.Gather()
		if err != nil {
			http.Error(w, "gather failed", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(mfs)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ok, parts := true, map[string]string{}
		if health != nil {
			ok, parts = health()
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(struct {
			OK    bool              `json:"ok"`
			Parts map[string]string `json:"parts"`
		}{ok, parts})
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Admin is a running admin HTTP listener.
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// StartAdmin listens on addr (loopback by default in every binary) and serves
// h in the background. An empty addr disables the listener (nil, nil).
func StartAdmin(addr string, h http.Handler, log *slog.Logger) (*Admin, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &Admin{ln: ln, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "addr", addr, "err", err)
		}
	}()
	return a, nil
}

// Addr is the address the listener is bound to.
func (a *Admin) Addr() net.Addr { return a.ln.Addr() }

// Close stops the listener, waiting up to ctx for open requests.
func (a *Admin) Close(ctx context.Context) error {
	if a == nil {
		return nil
	}
	return a.srv.Shutdown(ctx)
}
