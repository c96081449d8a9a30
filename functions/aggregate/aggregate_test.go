package aggregate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/functions/listen"
	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/output"
	"github.com/fanoutexport/fanoutexport/shared/push"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// gcs is the one fake-gcs-server of the package's tests; each test has its
// own bucket. The storage client finds it through STORAGE_EMULATOR_HOST,
// which must be set before any client is made, hence TestMain.
var gcs *fakestorage.Server

func TestMain(m *testing.M) {
	srv, err := emulators.StartGCS("127.0.0.1", 0, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "start fake-gcs-server:", err)
		os.Exit(1)
	}
	u, err := url.Parse(srv.URL())
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-gcs-server URL:", err)
		os.Exit(1)
	}
	if err := os.Setenv("STORAGE_EMULATOR_HOST", u.Host); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gcs = srv
	code := m.Run()
	srv.Stop()
	os.Exit(code)
}

const typ = "withdraw_by_tag" // one stage: a claimed stage 1 finishes the report

// fixture is the aggregator over real MariaDB and Redis, pstest and
// fake-gcs-server, with the stage-1 listeners of typ to fill the hash.
type fixture struct {
	h         *push.Handler
	env       *Env
	bucket    string
	rdb       *redis.Client
	psc       *pubsub.Client
	listeners []*push.Handler
}

const parkedSub = "projects/p/subscriptions/parked"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	id := testdb.UniqueName(t, "ag")
	dsns := testdb.Pipeline(t, "ag")
	user, err := serverenv.OpenDB(dsns.Sources["plt_user"])
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	fund, err := serverenv.OpenDB(dsns.Sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer fund.Close()
	if err := seed.Apply(ctx, user, fund); err != nil {
		t.Fatal(err)
	}

	psc, opts := testenv.PubSub(t, topology.TopicAggregate, topology.TopicParked, topology.TopicCompleted)
	testenv.Subscribe(t, psc, parkedSub, topology.TopicParked)

	bucket := strings.ReplaceAll(id, "_", "-")
	gcs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})

	rdb, prefix := testenv.RedisPrefix(t, id)
	redisCfg := config.Redis{KeyPrefix: prefix, StateTTL: 10 * time.Minute}
	cfg := config.Aggregator{PubSub: config.PubSub{ProjectID: "p"}, Redis: redisCfg,
		Records: config.Records{DSN: dsns.Record}, Storage: config.Storage{Bucket: bucket},
		ChunkBytes: 1024, ClaimTTL: time.Minute}
	env, err := NewEnv(ctx, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := push.New(state.AggregatorName, func(context.Context) (push.Func, error) { return env, nil })
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	f := &fixture{h: h, env: env, bucket: bucket, rdb: rdb, psc: psc}

	rep, _ := report.Lookup(typ)
	for _, src := range rep.Stages[0] {
		lenv, err := listen.NewEnv(ctx, config.Listener{PubSub: config.PubSub{ProjectID: "p"}, Redis: redisCfg,
			DSN: dsns.Sources[src.Database], ChunkBytes: 128}, src, opts...)
		if err != nil {
			t.Fatal(err)
		}
		lh := push.New(src.Name(), func(context.Context) (push.Func, error) { return lenv, nil })
		t.Cleanup(func() {
			if err := lh.Close(); err != nil {
				t.Errorf("close listener: %v", err)
			}
		})
		f.listeners = append(f.listeners, lh)
	}
	return f
}

// deliveryAttempt is the attempt post delivers with: the second, so a
// claim of the first stands for the same message's earlier delivery.
const deliveryAttempt = 2

// post delivers data to h as Pub/Sub push JSON and returns the status.
func post(t *testing.T, h http.Handler, msgID string, data []byte) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"message":         map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": msgID},
		"subscription":    "projects/p/subscriptions/aggregate",
		"deliveryAttempt": deliveryAttempt,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	return rec.Code
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dispatch does what DrainTriggers does: a PROCESSING record and its hash,
// created with hashType as the report type.
func (f *fixture) dispatch(t *testing.T, hashType string) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := f.env.Records.Insert(ctx, typ, []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.env.Records.MarkProcessing(ctx, id); err != nil || !ok {
		t.Fatalf("MarkProcessing(%d) = %v, %v", id, ok, err)
	}
	if ok, err := f.env.State.Create(ctx, id, hashType, f.params(t)); err != nil || !ok {
		t.Fatalf("state.Create(%d) = %v, %v", id, ok, err)
	}
	return id
}

func (f *fixture) params(t *testing.T) []byte {
	t.Helper()
	p, err := report.ParseParams([]byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, p)
}

// runListeners runs every stage-1 listener of typ on record id, so stage 1
// is complete and its datasets are in the hash.
func (f *fixture) runListeners(t *testing.T, id int64) {
	t.Helper()
	rep, _ := report.Lookup(typ)
	msg := message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: typ, Stage: 1, Sources: rep.SourceNames(1), Params: f.params(t)}
	for i, lh := range f.listeners {
		if code := post(t, lh, fmt.Sprintf("stage-%d-%d", id, i), mustJSON(t, msg)); code != http.StatusNoContent {
			t.Fatalf("listener %d answered %d", i, code)
		}
	}
}

// done is the "done" message of the first stage-1 listener.
func done(t *testing.T, id int64, reportType, failure string) []byte {
	t.Helper()
	rep, _ := report.Lookup(typ)
	return mustJSON(t, message.Done{V: message.SchemaVersion, RecordID: id, ReportType: reportType, Stage: 1,
		Source: rep.Stages[0][0].Name(), Failure: failure})
}

func (f *fixture) record(t *testing.T, id int64) record.Record {
	t.Helper()
	r, err := f.env.Records.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) hashExists(t *testing.T, id int64) bool {
	t.Helper()
	n, err := f.rdb.Exists(context.Background(), f.env.State.Key(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func (f *fixture) claim(t *testing.T, id int64) string {
	t.Helper()
	v, err := f.rdb.HGet(context.Background(), f.env.State.Key(id), state.ClaimField(1)).Result()
	if err == redis.Nil {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// objects lists the names in the test's bucket.
func (f *fixture) objects(t *testing.T) []string {
	t.Helper()
	attrs, _, err := gcs.ListObjects(f.bucket, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range attrs {
		names = append(names, a.Name)
	}
	return names
}

// parked pulls want parked messages (or what arrived within 10 s).
func (f *fixture) parked(t *testing.T, want int) []*pubsubpb.PubsubMessage {
	t.Helper()
	return testenv.Pull(t, f.psc, parkedSub, want)
}

// assertSucceeded checks the outcome of a stage the message acted on:
// the golden CSV uploaded, the record SUCCESS with it, the hash deleted.
func (f *fixture) assertSucceeded(t *testing.T, id int64) {
	t.Helper()
	object := output.ObjectName(id, typ)
	if diff := cmp.Diff([]string{object}, f.objects(t)); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	obj, err := gcs.GetObject(f.bucket, object)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(seed.Golden(seed.GoldenWithdrawByTag)), string(obj.Content)); diff != "" {
		t.Errorf("CSV (-golden +got):\n%s", diff)
	}
	rows, err := csv.NewReader(bytes.NewReader(seed.Golden(seed.GoldenWithdrawByTag))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rec := f.record(t, id)
	type outcome struct {
		Status string
		Path   string
		Rows   int64
	}
	want := outcome{"SUCCESS", output.Path(f.bucket, object), int64(len(rows) - 1)}
	if diff := cmp.Diff(want, outcome{rec.Status.String(), rec.FilePath, rec.RowCount}); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if f.hashExists(t, id) {
		t.Error("hash still exists after SUCCESS")
	}
}

// assertUntouched checks that the message did nothing: no object, the
// record still PROCESSING, the hash still there with the claim as it was.
func (f *fixture) assertUntouched(t *testing.T, id int64, claim string) {
	t.Helper()
	if got := f.objects(t); len(got) != 0 {
		t.Errorf("objects uploaded: %q", got)
	}
	if rec := f.record(t, id); rec.Status != record.Processing {
		t.Errorf("record %s (%q), want PROCESSING", rec.Status, rec.FailReason)
	}
	if !f.hashExists(t, id) {
		t.Fatal("hash deleted")
	}
	if got := f.claim(t, id); got != claim {
		t.Errorf("claim %q, want %q", got, claim)
	}
}

// The stage claim decides whether a complete stage's message acts: a live
// claim of another message, or a completed stage, means ack without
// acting; an expired claim, or the owning message's redelivery, takes the
// stage over and finishes the report.
func TestClaim(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name  string
		claim func(t *testing.T, f *fixture, id int64) // before the message
		acts  bool
	}{
		{"no claim", func(*testing.T, *fixture, int64) {}, true},
		{"held by another message", func(t *testing.T, f *fixture, id int64) {
			if r, err := f.env.State.Claim(ctx, id, 1, "other", 1, time.Hour); err != nil || r != state.Claimed {
				t.Fatalf("Claim = %v, %v", r, err)
			}
		}, false},
		{"completed", func(t *testing.T, f *fixture, id int64) {
			if err := f.env.State.CompleteClaim(ctx, id, 1); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"held by this message's earlier delivery (this is its redelivery)", func(t *testing.T, f *fixture, id int64) {
			if r, err := f.env.State.Claim(ctx, id, 1, "m1", deliveryAttempt-1, time.Hour); err != nil || r != state.Claimed {
				t.Fatalf("Claim = %v, %v", r, err)
			}
		}, true},
		{"held by a concurrent copy of this very delivery", func(t *testing.T, f *fixture, id int64) {
			if r, err := f.env.State.Claim(ctx, id, 1, "m1", deliveryAttempt, time.Hour); err != nil || r != state.Claimed {
				t.Fatalf("Claim = %v, %v", r, err)
			}
		}, false},
		{"expired claim of another message", func(t *testing.T, f *fixture, id int64) {
			// The claim's stored form, "{messageId}|{attempt}|{expiry ms}", with an
			// expiry in the past: no waiting for Redis's clock.
			if err := f.rdb.HSet(ctx, f.env.State.Key(id), state.ClaimField(1), "other|1|1").Err(); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			id := f.dispatch(t, typ)
			f.runListeners(t, id)
			tt.claim(t, f, id)
			before := f.claim(t, id)
			if code := post(t, f.h, "m1", done(t, id, typ, "")); code != http.StatusNoContent {
				t.Fatalf("aggregator answered %d, want 204", code)
			}
			if tt.acts {
				f.assertSucceeded(t, id)
			} else {
				f.assertUntouched(t, id, before)
			}
		})
	}
}

// A message for an incomplete stage is acked and changes nothing.
func TestIncompleteStageWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.dispatch(t, typ)
	if code := post(t, f.h, "m1", done(t, id, typ, "")); code != http.StatusNoContent {
		t.Fatalf("aggregator answered %d, want 204", code)
	}
	f.assertUntouched(t, id, "")
}

// Permanent failures end the record FAILED with the reason, ack, delete
// the hash and upload nothing; no permanent failure is retried.
func TestFailures(t *testing.T) {
	t.Parallel()
	other := "withdraw_by_tag_with_payments"
	tests := []struct {
		name     string
		hashType string // "" : no hash
		body     func(t *testing.T, id int64) []byte
		reason   string // the whole reason, its start when prefix, or parts it contains separated by |
		prefix   bool
	}{
		{"report type in the hash differs from the message's", other, func(t *testing.T, id int64) []byte { return done(t, id, typ, "") },
			fmt.Sprintf(`aggregator: dataset corrupt: hash says report type %q, message says %q`, other, typ), true},
		{"done message carrying a failure", typ, func(t *testing.T, id int64) []byte {
			return done(t, id, typ, "listener plt_fund.vs_withdraw: bad params")
		}, "listener plt_fund.vs_withdraw: bad params", false},
		// The wording around these parts is the aggregator's; these are
		// what an operator must find in it.
		{"state gone before the stage finished", "", func(t *testing.T, id int64) []byte { return done(t, id, typ, "") },
			"%s is gone from Redis|before stage 1 finished|nothing was uploaded|request the export again", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			var id int64
			if tt.hashType == "" {
				id = f.dispatch(t, typ)
				if err := f.env.State.Delete(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			} else {
				id = f.dispatch(t, tt.hashType)
				f.runListeners(t, id)
			}
			if code := post(t, f.h, "m1", tt.body(t, id)); code != http.StatusNoContent {
				t.Fatalf("aggregator answered %d, want 204 (a permanent failure is not retried)", code)
			}
			rec := f.record(t, id)
			want := tt.reason
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, f.env.State.Key(id))
			}
			got := rec.FailReason
			if tt.prefix && strings.HasPrefix(got, want) {
				got = want
			}
			if parts := strings.Split(want, "|"); len(parts) > 1 {
				missing := false
				for _, p := range parts {
					missing = missing || !strings.Contains(got, p)
				}
				if !missing {
					got = want
				}
			}
			if rec.Status != record.Failed || got != want {
				t.Errorf("record %s with reason\n%q\nwant FAILED with\n%q", rec.Status, rec.FailReason, want)
			}
			if objs := f.objects(t); len(objs) != 0 {
				t.Errorf("objects uploaded: %q", objs)
			}
			if f.hashExists(t, id) {
				t.Error("hash still exists after FAILED")
			}
		})
	}
}

// A message whose hash is gone after the record ended is a late
// duplicate: acked, and the record stays exactly as it was.
func TestGoneAfterFinal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	id := f.dispatch(t, typ)
	if ok, err := f.env.Records.MarkSuccess(ctx, id, "gs://elsewhere/x.csv", 3); err != nil || !ok {
		t.Fatalf("MarkSuccess = %v, %v", ok, err)
	}
	if err := f.env.State.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	before := f.record(t, id)
	if code := post(t, f.h, "m1", done(t, id, typ, "")); code != http.StatusNoContent {
		t.Fatalf("aggregator answered %d, want 204", code)
	}
	if diff := cmp.Diff(before, f.record(t, id)); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
	if objs := f.objects(t); len(objs) != 0 {
		t.Errorf("objects uploaded: %q", objs)
	}
	if f.hashExists(t, id) {
		t.Error("the late message recreated the hash")
	}
}

// A message for a record that does not exist, with no hash, is parked with
// the reason and where it came from.
func TestGoneWithoutRecordIsParked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const id = 987654321
	body := done(t, id, typ, "")
	if code := post(t, f.h, "m1", body); code != http.StatusNoContent {
		t.Fatalf("aggregator answered %d, want 204", code)
	}
	parked := f.parked(t, 1)
	if len(parked) != 1 {
		t.Fatalf("%d parked messages, want 1", len(parked))
	}
	if got := parked[0].Attributes["parkReason"]; got != fmt.Sprintf("aggregate: no record %d", id) {
		t.Errorf("parkReason %q", got)
	}
	if !bytes.Equal(parked[0].Data, body) {
		t.Errorf("parked body %q, want %q", parked[0].Data, body)
	}
	if objs := f.objects(t); len(objs) != 0 {
		t.Errorf("objects uploaded: %q", objs)
	}
}

// A record deleted while its report runs is permanent: the message is
// acked and parked with the reason, and the hash is dropped at once
// (retrying refreshed its TTL on every delivery and kept it in Redis until
// the message was dead-lettered). Both ways the aggregator meets it: a
// complete stage it would join, and a listener's failure it would record.
func TestRecordDeletedWhileRunning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure string // the done message's Failure
	}{
		{"complete stage to join", ""},
		{"a listener's failure to record", "listener plt_fund.vs_withdraw: bad params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newFixture(t)
			id := f.dispatch(t, typ)
			f.runListeners(t, id)
			if _, err := f.env.DB.ExecContext(ctx, `DELETE FROM file_download_record WHERE id = ?`, id); err != nil {
				t.Fatal(err)
			}
			body := done(t, id, typ, tt.failure)
			if code := post(t, f.h, "m1", body); code != http.StatusNoContent {
				t.Fatalf("aggregator answered %d, want 204 (a deleted record is not retried)", code)
			}
			if f.hashExists(t, id) {
				t.Error("hash still exists")
			}
			parked := f.parked(t, 1)
			if len(parked) != 1 {
				t.Fatalf("%d parked messages, want 1", len(parked))
			}
			want := fmt.Sprintf("aggregate: record %d not found: it was deleted while its report ran; its report state %s was dropped", id, f.env.State.Key(id))
			if got := parked[0].Attributes["parkReason"]; !strings.HasPrefix(got, want) {
				t.Errorf("parkReason\n%q\nwant it to start with\n%q", got, want)
			}
			if !bytes.Equal(parked[0].Data, body) {
				t.Errorf("parked body %q, want %q", parked[0].Data, body)
			}
			if objs := f.objects(t); len(objs) != 0 {
				t.Errorf("objects uploaded: %q", objs)
			}
		})
	}
}
