package listen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/push"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// fixture is a listener wired to real MariaDB and Redis and an in-process
// Pub/Sub, with a subscription that sees every "done" it publishes.
type fixture struct {
	h     *push.Handler
	env   *Env
	state *state.Store
	rdb   *redis.Client
	psc   *pubsub.Client
	sub   string
}

func newFixture(t *testing.T, src report.Source) *fixture {
	t.Helper()
	return newFixtureWith(t, src, nil)
}

// newFixtureWith is newFixture with its config changed by edit (if any).
func newFixtureWith(t *testing.T, src report.Source, edit func(*config.Listener)) *fixture {
	t.Helper()
	ctx := context.Background()
	id := testdb.UniqueName(t, "lt")
	dsns := testdb.Pipeline(t, "lt")
	user, err := serverenv.OpenDB(dsns.Sources["plt_user"])
	if err != nil {
		t.Fatal(err)
	}
	fund, err := serverenv.OpenDB(dsns.Sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	defer fund.Close()
	if err := seed.Apply(ctx, user, fund); err != nil {
		t.Fatal(err)
	}

	psc, opts := testenv.PubSub(t, topology.TopicAggregate, topology.TopicParked)
	sub := "projects/p/subscriptions/done"
	testenv.Subscribe(t, psc, sub, topology.TopicAggregate)

	rdb, prefix := testenv.RedisPrefix(t, id)
	cfg := config.Listener{PubSub: config.PubSub{ProjectID: "p"}, Redis: config.Redis{KeyPrefix: prefix, StateTTL: 10 * time.Minute},
		DSN: dsns.Sources[src.Database], ChunkBytes: 128}
	if edit != nil {
		edit(&cfg)
	}
	env, err := NewEnv(ctx, cfg, src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := push.New(src.Name(), func(context.Context) (push.Func, error) { return env, nil })
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	testenv.Subscribe(t, psc, parkedSub, topology.TopicParked)
	return &fixture{h: h, env: env, state: env.State, rdb: rdb, psc: psc, sub: sub}
}

const parkedSub = "projects/p/subscriptions/parked"

// parked pulls the messages parked so far.
func (f *fixture) parked(t *testing.T, want int) []*pubsubpb.PubsubMessage {
	t.Helper()
	return testenv.Pull(t, f.psc, parkedSub, want)
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
	var out []message.Done
	for _, m := range testenv.Pull(t, f.psc, f.sub, want) {
		var d message.Done
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
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
	src := report.Sources["ListenWithdraw"]
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
	if n, _ := f.rdb.HGet(ctx, key, state.FieldDoneCount).Int(); n != 1 {
		t.Errorf("queryDoneCount = %d after two deliveries, want 1", n)
	}
	snap, err := f.state.Read(ctx, id, [][]string{{src.Name()}})
	if err != nil {
		t.Fatal(err)
	}
	name := state.AttemptName(src.Dataset(), snap.Attempts[1][src.Name()])
	rows, _ := f.rdb.HGet(ctx, key, dataset.RowsField(name)).Int()
	chunks, _ := f.rdb.HGet(ctx, key, dataset.ChunksField(name)).Int()
	var want int
	if err := f.env.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM vs_withdraw WHERE created_at >= '2026-01-01' AND created_at < '2026-02-01'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if rows != want || chunks < 2 {
		t.Errorf("dataset has %d rows in %d chunks; want %d rows split over several 128-byte chunks", rows, chunks, want)
	}
	if got := f.dones(t, 2); len(got) != 2 || got[0].Source != src.Name() || got[0].Stage != 1 {
		t.Errorf("done messages = %+v, want two for %s stage 1", got, src.Name())
	}
}

// A report dispatched by this version (Chunks "s2") gets S2 chunks; one
// the previous version dispatched (no Chunks, message version 2) gets
// DEFLATE, which that version's aggregator reads. The done message passes
// Chunks on, so the report's next stage keeps its codec.
func TestChunkCodecFollowsTheReport(t *testing.T) {
	t.Parallel()
	src := report.Sources["ListenWithdraw"]
	f := newFixture(t, src)
	ctx := context.Background()
	rep, _ := report.Lookup("withdraw_by_tag")
	p, err := report.ParseParams([]byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	norm, _ := json.Marshal(p)
	for i, tc := range []struct {
		v      int
		chunks string
		format byte
	}{{message.SchemaVersion, message.ChunksS2, byte(dataset.S2)}, {2, "", byte(dataset.Deflate)}} {
		id := int64(20 + i)
		if _, err := f.state.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(message.Stage{V: tc.v, RecordID: id, ReportType: "withdraw_by_tag", Stage: 1, Sources: rep.SourceNames(1), Params: norm, Chunks: tc.chunks})
		if code := f.post(t, fmt.Sprint("codec", i), b, 1); code != http.StatusNoContent {
			t.Fatalf("v%d: status %d", tc.v, code)
		}
		snap, err := f.state.Read(ctx, id, [][]string{{src.Name()}})
		if err != nil {
			t.Fatal(err)
		}
		name := state.AttemptName(src.Dataset(), snap.Attempts[1][src.Name()])
		chunks, _ := f.rdb.HGet(ctx, f.state.Key(id), dataset.ChunksField(name)).Int64()
		if chunks < 2 {
			t.Fatalf("v%d: %d chunks, want several", tc.v, chunks)
		}
		for c := range chunks {
			data, err := f.rdb.HGet(ctx, f.state.Key(id), dataset.ChunkField(name, c)).Bytes()
			if err != nil || len(data) == 0 || data[0] != tc.format {
				t.Fatalf("v%d chunk %d: %.1q, %v; want format byte %d", tc.v, c, data, err, tc.format)
			}
		}
		if got := f.dones(t, 1); len(got) != 1 || got[0].Chunks != tc.chunks {
			t.Errorf("v%d: done messages %+v, want one with chunks %q", tc.v, got, tc.chunks)
		}
	}
}

// A late message for a report whose hash is gone never recreates it.
func TestGoneHashIsNotRecreated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, report.Sources["ListenUserTagRelation"])
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
// and its error is kept in the hash for DeadLetter.
func TestUnknownVersionIsRetried(t *testing.T) {
	t.Parallel()
	src := report.Sources["ListenWithdraw"]
	f := newFixture(t, src)
	ctx := context.Background()
	const id = 9
	if _, err := f.state.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil {
		t.Fatal(err)
	}
	if code := f.post(t, "m3", []byte(fmt.Sprintf(`{"v":99,"recordId":%d}`, id)), 1); code < 300 {
		t.Fatalf("status %d, want non-2xx", code)
	}
	e, _ := f.rdb.HGet(ctx, f.state.Key(id), state.ErrorField(src.Name())).Result()
	if e == "" {
		t.Error("no error recorded in the hash")
	}
}

// Every error path of the listener and the class it gets: retried (non-2xx,
// error noted in the hash), failed now (204 and a done message carrying
// the reason, so the aggregator marks the record FAILED at once), or
// parked (204 and the message in the parking topic). No permanent error is
// retried.
func TestErrorPaths(t *testing.T) {
	t.Parallel()
	withdraw := report.Sources["ListenWithdraw"]
	payment := report.Sources["ListenPayment"]
	params := func(t *testing.T) json.RawMessage {
		p, err := report.ParseParams([]byte(seed.Params))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		return b
	}
	stage := func(t *testing.T, id int64, typ string, n int, sources []string, p json.RawMessage) []byte {
		b, _ := json.Marshal(message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: typ, Stage: n, Sources: sources, Params: p})
		return b
	}
	tests := []struct {
		name    string
		src     report.Source
		body    func(t *testing.T, id int64) []byte
		prepare func(t *testing.T, f *fixture, id int64)
		want    fault.Class // -1: handled, acked
		reason  string      // in the done failure or the parked reason
	}{
		{"unknown schema version", withdraw, func(t *testing.T, id int64) []byte {
			return []byte(fmt.Sprintf(`{"v":99,"recordId":%d}`, id))
		}, nil, fault.Retry, ""},
		{"undecodable stage message of a record", withdraw, func(t *testing.T, id int64) []byte {
			return []byte(fmt.Sprintf(`{"v":1,"recordId":%d,"stage":"one"}`, id))
		}, nil, fault.Fail, "could not decode its stage message"},
		{"message naming no record", withdraw, func(t *testing.T, id int64) []byte { return []byte(`{"hello":1}`) }, nil, fault.Park, "no positive recordId"},
		{"unknown report type", withdraw, func(t *testing.T, id int64) []byte {
			return stage(t, id, "nope", 1, []string{withdraw.Name()}, params(t))
		}, nil, fault.Fail, `does not know report type "nope"`},
		{"bad params", withdraw, func(t *testing.T, id int64) []byte {
			return stage(t, id, "withdraw_by_tag", 1, []string{withdraw.Name()}, json.RawMessage(`{"tagIds":[],"from":"x"}`))
		}, nil, fault.Fail, "listener plt_fund.vs_withdraw: "},
		{"another listener's report", withdraw, func(t *testing.T, id int64) []byte {
			return stage(t, id, "withdraw_by_tag", 1, []string{"plt_user.vs_user_tag_relation"}, params(t))
		}, nil, -1, ""},
		{"stage 2 input with a bad user_id", payment, func(t *testing.T, id int64) []byte {
			return stage(t, id, "withdraw_by_tag_with_payments", 2, []string{payment.Name()}, params(t))
		}, func(t *testing.T, f *fixture, id int64) {
			ctx := context.Background()
			attempt, err := f.state.NewAttempt(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			store := f.state.Writer(id, state.InputField(2), attempt, nil)
			w := dataset.NewWriter(ctx, store, payment.Input, 1024)
			if err := w.Write([]string{"12x", "USD"}); err != nil {
				t.Fatal(err)
			}
			chunks, rows, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Finish(ctx, payment.Input, chunks, rows); err != nil {
				t.Fatal(err)
			}
			if _, err := f.state.CommitInput(ctx, id, 2, attempt); err != nil {
				t.Fatal(err)
			}
		}, fault.Fail, `bad user_id "12x"`},
		{"stage 2 input missing from a live hash", payment, func(t *testing.T, id int64) []byte {
			return stage(t, id, "withdraw_by_tag_with_payments", 2, []string{payment.Name()}, params(t))
		}, nil, fault.Fail, "has no committed input for stage 2"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, tt.src)
			ctx := context.Background()
			id := int64(100 + i)
			if _, err := f.state.Create(ctx, id, "withdraw_by_tag_with_payments", []byte(seed.Params)); err != nil {
				t.Fatal(err)
			}
			if tt.prepare != nil {
				tt.prepare(t, f, id)
			}
			code := f.post(t, "m", tt.body(t, id), 1)
			switch tt.want {
			case fault.Retry:
				if code < 300 {
					t.Fatalf("status %d, want non-2xx (retry)", code)
				}
				if e, _ := f.rdb.HGet(ctx, f.state.Key(id), state.ErrorField(tt.src.Name())).Result(); e == "" {
					t.Error("retried error not noted in the hash for DeadLetter")
				}
			case fault.Fail:
				if code != http.StatusNoContent {
					t.Fatalf("status %d, want 204: a permanent error is never retried", code)
				}
				got := f.dones(t, 1)
				if len(got) != 1 || got[0].RecordID != id || !strings.Contains(got[0].Failure, tt.reason) {
					t.Errorf("done messages %+v; want one for record %d whose failure contains %q", got, id, tt.reason)
				}
			case fault.Park:
				if code != http.StatusNoContent {
					t.Fatalf("status %d, want 204 after parking", code)
				}
				got := f.parked(t, 1)
				if len(got) != 1 || !strings.Contains(got[0].Attributes["parkReason"], tt.reason) ||
					got[0].Attributes["parkHandler"] != tt.src.Name() || got[0].Attributes["parkSubscription"] != "projects/p/subscriptions/listen" {
					t.Errorf("parked %+v; want one with a reason containing %q, handler %s and the subscription", got, tt.reason, tt.src.Name())
				}
			default:
				if code != http.StatusNoContent {
					t.Fatalf("status %d, want 204", code)
				}
			}
		})
	}
}

// MAX_REPORT_ROWS: a dataset of more rows than the limit fails the report
// with exactly the limit's reason, and the listener stops writing chunks as
// soon as it passes the limit; at the limit it is done as usual.
func TestRowLimit(t *testing.T) {
	t.Parallel()
	src := report.Sources["ListenWithdraw"]
	// The seed's rows for seed.Params, counted in the database, not assumed.
	probe := newFixture(t, src)
	var total int64
	if err := probe.env.DB.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM vs_withdraw WHERE created_at >= '2026-01-01' AND created_at < '2026-02-01'").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total < 3 {
		t.Fatalf("seed has %d withdrawals in the range; the test needs at least 3", total)
	}
	tests := []struct {
		name  string
		limit int64
		fail  bool
		// maxChunks bounds the chunks the failed attempt wrote (-1: no bound).
		maxChunks int
	}{
		{"one row allowed", 1, true, 1},
		{"one row short", total - 1, true, -1},
		{"exactly at the limit", total, false, -1},
		{"above the limit", total + 1, false, -1},
		{"no limit", 0, false, -1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixtureWith(t, src, func(c *config.Listener) { c.MaxReportRows = tt.limit })
			ctx := context.Background()
			id := int64(300 + i)
			if _, err := f.state.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil {
				t.Fatal(err)
			}
			if code := f.post(t, "m", stageMessage(t, id, "withdraw_by_tag", 1), 1); code != http.StatusNoContent {
				t.Fatalf("status %d, want 204", code)
			}
			got := f.dones(t, 1)
			if len(got) != 1 {
				t.Fatalf("done messages %+v, want one", got)
			}
			done, err := f.state.IsDone(ctx, id, 1, src.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !tt.fail {
				if got[0].Failure != "" || !done {
					t.Errorf("limit %d of %d rows: failure %q, counted done %v; want no failure, done", tt.limit, total, got[0].Failure, done)
				}
				return
			}
			want := fmt.Sprintf("report exceeds %d rows; narrow the filter", tt.limit)
			if diff := cmp.Diff(want, got[0].Failure); diff != "" {
				t.Errorf("failure (-want +got):\n%s", diff)
			}
			if done {
				t.Error("listener counted itself done after passing the row limit")
			}
			if tt.maxChunks >= 0 {
				fields, err := f.rdb.HKeys(ctx, f.state.Key(id)).Result()
				if err != nil {
					t.Fatal(err)
				}
				chunks := 0
				for _, k := range fields {
					if strings.HasPrefix(k, src.Dataset()+"@") && !strings.HasSuffix(k, "#chunks") && !strings.HasSuffix(k, "#rows") {
						chunks++
					}
				}
				if chunks > tt.maxChunks {
					t.Errorf("%d chunks written (fields %v); want at most %d: the listener must stop at the limit", chunks, fields, tt.maxChunks)
				}
			}
		})
	}
}

// Two listeners may read one table (a stage-1 range read and a stage-2
// lookup): a listener acts on a stage message only if the report's source
// of that name in that stage is its own entry point. A listener reading
// vs_payment under another entry point acks ListenPayment's message and
// writes nothing.
func TestAnotherListenersTableIsAcked(t *testing.T) {
	t.Parallel()
	shadow := report.Sources["ListenPayment"]
	shadow.EntryPoint, shadow.Subscription = "ListenPaymentElsewhere", "listen-payment-elsewhere"
	f := newFixture(t, shadow)
	ctx := context.Background()
	const id = 31
	if _, err := f.state.Create(ctx, id, "withdraw_by_tag_with_payments", []byte(seed.Params)); err != nil {
		t.Fatal(err)
	}
	before, err := f.rdb.HGetAll(ctx, f.state.Key(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if code := f.post(t, "m31", stageMessage(t, id, "withdraw_by_tag_with_payments", 2), 1); code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", code)
	}
	after, err := f.rdb.HGetAll(ctx, f.state.Key(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	delete(before, "ttl")
	delete(after, "ttl")
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the hash changed (-before +after):\n%s", diff)
	}
	// The real ListenPayment takes the same message as its own.
	g := newFixture(t, report.Sources["ListenPayment"])
	if _, err := g.state.Create(ctx, id, "withdraw_by_tag_with_payments", []byte(seed.Params)); err != nil {
		t.Fatal(err)
	}
	if code := g.post(t, "m31", stageMessage(t, id, "withdraw_by_tag_with_payments", 2), 1); code != http.StatusNoContent {
		t.Fatalf("ListenPayment: status %d", code)
	}
	if got := g.dones(t, 1); len(got) != 1 || got[0].Source != "plt_fund.vs_payment" || got[0].Stage != 2 {
		t.Errorf("ListenPayment's done messages = %+v, want one for plt_fund.vs_payment stage 2", got)
	}
}
