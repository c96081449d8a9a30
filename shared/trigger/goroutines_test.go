package trigger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/trigger"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Issue 7's test 4, for DrainTriggers' long-running process (local/cmd/draintriggers:
// the trigger consumer and the completion forwarder side by side):
// 200 reports requested at once with MAX_IN_FLIGHT=8.
const (
	burstReports  = 200
	burstInFlight = 8
)

// 200 triggers at once through the real consumer and forwarder, in this
// process, against the real RabbitMQ, MariaDB and Redis (own queues,
// database and key prefix) and pstest. The test stands in for the rest of
// the pipeline: each report whose stage-1 message appears is marked
// SUCCESS, its hash deleted and its completion event published, as the
// aggregator does, which frees its slot for a throttled trigger.
//
// Checked: never more than 8 PROCESSING at any observed moment; every
// record SUCCESS and dispatched exactly once; every completion event
// forwarded once; no trigger and no Redis key left; and, once Run returned
// and both were closed, runtime.NumGoroutine back to the baseline taken
// after the test's own clients existed and before trigger.NewConsumer.
//
// Not parallel: trigger.NewConsumer finds pstest through PUBSUB_EMULATOR_HOST, and
// goroutines of tests running beside it would blur the count.
func TestConsumerKeepsInFlightLimit(t *testing.T) {
	ctx, cancelAll := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancelAll()
	id := testdb.UniqueName(t, "goroutines")
	db := testdb.New(t, "goroutines", record.DDL)
	var dbName string
	if err := db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	iso := stack.Isolation{ID: id, RedisAddr: "127.0.0.1:6379", AMQPURL: "amqp://guest:guest@127.0.0.1:5672/"}
	queues := iso.Queues()
	throttled := queues["TRIGGER_QUEUE"] + ".throttled"
	events := id + ".events"
	t.Cleanup(func() {
		if err := iso.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	srv := pstest.NewServer()
	t.Cleanup(func() { srv.Close() })
	for _, topic := range []string{topology.StageTopic(1), topology.TopicCompleted} {
		if _, err := srv.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/p/topics/" + topic}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.GServer.CreateSubscription(ctx, &pubsubpb.Subscription{Name: "projects/p/subscriptions/" + topology.SubCompletedAMQP,
		Topic: "projects/p/topics/" + topology.TopicCompleted, AckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"PUBSUB_EMULATOR_HOST": srv.Addr,
		"GOOGLE_CLOUD_PROJECT": "p",
		"RECORD_DSN":           testdb.Server() + dbName,
		"REDIS_ADDR":           iso.RedisAddr,
		"REDIS_KEY_PREFIX":     iso.KeyPrefix(),
		"AMQP_URL":             iso.AMQPURL,
		"COMPLETED_EXCHANGE":   iso.CompletedExchange(),
		"MAX_IN_FLIGHT":        strconv.Itoa(burstInFlight),
		"THROTTLE_QUEUE":       throttled,
		// Short, so the 25 rounds of 8 take seconds.
		"THROTTLE_DELAY": "200ms",
	}
	for k, v := range queues {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var cfg config.DrainTriggers
	if err := config.Load(ctx, &cfg); err != nil {
		t.Fatal(err)
	}

	// The test's own clients, each used once before the baseline so the
	// connections they keep are in it.
	repo := record.NewRepo(db)
	ids := make([]int64, 0, burstReports)
	for range burstReports {
		id, err := repo.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rdb, err := serverenv.OpenRedis(cfg.Redis)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := state.New(rdb, cfg.Redis.KeyPrefix, cfg.Redis.StateTTL)
	redisKeys := func() []string {
		t.Helper()
		keys, err := rdb.Keys(ctx, iso.KeyPrefix()+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if keys := redisKeys(); len(keys) != 0 {
		t.Fatalf("keys under a fresh prefix: %v", keys)
	}
	conn, err := amqp.Dial(iso.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := trigger.DeclareTrigger(ch, cfg.TriggerQueue); err != nil {
		t.Fatal(err)
	}
	// The upstream's side of the completion exchange.
	if err := completion.Declare(ch, cfg.CompletedExchange); err != nil {
		t.Fatal(err)
	}
	// Exclusive: gone with the test's connection (auto-delete needs a
	// consumer, and the test reads with basic.get).
	if _, err := ch.QueueDeclare(events, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(events, "", cfg.CompletedExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	// The throttle queue is ours, not the isolation's.
	t.Cleanup(func() {
		if _, err := ch.QueueDelete(throttled, false, false, false); err != nil {
			t.Errorf("delete %s: %v", throttled, err)
		}
	})
	for _, id := range ids {
		if err := ch.PublishWithContext(ctx, "", cfg.TriggerQueue, false, false, amqp.Publishing{Body: []byte(strconv.FormatInt(id, 10))}); err != nil {
			t.Fatal(err)
		}
	}

	baseline := runtime.NumGoroutine()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := trigger.NewConsumer(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	f, err := completion.NewForwarder(ctx, cfg, c.Dispatcher.Bus, log)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 2)
	go func() { runErr <- c.Run(runCtx) }()
	go func() { runErr <- f.Run(runCtx) }()
	stopped := false
	shutdown := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		for range 2 {
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
		if err := f.Close(); err != nil {
			t.Errorf("forwarder Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("consumer Close: %v", err)
		}
	}
	defer shutdown()

	// Stand in for the pipeline until every report is final, watching the
	// number PROCESSING and the goroutines.
	processing := record.Processing
	completed := map[int64]bool{}
	dispatches := map[int64]int{}
	var peakProcessing, peak int
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for len(completed) < burstReports {
		peak = max(peak, runtime.NumGoroutine())
		running, err := repo.List(ctx, record.Query{Status: &processing, Limit: burstReports})
		if err != nil {
			t.Fatal(err)
		}
		peakProcessing = max(peakProcessing, len(running))
		if len(running) > burstInFlight {
			t.Errorf("%d records PROCESSING at once, MAX_IN_FLIGHT is %d", len(running), burstInFlight)
		}
		clear(dispatches)
		for _, m := range srv.Messages() {
			if m.Attributes[message.AttrKind] != message.KindStage {
				continue
			}
			_, id, err := message.DecodeStage(m.Data)
			if err != nil {
				t.Fatalf("stage message %s: %v", m.Data, err)
			}
			dispatches[id]++
			if completed[id] {
				continue
			}
			if ok, err := repo.MarkSuccess(ctx, id, fmt.Sprintf("gs://reports/%d.csv", id), 1); err != nil || !ok {
				t.Fatalf("MarkSuccess %d = %v, %v; want a PROCESSING record made SUCCESS", id, ok, err)
			}
			if err := st.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			rec, err := repo.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := completion.FromRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			body, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			srv.Publish("projects/p/topics/"+topology.TopicCompleted, body, ev.Attributes())
			completed[id] = true
		}
		if len(completed) == burstReports {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d reports final when the test's time ran out", len(completed), burstReports)
		case <-tick.C:
		}
	}
	// Every event forwarded before the forwarder stops.
	for f.Forwarded() < burstReports {
		peak = max(peak, runtime.NumGoroutine())
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d completion events forwarded when the test's time ran out", f.Forwarded(), burstReports)
		case <-tick.C:
		}
	}
	shutdown()
	// Up to 15 s: Pub/Sub's client (v2.9.0, iterator.go) leaves one
	// goroutine per stream, streamKeepAliveHandler, blocked on a 10 s
	// ticker (serverMonitorInterval) after Receive returned; it notices
	// the stream ended on its next tick. Measured: 0.8 to 10 s.
	stoppedAt := time.Now()
	after, dump := settledGoroutines(baseline, 15*time.Second)
	t.Logf("goroutines: baseline %d, peak %d, after %d (%v after Close); at most %d PROCESSING observed",
		baseline, peak, after, time.Since(stoppedAt).Round(10*time.Millisecond), peakProcessing)
	if after > baseline {
		t.Errorf("%d goroutines after the consumer and forwarder stopped, %d before they started:\n%s", after, baseline, dump)
	}

	wantDispatches, wantEvents := map[int64]int{}, map[string]int{}
	for _, id := range ids {
		wantDispatches[id] = 1
		wantEvents[completion.MessageID(strconv.FormatInt(id, 10), "SUCCESS")] = 1
		rec, err := repo.Get(ctx, id)
		if err != nil || rec.Status != record.Success {
			t.Errorf("record %d is %v (%v), want SUCCESS", id, rec.Status, err)
		}
	}
	if diff := cmp.Diff(wantDispatches, dispatches); diff != "" {
		t.Errorf("stage-1 messages per record (-want +got):\n%s", diff)
	}
	gotEvents := map[string]int{}
	for {
		d, ok, err := ch.Get(events, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		gotEvents[d.MessageId]++
	}
	if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
		t.Errorf("completion events on the upstream's queue, by message ID (-want +got):\n%s", diff)
	}
	// Run returned only after every trigger in hand was settled; one not
	// acked would be back in its queue now that the connection is gone.
	for _, q := range []string{cfg.TriggerQueue, throttled, cfg.RetryQueue, cfg.WaitQueue, cfg.ParkedQueue} {
		qs, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect %s: %v", q, err)
		}
		if qs.Messages != 0 {
			t.Errorf("%d triggers left in %s", qs.Messages, q)
		}
	}
	if keys := redisKeys(); len(keys) != 0 {
		t.Errorf("Redis keys left: %v", keys)
	}
}

// settledGoroutines waits up to wait for the goroutine count to come down
// to baseline (connections and streams wind down after Close returns) and
// returns the count, with a dump of every goroutine if it stayed above.
func settledGoroutines(baseline int, wait time.Duration) (int, string) {
	deadline := time.Now().Add(wait)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return n, ""
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
				return n, err.Error()
			}
			return n, b.String()
		}
		time.Sleep(20 * time.Millisecond)
	}
}
