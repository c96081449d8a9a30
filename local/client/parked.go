package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Parked is one trigger in the parking queue.
type Parked struct {
	// Position is its place in the queue, from 1: what Requeue takes.
	Position    int       `json:"position"`
	Body        string    `json:"body"`
	Reason      string    `json:"reason"`
	MessageID   string    `json:"messageId,omitempty"`
	Timestamp   time.Time `json:"timestamp,omitzero"`
	Redelivered bool      `json:"-"`
}

// ErrNoParked means the parking queue holds no trigger at that position.
var ErrNoParked = errors.New("no parked trigger")

// Parked lists up to limit triggers of the parking queue, oldest first,
// leaving them there: it takes them unacked and gives them all back when
// its channel closes (RabbitMQ puts them back in their places).
func (c *Client) Parked(ctx context.Context, limit int) ([]Parked, error) {
	var out []Parked
	err := c.parked(ctx, limit, func(ch *amqp.Channel, ds []amqp.Delivery) error {
		for i, d := range ds {
			out = append(out, parkedOf(i+1, d))
		}
		return nil
	})
	return out, err
}

// Requeue moves the trigger at position n (as Parked lists them) back to
// the trigger queue, without its park reason and attempt counts so the
// shim gives it a fresh set of attempts, and acks it in the parking queue
// only after RabbitMQ confirmed the copy.
func (c *Client) Requeue(ctx context.Context, n int) (Parked, error) {
	if n < 1 {
		return Parked{}, fmt.Errorf("requeue: position %d: positions start at 1", n)
	}
	var moved Parked
	err := c.parked(ctx, n, func(ch *amqp.Channel, ds []amqp.Delivery) error {
		if len(ds) < n {
			return fmt.Errorf("%w at position %d of %s (it holds %d)", ErrNoParked, n, c.ParkedQueue, len(ds))
		}
		d := ds[n-1]
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
		moved = parkedOf(n, d)
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
		return fmt.Errorf("parking queue %s does not exist on RabbitMQ at %s (the shim declares it when it starts; check PARKED_QUEUE): %w", c.ParkedQueue, c.where(RabbitMQ), err)
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
	return Parked{Position: pos, Body: string(d.Body), Reason: reason, MessageID: d.MessageId, Timestamp: d.Timestamp, Redelivered: d.Redelivered}
}
