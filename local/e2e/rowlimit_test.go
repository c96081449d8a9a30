package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/record"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/topology"
)

// MAX_REPORT_ROWS, through the real processes: a CSV or a listener's
// dataset of more rows than the limit ends the record FAILED with exactly
// "report exceeds N rows; narrow the filter", uploads nothing and leaves
// no Redis key; a report at the limit succeeds unchanged.
func TestRowLimit(t *testing.T) {
	t.Parallel()
	golden := map[string]string{
		"withdraw_by_tag":               seed.GoldenWithdrawByTag,
		"withdraw_by_tag_with_payments": seed.GoldenWithdrawByTagWithPayments,
	}
	// The CSVs' data rows, from the golden files (both reports have the same
	// number; the cases rely on it, so check it).
	var csvRows int64 = -1
	for typ, file := range golden {
		recs, err := csv.NewReader(bytes.NewReader(seed.Golden(file))).ReadAll()
		if err != nil {
			t.Fatalf("golden %s: %v", file, err)
		}
		n := int64(len(recs) - 1)
		if csvRows >= 0 && n != csvRows {
			t.Fatalf("golden %s (%s) has %d rows, the other %d: the cases below assume one count", file, typ, n, csvRows)
		}
		csvRows = n
	}
	if csvRows < 2 {
		t.Fatalf("golden CSVs have %d rows; the test needs at least 2", csvRows)
	}
	listeners := func(limit int64) map[string][]string {
		m := map[string][]string{}
		for _, s := range report.Sources {
			m[s.EntryPoint] = []string{"MAX_REPORT_ROWS=" + strconv.FormatInt(limit, 10)}
		}
		return m
	}
	with := func(m map[string][]string, entry string, limit int64) map[string][]string {
		m[entry] = []string{"MAX_REPORT_ROWS=" + strconv.FormatInt(limit, 10)}
		return m
	}
	tests := []struct {
		name string
		env  map[string][]string
		// fail is the limit that must be named in the reason; 0: SUCCESS.
		fail int64
	}{
		{"CSV one row over", with(map[string][]string{}, topology.EntryAggregate, csvRows-1), csvRows - 1},
		// Every listener's dataset of the seed has more than one row (the
		// CSV has csvRows > 1, each from a withdrawal row and a tag row).
		{"listener datasets over", listeners(1), 1},
		{"CSV at the limit, listeners far below theirs", with(listeners(1_000_000), topology.EntryAggregate, csvRows), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, options{envFor: func(*env) map[string][]string { return tt.env }})
			e.keepVersions()
			ctx := context.Background()
			ids := map[string]int64{}
			for typ := range golden {
				ids[typ] = e.request(typ, seed.Params)
			}
			for typ, id := range ids {
				rec := e.wait(id, 60*time.Second)
				if tt.fail > 0 {
					want := fmt.Sprintf("report exceeds %d rows; narrow the filter", tt.fail)
					if rec.Status != record.Failed || rec.FailReason != want {
						t.Errorf("%s: record %s %q, want FAILED %q", typ, rec.Status, rec.FailReason, want)
					}
					if n := e.uploads(id); n != 0 {
						t.Errorf("%s: %d object versions uploaded for a report over the limit, want none", typ, n)
					}
				} else {
					if rec.Status != record.Success || rec.RowCount != csvRows {
						t.Errorf("%s: record %s (%q), %d rows; want SUCCESS with %d rows", typ, rec.Status, rec.FailReason, rec.RowCount, csvRows)
						continue
					}
					got, err := e.client.Fetch(ctx, rec.FilePath)
					if err != nil {
						t.Errorf("%s: %v", typ, err)
						continue
					}
					if diff := cmp.Diff(string(seed.Golden(golden[typ])), string(got)); diff != "" {
						t.Errorf("%s: CSV at the limit differs from the golden (-want +got):\n%s", typ, diff)
					}
				}
				if !e.hashGone(id) {
					t.Errorf("%s: hash of record %d still in Redis after it ended", typ, id)
				}
			}
			keys, err := e.rdb.Keys(ctx, e.iso.KeyPrefix()+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 0 {
				t.Errorf("Redis keys left under the test's prefix: %v", keys)
			}
		})
	}
}
