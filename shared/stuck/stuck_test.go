package stuck_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/stuck"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

const amqpURL = "amqp://guest:guest@127.0.0.1:5672/"

// env is one test's own record database, Redis key prefix and trigger queue.
type env struct {
	db    *sql.DB
	repo  *record.Repo
	state *state.Store
	cfg   config.Sweep
	ch    *amqp.Channel
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := testdb.New(t, "sweeptest", record.DDL)
	rdb, err := serverenv.OpenRedis(config.Redis{Addr: "127.0.0.1:6379"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	prefix := testdb.UniqueName(t, "sweeptest") + ":"
	t.Cleanup(func() {
		keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
		if err != nil {
			t.Errorf("redis keys %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := testdb.UniqueName(t, "sweeptest.trigger")
	if err := trigger.DeclareTrigger(ch, queue); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			t.Errorf("delete %s: %v", queue, err)
		}
	})
	return &env{
		db: db, repo: record.NewRepo(db), state: state.New(rdb, prefix, 10*time.Minute), ch: ch,
		cfg: config.Sweep{AMQPURL: amqpURL, TriggerQueue: queue, PendingAfter: 15 * time.Minute, ProcessingAfter: 2 * time.Hour,
			RetryDelay: time.Minute},
	}
}

func (e *env) sweeper(log io.Writer) *stuck.Sweeper {
	return &stuck.Sweeper{Cfg: e.cfg, Repo: e.repo, State: e.state, Log: slog.New(slog.NewJSONHandler(log, nil))}
}

// insert adds a record of reportType in status, last updated age ago.
func (e *env) insert(t *testing.T, reportType string, status record.Status, age time.Duration) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := e.repo.Insert(ctx, reportType, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ExecContext(ctx, `UPDATE file_download_record SET status = ?, updated_at = CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND WHERE id = ?`,
		status, int64(age.Seconds()), id); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) get(t *testing.T, id int64) record.Record {
	t.Helper()
	rec, err := e.repo.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// drain returns every trigger body in the test's queue.
func (e *env) drain(t *testing.T) []string {
	t.Helper()
	var bodies []string
	for {
		d, ok, err := e.ch.Get(e.cfg.TriggerQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return bodies
		}
		if d.DeliveryMode != amqp.Persistent {
			t.Errorf("trigger %s has delivery mode %d, want persistent", d.Body, d.DeliveryMode)
		}
		bodies = append(bodies, string(d.Body))
	}
}

func TestProcessingWithoutHashIsLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	stranded := e.insert(t, "withdraw_by_tag", record.Processing, 10*time.Minute)
	// Just made PROCESSING: its hash may be on the way, so it is left alone.
	fresh := e.insert(t, "withdraw_by_tag", record.Processing, 0)
	// Quiet for longer than a minute but less than RETRY_DELAY (1m) plus
	// the margin: DrainTriggers may be retrying the hash's creation (it touches
	// the record each time it schedules a retry), so it is not lost yet.
	// The sweeper used to fail it after one quiet minute.
	retried := e.insert(t, "withdraw_by_tag", record.Processing, 90*time.Second)
	// A finished record is never touched.
	finished := e.insert(t, "withdraw_by_tag", record.Success, 3*time.Hour)

	res, err := e.sweeper(io.Discard).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stuck.Result{Lost: []int64{stranded}}, res); diff != "" {
		t.Errorf("Run (-want +got):\n%s", diff)
	}
	got := map[int64][2]string{}
	for _, id := range []int64{stranded, fresh, retried, finished} {
		r := e.get(t, id)
		got[id] = [2]string{r.Status.String(), r.FailReason}
	}
	want := map[int64][2]string{
		stranded: {"FAILED", stuck.ReasonLost},
		fresh:    {"PROCESSING", ""},
		retried:  {"PROCESSING", ""},
		finished: {"SUCCESS", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records after the sweep (-want +got):\n%s", diff)
	}
}

func TestStuckProcessingNamesStageAndListeners(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	rep, _ := report.Lookup("withdraw_by_tag_with_payments")
	if len(rep.Stages) != 2 || len(rep.Stages[0]) != 2 {
		t.Fatalf("report %s no longer has two stages with two sources in stage 1: fix the test", rep.Type)
	}
	doneSrc, missingSrc := rep.Stages[0][0], rep.Stages[0][1]
	mk := func(age time.Duration) int64 {
		id := e.insert(t, rep.Type, record.Processing, age)
		if ok, err := e.state.Create(ctx, id, rep.Type, []byte(`{}`)); err != nil || !ok {
			t.Fatalf("Create = %v, %v", ok, err)
		}
		if _, err := e.state.MarkDone(ctx, id, 1, doneSrc.Name(), doneSrc.Dataset(), 1, 0, 0); err != nil {
			t.Fatal(err)
		}
		return id
	}
	overdue := mk(3 * time.Hour)
	running := mk(time.Hour) // slow, but within the limit

	var log bytes.Buffer
	res, err := e.sweeper(&log).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(stuck.Result{TimedOut: []int64{overdue}}, res); diff != "" {
		t.Errorf("Run (-want +got):\n%s", diff)
	}
	rec := e.get(t, overdue)
	want := fmt.Sprintf("report still PROCESSING after 2h0m0s: stage 1 of 2; listeners done: %s; missing: %s", doneSrc.Name(), missingSrc.Name())
	if rec.Status != record.Failed || rec.FailReason != want {
		t.Errorf("stuck record = %v %q, want FAILED %q", rec.Status, rec.FailReason, want)
	}
	if _, err := e.state.Read(ctx, overdue, rep.StageSources()); !errors.Is(err, state.ErrGone) {
		t.Errorf("hash of the FAILED record: Read = %v, want ErrGone", err)
	}
	if r := e.get(t, running); r.Status != record.Processing {
		t.Errorf("record within the limit = %v, want PROCESSING", r.Status)
	}
	if _, err := e.state.Read(ctx, running, rep.StageSources()); err != nil {
		t.Errorf("hash of the running record: %v", err)
	}
	if !strings.Contains(log.String(), fmt.Sprintf(`"recordId":%d`, overdue)) {
		t.Errorf("no log line names record %d:\n%s", overdue, log.String())
	}
}

func TestStuckReasonAfterLastStage(t *testing.T) {
	t.Parallel()
	rep, _ := report.Lookup("withdraw_by_tag")
	done := map[string]bool{}
	for _, s := range rep.SourceNames(1) {
		done[s] = true
	}
	got := stuck.Stuck(rep, true, state.Snapshot{ReportType: rep.Type, Done: map[int]map[string]bool{1: done}}, time.Hour)
	want := "report still PROCESSING after 1h0m0s: every listener of its 1 stage(s) done; the aggregator did not finish"
	if got != want {
		t.Errorf("Stuck = %q, want %q", got, want)
	}
}

// TestPendingRepublishedOnce: sweepers running at once publish each stale
// PENDING record's ID once, a run within the interval publishes nothing,
// and the records stay PENDING. Many records make the sweepers overlap.
func TestPendingRepublishedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const n = 60
	var stale []int64
	var want []string
	for range n {
		id := e.insert(t, "withdraw_by_tag", record.Pending, 20*time.Minute)
		stale = append(stale, id)
		want = append(want, fmt.Sprintf(`{"recordId":%d}`, id))
	}
	sort.Strings(want)
	recent := e.insert(t, "withdraw_by_tag", record.Pending, time.Minute)

	const sweepers = 4
	results := make([]stuck.Result, sweepers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range sweepers {
		wg.Go(func() {
			<-start
			var err error
			if results[i], err = e.sweeper(io.Discard).Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	var republished []int64
	for _, r := range results {
		republished = append(republished, r.Republished...)
	}
	sort.Slice(republished, func(i, j int) bool { return republished[i] < republished[j] })
	if diff := cmp.Diff(stale, republished); diff != "" {
		t.Errorf("republished by %d concurrent sweeps (-want +got):\n%s", sweepers, diff)
	}
	// A sweep within the interval publishes nothing more.
	if res, err := e.sweeper(io.Discard).Run(ctx); err != nil || len(res.Republished) != 0 {
		t.Errorf("second sweep = %+v, %v; want nothing republished", res, err)
	}
	got := e.drain(t)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("triggers in the queue (-want +got):\n%s", diff)
	}
	if id, err := trigger.ParseTrigger([]byte(got[0])); err != nil || id == 0 {
		t.Errorf("DrainTriggers reads %q as %d, %v; want a record ID", got[0], id, err)
	}
	for _, id := range append(stale, recent) {
		if r := e.get(t, id); r.Status != record.Pending {
			t.Errorf("record %d = %v, want still PENDING", id, r.Status)
		}
	}
}

func TestMissingTriggerQueueIsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.insert(t, "withdraw_by_tag", record.Pending, time.Hour)
	e.cfg.TriggerQueue = testdb.UniqueName(t, "sweeptest.absent")
	if _, err := e.sweeper(io.Discard).Run(context.Background()); err == nil || !strings.Contains(err.Error(), e.cfg.TriggerQueue) {
		t.Errorf("Run with no trigger queue = %v, want an error naming it", err)
	}
	if r := e.get(t, id); r.Status != record.Pending {
		t.Errorf("record = %v, want still PENDING", r.Status)
	}
}
