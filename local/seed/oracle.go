package seed

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"
)

// Payments says whether, and how, the reference query computes the
// payments columns of withdraw_by_tag_with_payments.
type Payments int

// How the reference query computes the payments columns.
const (
	NoPayments         Payments = iota // withdraw_by_tag
	PaymentsCorrelated                 // two subqueries per withdrawal row
	PaymentsGrouped                    // payments aggregated once, LEFT JOINed
)

func (p Payments) String() string {
	switch p {
	case PaymentsCorrelated:
		return "correlated subqueries"
	case PaymentsGrouped:
		return "grouped payments join"
	}
	return "join"
}

// Oracle is a report computed independently of the pipeline: one
// cross-database SQL statement over the source databases. The seed test
// checks the golden files against it; the benchmark times it and compares
// its CSV with the pipeline's.
type Oracle struct {
	UserDB, FundDB string // database names
	TagIDs         []int64
	From, To       time.Time
	Payments       Payments
	// Exact compares status and currency byte for byte instead of with
	// the column collation (which the pipeline uses); the seed data must
	// give the same result either way.
	Exact bool
}

const sqlLayout = "2006-01-02 15:04:05"

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// formulaEscaped is the CSV formula-injection rule in SQL, for the columns
// that declare it: a ' in front of a value whose first byte is '=', '+',
// '-', '@', tab or carriage return. ASCII() reads the first byte (0 for an
// empty string), so no collation takes part.
func formulaEscaped(col string) string {
	return fmt.Sprintf(`CASE WHEN ASCII(%[1]s) IN (ASCII('='), ASCII('+'), ASCII('-'), ASCII('@'), 9, 13)
    THEN CONCAT('''', %[1]s) ELSE %[1]s END`, col)
}

// Query returns the statement and its arguments. Its rows are the
// report's CSV rows, byte for byte, in the pipeline's order.
func (o Oracle) Query() (string, []any) {
	cmpOp := "="
	if o.Exact {
		cmpOp = "= BINARY"
	}
	from, to := o.From.UTC().Format(sqlLayout), o.To.UTC().Format(sqlLayout)
	fund, user := quoteIdent(o.FundDB), quoteIdent(o.UserDB)
	var args []any
	payCols, payJoin := "", ""
	switch o.Payments {
	case PaymentsCorrelated:
		where := fmt.Sprintf(`FROM %[1]s.vs_payment p
    WHERE p.user_id = w.user_id AND p.status %[2]s 'SUCCESS' AND p.currency %[2]s w.currency
      AND p.created_at >= ? AND p.created_at < ?`, fund, cmpOp)
		payCols = fmt.Sprintf(`,
  (SELECT COUNT(*) %[1]s) AS payment_count,
  (SELECT CAST(COALESCE(SUM(p.amount), 0) AS DECIMAL(40,2)) %[1]s) AS payment_total`, where)
		args = append(args, from, to, from, to)
	case PaymentsGrouped:
		payCols = `,
  COALESCE(p.payment_count, 0) AS payment_count,
  COALESCE(p.payment_total, CAST(0 AS DECIMAL(40,2))) AS payment_total`
		payJoin = fmt.Sprintf(`
LEFT JOIN (SELECT user_id, currency, COUNT(*) AS payment_count, CAST(SUM(amount) AS DECIMAL(40,2)) AS payment_total
      FROM %[1]s.vs_payment
      WHERE status %[2]s 'SUCCESS' AND created_at >= ? AND created_at < ?
      GROUP BY user_id, currency) p ON p.user_id = w.user_id AND p.currency %[2]s w.currency`, fund, cmpOp)
	}
	for _, id := range o.TagIDs {
		args = append(args, id)
	}
	if o.Payments == PaymentsGrouped {
		args = append(args, from, to)
	}
	args = append(args, from, to)
	in := strings.TrimSuffix(strings.Repeat("?,", len(o.TagIDs)), ",")
	return fmt.Sprintf(`SELECT w.id, w.user_id, t.tag_ids, w.amount, %s, %s,
  DATE_FORMAT(w.created_at, '%%Y-%%m-%%dT%%H:%%i:%%sZ')%s
FROM %s.vs_withdraw w
JOIN (SELECT r.user_id, GROUP_CONCAT(DISTINCT r.tag_id ORDER BY r.tag_id SEPARATOR ';') AS tag_ids
      FROM %s.vs_user_tag_relation r
      WHERE r.tag_id IN (%s)
      GROUP BY r.user_id) t ON t.user_id = w.user_id%s
WHERE w.created_at >= ? AND w.created_at < ?
ORDER BY w.user_id, w.id`, formulaEscaped("w.currency"), formulaEscaped("w.status"), payCols, fund, user, in, payJoin), args
}

// WriteCSV runs the query on db (any connection that can read both
// databases) and writes header and every row to w as encoding/csv does,
// the pipeline's framing, reading rows one at a time. It returns the
// number of data rows.
func (o Oracle) WriteCSV(ctx context.Context, db *sql.DB, header []string, w io.Writer) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return 0, fmt.Errorf("oracle csv: %w", err)
	}
	q, args := o.Query()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("oracle query (%s): %w", o.Payments, err)
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
			return n, fmt.Errorf("oracle scan: %w", err)
		}
		for i, b := range raw {
			rec[i] = string(b)
		}
		if err := cw.Write(rec); err != nil {
			return n, fmt.Errorf("oracle csv: %w", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("oracle rows (%s): %w", o.Payments, err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, fmt.Errorf("oracle csv: %w", err)
	}
	return n, nil
}
