package config

import (
	"context"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// clean unsets every config variable, and K_SERVICE, for the test
// (t.Setenv restores them), so the runner's environment cannot leak in.
func clean(t *testing.T) {
	t.Helper()
	for _, n := range append(Variables(), "K_SERVICE") {
		t.Setenv(n, "")
		os.Unsetenv(n)
	}
}

func setenv(t *testing.T, env map[string]string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
}

var (
	defPubSub  = PubSub{ProjectID: "local-project"}
	defRedis   = Redis{Addr: "127.0.0.1:6379", StateTTL: 10 * time.Minute}
	defRecords = Records{DSN: "root@tcp(127.0.0.1:3306)/plt_report"}
	defDB      = DB{MaxConns: 2}
	defLog     = Log{Level: "INFO", TraceExporter: "none"}
)

func defaultDrainTriggers() DrainTriggers {
	return DrainTriggers{
		Log: defLog, PubSub: defPubSub, DB: defDB, Redis: defRedis, Records: defRecords,
		AMQPURL: "amqp://guest:guest@127.0.0.1:5672/", TriggerQueue: "report.trigger",
		RetryQueue: "report.trigger.retry", RetryDelay: 60 * time.Second, MaxAttempts: 6,
		WaitQueue: "report.trigger.wait", NotFoundDelay: 5 * time.Second, NotFoundAttempts: 5,
		ParkedQueue: "report.trigger.parked", Prefetch: 32, DrainFor: 50 * time.Second,
		MaxInFlight: 10, ThrottleQueue: "report.trigger.throttled", ThrottleDelay: 5 * time.Second, RedisMemoryHighWater: 0.8,
		CompletedExchange: "report.completed", PartRows: 250000, MaxParts: 64,
	}
}

func defaultAggregator() Aggregator {
	return Aggregator{Log: defLog, PubSub: defPubSub, DB: defDB, Redis: defRedis, Records: defRecords,
		Storage: Storage{Bucket: "reports"}, ChunkBytes: 261120, ClaimTTL: 540 * time.Second}
}

// Not parallel: these tests set the process environment.
func TestDefaults(t *testing.T) {
	clean(t)
	ctx := context.Background()

	var agg Aggregator
	if err := Load(ctx, &agg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultAggregator(), agg); diff != "" {
		t.Errorf("Aggregator defaults (-want +got):\n%s", diff)
	}
	var drain DrainTriggers
	if err := Load(ctx, &drain); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaultDrainTriggers(), drain); diff != "" {
		t.Errorf("DrainTriggers defaults (-want +got):\n%s", diff)
	}
	var dlq DeadLetter
	if err := Load(ctx, &dlq); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(DeadLetter{Log: defLog, PubSub: defPubSub, DB: defDB, Redis: defRedis, Records: defRecords, Storage: Storage{Bucket: "reports"}}, dlq); diff != "" {
		t.Errorf("DeadLetter defaults (-want +got):\n%s", diff)
	}
	for _, src := range report.Sources {
		l, err := LoadListener(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		want := Listener{Log: defLog, PubSub: defPubSub, DB: defDB, Redis: defRedis, DSN: "root@tcp(127.0.0.1:3306)/" + src.Database, ChunkBytes: 261120}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("Listener %s defaults (-want +got):\n%s", src.Name(), diff)
		}
	}
}

func TestOverrides(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want func(*Aggregator)
	}{
		{"redis", map[string]string{"REDIS_ADDR": "10.0.0.3:6378", "REDIS_PASSWORD": "secret", "REDIS_TLS": "true",
			"REDIS_CA_CERT": "-----BEGIN CERTIFICATE-----", "REDIS_DB": "2", "REDIS_KEY_PREFIX": "t1:", "STATE_TTL": "15m"},
			func(c *Aggregator) {
				c.Redis = Redis{Addr: "10.0.0.3:6378", Password: "secret", TLS: true, CACert: "-----BEGIN CERTIFICATE-----",
					DB: 2, KeyPrefix: "t1:", StateTTL: 15 * time.Minute}
			}},
		{"pubsub and storage", map[string]string{"GOOGLE_CLOUD_PROJECT": "prod", "PUBSUB_NAME_PREFIX": "x-", "REPORT_BUCKET": "b"},
			func(c *Aggregator) {
				c.PubSub = PubSub{ProjectID: "prod", NamePrefix: "x-"}
				c.Storage.Bucket = "b"
			}},
		{"aggregator", map[string]string{"CHUNK_BYTES": "1024", "CLAIM_TTL": "2m", "RECORD_DSN": "u:p@tcp(db:3306)/r"},
			func(c *Aggregator) {
				c.ChunkBytes, c.ClaimTTL, c.Records.DSN = 1024, 2*time.Minute, "u:p@tcp(db:3306)/r"
			}},
		{"row limit", map[string]string{"MAX_REPORT_ROWS": "5000000"},
			func(c *Aggregator) { c.MaxReportRows = 5000000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clean(t)
			setenv(t, tt.env)
			want := defaultAggregator()
			tt.want(&want)
			var got Aggregator
			if err := Load(context.Background(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Aggregator (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDrainTriggersOverrides(t *testing.T) {
	clean(t)
	setenv(t, map[string]string{"AMQP_URL": "amqp://u:p@mq:5672/v", "TRIGGER_QUEUE": "q", "MAX_ATTEMPTS": "3",
		"RETRY_DELAY": "30s", "NOT_FOUND_ATTEMPTS": "1", "SHIM_PREFETCH": "8", "DRAIN_FOR": "55s"})
	want := defaultDrainTriggers()
	want.AMQPURL, want.TriggerQueue, want.MaxAttempts = "amqp://u:p@mq:5672/v", "q", 3
	want.RetryDelay, want.NotFoundAttempts, want.Prefetch, want.DrainFor = 30*time.Second, 1, 8, 55*time.Second
	want.ThrottleQueue = "q.throttled" // derived from TRIGGER_QUEUE
	var got DrainTriggers
	if err := Load(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DrainTriggers (-want +got):\n%s", diff)
	}
}

func TestListenerDSN(t *testing.T) {
	clean(t)
	t.Setenv("DSN_PLT_FUND", "fund:pw@tcp(fund-db:3306)/plt_fund")
	for _, src := range report.Sources {
		l, err := LoadListener(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		want := "root@tcp(127.0.0.1:3306)/" + src.Database
		if src.Database == "plt_fund" {
			want = "fund:pw@tcp(fund-db:3306)/plt_fund"
		}
		if l.DSN != want {
			t.Errorf("%s: DSN = %q, want %q", src.Name(), l.DSN, want)
		}
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		cfg  func() any
		// wantMsg starts the error: the variable, never the Go field.
		wantMsg string
	}{
		{"STATE_TTL below a minute", map[string]string{"STATE_TTL": "10s"}, func() any { return &Aggregator{} }, "STATE_TTL"},
		{"STATE_TTL below a minute, listener", map[string]string{"STATE_TTL": "59s"}, func() any { return &Listener{} }, "STATE_TTL"},
		{"STATE_TTL below a minute, DrainTriggers", map[string]string{"STATE_TTL": "1s"}, func() any { return &DrainTriggers{} }, "STATE_TTL"},
		{"STATE_TTL not a duration", map[string]string{"STATE_TTL": "ten minutes"}, func() any { return &Aggregator{} }, "STATE_TTL: "},
		{"CLAIM_TTL zero", map[string]string{"CLAIM_TTL": "0s"}, func() any { return &Aggregator{} }, "CLAIM_TTL"},
		{"CLAIM_TTL negative", map[string]string{"CLAIM_TTL": "-1m"}, func() any { return &Aggregator{} }, "CLAIM_TTL"},
		{"MAX_ATTEMPTS zero", map[string]string{"MAX_ATTEMPTS": "0"}, func() any { return &DrainTriggers{} }, "MAX_ATTEMPTS"},
		{"NOT_FOUND_ATTEMPTS zero", map[string]string{"NOT_FOUND_ATTEMPTS": "0"}, func() any { return &DrainTriggers{} }, "NOT_FOUND_ATTEMPTS"},
		{"REDIS_DB not a number", map[string]string{"REDIS_DB": "one"}, func() any { return &DeadLetter{} }, "REDIS_DB: "},
		{"REDIS_TLS not a bool", map[string]string{"REDIS_TLS": "maybe"}, func() any { return &Listener{} }, "REDIS_TLS: "},
		{"CHUNK_BYTES not a number", map[string]string{"CHUNK_BYTES": "256k"}, func() any { return &Listener{} }, "CHUNK_BYTES: "},
		{"MAX_REPORT_ROWS negative, listener", map[string]string{"MAX_REPORT_ROWS": "-1"}, func() any { return &Listener{} }, "MAX_REPORT_ROWS"},
		{"MAX_REPORT_ROWS negative, aggregator", map[string]string{"MAX_REPORT_ROWS": "-5"}, func() any { return &Aggregator{} }, "MAX_REPORT_ROWS"},
		{"MAX_REPORT_ROWS not a number", map[string]string{"MAX_REPORT_ROWS": "1e6"}, func() any { return &Aggregator{} }, "MAX_REPORT_ROWS: "},
		{"SIGNED_URL_TTL over 7 days", map[string]string{"SIGNED_URL_TTL": "168h1s"}, func() any { return &Aggregator{} }, "SIGNED_URL_TTL"},
		{"SIGNED_URL_TTL negative, DrainTriggers", map[string]string{"SIGNED_URL_TTL": "-1s"}, func() any { return &DrainTriggers{} }, "SIGNED_URL_TTL"},
		{"SIGNED_URL_TTL not whole seconds, DLQ", map[string]string{"SIGNED_URL_TTL": "1500ms"}, func() any { return &DeadLetter{} }, "SIGNED_URL_TTL"},
		{"SIGNED_URL_TTL over 7 days, sweep", map[string]string{"SIGNED_URL_TTL": "200h"}, func() any { return &Sweep{} }, "SIGNED_URL_TTL"},
		{"SIGNED_URL_KEY_FILE without access ID", map[string]string{"SIGNED_URL_KEY_FILE": "/k.pem"}, func() any { return &Aggregator{} }, "SIGNED_URL_KEY_FILE"},
		{"COMPLETED_EXCHANGE too long", map[string]string{"COMPLETED_EXCHANGE": strings.Repeat("x", 256)}, func() any { return &DrainTriggers{} }, "COMPLETED_EXCHANGE"},
		{"LOG_LEVEL unknown", map[string]string{"LOG_LEVEL": "LOUD"}, func() any { return &DrainTriggers{} }, "LOG_LEVEL: "},
		{"MAX_IN_FLIGHT zero", map[string]string{"MAX_IN_FLIGHT": "0"}, func() any { return &DrainTriggers{} }, "MAX_IN_FLIGHT"},
		{"REDIS_MEMORY_HIGH_WATER above 1", map[string]string{"REDIS_MEMORY_HIGH_WATER": "1.5"}, func() any { return &DrainTriggers{} }, "REDIS_MEMORY_HIGH_WATER"},
		{"THROTTLE_DELAY too short", map[string]string{"THROTTLE_DELAY": "1ms"}, func() any { return &DrainTriggers{} }, "THROTTLE_DELAY"},
		{"TRACE_EXPORTER unknown", map[string]string{"TRACE_EXPORTER": "zipkin"}, func() any { return &Aggregator{} }, "TRACE_EXPORTER: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clean(t)
			setenv(t, tt.env)
			err := Load(context.Background(), tt.cfg())
			if err == nil || !strings.HasPrefix(err.Error(), "config: "+tt.wantMsg) {
				t.Errorf("Load = %v, want an error starting %q", err, "config: "+tt.wantMsg)
			}
		})
	}
	t.Run("LoadListener", func(t *testing.T) {
		clean(t)
		t.Setenv("STATE_TTL", "10s")
		if _, err := LoadListener(context.Background(), report.Sources["ListenWithdraw"]); err == nil {
			t.Errorf("LoadListener with STATE_TTL=10s returned no error")
		}
	})
}

// A deployed function (K_SERVICE set) never falls back on a local server:
// a missing address is a startup error naming the variable.
func TestDeployedNeedsAddresses(t *testing.T) {
	for _, tt := range []struct {
		cfg  any
		want []string
	}{
		{&Aggregator{}, []string{"REDIS_ADDR", "RECORD_DSN"}},
		{&DeadLetter{}, []string{"REDIS_ADDR", "RECORD_DSN"}},
		{&DrainTriggers{}, []string{"REDIS_ADDR", "RECORD_DSN", "AMQP_URL"}},
		{&Listener{}, []string{"REDIS_ADDR"}},
	} {
		for _, missing := range tt.want {
			clean(t)
			t.Setenv("K_SERVICE", "fn")
			for _, v := range tt.want {
				if v != missing {
					t.Setenv(v, "set")
				}
			}
			err := Load(context.Background(), tt.cfg)
			if want := "config: " + missing + " is not set"; err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("%T without %s: Load = %v, want an error starting %q", tt.cfg, missing, err, want)
			}
		}
	}
	clean(t)
	t.Setenv("K_SERVICE", "fn")
	t.Setenv("REDIS_ADDR", "10.0.0.3:6378")
	_, err := LoadListener(context.Background(), report.Sources["ListenWithdraw"])
	if err == nil || !strings.Contains(err.Error(), "DSN_PLT_FUND is not set") {
		t.Errorf("deployed listener without its DSN: %v, want an error naming DSN_PLT_FUND", err)
	}
}

// readByLibraries are documented in the table but read by the client
// libraries or the platform, not by our config structs.
var readByLibraries = map[string]bool{"PUBSUB_EMULATOR_HOST": true, "STORAGE_EMULATOR_HOST": true, "K_SERVICE": true}

// The README's config table documents exactly the variables the configs
// read: a new variable without a row, or a row for a variable nothing
// reads, fails here.
func TestREADMEConfigTable(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "<!-- config-table -->")
	end := strings.Index(text, "<!-- /config-table -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no <!-- config-table --> … <!-- /config-table --> section")
	}
	var documented []string
	for _, line := range strings.Split(text[start:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, name := range strings.FieldsFunc(cells[1], func(r rune) bool { return r == ',' || r == '/' }) {
			name = strings.Trim(strings.TrimSpace(name), "`")
			if name == "" || strings.HasPrefix(name, "-") || name == "variable" || readByLibraries[name] {
				continue
			}
			if name == "DSN_{DATABASE}" {
				for _, db := range report.Databases() {
					documented = append(documented, report.DSNEnv(db))
				}
				continue
			}
			documented = append(documented, name)
		}
	}
	sort.Strings(documented)
	if diff := cmp.Diff(Variables(), documented); diff != "" {
		t.Errorf("README config table vs the variables the configs read (-read +documented):\n%s", diff)
	}
}
