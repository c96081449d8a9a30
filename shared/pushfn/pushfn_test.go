package pushfn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/message"
)

func TestServe(t *testing.T) {
	t.Parallel()
	const push = `{"message":{"data":"aGk=","messageId":"7","attributes":{"a":"b"}},"subscription":"projects/p/subscriptions/s","deliveryAttempt":3}`
	tests := []struct {
		name   string
		body   string
		handle Handle
		ready  error
		want   int
	}{
		{"handled: ack", push, func(context.Context, *message.Push, *slog.Logger) error { return nil }, nil, http.StatusNoContent},
		{"failed: redeliver", push, func(context.Context, *message.Push, *slog.Logger) error { return errors.New("db down") }, nil, http.StatusInternalServerError},
		{"not push JSON", "hello", nil, nil, http.StatusBadRequest},
		{"push without message id", `{"message":{"data":"aGk="}}`, nil, nil, http.StatusBadRequest},
		{"not ready", push, nil, errors.New("no config"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got *message.Push
			handle := tt.handle
			if handle != nil {
				inner := handle
				handle = func(ctx context.Context, p *message.Push, l *slog.Logger) error { got = p; return inner(ctx, p, l) }
			}
			rec := httptest.NewRecorder()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			Serve(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body)), log, "p", handle, tt.ready)
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.want == http.StatusNoContent && (got == nil || string(got.Message.Data) != "hi" || got.ID() != "7" || got.DeliveryAttempt != 3) {
				t.Errorf("handler got %+v", got)
			}
		})
	}
}
