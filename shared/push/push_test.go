package push

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// fn is a Func whose Handle is a plain function. The fail and park paths
// need real Redis and Pub/Sub; the listener's tests cover them through this
// handler (functions/listener TestErrorPaths).
type fn struct {
	serverenv.Env
	handle func(*message.Push) error
	got    *message.Push
}

func (f *fn) Handle(_ context.Context, m *message.Push, _ *slog.Logger) error {
	f.got = m
	return f.handle(m)
}

func (f *fn) Fail(context.Context, *message.Push, message.Header, string, *slog.Logger) error {
	return errors.New("not expected")
}

func (f *fn) ServerEnv() *serverenv.Env { return &f.Env }

func TestServe(t *testing.T) {
	t.Parallel()
	const body = `{"message":{"data":"aGk=","messageId":"7","attributes":{"a":"b"}},"subscription":"projects/p/subscriptions/s","deliveryAttempt":3}`
	tests := []struct {
		name   string
		body   string
		handle func(*message.Push) error
		setup  error
		want   int
	}{
		{"handled: ack", body, func(*message.Push) error { return nil }, nil, http.StatusNoContent},
		{"transient error: redeliver", body, func(*message.Push) error { return errors.New("db down") }, nil, http.StatusInternalServerError},
		{"not push JSON", "hello", nil, nil, http.StatusBadRequest},
		{"push without message id", `{"message":{"data":"aGk="}}`, nil, nil, http.StatusBadRequest},
		{"setup failed: retry", body, nil, errors.New("no config"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fn{Env: serverenv.Env{Project: "p"}, handle: tt.handle}
			h := New("test", func(context.Context) (Func, error) {
				if tt.setup != nil {
					return nil, tt.setup
				}
				return f, nil
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body)))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
			got := f.got
			if tt.want == http.StatusNoContent && (got == nil || string(got.Message.Data) != "hi" || got.ID() != "7" || got.DeliveryAttempt != 3 || got.Message.Attributes["a"] != "b") {
				t.Errorf("handler got %+v", got)
			}
		})
	}
}
