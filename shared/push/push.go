// Package push is the one HTTP handler of every Pub/Sub-driven function:
// it creates the function's environment on first use, decodes the push
// request, runs the function, and maps the outcome, by its class (package
// fault), to what Pub/Sub acts on: 2xx acks, anything else redelivers.
//
//   - nil: ack.
//   - Retry: the error is noted in the report's hash for DeadLetter,
//     and the answer is 500, so Pub/Sub redelivers (6 times, 60 s apart).
//   - Fail: the function's Fail ends the report now with the error's text;
//     then ack. Without a record to fail (none named, or Fail's own error
//     is parked: the record was deleted), the message is parked instead.
//   - Park: the message goes to the parking topic with the reason and
//     where it came from; then ack.
package push

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Func is one push function over its environment. A function's own
// environment type embeds *serverenv.Env, which supplies ServerEnv and Close.
type Func interface {
	// Handle processes one message; nil acks it, and an error's class
	// decides the rest.
	Handle(ctx context.Context, m *message.Envelope, log *slog.Logger) error
	// Fail ends the report h names FAILED with reason, after Handle
	// returned a permanent error.
	Fail(ctx context.Context, m *message.Envelope, h message.Header, reason string, log *slog.Logger) error
	ServerEnv() *serverenv.Env
	Close() error
}

// Handler serves one push subscription.
type Handler struct {
	name string
	fn   *serverenv.Lazy[Func]
	log  *slog.Logger // logging.Default; a test's own to read what was logged
}

// New returns the handler of the function called name (the "source" of its
// log lines and error notes); setup loads its config and makes its
// environment on the first request, and again after a failure.
func New(name string, setup func(ctx context.Context) (Func, error)) *Handler {
	return &Handler{name: name, fn: serverenv.NewLazy(setup), log: logging.Default}
}

// Close closes the function's environment, if it was made.
func (h *Handler) Close() error { return h.fn.Close() }

// ServeHTTP handles one push delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.log.With(logging.KeySource, h.name)
	f, err := h.fn.Get(r.Context())
	if err != nil {
		log.Error("function not ready", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	env := f.ServerEnv()
	m, err := message.ReadPush(r)
	if err != nil {
		// Pub/Sub never sends this; answering 400 keeps the body (it is
		// retried, then dead-lettered) rather than dropping it.
		log.Error("bad push request", "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	hd := message.Peek(m.Message.Data, m.Message.Attributes)
	// One span per handler call, in the report's trace (from the message's
	// attributes), so every hop of a report shares one trace.
	ctx, span := tracing.Start(tracing.Extract(r.Context(), m.Message.Attributes), h.name)
	defer span.End()
	log = tracing.Log(ctx, log, env.Project).With("messageId", m.ID(), "deliveryAttempt", m.DeliveryAttempt)
	if hd.RecordID > 0 {
		log = log.With(logging.KeyRecordID, hd.RecordID, logging.KeyStage, hd.Stage)
		defer heartbeat(ctx, env.State, hd.RecordID, log)()
	}
	// A panic is an error of the retry class, logged with its stack (log
	// carries the record): one bad message must not take down an instance
	// serving others, and the message is then redelivered, and
	// dead-lettered, like after any other error.
	err = fault.Recovered(log, "handler", func() error { return f.Handle(ctx, m, log) })
	if err := fault.Recovered(log, "settling the handler's outcome", func() error { return h.settle(ctx, f, m, hd, err, log) }); err != nil {
		span.SetStatus(codes.Error, err.Error())
		log.Error("not handled; Pub/Sub will redeliver", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// settle turns Handle's outcome into nil (ack) or the error to answer
// non-2xx with.
func (h *Handler) settle(ctx context.Context, f Func, m *message.Envelope, hd message.Header, err error, log *slog.Logger) error {
	if err == nil {
		return nil
	}
	env := f.ServerEnv()
	class := fault.ClassOf(err)
	if class == fault.Fail && hd.RecordID <= 0 {
		class = fault.Park // nothing to fail: keep the message instead
	}
	if class == fault.Fail {
		log.Error("permanent failure; failing the report", "reason", err.Error())
		ferr := f.Fail(ctx, m, hd, err.Error(), log)
		if fault.ClassOf(ferr) != fault.Park {
			return ferr
		}
		// The report cannot be failed either (its record was deleted):
		// keep the message, with why.
		err, class = ferr, fault.Park
	}
	if class == fault.Park {
		return env.Bus.Park(ctx, log, m.Message.Data, m.Message.Attributes, h.name+": "+err.Error(), h.name, m.Subscription)
	}
	if hd.RecordID > 0 {
		// Leave the error for DeadLetter, which names it in the
		// reason if every delivery fails.
		if nerr := env.State.NoteError(ctx, hd.RecordID, h.name, err); nerr != nil {
			log.Warn("could not record the error in Redis", "error", nerr)
		}
	}
	return err
}

// heartbeat keeps the report's hash alive while a handler works on it: the
// hash lives STATE_TTL (10 min) from its last write, and one listener
// attempt may run for minutes before it writes anything (a long query),
// then wait a 60 s backoff. Every TTL/10 (at most a minute) it refreshes
// the TTL, never recreating a gone hash. It returns the stop function.
func heartbeat(ctx context.Context, st *state.Store, id int64, log *slog.Logger) func() {
	every := min(max(st.TTL()/10, time.Second), time.Minute)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			// A panic here would end the process, and every request in it.
			if r := recover(); r != nil {
				log.Error("heartbeat panicked; the hash's TTL is no longer refreshed for this delivery", "error", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := st.Refresh(ctx, id); err != nil && ctx.Err() == nil {
					log.Warn("could not refresh the hash's TTL", "error", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
