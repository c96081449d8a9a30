package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Where a message is parked (Parked.Where).
const (
	InRabbitMQ = "rabbitmq" // a trigger in the parking queue (PARKED_QUEUE)
	InPubSub   = "pubsub"   // a message on the parked topic, held by its pull subscription
)

// PubSubParked is the Pub/Sub side of parked and requeue, as an operator
// knows it.
const PubSubParked Server = "Pub/Sub (the parked messages)"

// Parked is one parked trigger (RabbitMQ) or message (Pub/Sub).
type Parked struct {
	// Where is InRabbitMQ or InPubSub.
	Where string `json:"where"`
	// Requeue is what -requeue takes to move it back: "rabbitmq:" and the
	// trigger's digest (TriggerKey), or "pubsub:" and the message ID. It
	// names the message itself, never its place in a listing: a listing
	// running at the same time holds some triggers, and the rest shift.
	Requeue string `json:"requeue"`
	// Position is a trigger's place in this listing, from 1: for reading
	// only, since another listing shifts it.
	Position int `json:"position,omitempty"`
	// Body is a trigger's body; a message's, cut to 512 bytes.
	Body      string    `json:"body"`
	Reason    string    `json:"reason"`
	MessageID string    `json:"messageId,omitempty"`
	Timestamp time.Time `json:"timestamp,omitzero"`
	// Handler and Subscription say which function parked a message, and
	// the subscription (without the deployment prefix) it came from.
	Handler      string `json:"handler,omitempty"`
	Subscription string `json:"subscription,omitempty"`
	// RecordID is the record a message names (its orig.recordId), if any.
	RecordID    int64 `json:"recordId,omitempty"`
	Redelivered bool  `json:"-"`
}

// ErrNoParked means no parked trigger or message has that key or ID.
var ErrNoParked = errors.New("no parked trigger")

// TriggerKey names a parked trigger by its content: a digest of its body,
// message ID, timestamp, content type and headers (the park reason and
// the trace context among them, so two parkings of one body differ).
// Triggers with equal keys are identical, so moving either is the same.
func TriggerKey(d amqp.Delivery) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	field(d.MessageId)
	field(d.Timestamp.UTC().Format(time.RFC3339Nano))
	field(d.ContentType)
	field(string(d.Body))
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field(k)
		field(fmt.Sprintf("%T %v", d.Headers[k], d.Headers[k]))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Parked lists up to limit triggers of the parking queue, oldest first,
// then up to limit messages of the parked topic, oldest first, leaving
// all of them there (see ParkedTriggers and ParkedMessages).
func (c *Client) Parked(ctx context.Context, limit int) ([]Parked, error) {
	ts, err := c.ParkedTriggers(ctx, limit)
	if err != nil {
		return nil, err
	}
	ms, err := c.ParkedMessages(ctx, limit)
	if err != nil {
		return nil, err
	}
	return append(ts, ms...), nil
}

// ParkedTriggers lists up to limit triggers of the parking queue, oldest
// first, leaving them there: it takes them unacked and gives them all back
// when its channel closes (RabbitMQ puts them back in their places).
func (c *Client) ParkedTriggers(ctx context.Context, limit int) ([]Parked, error) {
	var out []Parked
	err := c.parked(ctx, limit, func(ch *amqp.Channel, ds []amqp.Delivery) error {
		for i, d := range ds {
			out = append(out, parkedOf(i+1, d))
		}
		return nil
	})
	return out, err
}

// Requeue moves the parked trigger whose TriggerKey is key back to the
// trigger queue, without its park reason and attempt counts so DrainTriggers
// gives it a fresh set of attempts, and acks it in the parking queue only
// after RabbitMQ confirmed the copy. It looks through up to requeueScan
// triggers; one that another listing holds at that moment is not seen.
func (c *Client) Requeue(ctx context.Context, key string) (Parked, error) {
	var moved Parked
	err := c.parked(ctx, requeueScan, func(ch *amqp.Channel, ds []amqp.Delivery) error {
		i := slices.IndexFunc(ds, func(d amqp.Delivery) bool { return TriggerKey(d) == key })
		if i < 0 {
			return fmt.Errorf("%w %s:%s in %s (it holds %d that this saw; another `reportctl parked` may hold it right now, or it was requeued already; `reportctl parked` lists them)", ErrNoParked, InRabbitMQ, key, c.ParkedQueue, len(ds))
		}
		d := ds[i]
		h := amqp.Table{}
		for k, v := range d.Headers {
			h[k] = v
		}
		for _, k := range []string{trigger.HeaderParkReason, trigger.HeaderAttempt, trigger.HeaderNotFound} {
			delete(h, k)
		}
		// The trigger queue exists (the trigger came from it); publishing
		// through the default exchange needs no declaration of ours.
		if err := publishConfirmed(ctx, ch, c.TriggerQueue, amqp.Publishing{
			Headers: h, ContentType: d.ContentType, Body: d.Body, DeliveryMode: amqp.Persistent, MessageId: d.MessageId,
		}); err != nil {
			return err
		}
		if err := d.Ack(false); err != nil {
			return fmt.Errorf("amqp ack in %s (the trigger is now in both queues): %w", c.ParkedQueue, err)
		}
		moved = parkedOf(i+1, d)
		return nil
	})
	return moved, err
}

// parked takes up to limit deliveries from the parking queue, unacked,
// calls f, and closes the channel, which returns every delivery f did not
// ack to the queue.
func (c *Client) parked(ctx context.Context, limit int, f func(*amqp.Channel, []amqp.Delivery) error) error {
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclarePassive(c.ParkedQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("parking queue %s does not exist on RabbitMQ at %s (DrainTriggers declares it when it starts; check PARKED_QUEUE): %w", c.ParkedQueue, c.where(RabbitMQ), err)
	}
	var ds []amqp.Delivery
	for len(ds) < limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(c.ParkedQueue, false)
		if err != nil {
			return fmt.Errorf("amqp get from %s: %w", c.ParkedQueue, err)
		}
		if !ok {
			break
		}
		ds = append(ds, d)
	}
	return f(ch, ds)
}

func parkedOf(pos int, d amqp.Delivery) Parked {
	reason, _ := d.Headers[trigger.HeaderParkReason].(string)
	return Parked{Where: InRabbitMQ, Requeue: InRabbitMQ + ":" + TriggerKey(d), Position: pos, Body: string(d.Body), Reason: reason, MessageID: d.MessageId, Timestamp: d.Timestamp, Redelivered: d.Redelivered}
}

// pubsubTimeout bounds the Pub/Sub side of parked and requeue: the client
// retries an unreachable server until its context ends, and a person at a
// terminal should hear about it before then.
const pubsubTimeout = 15 * time.Second

// requeueScan is how many parked triggers Requeue, or messages
// RequeueMessage, looks through for the one it was asked for.
const requeueScan = 1000

// ParkedMessages lists up to limit messages of the parked topic
// (topology.TopicParked, through its pull subscription topology.SubParked,
// both under PUBSUB_NAME_PREFIX), oldest first, leaving them there: it
// pulls them and gives them back at once (ack deadline 0), so the next
// pull gets them again.
func (c *Client) ParkedMessages(ctx context.Context, limit int) ([]Parked, error) {
	var out []Parked
	err := c.parkedPubSub(ctx, limit, "", func(_ *pubsub.Client, ms []*pubsubpb.ReceivedMessage) (string, error) {
		for _, m := range ms {
			out = append(out, c.parkedMessage(m))
		}
		return "", nil
	})
	return out, err
}

// RequeueMessage moves parked message id back after a fix: it publishes
// its body with its own attributes (the orig.* ones, without the park
// ones) to the topic the subscription it was parked from reads
// (topology.Functions), and acks it in the parked subscription only after
// Pub/Sub confirmed the copy. It returns the message and that topic
// (with the deployment prefix).
func (c *Client) RequeueMessage(ctx context.Context, id string) (Parked, string, error) {
	var moved Parked
	var topic string
	err := c.parkedPubSub(ctx, requeueScan, id, func(pc *pubsub.Client, ms []*pubsubpb.ReceivedMessage) (string, error) {
		var m *pubsubpb.ReceivedMessage
		for _, x := range ms {
			if x.GetMessage().GetMessageId() == id {
				m = x
			}
		}
		names := topology.Names{Prefix: c.PubSub.NamePrefix}
		if m == nil {
			return "", fmt.Errorf("%w: no message %s in subscription %s (it held %d; `reportctl parked` lists them)", ErrNoParked, id, names.Sub(topology.SubParked), len(ms))
		}
		p := c.parkedMessage(m)
		fn, ok := topology.BySubscription(p.Subscription)
		if p.Subscription == "" || !ok {
			return "", fmt.Errorf("message %s was parked from subscription %q, which no function reads: there is no topic to requeue it to (it stays parked)", id, m.GetMessage().GetAttributes()[bus.AttrParkSubscription])
		}
		attrs := map[string]string{}
		for k, v := range m.GetMessage().GetAttributes() {
			if orig, ok := strings.CutPrefix(k, "orig."); ok {
				attrs[orig] = v
			}
		}
		for _, k := range []string{bus.AttrParkReason, bus.AttrParkHandler, bus.AttrParkSubscription} {
			delete(attrs, k)
		}
		topic = names.Topic(fn.Topic)
		full := "projects/" + c.PubSub.ProjectID + "/topics/" + topic
		if _, err := pc.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{Topic: full, Messages: []*pubsubpb.PubsubMessage{{Data: m.GetMessage().GetData(), Attributes: attrs}}}); err != nil {
			return "", fmt.Errorf("pubsub publish to %s: %w", full, err)
		}
		if err := pc.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: c.parkedSub(), AckIds: []string{m.GetAckId()}}); err != nil {
			return "", fmt.Errorf("pubsub ack in %s (the message is now both requeued and still parked): %w", c.parkedSub(), err)
		}
		moved = p
		return m.GetAckId(), nil
	})
	return moved, topic, err
}

// parkedSub is the full name of the parked topic's pull subscription.
func (c *Client) parkedSub() string {
	return "projects/" + c.PubSub.ProjectID + "/subscriptions/" + topology.Names{Prefix: c.PubSub.NamePrefix}.Sub(topology.SubParked)
}

// parkedPubSub pulls up to limit messages of the parked subscription (or
// until it finds message want), oldest first, calls f, and gives back every
// message but the one whose ack ID f returns.
func (c *Client) parkedPubSub(ctx context.Context, limit int, want string, f func(*pubsub.Client, []*pubsubpb.ReceivedMessage) (string, error)) (err error) {
	ctx, cancel := context.WithTimeout(ctx, pubsubTimeout)
	defer cancel()
	unreachable := func(err error) error {
		if ctx.Err() != nil || dialFailed(err) {
			return &Unreachable{Server: PubSubParked, Where: c.parkedWhere(), Err: err}
		}
		return err
	}
	pc, err := pubsub.NewClient(ctx, c.PubSub.ProjectID)
	if err != nil {
		return &Unreachable{Server: PubSubParked, Where: c.parkedWhere(), Err: fmt.Errorf("pubsub.NewClient: %w", err), Answered: true}
	}
	defer pc.Close()
	sub := c.parkedSub()
	var ms []*pubsubpb.ReceivedMessage
	defer func() {
		// Give back what we hold, even when ctx has ended.
		var ids []string
		for _, m := range ms {
			if m.GetAckId() != "" {
				ids = append(ids, m.GetAckId())
			}
		}
		if len(ids) == 0 {
			return
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), pubsubTimeout)
		defer rcancel()
		if rerr := pc.SubscriptionAdminClient.ModifyAckDeadline(rctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: sub, AckIds: ids, AckDeadlineSeconds: 0}); rerr != nil && err == nil {
			err = fmt.Errorf("pubsub give back %d parked messages to %s (they come back once their ack deadline passes): %w", len(ids), sub, rerr)
		}
	}()
	found := false
	for len(ms) < limit && !found {
		resp, err := pc.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{
			Subscription: sub, MaxMessages: int32(min(limit-len(ms), 1000)),
			// Answer at once when nothing is there: the end of the list.
			ReturnImmediately: true,
		})
		if err != nil {
			return unreachable(fmt.Errorf("pubsub pull from %s: %w", sub, err))
		}
		got := resp.GetReceivedMessages()
		if len(got) == 0 {
			break
		}
		ms = append(ms, got...)
		for _, m := range got {
			found = found || (want != "" && m.GetMessage().GetMessageId() == want)
		}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		return ms[i].GetMessage().GetPublishTime().AsTime().Before(ms[j].GetMessage().GetPublishTime().AsTime())
	})
	done, err := f(pc, ms)
	if done != "" {
		for i, m := range ms {
			if m.GetAckId() == done {
				ms = append(ms[:i:i], ms[i+1:]...)
				break
			}
		}
	}
	if err != nil {
		return unreachable(err)
	}
	return nil
}

// parkedMessage reads a parked message's attributes (shared/bus Park).
func (c *Client) parkedMessage(m *pubsubpb.ReceivedMessage) Parked {
	msg := m.GetMessage()
	a := msg.GetAttributes()
	p := Parked{
		Where: InPubSub, Requeue: InPubSub + ":" + msg.GetMessageId(),
		Body: fault.Body(msg.GetData(), 512), Reason: a[bus.AttrParkReason], MessageID: msg.GetMessageId(),
		Handler: a[bus.AttrParkHandler], Redelivered: m.GetDeliveryAttempt() > 1,
	}
	if t := msg.GetPublishTime(); t != nil {
		p.Timestamp = t.AsTime()
	}
	// Push deliveries name the full subscription; keep the short name.
	s := a[bus.AttrParkSubscription]
	if i := strings.LastIndex(s, "/subscriptions/"); i >= 0 {
		s = s[i+len("/subscriptions/"):]
	}
	if short, ok := strings.CutPrefix(s, c.PubSub.NamePrefix); ok {
		s = short
	}
	p.Subscription = s
	if id, err := strconv.ParseInt(a["orig."+message.AttrRecordID], 10, 64); err == nil {
		p.RecordID = id
	}
	return p
}

// parkedWhere describes where the parked messages are looked for.
func (c *Client) parkedWhere() string {
	return strings.Replace(pubsubWhere(c.PubSub), "topic "+topology.Names{Prefix: c.PubSub.NamePrefix}.Topic(topology.TopicCompleted),
		"subscription "+topology.Names{Prefix: c.PubSub.NamePrefix}.Sub(topology.SubParked)+" (PUBSUB_NAME_PREFIX)", 1)
}
