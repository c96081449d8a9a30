// Package e2e runs the whole system through its real processes: functions
// built from this module and started with FUNCTION_TARGET, the push relay,
// pstest, fake-gcs-server, DrainTriggers, and real MariaDB, Redis and RabbitMQ.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/message"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

type golden struct {
	typ, params, file string
	trigger           func(id int64) string // body published; nil = the ID digits
}

// goldens are every report type's examples and their golden files
// (seed.Examples: the examples, then the empty ones), published in turn in
// each of the trigger body forms.
var goldens = func() []golden {
	triggers := []func(id int64) string{
		nil,
		func(id int64) string { return fmt.Sprintf(` {"recordId": %d} `, id) },
		func(id int64) string { return fmt.Sprintf("  %d\n", id) },
	}
	var gs []golden
	for i, ex := range seed.Examples() {
		gs = append(gs, golden{ex.Type, ex.Params, ex.Golden, triggers[i%len(triggers)]})
	}
	return gs
}()

// stageMessages is how many stage messages each listener's subscription
// gets for golden g in one part, and how many "done" messages the
// listeners send: a stage topic fans each message out to every listener
// of that stage, which acks a report it takes no part in and answers
// "done" for one it does. Stage 1 is always reached, a later stage only if
// the example has rows (an empty stage 1 skips the rest). Every listener
// is named, 0 for none.
func stageMessages(g golden) (perSub map[string]int, dones int) {
	rep, _ := report.Lookup(g.typ)
	rows := strings.Count(strings.TrimPrefix(string(seed.Golden(g.file)), "\uFEFF"), "\n") - 1
	perSub = map[string]int{}
	for _, s := range report.Sources {
		perSub[s.Subscription] = 0
	}
	for n, stage := range rep.Stages {
		if n > 0 && rows == 0 {
			break
		}
		for _, s := range report.Sources {
			if s.Stage == n+1 {
				perSub[s.Subscription]++
			}
		}
		dones += len(stage)
	}
	return perSub, dones
}

// listenerSubs lists every listener's subscription.
func listenerSubs() []string {
	var subs []string
	for _, s := range report.Sources {
		subs = append(subs, s.Subscription)
	}
	slices.Sort(subs)
	return subs
}

// runGoldens requests every golden report at once and checks each CSV to
// the byte, the record, and that the hash is gone. It returns the record
// ID of each golden in goldens' order (0 where the insert failed).
func runGoldens(t *testing.T, e *env) []int64 {
	ctx := context.Background()
	ids := make([]int64, len(goldens))
	var wg sync.WaitGroup
	for i, g := range goldens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := e.client.Records.Insert(ctx, g.typ, []byte(g.params))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = id
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
	return ids
}

func TestGoldenReports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{})
	runGoldens(t, e)
	// Stage 1's two "done" messages race to the aggregator; the stage is
	// claimed once, so stage 2 is fanned out once: one delivery to the
	// payment listener per report that reaches it (the empty enriched
	// report skips stage 2), one "done" per listener message.
	want, dones := map[string]int{}, 0
	for _, g := range goldens {
		perSub, d := stageMessages(g)
		for sub, n := range perSub {
			want[sub] += n
		}
		dones += d
	}
	if want["listen-payment"] < 1 {
		t.Fatalf("no golden report reaches listen-payment: %v", want)
	}
	for sub, n := range want {
		if got := e.stack.Relay.Stats(sub).Posts; got != int64(n) {
			t.Errorf("%s got %d POSTs, want %d (each stage fanned out once)", sub, got, n)
		}
	}
	if got := e.stack.Relay.Stats(topology.SubAggregate).Posts; got != int64(dones) {
		t.Errorf("aggregate got %d POSTs, want %d (one per listener message)", got, dones)
	}
}

// Every message to every function is delivered twice, concurrently: each
// listener must count once (or the aggregator would join before the other
// listener's rows) and each stage must be acted on once: one stage-2
// fan-out, one upload and one SUCCESS per report.
func TestEveryMessageDeliveredTwice(t *testing.T) {
	t.Parallel()
	var seen deliveries
	e := newEnv(t, options{duplicate: true, observe: seen.add})
	e.keepVersions()
	ids := runGoldens(t, e)
	subs := append(listenerSubs(), topology.SubAggregate)
	waitSettled(t, e, &seen, subs)

	// Distinct messages per subscription and record: what the system
	// published, whatever the relay doubled.
	published := map[string]map[string]bool{}
	for _, d := range seen.list() {
		k := d.Subscription + "/" + d.Attributes[message.AttrRecordID]
		if published[k] == nil {
			published[k] = map[string]bool{}
		}
		published[k][d.MessageID] = true
	}
	for i, g := range goldens {
		id := ids[i]
		if id == 0 {
			continue
		}
		rid := fmt.Sprint(id)
		got := map[string]int{}
		for _, sub := range listenerSubs() {
			got[sub] = len(published[sub+"/"+rid])
		}
		// Both copies of the "done" that completes stage 1 carry the same
		// message ID and delivery attempt: the stage claim holds off the
		// concurrent copy (only a later attempt takes it over), so stage 2
		// is fanned out exactly once.
		want, _ := stageMessages(g)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: stage messages published per listener (-want +got):\n%s", g.file, diff)
		}
		if n := e.uploads(id); n != 1 {
			t.Errorf("%s: %d uploads of record %d's CSV, want 1", g.file, n, id)
		}
		if n := countLogLines(t, e, "Aggregate", id, "report SUCCESS"); n != 1 {
			t.Errorf("%s: aggregator marked record %d SUCCESS %d times, want 1", g.file, id, n)
		}
		// The outcome and duration metrics count this line: once per report.
		if n := countLogLines(t, e, "Aggregate", id, "report final"); n != 1 {
			t.Errorf("%s: %d \"report final\" lines for record %d, want 1", g.file, n, id)
		}
	}
}

// waitSettled waits until no push to subs is in flight and every message
// the relay delivered there was acked: the system has acted on every
// duplicate it was given.
func waitSettled(t *testing.T, e *env, seen *deliveries, subs []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		inFlight := int64(0)
		for _, sub := range subs {
			inFlight += e.stack.Relay.Stats(sub).InFlight
		}
		acked, all := map[string]bool{}, map[string]bool{}
		for _, d := range seen.list() {
			all[d.Subscription+"/"+d.MessageID] = true
			if d.Acked {
				acked[d.Subscription+"/"+d.MessageID] = true
			}
		}
		if inFlight == 0 && len(acked) == len(all) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled: %d pushes in flight, %d of %d messages acked", inFlight, len(acked), len(all))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logLine is one line of a process's structured log: the fields the
// tests read.
type logLine struct {
	Message  string `json:"message"`
	RecordID int64  `json:"recordId"`
	Parts    int    `json:"parts"`
	Codec    string `json:"codec"`
}

// logLines returns proc's log lines about record id whose message is msg,
// in order, read from the structured fields of its log file.
func logLines(t *testing.T, e *env, proc string, id int64, msg string) []logLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.logDir, proc+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l logLine
		if json.Unmarshal(line, &l) == nil && l.RecordID == id && l.Message == msg {
			out = append(out, l)
		}
	}
	return out
}

// countLogLines counts proc's log lines about record id whose message is msg.
func countLogLines(t *testing.T, e *env, proc string, id int64, msg string) int {
	t.Helper()
	return len(logLines(t, e, proc, id, msg))
}

// fetchedCodecs counts proc's "fetched" lines for record id by the codec
// they name.
func fetchedCodecs(t *testing.T, e *env, proc string, id int64) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, l := range logLines(t, e, proc, id, "fetched") {
		n[l.Codec]++
	}
	return n
}

// A listener whose every delivery fails: exactly 6 POSTs, then pstest's
// dead-letter policy, DeadLetter, and the record FAILED naming it.
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
		t.Errorf("DeadLetter got %d POSTs, want ≥ 1", got)
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
