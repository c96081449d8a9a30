package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/local/seed"
	"github.com/fanoutexport/fanoutexport/shared/report"
	"github.com/fanoutexport/fanoutexport/shared/serverenv"
	"github.com/fanoutexport/fanoutexport/shared/testdb"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	type sizes struct{ Withdrawals, Users, Payments, Tags, TagsPerUser int }
	if diff := cmp.Diff(sizes{200_000, 20_000, 100_000, 50, 3}, sizes{o.withdrawals, o.users, o.payments, o.tags, o.tagsPerUser}); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	for _, args := range [][]string{
		{"-withdrawals", "0"}, {"-tags", "2", "-tags-per-user", "3"}, {"-select-tags", "0"},
		{"-load", "copy"}, {"-report", "nope"}, {"-repeat", "0"}, {"-small-rows", "0"}, {"extra"},
		{"-part-rows", "-1"}, {"-max-parts", "-1"}, {"-small-per-day", "-1"},
	} {
		if _, err := ParseFlags(args); err == nil {
			t.Errorf("ParseFlags(%q) accepted", args)
		}
	}
}

// dbs is a test's own source databases, with the tables of shared/report.
type dbs struct {
	userName, fundName string
	spec               genSpec
}

func newSources(t *testing.T) (dbs, map[string]string) {
	t.Helper()
	d := testdb.Pipeline(t, "bn")
	name := func(dsn string) string {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.DBName
	}
	return dbs{userName: name(d.Sources["plt_user"]), fundName: name(d.Sources["plt_fund"])}, d.Sources
}

// indexDefs lists a database's secondary indexes as information_schema
// describes them, table.index(columns), sorted.
func indexDefs(t *testing.T, dsn string) []string {
	t.Helper()
	db, err := serverenv.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, table := range []string{"vs_user_tag_relation", "vs_withdraw", "vs_payment"} {
		idx, err := secondaryIndexes(context.Background(), db, table)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range idx {
			out = append(out, fmt.Sprintf("%s.%s unique=%v (%s)", table, x.name, x.unique, strings.Join(x.cols, ", ")))
		}
	}
	sort.Strings(out)
	return out
}

// generateSmall loads a small data set the way the benchmark loads a big
// one and returns what generate reported.
func generateSmall(t *testing.T, sources map[string]string, method string) ([]genResult, []string) {
	t.Helper()
	user, err := serverenv.OpenDB(sources["plt_user"])
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	fund, err := serverenv.OpenDB(sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer fund.Close()
	spec := genSpec{Seed: 7, Users: 300, Withdrawals: 3000, Payments: 1500, Tags: 5, MaxTags: 3}
	var progress []string
	res, err := generate(context.Background(), spec, user, fund, testdb.UniqueName(t, "r"), method, func(f string, a ...any) {
		progress = append(progress, fmt.Sprintf(f, a...))
	})
	if err != nil {
		t.Fatal(err)
	}
	return res, progress
}

// declaredIndexes lists, sorted, the names of the secondary indexes the
// definitions declare: each table's DDL's KEY lines and the sources'
// Indexes, once per table.
func declaredIndexes() []string {
	seen := map[string]string{}
	for _, s := range report.Sources {
		for _, line := range strings.Split(s.DDL, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "KEY" {
				seen[s.Table+"."+f[1]] = f[1]
			}
		}
		for _, x := range s.Indexes {
			seen[s.Table+"."+x.Name] = x.Name
		}
	}
	var names []string
	for _, n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Generation drops the secondary indexes, loads, and builds the same
// indexes again; every step is reported.
func TestGenerateBuildsIndexesAfterLoad(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"infile", "insert"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			_, sources := newSources(t)
			before := append(indexDefs(t, sources["plt_user"]), indexDefs(t, sources["plt_fund"])...)
			if want := declaredIndexes(); len(before) != len(want) {
				t.Fatalf("the tables have %d secondary indexes before, want the %d of shared/report (%q): %q", len(before), len(want), want, before)
			}
			res, progress := generateSmall(t, sources, method)
			after := append(indexDefs(t, sources["plt_user"]), indexDefs(t, sources["plt_fund"])...)
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("indexes after generation (-before +after):\n%s", diff)
			}
			rows := map[string]int{}
			var built []string
			for _, r := range res {
				rows[r.Table] = r.Rows
				built = append(built, r.Indexes...)
				if r.Method != method {
					t.Errorf("%s loaded by %s, want %s", r.Table, r.Method, method)
				}
			}
			if diff := cmp.Diff(map[string]int{"vs_withdraw": 3000, "vs_payment": 1500}, map[string]int{"vs_withdraw": rows["vs_withdraw"], "vs_payment": rows["vs_payment"]}); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if rows["vs_user_tag_relation"] == 0 {
				t.Error("no tag rows")
			}
			sort.Strings(built)
			if diff := cmp.Diff(declaredIndexes(), built); diff != "" {
				t.Errorf("indexes reported built (-want +got):\n%s", diff)
			}
			// Three steps per table: loaded, indexes built, analyzed.
			for _, word := range []string{"loaded", "built", "analyzed"} {
				n := 0
				for _, p := range progress {
					if strings.Contains(p, word) {
						n++
					}
				}
				if n != 3 {
					t.Errorf("%d progress lines say %q, want one per table: %q", n, word, progress)
				}
			}
		})
	}
}

// The benchmark's comparison uses local/seed's reference query: on the
// seed data it hashes to the golden files (the pipeline's expected CSV),
// and on generated data both payments variants agree.
func TestOracle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names, sources := newSources(t)
	user, err := serverenv.OpenDB(sources["plt_user"])
	if err != nil {
		t.Fatal(err)
	}
	defer user.Close()
	fund, err := serverenv.OpenDB(sources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer fund.Close()
	if err := seed.Apply(ctx, user, fund); err != nil {
		t.Fatal(err)
	}
	refDB := report.RefDB{Names: map[string]string{"plt_user": names.userName, "plt_fund": names.fundName}}
	for _, typ := range report.Types() {
		rep, _ := report.Lookup(typ)
		p, err := report.ParseParams([]byte(rep.Example))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range seed.Oracles(rep, refDB, p) {
			r, err := runOracle(ctx, fund, o)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(seed.Golden(seed.GoldenFile(typ)))); r.CSVSHA != want {
				t.Errorf("%s: CSV hash %s, golden %s", o.Name(), r.CSVSHA, want)
			}
		}
	}

	// Generated data: fresh databases, every report's shapes agree.
	gnames, gsources := newSources(t)
	generateSmall(t, gsources, "infile")
	gfund, err := serverenv.OpenDB(gsources["plt_fund"])
	if err != nil {
		t.Fatal(err)
	}
	defer gfund.Close()
	grefDB := report.RefDB{Names: map[string]string{"plt_user": gnames.userName, "plt_fund": gnames.fundName}}
	for _, typ := range report.Types() {
		rep, _ := report.Lookup(typ)
		var runs []oracleRun
		for _, o := range seed.Oracles(rep, grefDB, report.Params{TagIDs: []int64{1, 2}, From: bigFrom, To: bigTo}) {
			r, err := runOracle(ctx, gfund, o)
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, r)
		}
		if len(runs) == 0 || runs[0].Rows == 0 {
			t.Errorf("%s: the reference found nothing: %+v", typ, runs)
		}
		for _, r := range runs[1:] {
			if r.Rows != runs[0].Rows || r.CSVSHA != runs[0].CSVSHA {
				t.Errorf("%s: reference shapes disagree: %+v", typ, runs)
			}
		}
	}
}

// Timelines come from the lines' structured fields: the record by
// recordId, the time by time; a line that mentions a record only in its
// text, or is not JSON, is not part of it.
func TestTimelines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	files := map[string]string{
		"Aggregate.log": `{"time":"2026-12-01T10:00:02.5Z","severity":"INFO","message":"report SUCCESS","source":"aggregate","recordId":7,"stage":1,"rows":83}
{"time":"2026-12-01T10:00:01Z","severity":"INFO","message":"recordId 7 mentioned in text only","source":"aggregate"}
panic: not JSON "recordId":7
{"time":"2026-12-01T10:00:01Z","severity":"INFO","message":"another report","source":"aggregate","recordId":8,"stage":1}
`,
		"ListenWithdraw.log": `{"time":"2026-12-01T10:00:00.25Z","severity":"INFO","message":"dataset written","source":"plt_fund.vs_withdraw","recordId":7,"stage":1,"rows":100}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := timelines(dir, map[int64]time.Time{7: start})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64][]Event{7: {
		{AtSec: 0.25, Process: "ListenWithdraw", Source: "plt_fund.vs_withdraw", Severity: "INFO", Message: "dataset written", Stage: float64(1), Rows: float64(100)},
		{AtSec: 2.5, Process: "Aggregate", Source: "aggregate", Severity: "INFO", Message: "report SUCCESS", Stage: float64(1), Rows: float64(83)},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("timelines (-want +got):\n%s", diff)
	}
	if _, err := timelines(filepath.Join(dir, "missing"), nil); err != nil {
		t.Errorf("no log files is an empty timeline, got %v", err)
	}
}

func TestMedianTimeline(t *testing.T) {
	t.Parallel()
	ev := func(at float64, msg string) Event {
		return Event{AtSec: at, Process: "Aggregate", Message: msg, Stage: 1}
	}
	got := medianTimeline(map[int64][]Event{
		1: {ev(0.1, "a"), ev(0.5, "b")},
		2: {ev(0.3, "a"), ev(0.2, "b")},
		3: {ev(0.2, "a")},
	})
	want := []Event{
		{AtSec: 0.2, Process: "Aggregate", Message: "a", Stage: 1, Rows: 3},
		{AtSec: 0.2, Process: "Aggregate", Message: "b", Stage: 1, Rows: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("medianTimeline (-want +got):\n%s", diff)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3}
	for p, want := range map[float64]float64{0: 1, 50: 3, 95: 5, 100: 5, 20: 1, 21: 2} {
		if got := percentile(xs, p); got != want {
			t.Errorf("percentile(%v, %v) = %v, want %v", xs, p, got, want)
		}
	}
}
