// Package config loads each function's configuration from the environment,
// with defaults that match the local stack, and validates it once.
// Every name is documented in the README's config table.
package config

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sethvargo/go-envconfig"

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
	Addr      string `env:"REDIS_ADDR, default=127.0.0.1:6379"`
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
	DSN string `env:"RECORD_DSN, default=root@tcp(127.0.0.1:3306)/plt_report"`
}

// DB bounds each database pool of one function instance.
type DB struct {
	MaxConns int `env:"DB_MAX_CONNS, default=2"`
}

// Storage is where CSVs go.
type Storage struct {
	Bucket string `env:"REPORT_BUCKET, default=reports"`
}

// Listener configures one listener function.
type Listener struct {
	PubSub PubSub
	DB     DB
	Redis  Redis
	// DSN is read from DSN_{DATABASE} of the listener's source.
	DSN        string
	ChunkBytes int `env:"CHUNK_BYTES, default=261120"`
}

// Aggregator configures the aggregator function.
type Aggregator struct {
	PubSub     PubSub
	DB         DB
	Redis      Redis
	Records    Records
	Storage    Storage
	ChunkBytes int `env:"CHUNK_BYTES, default=261120"`
	// ClaimTTL is how long a stage claim holds before another message may
	// take it over: the function's timeout.
	ClaimTTL time.Duration `env:"CLAIM_TTL, default=540s"`
}

// DeadLetter configures the DLQ function.
type DeadLetter struct {
	PubSub  PubSub
	DB      DB
	Redis   Redis
	Records Records
}

// Shim configures the MQ1 shim (RabbitMQ → Pub/Sub).
type Shim struct {
	PubSub  PubSub
	DB      DB
	Redis   Redis
	Records Records

	AMQPURL      string `env:"AMQP_URL, default=amqp://guest:guest@127.0.0.1:5672/"`
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
}

// Load fills cfg (a pointer to one of the structs above) from the environment.
func Load(ctx context.Context, cfg any) error {
	if err := envconfig.Process(ctx, cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if v, ok := cfg.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return fmt.Errorf("config: %w", err)
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
	c.DSN = SourceDSN(s.Database)
	return c, nil
}

// SourceDSN returns DSN_{DATABASE}, defaulting to the local server.
func SourceDSN(database string) string {
	if v := os.Getenv(report.DSNEnv(database)); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/" + database
}

func (r Redis) validate() error {
	if r.StateTTL < time.Minute {
		return fmt.Errorf("STATE_TTL %s is below one minute", r.StateTTL)
	}
	return nil
}

func (c *Listener) validate() error { return c.Redis.validate() }

func (c *Aggregator) validate() error {
	if c.ClaimTTL <= 0 {
		return fmt.Errorf("CLAIM_TTL must be positive")
	}
	return c.Redis.validate()
}

func (c *Shim) validate() error {
	if c.MaxAttempts < 1 || c.NotFoundAttempts < 1 {
		return fmt.Errorf("MAX_ATTEMPTS and NOT_FOUND_ATTEMPTS must be at least 1")
	}
	return c.Redis.validate()
}
