package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// burstReports and burstInFlight are issue 7's test 4: 200 reports
// requested at once with MAX_IN_FLIGHT=8.
const (
	burstReports  = 200
	burstInFlight = 8
)

// 200 reports requested at once, through the real DrainTriggers and functions, with
// MAX_IN_FLIGHT=8: every record ends SUCCESS with the golden CSV, a goroutine
// polling the record table never sees more than 8 PROCESSING, no Redis key
// and no trigger is left anywhere. THROTTLE_DELAY is short (300 ms) so the
// 25 rounds of 8 take seconds, not minutes.
//
// Goroutines: the function processes have no debug endpoint, so this test
// cannot count theirs. DrainTriggers' long-running process (the trigger
// consumer and the completion forwarder, as local/cmd/draintriggers runs them) is
// checked in-process by TestConsumerKeepsInFlightLimit in shared/trigger:
// the same burst and limit, then runtime.NumGoroutine back to its baseline
// once both are stopped and closed.
func TestBurstWithInFlightLimit(t *testing.T) {
	t.Parallel()
	var throttleQueue string
	e := newEnv(t, options{envFor: func(e *env) map[string][]string {
		throttleQueue = e.iso.Queues()["TRIGGER_QUEUE"] + ".throttled"
		// Registered before the stack starts, so it runs after the
		// stack stops (DrainTriggers declares the queue; isolation does not
		// know it yet).
		t.Cleanup(func() { deleteQueue(t, throttleQueue) })
		return map[string][]string{stack.DrainTriggers: {
			"MAX_IN_FLIGHT=" + strconv.Itoa(burstInFlight),
			"THROTTLE_QUEUE=" + throttleQueue,
			"THROTTLE_DELAY=300ms",
		}}
	}})
	ctx := context.Background()

	// Both seed reports, alternating: the enriched one runs two stages.
	kinds := []golden{goldens[0], goldens[1]}
	ids := make([]int64, burstReports)
	kindOf := map[int64]golden{}
	for i := range ids {
		g := kinds[i%len(kinds)]
		id, err := e.client.Records.Insert(ctx, g.typ, []byte(g.params))
		if err != nil {
			t.Fatal(err)
		}
		ids[i], kindOf[id] = id, g
	}

	db, err := serverenv.OpenDB(e.iso.DSNs.Record)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	var poll burstPoll
	done := make(chan error, 1)
	go func() { done <- poll.run(pollCtx, db) }()

	publishAll(t, e.iso.Queues()["TRIGGER_QUEUE"], ids)

	// Wait until the poller sees every record final (or fails).
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := poll.waitFinal(waitCtx, burstReports); err != nil {
		t.Fatalf("%v; last counts by status %v", err, poll.last())
	}
	stopPoll()
	if err := <-done; err != nil {
		t.Fatalf("poll: %v", err)
	}
	t.Logf("record table polled %d times; at most %d PROCESSING at once (limit %d)", poll.samples, poll.maxProcessing, burstInFlight)
	if poll.maxProcessing > burstInFlight {
		t.Errorf("saw %d records PROCESSING at once, limit %d", poll.maxProcessing, burstInFlight)
	}
	if poll.maxProcessing < 1 || poll.samples < 2 {
		t.Errorf("poller saw %d PROCESSING over %d samples: it did not observe the run", poll.maxProcessing, poll.samples)
	}

	for _, id := range ids {
		g := kindOf[id]
		rec, err := e.client.Records.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Status != record.Success {
			t.Errorf("record %d (%s) is %s: %s", id, g.typ, rec.Status, rec.FailReason)
			continue
		}
		want := seed.Golden(g.file)
		if wantRows := int64(strings.Count(string(want), "\n") - 1); rec.RowCount != wantRows {
			t.Errorf("record %d: row_count %d, want %d", id, rec.RowCount, wantRows)
		}
		got, err := e.client.Fetch(ctx, rec.FilePath)
		if err != nil {
			t.Errorf("record %d: %v", id, err)
			continue
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("record %d (%s): CSV mismatch (-want +got):\n%s", id, g.file, diff)
		}
	}

	// No hash left: the functions delete it right after the record is
	// final, so give the last ones a moment (hashGone waits).
	for _, id := range ids {
		if !e.hashGone(id) {
			t.Errorf("hash of record %d still in Redis", id)
		}
	}
	keys, err := e.rdb.Keys(ctx, e.iso.KeyPrefix()+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("Redis keys left under %s: %v", e.iso.KeyPrefix(), keys)
	}
	// No trigger left waiting or parked.
	for _, q := range []string{e.iso.Queues()["TRIGGER_QUEUE"], throttleQueue, e.iso.Queues()["RETRY_QUEUE"], e.iso.Queues()["PARKED_QUEUE"]} {
		if n := queueDepth(t, q); n != 0 {
			t.Errorf("queue %s holds %d messages, want 0", q, n)
		}
	}
}

// burstPoll watches the record table's counts by status.
type burstPoll struct {
	mu            sync.Mutex
	samples       int
	maxProcessing int64
	final         int64
	counts        map[record.Status]int64
	changed       chan struct{} // closed and replaced on every sample
}

func (p *burstPoll) run(ctx context.Context, db *sql.DB) error {
	for {
		counts := map[record.Status]int64{}
		rows, err := db.QueryContext(ctx, `SELECT status, COUNT(*) FROM file_download_record GROUP BY status`)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for rows.Next() {
			var s record.Status
			var n int64
			if err := rows.Scan(&s, &n); err != nil {
				rows.Close()
				return err
			}
			counts[s] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil && ctx.Err() == nil {
			return err
		}
		p.mu.Lock()
		p.samples++
		p.counts = counts
		p.maxProcessing = max(p.maxProcessing, counts[record.Processing])
		p.final = counts[record.Success] + counts[record.Failed]
		if p.changed != nil {
			close(p.changed)
			p.changed = nil
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Millisecond): // the sampling period
		}
	}
}

// waitFinal waits for n final records.
func (p *burstPoll) waitFinal(ctx context.Context, n int64) error {
	for {
		p.mu.Lock()
		if p.final >= n {
			p.mu.Unlock()
			return nil
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d final records: %w", n, ctx.Err())
		case <-ch:
		}
	}
}

func (p *burstPoll) last() map[record.Status]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// publishAll publishes every ID to queue on one channel, as fast as the
// broker confirms, as a burst from the upstream would arrive.
func publishAll(t *testing.T, queue string, ids []int64) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := trigger.DeclareTrigger(ch, queue); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confs := make([]*amqp.DeferredConfirmation, 0, len(ids))
	for _, id := range ids {
		c, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: []byte(strconv.FormatInt(id, 10))})
		if err != nil {
			t.Fatalf("publish %d: %v", id, err)
		}
		confs = append(confs, c)
	}
	for i, c := range confs {
		if ok, err := c.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("confirm of trigger %d: %v, %v", ids[i], ok, err)
		}
	}
}

// queueDepth is the number of ready messages in queue.
func queueDepth(t *testing.T, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Messages
}

// deleteQueue deletes a queue of this test's.
func deleteQueue(t *testing.T, queue string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Errorf("delete %s: %v", queue, err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("delete %s: %v", queue, err)
		return
	}
	if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
		t.Errorf("delete %s: %v", queue, err)
	}
}
