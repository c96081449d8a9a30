package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/fanoutexport/fanoutexport/local/seed"
)

// oracleRun is one timed run of MariaDB's single-query join.
type oracleRun struct {
	Variant string  `json:"variant"`
	Seconds float64 `json:"seconds"`
	Rows    int64   `json:"rows"`
	CSVSHA  string  `json:"csvSha256"`
}

// runOracle runs one shape of the report's reference query (the ones the
// golden files are checked against, report.Report.Reference) and reads
// every row on the client, encoding them as the pipeline's CSV (mark and
// header included) into a SHA-256, so the result can be compared with the
// pipeline's file without keeping either.
func runOracle(ctx context.Context, db *sql.DB, o seed.Oracle) (oracleRun, error) {
	h := sha256.New()
	start := time.Now()
	n, err := o.WriteCSV(ctx, db, h)
	if err != nil {
		return oracleRun{}, fmt.Errorf("MariaDB join: %w", err)
	}
	return oracleRun{Variant: o.Reference.Name, Seconds: time.Since(start).Seconds(), Rows: n, CSVSHA: fmt.Sprintf("%x", h.Sum(nil))}, nil
}

// smallWindow is a time range in which exactly want withdrawals of users
// with tag fall (fewer if the data runs out), starting at start.
func smallWindow(ctx context.Context, db *sql.DB, userDB, fundDB string, tag int64, start time.Time, want int) (from, to time.Time, err error) {
	q := fmt.Sprintf(`SELECT w.created_at FROM %s.vs_withdraw w
WHERE w.created_at >= ? AND w.user_id IN (SELECT user_id FROM %s.vs_user_tag_relation WHERE tag_id = ?)
ORDER BY w.created_at LIMIT ?`, quoteIdent(fundDB), quoteIdent(userDB))
	rows, err := db.QueryContext(ctx, q, start.Format(sqlLayout), tag, want+1)
	if err != nil {
		return from, to, err
	}
	defer rows.Close()
	var ts []time.Time
	for rows.Next() {
		var t time.Time
		if err := rows.Scan(&t); err != nil {
			return from, to, err
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return from, to, err
	}
	from, to = start, year2026.AddDate(1, 0, 0)
	if len(ts) > 0 {
		from = ts[0]
	}
	if len(ts) > want {
		to = ts[want]
	}
	if !from.Before(to) {
		to = from.Add(time.Second)
	}
	return from, to, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
