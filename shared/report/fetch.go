// Fetch runs a source's query and streams its rows into a dataset,
// in key order, one row in memory at a time.

package report

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/fanoutexport/fanoutexport/shared/dataset"

	"github.com/fanoutexport/fanoutexport/shared/fault"
)

// TimeLayout is how DATETIME columns appear in datasets and CSVs.
const TimeLayout = "2006-01-02T15:04:05Z"

// RowLimitExceeded says a report's dataset or CSV passed Max rows
// (MAX_REPORT_ROWS). Its text is the record's whole reason: callers pass it
// on without a prefix (find it with errors.As).
type RowLimitExceeded struct{ Max int64 }

func (e *RowLimitExceeded) Error() string {
	return fmt.Sprintf("report exceeds %d rows; narrow the filter", e.Max)
}

// RowLimitError is the permanent error of a report over max rows.
func RowLimitError(max int64) error { return fault.Permanent(&RowLimitExceeded{Max: max}) }

// Fetch queries src for p and writes every row to out. With src.Input, the
// input dataset is read from in and fed to the query in batches; each
// batch's rows are in input order, so the output stays in key order.
func Fetch(ctx context.Context, db *sql.DB, src Source, p Params, in dataset.Store, out *dataset.Writer) error {
	return FetchLimit(ctx, db, src, p, Bounds{}, in, out, 0)
}

// FetchLimit is Fetch of one part's keys (b; the zero Bounds is every
// key) that stops with RowLimitError(maxRows) as soon as the dataset would
// pass maxRows rows, before writing that row; 0 or less means no limit.
func FetchLimit(ctx context.Context, db *sql.DB, src Source, p Params, b Bounds, in dataset.Store, out *dataset.Writer, maxRows int64) error {
	sink := &rowSink{out: out, max: maxRows}
	if src.Input == "" {
		q, err := src.Build(p, b, nil)
		if err != nil {
			return err
		}
		return runQuery(ctx, db, src, q, sink)
	}
	r, err := dataset.Open(ctx, in, src.Input, src.InputColumns)
	if err != nil {
		return fmt.Errorf("open input %s: %w", src.Input, err)
	}
	batch := make([][]string, 0, src.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		q, err := src.Build(p, b, batch)
		if err != nil {
			return err
		}
		batch = batch[:0]
		return runQuery(ctx, db, src, q, sink)
	}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return err
		}
		batch = append(batch, append([]string(nil), row...))
		if len(batch) == src.BatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// rowSink counts the rows written to out across every query of a fetch.
type rowSink struct {
	out  *dataset.Writer
	rows int64
	max  int64
}

func (s *rowSink) Write(rec []string) error {
	if s.max > 0 && s.rows >= s.max {
		return RowLimitError(s.max)
	}
	if err := s.out.Write(rec); err != nil {
		return err
	}
	s.rows++
	return nil
}

func runQuery(ctx context.Context, db *sql.DB, src Source, q Query, out *rowSink) error {
	rows, err := db.QueryContext(ctx, q.SQL, q.Args...)
	if err != nil {
		return fmt.Errorf("query %s: %w", src.Name(), err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(src.Columns))
	times := make([]time.Time, len(src.Columns))
	dest := make([]any, len(src.Columns))
	for i, c := range src.Columns {
		if c.Kind == Time {
			dest[i] = &times[i]
		} else {
			dest[i] = &raw[i]
		}
	}
	rec := make([]string, len(src.Columns))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("scan %s: %w", src.Name(), err)
		}
		for i, c := range src.Columns {
			switch c.Kind {
			case Time:
				rec[i] = times[i].UTC().Format(TimeLayout)
			case Int:
				// Validate while the row is at hand: the joins parse keys.
				if _, err := strconv.ParseInt(string(raw[i]), 10, 64); err != nil {
					return fault.Permanentf("%s.%s: %q is not an integer", src.Name(), c.Name, raw[i])
				}
				rec[i] = string(raw[i])
			default:
				rec[i] = string(raw[i])
			}
		}
		if err := out.Write(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", src.Name(), err)
	}
	return nil
}
