package completion

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/rabbitmq"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// ForwarderName is the forwarder's "source" in logs and parked messages.
const ForwarderName = "completed-forwarder"

// forwardTimeout bounds one event's publish and confirm.
const forwardTimeout = 30 * time.Second

// Forwarder moves completion events from DrainTriggers' pull subscription
// (report-completed-amqp) to the durable fanout exchange
// COMPLETED_EXCHANGE, which it declares: persistent, application/json,
// message_id "{recordId}-{status}", the body unchanged. A Pub/Sub message
// is acked only after RabbitMQ confirmed its copy; otherwise it is nacked
// and comes back. RabbitMQ drops what reaches a fanout exchange with no
// queue bound: the upstream binds its queue before it relies on events.
type Forwarder struct {
	Cfg config.DrainTriggers
	Log *slog.Logger
	// Park keeps messages that are not completion events (parking topic).
	Park Parker

	sub       *pubsub.Subscriber
	client    *pubsub.Client
	forwarded atomic.Int64
	sessions  rabbitmq.Reconnect
}

// Parker keeps a message that cannot be handled, with the reason, where
// a person finds it: *bus.Bus, which publishes it to the parking topic.
type Parker interface {
	Park(ctx context.Context, log *slog.Logger, data []byte, attrs map[string]string, reason, handler, subscription string) error
}

// NewForwarder makes the forwarder's Pub/Sub client; PUBSUB_EMULATOR_HOST,
// or opts, point it at the emulator.
func NewForwarder(ctx context.Context, cfg config.DrainTriggers, park Parker, log *slog.Logger, opts ...option.ClientOption) (*Forwarder, error) {
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
func (f *Forwarder) Sessions() int64 { return f.sessions.Sessions() }

// LastError is the error that ended the last session, if any.
func (f *Forwarder) LastError() error { return f.sessions.LastError() }

// Run forwards until ctx ends, reconnecting when RabbitMQ or Pub/Sub fail.
// Events in flight when ctx ends finish (confirmed and acked, or nacked).
func (f *Forwarder) Run(ctx context.Context) error {
	return f.sessions.Run(ctx, f.Log, "completion forwarder session", f.session)
}

// Declare declares the durable fanout exchange the events go to.
func Declare(ch *amqp.Channel, exchange string) error {
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s (one of that name but another type or durability exists? delete it or rename it): %w", exchange, err)
	}
	return nil
}

// session runs one RabbitMQ connection until it or Pub/Sub fails or ctx ends.
func (f *Forwarder) session(ctx context.Context, receiving func()) error {
	conn, err := rabbitmq.Dial(f.Cfg.AMQPURL, "report-completed-forwarder")
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := rabbitmq.ConfirmChannel(conn)
	if err != nil {
		return err
	}
	if err := Declare(ch, f.Cfg.CompletedExchange); err != nil {
		return err
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
	receiving()
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
// the end of a drain never abandons an event half-way. Pub/Sub calls it
// on a goroutine of its own: a panic in it (or in the parker) is
// recovered, logged with its stack and the record, and the message is
// nacked, as after a failed publish, so it comes back.
func (f *Forwarder) forward(ch *amqp.Channel, m *pubsub.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	log := f.Log.With("messageId", m.ID)
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic while forwarding a completion event; it comes back", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			m.Nack() // after an Ack, a no-op
		}
	}()
	id, status, err := identify(m)
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
	err = rabbitmq.PublishConfirmed(ctx, ch, f.Cfg.CompletedExchange, "", amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: MessageID(id, status), Body: m.Data,
	})
	if err != nil {
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
