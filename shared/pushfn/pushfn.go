// Package pushfn is the HTTP side every Pub/Sub-driven function shares:
// decode the push request, run the handler, and map the outcome to the
// status Pub/Sub acts on (2xx acks, anything else redelivers).
package pushfn

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/message"
)

// Handle processes one push message; nil acks it, an error redelivers it.
type Handle func(ctx context.Context, push *message.Push, log *slog.Logger) error

// Serve runs handle for the push request r. A handler not ready (its
// clients could not be made) answers 500 so the message is retried; a body
// that is not push JSON answers 400, which Pub/Sub retries and finally
// dead-letters, so even that body is kept.
func Serve(w http.ResponseWriter, r *http.Request, log *slog.Logger, project string, handle Handle, ready error) {
	if ready != nil {
		log.Error("function not ready", "error", ready)
		http.Error(w, ready.Error(), http.StatusInternalServerError)
		return
	}
	log = log.With(logging.Trace(project, r.Header.Get("X-Cloud-Trace-Context")))
	push, err := message.ReadPush(r)
	if err != nil {
		log.Error("bad push request", "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	log = log.With("messageId", push.ID(), "deliveryAttempt", push.DeliveryAttempt)
	if err := handle(r.Context(), push, log); err != nil {
		log.Error("not handled; Pub/Sub will redeliver", "error", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
