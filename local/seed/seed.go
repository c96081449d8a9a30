// Package seed holds the fixed, small data set used by the integration tests
// and `make demo`, and the golden CSV files the export pipeline's output is
// compared to byte for byte.
//
// The data lives in plt_user.sql and plt_fund.sql (idempotent REPLACE INTO
// statements with fixed ids, no database names). The golden files in
// testdata/golden were derived by hand from that data (see README.md and
// golden_rows_test.go) and are cross-checked in seed_test.go against a single
// cross-database SQL query on a local MariaDB.
package seed

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/report"
)

// Params is the report request the golden files were computed for: every
// report type's Example (report.TagExample).
const Params = report.TagExample

// EmptyParams is a report request with the same range whose result is empty:
// no user has tag 999 (report.TagEmptyExample).
const EmptyParams = report.TagEmptyExample

// Names of the golden files of the withdrawal reports, for use with Golden.
const (
	GoldenWithdrawByTag                  = "withdraw_by_tag.csv"
	GoldenWithdrawByTagWithPayments      = "withdraw_by_tag_with_payments.csv"
	GoldenEmptyWithdrawByTag             = "empty_withdraw_by_tag.csv"
	GoldenEmptyWithdrawByTagWithPayments = "empty_withdraw_by_tag_with_payments.csv"
)

// GoldenFile names report type typ's golden file: its result for the
// report's Example ({type}.csv).
func GoldenFile(typ string) string { return typ + ".csv" }

// EmptyGoldenFile names the golden file of typ's EmptyExample
// (empty_{type}.csv): the header only.
func EmptyGoldenFile(typ string) string { return "empty_" + typ + ".csv" }

// Example is one report request of the demo and the golden tests.
type Example struct {
	Type, Params, Golden string
}

// Examples lists every report type's Example with its golden file, then
// every type's EmptyExample with its own.
func Examples() []Example {
	var es, empty []Example
	for _, typ := range report.Types() {
		r, _ := report.Lookup(typ)
		es = append(es, Example{typ, r.Example, GoldenFile(typ)})
		empty = append(empty, Example{typ, r.EmptyExample, EmptyGoldenFile(typ)})
	}
	return append(es, empty...)
}

//go:embed plt_user.sql
var userSQL string

//go:embed plt_fund.sql
var fundSQL string

//go:embed testdata/golden/*.csv
var goldenFS embed.FS

// Golden returns the expected CSV bytes of a golden file (GoldenFile,
// EmptyGoldenFile): {type}.csv for the type's Example, empty_{type}.csv
// for its EmptyExample. It panics on an unknown name: that is a bug in
// the calling test. The returned slice is a fresh copy.
func Golden(name string) []byte {
	if strings.ContainsAny(name, `/\`) {
		panic(fmt.Sprintf("seed.Golden: invalid name %q", name))
	}
	b, err := goldenFS.ReadFile("testdata/golden/" + name)
	if err != nil {
		panic(fmt.Sprintf("seed.Golden: unknown golden file %q: %v", name, err))
	}
	return append([]byte(nil), b...)
}

// Apply loads the seed data into the plt_user database (userDB) and the
// plt_fund database (fundDB). The tables must already exist. It runs every
// statement separately (no multiStatements needed), one transaction per
// database, and is idempotent: applying it twice leaves the same rows.
func Apply(ctx context.Context, userDB, fundDB *sql.DB) error {
	if err := execScript(ctx, userDB, "plt_user.sql", userSQL); err != nil {
		return err
	}
	return execScript(ctx, fundDB, "plt_fund.sql", fundSQL)
}

// statements splits a seed script into single statements: full-line "--"
// comments and blank lines are dropped, statements end with ";" at the end of
// a line.
func statements(script string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}

func execScript(ctx context.Context, db *sql.DB, name, script string) (err error) {
	if db == nil {
		return fmt.Errorf("seed: %s: nil *sql.DB", name)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %s: begin: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for i, stmt := range statements(script) {
		if _, err = tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("seed: %s: statement %d: %w", name, i+1, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("seed: %s: commit: %w", name, err)
	}
	return nil
}
