// Package report holds the report definitions: which source tables each
// report type reads in which stage, how the stages hand over, and how the
// rows are joined into CSV rows. Everything here is declarative or pure;
// the functions in functions/ do the I/O.
package report

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/output"
)

// Report is one report type.
type Report struct {
	Type string
	// CSV declares the file: every column with its name and whether its
	// cells are escaped against formula injection, and the byte-order mark.
	CSV output.Format
	// Header is CSV.Header(): the column names, for code that needs only them.
	Header []string
	// Stages lists the sources of each stage; stage n is Stages[n-1].
	Stages [][]Source
	// Between runs when stage n < len(Stages) is complete: it writes the
	// next stage's input datasets into st and says whether the next stage
	// has anything to do (false skips straight to Join).
	Between func(ctx context.Context, n int, st dataset.WriteStore, chunkBytes int, codec dataset.Codec) (next bool, err error)
	// Join streams the CSV rows, in order, from the finished datasets.
	Join func(ctx context.Context, st dataset.Store, emit func(row []string) error) error
	// SplitBy says how Split estimates the report's rows to cut its key
	// space into parts; nil keeps every report of this type one part.
	SplitBy *SplitBy

	// Reference lists the shapes of the report's reference query: the same
	// CSV rows computed independently of the pipeline, each one
	// cross-database SQL statement. The golden files are checked against
	// every shape and the benchmark times them all (the fastest is the
	// comparison). At least one.
	Reference []Reference
	// Example is the params `make demo` runs and the golden file
	// {Type}.csv holds the result of; EmptyExample's result is the header
	// only (empty_{Type}.csv).
	Example, EmptyExample string
}

// DoneAfter is queryDoneCount once every listener up to stage n is done:
// the count is cumulative across stages.
func (r Report) DoneAfter(n int) int64 {
	var c int64
	for i := 0; i < n && i < len(r.Stages); i++ {
		c += int64(len(r.Stages[i]))
	}
	return c
}

// SourceNames lists the names of stage n's sources.
func (r Report) SourceNames(n int) []string {
	if n < 1 || n > len(r.Stages) {
		return nil
	}
	var names []string
	for _, s := range r.Stages[n-1] {
		names = append(names, s.Name())
	}
	return names
}

// StageSource finds the source named name (Source.Name) in stage n.
func (r Report) StageSource(n int, name string) (Source, bool) {
	if n < 1 || n > len(r.Stages) {
		return Source{}, false
	}
	for _, s := range r.Stages[n-1] {
		if s.Name() == name {
			return s, true
		}
	}
	return Source{}, false
}

// StageSources lists every stage's source names: StageSources()[n-1] is
// stage n's, as the report state's reader wants them.
func (r Report) StageSources() [][]string {
	names := make([][]string, len(r.Stages))
	for n := range r.Stages {
		names[n] = r.SourceNames(n + 1)
	}
	return names
}

// Reports are all report types, keyed by Type.
var Reports = map[string]Report{}

func addReport(r Report) {
	if _, dup := Reports[r.Type]; dup {
		panic(fmt.Sprintf("report %s defined twice", r.Type))
	}
	// Within a report a source's name is its identity in messages, done
	// markers, dataset fields and errors: one source per table.
	names := map[string]bool{}
	for n, stage := range r.Stages {
		for _, s := range stage {
			if s.Stage != n+1 {
				panic(fmt.Sprintf("report %s: source %s listens on stage %d, used in stage %d", r.Type, s.Name(), s.Stage, n+1))
			}
			if Sources[s.EntryPoint].EntryPoint != s.EntryPoint {
				panic(fmt.Sprintf("report %s: source %s (%s) is not registered with addSource", r.Type, s.Name(), s.EntryPoint))
			}
			if names[s.Name()] {
				panic(fmt.Sprintf("report %s reads %s twice; a report's sources must name different tables", r.Type, s.Name()))
			}
			names[s.Name()] = true
		}
	}
	if len(r.Stages) > 1 && r.Between == nil {
		panic(fmt.Sprintf("report %s: several stages need Between", r.Type))
	}
	if r.Join == nil || len(r.Reference) == 0 || r.Example == "" || r.EmptyExample == "" {
		panic(fmt.Sprintf("report %s needs Join, a Reference, Example and EmptyExample", r.Type))
	}
	if len(r.Header) == 0 {
		r.Header = r.CSV.Header()
	}
	Reports[r.Type] = r
}

// Lookup returns the report of type t.
func Lookup(t string) (Report, bool) {
	r, ok := Reports[t]
	return r, ok
}

// Types lists the report types, sorted, for error messages.
func Types() []string {
	var ts []string
	for t := range Reports {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// MaxStages is the number of stage topics the deployment needs.
func MaxStages() int {
	m := 0
	for _, r := range Reports {
		m = max(m, len(r.Stages))
	}
	return m
}

// SourceByEntryPoint finds the source a listener entry point serves.
func SourceByEntryPoint(ep string) (Source, bool) {
	s, ok := Sources[ep]
	return s, ok
}

// SourcesIn lists the sources of one database, for schema creation, by
// table then entry point.
func SourcesIn(database string) []Source {
	var out []Source
	for _, s := range Sources {
		if s.Database == database {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].EntryPoint < out[j].EntryPoint
	})
	return out
}

// Databases lists the source databases, sorted.
func Databases() []string {
	seen := map[string]bool{}
	var dbs []string
	for _, s := range Sources {
		if !seen[s.Database] {
			seen[s.Database] = true
			dbs = append(dbs, s.Database)
		}
	}
	sort.Strings(dbs)
	return dbs
}

// withdrawColumns are the columns of both reports' withdrawal part. Only
// the free-text columns are escaped: ids, tags, amounts and times are
// numbers or fixed formats a spreadsheet must keep reading as such
// ("-12.50" stays a number).
var withdrawColumns = []output.Column{
	{Name: "withdraw_id"}, {Name: "user_id"}, {Name: "tag_ids"}, {Name: "amount"},
	{Name: "currency", Escape: true}, {Name: "status", Escape: true}, {Name: "created_at"},
}

// byWithdrawals splits both reports by the withdrawals in the time range:
// every CSV row is one of them, and their listener reads them all, tagged
// users or not, so they are what a part's work grows with.
var byWithdrawals = &SplitBy{
	Source:   withdraw,
	KeyIndex: withdrawKeyIndex,
	Filter: func(p Params) RangeFilter {
		return RangeFilter{Column: "created_at", Index: "idx_created", From: p.From, To: p.To}
	},
}

// TagExample and TagEmptyExample are the example params of the reports
// filtered by tags and a time range: the seed data (local/seed) gives the
// first real rows in every such report and the second none (no user has
// tag 999).
const (
	TagExample      = `{"tagIds":[3,10],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`
	TagEmptyExample = `{"tagIds":[999],"from":"2026-01-01T00:00:00Z","to":"2026-02-01T00:00:00Z"}`
)

func init() {
	// CSV.BOM stays off (the default) for both: set it on a report whose
	// readers open non-ASCII text in a spreadsheet.
	withdrawCSV := output.Format{Columns: withdrawColumns}
	withPaymentsCSV := output.Format{Columns: slices.Concat(withdrawColumns, []output.Column{{Name: "payment_count"}, {Name: "payment_total"}})}
	addReport(Report{
		Type:    "withdraw_by_tag",
		CSV:     withdrawCSV,
		Stages:  [][]Source{{userTagRelation, withdraw}},
		SplitBy: byWithdrawals,
		Join: func(ctx context.Context, st dataset.Store, emit func([]string) error) error {
			return joinWithdrawals(ctx, st, func(w withdrawRow) error { return emit(w.out) })
		},
		Reference: []Reference{withdrawReference(refJoin)},
		Example:   TagExample, EmptyExample: TagEmptyExample,
	})
	addReport(Report{
		Type:      "withdraw_by_tag_with_payments",
		CSV:       withPaymentsCSV,
		Stages:    [][]Source{{userTagRelation, withdraw}, {payment}},
		Between:   writeStage1Pairs,
		Join:      joinWithPayments,
		SplitBy:   byWithdrawals,
		Reference: []Reference{withdrawReference(refCorrelated), withdrawReference(refGrouped)},
		Example:   TagExample, EmptyExample: TagEmptyExample,
	})
}
