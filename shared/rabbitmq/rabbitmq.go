// Package rabbitmq holds what every RabbitMQ client of this project does
// the same way: dial a named connection, publish and wait for the
// broker's confirm, and run a long-lived session again, with backoff,
// whenever it ends (DrainTriggers' trigger consumer and its completion
// forwarder).
package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/googleapis/gax-go/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// Heartbeat is the connections' AMQP heartbeat: a broker that vanished
// without closing the socket is noticed within two of them.
const Heartbeat = 10 * time.Second

// Backoff between sessions while RabbitMQ is away: from Initial, doubling,
// capped at Max; it starts again from Initial after a session that got
// as far as its work.
const (
	BackoffInitial = 200 * time.Millisecond
	BackoffMax     = 10 * time.Second
)

// Dial opens a connection that RabbitMQ's management UI shows as name.
func Dial(url, name string) (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Heartbeat: Heartbeat, Properties: amqp.Table{"connection_name": name}})
	if err != nil {
		return nil, fmt.Errorf("amqp dial: %w", err)
	}
	return conn, nil
}

// ConfirmChannel opens a channel on conn in confirm mode, as
// PublishConfirmed needs.
func ConfirmChannel(conn *amqp.Connection) (*amqp.Channel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("amqp confirm mode: %w", err)
	}
	return ch, nil
}

// PublishConfirmed publishes p to exchange with routing key key ("" and
// a queue's name: straight to that queue) on ch, which is in confirm
// mode, and waits for the broker's confirm: a message is settled, or a
// record moved on, only once its copy is durable.
func PublishConfirmed(ctx context.Context, ch *amqp.Channel, exchange, key string, p amqp.Publishing) error {
	to := exchange
	if to == "" {
		to = key
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, p)
	if err != nil {
		return fmt.Errorf("amqp publish to %s: %w", to, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("amqp confirm from %s: %w", to, err)
	}
	if !ok {
		return fmt.Errorf("amqp publish to %s: nacked by the broker", to)
	}
	return nil
}

// Reconnect runs a session again whenever it ends, until its context
// ends, and keeps count of them for the caller's health checks. The zero
// value is ready to use.
type Reconnect struct {
	started atomic.Int64
	mu      sync.Mutex
	// lastErr is behind a mutex, not in an atomic.Value: sessions end with
	// errors of different concrete types (a closed connection's, a
	// refused dial's), and atomic.Value panics when the type changes.
	lastErr error
}

// Run calls session until ctx ends, waiting between calls with backoff.
// session returns when its connection fails or ctx ends, and calls
// started once it got as far as its work, which resets the backoff and
// counts in Sessions. A panic in session ends that session, with its
// stack logged, as an error would. log gets a warning each time a session
// ends, naming it what ("RabbitMQ session"). Run returns nil once ctx ends.
func (r *Reconnect) Run(ctx context.Context, log *slog.Logger, what string, session func(ctx context.Context, started func()) error) error {
	bo := newBackoff()
	for {
		before := r.Sessions()
		err := fault.Recovered(log, what, func() error { return session(ctx, func() { r.started.Add(1) }) })
		if ctx.Err() != nil {
			return nil
		}
		r.mu.Lock()
		r.lastErr = err
		r.mu.Unlock()
		if r.Sessions() != before {
			bo = newBackoff()
		}
		wait := bo.Pause()
		log.Warn(what+" ended; reconnecting", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func newBackoff() gax.Backoff {
	return gax.Backoff{Initial: BackoffInitial, Max: BackoffMax, Multiplier: 2}
}

// Sessions counts the sessions that called started.
func (r *Reconnect) Sessions() int64 { return r.started.Load() }

// LastError is the error that ended the last session, if any.
func (r *Reconnect) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}
