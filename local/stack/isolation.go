package stack

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/schema"
)

// Isolation gives one run (a test, a benchmark) names of its own on the
// shared servers: its databases, a Redis key prefix and RabbitMQ queues, so
// runs can go on side by side. Env hands them to the processes; Cleanup
// removes the keys and queues the run left (the caller owns the databases).
type Isolation struct {
	ID        string // unique, e.g. "e2e_1a2b3c"
	DSNs      schema.DSNs
	RedisAddr string
	AMQPURL   string
}

// KeyPrefix is the run's REDIS_KEY_PREFIX.
func (i Isolation) KeyPrefix() string { return i.ID + ":" }

// Queues maps DrainTriggers' queue variables to the run's queue names.
func (i Isolation) Queues() map[string]string {
	return map[string]string{
		"TRIGGER_QUEUE":  i.ID + ".report.trigger",
		"RETRY_QUEUE":    i.ID + ".report.trigger.retry",
		"WAIT_QUEUE":     i.ID + ".report.trigger.wait",
		"PARKED_QUEUE":   i.ID + ".report.trigger.parked",
		"THROTTLE_QUEUE": i.ID + ".report.trigger.throttled",
	}
}

// CompletedExchange is the run's COMPLETED_EXCHANGE.
func (i Isolation) CompletedExchange() string { return i.ID + ".report.completed" }

// Env is what every process of the run needs: the DSNs, Redis, RabbitMQ,
// the queue and exchange names, as KEY=VALUE.
func (i Isolation) Env() []string {
	env := []string{
		"RECORD_DSN=" + i.DSNs.Record,
		"REDIS_ADDR=" + i.RedisAddr,
		"REDIS_KEY_PREFIX=" + i.KeyPrefix(),
		"AMQP_URL=" + i.AMQPURL,
		"COMPLETED_EXCHANGE=" + i.CompletedExchange(),
	}
	for _, db := range report.Databases() {
		env = append(env, report.DSNEnv(db)+"="+i.DSNs.Sources[db])
	}
	for k, v := range i.Queues() {
		env = append(env, k+"="+v)
	}
	return env
}

// Cleanup deletes the run's Redis keys, queues and exchange.
func (i Isolation) Cleanup(ctx context.Context) error {
	var errs []error
	rdb := redis.NewClient(&redis.Options{Addr: i.RedisAddr})
	defer rdb.Close()
	var keys []string
	iter := rdb.Scan(ctx, 0, i.KeyPrefix()+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		errs = append(errs, fmt.Errorf("redis scan %s*: %w", i.KeyPrefix(), err))
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			errs = append(errs, fmt.Errorf("redis del: %w", err))
		}
	}
	conn, err := amqp.Dial(i.AMQPURL)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("amqp dial: %w", err))...)
	}
	defer conn.Close()
	for _, q := range i.Queues() {
		// A failed delete closes the channel, so each gets its own.
		ch, err := conn.Channel()
		if err != nil {
			errs = append(errs, fmt.Errorf("amqp channel: %w", err))
			break
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("delete queue %s: %w", q, err))
		}
		ch.Close()
	}
	if ch, err := conn.Channel(); err != nil {
		errs = append(errs, fmt.Errorf("amqp channel: %w", err))
	} else {
		// Deleting an exchange that was never declared is no error.
		if err := ch.ExchangeDelete(i.CompletedExchange(), false, false); err != nil {
			errs = append(errs, fmt.Errorf("delete exchange %s: %w", i.CompletedExchange(), err))
		}
		ch.Close()
	}
	return errors.Join(errs...)
}
