package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/rabbitmq"
)

// Sessions end with errors of different concrete types: a closed
// connection's (*errors.errorString from fmt.Errorf without %w), a
// refused dial's (*fmt.wrapError), the broker's (*amqp.Error), a panic.
// The loop once kept the last one in an atomic.Value, which panics when
// the type changes (issue 12). Each must be the last error in turn, and
// only the sessions that called started count.
func TestReconnectKeepsLastErrorOfAnyType(t *testing.T) {
	t.Parallel()
	ends := []struct {
		started bool
		err     error  // nil: the session panics
		want    string // LastError after it
	}{
		{true, errors.New("amqp connection closed: EOF"), "amqp connection closed: EOF"},
		{false, fmt.Errorf("amqp dial: %w", errors.New("connection refused")), "amqp dial: connection refused"},
		{false, &amqp.Error{Code: amqp.NotFound, Reason: "NOT_FOUND - no queue"}, `Exception (404) Reason: "NOT_FOUND - no queue"`},
		{true, nil, "RabbitMQ session panicked: boom"},
		{true, errors.New("amqp delivery channel closed"), "amqp delivery channel closed"},
	}
	var r rabbitmq.Reconnect
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []string
	n := 0
	err := r.Run(ctx, slog.New(slog.DiscardHandler), "RabbitMQ session", func(_ context.Context, started func()) error {
		if n > 0 {
			got = append(got, r.LastError().Error())
		}
		if n == len(ends) {
			cancel()
			return ctx.Err()
		}
		e := ends[n]
		n++
		if e.started {
			started()
		}
		if e.err == nil {
			panic("boom")
		}
		return e.err
	})
	if err != nil {
		t.Errorf("Run = %v, want nil once ctx ends", err)
	}
	var want []string
	for _, e := range ends {
		want = append(want, e.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LastError after each session (-want +got):\n%s", diff)
	}
	if got := r.Sessions(); got != 3 {
		t.Errorf("Sessions = %d, want 3 (those that called started)", got)
	}
}
