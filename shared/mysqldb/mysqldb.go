// Package mysqldb opens MySQL/MariaDB pools the same way everywhere:
// UTC times, bounded connections (source databases have connection limits
// shared by every function instance), timeouts that fail fast.
package mysqldb

import (
	"database/sql"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// MaxConns bounds one instance's pool; max_instance_count × MaxConns must
// fit the database's max_connections.
const MaxConns = 4

// Open returns a pool for dsn with parseTime=true and loc=UTC forced.
func Open(dsn string) (*sql.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(MaxConns)
	db.SetMaxIdleConns(MaxConns)
	db.SetConnMaxLifetime(5 * time.Minute)
	return db, nil
}
