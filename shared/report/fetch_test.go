package report_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/testdb"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
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
	if err := report.Fetch(ctx, db, src, p, in, w); err != nil {
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
