package listener

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/redis/go-redis/v9"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/testdb"
	"github.com/fanoutexport/fanoutexport/shared/aggstate"
	"github.com/fanoutexport/fanoutexport/shared/clients"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/lazy"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/mysqldb"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// fixture is a listener wired to real MariaDB and Redis and an in-process
// Pub/Sub, with a subscription that sees every "done" it publishes.
type fixture struct {
	h     *Handler
	state *aggstate.State
	rdb   *redis.Client
	psc   *pubsub.Client
	sub   string
}

func newFixture(t *testing.T, src report.Source) *fixture {
	t.Helper()
	ctx := context.Background()
	id := testdb.UniqueName(t, "lt")
	dsns := testdb.Pipeline(t, "lt")
	user, _ := mysqldb.Open(dsns.Sources["plt_user"])
	fund, _ := mysqldb.Open(dsns.Sources["plt_fund"])
	defer user.Close()
	defer fund.Close()
	if err := seed.Apply(ctx, user, fund); err != nil {
		t.Fatal(err)
	}

	srv := pstest.NewServer()
	t.Cleanup(func() { srv.Close() })
	opts := []option.ClientOption{option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
	psc, err := pubsub.NewClient(ctx, "p", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { psc.Close() })
	if _, err := psc.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/p/topics/" + topology.TopicAggregate}); err != nil {
		t.Fatal(err)
	}
	if _, err := psc.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/p/topics/" + topology.TopicParked}); err != nil {
		t.Fatal(err)
	}
	sub := "projects/p/subscriptions/done"
	if _, err := psc.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: "projects/p/topics/" + topology.TopicAggregate, AckDeadlineSeconds: 60}); err != nil {
		t.Fatal(err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	prefix := id + ":"
	t.Cleanup(func() {
		keys, _ := rdb.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
		rdb.Close()
	})
	cfg := config.Listener{PubSub: config.PubSub{ProjectID: "p"}, Redis: config.Redis{KeyPrefix: prefix, StateTTL: 10 * time.Minute},
		DSN: dsns.Sources[src.Database], ChunkBytes: 128}
	c, err := clients.Open(ctx, cfg.PubSub, cfg.Redis, cfg.DB, cfg.DSN, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.DB.Close() })
	state := c.State
	d := &deps{cfg: cfg, Clients: c}
	h := &Handler{source: src, deps: lazy.New(func(context.Context) (*deps, error) { return d, nil })}
	return &fixture{h: h, state: state, rdb: rdb, psc: psc, sub: sub}
}

// post delivers data as Pub/Sub push JSON and returns the status code.
func (f *fixture) post(t *testing.T, msgID string, data []byte, attempt int) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"message":         map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": msgID, "attributes": map[string]string{}},
		"subscription":    "projects/p/subscriptions/listen",
		"deliveryAttempt": attempt,
	})
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	return rec.Code
}

// dones pulls the done messages published so far.
func (f *fixture) dones(t *testing.T, want int) []message.Done {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []message.Done
	for len(out) < want && ctx.Err() == nil {
		resp, err := f.psc.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: f.sub, MaxMessages: 10})
		if err != nil {
			break
		}
		for _, m := range resp.ReceivedMessages {
			var d message.Done
			if err := json.Unmarshal(m.Message.Data, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
			f.psc.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: f.sub, AckIds: []string{m.AckId}})
		}
	}
	return out
}

func stageMessage(t *testing.T, id int64, typ string, stage int) []byte {
	t.Helper()
	rep, _ := report.Lookup(typ)
	p, err := report.ParseParams([]byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := json.Marshal(p)
	b, _ := json.Marshal(message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: typ, Stage: stage, Sources: rep.SourceNames(stage), Params: norm})
	return b
}

// A stage message delivered twice counts its listener once, and both
// deliveries tell the aggregator (the second is harmless there).
func TestRedeliveryCountsOnce(t *testing.T) {
	t.Parallel()
	src := report.Sources["plt_fund.vs_withdraw"]
	f := newFixture(t, src)
	ctx := context.Background()
	const id = 7
	if _, err := f.state.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil {
		t.Fatal(err)
	}
	msg := stageMessage(t, id, "withdraw_by_tag", 1)
	for attempt := 1; attempt <= 2; attempt++ {
		if code := f.post(t, "m1", msg, attempt); code != http.StatusNoContent {
			t.Fatalf("delivery %d: status %d", attempt, code)
		}
	}
	key := f.state.Key(id)
	if n, _ := f.rdb.HGet(ctx, key, aggstate.FieldDoneCount).Int(); n != 1 {
		t.Errorf("queryDoneCount = %d after two deliveries, want 1", n)
	}
	rows, _ := f.rdb.HGet(ctx, key, dataset.RowsField(src.Dataset())).Int()
	chunks, _ := f.rdb.HGet(ctx, key, dataset.ChunksField(src.Dataset())).Int()
	var want int
	d, _ := f.h.deps.Get(ctx)
	if err := d.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM vs_withdraw WHERE created_at >= '2026-01-01' AND created_at < '2026-02-01'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if rows != want || chunks < 2 {
		t.Errorf("dataset has %d rows in %d chunks; want %d rows split over several 128-byte chunks", rows, chunks, want)
	}
	if got := f.dones(t, 2); len(got) != 2 || got[0].Source != src.Name() || got[0].Stage != 1 {
		t.Errorf("done messages = %+v, want two for %s stage 1", got, src.Name())
	}
}

// A late message for a report whose hash is gone never recreates it.
func TestGoneHashIsNotRecreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, report.Sources["plt_user.vs_user_tag_relation"])
	const id = 8
	if code := f.post(t, "m2", stageMessage(t, id, "withdraw_by_tag", 1), 1); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if n, _ := f.rdb.Exists(context.Background(), f.state.Key(id)).Result(); n != 0 {
		t.Errorf("listener recreated the hash %s", f.state.Key(id))
	}
	if got := f.dones(t, 1); len(got) != 1 {
		t.Errorf("want one done message telling the aggregator, got %d", len(got))
	}
}

// A message of a schema version this code does not know is retried (non-2xx)
// and its error is kept in the hash for the DLQ function.
func TestUnknownVersionIsRetried(t *testing.T) {
	t.Parallel()
	src := report.Sources["plt_fund.vs_withdraw"]
	f := newFixture(t, src)
	ctx := context.Background()
	const id = 9
	if _, err := f.state.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil {
		t.Fatal(err)
	}
	if code := f.post(t, "m3", []byte(fmt.Sprintf(`{"v":99,"recordId":%d}`, id)), 1); code < 300 {
		t.Fatalf("status %d, want non-2xx", code)
	}
	e, _ := f.rdb.HGet(ctx, f.state.Key(id), aggstate.ErrorField(src.Name())).Result()
	if e == "" {
		t.Error("no error recorded in the hash")
	}
}
