package completion_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// panickyParker stands in for the parking topic: it panics on its first
// call, as a buggy dependency would, and keeps the reasons of the others.
type panickyParker struct {
	mu      sync.Mutex
	calls   int
	reasons []string
}

func (p *panickyParker) Park(_ context.Context, _ *slog.Logger, data []byte, _ map[string]string, reason, _, _ string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls == 1 {
		panic("test parker panics on " + string(data))
	}
	p.reasons = append(p.reasons, reason)
	return nil
}

func (p *panickyParker) parked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.reasons...)
}

// A panic in the forwarder's Pub/Sub callback (here in the parker it was
// given, while it parks a message that is no completion event) runs on
// the Pub/Sub client's goroutine, where it would end the process: it
// must be recovered, logged with its stack, and the message nacked like
// after any failure, so it comes back and is parked on its next delivery;
// a completion event published beside it still reaches RabbitMQ. Against
// the real RabbitMQ (an exchange and queue of the test's own) and pstest.
func TestForwarderRecoversPanic(t *testing.T) {
	t.Parallel()
	testdb.NeedRabbitMQ(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	name := testdb.UniqueName(t, "forward")
	cfg := config.DrainTriggers{PubSub: config.PubSub{ProjectID: testenv.Project}, AMQPURL: "amqp://guest:guest@127.0.0.1:5672/",
		CompletedExchange: name + ".report.completed", Prefetch: 4}

	conn, err := amqp.Dial(cfg.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := completion.Declare(ch, cfg.CompletedExchange); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ch.ExchangeDelete(cfg.CompletedExchange, false, false); err != nil {
			t.Errorf("delete exchange: %v", err)
		}
	})
	q, err := ch.QueueDeclare("", false, true, true, false, nil) // exclusive: gone with conn
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "", cfg.CompletedExchange, false, nil); err != nil {
		t.Fatal(err)
	}

	psc, opts := testenv.PubSub(t, topology.TopicCompleted)
	testenv.Subscribe(t, psc, "projects/p/subscriptions/"+topology.SubCompletedAMQP, topology.TopicCompleted)
	var logs testenv.LogBuffer
	parker := &panickyParker{}
	f, err := completion.NewForwarder(ctx, cfg, parker, slog.New(slog.NewJSONHandler(&logs, nil)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- f.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	pub := psc.Publisher(topology.TopicCompleted)
	defer pub.Stop()
	event := `{"v":1,"recordId":7,"reportType":"withdraw_by_tag","status":"FAILED","failReason":"x","finishedAt":"2026-01-01T00:00:00Z"}`
	for _, m := range []*pubsub.Message{
		{Data: []byte("not an event")},
		{Data: []byte(event), Attributes: map[string]string{completion.AttrRecordID: "7", completion.AttrStatus: "FAILED"}},
	} {
		if _, err := pub.Publish(ctx, m).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}

	waitFor(ctx, t, "the message that is no event to be parked after the panic", func() bool { return len(parker.parked()) == 1 })
	if diff := cmp.Diff([]string{completion.ForwarderName + ": not a completion event: invalid character 'o' in literal null (expecting 'u')"}, parker.parked()); diff != "" {
		t.Errorf("parked (-want +got):\n%s", diff)
	}
	var got []string
	waitFor(ctx, t, "the completion event on RabbitMQ", func() bool {
		d, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, d.MessageId+" "+string(d.Body))
		}
		return len(got) == 1
	})
	if diff := cmp.Diff([]string{"7-FAILED " + event}, got); diff != "" {
		t.Errorf("events on RabbitMQ (-want +got):\n%s", diff)
	}

	var recovered int
	for line := range strings.Lines(logs.String()) {
		var l struct {
			Msg, Panic, Stack string
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(l.Msg, "panic") {
			recovered++
			if l.Panic != "test parker panics on not an event" || !strings.Contains(l.Stack, "(*panickyParker).Park") {
				t.Errorf("panic logged as %q with stack %q; want the parker's panic and its stack", l.Panic, l.Stack)
			}
		}
	}
	if recovered != 1 {
		t.Errorf("%d panics logged, want 1:\n%s", recovered, logs.String())
	}
}

// waitFor polls cond until it holds, failing the test if ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
