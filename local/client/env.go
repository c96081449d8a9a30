package client

import (
	"context"
	"fmt"
	"os"

	"cloud.google.com/go/storage"
	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
)

// The local stack's emulators (local/emulators), written out here so the
// binary does not link the emulators themselves.
const (
	DefaultStorageHost = "127.0.0.1:4443"
	DefaultPubSubHost  = "127.0.0.1:8085"
)

// FromEnv builds a Client from the same environment variables the
// functions read (RECORD_DSN, REDIS_*, AMQP_URL, TRIGGER_QUEUE,
// PARKED_QUEUE; GOOGLE_CLOUD_PROJECT, PUBSUB_EMULATOR_HOST and
// PUBSUB_NAME_PREFIX for completion events; SIGNED_URL_* for signed
// links), which default to the local stack's servers. CSVs come from the
// emulator at STORAGE_EMULATOR_HOST, and events go to the one at
// PUBSUB_EMULATOR_HOST, by default the local stack's, unless
// GOOGLE_CLOUD_PROJECT names a real project (anything but the local
// default): then, with the variable unset, to Cloud Storage and Pub/Sub
// with Application Default Credentials. Nothing dials here. Call the
// returned func when done.
func FromEnv(ctx context.Context) (*Client, func(), error) {
	var cfg config.DrainTriggers
	if err := config.Load(ctx, &cfg); err != nil {
		return nil, nil, err
	}
	local := cfg.PubSub.ProjectID == "" || cfg.PubSub.ProjectID == "local-project"
	if local && os.Getenv("PUBSUB_EMULATOR_HOST") == "" {
		// The Pub/Sub client reads it; unset, it would publish to Google.
		if err := os.Setenv("PUBSUB_EMULATOR_HOST", DefaultPubSubHost); err != nil {
			return nil, nil, err
		}
	}
	db, err := serverenv.OpenDB(cfg.Records.DSN)
	if err != nil {
		return nil, nil, fmt.Errorf("RECORD_DSN: %w", err)
	}
	rdb, err := serverenv.OpenRedis(cfg.Redis)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	c := &Client{
		Records:        record.NewRepo(db),
		State:          state.New(rdb, cfg.Redis.KeyPrefix, cfg.Redis.StateTTL),
		AMQPURL:        cfg.AMQPURL,
		TriggerQueue:   cfg.TriggerQueue,
		ParkedQueue:    cfg.ParkedQueue,
		PassiveTrigger: true,
		DB:             db,
		Redis:          rdb,
		PubSub:         cfg.PubSub,
		Completion:     cfg.Completion,
		Where: map[Server]string{
			MariaDB:  describeDSN(cfg.Records.DSN) + " (RECORD_DSN)",
			Redis:    cfg.Redis.Addr + " (REDIS_ADDR)",
			RabbitMQ: describeAMQP(cfg.AMQPURL) + " (AMQP_URL)",
			PubSub:   pubsubWhere(cfg.PubSub),
		},
	}
	closeFn := func() { c.closeLazy(); db.Close(); rdb.Close() }
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if host == "" && local {
		host = DefaultStorageHost
		// The storage client a signed link takes its host from, and the
		// signer, read the emulator's address from the environment.
		if err := os.Setenv("STORAGE_EMULATOR_HOST", host); err != nil {
			closeFn()
			return nil, nil, err
		}
	}
	if host != "" {
		c.StorageURL = "http://" + host
		c.Where[CloudStorage] = "the emulator at " + host + " (STORAGE_EMULATOR_HOST)"
		return c, closeFn, nil
	}
	if c.Storage, err = storage.NewClient(ctx); err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("storage.NewClient: %w", err)
	}
	c.Where[CloudStorage] = "storage.googleapis.com (project " + cfg.PubSub.ProjectID + ", GOOGLE_CLOUD_PROJECT)"
	return c, func() { closeFn(); c.Storage.Close() }, nil
}

// describeDSN is the DSN's address and database, without user or password.
func describeDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(an unparsable DSN)"
	}
	return cfg.Net + " " + cfg.Addr + "/" + cfg.DBName
}

// describeAMQP is the URL's host and vhost, without credentials.
func describeAMQP(raw string) string {
	u, err := amqp.ParseURI(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return fmt.Sprintf("%s:%d, vhost %s", u.Host, u.Port, u.Vhost)
}
