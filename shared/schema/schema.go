// Package schema creates the databases and tables the pipeline reads and
// writes, if they are missing. It never drops or deletes anything.
package schema

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

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
		var indexes []tableIndex
		for _, s := range report.SourcesIn(name) {
			if !slices.Contains(ddl, s.DDL) {
				ddl = append(ddl, s.DDL)
			}
			for _, x := range s.Indexes {
				indexes = append(indexes, tableIndex{s.Table, x})
			}
		}
		if err := ensure(ctx, dsn, ddl, indexes...); err != nil {
			return err
		}
	}
	return nil
}

// tableIndex is an index a source declares beside its table's DDL.
type tableIndex struct {
	table string
	report.Index
}

// addIndexes adds each index the table does not have yet (by name): the
// DDL's CREATE TABLE IF NOT EXISTS leaves an existing table as it is.
func addIndexes(ctx context.Context, db *sql.DB, indexes []tableIndex) error {
	for _, x := range indexes {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?`, x.table, x.Name).Scan(&n); err != nil {
			return fmt.Errorf("schema: index %s on %s: %w", x.Name, x.table, err)
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, "ALTER TABLE `"+x.table+"` ADD INDEX `"+x.Name+"` "+x.Columns); err != nil {
			return fmt.Errorf("schema: add index %s on %s: %w", x.Name, x.table, err)
		}
	}
	return nil
}

func ensure(ctx context.Context, dsn string, ddl []string, indexes ...tableIndex) error {
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
	return addIndexes(ctx, db, indexes)
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
