package report

import (
	"fmt"
	"strings"
)

// Reference is one shape of a report's reference query: the report's CSV
// rows, byte for byte and in order (header excluded), computed by one
// cross-database SQL statement, written independently of the pipeline's
// sources and joins. local/seed checks the golden files against every
// shape; local/bench times each one against the pipeline.
type Reference struct {
	Name string // "join", "grouped payments join": says which shape
	// Build returns the statement for p over the databases db names.
	Build func(db RefDB, p Params) Query
}

// RefDB is where a reference query reads and how it compares text.
type RefDB struct {
	// Names maps each source database ("plt_fund") to the database the
	// query reads (a test's throwaway "seedtest_…_fund").
	Names map[string]string
	// Exact compares text byte for byte (= BINARY) where the pipeline
	// compares with the column's collation: the seed data must give the
	// same result either way.
	Exact bool
}

// Table is the quoted `database`.`table` of a source database's table.
func (d RefDB) Table(database, table string) string {
	name, ok := d.Names[database]
	if !ok {
		panic(fmt.Sprintf("report: reference query reads database %s, which RefDB does not name", database))
	}
	return quoteIdent(name) + "." + quoteIdent(table)
}

// Eq is the text comparison: "=" (the collation's) or "= BINARY".
func (d RefDB) Eq() string {
	if d.Exact {
		return "= BINARY"
	}
	return "="
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// refTimeLayout is how a reference query binds the params' times.
const refTimeLayout = "2006-01-02 15:04:05.999999"

// RefRange returns the two args of a [From, To) condition.
func RefRange(p Params) []any {
	return []any{p.From.UTC().Format(refTimeLayout), p.To.UTC().Format(refTimeLayout)}
}

// RefEscaped is the CSV formula-injection rule in SQL, for a column that
// declares it: a ' in front of a value whose first byte is '=', '+', '-',
// '@', tab or carriage return. ASCII() reads the first byte (0 for an
// empty string), so no collation takes part.
func RefEscaped(col string) string {
	return fmt.Sprintf(`CASE WHEN ASCII(%[1]s) IN (ASCII('='), ASCII('+'), ASCII('-'), ASCII('@'), 9, 13)
    THEN CONCAT('''', %[1]s) ELSE %[1]s END`, col)
}

// RefTime formats a DATETIME column as the CSV does: RFC 3339, UTC, Z.
func RefTime(col string) string {
	return "DATE_FORMAT(" + col + ", '%Y-%m-%dT%H:%i:%sZ')"
}

// RefUserTags is a derived table (user_id, tag_ids) of the users holding
// any of p's tags, tag_ids their matching tags, distinct, ascending,
// ";"-separated, and its args.
func RefUserTags(db RefDB, p Params) (string, []any) {
	args := make([]any, len(p.TagIDs))
	for i, t := range p.TagIDs {
		args[i] = t
	}
	return fmt.Sprintf(`(SELECT r.user_id, GROUP_CONCAT(DISTINCT r.tag_id ORDER BY r.tag_id SEPARATOR ';') AS tag_ids
      FROM %s r
      WHERE r.tag_id IN (%s)
      GROUP BY r.user_id)`, db.Table("plt_user", "vs_user_tag_relation"), placeholders(len(args))), args
}

// Reference shapes of the withdrawal reports.
const (
	refJoin       = "join"
	refCorrelated = "correlated subqueries"
	refGrouped    = "grouped payments join"
)

// withdrawReference is the withdrawals of tagged users in [From, To); with
// payments, each row's payment count and total in one of two shapes (the
// benchmark times both: which one MariaDB runs faster depends on the data).
func withdrawReference(payments string) Reference {
	return Reference{Name: payments, Build: func(db RefDB, p Params) Query {
		fund, eq := db.Table("plt_fund", "vs_payment"), db.Eq()
		var args []any
		payCols, payJoin := "", ""
		switch payments {
		case refCorrelated:
			where := fmt.Sprintf(`FROM %[1]s p
    WHERE p.user_id = w.user_id AND p.status %[2]s 'SUCCESS' AND p.currency %[2]s w.currency
      AND p.created_at >= ? AND p.created_at < ?`, fund, eq)
			payCols = fmt.Sprintf(`,
  (SELECT COUNT(*) %[1]s) AS payment_count,
  (SELECT CAST(COALESCE(SUM(p.amount), 0) AS DECIMAL(40,2)) %[1]s) AS payment_total`, where)
			args = append(args, RefRange(p)...)
			args = append(args, RefRange(p)...)
		case refGrouped:
			payCols = `,
  COALESCE(p.payment_count, 0) AS payment_count,
  COALESCE(p.payment_total, CAST(0 AS DECIMAL(40,2))) AS payment_total`
			payJoin = fmt.Sprintf(`
LEFT JOIN (SELECT user_id, currency, COUNT(*) AS payment_count, CAST(SUM(amount) AS DECIMAL(40,2)) AS payment_total
      FROM %[1]s
      WHERE status %[2]s 'SUCCESS' AND created_at >= ? AND created_at < ?
      GROUP BY user_id, currency) p ON p.user_id = w.user_id AND p.currency %[2]s w.currency`, fund, eq)
		}
		tags, targs := RefUserTags(db, p)
		args = append(args, targs...)
		if payments == refGrouped {
			args = append(args, RefRange(p)...)
		}
		args = append(args, RefRange(p)...)
		return Query{SQL: fmt.Sprintf(`SELECT w.id, w.user_id, t.tag_ids, w.amount, %s, %s,
  %s%s
FROM %s w
JOIN %s t ON t.user_id = w.user_id%s
WHERE w.created_at >= ? AND w.created_at < ?
ORDER BY w.user_id, w.id`, RefEscaped("w.currency"), RefEscaped("w.status"), RefTime("w.created_at"), payCols,
			db.Table("plt_fund", "vs_withdraw"), tags, payJoin), Args: args}
	}}
}
