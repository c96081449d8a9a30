package deadletter

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/push"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Pub/Sub's dead-letter attribute names the source subscription; the
// relay sends the short name, production may send the full path.
func TestSourceOfSubscription(t *testing.T) {
	t.Parallel()
	tests := []struct{ sub, prefix, want string }{
		{"projects/p/subscriptions/listen-withdraw", "", "plt_fund.vs_withdraw"},
		{"listen-withdraw", "", "plt_fund.vs_withdraw"},
		{"projects/p/subscriptions/dev-listen-payment", "dev-", "plt_fund.vs_payment"},
		{"listen-user-tag-relation", "", "plt_user.vs_user_tag_relation"},
		{"projects/p/subscriptions/aggregate", "", "aggregate"},
		{"projects/p/subscriptions/something-else", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := sourceOfSubscription(tt.sub, tt.prefix); got != tt.want {
			t.Errorf("sourceOfSubscription(%q, %q) = %q, want %q", tt.sub, tt.prefix, got, tt.want)
		}
	}
}

// fixture is DeadLetter over real MariaDB and Redis and pstest (for
// the parking topic).
type fixture struct {
	h   *push.Handler
	env *Env
	psc *pubsub.Client
}

const parkedSub = "projects/p/subscriptions/parked"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	id := testdb.UniqueName(t, "dl")
	dsns := testdb.Pipeline(t, "dl")
	psc, opts := testenv.PubSub(t, topology.TopicParked, topology.TopicCompleted)
	testenv.Subscribe(t, psc, parkedSub, topology.TopicParked)
	_, prefix := testenv.RedisPrefix(t, id)
	env, err := NewEnv(ctx, config.DeadLetter{PubSub: config.PubSub{ProjectID: "p"},
		Redis:   config.Redis{KeyPrefix: prefix, StateTTL: 10 * time.Minute},
		Records: config.Records{DSN: dsns.Record}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := push.New(Name, func(context.Context) (push.Func, error) { return env, nil })
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &fixture{h: h, env: env, psc: psc}
}

// post delivers a dead letter as Pub/Sub push JSON and returns the status.
func (f *fixture) post(t *testing.T, data []byte, attrs map[string]string) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"message":      map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": "dl-1", "attributes": attrs},
		"subscription": "projects/p/subscriptions/dead-letter",
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
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

// The reason a dead letter leaves on the record is what people read: it
// names the stage, who kept failing (from Pub/Sub's dead-letter attributes,
// or, without them as in pstest, from the hash: the listeners of the stage
// that never finished) and their last errors.
func TestReasons(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const (
		typ      = "withdraw_by_tag"
		withdraw = "plt_fund.vs_withdraw"
		tags     = "plt_user.vs_user_tag_relation"
	)
	stage1 := func(id int64, reportType string) []byte {
		return mustJSON(t, message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: reportType, Stage: 1,
			Sources: []string{withdraw, tags}, Params: json.RawMessage(seed.Params)})
	}
	doneMsg := func(id int64) []byte {
		return mustJSON(t, message.Done{V: message.SchemaVersion, RecordID: id, ReportType: typ, Stage: 1, Source: withdraw})
	}
	deadLetter := func(sub string) map[string]string {
		return map[string]string{message.AttrDeadLetterDeliveryCount: "6", message.AttrDeadLetterSubscription: sub,
			message.AttrDeadLetterSubscriptionProject: "p"}
	}
	tests := []struct {
		name  string
		hash  bool                         // DrainTriggers created the hash
		setup func(t *testing.T, id int64) // then this ran on it
		body  func(id int64) []byte        // the dead letter
		attrs map[string]string            // Pub/Sub's attributes (none from pstest)
		want  string                       // the record's fail_reason
	}{
		{
			name: "attributes name a listener", hash: true,
			setup: func(t *testing.T, id int64) {
				if err := f.env.State.RecordError(context.Background(), id, withdraw, "dial tcp: connection refused"); err != nil {
					t.Fatal(err)
				}
			},
			body: func(id int64) []byte { return stage1(id, typ) }, attrs: deadLetter("projects/p/subscriptions/listen-withdraw"),
			want: "stage 1 listener plt_fund.vs_withdraw failed 6 delivery attempts (report withdraw_by_tag); last error from plt_fund.vs_withdraw: dial tcp: connection refused",
		},
		{
			name: "attributes name the aggregator", hash: true,
			setup: func(t *testing.T, id int64) {
				if err := f.env.State.RecordError(context.Background(), id, state.AggregatorName, "storage: 503"); err != nil {
					t.Fatal(err)
				}
			},
			body: doneMsg, attrs: deadLetter("projects/p/subscriptions/aggregate"),
			want: "stage 1 aggregator failed 6 delivery attempts (report withdraw_by_tag); last error from aggregate: storage: 503",
		},
		{
			name: "no attributes: the hash names the listener that never finished", hash: true,
			setup: func(t *testing.T, id int64) {
				ctx := context.Background()
				src := report.Sources["ListenWithdraw"]
				if _, err := f.env.State.MarkDone(ctx, id, 1, src.Name(), src.Dataset(), 1, 0, 0); err != nil {
					t.Fatal(err)
				}
				if err := f.env.State.RecordError(ctx, id, tags, "Error 1146: Table 'vs_user_tag_relation' doesn't exist"); err != nil {
					t.Fatal(err)
				}
			},
			body: func(id int64) []byte { return stage1(id, typ) },
			want: "stage 1 listener plt_user.vs_user_tag_relation failed 6 delivery attempts (report withdraw_by_tag); last error from plt_user.vs_user_tag_relation: Error 1146: Table 'vs_user_tag_relation' doesn't exist",
		},
		{
			name: "no attributes: both listeners missing, each with its last error", hash: true,
			setup: func(t *testing.T, id int64) {
				ctx := context.Background()
				if err := f.env.State.RecordError(ctx, id, tags, "timeout"); err != nil {
					t.Fatal(err)
				}
				if err := f.env.State.RecordError(ctx, id, withdraw, "deadlock"); err != nil {
					t.Fatal(err)
				}
			},
			body: func(id int64) []byte { return stage1(id, typ) },
			want: "stage 1 listener plt_fund.vs_withdraw, plt_user.vs_user_tag_relation failed 6 delivery attempts (report withdraw_by_tag); last error from plt_fund.vs_withdraw: deadlock; last error from plt_user.vs_user_tag_relation: timeout",
		},
		{
			name: "state gone", hash: false,
			body: func(id int64) []byte { return stage1(id, typ) },
			want: "stage 1 listener plt_fund.vs_withdraw, plt_user.vs_user_tag_relation failed 6 delivery attempts (report withdraw_by_tag); report state already gone from Redis",
		},
		{
			name: "unknown report type", hash: true,
			body: func(id int64) []byte { return stage1(id, "nope") },
			want: "stage 1 listener plt_fund.vs_withdraw, plt_user.vs_user_tag_relation failed 6 delivery attempts (report nope)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			id, err := f.env.Records.Insert(ctx, typ, []byte(seed.Params))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := f.env.Records.MarkProcessing(ctx, id); err != nil || !ok {
				t.Fatalf("MarkProcessing = %v, %v", ok, err)
			}
			if tt.hash {
				if ok, err := f.env.State.Create(ctx, id, typ, []byte(seed.Params)); err != nil || !ok {
					t.Fatalf("state.Create = %v, %v", ok, err)
				}
			}
			if tt.setup != nil {
				tt.setup(t, id)
			}
			if code := f.post(t, tt.body(id), tt.attrs); code != http.StatusNoContent {
				t.Fatalf("answered %d, want 204", code)
			}
			rec, err := f.env.Records.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Status != record.Failed {
				t.Errorf("record %s, want FAILED", rec.Status)
			}
			if diff := cmp.Diff(tt.want, rec.FailReason); diff != "" {
				t.Errorf("reason (-want +got):\n%s", diff)
			}
			n, err := f.env.State.Read(ctx, id, nil)
			if !errors.Is(err, state.ErrGone) {
				t.Errorf("hash after FAILED: %+v, %v; want it deleted", n, err)
			}
		})
	}
}

// A dead letter for a record already final is acked and leaves it as it was.
func TestFinalRecordUnchanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id, err := f.env.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.env.Records.MarkProcessing(ctx, id); err != nil || !ok {
		t.Fatalf("MarkProcessing = %v, %v", ok, err)
	}
	if ok, err := f.env.Records.MarkSuccess(ctx, id, "gs://b/o.csv", 7); err != nil || !ok {
		t.Fatalf("MarkSuccess = %v, %v", ok, err)
	}
	before, err := f.env.Records.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	body := mustJSON(t, message.Done{V: message.SchemaVersion, RecordID: id, ReportType: "withdraw_by_tag", Stage: 1, Source: "plt_fund.vs_withdraw"})
	if code := f.post(t, body, nil); code != http.StatusNoContent {
		t.Fatalf("answered %d, want 204", code)
	}
	after, err := f.env.Records.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("record changed (-before +after):\n%s", diff)
	}
}

// A dead letter that names no record cannot fail anything: it is parked,
// with its reason and where it came from.
func TestNoRecordIsParked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := []byte(`{"hello":"world"}`)
	if code := f.post(t, body, map[string]string{"x": "y"}); code != http.StatusNoContent {
		t.Fatalf("answered %d, want 204", code)
	}
	got := testenv.Pull(t, f.psc, parkedSub, 1)
	if len(got) != 1 {
		t.Fatalf("%d parked messages, want 1", len(got))
	}
	want := map[string]string{"parkReason": "dead-letter: dead letter that names no record", "orig.x": "y"}
	for k, v := range want {
		if got[0].Attributes[k] != v {
			t.Errorf("parked attribute %s = %q, want %q (all: %v)", k, got[0].Attributes[k], v, got[0].Attributes)
		}
	}
	if !bytes.Equal(got[0].Data, body) {
		t.Errorf("parked body %q, want %q", got[0].Data, body)
	}
}

// A dead letter for a record deleted while its report ran is parked with
// the reason and its hash dropped at once, instead of being retried while
// every delivery refreshed the hash's TTL.
func TestDeletedRecordIsParked(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id, err := f.env.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.env.Records.MarkProcessing(ctx, id); err != nil || !ok {
		t.Fatalf("MarkProcessing = %v, %v", ok, err)
	}
	if ok, err := f.env.State.Create(ctx, id, "withdraw_by_tag", []byte(seed.Params)); err != nil || !ok {
		t.Fatalf("state.Create = %v, %v", ok, err)
	}
	if _, err := f.env.DB.ExecContext(ctx, `DELETE FROM file_download_record WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	body := mustJSON(t, message.Stage{V: message.SchemaVersion, RecordID: id, ReportType: "withdraw_by_tag", Stage: 1,
		Sources: []string{"plt_fund.vs_withdraw"}, Params: []byte(seed.Params)})
	if code := f.post(t, body, nil); code != http.StatusNoContent {
		t.Fatalf("answered %d, want 204 (a deleted record is not retried)", code)
	}
	if _, err := f.env.State.Read(ctx, id, nil); !errors.Is(err, state.ErrGone) {
		t.Errorf("hash after the dead letter: %v, want it deleted", err)
	}
	got := testenv.Pull(t, f.psc, parkedSub, 1)
	if len(got) != 1 {
		t.Fatalf("%d parked messages, want 1", len(got))
	}
	want := fmt.Sprintf("dead-letter: record %d not found: it was deleted while its report ran; its report state %s was dropped", id, f.env.State.Key(id))
	if r := got[0].Attributes["parkReason"]; !strings.HasPrefix(r, want) {
		t.Errorf("parkReason\n%q\nwant it to start with\n%q", r, want)
	}
	if !bytes.Equal(got[0].Data, body) {
		t.Errorf("parked body %q, want %q", got[0].Data, body)
	}
}
