// Package config loads each function's configuration from the
// environment, validates it once, and names the variable in every error.
// Locally (no K_SERVICE) the addresses of the servers default to the local
// stack's; in a deployed function a missing one is a startup error naming
// the variable, never a silent default to a local server. Every variable
// is documented in the README's config table, and a test keeps the two in
// agreement.
package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/fanoutexport/fanoutexport/shared/logging"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

// PubSub names the project and the optional prefix of topic and subscription names.
type PubSub struct {
	ProjectID  string `env:"GOOGLE_CLOUD_PROJECT, default=local-project"`
	NamePrefix string `env:"PUBSUB_NAME_PREFIX"`
}

// Redis says where the report state lives. Memorystore needs TLS with its
// server CA and the AUTH string.
type Redis struct {
	Addr      string `env:"REDIS_ADDR, required"`
	Password  string `env:"REDIS_PASSWORD"`
	TLS       bool   `env:"REDIS_TLS, default=false"`
	CACert    string `env:"REDIS_CA_CERT"`      // PEM text (Secret Manager env)
	CAFile    string `env:"REDIS_CA_CERT_FILE"` // or a file holding it
	DB        int    `env:"REDIS_DB, default=0"`
	KeyPrefix string `env:"REDIS_KEY_PREFIX"` // tests isolate themselves with it
	// StateTTL is the hash's lifetime, refreshed on every write.
	StateTTL time.Duration `env:"STATE_TTL, default=10m"`
}

// Records is the record table's database.
type Records struct {
	DSN string `env:"RECORD_DSN, required"`
}

// DB bounds each database pool of one function instance.
type DB struct {
	MaxConns int `env:"DB_MAX_CONNS, default=2"`
}

// Log sets the level of the process logger and where its trace spans go.
type Log struct {
	Level string `env:"LOG_LEVEL, default=INFO"`
	// TraceExporter is none, stdout or gcp (Cloud Trace).
	TraceExporter string `env:"TRACE_EXPORTER, default=none"`
}

// Storage is where CSVs go.
type Storage struct {
	Bucket string `env:"REPORT_BUCKET, default=reports"`
}

// Completion configures the completion event every function that makes a
// record final publishes.
type Completion struct {
	// SignedURLTTL is the lifetime of the V4 signed downloadUrl a SUCCESS
	// event carries; 0 sends none. V4 allows at most 7 days.
	SignedURLTTL time.Duration `env:"SIGNED_URL_TTL, default=0"`
	// SignedURLKeyFile and SignedURLAccessID are the local stack's signing
	// key (a PEM RSA key) and the account name it signs as. A deployed
	// function has none: it signs through the IAM Credentials API with its
	// own identity.
	SignedURLKeyFile  string `env:"SIGNED_URL_KEY_FILE"`
	SignedURLAccessID string `env:"SIGNED_URL_ACCESS_ID"`
}

// MaxParts bounds MAX_PARTS: every part's progress is read in one HMGET,
// and Terraform sizes instances for the parts of max_in_flight reports.
const MaxParts = 1024

// MaxSignedURLTTL is the longest lifetime a V4 signed URL may have.
const MaxSignedURLTTL = 7 * 24 * time.Hour

// Listener configures one listener function.
type Listener struct {
	Log    Log
	PubSub PubSub
	DB     DB
	Redis  Redis
	// DSN is read from DSN_{DATABASE} of the listener's source.
	DSN        string
	ChunkBytes int `env:"CHUNK_BYTES, default=261120"`
	// MaxReportRows bounds the listener's dataset; 0 means no limit.
	MaxReportRows int64 `env:"MAX_REPORT_ROWS, default=0"`
}

// Aggregator configures the aggregator function.
type Aggregator struct {
	Log        Log
	PubSub     PubSub
	DB         DB
	Redis      Redis
	Records    Records
	Storage    Storage
	ChunkBytes int `env:"CHUNK_BYTES, default=261120"`
	// ClaimTTL is how long a stage claim holds before another message may
	// take it over: the function's timeout.
	ClaimTTL time.Duration `env:"CLAIM_TTL, default=540s"`
	// MaxReportRows bounds the CSV's data rows; 0 means no limit.
	MaxReportRows int64 `env:"MAX_REPORT_ROWS, default=0"`
	Completion    Completion
}

// DeadLetter configures DeadLetter.
type DeadLetter struct {
	Log        Log
	PubSub     PubSub
	DB         DB
	Redis      Redis
	Records    Records
	Completion Completion
	// Storage is where a failed report's part segments are deleted from.
	Storage Storage
}

// DrainTriggers configures the trigger consumer (RabbitMQ → Pub/Sub).
type DrainTriggers struct {
	Log     Log
	PubSub  PubSub
	DB      DB
	Redis   Redis
	Records Records

	AMQPURL      string `env:"AMQP_URL, required"`
	TriggerQueue string `env:"TRIGGER_QUEUE, default=report.trigger"`
	// RetryQueue holds failed triggers for RetryDelay, then dead-letters
	// them back to TriggerQueue; MaxAttempts bounds the attempts in all.
	RetryQueue  string        `env:"RETRY_QUEUE, default=report.trigger.retry"`
	RetryDelay  time.Duration `env:"RETRY_DELAY, default=60s"`
	MaxAttempts int           `env:"MAX_ATTEMPTS, default=6"`
	// WaitQueue delays triggers whose record is not there yet (the
	// upstream may publish before its transaction commits).
	WaitQueue        string        `env:"WAIT_QUEUE, default=report.trigger.wait"`
	NotFoundDelay    time.Duration `env:"NOT_FOUND_DELAY, default=5s"`
	NotFoundAttempts int           `env:"NOT_FOUND_ATTEMPTS, default=5"`
	ParkedQueue      string        `env:"PARKED_QUEUE, default=report.trigger.parked"`
	Prefetch         int           `env:"SHIM_PREFETCH, default=32"`
	// DrainFor is how long one scheduled DrainTriggers call consumes.
	DrainFor time.Duration `env:"DRAIN_FOR, default=50s"`
	// MaxInFlight bounds the records PROCESSING at once. A trigger beyond
	// it waits ThrottleDelay in ThrottleQueue (TTL, dead-lettering back to
	// TriggerQueue) and comes back; waiting is not an attempt.
	MaxInFlight int `env:"MAX_IN_FLIGHT, default=10"`
	// ThrottleQueue defaults to TriggerQueue + ".throttled": it
	// dead-letters to TriggerQueue, so a run with its own trigger queue
	// needs its own throttle queue (a shared one would be declared with
	// two routing keys, and the second declaration refused).
	ThrottleQueue string `env:"THROTTLE_QUEUE"`
	// ThrottleDelay is how long a waiting trigger stays away: short next
	// to a report's run time (seconds to minutes; Pub/Sub retries are 60 s
	// apart), so a freed slot stays idle at most that long, and long
	// enough that each waiting trigger costs one indexed count on the
	// record database per delay, not a busy loop.
	ThrottleDelay time.Duration `env:"THROTTLE_DELAY, default=5s"`
	// RedisMemoryHighWater holds new reports back while Redis used_memory
	// is above this fraction of maxmemory (read from INFO memory:
	// Memorystore refuses CONFIG; no check when maxmemory is 0).
	// Memorystore runs noeviction, so writes past maxmemory would fail.
	RedisMemoryHighWater float64 `env:"REDIS_MEMORY_HIGH_WATER, default=0.8"`
	// CompletedExchange is the durable fanout exchange (declared by DrainTriggers
	// ) completion events are forwarded to.
	CompletedExchange string `env:"COMPLETED_EXCHANGE, default=report.completed"`
	Completion        Completion
	// PartRows is the target rows of one part: a report estimated above
	// it is split into key-range parts that run in parallel end to end
	// (one part, today's path, at or below it). MaxParts caps the parts
	// of one report. DrainTriggers estimates from the source databases
	// (DSN_{DATABASE}, read when a report is dispatched).
	PartRows int64 `env:"PART_ROWS, default=250000"`
	MaxParts int   `env:"MAX_PARTS, default=64"`
}

// Sweep configures the sweeper, which ends records stuck in PENDING or
// PROCESSING.
type Sweep struct {
	Log     Log
	PubSub  PubSub
	DB      DB
	Redis   Redis
	Records Records

	AMQPURL      string `env:"AMQP_URL, required"`
	TriggerQueue string `env:"TRIGGER_QUEUE, default=report.trigger"`
	// PendingAfter is how long a record may stay PENDING before its
	// trigger is republished (at most once per PendingAfter).
	PendingAfter time.Duration `env:"SWEEP_PENDING_AFTER, default=15m"`
	// ProcessingAfter is how long a record may stay PROCESSING, with its
	// hash, before it is FAILED.
	ProcessingAfter time.Duration `env:"SWEEP_PROCESSING_AFTER, default=2h"`
	// RetryDelay is DrainTriggers': a PROCESSING record without its hash may
	// be one whose hash creation DrainTriggers retries this far apart, so the
	// sweeper waits longer than that before it calls the hash lost.
	RetryDelay time.Duration `env:"RETRY_DELAY, default=60s"`
	Completion Completion
}

// Functions lists a zero value of every function's config, for the checks
// that compare the variables read with the README and the Terraform.
func Functions() []any {
	return []any{Listener{}, Aggregator{}, DeadLetter{}, DrainTriggers{}, Sweep{}}
}

// localDefaults are the local stack's addresses, used only when the
// process is not a deployed function.
var localDefaults = map[string]string{
	"REDIS_ADDR": "127.0.0.1:6379",
	"RECORD_DSN": "root@tcp(127.0.0.1:3306)/plt_report",
	"AMQP_URL":   "amqp://guest:guest@127.0.0.1:5672/",
}

// Deployed reports whether this process is a deployed function: Cloud Run
// (and so Cloud Functions gen2) sets K_SERVICE.
func Deployed() bool { return os.Getenv("K_SERVICE") != "" }

// lookuper reads the environment, falling back on the local defaults off
// the cloud. An empty variable counts as unset.
type lookuper struct{}

func (lookuper) Lookup(key string) (string, bool) {
	if v := os.Getenv(key); v != "" {
		return v, true
	}
	if !Deployed() {
		if v, ok := localDefaults[key]; ok {
			return v, true
		}
	}
	return "", false
}

// Load fills cfg (a pointer to one of the structs above) from the
// environment, validates it and applies its log level.
func Load(ctx context.Context, cfg any) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: lookuper{}}); err != nil {
		return fmt.Errorf("config: %w", nameVariable(reflect.TypeOf(cfg).Elem(), err))
	}
	if v, ok := cfg.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	if l := reflect.ValueOf(cfg).Elem().FieldByName("Log"); l.IsValid() {
		lc := l.Interface().(Log)
		if err := logging.SetLevel(lc.Level); err != nil {
			return fmt.Errorf("config: LOG_LEVEL: %w", err)
		}
		switch lc.TraceExporter {
		case "none", "stdout", "gcp":
		default:
			return fmt.Errorf("config: TRACE_EXPORTER: %q is none of none, stdout, gcp", lc.TraceExporter)
		}
	}
	return nil
}

// LoadListener loads a listener's config, including its source's DSN.
func LoadListener(ctx context.Context, s report.Source) (Listener, error) {
	var c Listener
	if err := Load(ctx, &c); err != nil {
		return c, err
	}
	dsn, err := SourceDSN(s.Database)
	if err != nil {
		return c, err
	}
	c.DSN = dsn
	return c, nil
}

// SourceDSN returns DSN_{DATABASE}, checked by CheckDSN; off the cloud it
// defaults to the local server, in a deployed function its absence is an
// error naming it.
func SourceDSN(database string) (string, error) {
	name := report.DSNEnv(database)
	if v := os.Getenv(name); v != "" {
		if err := CheckDSN(name, v); err != nil {
			return "", fmt.Errorf("config: %w", err)
		}
		return v, nil
	}
	if Deployed() {
		return "", fmt.Errorf("config: %s is not set: a deployed listener needs its source database's DSN", name)
	}
	return "root@tcp(127.0.0.1:3306)/" + database, nil
}

// Variables lists every environment variable the function configs read,
// sorted; DSN_{DATABASE} is expanded for every source database.
func Variables() []string {
	seen := map[string]bool{}
	for _, c := range Functions() {
		for _, v := range fieldVariables(reflect.TypeOf(c)) {
			seen[v] = true
		}
	}
	for _, db := range report.Databases() {
		seen[report.DSNEnv(db)] = true
	}
	var out []string
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func fieldVariables(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			out = append(out, fieldVariables(f.Type)...)
			continue
		}
		if name := envName(f); name != "" {
			out = append(out, name)
		}
	}
	return out
}

func envName(f reflect.StructField) string {
	tag := f.Tag.Get("env")
	name, _, _ := strings.Cut(tag, ",")
	return strings.TrimSpace(name)
}

// nameVariable rewrites envconfig's "Redis: DB: …" into "REDIS_DB: …":
// an operator sets variables, not Go fields.
func nameVariable(t reflect.Type, err error) error {
	msg := err.Error()
	rest := msg
	for {
		field, tail, ok := strings.Cut(rest, ": ")
		if !ok || t.Kind() != reflect.Struct {
			return err
		}
		f, found := t.FieldByName(field)
		if !found {
			return err
		}
		if name := envName(f); name != "" {
			if errors.Is(err, envconfig.ErrMissingRequired) {
				tail = "is not set; a deployed function has no default for it"
				return &varError{msg: name + " " + tail, err: err}
			}
			return &varError{msg: name + ": " + tail, err: err}
		}
		t, rest = f.Type, tail
	}
}

// varError is envconfig's error, told in terms of the variable.
type varError struct {
	msg string
	err error
}

func (e *varError) Error() string { return e.msg }
func (e *varError) Unwrap() error { return e.err }

func (r Redis) validate() error {
	if r.StateTTL < time.Minute {
		return fmt.Errorf("STATE_TTL %s is below one minute", r.StateTTL)
	}
	return nil
}

func validateMaxReportRows(n int64) error {
	if n < 0 {
		return fmt.Errorf("MAX_REPORT_ROWS %d is negative; 0 means no limit", n)
	}
	return nil
}

func (c *Listener) validate() error {
	if err := validateMaxReportRows(c.MaxReportRows); err != nil {
		return err
	}
	return c.Redis.validate()
}

func (c *Aggregator) validate() error {
	if c.ClaimTTL <= 0 {
		return fmt.Errorf("CLAIM_TTL must be positive")
	}
	if err := validateMaxReportRows(c.MaxReportRows); err != nil {
		return err
	}
	if err := c.Records.validate(); err != nil {
		return err
	}
	if err := c.Completion.validate(); err != nil {
		return err
	}
	return c.Redis.validate()
}

func (c *DeadLetter) validate() error {
	if err := c.Records.validate(); err != nil {
		return err
	}
	if err := c.Completion.validate(); err != nil {
		return err
	}
	return c.Redis.validate()
}

func (c *DrainTriggers) validate() error {
	if c.MaxAttempts < 1 {
		return fmt.Errorf("MAX_ATTEMPTS %d must be at least 1", c.MaxAttempts)
	}
	if c.NotFoundAttempts < 1 {
		return fmt.Errorf("NOT_FOUND_ATTEMPTS %d must be at least 1", c.NotFoundAttempts)
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("MAX_IN_FLIGHT %d must be at least 1", c.MaxInFlight)
	}
	if c.PartRows < 1 {
		return fmt.Errorf("PART_ROWS %d must be at least 1", c.PartRows)
	}
	if c.MaxParts < 1 || c.MaxParts > MaxParts {
		return fmt.Errorf("MAX_PARTS %d must be 1 to %d", c.MaxParts, MaxParts)
	}
	if c.ThrottleDelay < 10*time.Millisecond {
		return fmt.Errorf("THROTTLE_DELAY %s is below 10ms", c.ThrottleDelay)
	}
	if !(c.RedisMemoryHighWater > 0 && c.RedisMemoryHighWater <= 1) {
		return fmt.Errorf("REDIS_MEMORY_HIGH_WATER %v must be a fraction of maxmemory in (0, 1]", c.RedisMemoryHighWater)
	}
	if c.ThrottleQueue == "" {
		c.ThrottleQueue = c.TriggerQueue + ".throttled"
	}
	if c.CompletedExchange == "" || len(c.CompletedExchange) > 255 {
		return fmt.Errorf("COMPLETED_EXCHANGE %q must be a name of 1 to 255 bytes", c.CompletedExchange)
	}
	if err := c.Records.validate(); err != nil {
		return err
	}
	if err := c.Completion.validate(); err != nil {
		return err
	}
	return c.Redis.validate()
}

func (c *Sweep) validate() error {
	if c.PendingAfter < time.Minute {
		return fmt.Errorf("SWEEP_PENDING_AFTER %s is below one minute", c.PendingAfter)
	}
	if c.ProcessingAfter < time.Minute {
		return fmt.Errorf("SWEEP_PROCESSING_AFTER %s is below one minute", c.ProcessingAfter)
	}
	if err := c.Records.validate(); err != nil {
		return err
	}
	if err := c.Completion.validate(); err != nil {
		return err
	}
	return c.Redis.validate()
}

func (c Completion) validate() error {
	switch {
	case c.SignedURLTTL < 0:
		return fmt.Errorf("SIGNED_URL_TTL %s is negative; 0 sends no download URL", c.SignedURLTTL)
	case c.SignedURLTTL > MaxSignedURLTTL:
		return fmt.Errorf("SIGNED_URL_TTL %s is longer than 7 days, the most a V4 signed URL allows", c.SignedURLTTL)
	case c.SignedURLTTL%time.Second != 0:
		return fmt.Errorf("SIGNED_URL_TTL %s is not whole seconds (X-Goog-Expires counts seconds)", c.SignedURLTTL)
	case (c.SignedURLKeyFile == "") != (c.SignedURLAccessID == ""):
		return errors.New("SIGNED_URL_KEY_FILE and SIGNED_URL_ACCESS_ID are set together or not at all")
	case c.SignedURLKeyFile != "" && Deployed():
		return errors.New("SIGNED_URL_KEY_FILE is for the local stack only; a deployed function signs through the IAM Credentials API with its own identity")
	}
	return nil
}
