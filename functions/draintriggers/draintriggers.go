// Package draintriggers is DrainTriggers' function: it consumes report triggers
// from RabbitMQ and publishes stage 1 to Pub/Sub (package trigger holds
// the consumer and its policy). In production Cloud Scheduler calls the
// DrainTriggers HTTP function every minute, which consumes for DRAIN_FOR
// (50 s by default) and returns; locally local/cmd/draintriggers runs the same
// Consumer continuously. Beside the consumer, for the same period, the
// completion forwarder moves completion events from Pub/Sub to RabbitMQ,
// so in production they reach RabbitMQ within about a minute.
package draintriggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Handler is the DrainTriggers HTTP function.
type Handler struct {
	consumer  *serverenv.Lazy[*trigger.Consumer]
	forwarder *serverenv.Lazy[*completion.Forwarder]
	mu        sync.Mutex // one drain at a time per instance
}

// New returns the handler; clients are created on first request.
func New() *Handler {
	h := &Handler{consumer: serverenv.NewLazy(func(ctx context.Context) (*trigger.Consumer, error) {
		var cfg config.DrainTriggers
		if err := config.Load(ctx, &cfg); err != nil {
			return nil, err
		}
		return trigger.NewConsumer(ctx, cfg, logging.Default)
	})}
	h.forwarder = serverenv.NewLazy(func(ctx context.Context) (*completion.Forwarder, error) {
		c, err := h.consumer.Get(ctx)
		if err != nil {
			return nil, err
		}
		return completion.NewForwarder(ctx, c.Cfg, c.Dispatcher.Bus, logging.Default)
	})
	return h
}

// Close closes the forwarder's and the consumer's clients, if they were made.
func (h *Handler) Close() error { return errors.Join(h.forwarder.Close(), h.consumer.Close()) }

// ServeHTTP consumes triggers for DRAIN_FOR, then reports how many it handled.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := h.consumer.Get(r.Context())
	if err != nil {
		logging.Default.Error("DrainTriggers not ready", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := h.forwarder.Get(r.Context())
	if err != nil {
		logging.Default.Error("completion forwarder not ready", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if !h.mu.TryLock() {
		http.Error(w, "a drain is already running on this instance", http.StatusConflict)
		return
	}
	defer h.mu.Unlock()
	before, sessions := c.Handled(), c.Sessions()
	fBefore, fSessions := f.Forwarded(), f.Sessions()
	ctx, cancel := context.WithTimeout(r.Context(), c.Cfg.DrainFor)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { _ = f.Run(ctx) }) // as the consumer: in-flight events settle first
	_ = c.Run(ctx)                   // returns when the drain time is up, after in-flight triggers settle
	wg.Wait()
	if f.Sessions() == fSessions {
		err := f.LastError()
		logging.Default.Error("drain could not forward completion events", "error", err)
		http.Error(w, fmt.Sprintf("could not forward completion events to %s: %v", c.Cfg.CompletedExchange, err), http.StatusServiceUnavailable)
		return
	}
	if c.Sessions() == sessions {
		// Never got to consume: fail the call so the scheduler's and the
		// function's error metrics show RabbitMQ is unreachable.
		err := c.LastError()
		logging.Default.Error("drain could not consume triggers", "error", err)
		http.Error(w, fmt.Sprintf("could not consume %s: %v", c.Cfg.TriggerQueue, err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]int64{"handled": c.Handled() - before, "forwarded": f.Forwarded() - fBefore})
}
