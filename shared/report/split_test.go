package report_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

// withdrawal is one generated vs_withdraw row.
type withdrawal struct {
	user int64
	at   time.Time
}

// loadWithdrawals inserts rows (ids 1..n) in 1000-row statements and
// refreshes the table's statistics, as a production table's are.
func loadWithdrawals(t *testing.T, db *sql.DB, rows []withdrawal) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < len(rows); start += 1000 {
		end := min(start+1000, len(rows))
		var q strings.Builder
		q.WriteString("INSERT INTO vs_withdraw (id, user_id, amount, currency, status, created_at) VALUES ")
		args := make([]any, 0, 3*(end-start))
		for i := start; i < end; i++ {
			if i > start {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?, 1.00, 'USD', 'SUCCESS', ?)")
			args = append(args, i+1, rows[i].user, rows[i].at)
		}
		if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
			t.Fatalf("insert withdrawals: %v", err)
		}
	}
	if _, err := db.ExecContext(ctx, "ANALYZE TABLE vs_withdraw"); err != nil {
		t.Fatal(err)
	}
}

// spread returns the i-th of n times spread over 2026, in an order that
// does not follow i's users (a multiplicative hash of i).
func spread(i, n int) time.Time {
	h := uint64(i) * 0x9e3779b97f4a7c15 >> 20
	return jan1.Add(time.Duration(h%uint64(365*24*3600)) * time.Second)
}

var (
	year2026  = report.Params{TagIDs: []int64{1}, From: jan1, To: jan1.AddDate(1, 0, 0)}
	firstHalf = report.Params{TagIDs: []int64{1}, From: jan1, To: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)}
	oneHour   = report.Params{TagIDs: []int64{1}, From: jan1, To: jan1.Add(time.Hour)}
)

// partRows counts each part's rows with the part's own predicate, as a
// listener selects them, and the rows the report holds in all.
func partRows(t *testing.T, db *sql.DB, p report.Params, plan report.Plan) (parts []int64, total int64) {
	t.Helper()
	base := "SELECT COUNT(*) FROM vs_withdraw WHERE created_at >= ? AND created_at < ?"
	if err := db.QueryRow(base, p.From, p.To).Scan(&total); err != nil {
		t.Fatal(err)
	}
	for _, b := range plan.Parts {
		cond, args := b.Predicate("user_id")
		q := base
		if cond != "" {
			q += " AND " + cond
		}
		var n int64
		if err := db.QueryRow(q, append([]any{p.From, p.To}, args...)...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		parts = append(parts, n)
	}
	return parts, total
}

// checkPlan checks what every plan must be: parts in key order that meet,
// unbounded at both ends, with an estimate each.
func checkPlan(t *testing.T, plan report.Plan, maxParts int) {
	t.Helper()
	n := len(plan.Parts)
	if n == 0 || n > maxParts || len(plan.Estimated) != n {
		t.Fatalf("%d parts (max %d), %d estimates", n, maxParts, len(plan.Estimated))
	}
	if plan.Parts[0].Lo != nil || plan.Parts[n-1].Hi != nil {
		t.Errorf("ends are bounded: first %v, last %v", plan.Parts[0], plan.Parts[n-1])
	}
	var sum int64
	for i, b := range plan.Parts {
		sum += plan.Estimated[i]
		if i+1 < n {
			next := plan.Parts[i+1]
			if b.Hi == nil || next.Lo == nil || *b.Hi != *next.Lo || (b.Lo != nil && *b.Lo >= *b.Hi) {
				t.Errorf("parts %d %v and %d %v do not meet in key order", i, b, i+1, next)
			}
		}
	}
	if sum != plan.EstimatedRows {
		t.Errorf("EstimatedRows %d, sum of Estimated %d", plan.EstimatedRows, sum)
	}
}

// maxOverMedian is the largest part's rows over the median part's (the
// mean of the middle two for an even count).
func maxOverMedian(rows []int64) float64 {
	s := slices.Clone(rows)
	slices.Sort(s)
	n := len(s)
	median := float64(s[n/2]+s[(n-1)/2]) / 2
	return float64(s[n-1]) / max(1, median)
}

// maxOverMean is the largest part's rows over the mean part's.
func maxOverMean(rows []int64) float64 {
	var sum int64
	for _, n := range rows {
		sum += n
	}
	return float64(slices.Max(rows)) * float64(len(rows)) / max(1, float64(sum))
}

func TestSplit(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	t.Parallel()
	const users = 6000
	uniform := func() []withdrawal {
		var rows []withdrawal
		for i := range 60_000 {
			rows = append(rows, withdrawal{user: int64(1 + i%users), at: spread(i, 60_000)})
		}
		return rows
	}
	// Half the rows in 1% of the users: 60 users (every hundredth) with
	// 500 rows each, the 5,940 others with 5 each and a few with 6.
	skewed := func() []withdrawal {
		var rows []withdrawal
		for u := int64(1); u <= users; u++ {
			n := 5
			if u%100 == 50 {
				n = 500
			} else if u%10 == 0 {
				n = 6
			}
			for range n {
				rows = append(rows, withdrawal{user: u, at: spread(len(rows), 60_000)})
			}
		}
		return rows
	}
	// Half the rows in the first 1% of the users (as the benchmark's
	// -skew makes them), enough rows that InnoDB extrapolates: 30 users
	// with 2,000 rows each, the 2,970 others with about 20.
	skewedLow := func() []withdrawal {
		var rows []withdrawal
		for u := int64(1); u <= 3000; u++ {
			n := 20
			if u <= 30 {
				n = 2000
			} else if u%5 == 0 {
				n = 21
			}
			for range n {
				rows = append(rows, withdrawal{user: u, at: spread(len(rows), 120_000)})
			}
		}
		return rows
	}
	// One user with twice a part's rows among light users.
	heavy := func() []withdrawal {
		var rows []withdrawal
		for i := range 10_000 {
			rows = append(rows, withdrawal{user: int64(1 + i%users), at: spread(i, 30_000)})
		}
		for range 20_000 {
			rows = append(rows, withdrawal{user: 4242, at: spread(len(rows), 30_000)})
		}
		return rows
	}
	extremeKeys := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}
	extremes := func() []withdrawal {
		var rows []withdrawal
		for _, k := range extremeKeys {
			for range 3000 {
				rows = append(rows, withdrawal{user: k, at: spread(len(rows), 21_000)})
			}
		}
		return rows
	}

	tests := []struct {
		name     string
		rows     func() []withdrawal
		params   report.Params
		partRows int64
		maxParts int
		onePart  bool
		maxRatio float64 // largest part / median part, by the parts' true rows
		maxMean  float64 // largest part / mean part, if set
		alone    []int64 // keys heavier than partRows: each a part by itself
	}{
		{name: "empty", rows: func() []withdrawal { return nil }, params: year2026, partRows: 10, maxParts: 64, onePart: true},
		{name: "small report", rows: uniform, params: oneHour, partRows: 5000, maxParts: 64, onePart: true},
		{name: "uniform", rows: uniform, params: year2026, partRows: 5000, maxParts: 64, maxRatio: 1.5},
		{name: "uniform, half the year", rows: uniform, params: firstHalf, partRows: 5000, maxParts: 64, maxRatio: 1.5},
		{name: "uniform, capped", rows: uniform, params: year2026, partRows: 1000, maxParts: 5, maxRatio: 1.5},
		{name: "skewed", rows: skewed, params: year2026, partRows: 5000, maxParts: 64, maxRatio: 3},
		// Without correcting InnoDB's doubling, 74,544 and 45,450 rows.
		{name: "skewed, the heavy users first", rows: skewedLow, params: year2026, partRows: 60_000, maxParts: 64, maxRatio: 1.3, maxMean: 1.15},
		{name: "skewed, the heavy users first, small parts", rows: skewedLow, params: year2026, partRows: 10_000, maxParts: 64, maxRatio: 1.5, maxMean: 1.15},
		{name: "one heavy user", rows: heavy, params: year2026, partRows: 5000, maxParts: 64, alone: []int64{4242}},
		{name: "int64 extremes", rows: extremes, params: year2026, partRows: 2000, maxParts: 64, alone: extremeKeys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t, "splittest", withdraw.DDL)
			rows := tt.rows()
			loadWithdrawals(t, db, rows)
			r, _ := report.Lookup("withdraw_by_tag")
			dbFor := func(name string) (*sql.DB, error) {
				if name != withdraw.Database {
					return nil, fmt.Errorf("no database %s", name)
				}
				return db, nil
			}
			start := time.Now()
			plan, err := report.Split(context.Background(), r, tt.params, dbFor, tt.partRows, tt.maxParts)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			checkPlan(t, plan, tt.maxParts)
			got, total := partRows(t, db, tt.params, plan)
			var sum int64
			for _, n := range got {
				sum += n
			}
			if sum != total {
				t.Errorf("the parts hold %d rows, the report %d", sum, total)
			}
			t.Logf("%d rows, estimated %d; %d parts in %v, true rows %v, largest/median %.2f",
				total, plan.EstimatedRows, len(plan.Parts), took, got, maxOverMedian(got))
			if tt.onePart {
				if diff := cmp.Diff([]report.Bounds{{}}, plan.Parts); diff != "" {
					t.Errorf("parts (-want +got):\n%s", diff)
				}
				return
			}
			if len(plan.Parts) < 2 {
				t.Fatalf("%d rows in one part, want parts of about %d", total, tt.partRows)
			}
			if tt.maxRatio > 0 && maxOverMedian(got) > tt.maxRatio {
				t.Errorf("largest part / median part = %.2f, want <= %.1f: %v", maxOverMedian(got), tt.maxRatio, got)
			}
			if tt.maxMean > 0 && maxOverMean(got) > tt.maxMean {
				t.Errorf("largest part / mean part = %.2f, want <= %.2f: %v", maxOverMean(got), tt.maxMean, got)
			}
			// A key heavier than a part is a part by itself, give or take
			// a neighbouring range too small to be a part of its own.
			perKey := map[int64]int64{}
			for _, w := range rows {
				perKey[w.user]++
			}
			for _, k := range tt.alone {
				i := slices.IndexFunc(plan.Parts, func(b report.Bounds) bool { return b.Contains(k) })
				for _, other := range tt.alone {
					if other != k && plan.Parts[i].Contains(other) {
						t.Errorf("keys %d and %d, each heavier than a part, share part %d %v", k, other, i, plan.Parts[i])
					}
				}
				if rest := got[i] - perKey[k]; rest > tt.partRows/2 {
					t.Errorf("key %d (%d rows) shares part %d %v with %d other rows", k, perKey[k], i, plan.Parts[i], rest)
				}
			}
		})
	}
}

// TestSplitOnePartWithoutSplitBy: a report type with no SplitBy, or
// splitting turned off, asks nothing of the database.
func TestSplitOnePartWithoutSplitBy(t *testing.T) {
	t.Parallel()
	noDB := func(string) (*sql.DB, error) { return nil, fmt.Errorf("no database wanted") }
	r, _ := report.Lookup("withdraw_by_tag")
	tests := []struct {
		name     string
		r        report.Report
		partRows int64
		maxParts int
	}{
		{"no SplitBy", report.Report{Type: "t"}, 10, 64},
		{"maxParts 1", r, 10, 1},
		{"partRows 0", r, 0, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := report.Split(context.Background(), tt.r, year2026, noDB, tt.partRows, tt.maxParts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(report.Plan{Parts: []report.Bounds{{}}, Estimated: []int64{0}}, plan); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
