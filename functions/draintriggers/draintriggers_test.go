package draintriggers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

const amqpURL = "amqp://guest:guest@127.0.0.1:5672/"

// The scheduled DrainTriggers function consumes for DRAIN_FOR, dispatches
// what it finds and reports how many triggers it handled. Not parallel:
// the handler reads its config from the process environment.
func TestDrainTriggers(t *testing.T) {
	ctx := context.Background()
	id := testdb.UniqueName(t, "draintriggerstest")
	iso := stack.Isolation{ID: id, DSNs: testdb.Pipeline(t, id), RedisAddr: "127.0.0.1:6379", AMQPURL: amqpURL}
	dsns := iso.DSNs
	db, err := serverenv.OpenDB(dsns.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	repo := record.NewRepo(db)
	recID, err := repo.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}

	srv := pstest.NewServer()
	defer srv.Close()
	// pstest's Publish helper creates topics on the fly only for its own
	// calls; create the stage-1 topic DrainTriggers publishes to.
	srv.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/p/topics/" + topology.StageTopic(1)})
	// And the completion topic with the forwarder's subscription, holding
	// one event for the drain to forward.
	if _, err := srv.GServer.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/p/topics/" + topology.TopicCompleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.GServer.CreateSubscription(ctx, &pubsubpb.Subscription{Name: "projects/p/subscriptions/" + topology.SubCompletedAMQP,
		Topic: "projects/p/topics/" + topology.TopicCompleted, AckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	event := `{"v":1,"recordId":7,"reportType":"withdraw_by_tag","status":"FAILED","failReason":"x","finishedAt":"2026-01-02T03:04:05.678Z"}`
	srv.Publish("projects/p/topics/"+topology.TopicCompleted, []byte(event), map[string]string{"recordId": "7", "status": "FAILED"})

	for _, kv := range append(iso.Env(), "PUBSUB_EMULATOR_HOST="+srv.Addr, "GOOGLE_CLOUD_PROJECT=p", "DRAIN_FOR=2s") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Cleanup(func() {
		if err := iso.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	queue := iso.Queues()["TRIGGER_QUEUE"]
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// The upstream's side of the completion exchange: a queue bound to it.
	events := id + ".events"
	if err := completion.Declare(ch, iso.CompletedExchange()); err != nil {
		t.Fatal(err)
	}
	// Exclusive: gone with the connection (auto-delete never fires for a
	// queue only read with basic.get).
	if _, err := ch.QueueDeclare(events, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(events, "", iso.CompletedExchange(), false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, "", queue, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(recID))}); err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	start := time.Now()
	New().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got map[string]int64
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["handled"] != 1 || got["forwarded"] != 1 {
		t.Errorf("body %s, want {\"handled\":1,\"forwarded\":1}", rec.Body)
	}
	fwd, ok, err := ch.Get(events, true)
	if err != nil || !ok {
		t.Fatalf("no completion event on the bound queue (%v)", err)
	}
	if string(fwd.Body) != event || fwd.MessageId != "7-FAILED" || fwd.ContentType != "application/json" || fwd.DeliveryMode != amqp.Persistent {
		t.Errorf("forwarded event: body %s message_id %q content type %q delivery mode %d", fwd.Body, fwd.MessageId, fwd.ContentType, fwd.DeliveryMode)
	}
	if elapsed := time.Since(start); elapsed < 2*time.Second {
		t.Errorf("drain returned after %s, before DRAIN_FOR", elapsed)
	}
	r, err := repo.Get(ctx, recID)
	if err != nil || r.Status != record.Processing {
		t.Errorf("record %+v (%v), want PROCESSING", r, err)
	}
	var stage []*pstest.Message
	for _, m := range srv.Messages() {
		if m.Attributes["recordId"] != "7" {
			stage = append(stage, m)
		}
	}
	if len(stage) != 1 {
		t.Fatalf("%d messages published, want 1", len(stage))
	}
	m, id2, err := message.DecodeStage(stage[0].Data)
	if err != nil || id2 != recID || m.Stage != 1 || len(m.Sources) != 2 {
		t.Errorf("stage message %+v (%v)", m, err)
	}

	// RabbitMQ unreachable: the call fails, so the error shows in metrics.
	t.Setenv("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")
	t.Setenv("DRAIN_FOR", "500ms")
	rec = httptest.NewRecorder()
	New().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "127.0.0.1:1") {
		t.Errorf("unreachable RabbitMQ: status %d body %q, want 503 naming the address", rec.Code, rec.Body)
	}
}
