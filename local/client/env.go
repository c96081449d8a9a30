package client

import (
	"context"
	"os"

	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/state"
)

// FromEnv builds a Client from the same environment variables the
// functions read (RECORD_DSN, REDIS_*, AMQP_URL, TRIGGER_QUEUE), plus
// STORAGE_EMULATOR_HOST for fetching CSVs. Close the returned func when done.
func FromEnv(ctx context.Context) (*Client, func(), error) {
	var cfg config.Shim
	if err := config.Load(ctx, &cfg); err != nil {
		return nil, nil, err
	}
	db, err := serverenv.OpenDB(cfg.Records.DSN)
	if err != nil {
		return nil, nil, err
	}
	rdb, err := serverenv.OpenRedis(cfg.Redis)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if host == "" {
		host = "127.0.0.1:4443"
	}
	c := &Client{
		Records:      record.NewRepo(db),
		State:        state.New(rdb, cfg.Redis.KeyPrefix, cfg.Redis.StateTTL),
		AMQPURL:      cfg.AMQPURL,
		TriggerQueue: cfg.TriggerQueue,
		StorageURL:   "http://" + host,
	}
	return c, func() { db.Close(); rdb.Close() }, nil
}
