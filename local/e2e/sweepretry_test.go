package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// Issue 12's point 5, through the real stack with a real fault: DrainTriggers'
// Redis is a private redis-server, stopped, so every attempt to create the
// report's hash is refused, while the Sweep function (called every 200 ms)
// reads the shared Redis, where the hash is missing. The record is
// PROCESSING, as the first attempt's admission left it.
//
// DrainTriggers retries 2 s apart here; the sweeper is given production's
// RETRY_DELAY (60 s), and after each failed attempt the test ages the
// record by 90 s: the 60 s a production retry waits, and 30 s for the
// trigger to be consumed again. Before the fix, the sweeper FAILed the
// record "report state lost" after the first aging (one quiet minute was
// enough), while DrainTriggers was still retrying. Now every retry touches the
// record and the sweeper waits RETRY_DELAY + 2 minutes: the record stays
// PROCESSING through every retry, and when the attempts run out it ends
// FAILED with DrainTriggers' own reason, naming the refused connection.
func TestSweeperLeavesRetriedDispatchAlone(t *testing.T) {
	t.Parallel()
	const maxAttempts = 5
	r := startPrivateRedis(t)
	e := newEnv(t, options{
		sweepEvery: 200 * time.Millisecond,
		envFor: func(*env) map[string][]string {
			return map[string][]string{
				stack.DrainTriggers: {"REDIS_ADDR=" + r.addr, "RETRY_DELAY=2s", fmt.Sprintf("MAX_ATTEMPTS=%d", maxAttempts)},
				stack.Sweep:         {"RETRY_DELAY=60s"},
			}
		},
	})
	ctx := context.Background()
	db, err := serverenv.OpenDB(e.iso.DSNs.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runs := &sweepRuns{e: e}

	r.kill() // connections to DrainTriggers' Redis are refused from now on
	id, err := e.client.Records.Insert(ctx, "withdraw_by_tag", []byte(seed.Params))
	if err != nil {
		t.Fatal(err)
	}
	setStatus(t, db, id, record.Pending, record.Processing)
	if err := e.client.Publish(ctx, []byte(fmt.Sprint(id))); err != nil {
		t.Fatal(err)
	}
	const retrying = "dispatch failed; retrying later"
	for attempt := 1; attempt < maxAttempts; attempt++ {
		waitFor(t, 30*time.Second, fmt.Sprintf("DrainTriggers' attempt %d on record %d to fail", attempt, id), func() bool {
			return countLogLines(t, e, stack.DrainTriggers, id, retrying) >= attempt
		})
		// The time a production retry takes, passed at once. The record
		// may have moved on meanwhile (the next attempt failed too, or ran
		// out): age only a PROCESSING record.
		if _, err := db.ExecContext(ctx, `UPDATE file_download_record SET updated_at = updated_at - INTERVAL 90 SECOND WHERE id = ? AND status = ?`, id, record.Processing); err != nil {
			t.Fatal(err)
		}
		runs.waitMore(t, 3)
		rec, err := e.client.Records.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != record.Processing {
			t.Fatalf("after DrainTriggers' failed attempt %d of %d: record %d is %s %q, want PROCESSING (DrainTriggers is still retrying)",
				attempt, maxAttempts, id, rec.Status, rec.FailReason)
		}
	}
	rec := e.wait(id, 60*time.Second)
	wantPrefix := fmt.Sprintf("DrainTriggers could not dispatch the report after %d attempts: ", maxAttempts)
	if rec.Status != record.Failed || !strings.HasPrefix(rec.FailReason, wantPrefix) || !strings.Contains(rec.FailReason, "connection refused") {
		t.Errorf("record %d: %s %q; want FAILED starting %q and naming the refused connection", id, rec.Status, rec.FailReason, wantPrefix)
	}
	if strings.Contains(rec.FailReason, "lost") {
		t.Errorf("record %d: reason %q says lost for a report DrainTriggers was retrying", id, rec.FailReason)
	}
	lostBy := func(r stack.SweepRun) []int64 { return r.Result.Lost }
	if n := runs.count(lostBy, id); n != 0 {
		t.Errorf("record %d reported lost by %d sweep runs, want none", id, n)
	}
	t.Logf("%d sweep runs; record %d ended %q", len(e.stack.Sweeps()), id, rec.FailReason)
}
