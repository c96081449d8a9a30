package report

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fanoutexport/fanoutexport/shared/dataset"
	"github.com/fanoutexport/fanoutexport/shared/output"
)

// TestCSVColumns pins which columns each report escapes against formula
// injection (the issue names them; a decimal such as "-12.50" must stay a
// number) and that the declared header is the columns' names.
func TestCSVColumns(t *testing.T) {
	t.Parallel()
	wantEscaped := map[string][]string{
		"withdraw_by_tag":               {"currency", "status"},
		"withdraw_by_tag_with_payments": {"currency", "status"},
	}
	for _, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			r := Reports[typ]
			want, pinned := wantEscaped[typ]
			var escaped []string
			seen := map[string]bool{}
			for _, c := range r.CSV.Columns {
				if c.Escape {
					escaped = append(escaped, c.Name)
				}
				if c.Name == "" || seen[c.Name] {
					t.Errorf("column name %q empty or repeated", c.Name)
				}
				seen[c.Name] = true
			}
			if diff := cmp.Diff(want, escaped); pinned && diff != "" {
				t.Errorf("escaped columns (-want +got):\n%s", diff)
			}
			// Any report: ids, tags, amounts, counts and times are numbers
			// or fixed formats a spreadsheet must keep reading as such.
			for _, c := range escaped {
				if c == "id" || c == "tag_ids" || c == "amount" || c == "created_at" ||
					strings.HasSuffix(c, "_id") || strings.HasSuffix(c, "_count") || strings.HasSuffix(c, "_total") {
					t.Errorf("column %s is escaped; only free text is", c)
				}
			}
			if diff := cmp.Diff(r.CSV.Header(), r.Header); diff != "" {
				t.Errorf("Header is not CSV.Header() (-columns +Header):\n%s", diff)
			}
		})
	}
}

// TestColumnsMatchJoinWidth runs every report's stages and join on one
// generated row per source and checks that each joined row has exactly one
// field per declared column: the writer refuses any other width, so a
// report whose declaration and join disagree would fail every export.
func TestColumnsMatchJoinWidth(t *testing.T) {
	t.Parallel()
	for _, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := Reports[typ]
			st := generatedStore(t, r, 1)
			var rows int
			err := r.Join(ctx, st, func(row []string) error {
				rows++
				if len(row) != len(r.CSV.Columns) {
					return fmt.Errorf("joined row %q has %d fields, %d columns declared", row, len(row), len(r.CSV.Columns))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if rows == 0 {
				t.Fatal("the join yielded no row; the fixture does not reach it")
			}
			// And the writer takes them: the path the aggregator runs.
			cw, err := output.NewCSV(io.Discard, r.CSV)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Join(ctx, st, cw.Write); err != nil {
				t.Errorf("output.CSVWriter refused a joined row: %v", err)
			}
		})
	}
}

// generatedStore runs report r's stages on generated rows of users 1 to
// users (generatedRows), returning the store ready for Join.
func generatedStore(t *testing.T, r Report, users int) *dataset.MemStore {
	t.Helper()
	ctx := context.Background()
	st := dataset.NewMemStore()
	for n, stage := range r.Stages {
		for _, s := range stage {
			rows, err := generatedRows(ctx, st, s, users)
			if err != nil {
				t.Fatalf("stage %d: %v", n+1, err)
			}
			if err := st.Put(ctx, s.Dataset(), 1<<10, rows); err != nil {
				t.Fatalf("Put %s: %v", s.Dataset(), err)
			}
		}
		if n+1 < len(r.Stages) {
			next, err := r.Between(ctx, n+1, st, 1<<10, dataset.S2)
			if err != nil || !next {
				t.Fatalf("Between(%d) = %v, %v; want true, nil", n+1, next, err)
			}
		}
	}
	return st
}

// generatedRows makes one row per input row (or one row per user 1 to
// users) of source s: the input's fields first (a driven source echoes
// its key), then a value of each remaining column's kind. Every key is
// the user, every other integer 1, every text "X".
func generatedRows(ctx context.Context, st dataset.Store, s Source, users int) ([][]string, error) {
	fill := func(prefix []string) []string {
		row := append([]string(nil), prefix...)
		for _, c := range s.Columns[len(prefix):] {
			switch c.Kind {
			case Int:
				row = append(row, "1")
			case Time:
				row = append(row, "2026-01-05T10:00:00Z")
			default:
				row = append(row, "X")
			}
		}
		return row
	}
	if s.Input == "" {
		var rows [][]string
		for u := 1; u <= users; u++ {
			rows = append(rows, fill([]string{fmt.Sprint(u)}))
		}
		return rows, nil
	}
	r, err := dataset.Open(ctx, st, s.Input, s.InputColumns)
	if err != nil {
		return nil, fmt.Errorf("open input %s: %w", s.Input, err)
	}
	var rows [][]string
	for i := int64(0); i < r.Rows(); i++ {
		in, err := r.Next()
		if err != nil {
			return nil, fmt.Errorf("read input %s: %w", s.Input, err)
		}
		rows = append(rows, fill(in))
	}
	return rows, nil
}
