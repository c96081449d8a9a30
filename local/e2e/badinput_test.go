package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/emulators"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// Bad input ends FAILED with a reason a person can act on, or parked with
// its body: never dropped, never retried forever.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	ctx := context.Background()

	failing := []struct {
		name, typ, params string
		reason            []string
	}{
		{"unknown report type", "withdraw_by_planet", seed.Params, []string{`unknown report_type "withdraw_by_planet"`, "withdraw_by_tag"}},
		{"params not an object", "withdraw_by_tag", `[1,2]`, []string{"params must be a JSON object"}},
		{"no tags", "withdraw_by_tag", `{"tagIds":[],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`, []string{`"tagIds"`}},
		{"negative tag", "withdraw_by_tag", `{"tagIds":[-3],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`, []string{`"tagIds"`, "-3"}},
		{"bad time", "withdraw_by_tag", `{"tagIds":[3],"from":"yesterday","to":"2026-02-01T00:00:00Z"}`, []string{`"from"`, "RFC 3339"}},
		{"duplicated key", "withdraw_by_tag", `{"tagIds":[3],"tagIds":[9],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`, []string{`invalid params: "tagIds" appears more than once`}},
		{"reversed range", "withdraw_by_tag_with_payments", `{"tagIds":[3],"from":"2026-02-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}`, []string{`"from"`, "before"}},
	}
	ids := map[string]int64{}
	for _, f := range failing {
		ids[f.name] = e.request(f.typ, f.params)
	}
	for _, f := range failing {
		rec := e.wait(ids[f.name], 30*time.Second)
		if rec.Status != record.Failed {
			t.Errorf("%s: record %s, want FAILED", f.name, rec.Status)
			continue
		}
		for _, want := range f.reason {
			if !strings.Contains(rec.FailReason, want) {
				t.Errorf("%s: fail_reason %q does not mention %q", f.name, rec.FailReason, want)
			}
		}
	}

	// A trigger for a final record is consumed and changes nothing: wait
	// for DrainTriggers to say, in its log's structured fields, that it ignored
	// this record's trigger, then compare the whole record.
	done := ids["unknown report type"]
	before, err := e.client.Records.Get(ctx, done)
	if err != nil {
		t.Fatal(err)
	}
	const ignored = "record already final; trigger ignored"
	if n := countLogLines(t, e, "draintriggers", done, ignored); n != 0 {
		t.Fatalf("DrainTriggers ignored a trigger of record %d %d times before it was sent", done, n)
	}
	if err := e.client.Publish(ctx, []byte(fmt.Sprint(done))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); countLogLines(t, e, "draintriggers", done, ignored) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("DrainTriggers never consumed the trigger for final record %d", done)
		}
	}
	after, err := e.client.Records.Get(ctx, done)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("trigger for a final record changed it (-before +after):\n%s", diff)
	}

	// Triggers that name no record, and one whose record never appears,
	// are parked with the reason, behind which a good trigger still runs.
	for _, body := range []string{"hello", `{"id":7}`, "99999999"} {
		if err := e.client.Publish(ctx, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	good := e.request("withdraw_by_tag", seed.Params)
	if rec := e.wait(good, 30*time.Second); rec.Status != record.Success {
		t.Errorf("good trigger behind bad ones: %s %s", rec.Status, rec.FailReason)
	}
	deadline := time.Now().Add(20 * time.Second)
	got := map[string]string{}
	for len(got) < 3 && time.Now().Before(deadline) {
		for _, d := range e.parked() {
			reason, ok := d.Headers[trigger.HeaderParkReason].(string)
			if !ok {
				t.Errorf("parked %q without a %s header: %v", d.Body, trigger.HeaderParkReason, d.Headers)
			}
			got[string(d.Body)] = reason
		}
		time.Sleep(100 * time.Millisecond)
	}
	for body, want := range map[string]string{"hello": "not a trigger", `{"id":7}`: "without recordId", "99999999": "no record 99999999 after 3 attempts"} {
		if !strings.Contains(got[body], want) {
			t.Errorf("parked %q: reason %q, want it to mention %q (parked: %v)", body, got[body], want, got)
		}
	}
}

// The hash disappearing before the aggregator acts (expired or deleted)
// ends the record FAILED with that reason, and no CSV is uploaded.
func TestStateGoneFailsRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	ctx := context.Background()
	id, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Records.MarkProcessing(ctx, id); err != nil {
		t.Fatal(err)
	}
	// A listener's "done" for a report whose hash is gone.
	c, err := pubsub.NewClient(ctx, "e2e-project", emulators.PubSubOptions(e.stack.PubSubAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := message.Done{V: message.SchemaVersion, RecordID: id, ReportType: "withdraw_by_tag", Stage: 1, Source: "plt_fund.vs_withdraw"}
	data := fmt.Sprintf(`{"v":1,"recordId":%d,"reportType":"withdraw_by_tag","stage":1,"source":"plt_fund.vs_withdraw"}`, id)
	if _, err := c.Publisher(topology.TopicAggregate).Publish(ctx, &pubsub.Message{Data: []byte(data), Attributes: m.Attributes()}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	rec := e.wait(id, 30*time.Second)
	if rec.Status != record.Failed || !strings.Contains(rec.FailReason, "gone from Redis") {
		t.Fatalf("record %s %q, want FAILED with a reason saying the state is gone", rec.Status, rec.FailReason)
	}
	// The record is FAILED after the aggregator's last chance to upload.
	objs, _, err := e.stack.GCS.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: fmt.Sprintf("reports/%d/", id)})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 0 {
		t.Errorf("%d objects uploaded for a report whose state was gone", len(objs))
	}
}

// A dispatch that keeps failing (here: DrainTriggers cannot reach Redis) is
// retried through our delay queue, 6 attempts in all, then the record is
// FAILED with the last error; the trigger queue is never blocked.
func TestDrainTriggersRetriesThenFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: func(*env) map[string][]string {
		return map[string][]string{"draintriggers": {"REDIS_ADDR=127.0.0.1:1"}}
	}})
	id := e.request("withdraw_by_tag", seed.Params)
	rec := e.wait(id, 60*time.Second)
	if rec.Status != record.Failed {
		t.Fatalf("record %s, want FAILED", rec.Status)
	}
	for _, want := range []string{"could not dispatch the report after 6 attempts", "127.0.0.1:1"} {
		if !strings.Contains(rec.FailReason, want) {
			t.Errorf("fail_reason %q does not mention %q", rec.FailReason, want)
		}
	}
	if n := strings.Count(e.stack.Logs("draintriggers"), "dispatch failed; retrying later"); n != 5 {
		t.Errorf("DrainTriggers logged %d retries, want 5 (6 attempts)", n)
	}
}
