package report

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDoneAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		report string
		want   []int64 // DoneAfter(0), DoneAfter(1), ...
	}{
		{"withdraw_by_tag", []int64{0, 2, 2}},
		{"withdraw_by_tag_with_payments", []int64{0, 2, 3, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.report, func(t *testing.T) {
			t.Parallel()
			r, ok := Lookup(tt.report)
			if !ok {
				t.Fatalf("Lookup(%q) found nothing", tt.report)
			}
			var got []int64
			for n := range tt.want {
				got = append(got, r.DoneAfter(n))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DoneAfter(0..%d) (-want +got):\n%s", len(tt.want)-1, diff)
			}
		})
	}
}

func TestReportDefinitions(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"withdraw_by_tag", "withdraw_by_tag_with_payments"} {
		if _, ok := Lookup(typ); !ok || !slices.Contains(Types(), typ) {
			t.Errorf("report type %s is missing", typ)
		}
	}
	if !slices.IsSorted(Types()) || len(Types()) != len(Reports) {
		t.Errorf("Types() = %v: want every type, sorted", Types())
	}
	if got := MaxStages(); got < 2 {
		t.Errorf("MaxStages() = %d, want at least 2", got)
	}
	used := map[string]bool{}
	for _, typ := range Types() {
		r := Reports[typ]
		if r.Type != typ {
			t.Errorf("Reports[%q].Type = %q", typ, r.Type)
		}
		if r.Join == nil {
			t.Errorf("report %s has no Join", typ)
		}
		if len(r.Stages) > 1 && r.Between == nil {
			t.Errorf("report %s has %d stages and no Between", typ, len(r.Stages))
		}
		for n, stage := range r.Stages {
			if len(stage) == 0 {
				t.Errorf("report %s: stage %d has no sources", typ, n+1)
			}
			for _, s := range stage {
				used[s.EntryPoint] = true
				if s.Stage != n+1 {
					t.Errorf("report %s: source %s listens on stage %d but is used in stage %d", typ, s.Name(), s.Stage, n+1)
				}
				if Sources[s.EntryPoint].Name() != s.Name() {
					t.Errorf("report %s: source %s is not the one registered in Sources", typ, s.Name())
				}
				if got, ok := r.StageSource(n+1, s.Name()); !ok || got.EntryPoint != s.EntryPoint {
					t.Errorf("report %s: StageSource(%d, %s) = %s, %v", typ, n+1, s.Name(), got.EntryPoint, ok)
				}
			}
			if diff := cmp.Diff(namesOf(stage), r.SourceNames(n+1)); diff != "" {
				t.Errorf("report %s: SourceNames(%d) (-want +got):\n%s", typ, n+1, diff)
			}
		}
		if got := r.SourceNames(0); got != nil {
			t.Errorf("report %s: SourceNames(0) = %v, want nil", typ, got)
		}
		if got := r.SourceNames(len(r.Stages) + 1); got != nil {
			t.Errorf("report %s: SourceNames(%d) = %v, want nil", typ, len(r.Stages)+1, got)
		}
	}
	for name, s := range Sources {
		if name != s.EntryPoint {
			t.Errorf("Sources[%q] holds %s", name, s.EntryPoint)
		}
		if !used[name] {
			t.Errorf("source %s is used by no report: its listener would never be asked", name)
		}
		if s.Input != "" && (s.InputColumns < 1 || s.BatchSize < 1) {
			t.Errorf("source %s reads input %s with InputColumns %d, BatchSize %d", name, s.Input, s.InputColumns, s.BatchSize)
		}
		if len(s.Columns) == 0 || s.Columns[0].Name != s.Key {
			t.Errorf("source %s: first column %v is not the join key %q", name, s.Columns, s.Key)
		}
	}
	if diff := cmp.Diff([]string{"plt_fund", "plt_user"}, Databases()); diff != "" {
		t.Errorf("Databases() (-want +got):\n%s", diff)
	}
	for _, db := range Databases() {
		in := SourcesIn(db)
		for i, s := range in {
			if s.Database != db || (i > 0 && in[i-1].Table > s.Table) {
				t.Errorf("SourcesIn(%s) = %v: want its sources, by table", db, namesOf(in))
			}
		}
	}
	if names := namesOf(SourcesIn("plt_fund")); !slices.Contains(names, "plt_fund.vs_payment") || !slices.Contains(names, "plt_fund.vs_withdraw") {
		t.Errorf("SourcesIn(plt_fund) = %v", names)
	}
	if got := DSNEnv("plt_fund"); got != "DSN_PLT_FUND" {
		t.Errorf("DSNEnv(plt_fund) = %q", got)
	}
	if got := withdraw.Dataset(); got != "plt_fund.vs_withdraw.user_id" {
		t.Errorf("withdraw.Dataset() = %q", got)
	}
}

func namesOf(ss []Source) []string {
	var names []string
	for _, s := range ss {
		names = append(names, s.Name())
	}
	return names
}

// Distinctive values: none of them may appear in any SQL text.
var (
	buildParams = Params{
		TagIDs: []int64{777001, 777002, 777003},
		From:   time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC),
		To:     time.Date(2032, 8, 9, 10, 11, 12, 0, time.UTC),
	}
	buildBatch = [][]string{{"888001", "QZX"}, {"888002", "ZQY"}, {"888003", "X'Y"}}
	leaks      = []string{"777001", "777002", "777003", "2031", "2032", "888001", "888002", "888003", "QZX", "ZQY", "X'Y"}
)

func TestBuildBindsEveryValue(t *testing.T) {
	t.Parallel()
	for name, src := range Sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var batches [][][]string
			if src.Input == "" {
				batches = [][][]string{nil}
			} else {
				batches = [][][]string{buildBatch[:1], buildBatch}
			}
			for _, batch := range batches {
				q, err := src.Build(buildParams, Bounds{}, batch)
				if err != nil {
					t.Fatalf("Build(batch of %d): %v", len(batch), err)
				}
				if got := strings.Count(q.SQL, "?"); got != len(q.Args) {
					t.Errorf("batch of %d: %d placeholders in %q, %d args", len(batch), got, q.SQL, len(q.Args))
				}
				for _, v := range leaks {
					if strings.Contains(q.SQL, v) {
						t.Errorf("batch of %d: SQL holds the value %q: %s", len(batch), v, q.SQL)
					}
				}
				if !strings.Contains(q.SQL, " "+src.Table+" ") && !strings.HasSuffix(q.SQL, " "+src.Table) {
					t.Errorf("SQL does not name table %s: %s", src.Table, q.SQL)
				}
				if strings.Contains(q.SQL, src.Database+".") {
					t.Errorf("SQL names the database %s (each source's DSN selects it): %s", src.Database, q.SQL)
				}
				// Every value must reach the query as an argument.
				args := fmt.Sprint(q.Args...)
				for _, v := range valuesOf(src, batch) {
					if !strings.Contains(args, v) {
						t.Errorf("batch of %d: value %s is not among the args %v", len(batch), v, q.Args)
					}
				}
			}
		})
	}
}

func valuesOf(src Source, batch [][]string) []string {
	vs := []string{"2031-03-04 05:06:07", "2032-08-09 10:11:12"}
	if src.Name() == userTagRelation.Name() {
		return []string{"777001", "777002", "777003"}
	}
	for _, pair := range batch {
		vs = append(vs, pair...)
	}
	return vs
}

// TestPaymentBuildBindsUsersAsIntegers guards the comment in Build: a
// string compared with a BIGINT column is compared as a double, which
// confuses users beyond 2^53.
func TestPaymentBuildBindsUsersAsIntegers(t *testing.T) {
	t.Parallel()
	q, err := payment.Build(buildParams, Bounds{}, [][]string{{"9007199254740993", "USD"}})
	if err != nil {
		t.Fatal(err)
	}
	var ints []int64
	for _, a := range q.Args {
		if v, ok := a.(int64); ok {
			ints = append(ints, v)
		}
		if s, ok := a.(string); ok && s == "9007199254740993" {
			t.Errorf("user bound as the string %q: %v", s, q.Args)
		}
	}
	if !slices.Contains(ints, 9007199254740993) {
		t.Errorf("user 9007199254740993 not bound as an int64: %#v", q.Args)
	}
	for _, bad := range []string{"", "x", "1.5", "99999999999999999999"} {
		if _, err := payment.Build(buildParams, Bounds{}, [][]string{{"1", "USD"}, {bad, "USD"}}); err == nil {
			t.Errorf("Build with user_id %q: no error", bad)
		}
	}
}
