package trigger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/completion"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
	"github.com/fanoutexport/fanoutexport/shared/testenv"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/trigger"
)

// panicOnCreate is a go-redis hook that panics, as a buggy dependency
// would, when the state store creates the hash of a record in times (the
// create script, the one given the report type): times[id] more times,
// -1 for ever.
type panicOnCreate struct {
	prefix string
	mu     sync.Mutex
	times  map[int64]int
}

func (h *panicOnCreate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *panicOnCreate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *panicOnCreate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); (name == "evalsha" || name == "eval") && slices.Contains(cmd.Args(), any(state.FieldReportType)) {
			for _, a := range cmd.Args() {
				s, _ := a.(string)
				id, err := strconv.ParseInt(strings.TrimPrefix(s, h.prefix+"FileDownloadRecordEntity-"), 10, 64)
				if !strings.HasPrefix(s, h.prefix) || err != nil {
					continue
				}
				h.mu.Lock()
				n := h.times[id]
				if n > 0 {
					h.times[id] = n - 1
				}
				h.mu.Unlock()
				if n != 0 {
					panic(fmt.Sprintf("test dependency panics on record %d", id))
				}
			}
		}
		return next(ctx, cmd)
	}
}

// A panic in a trigger's goroutine (here in the Redis client the
// dispatcher was given, while it creates the report's hash) must not take
// DrainTriggers down: it is logged with its stack and the record, and the
// trigger goes the way of any other dispatch error: retried through the
// retry queue, and after MAX_ATTEMPTS the record FAILED with the reason
// and announced. Record "once" panics on its first attempt only and is
// dispatched on its second; record "always" panics on each of its 3 and
// ends FAILED. Against the real RabbitMQ, MariaDB and Redis (own queues,
// database, key prefix) and pstest.
func TestConsumerRecoversPanicInDispatch(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	name := testdb.UniqueName(t, "panic")
	db := testdb.New(t, "panic", record.DDL)
	repo := record.NewRepo(db)
	iso := stack.Isolation{ID: name, RedisAddr: "127.0.0.1:6379", AMQPURL: "amqp://guest:guest@127.0.0.1:5672/"}
	t.Cleanup(func() {
		if err := iso.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	q := iso.Queues()
	cfg := config.DrainTriggers{
		PubSub: config.PubSub{ProjectID: testenv.Project}, AMQPURL: iso.AMQPURL,
		TriggerQueue: q["TRIGGER_QUEUE"], RetryQueue: q["RETRY_QUEUE"], WaitQueue: q["WAIT_QUEUE"], ParkedQueue: q["PARKED_QUEUE"], ThrottleQueue: q["THROTTLE_QUEUE"],
		RetryDelay: 100 * time.Millisecond, MaxAttempts: 3, NotFoundDelay: 100 * time.Millisecond, NotFoundAttempts: 3, ThrottleDelay: time.Second, Prefetch: 4,
	}

	psc, opts := testenv.PubSub(t, topology.StageTopic(1), topology.TopicCompleted)
	stageSub, completedSub := "projects/p/subscriptions/"+name+"-stage1", "projects/p/subscriptions/"+name+"-completed"
	testenv.Subscribe(t, psc, stageSub, topology.StageTopic(1))
	testenv.Subscribe(t, psc, completedSub, topology.TopicCompleted)
	b, err := bus.New(ctx, testenv.Project, topology.Names{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ann, err := completion.NewAnnouncer(repo, b, nil, cfg.Completion)
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testenv.RedisPrefix(t, iso.ID)
	ids := map[string]int64{}
	for _, k := range []string{"once", "always"} {
		if ids[k], err = repo.Insert(ctx, "withdraw_by_tag", []byte(seed.Params)); err != nil {
			t.Fatal(err)
		}
	}
	hook := &panicOnCreate{prefix: prefix, times: map[int64]int{ids["once"]: 1, ids["always"]: -1}}
	rdb.AddHook(hook)

	var logs testenv.LogBuffer
	c := &trigger.Consumer{Cfg: cfg, Log: slog.New(slog.NewJSONHandler(&logs, nil)), Dispatcher: &trigger.Dispatcher{
		Records: repo, State: state.New(rdb, prefix, time.Minute), Bus: b, Announce: ann}}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()

	conn, err := amqp.Dial(iso.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := trigger.DeclareTrigger(ch, cfg.TriggerQueue); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := ch.PublishWithContext(ctx, "", cfg.TriggerQueue, false, false, amqp.Publishing{Body: []byte(strconv.FormatInt(id, 10))}); err != nil {
			t.Fatal(err)
		}
	}

	final := func(id int64) record.Record {
		t.Helper()
		var rec record.Record
		waitFor(ctx, t, fmt.Sprintf("record %d to leave PENDING", id), func() bool {
			rec, err = repo.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return rec.Status == record.Failed || (rec.Status == record.Processing && id == ids["once"])
		})
		return rec
	}
	got := map[string]string{}
	for k, id := range ids {
		rec := final(id)
		got[k] = rec.Status.String() + " " + rec.FailReason
	}
	want := map[string]string{
		"once":   "PROCESSING ",
		"always": fmt.Sprintf("FAILED DrainTriggers could not dispatch the report after 3 attempts: dispatch panicked: test dependency panics on record %d", ids["always"]),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	stage1 := testenv.Pull(t, psc, stageSub, 1)
	if len(stage1) != 1 || stage1[0].Attributes["recordId"] != strconv.FormatInt(ids["once"], 10) {
		t.Errorf("stage-1 messages: %v; want one, for record %d", stage1, ids["once"])
	}
	if done := testenv.Pull(t, psc, completedSub, 1); len(done) != 1 || done[0].Attributes[completion.AttrRecordID] != strconv.FormatInt(ids["always"], 10) {
		t.Errorf("completion events: %v; want one, for record %d", done, ids["always"])
	}

	// Every trigger settled: none left in any queue, none parked.
	waitFor(ctx, t, "every trigger settled", func() bool {
		for _, name := range []string{cfg.TriggerQueue, cfg.RetryQueue, cfg.ParkedQueue} {
			qs, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
			if err != nil {
				t.Fatalf("inspect %s: %v", name, err)
			}
			if qs.Messages != 0 {
				return false
			}
		}
		return c.Handled() == 1+1+2+1 // once: panic, dispatch; always: 2 retries, FAILED
	})

	// Each panic logged once, with its stack and the record.
	panics := map[int64]int{}
	for line := range strings.Lines(logs.String()) {
		var l struct {
			Msg      string `json:"msg"`
			RecordID int64  `json:"recordId"`
			Stack    string `json:"stack"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l.Msg != "dispatch panicked" {
			continue
		}
		if !strings.Contains(l.Stack, "(*panicOnCreate).ProcessHook") {
			t.Errorf("panic logged without the stack of the panic: %q", l.Stack)
		}
		panics[l.RecordID]++
	}
	if diff := cmp.Diff(map[int64]int{ids["once"]: 1, ids["always"]: 3}, panics); diff != "" {
		t.Errorf("panics logged per record (-want +got):\n%s", diff)
	}
}

// waitFor polls cond until it holds, failing the test if ctx ends first.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
