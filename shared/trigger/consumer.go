package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/rabbitmq"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Headers of our own on retried and parked triggers.
const (
	HeaderAttempt     = "x-dispatch-attempt" // 1 for the first delivery
	HeaderNotFound    = "x-record-missing"   // times the record was not found
	HeaderParkReason  = "x-park-reason"      // why a trigger was parked
	processingTimeout = 30 * time.Second     // one trigger's dispatch, end to end
)

// Consumer moves triggers from RabbitMQ to Pub/Sub. Every trigger is
// acked only after its outcome is durable: stage 1 confirmed by Pub/Sub,
// the record FAILED, or a copy confirmed by RabbitMQ in our retry, wait or
// parking queue. Retries wait in queues of ours (TTL + dead-letter back to
// the trigger queue), so a failing trigger never blocks the ones behind it.
type Consumer struct {
	Cfg        config.DrainTriggers
	Dispatcher *Dispatcher
	Log        *slog.Logger
	env        *serverenv.Env
	mem        *redis.Client // the memory check's

	handled atomic.Int64
	// waitingUntil (Unix nanoseconds) is when the last trigger this
	// consumer throttled comes back: until then, fresh triggers queue
	// behind it.
	waitingUntil atomic.Int64
	sessions     rabbitmq.Reconnect
}

// NewConsumer builds a Consumer and the clients it owns from cfg.
func NewConsumer(ctx context.Context, cfg config.DrainTriggers, log *slog.Logger) (*Consumer, error) {
	env, err := serverenv.Setup(ctx, serverenv.Options{PubSub: cfg.PubSub, Redis: cfg.Redis, DSN: cfg.Records.DSN, MaxConns: cfg.DB.MaxConns, TraceExporter: cfg.Log.TraceExporter,
		Storage: cfg.Completion.SignedURLTTL > 0})
	if err != nil {
		return nil, err
	}
	records := record.NewRepo(env.DB)
	ann, err := completion.NewAnnouncer(records, env.Bus, env.Storage, cfg.Completion)
	if err != nil {
		return nil, errors.Join(err, env.Close())
	}
	// The memory check needs the Redis client itself, which the state
	// store keeps to itself: a second small client, closed with env.
	mem, err := serverenv.OpenRedis(cfg.Redis)
	if err != nil {
		return nil, errors.Join(err, env.Close())
	}
	limits := Limits{MaxInFlight: cfg.MaxInFlight, Memory: &RedisMemory{Client: mem, HighWater: cfg.RedisMemoryHighWater}}
	return &Consumer{
		Cfg:        cfg,
		Dispatcher: &Dispatcher{Records: records, State: env.State, Bus: env.Bus, Limits: limits, Announce: ann, Planner: NewPlanner(cfg)},
		Log:        log.With(logging.KeySource, "drain-triggers"),
		env:        env,
		mem:        mem,
	}, nil
}

// Close closes the clients NewConsumer made.
func (c *Consumer) Close() error {
	if c.env == nil {
		return nil
	}
	return errors.Join(c.Dispatcher.Planner.Close(), c.mem.Close(), c.env.Close())
}

// Sessions counts the RabbitMQ sessions that got as far as consuming.
func (c *Consumer) Sessions() int64 { return c.sessions.Sessions() }

// LastError is the error that ended the last session, if any.
func (c *Consumer) LastError() error { return c.sessions.LastError() }

// Handled counts triggers acked since the consumer was made.
func (c *Consumer) Handled() int64 { return c.handled.Load() }

// DeclareTrigger declares the trigger queue as the upstream does (durable,
// no arguments). The upstream owns it: only the local stack, standing in
// for the upstream, calls this.
func DeclareTrigger(ch *amqp.Channel, queue string) error {
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", queue, err)
	}
	return nil
}

// Declare creates our own queues and checks that the trigger queue exists.
// The upstream owns the trigger queue and may have declared it with
// arguments (a quorum queue, say) that an active declaration of ours would
// contradict, failing every session with PRECONDITION_FAILED; so a
// deployed DrainTriggers declares it passively. Off the cloud DrainTriggers declares it,
// so `make up` works before any upstream has run.
func Declare(ch *amqp.Channel, cfg config.DrainTriggers) error {
	if config.Deployed() {
		if _, err := ch.QueueDeclarePassive(cfg.TriggerQueue, true, false, false, false, nil); err != nil {
			return fmt.Errorf("trigger queue %s does not exist on the broker (the upstream service declares it; check TRIGGER_QUEUE and the vhost in AMQP_URL): %w", cfg.TriggerQueue, err)
		}
	} else if err := DeclareTrigger(ch, cfg.TriggerQueue); err != nil {
		return err
	}
	for _, q := range []struct {
		name  string
		delay time.Duration
	}{{cfg.RetryQueue, cfg.RetryDelay}, {cfg.WaitQueue, cfg.NotFoundDelay}, {throttleQueue(cfg), cfg.ThrottleDelay}} {
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

// throttleQueue is cfg's throttle queue; config.Load fills the default in,
// a config.DrainTriggers built by hand may leave it empty.
func throttleQueue(cfg config.DrainTriggers) string {
	if cfg.ThrottleQueue != "" {
		return cfg.ThrottleQueue
	}
	return cfg.TriggerQueue + ".throttled"
}

// Run consumes until ctx ends, reconnecting when RabbitMQ goes away.
func (c *Consumer) Run(ctx context.Context) error {
	return c.sessions.Run(ctx, c.Log, "RabbitMQ session", c.session)
}

// session runs one connection until it fails or ctx ends; in-flight
// triggers finish before it returns.
func (c *Consumer) session(ctx context.Context, consuming func()) error {
	conn, err := rabbitmq.Dial(c.Cfg.AMQPURL, "report-drain-triggers")
	if err != nil {
		return err
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
	pub, err := rabbitmq.ConfirmChannel(conn)
	if err != nil {
		return err
	}
	deliveries, err := sub.ConsumeWithContext(ctx, c.Cfg.TriggerQueue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("amqp consume %s: %w", c.Cfg.TriggerQueue, err)
	}
	consuming()
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
			wg.Go(func() { c.handle(dl, pub) })
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

// stringHeaders returns the string-valued AMQP headers (where W3C trace
// context travels).
func stringHeaders(h amqp.Table) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// cameBackFrom reports whether RabbitMQ dead-lettered dl out of one of
// queues (its x-death header names them), i.e. whether our own retry
// headers on it were set by us. A publisher cannot forge that: RabbitMQ
// writes x-death itself, and a copy published straight to the trigger
// queue carries whatever headers its publisher chose.
func cameBackFrom(dl amqp.Delivery, queues ...string) bool {
	deaths, _ := dl.Headers["x-death"].([]any)
	for _, d := range deaths {
		t, _ := d.(amqp.Table)
		q, _ := t["queue"].(string)
		if slices.Contains(queues, q) {
			return true
		}
	}
	return false
}

// handle settles one delivery. It runs on its own context so a drain's
// deadline never abandons a trigger half-way. The class of Dispatch's
// error (package fault) decides the outcome; only a missing record, which
// the upstream may not have committed yet, is waited for separately. A
// panic in Dispatch (or in marking the record FAILED) is an error like
// any other, retried and in the end FAILED (or parked) by that policy; a
// panic anywhere else puts the trigger back in its queue.
func (c *Consumer) handle(dl amqp.Delivery, pub *amqp.Channel) {
	ctx, cancel := context.WithTimeout(context.Background(), processingTimeout)
	defer cancel()
	// The report's trace: the upstream's, from the trigger's headers, or
	// a new one; every later hop carries it in its message attributes.
	ctx, span := tracing.Start(tracing.Extract(ctx, stringHeaders(dl.Headers)), "DrainTriggers")
	defer span.End()
	log := tracing.Log(ctx, c.Log, c.Cfg.PubSub.ProjectID)
	defer func() {
		// The last resort: log has the record once it is known.
		if p := recover(); p != nil {
			log.Error("panic while settling a trigger; it goes back to its queue", "panic", fmt.Sprint(p), "stack", string(debug.Stack()), "body", fault.Body(dl.Body, 256))
			if err := dl.Nack(false, true); err != nil {
				log.Error("nack failed; RabbitMQ will redeliver on reconnect", "error", err)
			}
		}
	}()
	var id int64
	err := fault.Recovered(log, "reading the trigger", func() (err error) {
		id, err = ParseTrigger(dl.Body)
		return err
	})
	if err != nil {
		c.settle(dl, c.park(ctx, pub, dl, err.Error(), log), log)
		return
	}
	log = log.With(logging.KeyRecordID, id, logging.KeyStage, 0)
	attempt, missing := 1, 0
	if cameBackFrom(dl, c.Cfg.RetryQueue, c.Cfg.WaitQueue, throttleQueue(c.Cfg)) {
		attempt = max(headerInt(dl.Headers, HeaderAttempt), 1)
		missing = headerInt(dl.Headers, HeaderNotFound)
	}
	behind := !cameBackFrom(dl, throttleQueue(c.Cfg)) && time.Now().UnixNano() < c.waitingUntil.Load()

	var outcome Outcome
	err = fault.Recovered(log, "dispatch", func() (err error) {
		outcome, err = c.Dispatcher.Dispatch(ctx, id, behind, log)
		return err
	})
	if err == nil {
		log.Debug("trigger handled", "outcome", outcome.String())
		c.settle(dl, nil, log)
		return
	}
	if errors.Is(err, ErrThrottled) {
		// Not an attempt: the headers go back unchanged. Queue-level TTL
		// expires messages from the head, so waiting triggers come back
		// in the order they left.
		q := throttleQueue(c.Cfg)
		log.Info("report waits for capacity", "reason", err.Error(), "queue", q, "delay", c.Cfg.ThrottleDelay)
		c.waitingUntil.Store(time.Now().Add(c.Cfg.ThrottleDelay).UnixNano())
		c.settle(dl, c.republish(ctx, pub, q, dl, amqp.Table{HeaderAttempt: int32(attempt), HeaderNotFound: int32(missing)}), log)
		return
	}
	if errors.Is(err, record.ErrNotFound) {
		missing++
		if missing >= c.Cfg.NotFoundAttempts {
			reason := fmt.Sprintf("no record %d after %d attempts", id, missing)
			c.settle(dl, c.park(ctx, pub, dl, reason, log), log)
			return
		}
		log.Warn("no such record yet; retrying after a short wait", "attempt", missing, "delay", c.Cfg.NotFoundDelay)
		c.settle(dl, c.republish(ctx, pub, c.Cfg.WaitQueue, dl, amqp.Table{HeaderAttempt: int32(attempt), HeaderNotFound: int32(missing)}), log)
		return
	}
	switch fault.ClassOf(err) {
	case fault.Park:
		c.settle(dl, c.park(ctx, pub, dl, err.Error(), log), log)
	case fault.Fail:
		c.settle(dl, c.fail(ctx, pub, dl, id, err.Error(), log), log)
	default:
		if attempt >= c.Cfg.MaxAttempts {
			reason := failreason.DispatchExhausted.Text(attempt, err)
			c.settle(dl, c.fail(ctx, pub, dl, id, reason, log), log)
			return
		}
		// The sweeper judges a PROCESSING record without its hash by how
		// long it has been quiet: keep a record being retried visibly alive.
		// Touched before the log line, so whoever reads that line (an
		// operator, a test aging the record) finds the record touched.
		if _, terr := c.Dispatcher.Records.Touch(ctx, id, record.Processing); terr != nil {
			log.Warn("could not touch the record before retrying", "error", terr)
		}
		log.Warn("dispatch failed; retrying later", "error", err, "attempt", attempt, "delay", c.Cfg.RetryDelay)
		c.settle(dl, c.republish(ctx, pub, c.Cfg.RetryQueue, dl, amqp.Table{HeaderAttempt: int32(attempt + 1), HeaderNotFound: int32(missing)}), log)
	}
}

// fail ends the record FAILED; if even that fails, the trigger is parked
// with both reasons rather than retried forever.
func (c *Consumer) fail(ctx context.Context, pub *amqp.Channel, dl amqp.Delivery, id int64, reason string, log *slog.Logger) error {
	if err := fault.Recovered(log, "marking the record FAILED", func() error { return c.Dispatcher.Fail(ctx, id, reason, log) }); err != nil {
		return c.park(ctx, pub, dl, fmt.Sprintf("%s; marking FAILED (or announcing it) failed too: %v", reason, err), log)
	}
	return nil
}

// settle acks once the outcome is durable, or puts the trigger back.
func (c *Consumer) settle(dl amqp.Delivery, err error, log *slog.Logger) {
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
	log.Error("parking trigger", "reason", reason, "body", fault.Body(dl.Body, 256), "queue", c.Cfg.ParkedQueue)
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
	// A retried trigger stays in the report's trace.
	trace := map[string]string{}
	tracing.Inject(ctx, trace)
	for k, v := range trace {
		h[k] = v
	}
	return rabbitmq.PublishConfirmed(ctx, pub, "", queue, amqp.Publishing{
		Headers: h, ContentType: dl.ContentType, Body: dl.Body, DeliveryMode: amqp.Persistent, MessageId: dl.MessageId,
	})
}
