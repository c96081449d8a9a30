// OpenDB and OpenDBPool open MySQL/MariaDB pools the same way everywhere:
// UTC times, bounded connections (source databases have connection limits
// shared by every function instance), timeouts that fail fast.

package serverenv

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/fanoutexport/fanoutexport/shared/config"
)

// DefaultMaxConns bounds a pool when the config does not (DB_MAX_CONNS).
// max_instance_count × this must fit the database's connection limit.
const DefaultMaxConns = 2

// OpenDB returns a pool for dsn with DefaultMaxConns connections.
func OpenDB(dsn string) (*sql.DB, error) { return OpenDBPool(dsn, DefaultMaxConns) }

// OpenDBPool returns a pool of at most maxConns connections for dsn, with
// parseTime=true and loc=UTC forced. A DSN of protocol config.CloudSQLNet
// dials its instance through the Cloud SQL Go connector.
func OpenDBPool(dsn string, maxConns int) (*sql.DB, error) {
	if maxConns < 1 {
		maxConns = DefaultMaxConns
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// The session's clock in UTC too: CURRENT_TIMESTAMP fills updated_at,
	// which the completion event's finishedAt and the sweeper's ages read
	// as UTC, whatever the server's own time zone.
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	if _, set := cfg.Params["time_zone"]; !set {
		cfg.Params["time_zone"] = "'+00:00'"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	// A Cloud SQL DSN dials through the connector (cloudsql.go), any
	// other over plain TCP.
	var c driver.Connector
	if cfg.Net == config.CloudSQLNet {
		c, err = cloudSQLConnector(cfg)
	} else if c, err = mysql.NewConnector(cfg); err != nil {
		err = fmt.Errorf("mysql connector: %w", err)
	}
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, nil
}
