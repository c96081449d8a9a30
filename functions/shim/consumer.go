package shim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dispatch"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/record"
)

// Headers of our own on retried and parked triggers.
const (
	HeaderAttempt     = "x-dispatch-attempt" // 1 for the first delivery
	HeaderNotFound    = "x-record-missing"   // times the record was not found
	HeaderParkReason  = "x-park-reason"      // why a trigger was parked
	processingTimeout = 30 * time.Second     // one trigger's dispatch, end to end
	reconnectMax      = 10 * time.Second     // backoff cap when RabbitMQ is away
)

// Consumer moves triggers from RabbitMQ to Pub/Sub. Every trigger is
// acked only after its outcome is durable: stage 1 confirmed by Pub/Sub,
// the record FAILED, or a copy confirmed by RabbitMQ in our retry, wait or
// parking queue. Retries wait in queues of ours (TTL + dead-letter back to
// the trigger queue), so a failing trigger never blocks the ones behind it.
type Consumer struct {
	Cfg        config.Shim
	Dispatcher *dispatch.Dispatcher
	Log        *slog.Logger

	handled  atomic.Int64
	sessions atomic.Int64 // consuming sessions started
	lastErr  atomic.Value // error of the last failed session
}

// Sessions counts the RabbitMQ sessions that got as far as consuming.
func (c *Consumer) Sessions() int64 { return c.sessions.Load() }

// LastError is the error that ended the last session, if any.
func (c *Consumer) LastError() error {
	if e, ok := c.lastErr.Load().(error); ok {
		return e
	}
	return nil
}

// Handled counts triggers acked since the consumer was made.
func (c *Consumer) Handled() int64 { return c.handled.Load() }

// Declare creates our queues; the trigger queue as upstream declares it
// (durable, no arguments).
func Declare(ch *amqp.Channel, cfg config.Shim) error {
	if _, err := ch.QueueDeclare(cfg.TriggerQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", cfg.TriggerQueue, err)
	}
	for _, q := range []struct {
		name  string
		delay time.Duration
	}{{cfg.RetryQueue, cfg.RetryDelay}, {cfg.WaitQueue, cfg.NotFoundDelay}} {
		args := amqp.Table{
			"x-message-ttl":             q.delay.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": cfg.TriggerQueue,
		}
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare %s (a queue of that name with other arguments exists? delete it or rename it): %w", q.name, err)
		}
	}
	if _, err := ch.QueueDeclare(cfg.ParkedQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", cfg.ParkedQueue, err)
	}
	return nil
}

// Run consumes until ctx ends, reconnecting when RabbitMQ goes away.
func (c *Consumer) Run(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.lastErr.Store(err)
		c.Log.Warn("RabbitMQ session ended; reconnecting", "error", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, reconnectMax)
	}
}

// session runs one connection until it fails or ctx ends; in-flight
// triggers finish before it returns.
func (c *Consumer) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(c.Cfg.AMQPURL, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "report-mq1-shim"}})
	if err != nil {
		return fmt.Errorf("amqp dial: %w", err)
	}
	defer conn.Close()
	sub, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	if err := Declare(sub, c.Cfg); err != nil {
		return err
	}
	if err := sub.Qos(c.Cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("amqp qos: %w", err)
	}
	pub, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("amqp channel: %w", err)
	}
	if err := pub.Confirm(false); err != nil {
		return fmt.Errorf("amqp confirm mode: %w", err)
	}
	deliveries, err := sub.ConsumeWithContext(ctx, c.Cfg.TriggerQueue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("amqp consume %s: %w", c.Cfg.TriggerQueue, err)
	}
	c.sessions.Add(1)
	c.Log.Info("consuming triggers", "queue", c.Cfg.TriggerQueue)
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))

	// One goroutine per delivery, bounded by the prefetch window.
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-closed:
			return fmt.Errorf("amqp connection closed: %v", e)
		case dl, ok := <-deliveries:
			if !ok {
				return errors.New("amqp delivery channel closed")
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.handle(dl, pub)
			}()
		}
	}
}

func headerInt(h amqp.Table, key string) int {
	switch v := h[key].(type) {
	case int32:
		return int(v)
	case int64:
		return int(v)
	case int:
		return v
	}
	return 0
}

// handle settles one delivery. It runs on its own context so a drain's
// deadline never abandons a trigger half-way.
func (c *Consumer) handle(dl amqp.Delivery, pub *amqp.Channel) {
	ctx, cancel := context.WithTimeout(context.Background(), processingTimeout)
	defer cancel()
	log := c.Log
	id, err := dispatch.ParseTrigger(dl.Body)
	if err != nil {
		c.settle(ctx, dl, c.park(ctx, pub, dl, err.Error(), log), log)
		return
	}
	log = log.With(logging.KeyRecordID, id, logging.KeyStage, 0)
	attempt := max(headerInt(dl.Headers, HeaderAttempt), 1)
	missing := headerInt(dl.Headers, HeaderNotFound)

	outcome, err := c.Dispatcher.Dispatch(ctx, id, log)
	switch {
	case err == nil:
		log.Debug("trigger handled", "outcome", outcome.String())
		c.settle(ctx, dl, nil, log)
	case errors.Is(err, record.ErrNotFound):
		missing++
		if missing >= c.Cfg.NotFoundAttempts {
			reason := fmt.Sprintf("no record %d after %d attempts", id, missing)
			c.settle(ctx, dl, c.park(ctx, pub, dl, reason, log), log)
			return
		}
		log.Warn("no such record yet; retrying after a short wait", "attempt", missing, "delay", c.Cfg.NotFoundDelay)
		c.settle(ctx, dl, c.republish(ctx, pub, c.Cfg.WaitQueue, dl, amqp.Table{HeaderAttempt: int32(attempt), HeaderNotFound: int32(missing)}), log)
	case attempt >= c.Cfg.MaxAttempts:
		reason := fmt.Sprintf("MQ1 shim could not dispatch the report after %d attempts: %v", attempt, err)
		ferr := c.Dispatcher.Fail(ctx, id, reason, log)
		if ferr != nil {
			ferr = c.park(ctx, pub, dl, fmt.Sprintf("%s; marking FAILED failed too: %v", reason, ferr), log)
		}
		c.settle(ctx, dl, ferr, log)
	default:
		log.Warn("dispatch failed; retrying later", "error", err, "attempt", attempt, "delay", c.Cfg.RetryDelay)
		c.settle(ctx, dl, c.republish(ctx, pub, c.Cfg.RetryQueue, dl, amqp.Table{HeaderAttempt: int32(attempt + 1), HeaderNotFound: int32(missing)}), log)
	}
}

// settle acks once the outcome is durable, or puts the trigger back.
func (c *Consumer) settle(_ context.Context, dl amqp.Delivery, err error, log *slog.Logger) {
	if err != nil {
		log.Error("could not settle trigger; requeueing", "error", err)
		if nerr := dl.Nack(false, true); nerr != nil {
			log.Error("nack failed; RabbitMQ will redeliver on reconnect", "error", nerr)
		}
		return
	}
	if err := dl.Ack(false); err != nil {
		log.Error("ack failed; RabbitMQ will redeliver", "error", err)
		return
	}
	c.handled.Add(1)
}

func (c *Consumer) park(ctx context.Context, pub *amqp.Channel, dl amqp.Delivery, reason string, log *slog.Logger) error {
	log.Error("parking trigger", "reason", reason, "body", bus.Truncate(dl.Body, 256), "queue", c.Cfg.ParkedQueue)
	return c.republish(ctx, pub, c.Cfg.ParkedQueue, dl, amqp.Table{HeaderParkReason: reason})
}

// republish copies the trigger to queue with extra headers and waits for
// RabbitMQ's confirm.
func (c *Consumer) republish(ctx context.Context, pub *amqp.Channel, queue string, dl amqp.Delivery, extra amqp.Table) error {
	h := amqp.Table{}
	for k, v := range dl.Headers {
		h[k] = v
	}
	for k, v := range extra {
		h[k] = v
	}
	conf, err := pub.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, amqp.Publishing{
		Headers: h, ContentType: dl.ContentType, Body: dl.Body, DeliveryMode: amqp.Persistent, MessageId: dl.MessageId,
	})
	if err != nil {
		return fmt.Errorf("amqp publish to %s: %w", queue, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("amqp confirm from %s: %w", queue, err)
	}
	if !ok {
		return fmt.Errorf("amqp publish to %s: nacked by broker", queue)
	}
	return nil
}
