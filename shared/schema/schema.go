// Package schema creates the databases and tables the pipeline reads and
// writes, if they are missing. It never drops or deletes anything.
package schema

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
)

// DSNs names the record database and each source database.
type DSNs struct {
	Record  string
	Sources map[string]string // database name in report.Sources -> DSN
}

// Ensure creates every missing database and table.
func Ensure(ctx context.Context, d DSNs) error {
	if err := ensure(ctx, d.Record, []string{record.DDL}); err != nil {
		return err
	}
	for _, name := range report.Databases() {
		dsn, ok := d.Sources[name]
		if !ok {
			return fmt.Errorf("schema: no DSN for source database %s", name)
		}
		var ddl []string
		for _, s := range report.SourcesIn(name) {
			ddl = append(ddl, s.DDL)
		}
		if err := ensure(ctx, dsn, ddl); err != nil {
			return err
		}
	}
	return nil
}

func ensure(ctx context.Context, dsn string, ddl []string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("schema: DSN: %w", err)
	}
	if err := createDatabase(ctx, cfg); err != nil {
		return err
	}
	db, err := serverenv.OpenDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range ddl {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("schema: %s: %w", cfg.DBName, err)
		}
	}
	return nil
}

func createDatabase(ctx context.Context, cfg *mysql.Config) error {
	server := cfg.Clone()
	name := server.DBName
	server.DBName = ""
	c, err := mysql.NewConnector(server)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		return fmt.Errorf("schema: create database %s: %w", name, err)
	}
	return nil
}

// CreateDatabase creates the database named in dsn, with no tables.
func CreateDatabase(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("schema: DSN: %w", err)
	}
	return createDatabase(ctx, cfg)
}

// Drop removes the databases of d; tests use it on their throwaway ones.
func Drop(ctx context.Context, d DSNs) error {
	dsns := []string{d.Record}
	for _, v := range d.Sources {
		dsns = append(dsns, v)
	}
	for _, dsn := range dsns {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return err
		}
		name := cfg.DBName
		cfg.DBName = ""
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return err
		}
		db := sql.OpenDB(c)
		_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
		db.Close()
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
	}
	return nil
}
