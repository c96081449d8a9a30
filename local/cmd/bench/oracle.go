package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"fmt"
	"strings"
	"time"
)

// Variants of MariaDB's single-query join for the payments report.
const (
	variantPlain      = "join"                  // withdraw_by_tag
	variantCorrelated = "correlated subqueries" // payments per withdrawal row
	variantGrouped    = "grouped payments join" // payments aggregated once, LEFT JOINed
)

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// oracleSQL is the report as one cross-database statement, producing the
// pipeline's rows byte for byte (the same shape as local/seed's oracle,
// comparing status and currency with the column collation, as the
// pipeline does). It returns the statement and its arguments.
func oracleSQL(userDB, fundDB, variant string, tags []int64, from, to time.Time) (string, []any) {
	f, t := from.UTC().Format(sqlLayout), to.UTC().Format(sqlLayout)
	var args []any
	payCols, payJoin := "", ""
	switch variant {
	case variantCorrelated:
		where := fmt.Sprintf(`FROM %s.vs_payment p
    WHERE p.user_id = w.user_id AND p.status = 'SUCCESS' AND p.currency = w.currency
      AND p.created_at >= ? AND p.created_at < ?`, quoteIdent(fundDB))
		payCols = fmt.Sprintf(`,
  (SELECT COUNT(*) %[1]s) AS payment_count,
  (SELECT CAST(COALESCE(SUM(p.amount), 0) AS DECIMAL(40,2)) %[1]s) AS payment_total`, where)
		args = append(args, f, t, f, t)
	case variantGrouped:
		payCols = `,
  COALESCE(p.payment_count, 0) AS payment_count,
  COALESCE(p.payment_total, CAST(0 AS DECIMAL(40,2))) AS payment_total`
		payJoin = fmt.Sprintf(`
LEFT JOIN (SELECT user_id, currency, COUNT(*) AS payment_count, CAST(SUM(amount) AS DECIMAL(40,2)) AS payment_total
      FROM %s.vs_payment
      WHERE status = 'SUCCESS' AND created_at >= ? AND created_at < ?
      GROUP BY user_id, currency) p ON p.user_id = w.user_id AND p.currency = w.currency`, quoteIdent(fundDB))
	}
	for _, id := range tags {
		args = append(args, id)
	}
	if variant == variantGrouped {
		args = append(args, f, t)
	}
	args = append(args, f, t)
	in := strings.TrimSuffix(strings.Repeat("?,", len(tags)), ",")
	q := fmt.Sprintf(`SELECT w.id, w.user_id, t.tag_ids, w.amount, w.currency, w.status,
  DATE_FORMAT(w.created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')%s
FROM %s.vs_withdraw w
JOIN (SELECT r.user_id, GROUP_CONCAT(DISTINCT r.tag_id ORDER BY r.tag_id SEPARATOR ';') AS tag_ids
      FROM %s.vs_user_tag_relation r
      WHERE r.tag_id IN (%s)
      GROUP BY r.user_id) t ON t.user_id = w.user_id%s
WHERE w.created_at >= ? AND w.created_at < ?
ORDER BY w.user_id, w.id`, payCols, quoteIdent(fundDB), quoteIdent(userDB), in, payJoin)
	return q, args
}

// oracleRun is one timed run of the single-query join.
type oracleRun struct {
	Variant string  `json:"variant"`
	Seconds float64 `json:"seconds"`
	Rows    int64   `json:"rows"`
	CSVSHA  string  `json:"csvSha256"`
}

// runOracle runs the statement and reads every row on the client, encoding
// them as the pipeline's CSV (header included) into a SHA-256, so the
// result can be compared with the pipeline's file without keeping either.
func runOracle(ctx context.Context, db *sql.DB, variant, q string, args []any, header []string) (oracleRun, error) {
	h := sha256.New()
	w := csv.NewWriter(h)
	if err := w.Write(header); err != nil {
		return oracleRun{}, err
	}
	start := time.Now()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return oracleRun{}, fmt.Errorf("MariaDB join (%s): %w", variant, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(header))
	dest := make([]any, len(raw))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rec := make([]string, len(raw))
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return oracleRun{}, err
		}
		for i, b := range raw {
			rec[i] = string(b)
		}
		if err := w.Write(rec); err != nil {
			return oracleRun{}, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return oracleRun{}, fmt.Errorf("MariaDB join (%s): %w", variant, err)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return oracleRun{}, err
	}
	return oracleRun{Variant: variant, Seconds: time.Since(start).Seconds(), Rows: n, CSVSHA: fmt.Sprintf("%x", h.Sum(nil))}, nil
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
