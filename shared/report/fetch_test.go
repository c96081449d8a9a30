package report_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/testdb"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/fault"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

var (
	userTags = report.Sources["ListenUserTagRelation"]
	withdraw = report.Sources["ListenWithdraw"]
	payment  = report.Sources["ListenPayment"]
)

// newDB creates a throwaway database holding every source table (made by
// the sources' own DDL), dropped when the test ends.
func newDB(t *testing.T) *sql.DB {
	t.Helper()
	return testdb.New(t, "fetchtest", userTags.DDL, withdraw.DDL, payment.DDL)
}

func insert(t *testing.T, db *sql.DB, query string, rows ...[]any) {
	t.Helper()
	for _, r := range rows {
		if _, err := db.ExecContext(context.Background(), query, r...); err != nil {
			t.Fatalf("%s %v: %v", query, r, err)
		}
	}
}

// run fetches src into a MemStore with the given chunk limit and reads
// the rows back.
func run(t *testing.T, db *sql.DB, src report.Source, p report.Params, in dataset.Store, limit int) ([][]string, int64, error) {
	t.Helper()
	ctx := context.Background()
	out := dataset.NewMemStore()
	w := dataset.NewWriter(ctx, out, src.Dataset(), limit)
	// The batches are the lookups' (TestPaymentScanMatchesLookups and
	// TestPaymentReadAuto cover the scan and the choice).
	if _, err := report.FetchRead(ctx, db, src, p, report.Bounds{}, in, w, 0, report.ReadLookups); err != nil {
		return nil, 0, err
	}
	chunks, n, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Finish(ctx, src.Dataset(), chunks, n); err != nil {
		t.Fatal(err)
	}
	r, err := dataset.Open(ctx, out, src.Dataset(), len(src.Columns))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, chunks, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, slices.Clone(row))
	}
}

var (
	jan1 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feb1 = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
)

func TestRunUserTags(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insert(t, db, "INSERT INTO vs_user_tag_relation (id, user_id, tag_id, created_at) VALUES (?, ?, ?, '2025-06-01 00:00:00')",
		[]any{1, 5, 3}, []any{2, 1, 10}, []any{3, 1, 3},
		[]any{4, 1, 3}, // the same (user, tag) stored twice
		[]any{5, 2, 7}, // a tag not asked for
		[]any{6, 2, 10}, []any{7, 5, 3}, []any{8, 3, 100},
	)
	got, _, err := run(t, db, userTags, report.Params{TagIDs: []int64{3, 10}, From: jan1, To: feb1}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"1", "3"}, {"1", "10"}, {"2", "10"}, {"5", "3"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("user tags (-want +got):\n%s", diff)
	}
}

func TestRunWithdraw(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insert(t, db, "INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		[]any{101, 1, "12.50", "USD", "SUCCESS", "2026-01-05 10:00:00"},
		[]any{105, 1, "0", "EUR", "FAILED,RETRY", "2026-01-01 00:00:00"}, // from is inclusive
		[]any{102, 2, "99999999.99", "USD", `NEEDS"REVIEW`, "2026-01-31 23:59:59"},
		[]any{103, 2, "1.00", "USD", "SUCCESS", "2026-02-01 00:00:00"}, // to is exclusive
		[]any{104, 1, "3.00", "USD", "SUCCESS", "2025-12-31 23:59:59"}, // before from
		[]any{100, 3, "1.5", "JPY", "日本語", "2026-01-10 00:00:00"},
	)
	// The same instants as jan1 and feb1, in another zone: the driver must
	// compare them as UTC.
	tokyo := time.FixedZone("JST", 9*3600)
	p := report.Params{TagIDs: []int64{3}, From: jan1.In(tokyo), To: feb1.In(tokyo)}
	for _, limit := range []int{0, 32} {
		got, chunks, err := run(t, db, withdraw, p, nil, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]string{
			{"1", "101", "12.50", "USD", "SUCCESS", "2026-01-05T10:00:00Z"},
			{"1", "105", "0.00", "EUR", "FAILED,RETRY", "2026-01-01T00:00:00Z"},
			{"2", "102", "99999999.99", "USD", `NEEDS"REVIEW`, "2026-01-31T23:59:59Z"},
			{"3", "100", "1.50", "JPY", "日本語", "2026-01-10T00:00:00Z"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("chunk limit %d: withdrawals (-want +got):\n%s", limit, diff)
		}
		if limit > 0 && chunks < 2 {
			t.Errorf("chunk limit %d: %d chunks, want several", limit, chunks)
		}
	}
	got, _, err := run(t, db, withdraw, report.Params{TagIDs: []int64{3}, From: feb1.AddDate(1, 0, 0), To: feb1.AddDate(1, 1, 0)}, nil, 0)
	if err != nil || got != nil {
		t.Errorf("empty range: %v, %v; want no rows", got, err)
	}
}

// batchCounter wraps a source's Build to record the batch sizes it sees.
type batchCounter struct {
	mu    sync.Mutex
	sizes []int
}

func (c *batchCounter) wrap(src report.Source, batchSize int) report.Source {
	build := src.Build
	src.BatchSize = batchSize
	src.Build = func(p report.Params, b report.Bounds, batch [][]string) (report.Query, error) {
		c.mu.Lock()
		c.sizes = append(c.sizes, len(batch))
		c.mu.Unlock()
		return build(p, b, batch)
	}
	return src
}

func pairsStore(t *testing.T, pairs [][]string) *dataset.MemStore {
	t.Helper()
	st := dataset.NewMemStore()
	if err := st.Put(context.Background(), payment.Input, 16, pairs); err != nil {
		t.Fatal(err)
	}
	return st
}

const insertPayment = "INSERT INTO vs_payment (id, user_id, amount, currency, status, created_at) VALUES (?, ?, ?, ?, ?, ?)"

func TestRunPayment(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insert(t, db, insertPayment,
		[]any{1, 1, "10.00", "USD", "SUCCESS", "2026-01-05 10:00:00"},
		[]any{2, 1, "20.50", "USD", "SUCCESS", "2026-01-01 00:00:00"}, // from is inclusive
		[]any{3, 1, "99.00", "USD", "FAILED", "2026-01-05 10:00:00"},  // not a successful payment
		[]any{4, 1, "5.00", "USD", "SUCCESS", "2026-02-01 00:00:00"},  // to is exclusive
		[]any{5, 1, "7.00", "USD", "SUCCESS", "2025-12-31 23:59:59"},  // before from
		[]any{6, 2, "99999999.99", "USD", "SUCCESS", "2026-01-20 00:00:00"},
		[]any{7, 3, "1.00", "EUR", "SUCCESS", "2026-01-20 00:00:00"}, // user not among the pairs
		[]any{8, 2, "1.00", "EUR", "SUCCESS", "2026-01-20 00:00:00"}, // currency not among user 2's pairs
	)
	var c batchCounter
	src := c.wrap(payment, 2)
	in := pairsStore(t, [][]string{{"1", "EUR"}, {"1", "USD"}, {"2", "USD"}})
	got, _, err := run(t, db, src, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, in, 8)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"1", "EUR", "0", "0.00"}, // no payments
		{"1", "USD", "2", "30.50"},
		{"2", "USD", "1", "99999999.99"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payment rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 1}, c.sizes); diff != "" {
		t.Errorf("batches queried (-want +got):\n%s", diff)
	}
}

// TestRunPaymentComparedBySQL: the database compares the pair with the
// rows, so users are compared as BIGINT (exact beyond 2^53) and
// currencies by the column's collation, while each row keeps the input's
// bytes so the join can find it.
func TestRunPaymentComparedBySQL(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insert(t, db, insertPayment,
		[]any{1, int64(9007199254740992), "1.00", "USD", "SUCCESS", "2026-01-05 10:00:00"},
		[]any{2, int64(9007199254740992), "2.00", "USD", "SUCCESS", "2026-01-06 10:00:00"},
	)
	var c batchCounter
	src := c.wrap(payment, 200)
	in := pairsStore(t, [][]string{{"9007199254740992", "usd"}, {"9007199254740993", "USD"}})
	got, _, err := run(t, db, src, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"9007199254740992", "usd", "2", "3.00"},
		{"9007199254740993", "USD", "0", "0.00"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payment rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2}, c.sizes); diff != "" {
		t.Errorf("batches queried (-want +got):\n%s", diff)
	}
}

func TestRunPaymentInput(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	p := report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}

	var c batchCounter
	got, chunks, err := run(t, db, c.wrap(payment, 2), p, pairsStore(t, nil), 0)
	if err != nil || got != nil || chunks != 0 {
		t.Errorf("empty input: %v, %d chunks, %v; want no rows", got, chunks, err)
	}
	if len(c.sizes) != 0 {
		t.Errorf("empty input ran %d queries, want none", len(c.sizes))
	}
	if _, _, err := run(t, db, payment, p, dataset.NewMemStore(), 0); !errors.Is(err, dataset.ErrMissing) {
		t.Errorf("missing input: %v, want ErrMissing", err)
	}
	if _, _, err := run(t, db, payment, p, pairsStore(t, [][]string{{"x", "USD"}}), 0); err == nil {
		t.Errorf("input with a bad user_id: no error")
	}
}

func TestRunQueryError(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	if _, err := db.Exec("DROP TABLE vs_withdraw"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, db, withdraw, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, nil, 0); err == nil {
		t.Errorf("query on a missing table: no error")
	}
}

// A pooled connection the server has dropped (KILL, as a restart or an
// idle timeout would) is replaced: the next fetch reads every row, as
// database/sql's own queries did before Fetch read the driver's rows.
func TestRunAfterConnectionKilled(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	db.SetMaxOpenConns(1)
	insert(t, db, "INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (?, ?, 1.00, 'USD', 'SUCCESS', '2026-01-05')",
		[]any{1, 5}, []any{2, 6})
	p := report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}
	for round := range 3 {
		var id int64
		if err := db.QueryRow("SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		admin, err := sql.Open("mysql", testdb.Server())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec("KILL CONNECTION " + strconv.FormatInt(id, 10)); err != nil {
			t.Fatal(err)
		}
		admin.Close()
		rows, _, err := run(t, db, withdraw, p, nil, 0)
		if err != nil || len(rows) != 2 {
			t.Fatalf("round %d: fetch after KILL of the pooled connection: %d rows, %v; want 2 rows", round, len(rows), err)
		}
	}
}

// A key that is not a 64-bit integer (a column of the wrong type, a NULL,
// a value past int64) fails the fetch for good, naming the source, the
// column and the value; the rows before it are no reason to retry.
func TestRunNotAnInteger(t *testing.T) {
	t.Parallel()
	for _, bad := range []any{"7x", nil, "9223372036854775808", "1.5"} {
		t.Run(fmt.Sprint(bad), func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			if _, err := db.Exec("ALTER TABLE vs_withdraw MODIFY user_id VARCHAR(32) NULL"); err != nil {
				t.Fatal(err)
			}
			insert(t, db, "INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (?, ?, 1.00, 'USD', 'SUCCESS', '2026-01-05')",
				[]any{1, "5"}, []any{2, bad})
			_, _, err := run(t, db, withdraw, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, nil, 0)
			value := ""
			if s, ok := bad.(string); ok {
				value = s
			}
			want := fmt.Sprintf("plt_fund.vs_withdraw.user_id: %q is not an integer", value)
			if err == nil || !strings.Contains(err.Error(), want) || fault.ClassOf(err) != fault.Fail {
				t.Errorf("fetch: %v (class %v); want a permanent error saying %s", err, fault.ClassOf(err), want)
			}
		})
	}
}

// A time column that holds no DATETIME (text, a NULL: the column's type is
// not what the report expects) fails the fetch for good, naming the value,
// rather than being retried to the dead-letter queue.
func TestRunNotATime(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	if _, err := db.Exec("ALTER TABLE vs_withdraw MODIFY created_at VARCHAR(32) NULL"); err != nil {
		t.Fatal(err)
	}
	insert(t, db, "INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES (?, ?, 1.00, 'USD', 'SUCCESS', ?)",
		[]any{1, 5, "2026-01-05 10:00:00"})
	_, _, err := run(t, db, withdraw, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, nil, 0)
	want := `plt_fund.vs_withdraw.created_at: "2026-01-05 10:00:00" is not a date and time`
	if err == nil || !strings.Contains(err.Error(), want) || fault.ClassOf(err) != fault.Fail {
		t.Errorf("fetch: %v (class %v); want a permanent error saying %s", err, fault.ClassOf(err), want)
	}
}

// The currency column's own collation decides equality, whatever the
// connection's: a binary collation tells "usd" from "USD", a case-insensitive
// one other than the connection's does not, and neither is an error.
func TestRunPaymentColumnCollation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		collation string
		usdCount  string
	}{
		{"utf8mb4_bin", "1"},
		{"utf8mb4_unicode_ci", "2"},
	} {
		t.Run(tt.collation, func(t *testing.T) {
			t.Parallel()
			db := newDB(t)
			if _, err := db.Exec("ALTER TABLE vs_payment MODIFY currency CHAR(3) CHARACTER SET utf8mb4 COLLATE " + tt.collation + " NOT NULL"); err != nil {
				t.Fatal(err)
			}
			insert(t, db, insertPayment,
				[]any{1, 1, "1.00", "USD", "SUCCESS", "2026-01-05 10:00:00"},
				[]any{2, 1, "2.00", "usd", "SUCCESS", "2026-01-06 10:00:00"},
			)
			got, _, err := run(t, db, payment, report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}, pairsStore(t, [][]string{{"1", "USD"}}), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0][2] != tt.usdCount {
				t.Errorf("rows %v, want USD counted %s times under %s", got, tt.usdCount, tt.collation)
			}
		})
	}
}

// runRead is run with the part's bounds b and the stage-2 read how.
func runRead(t *testing.T, db *sql.DB, src report.Source, p report.Params, b report.Bounds, in dataset.Store, how report.Read) ([][]string, report.FetchStats) {
	t.Helper()
	ctx := context.Background()
	out := dataset.NewMemStore()
	w := dataset.NewWriter(ctx, out, src.Dataset(), 64)
	st, err := report.FetchRead(ctx, db, src, p, b, in, w, 0, how)
	if err != nil {
		t.Fatalf("%v read: %v", how, err)
	}
	chunks, n, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Finish(ctx, src.Dataset(), chunks, n); err != nil {
		t.Fatal(err)
	}
	r, err := dataset.Open(ctx, out, src.Dataset(), len(src.Columns))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return rows, st
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, slices.Clone(row))
	}
}

func bounds(lo, hi int64) report.Bounds { return report.Bounds{Lo: &lo, Hi: &hi} }

// TestPaymentScanMatchesLookups: the part's range scan merged with the
// pairs gives exactly the lookups' rows: the column's collation decides
// equality (USD, usd and Usd each see the three payments in any spelling,
// status 'success' and 'SUCCESS ' count), each row keeps its pair's bytes,
// pairs without payments get 0 and 0.00, users outside the pairs or the
// part's bounds are read past, and users compare as BIGINT.
func TestPaymentScanMatchesLookups(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	big := int64(9007199254740992)
	insert(t, db, insertPayment,
		[]any{1, 10, "1.00", "USD", "SUCCESS", "2026-01-05 00:00:00"},
		[]any{2, 10, "2.00", "usd", "success", "2026-01-06 00:00:00"},
		[]any{3, 10, "4.00", "Usd", "SUCCESS ", "2026-01-07 00:00:00"},
		[]any{4, 10, "8.00", "USD", "FAILED", "2026-01-08 00:00:00"},
		[]any{5, 10, "16.00", "EUR", "SUCCESS", "2026-01-09 00:00:00"},
		[]any{6, 10, "32.00", "USD", "SUCCESS", "2026-02-01 00:00:00"}, // to is exclusive
		[]any{7, 11, "64.00", "USD", "SUCCESS", "2026-01-09 00:00:00"}, // a user with no pair
		[]any{8, 12, "0.50", "EUR", "SUCCESS", "2026-01-01 00:00:00"},
		[]any{9, 9, "1.00", "USD", "SUCCESS", "2026-01-09 00:00:00"}, // below the part
		[]any{10, big, "1.00", "USD", "SUCCESS", "2026-01-09 00:00:00"},
		[]any{11, big + 1, "2.00", "USD", "SUCCESS", "2026-01-09 00:00:00"},
	)
	pairs := [][]string{
		{"10", "EUR"}, {"10", "USD"}, {"10", "Usd"}, {"10", "usd"},
		{"12", "EUR"}, {"12", "USD"}, // 12 has no USD payment
		{"13", "EUR"}, // 13 has no payment at all
		{strconv.FormatInt(big, 10), "USD"},
	}
	want := [][]string{
		{"10", "EUR", "1", "16.00"}, {"10", "USD", "3", "7.00"}, {"10", "Usd", "3", "7.00"}, {"10", "usd", "3", "7.00"},
		{"12", "EUR", "1", "0.50"}, {"12", "USD", "0", "0.00"},
		{"13", "EUR", "0", "0.00"},
		{strconv.FormatInt(big, 10), "USD", "1", "1.00"},
	}
	p := report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}
	for _, b := range []report.Bounds{{}, bounds(10, big+1)} {
		for _, how := range []report.Read{report.ReadLookups, report.ReadScan} {
			got, st := runRead(t, db, payment, p, b, pairsStore(t, pairs), how)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v read in %v (-want +got):\n%s", how, b, diff)
			}
			if st.Read != how || st.Inputs != int64(len(pairs)) || st.Statements != 1 {
				t.Errorf("%v read in %v: stats %+v", how, b, st)
			}
		}
	}
	// Past maxScanValues distinct currencies the scan is not tried.
	var many [][]string
	for i := range 70 {
		many = append(many, []string{"10", fmt.Sprintf("C%02d", i)})
	}
	if _, st := runRead(t, db, payment, p, report.Bounds{}, pairsStore(t, many), report.ReadScan); st.Read != report.ReadLookups {
		t.Errorf("70 currencies read by %v, want lookups", st.Read)
	}
}

// TestPaymentReadAuto: a few pairs in a large range are looked up; pairs
// dense in their range are scanned.
func TestPaymentReadAuto(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	var rows [][]any
	for u := 1; u <= 3000; u++ {
		rows = append(rows, []any{u, u, "1.00", "USD", "SUCCESS", "2026-01-05 00:00:00"})
	}
	insertMany(t, db, rows)
	rows = rows[:0]
	if _, err := db.Exec("ANALYZE TABLE vs_payment"); err != nil {
		t.Fatal(err)
	}
	p := report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}
	var sparse, dense [][]string
	for u := 1; u <= 3000; u++ {
		if u%100 == 0 {
			sparse = append(sparse, []string{strconv.Itoa(u), "USD"})
		}
		if u <= 1500 {
			dense = append(dense, []string{strconv.Itoa(u), "USD"})
		}
	}
	if _, st := runRead(t, db, payment, p, report.Bounds{}, pairsStore(t, sparse), report.ReadAuto); st.Read != report.ReadLookups || st.Estimated != 0 {
		t.Errorf("30 pairs (one batch): %+v, want lookups without an estimate", st)
	}
	got, st := runRead(t, db, payment, p, bounds(1, 1501), pairsStore(t, dense), report.ReadAuto)
	if st.Read != report.ReadScan || st.Estimated <= 0 {
		t.Errorf("1500 pairs in a range of 1500 users: %+v, want a scan", st)
	}
	if len(got) != 1500 || got[1499][2] != "1" {
		t.Errorf("scan: %d rows, last %v", len(got), got[len(got)-1])
	}
	// 1100 pairs spread over a table of 30000 payments: lookups.
	for u := 3001; u <= 30000; u++ {
		rows = append(rows, []any{u + 100000, u, "1.00", "USD", "SUCCESS", "2026-01-05 00:00:00"})
		if u%1000 == 0 || u == 30000 {
			insertMany(t, db, rows)
			rows = rows[:0]
		}
	}
	if _, err := db.Exec("ANALYZE TABLE vs_payment"); err != nil {
		t.Fatal(err)
	}
	var spread [][]string
	for u := 1; u <= 30000; u += 27 {
		spread = append(spread, []string{strconv.Itoa(u), "USD"})
	}
	if _, st := runRead(t, db, payment, p, report.Bounds{}, pairsStore(t, spread), report.ReadAuto); st.Read != report.ReadLookups || st.Estimated <= 0 {
		t.Errorf("%d pairs among 30000 users: %+v, want lookups after an estimate", len(spread), st)
	}
}

func insertMany(t *testing.T, db *sql.DB, rows [][]any) {
	t.Helper()
	if len(rows) == 0 {
		return
	}
	var args []any
	q := "INSERT INTO vs_payment (id, user_id, amount, currency, status, created_at) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?),", len(rows)), ",")
	for _, r := range rows {
		args = append(args, r...)
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// Fetch reads values through the driver's own rows; each must come out as
// database/sql's Scan made it before (into an int64 for Int, a time.Time
// for Time, sql.RawBytes for Text), for every column type a source may
// hold: NULLs, numbers, decimals, dates and times, large unsigned values.
func TestFetchConvertsAsScan(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	if _, err := db.Exec(`CREATE TABLE kinds (
  k BIGINT NOT NULL PRIMARY KEY, i BIGINT UNSIGNED NULL, s VARCHAR(20) NULL, d DECIMAL(18,4) NULL,
  f DOUBLE NULL, r FLOAT NULL, dt DATETIME(6) NOT NULL, dd DATE NULL, tm TIME NULL, tiny TINYINT NULL,
  y YEAR NULL, b VARBINARY(8) NULL, ts TIMESTAMP NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, db, "INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		[]any{1, 7, "héllo", "12.3400", 1.5, 0.1, "2026-03-04 05:06:07.123456", "2026-03-04", "-01:02:03", -5, 2024, []byte{0, 1, 255}, "2026-01-02 03:04:05"},
		[]any{2, nil, nil, nil, nil, nil, "1000-01-01 00:00:00", nil, nil, nil, nil, nil, nil},
		[]any{3, uint64(18446744073709551615), "", "-0.0001", 1e300, 3.4e38, "9999-12-31 23:59:59.999999", "1000-01-01", "838:59:59", 127, 1901, []byte{}, "2038-01-19 03:14:07"},
		[]any{4, 0, "a,b\n\"c\"", "0.0000", -0.0, 1, "2026-07-01 00:00:00", "9999-12-31", "00:00:00.5", 0, 2155, []byte("x"), nil},
	)
	cols := []report.Column{{Name: "k", Kind: report.Int}}
	names := []string{"i", "s", "d", "f", "r", "dt", "dd", "tm", "tiny", "y", "b", "ts"}
	for _, n := range names {
		cols = append(cols, report.Column{Name: n, Kind: report.Text})
	}
	cols = append(cols, report.Column{Name: "dt", Kind: report.Time}, report.Column{Name: "tiny", Kind: report.Int})
	sqlText := "SELECT k, " + strings.Join(names, ", ") + ", dt, COALESCE(tiny, -1) FROM kinds WHERE k >= ? ORDER BY k"
	src := report.Source{Database: "test", Table: "kinds", Key: "k", Columns: cols,
		Build: func(report.Params, report.Bounds, [][]string) (report.Query, error) {
			return report.Query{SQL: sqlText, Args: []any{0}}, nil
		}}
	got, _, err := run(t, db, src, report.Params{}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}

	// The reference: database/sql's Scan, as Fetch read before.
	rows, err := db.Query(sqlText, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var want [][]string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ints := make([]int64, len(cols))
		times := make([]time.Time, len(cols))
		dest := make([]any, len(cols))
		for i, c := range cols {
			switch c.Kind {
			case report.Int:
				dest[i] = &ints[i]
			case report.Time:
				dest[i] = &times[i]
			default:
				dest[i] = &raw[i]
			}
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatalf("reference scan: %v", err)
		}
		row := make([]string, len(cols))
		for i, c := range cols {
			switch c.Kind {
			case report.Int:
				row[i] = strconv.FormatInt(ints[i], 10)
			case report.Time:
				row[i] = times[i].UTC().Format(report.TimeLayout)
			default:
				row[i] = string(raw[i])
			}
		}
		want = append(want, row)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Fetch and Scan differ (-Scan +Fetch):\n%s", diff)
	}
}

// The range listeners' queries read no table page: a part of a split
// report reads its users on the key index Split counted it on, in key
// order (no sort), and a one-part report's narrow time range is covered
// too (idx_created), so a small report does not read its rows from disk
// once big reports have filled the buffer pool with the key index.
func TestRangeQueriesAreCovered(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	paymentRange := report.Sources["ListenPaymentRange"]
	for _, x := range paymentRange.Indexes {
		if _, err := db.Exec("ALTER TABLE vs_payment ADD INDEX " + x.Name + " " + x.Columns); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"vs_withdraw", "vs_payment"} {
		var values []string
		var args []any
		for i := range 5000 {
			values = append(values, "(?, ?, 1.00, 'USD', ?, ?)")
			args = append(args, i+1, i%500+1, []string{"SUCCESS", "FAILED"}[i%7/6], jan1.Add(time.Duration(i)*37*time.Minute))
		}
		if _, err := db.Exec("INSERT INTO "+table+" (id, user_id, amount, currency, status, created_at) VALUES "+strings.Join(values, ","), args...); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("ANALYZE TABLE " + table); err != nil {
			t.Fatal(err)
		}
	}
	one, lo, hi := int64(1), int64(100), int64(300)
	wide := report.Params{TagIDs: []int64{1}, From: jan1, To: jan1.AddDate(0, 6, 0)}
	narrow := report.Params{TagIDs: []int64{1}, From: jan1.AddDate(0, 1, 0), To: jan1.AddDate(0, 1, 0).Add(3 * time.Hour)}
	for _, src := range []struct {
		report.Source
		key string
	}{{withdraw, "idx_user"}, {paymentRange, "idx_user_paid"}} {
		for _, tt := range []struct {
			name    string
			p       report.Params
			b       report.Bounds
			wantKey string // "" for any
		}{
			{"first part", wide, report.Bounds{Hi: &hi}, src.key},
			{"middle part", wide, report.Bounds{Lo: &lo, Hi: &hi}, src.key},
			{"last part", wide, report.Bounds{Lo: &hi}, src.key},
			// Where idx_created would be the cheaper read (most users, a
			// narrow time), a part still keeps to its key index, as
			// before idx_created covered the query.
			{"part of most users, narrow time", narrow, report.Bounds{Lo: &one}, src.key},
			{"one-part small report", narrow, report.Bounds{}, ""},
		} {
			q, err := src.Build(tt.p, tt.b, nil)
			if err != nil {
				t.Fatal(err)
			}
			key, extra := explain(t, db, q)
			// "Using index" exactly: "Using index condition" reads the table.
			covered := slices.Contains(strings.Split(extra, "; "), "Using index")
			if tt.wantKey == "" && !covered {
				t.Errorf("%s %s: EXPLAIN key %q, Extra %q; want a covering index (Using index)", src.EntryPoint, tt.name, key, extra)
			}
			if tt.wantKey != "" && (key != tt.wantKey || !covered || strings.Contains(extra, "filesort")) {
				t.Errorf("%s %s: EXPLAIN key %q, Extra %q; want %s, covering, without a filesort", src.EntryPoint, tt.name, key, extra, tt.wantKey)
			}
		}
	}
}

// A part's index hint is about speed only: where the table is a view (or
// its index has another name) the part reads the same rows unhinted.
func TestPartReadsAView(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	for _, q := range []string{
		"RENAME TABLE vs_withdraw TO withdraw_rows",
		"CREATE VIEW vs_withdraw AS SELECT * FROM withdraw_rows",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	insert(t, db, "INSERT INTO withdraw_rows (id, user_id, amount, currency, status, created_at) VALUES (?, ?, 1.00, 'USD', 'SUCCESS', '2026-01-05')",
		[]any{1, 5}, []any{2, 6}, []any{3, 7})
	lo, hi := int64(6), int64(8)
	p := report.Params{TagIDs: []int64{3}, From: jan1, To: feb1}
	q, err := withdraw.Build(p, report.Bounds{Lo: &lo, Hi: &hi}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q.SQL, "FORCE INDEX") || q.Unhinted == "" {
		t.Fatalf("a part's query %q has no hint and fallback", q.SQL)
	}
	rows, _ := runRead(t, db, withdraw, p, report.Bounds{Lo: &lo, Hi: &hi}, nil, report.ReadAuto)
	var users []string
	for _, r := range rows {
		users = append(users, r[0])
	}
	if !slices.Equal(users, []string{"6", "7"}) {
		t.Errorf("fetch of users [6, 8) from a view: users %v, want [6 7]", users)
	}
}

// explain is the key and Extra of q's EXPLAIN (one table).
func explain(t *testing.T, db *sql.DB, q report.Query) (key, extra string) {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("EXPLAIN %s: no row", q.SQL)
	}
	vals := make([]sql.NullString, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		t.Fatal(err)
	}
	for i, c := range cols {
		switch c {
		case "key":
			key = vals[i].String
		case "Extra":
			extra = vals[i].String
		}
	}
	return key, extra
}
