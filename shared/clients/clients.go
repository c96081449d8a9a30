// Package clients makes the connections a function needs, the same way in
// every function: the Redis state, one bounded database pool, the Pub/Sub
// publisher. Nothing dials until first used.
package clients

import (
	"context"
	"database/sql"

	"google.golang.org/api/option"

	"github.com/fanoutexport/fanoutexport/shared/aggstate"
	"github.com/fanoutexport/fanoutexport/shared/bus"
	"github.com/fanoutexport/fanoutexport/shared/config"
	"github.com/fanoutexport/fanoutexport/shared/mysqldb"
	"github.com/fanoutexport/fanoutexport/shared/redisconn"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// Clients are one function instance's connections.
type Clients struct {
	State *aggstate.State
	DB    *sql.DB
	Bus   *bus.Bus
}

// Open makes the clients for a function reading database dsn.
func Open(ctx context.Context, ps config.PubSub, rc config.Redis, db config.DB, dsn string, opts ...option.ClientOption) (*Clients, error) {
	rdb, err := redisconn.New(rc)
	if err != nil {
		return nil, err
	}
	pool, err := mysqldb.OpenPool(dsn, db.MaxConns)
	if err != nil {
		rdb.Close()
		return nil, err
	}
	b, err := bus.New(ctx, ps.ProjectID, topology.Names{Prefix: ps.NamePrefix}, opts...)
	if err != nil {
		rdb.Close()
		pool.Close()
		return nil, err
	}
	return &Clients{State: aggstate.New(rdb, rc.KeyPrefix, rc.StateTTL), DB: pool, Bus: b}, nil
}
