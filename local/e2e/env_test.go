package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/fanoutexport/fanoutexport/local/client"
	"github.com/fanoutexport/fanoutexport/local/relay"
	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/local/stack"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/schema"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// Servers the tests use; make test ensures they listen.
var (
	redisAddr = envOr("TEST_REDIS_ADDR", "127.0.0.1:6379")
	amqpURL   = envOr("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	binDir    string
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if testing.Short() {
		// Every test here needs MariaDB, Redis and RabbitMQ and skips
		// (in newEnv, through testdb) under -short: skip the build too.
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	err = stack.Build(ctx, "../..", dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's isolated world: its own databases, Redis key prefix,
// RabbitMQ queues, Pub/Sub and Cloud Storage emulators and processes.
type env struct {
	t      *testing.T
	iso    stack.Isolation
	rdb    *redis.Client
	stack  *stack.Stack
	client *client.Client
	logDir string // one log file per process: {entry point}.log, draintriggers.log
}

type options struct {
	duplicate bool
	backoff   time.Duration
	// envFor returns per-process variables, once e's names are known.
	envFor func(e *env) map[string][]string
	// observe sees every push the relay makes.
	observe func(relay.Delivery)
	// sweepEvery is how often the stack calls the Sweep function
	// (0: stack.DefaultSweepEvery).
	sweepEvery time.Duration
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	ctx := context.Background()
	id := testdb.UniqueName(t, "e2e")
	e := &env{t: t, iso: stack.Isolation{ID: id, DSNs: testdb.Pipeline(t, id), RedisAddr: redisAddr, AMQPURL: amqpURL}}
	user, err := serverenv.OpenDB(e.iso.DSNs.Sources["plt_user"])
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	fund, err := serverenv.OpenDB(e.iso.DSNs.Sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer fund.Close()
	if err := seed.Apply(ctx, user, fund); err != nil {
		t.Fatal(err)
	}
	// Registered before the stack starts, so it runs after the stack stops.
	t.Cleanup(func() {
		if err := e.iso.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	e.rdb = redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { e.rdb.Close() })

	var envFor map[string][]string
	if o.envFor != nil {
		envFor = o.envFor(e)
	}
	if o.backoff == 0 {
		o.backoff = time.Second
	}
	vars := append(e.iso.Env(),
		"RETRY_DELAY=1s",
		"NOT_FOUND_DELAY=200ms",
		"NOT_FOUND_ATTEMPTS=3",
		"CLAIM_TTL=30s",
		// Source times are UTC whatever the process's zone.
		"TZ=America/Sao_Paulo",
		"LOG_LEVEL=DEBUG",
	)
	logDir := filepath.Join(t.TempDir(), "logs")
	os.MkdirAll(logDir, 0o755)
	st, err := stack.Start(ctx, stack.Config{
		BinDir: binDir, Project: "e2e-project", PubSubAddr: "127.0.0.1:0", GCSHost: "127.0.0.1", GCSPort: 0,
		Bucket: "reports", Backoff: o.backoff, AckDeadline: 30 * time.Second, Duplicate: o.duplicate,
		Env: vars, EnvFor: envFor, LogDir: logDir, Observe: o.observe, SweepEvery: o.sweepEvery,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.stack = st
	e.logDir = logDir
	t.Cleanup(func() {
		st.Close()
		if t.Failed() {
			t.Logf("process logs:\n%s", st.AllLogs())
		}
	})
	db, err := serverenv.OpenDB(e.iso.DSNs.Record)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.client = &client.Client{
		Records: record.NewRepo(db), State: state.New(e.rdb, e.iso.KeyPrefix(), 10*time.Minute),
		AMQPURL: amqpURL, TriggerQueue: e.iso.Queues()["TRIGGER_QUEUE"], StorageURL: st.StorageURL,
	}
	return e
}

// wait waits for record id to be final.
func (e *env) wait(id int64, timeout time.Duration) record.Record {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rec, err := e.client.Wait(ctx, id, nil)
	if err != nil {
		e.t.Fatalf("record %d: %v", id, err)
	}
	return rec
}

// request inserts a record and publishes its ID.
func (e *env) request(typ, params string) int64 {
	e.t.Helper()
	id, err := e.client.Request(context.Background(), typ, []byte(params))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// hashExists reports whether record id's hash is still in Redis.
func (e *env) hashExists(id int64) bool {
	n, err := e.rdb.Exists(context.Background(), e.client.State.Key(id)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n == 1
}

// hashGone waits briefly for record id's hash to go: functions mark the
// record final first and delete the hash right after.
func (e *env) hashGone(id int64) bool {
	e.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !e.hashExists(id) {
			return true
		}
	}
	return false
}

// parked pops every message from our parking queue.
func (e *env) parked() []amqp.Delivery {
	e.t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(e.iso.Queues()["PARKED_QUEUE"], true)
		if err != nil {
			e.t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// emptyDatabase creates a throwaway database with no tables.
func (e *env) emptyDatabase(suffix string) string {
	e.t.Helper()
	dsns := schema.DSNs{Record: testdb.Server() + e.iso.ID + "_" + suffix}
	if err := schema.CreateDatabase(context.Background(), dsns.Record); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { schema.Drop(context.Background(), dsns) })
	return dsns.Record
}

// deliveries records every push the relay makes (give its add to
// options.observe), for tests that follow messages through faults.
type deliveries struct {
	mu  sync.Mutex
	all []relay.Delivery
}

func (d *deliveries) add(x relay.Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, x)
}

// list returns the pushes so far, in the order they ended.
func (d *deliveries) list() []relay.Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.all)
}

// keepVersions turns on object versioning in the run's bucket, through
// the emulator's JSON API as a user would, so that every upload of a
// report's object stays listable (see uploads).
func (e *env) keepVersions() {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPatch, e.stack.StorageURL+"/storage/v1/b/reports", strings.NewReader(`{"versioning":{"enabled":true}}`))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("enable bucket versioning: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("enable bucket versioning: %s %s", resp.Status, body)
	}
}

// uploads counts the object versions written under record id's prefix
// (needs keepVersions): one per completed upload.
func (e *env) uploads(id int64) int {
	e.t.Helper()
	objs, _, err := e.stack.GCS.ListObjectsWithOptions("reports", fakestorage.ListOptions{Prefix: fmt.Sprintf("reports/%d/", id), Versions: true})
	if err != nil {
		e.t.Fatalf("list object versions of record %d: %v", id, err)
	}
	return len(objs)
}
