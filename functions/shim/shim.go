// Package shim is the MQ1 shim: it consumes report triggers from RabbitMQ
// and publishes stage 1 to Pub/Sub. In production Cloud Scheduler calls
// the DrainTriggers HTTP function every minute, which consumes for
// DRAIN_FOR (50 s by default) and returns; locally local/cmd/shim runs the
// same Consumer continuously.
package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/fanoutexport/fanoutexport/shared/clients"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dispatch"
	"github.com/fanoutexport/fanoutexport/shared/lazy"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/record"
)

// NewConsumer builds a Consumer and its clients from cfg.
func NewConsumer(ctx context.Context, cfg config.Shim, log *slog.Logger) (*Consumer, error) {
	c, err := clients.Open(ctx, cfg.PubSub, cfg.Redis, cfg.DB, cfg.Records.DSN)
	if err != nil {
		return nil, err
	}
	return &Consumer{
		Cfg:        cfg,
		Dispatcher: &dispatch.Dispatcher{Records: record.NewRepo(c.DB), State: c.State, Bus: c.Bus},
		Log:        log.With(logging.KeySource, "mq1-shim"),
	}, nil
}

// Handler is the DrainTriggers HTTP function.
type Handler struct {
	consumer *lazy.Value[*Consumer]
	mu       sync.Mutex // one drain at a time per instance
}

// New returns the handler; clients are created on first request.
func New() *Handler {
	return &Handler{consumer: lazy.New(func(ctx context.Context) (*Consumer, error) {
		var cfg config.Shim
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		return NewConsumer(context.Background(), cfg, logging.Default)
	})}
}

// ServeHTTP consumes triggers for DRAIN_FOR, then reports how many it handled.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := h.consumer.Get(r.Context())
	if err != nil {
		logging.Default.Error("shim not ready", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !h.mu.TryLock() {
		http.Error(w, "a drain is already running on this instance", http.StatusConflict)
		return
	}
	defer h.mu.Unlock()
	before, sessions := c.Handled(), c.Sessions()
	ctx, cancel := context.WithTimeout(r.Context(), c.Cfg.DrainFor)
	defer cancel()
	_ = c.Run(ctx) // returns when the drain time is up, after in-flight triggers settle
	if c.Sessions() == sessions {
		// Never got to consume: fail the call so the scheduler's and the
		// function's error metrics show RabbitMQ is unreachable.
		err := c.LastError()
		logging.Default.Error("drain could not consume triggers", "error", err)
		http.Error(w, fmt.Sprintf("could not consume %s: %v", c.Cfg.TriggerQueue, err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int64{"handled": c.Handled() - before})
}
