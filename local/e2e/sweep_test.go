package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// sweepLimit is the sweeper's SWEEP_PENDING_AFTER and SWEEP_PROCESSING_AFTER
// in TestSweeper: the least its config accepts. The test ages records in
// its own database instead of waiting that long.
const sweepLimit = time.Minute

// Issue 7's test 3, through the real stack: the Sweep function served by
// its own process and called every 200 ms by the stack, DrainTriggers with
// MAX_IN_FLIGHT=1, and a stage-2 listener whose database has no tables
// (its first failure is retried only after 10 minutes, so its report stays
// PROCESSING with its hash). In order:
//
//  1. a record PROCESSING with no hash, quiet for five minutes (longer
//     than RETRY_DELAY + sweep.LostMargin), ends FAILED "report state lost";
//  2. the two-stage report is admitted and stalls at stage 2, holding the
//     one slot;
//  3. one record whose trigger was published and one whose trigger never
//     was, both PENDING for two minutes (twice: the sweeper bumps
//     updated_at when it republishes), are republished exactly once per
//     aging and wait behind the limit, never FAILED;
//  4. the stalled report, aged past SWEEP_PROCESSING_AFTER, ends FAILED
//     naming stage 2 and its missing listener, its hash deleted;
//  5. the slot free, both waiting records end SUCCESS with the golden CSV,
//     uploaded once each.
func TestSweeper(t *testing.T) {
	t.Parallel()
	var throttleQueue string
	e := newEnv(t, options{
		backoff:    10 * time.Minute,
		sweepEvery: 200 * time.Millisecond,
		envFor: func(e *env) map[string][]string {
			throttleQueue = e.iso.Queues()["TRIGGER_QUEUE"] + ".throttled"
			// Registered before the stack starts, so it runs after it stops.
			t.Cleanup(func() { deleteQueue(t, throttleQueue) })
			return map[string][]string{
				"ListenPayment":     {"DSN_PLT_FUND=" + e.emptyDatabase("nopay")},
				stack.DrainTriggers: {"MAX_IN_FLIGHT=1", "THROTTLE_QUEUE=" + throttleQueue, "THROTTLE_DELAY=200ms"},
				stack.Sweep: {
					"SWEEP_PENDING_AFTER=" + sweepLimit.String(),
					"SWEEP_PROCESSING_AFTER=" + sweepLimit.String(),
				},
			}
		},
	})
	e.keepVersions()
	ctx := context.Background()
	db, err := serverenv.OpenDB(e.iso.DSNs.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs := &sweepRuns{e: e}

	// 1. PROCESSING without a hash: DrainTriggers died between the two, or
	// Redis lost the key.
	lost, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, db, lost, record.Pending, record.Processing)
	age(t, db, lost, record.Processing, 5*time.Minute)
	if rec := e.wait(lost, 30*time.Second); rec.Status != record.Failed || rec.FailReason != "report state lost" {
		t.Fatalf("record %d PROCESSING without a hash: %s %q, want FAILED %q", lost, rec.Status, rec.FailReason, "report state lost")
	}
	lostBy := func(r stack.SweepRun) []int64 { return r.Result.Lost }
	// The record is final before the run that made it so has answered.
	runs.waitUntil(t, fmt.Sprintf("a sweep run reporting record %d lost", lost), func() bool { return runs.count(lostBy, lost) > 0 })

	// 2. The two-stage report takes the one slot and stalls at stage 2.
	stuck := e.request("withdraw_by_tag_with_payments", seed.Params)
	rep, _ := report.Lookup("withdraw_by_tag_with_payments")
	stages := rep.StageSources()
	if len(stages) != 2 || !slices.Equal(stages[1], []string{"plt_fund.vs_payment"}) {
		t.Fatalf("withdraw_by_tag_with_payments has stages %v; the test expects plt_fund.vs_payment alone at stage 2", stages)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("record %d: stage 1 done and plt_fund.vs_payment failed once", stuck), func() bool {
		snap, err := e.client.State.Read(ctx, stuck, stages)
		if err != nil {
			return false // not created yet
		}
		for _, src := range stages[0] {
			if !snap.Done[1][src] {
				return false
			}
		}
		return snap.Errors["plt_fund.vs_payment"] != ""
	})

	// 3. Two records behind the limit, PENDING for two minutes: one whose
	// trigger is bouncing through the throttle queue, one whose trigger
	// was never published.
	published := e.request("withdraw_by_tag", seed.Params)
	unpublished, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	waiting := []int64{published, unpublished}
	republished := func(r stack.SweepRun) []int64 { return r.Result.Republished }
	for round := 1; round <= 2; round++ {
		for _, id := range waiting {
			age(t, db, id, record.Pending, 2*sweepLimit)
		}
		runs.waitUntil(t, fmt.Sprintf("records %v republished %d times", waiting, round), func() bool {
			return runs.count(republished, published) == round && runs.count(republished, unpublished) == round
		})
	}
	// The republished trigger reached DrainTriggers, which held it back.
	waitFor(t, 30*time.Second, fmt.Sprintf("DrainTriggers to throttle record %d's republished trigger", unpublished), func() bool {
		return countLogLines(t, e, stack.DrainTriggers, unpublished, "report waits for capacity") >= 1
	})
	// Five more runs: nothing republished again (once per interval),
	// nothing failed for waiting.
	runs.waitMore(t, 5)
	for _, id := range waiting {
		if got := runs.count(republished, id); got != 2 {
			t.Errorf("record %d republished %d times for two agings, want 2", id, got)
		}
		rec, err := e.client.Records.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != record.Pending || rec.FailReason != "" {
			t.Errorf("record %d waiting behind MAX_IN_FLIGHT=1 is %s %q, want PENDING", id, rec.Status, rec.FailReason)
		}
	}
	if rec, err := e.client.Records.Get(ctx, stuck); err != nil || rec.Status != record.Processing {
		t.Fatalf("record %d is %s (%v), want still PROCESSING before it is aged", stuck, rec.Status, err)
	}

	// 4. The stalled report past SWEEP_PROCESSING_AFTER.
	age(t, db, stuck, record.Processing, 2*sweepLimit)
	wantStuck := "report still PROCESSING after 1m0s: stage 2 of 2; listeners done: none; missing: plt_fund.vs_payment"
	if rec := e.wait(stuck, 30*time.Second); rec.Status != record.Failed || rec.FailReason != wantStuck {
		t.Errorf("stalled record %d: %s %q, want FAILED %q", stuck, rec.Status, rec.FailReason, wantStuck)
	}
	timedOut := func(r stack.SweepRun) []int64 { return r.Result.TimedOut }
	runs.waitUntil(t, fmt.Sprintf("a sweep run reporting record %d timed out", stuck), func() bool { return runs.count(timedOut, stuck) > 0 })
	if !e.hashGone(stuck) {
		t.Errorf("hash of record %d, FAILED by the sweeper, still in Redis", stuck)
	}
	if n := e.uploads(stuck); n != 0 {
		t.Errorf("record %d FAILED by the sweeper has %d uploads, want none", stuck, n)
	}

	// 5. The slot is free: both waiting records run, one at a time.
	golden := seed.Golden(seed.GoldenWithdrawByTag)
	for _, id := range waiting {
		rec := e.wait(id, 60*time.Second)
		if rec.Status != record.Success {
			t.Errorf("record %d: %s %q, want SUCCESS", id, rec.Status, rec.FailReason)
			continue
		}
		got, err := e.client.Fetch(ctx, rec.FilePath)
		if err != nil {
			t.Errorf("record %d: %v", id, err)
			continue
		}
		if diff := cmp.Diff(string(golden), string(got)); diff != "" {
			t.Errorf("record %d: CSV differs from the golden (-want +got):\n%s", id, diff)
		}
		// Its three triggers (the first, two republished) ran it once.
		if n := e.uploads(id); n != 1 {
			t.Errorf("record %d: %d uploads, want 1", id, n)
		}
		if !e.hashGone(id) {
			t.Errorf("hash of record %d still in Redis", id)
		}
	}
	// Each record ended by one run only.
	if got := runs.count(lostBy, lost); got != 1 {
		t.Errorf("record %d reported lost by %d sweep runs, want 1", lost, got)
	}
	if got := runs.count(timedOut, stuck); got != 1 {
		t.Errorf("record %d timed out by %d sweep runs, want 1", stuck, got)
	}
	for _, r := range e.stack.Sweeps() {
		if r.Err != "" {
			t.Errorf("sweep run at %s failed: %s", r.Started.Format(time.StampMilli), r.Err)
		}
	}
	t.Logf("%d sweep runs", len(e.stack.Sweeps()))
}

// sweepRuns reads the stack's Sweep runs.
type sweepRuns struct{ e *env }

// count counts the runs whose field (ids) holds id.
func (s *sweepRuns) count(field func(stack.SweepRun) []int64, id int64) int {
	n := 0
	for _, r := range s.e.stack.Sweeps() {
		if slices.Contains(field(r), id) {
			n++
		}
	}
	return n
}

// waitUntil waits, run by run, until cond holds.
func (s *sweepRuns) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n := len(s.e.stack.Sweeps()); !cond(); n++ {
		if _, err := s.e.stack.WaitSweeps(ctx, n+1); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// waitMore waits for n more runs to end.
func (s *sweepRuns) waitMore(t *testing.T, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.e.stack.WaitSweeps(ctx, len(s.e.stack.Sweeps())+n); err != nil {
		t.Fatal(err)
	}
}

// setStatus moves record id from status from to status to, as a crashed
// function would have left it.
func setStatus(t *testing.T, db *sql.DB, id int64, from, to record.Status) {
	t.Helper()
	res, err := db.ExecContext(context.Background(), `UPDATE file_download_record SET status = ? WHERE id = ? AND status = ?`, to, id, from)
	if err != nil {
		t.Fatalf("set record %d %s: %v", id, to, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("set record %d %s: %d rows changed (%v), want 1", id, to, n, err)
	}
}

// age moves record id's updated_at back by d, as if it had been quiet that
// long, provided it is still in status st.
func age(t *testing.T, db *sql.DB, id int64, st record.Status, d time.Duration) {
	t.Helper()
	res, err := db.ExecContext(context.Background(), `UPDATE file_download_record SET updated_at = updated_at - INTERVAL ? MICROSECOND WHERE id = ? AND status = ?`, d.Microseconds(), id, st)
	if err != nil {
		t.Fatalf("age record %d: %v", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("age record %d by %s: %d rows changed (%v), want 1 (is it still %s?)", id, d, n, err, st)
	}
}

// waitFor polls cond every 50 ms until it holds, for states that announce
// themselves nowhere but in the database, Redis or a log file.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}
