package completion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/googleapis/gax-go/v2"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// ForwarderName is the forwarder's "source" in logs and parked messages.
const ForwarderName = "completed-forwarder"

// forwardTimeout bounds one event's publish and confirm.
const forwardTimeout = 30 * time.Second

// Forwarder moves completion events from the shim's pull subscription
// (report-completed-amqp) to the durable fanout exchange
// COMPLETED_EXCHANGE, which it declares: persistent, application/json,
// message_id "{recordId}-{status}", the body unchanged. A Pub/Sub message
// is acked only after RabbitMQ confirmed its copy; otherwise it is nacked
// and comes back. RabbitMQ drops what reaches a fanout exchange with no
// queue bound: the upstream binds its queue before it relies on events.
type Forwarder struct {
	Cfg config.Shim
	Log *slog.Logger
	// Park keeps messages that are not completion events (parking topic).
	Park *bus.Bus

	sub       *pubsub.Subscriber
	client    *pubsub.Client
	forwarded atomic.Int64
	sessions  atomic.Int64
	lastErr   atomic.Value
}

// NewForwarder makes the forwarder's Pub/Sub client; PUBSUB_EMULATOR_HOST,
// or opts, point it at the emulator.
func NewForwarder(ctx context.Context, cfg config.Shim, park *bus.Bus, log *slog.Logger, opts ...option.ClientOption) (*Forwarder, error) {
	c, err := pubsub.NewClient(context.WithoutCancel(ctx), cfg.PubSub.ProjectID, opts...)
	if err != nil {
		return nil, fmt.Errorf("pubsub.NewClient %s: %w", cfg.PubSub.ProjectID, err)
	}
	sub := c.Subscriber(topology.Names{Prefix: cfg.PubSub.NamePrefix}.Sub(topology.SubCompletedAMQP))
	sub.ReceiveSettings.MaxOutstandingMessages = max(cfg.Prefetch, 1)
	return &Forwarder{Cfg: cfg, Log: log.With(logging.KeySource, ForwarderName), Park: park, sub: sub, client: c}, nil
}

// Close closes the Pub/Sub client.
func (f *Forwarder) Close() error { return f.client.Close() }

// Forwarded counts events RabbitMQ confirmed since the forwarder was made.
func (f *Forwarder) Forwarded() int64 { return f.forwarded.Load() }

// Sessions counts the sessions that got as far as receiving.
func (f *Forwarder) Sessions() int64 { return f.sessions.Load() }

// LastError is the error that ended the last session, if any.
func (f *Forwarder) LastError() error {
	if e, ok := f.lastErr.Load().(error); ok {
		return e
	}
	return nil
}

// Run forwards until ctx ends, reconnecting when RabbitMQ or Pub/Sub fail.
// Events in flight when ctx ends finish (confirmed and acked, or nacked).
func (f *Forwarder) Run(ctx context.Context) error {
	bo := gax.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}
	for {
		started := f.Sessions()
		err := f.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		f.lastErr.Store(err)
		if f.Sessions() != started {
			bo = gax.Backoff{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}
		}
		wait := bo.Pause()
		f.Log.Warn("completion forwarder session ended; reconnecting", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Declare declares the durable fanout exchange the events go to.
func Declare(ch *amqp.Channel, exchange string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s (one of that name but another type or durability exists? delete it or rename it): %w", exchange, err)
	}
	return nil
}

// session runs one RabbitMQ connection until it or Pub/Sub fails or ctx ends.
func (f *Forwarder) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(f.Cfg.AMQPURL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "report-completed-forwarder"}})
	if err != nil {
		return fmt.Errorf("amqp dial: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	if err := Declare(ch, f.Cfg.CompletedExchange); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("amqp confirm mode: %w", err)
	}
	// Receive would retry a missing subscription quietly; a session
	// counts only once the subscription is known to be there.
	if _, err := f.client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: f.sub.String()}); err != nil {
		return fmt.Errorf("pubsub subscription %s: %w", f.sub.String(), err)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		select {
		case e := <-closed:
			cancel(fmt.Errorf("amqp connection closed: %v", e))
		case e := <-chClosed:
			cancel(fmt.Errorf("amqp channel closed: %v", e))
		case <-rctx.Done():
		}
	}()
	f.sessions.Add(1)
	f.Log.Info("forwarding completion events", "subscription", f.sub.String(), "exchange", f.Cfg.CompletedExchange)
	err = f.sub.Receive(rctx, func(_ context.Context, m *pubsub.Message) { f.forward(ch, m) })
	if cause := context.Cause(rctx); cause != nil && ctx.Err() == nil {
		return cause
	}
	if err != nil {
		return fmt.Errorf("pubsub receive %s: %w", f.sub.String(), err)
	}
	return nil
}

// forward copies one event to the exchange; it runs on its own context so
// the end of a drain never abandons an event half-way.
func (f *Forwarder) forward(ch *amqp.Channel, m *pubsub.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	id, status, err := identify(m)
	log := f.Log.With("messageId", m.ID)
	if err != nil {
		if perr := f.Park.Park(ctx, log, m.Data, m.Attributes, ForwarderName+": "+err.Error(), ForwarderName, f.sub.String()); perr != nil {
			log.Error("could not park a message that is no completion event; it comes back", "error", perr)
			m.Nack()
			return
		}
		m.Ack()
		return
	}
	log = log.With(logging.KeyRecordID, id, "status", status)
	if err := publish(ctx, ch, f.Cfg.CompletedExchange, MessageID(id, status), m.Data); err != nil {
		log.Error("could not forward completion event; it comes back", "error", err)
		m.Nack()
		return
	}
	m.Ack()
	f.forwarded.Add(1)
	log.Info("completion event forwarded to RabbitMQ", "exchange", f.Cfg.CompletedExchange)
}

// identify reads the record ID and status from the attributes, or, for a
// message published without them, from the body.
func identify(m *pubsub.Message) (id, status string, err error) {
	id, status = m.Attributes[AttrRecordID], m.Attributes[AttrStatus]
	if id == "" || status == "" {
		var b struct {
			RecordID int64  `json:"recordId"`
			Status   string `json:"status"`
		}
		if err := json.Unmarshal(m.Data, &b); err != nil {
			return "", "", fmt.Errorf("not a completion event: %v", err)
		}
		id, status = strconv.FormatInt(b.RecordID, 10), b.Status
	}
	if n, err := strconv.ParseInt(id, 10, 64); err != nil || n <= 0 {
		return "", "", fmt.Errorf("not a completion event: record ID %q", id)
	}
	if status != "SUCCESS" && status != "FAILED" {
		return "", "", fmt.Errorf("not a completion event: status %q", status)
	}
	return id, status, nil
}

// publish sends body to exchange, persistent, and waits for the confirm.
func publish(ctx context.Context, ch *amqp.Channel, exchange, msgID string, body []byte) error {
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "", false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: msgID, Body: body,
	})
	if err != nil {
		return fmt.Errorf("amqp publish to %s: %w", exchange, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("amqp confirm from %s: %w", exchange, err)
	}
	if !ok {
		return errors.New("amqp publish to " + exchange + ": nacked by broker")
	}
	return nil
}
