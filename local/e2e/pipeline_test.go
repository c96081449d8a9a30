// Package e2e runs the whole system through its real processes: functions
// built from this module and started with FUNCTION_TARGET, the push relay,
// pstest, fake-gcs-server, the shim, and real MariaDB, Redis and RabbitMQ.
package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

type golden struct {
	typ, params, file string
	trigger           func(id int64) string // body published; nil = the ID digits
}

var goldens = []golden{
	{"withdraw_by_tag", seed.Params, seed.GoldenWithdrawByTag, nil},
	{"withdraw_by_tag_with_payments", seed.Params, seed.GoldenWithdrawByTagWithPayments,
		func(id int64) string { return fmt.Sprintf(` {"recordId": %d} `, id) }},
	{"withdraw_by_tag", seed.EmptyParams, seed.GoldenEmptyWithdrawByTag, nil},
	{"withdraw_by_tag_with_payments", seed.EmptyParams, seed.GoldenEmptyWithdrawByTagWithPayments,
		func(id int64) string { return fmt.Sprintf("  %d\n", id) }},
}

// runGoldens requests every golden report at once and checks each CSV to
// the byte, the record, and that the hash is gone.
func runGoldens(t *testing.T, e *env) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, g := range goldens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.client.Records.Insert(ctx, g.typ, []byte(g.params))
			if err != nil {
				t.Error(err)
				return
			}
			body := fmt.Sprint(id)
			if g.trigger != nil {
				body = g.trigger(id)
			}
			if err := e.client.Publish(ctx, []byte(body)); err != nil {
				t.Error(err)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			rec, err := e.client.Wait(wctx, id, nil)
			if err != nil {
				t.Errorf("%s %s: %v", g.typ, g.file, err)
				return
			}
			want := seed.Golden(g.file)
			if rec.Status != record.Success {
				t.Errorf("%s: record %d %s: %s", g.file, id, rec.Status, rec.FailReason)
				return
			}
			wantPath := fmt.Sprintf("gs://reports/reports/%d/%s.csv", id, g.typ)
			if rec.FilePath != wantPath {
				t.Errorf("%s: file_path %q, want %q", g.file, rec.FilePath, wantPath)
			}
			if wantRows := int64(strings.Count(string(want), "\n") - 1); rec.RowCount != wantRows {
				t.Errorf("%s: row_count %d, want %d", g.file, rec.RowCount, wantRows)
			}
			got, err := e.client.Fetch(ctx, rec.FilePath)
			if err != nil {
				t.Error(err)
				return
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s: CSV mismatch (-want +got):\n%s", g.file, diff)
			}
			if !e.hashGone(id) {
				t.Errorf("%s: hash of record %d still in Redis after SUCCESS", g.file, id)
			}
		}()
	}
	wg.Wait()
}

func TestGoldenReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	runGoldens(t, e)
	// Stage 1's two "done" messages race to the aggregator; the stage is
	// claimed once, so stage 2 is fanned out once: one delivery to the
	// payment listener (the empty enriched report skips stage 2).
	if got := e.stack.Relay.Stats("listen-payment").Posts; got != 1 {
		t.Errorf("listen-payment got %d POSTs, want 1 (stage 2 fanned out once)", got)
	}
	if got := e.stack.Relay.Stats(topology.SubAggregate).Posts; got != 9 {
		t.Errorf("aggregate got %d POSTs, want 9 (2 listeners × 4 reports + 1 payment listener)", got)
	}
}

// Every message to every function is delivered twice, concurrently: each
// listener must count once (or the aggregator would join before the other
// listener's rows) and each stage must be acted on once.
func TestEveryMessageDeliveredTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{duplicate: true})
	runGoldens(t, e)
	for _, sub := range []string{"listen-user-tag-relation", "listen-withdraw", "listen-payment", topology.SubAggregate} {
		s := e.stack.Relay.Stats(sub)
		if s.Posts < 2 || s.Posts%2 != 0 {
			t.Errorf("%s: %d POSTs, want an even number ≥ 2 (every message twice)", sub, s.Posts)
		}
	}
}

// A listener whose every delivery fails: exactly 6 POSTs, then pstest's
// dead-letter policy, the DLQ function, and the record FAILED naming it.
func TestListenerFailingEveryTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: func(e *env) map[string][]string {
		// A database without the vs_withdraw table: every query fails.
		return map[string][]string{"ListenWithdraw": {"DSN_PLT_FUND=" + e.emptyDatabase("broken")}}
	}})
	id := e.request("withdraw_by_tag", seed.Params)
	rec := e.wait(id, 90*time.Second)
	if rec.Status != record.Failed {
		t.Fatalf("record %d is %s, want FAILED", id, rec.Status)
	}
	for _, want := range []string{"stage 1", "listener plt_fund.vs_withdraw", "6 delivery attempts", "vs_withdraw' doesn't exist"} {
		if !strings.Contains(rec.FailReason, want) {
			t.Errorf("fail_reason %q does not mention %q", rec.FailReason, want)
		}
	}
	if got := e.stack.Relay.Stats("listen-withdraw").Posts; got != topology.MaxDeliveryAttempts {
		t.Errorf("listen-withdraw got %d POSTs, want exactly %d", got, topology.MaxDeliveryAttempts)
	}
	if got := e.stack.Relay.Stats(topology.SubDeadLetter).Posts; got < 1 {
		t.Errorf("DLQ function got %d POSTs, want ≥ 1", got)
	}
	if !e.hashGone(id) {
		t.Errorf("hash of FAILED record %d still in Redis", id)
	}
}

// The aggregator failing every delivery (Cloud Storage unreachable): the
// done message is dead-lettered after 6 POSTs and the record ends FAILED
// naming the aggregator and its last error; nothing is uploaded.
func TestAggregatorFailingEveryTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{envFor: func(*env) map[string][]string {
		return map[string][]string{"Aggregate": {"STORAGE_EMULATOR_HOST=127.0.0.1:1"}}
	}})
	id := e.request("withdraw_by_tag", seed.Params)
	rec := e.wait(id, 3*time.Minute)
	if rec.Status != record.Failed {
		t.Fatalf("record %d is %s, want FAILED", id, rec.Status)
	}
	for _, want := range []string{"stage 1 aggregator failed 6 delivery attempts", "last error from aggregate", "storage upload"} {
		if !strings.Contains(rec.FailReason, want) {
			t.Errorf("fail_reason %q does not mention %q", rec.FailReason, want)
		}
	}
	// One done message waited for the other; the other failed 6 times.
	if got := e.stack.Relay.Stats(topology.SubAggregate).Posts; got != 1+topology.MaxDeliveryAttempts {
		t.Errorf("aggregate got %d POSTs, want %d", got, 1+topology.MaxDeliveryAttempts)
	}
	if !e.hashGone(id) {
		t.Errorf("hash of FAILED record %d still in Redis", id)
	}
}
