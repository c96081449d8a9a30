package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fanoutexport/fanoutexport/shared/failreason"
	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// ColumnKind says how a listener scans and formats a result column.
type ColumnKind int

// Column kinds. Decimals are Text: the driver returns them as exact strings
// and they never pass through a float.
const (
	Int ColumnKind = iota
	Text
	Time // DATETIME stored as UTC, formatted RFC 3339 with Z, whole seconds
)

// Column is one column of a source's result rows.
type Column struct {
	Name string
	Kind ColumnKind
}

// Query is one parameterised statement.
type Query struct {
	SQL  string
	Args []any
	// Unhinted, if set, is SQL without its index hint, run instead when
	// the database has no index of that name on the table (a view, or an
	// index named otherwise): the hint is about speed, never the result.
	Unhinted string
}

// Source is one table a listener reads. Table and column names come only
// from these definitions; values only from bound parameters.
type Source struct {
	Database string // "plt_fund": selects the DSN (DSN_PLT_FUND)
	Table    string // named without its database in SQL
	Key      string // join key, first column, rows come ordered by it
	Columns  []Column
	Stage    int // the stage topic its subscription reads

	EntryPoint   string // its function's entry point
	Subscription string // its push subscription
	// Slug names its service accounts in Terraform (${name}-${slug} and
	// ${name}-${slug}-push, 6-30 characters): short, lower case, unique.
	Slug string

	// Input names a dataset in the hash the query is driven by (stage 2
	// reads stage 1's result); "" for none. Its rows are fed to Build in
	// batches of BatchSize.
	Input        string
	InputColumns int
	BatchSize    int

	// Build returns the statement for the params and the part's bounds on
	// Key (bound parameters, like every value) and, with Input, one batch.
	Build func(p Params, b Bounds, batch [][]string) (Query, error)

	// Scan, with Input, is the other way to read: one statement over the
	// part's whole key range b, given the distinct values of the input's
	// second column, returning Columns rows ordered by Key for the input
	// rows that have data (the value as given, exactly); Fetch merges them
	// with the input and gives the rest Missing. ScanRows is the statement
	// whose EXPLAIN estimates the rows Scan reads in b. Fetch chooses Scan
	// when the input is dense in the range (see scanDensity).
	Scan     func(p Params, b Bounds, values []string) (Query, error)
	ScanRows func(b Bounds) Query
	Missing  []string

	// DDL creates the table and the indexes its query needs. Sources on
	// the same table share one DDL (the first to run creates the table);
	// a source that needs more indexes than it declares lists them in
	// Indexes.
	DDL string
	// Indexes are secondary indexes this source's query needs on a table
	// another source's DDL creates; schema.Ensure adds the missing ones.
	Indexes []Index
}

// Index is one secondary index: its name and its column list, "(a, b)".
type Index struct {
	Name    string
	Columns string
}

// Name is "{database}.{table}", the source's name in messages, logs and
// the hash (the dataset prefix {database}.{table}.{column} is fixed). Two
// sources may read one table (a stage-1 range read and a stage-2 lookup),
// so a name is unique only within a report; a source's identity is its
// EntryPoint.
func (s Source) Name() string { return s.Database + "." + s.Table }

// Dataset is the hash field prefix of its rows: "{database}.{table}.{key}".
func (s Source) Dataset() string { return s.Name() + "." + s.Key }

// DSNEnv is the environment variable holding the source database's DSN.
func DSNEnv(database string) string { return "DSN_" + strings.ToUpper(database) }

// and prefixes a non-empty predicate with " AND ".
func and(pred string, args []any) (string, []any) {
	if pred == "" {
		return "", nil
	}
	return " AND " + pred, args
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// Sources are all sources, keyed by EntryPoint: one listener function each.
var Sources = map[string]Source{}

func addSource(s Source) Source {
	if s.EntryPoint == "" || s.Subscription == "" {
		panic(fmt.Sprintf("report: source %s needs an entry point and a subscription", s.Name()))
	}
	if _, dup := Sources[s.EntryPoint]; dup {
		panic(fmt.Sprintf("report: entry point %s defined twice", s.EntryPoint))
	}
	for _, o := range Sources {
		if o.Subscription == s.Subscription {
			panic(fmt.Sprintf("report: subscription %s used by %s and %s", s.Subscription, o.EntryPoint, s.EntryPoint))
		}
		if o.Name() == s.Name() && o.DDL != s.DDL {
			panic(fmt.Sprintf("report: %s and %s read %s with different DDL; share one, add indexes with Indexes", o.EntryPoint, s.EntryPoint, s.Name()))
		}
	}
	Sources[s.EntryPoint] = s
	return s
}

var userTagRelation = addSource(Source{
	Database: "plt_user", Table: "vs_user_tag_relation", Key: "user_id",
	Columns:    []Column{{"user_id", Int}, {"tag_id", Int}},
	Stage:      1,
	EntryPoint: "ListenUserTagRelation", Subscription: "listen-user-tag-relation", Slug: "user-tag",
	Build: func(p Params, b Bounds, _ [][]string) (Query, error) {
		args := make([]any, len(p.TagIDs))
		for i, t := range p.TagIDs {
			args[i] = t
		}
		pred, bargs := and(b.Predicate("user_id"))
		// DISTINCT: the same (user, tag) may be stored twice.
		return Query{
			SQL: "SELECT DISTINCT user_id, tag_id FROM vs_user_tag_relation WHERE tag_id IN (" +
				placeholders(len(args)) + ")" + pred + " ORDER BY user_id, tag_id",
			Args: append(args, bargs...),
		}, nil
	},
	DDL: `CREATE TABLE IF NOT EXISTS vs_user_tag_relation (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  tag_id BIGINT NOT NULL,
  created_at DATETIME NOT NULL,
  KEY idx_tag_user (tag_id, user_id)
)`,
})

var withdraw = addSource(Source{
	Database: "plt_fund", Table: "vs_withdraw", Key: "user_id",
	Columns: []Column{
		{"user_id", Int}, {"id", Int}, {"amount", Text}, {"currency", Text},
		{"status", Text}, {"created_at", Time},
	},
	Stage:      1,
	EntryPoint: "ListenWithdraw", Subscription: "listen-withdraw", Slug: "withdraw",
	Build: func(p Params, b Bounds, _ [][]string) (Query, error) {
		pred, bargs := and(b.Predicate("user_id"))
		return partQuery("SELECT user_id, id, amount, currency, status, created_at FROM vs_withdraw", withdrawKeyIndex,
			"WHERE created_at >= ? AND created_at < ?"+pred+" ORDER BY user_id, id",
			b, append([]any{p.From, p.To}, bargs...)), nil
	},
	// Both indexes cover the query, so neither reads a table page:
	//   - idx_user, for a part (a range of users), read in order: on 10M
	//     withdrawals a part of 248,908 rows took 64 s through (user_id, id)
	//     and a row lookup each (the table is larger than the buffer pool),
	//     and 2.0 s covered. report.Split counts key ranges on it.
	//   - idx_created, for a one-part report's time range: a small report's
	//     20 rows came from 20 table pages on disk once big reports had
	//     filled the buffer pool with idx_user (10M: 20 small queries 2.99 s,
	//     0.36 s covered).
	// A part keeps to idx_user (partQuery).
	DDL: `CREATE TABLE IF NOT EXISTS vs_withdraw (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount DECIMAL(18,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at DATETIME NOT NULL,
  KEY idx_created (created_at, user_id, id, amount, currency, status),
  KEY idx_user (user_id, id, created_at, amount, currency, status)
)`,
})

// withdrawKeyIndex is vs_withdraw's (user_id, …) index: Split counts a
// withdraw_by_tag report's parts on it, and each part is read on it.
const withdrawKeyIndex = "idx_user"

// partQuery is a range listener's statement (ListenWithdraw,
// ListenPaymentRange) "SELECT … FROM table" + rest for bounds b. A part of
// a split report reads its users on index, the (user_id, …) index Split
// counted it on, in key order: with idx_created covering the query too,
// the optimizer once read a part on idx_created instead, the whole time
// range plus a sort of it (1M withdraw_by_tag 2.0 → 3.0 s), and on
// vs_payment it may sort a part read on idx_user_currency. A one-part
// report (no bounds) has no hint, so a small report's narrow time range
// is read on idx_created. Without the index (a view, another name) the
// statement runs unhinted (Query.Unhinted).
func partQuery(selectFrom, index, rest string, b Bounds, args []any) Query {
	q := Query{SQL: selectFrom + " " + rest, Args: args}
	if b.Lo != nil || b.Hi != nil {
		q.SQL, q.Unhinted = selectFrom+" FORCE INDEX ("+index+") "+rest, q.SQL
	}
	return q
}

// paymentBatch pairs per statement (3 params each): measured on 20k pairs,
// the join below takes 0.41 s at 200 and 0.32 s at 1000 per pair batch,
// against 1.84 s for one aggregate subquery per pair.
const paymentBatch = 1000

var payment = addSource(Source{
	Database: "plt_fund", Table: "vs_payment", Key: "user_id",
	Columns: []Column{
		{"user_id", Int}, {"currency", Text}, {"payment_count", Int}, {"payment_total", Text},
	},
	Stage:      2,
	EntryPoint: "ListenPayment", Subscription: "listen-payment", Slug: "payment",
	Input: stage1Pairs, InputColumns: 2, BatchSize: paymentBatch,
	// The batch's pairs become a derived table joined to the payments, so
	// the database decides equality: bound values are coercible, so the
	// currency column's own collation applies. LEFT JOIN and COUNT(p.id)
	// give a user without payments 0 and 0.00. Each row carries the pair's
	// exact bytes and comes back in the batch's order. The part's bounds
	// add nothing: its input holds only the part's own pairs.
	Build: func(p Params, _ Bounds, batch [][]string) (Query, error) {
		var keys strings.Builder
		args := make([]any, 0, len(batch)*3+2)
		for i, pair := range batch {
			if i > 0 {
				keys.WriteString(" UNION ALL ")
			}
			keys.WriteString("SELECT ? AS i, ? AS user_id, ? AS currency")
			// Bind the user as an integer: a string compared with BIGINT
			// would be compared as a double.
			user, err := strconv.ParseInt(pair[0], 10, 64)
			if err != nil {
				return Query{}, fault.Permanent(failreason.BadInput.Errorf(stage1Pairs, pair[0]))
			}
			args = append(args, i, user, pair[1])
		}
		args = append(args, p.From, p.To)
		return Query{SQL: "SELECT k.user_id, k.currency, COUNT(p.id), COALESCE(SUM(p.amount), 0.00) FROM (" +
			keys.String() + ") k LEFT JOIN vs_payment p ON p.user_id = k.user_id AND p.currency = k.currency " +
			"AND p.status = 'SUCCESS' AND p.created_at >= ? AND p.created_at < ? " +
			"GROUP BY k.i, k.user_id, k.currency ORDER BY k.i", Args: args}, nil
	},
	// The scan reads the part's users in idx_user_currency's order, joined
	// to the pairs' distinct spellings of the currency as a derived table:
	// the same equality as Build's (the column's collation), each payment
	// counted once for every spelling it equals, grouped by the spelling's
	// index so that "USD" and "usd" stay two rows. Users without a pair
	// are read and dropped by the merge; pairs without payments get 0 and
	// 0.00, as Build's LEFT JOIN gives them.
	Scan: func(p Params, b Bounds, values []string) (Query, error) {
		var keys strings.Builder
		args := make([]any, 0, len(values)*2+4)
		for i, v := range values {
			if i > 0 {
				keys.WriteString(" UNION ALL ")
			}
			keys.WriteString("SELECT ? AS i, ? AS currency")
			args = append(args, i, v)
		}
		args = append(args, p.From, p.To)
		pred, bargs := and(b.Predicate("user_id"))
		return Query{SQL: "SELECT p.user_id, k.currency, COUNT(*), SUM(p.amount) FROM vs_payment p JOIN (" +
			keys.String() + ") k ON p.currency = k.currency " +
			"WHERE p.status = 'SUCCESS' AND p.created_at >= ? AND p.created_at < ?" + pred +
			" GROUP BY p.user_id, k.i ORDER BY p.user_id, k.i", Args: append(args, bargs...)}, nil
	},
	ScanRows: func(b Bounds) Query {
		pred, bargs := b.Predicate("user_id")
		if pred == "" {
			return Query{SQL: "SELECT user_id FROM vs_payment"}
		}
		return Query{SQL: "SELECT user_id FROM vs_payment FORCE INDEX (idx_user_currency) WHERE " + pred, Args: bargs}
	},
	Missing: []string{"0", "0.00"},
	// idx_user_currency covers both reads (amount included): a pair's
	// lookup and a part's scan read the index alone, never the table.
	DDL: `CREATE TABLE IF NOT EXISTS vs_payment (
  id BIGINT NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  amount DECIMAL(18,2) NOT NULL,
  currency CHAR(3) NOT NULL,
  status VARCHAR(16) NOT NULL,
  created_at DATETIME NOT NULL,
  KEY idx_user_currency (user_id, currency, status, created_at, amount)
)`,
})
