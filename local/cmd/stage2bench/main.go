// Command stage2bench measures the two ways ListenPayment can read a part
// (lookups of its pairs, or one range scan of its users merged with them)
// on the databases a benchmark run kept (go run ./local/cmd/bench -keep):
// it plans the report's parts as DrainTriggers does, builds each part's
// (user, currency) pairs as stage 1 would, and times both reads part by
// part, checking they give the same rows. Passes alternate the order
// (lookups, scan, lookups, scan), so a part's pages read by one pass are
// mostly out of the buffer pool again when its next pass comes, if the
// data is larger than the pool.
//
//	go run ./local/cmd/stage2bench -db bench_1a2b3c4d -part-rows 250000
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/report"
)

type partResult struct {
	Part      int                `json:"part"`
	Bounds    string             `json:"bounds"`
	Pairs     int64              `json:"pairs"`
	Estimated float64            `json:"estimatedRangeRows"`
	Density   float64            `json:"density"`
	Auto      string             `json:"auto"`
	Seconds   map[string]float64 `json:"seconds"` // "lookups#1", "scan#1", ...
	Returned  map[string]int64   `json:"returned"`
}

func main() {
	base := flag.String("mysql", "root@tcp(127.0.0.1:3306)/", "MariaDB DSN without database")
	db := flag.String("db", "", "the kept benchmark's database prefix (bench_xxxxxxxx)")
	partRows := flag.Int64("part-rows", 250000, "PART_ROWS")
	maxParts := flag.Int("max-parts", 64, "MAX_PARTS")
	tags := flag.Int("select-tags", 20, "tags 1..this, as the benchmark's big reports")
	passes := flag.Int("passes", 2, "passes of each read")
	only := flag.Int("parts", 0, "measure only this many parts, spread evenly (0: all)")
	flag.Parse()
	if err := run(*base, *db, *partRows, *maxParts, *tags, *passes, *only); err != nil {
		fmt.Fprintln(os.Stderr, "stage2bench:", err)
		os.Exit(1)
	}
}

func run(base, prefix string, partRows int64, maxParts, selectTags, passes, only int) error {
	ctx := context.Background()
	fund, err := sql.Open("mysql", base+prefix+"_plt_fund?parseTime=true&loc=UTC")
	if err != nil {
		return err
	}
	defer fund.Close()
	rep, _ := report.Lookup("withdraw_by_tag_with_payments")
	var tagIDs []int64
	for t := 1; t <= selectTags; t++ {
		tagIDs = append(tagIDs, int64(t))
	}
	p := report.Params{TagIDs: tagIDs, From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	plan, err := report.Split(ctx, rep, p, func(string) (*sql.DB, error) { return fund, nil }, partRows, maxParts)
	if err != nil {
		return err
	}
	idx := make([]int, len(plan.Parts))
	for i := range idx {
		idx[i] = i
	}
	if only > 0 && only < len(idx) {
		var pick []int
		for j := range only {
			pick = append(pick, j*len(idx)/only)
		}
		idx = pick
	}
	fmt.Fprintf(os.Stderr, "%d parts, measuring %d\n", len(plan.Parts), len(idx))
	src := report.Sources["plt_fund.vs_payment"]
	results := make([]partResult, len(idx))
	stores := make([]*dataset.MemStore, len(idx))
	for j, i := range idx {
		b := plan.Parts[i]
		pairs, err := partPairs(ctx, fund, prefix, p, b)
		if err != nil {
			return err
		}
		st := dataset.NewMemStore()
		if err := st.Put(ctx, src.Input, 261120, pairs); err != nil {
			return err
		}
		stores[j] = st
		q := src.ScanRows(b)
		est, err := explain(ctx, fund, q)
		if err != nil {
			return err
		}
		auto := "lookups"
		if int64(len(pairs)) > int64(src.BatchSize) && float64(len(pairs)) >= est/20 {
			auto = "scan"
		}
		results[j] = partResult{Part: i, Bounds: b.Describe("user_id"), Pairs: int64(len(pairs)), Estimated: est,
			Density: float64(len(pairs)) / max(est, 1), Auto: auto, Seconds: map[string]float64{}, Returned: map[string]int64{}}
	}
	sums := map[string][32]byte{}
	for pass := 1; pass <= passes; pass++ {
		for _, how := range []report.Read{report.ReadLookups, report.ReadScan} {
			key := fmt.Sprintf("%s#%d", how, pass)
			var total float64
			for j, i := range idx {
				out := dataset.NewMemStore()
				w := dataset.NewWriter(ctx, out, src.Dataset(), 261120)
				start := time.Now()
				st, err := report.FetchRead(ctx, fund, src, p, plan.Parts[i], stores[j], w, 0, how)
				sec := time.Since(start).Seconds()
				if err != nil {
					return fmt.Errorf("part %d %s: %w", i, how, err)
				}
				chunks, rows, err := w.Close()
				if err != nil {
					return err
				}
				if err := out.Finish(ctx, src.Dataset(), chunks, rows); err != nil {
					return err
				}
				sum, err := digest(ctx, out, src)
				if err != nil {
					return err
				}
				k := strconv.Itoa(i)
				if prev, ok := sums[k]; ok && prev != sum {
					return fmt.Errorf("part %d: %s read gives other rows", i, key)
				}
				sums[k] = sum
				results[j].Seconds[key] = sec
				results[j].Returned[key] = st.Returned
				total += sec
			}
			l, _ := os.ReadFile("/proc/loadavg")
			fmt.Fprintf(os.Stderr, "%s: %.2f s over %d parts (load %s)\n", key, total, len(idx), strings.TrimSpace(string(l)))
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	return enc.Encode(map[string]any{"parts": len(plan.Parts), "partRows": partRows, "measured": results})
}

// partPairs are the part's distinct (user, currency) pairs of stage 1, in
// user order and then by the currency's bytes, as the aggregator writes
// them.
func partPairs(ctx context.Context, fund *sql.DB, prefix string, p report.Params, b report.Bounds) ([][]string, error) {
	pred, args := b.Predicate("user_id")
	if pred != "" {
		pred = " AND w." + pred
	}
	tags := make([]string, len(p.TagIDs))
	for i, t := range p.TagIDs {
		tags[i] = strconv.FormatInt(t, 10)
	}
	q := "SELECT DISTINCT w.user_id, CAST(w.currency AS BINARY) FROM vs_withdraw w WHERE w.created_at >= ? AND w.created_at < ?" +
		pred + " AND w.user_id IN (SELECT user_id FROM `" + prefix + "_plt_user`.vs_user_tag_relation WHERE tag_id IN (" +
		strings.Join(tags, ",") + "))"
	rows, err := fund.QueryContext(ctx, q, append([]any{p.From, p.To}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type pair struct {
		u int64
		c string
	}
	var ps []pair
	for rows.Next() {
		var x pair
		if err := rows.Scan(&x.u, &x.c); err != nil {
			return nil, err
		}
		ps = append(ps, x)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(ps, func(a, b pair) int {
		if a.u != b.u {
			if a.u < b.u {
				return -1
			}
			return 1
		}
		return strings.Compare(a.c, b.c)
	})
	out := make([][]string, len(ps))
	for i, x := range ps {
		out[i] = []string{strconv.FormatInt(x.u, 10), x.c}
	}
	return out, nil
}

func explain(ctx context.Context, db *sql.DB, q report.Query) (float64, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN "+q.SQL, q.Args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	at := slices.Index(cols, "rows")
	vals := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	var n float64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return 0, err
		}
		n, _ = strconv.ParseFloat(string(vals[at]), 64)
	}
	return n, rows.Err()
}

func digest(ctx context.Context, st dataset.Store, src report.Source) ([32]byte, error) {
	r, err := dataset.Open(ctx, st, src.Dataset(), len(src.Columns))
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return [32]byte{}, err
		}
		h.Write(bytes.Join([][]byte{[]byte(strings.Join(row, "\x00"))}, nil))
		h.Write([]byte{'\n'})
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, nil
}
