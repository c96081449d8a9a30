// Package serverenv is one function instance's server environment: it
// owns the clients the function uses (the report state in Redis, one
// bounded database pool, the Pub/Sub publisher, Cloud Storage), creates
// them together with a context that outlives the request, closes what it
// opened when a later step fails, and closes everything on Close (the
// root package calls it on SIGTERM). The tracer provider is the process's,
// not an Env's: Setup installs it once (package tracing). Compare serverenv in
// google/exposure-notifications-server.
package serverenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/state"
	"github.com/fanoutexport/fanoutexport/shared/topology"
	"github.com/fanoutexport/fanoutexport/shared/tracing"
)

// Options says which clients a function needs.
type Options struct {
	PubSub config.PubSub
	Redis  config.Redis
	// DSN is the one database the function reads (the record table's, or
	// a listener's source); "" opens none.
	DSN      string
	MaxConns int
	// Storage opens a Cloud Storage client.
	Storage bool
	// PubSubOptions are passed to the Pub/Sub client (tests dial pstest).
	PubSubOptions []option.ClientOption
	// TraceExporter is TRACE_EXPORTER: where the process's spans go (the
	// first environment of the process installs it).
	TraceExporter string
}

// Env is one function instance's clients.
type Env struct {
	Project string
	State   *state.Store
	DB      *sql.DB
	Bus     *bus.Bus
	Storage *storage.Client

	closers []func() error
}

// Setup opens the clients o asks for. Nothing dials before first use
// except what the client libraries do themselves; on failure everything
// already opened is closed again.
func Setup(ctx context.Context, o Options) (_ *Env, err error) {
	ctx = context.WithoutCancel(ctx)
	e := &Env{Project: o.PubSub.ProjectID}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	// The process's tracer provider, installed by the first environment;
	// it is not this Env's to close: the process flushes it on SIGTERM.
	if err := tracing.Setup(ctx, o.TraceExporter, o.PubSub.ProjectID); err != nil {
		return nil, err
	}
	rdb, err := OpenRedis(o.Redis)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, rdb.Close)
	e.State = state.New(rdb, o.Redis.KeyPrefix, o.Redis.StateTTL)
	if o.DSN != "" {
		if e.DB, err = OpenDBPool(o.DSN, o.MaxConns); err != nil {
			return nil, err
		}
		e.closers = append(e.closers, e.DB.Close)
	}
	if e.Bus, err = bus.New(ctx, o.PubSub.ProjectID, topology.Names{Prefix: o.PubSub.NamePrefix}, o.PubSubOptions...); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.Bus.Close)
	if o.Storage {
		if e.Storage, err = storage.NewClient(ctx); err != nil {
			return nil, fmt.Errorf("storage.NewClient: %w", err)
		}
		e.closers = append(e.closers, e.Storage.Close)
	}
	return e, nil
}

// ServerEnv returns e; a function's own environment embeds *Env and so
// hands its clients to the shared push handler.
func (e *Env) ServerEnv() *Env { return e }

// Close closes every client, last opened first, and reports every error.
func (e *Env) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	return errors.Join(errs...)
}
