// Package sweep is the Sweep function: Cloud Scheduler calls it every few
// minutes and it runs one sweep (package shared/stuck holds the logic):
// records stuck in PENDING get their trigger republished, records stuck in
// PROCESSING end FAILED.
package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/stuck"
)

// env is the instance's clients and its sweeper.
type env struct {
	*serverenv.Env
	sweeper *stuck.Sweeper
}

// Handler is the Sweep HTTP function.
type Handler struct {
	env *serverenv.Lazy[*env]
	mu  sync.Mutex // one sweep at a time per instance
}

// New returns the handler; clients are created on first request.
func New() *Handler {
	return &Handler{env: serverenv.NewLazy(func(ctx context.Context) (*env, error) {
		var cfg config.Sweep
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		se, err := serverenv.Setup(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.Records.DSN,
			MaxConns: cfg.DB.MaxConns, Storage: cfg.Completion.SignedURLTTL > 0, TraceExporter: cfg.Log.TraceExporter})
		if err != nil {
			return nil, err
		}
		repo := record.NewRepo(se.DB)
		// Records the sweeper FAILs are announced like any other end.
		ann, err := completion.NewAnnouncer(repo, se.Bus, se.Storage, cfg.Completion)
		if err != nil {
			return nil, errors.Join(err, se.Close())
		}
		return &env{Env: se, sweeper: &stuck.Sweeper{
			Cfg: cfg, Repo: repo, Log: logging.Default, State: se.State, Announce: ann,
		}}, nil
	})}
}

// Close closes the clients, if they were made.
func (h *Handler) Close() error { return h.env.Close() }

// ServeHTTP sweeps once and reports what it did, as JSON. A sweep that
// could not finish answers 500 with what it did anyway, so the scheduler's
// and the function's error metrics show it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e, err := h.env.Get(r.Context())
	if err != nil {
		logging.Default.Error("sweep not ready", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !h.mu.TryLock() {
		http.Error(w, "a sweep is already running on this instance", http.StatusConflict)
		return
	}
	defer h.mu.Unlock()
	res, err := e.sweeper.Run(r.Context())
	body := struct {
		stuck.Result
		Error string `json:"error,omitempty"`
	}{Result: res}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		logging.Default.Error("sweep incomplete", "error", err)
		body.Error = err.Error()
		w.WriteHeader(http.StatusInternalServerError)
	}
	_ = json.NewEncoder(w).Encode(body)
}
